"""The delivery ledger's table (SQLAlchemy Core, on the shared metadata); migration 0007 makes it.

One row per (subscriber, subject): a subject is a ``hub.events`` event id for topic deliveries
and an alert id for webhooks, so a redelivered event or a replayed alert is delivered once.
Rows hold ids, statuses, counts, times and error classes; a webhook row also holds the exact
body it sends (ids and codes only), so a restarted hub resumes its retries byte for byte.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text, UniqueConstraint

from hub.store.schema import metadata

__all__ = ["deliveries"]

deliveries = Table(
    "deliveries",
    metadata,
    Column("delivery_id", String(64), primary_key=True),
    Column("subscriber_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # topic | webhook
    Column("subject_id", String(200), nullable=False),  # event id (topic) or alert id (webhook)
    Column("child_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | dead | withheld
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("last_error_class", String(64), nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("body", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("subscriber_id", "subject_id", name="uq_deliveries_subscriber_subject"),
    Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    Index("ix_deliveries_subscriber_id", "subscriber_id"),
    # Each narrative batch looks for its children's held deliveries (migration 0017).
    Index("ix_deliveries_child_id_status", "child_id", "status"),
)
