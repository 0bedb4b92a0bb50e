"""The store's tables (SQLAlchemy Core); Alembic migrations create them, never ``create_all``."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "child_identifiers",
    "children",
    "dlq_redrives",
    "ingested_events",
    "metadata",
    "narrative_entries",
    "narrative_merges",
    "projection_positions",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

children = Table(
    "children",
    metadata,
    Column("child_id", String(64), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# The person index: a validated identifier links deterministically to one canonical child.
# ``value`` is the keyed digest of the identifier (HMAC-SHA256 hex), never the identifier.
child_identifiers = Table(
    "child_identifiers",
    metadata,
    Column("system", String(80), primary_key=True),
    Column("value", String(64), primary_key=True),
    Column("child_id", String(64), ForeignKey("children.child_id"), nullable=False, index=True),
    Column("linked_at", DateTime(timezone=True), nullable=False),
)

# Ingest de-duplication: an event id is published to hub.events once per content.
ingested_events = Table(
    "ingested_events",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("child_id", String(64), nullable=False),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
)

# The narrative projection (disposable: `hub replay` rebuilds it from hub.events). ``summary``
# and ``payload`` hold sealed values (JSON), never plain text (ADR 0006).
narrative_entries = Table(
    "narrative_entries",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("child_id", String(64), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("family", String(16), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("agency_id", String(64), nullable=False),
    Column("agency_kind", String(32), nullable=False),
    Column("summary", Text, nullable=False),
    Column("sensitivity", Text, nullable=False),
    Column("supersedes", String(128), nullable=True),
    Column("status", String(16), nullable=False),
    Column("superseded_by", String(128), nullable=True),
    Column("payload", Text, nullable=False),
    Column("log_partition", Integer, nullable=False),
    Column("log_offset", BigInteger, nullable=False),
    Column("stored_at", DateTime(timezone=True), nullable=False),
    # Set when the event's data key was already destroyed as it was projected (migration 0003).
    Column("erased_at", DateTime(timezone=True), nullable=True),
    Index("ix_narrative_child_time", "child_id", "occurred_at", "event_id"),
)

# A counter per child, bumped in the transaction that changes any of the child's entries, so a
# reader can tell cheaply whether what it read before is still what is stored (migration 0012).
narrative_versions = Table(
    "narrative_versions",
    metadata,
    Column("child_id", String(64), primary_key=True),
    Column("version", BigInteger, nullable=False),
)

# Log positions each projection has applied, written in the same transaction as its rows.
projection_positions = Table(
    "projection_positions",
    metadata,
    Column("projection", String(64), primary_key=True),
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
)

# Dead letters already sent back through ingest, so a redrive happens once.
dlq_redrives = Table(
    "dlq_redrives",
    metadata,
    Column("dlq_id", String(64), primary_key=True),
    Column("redriven_at", DateTime(timezone=True), nullable=False),
    Column("target_topic", String(255), nullable=False),
)

# Merges as the narrative has followed them from `hub.events` (identity.merged / .unmerged):
# a child's story is read across every child merged into it while ``undone_at`` is empty.
narrative_merges = Table(
    "narrative_merges",
    metadata,
    Column("merge_id", String(64), primary_key=True),
    Column("surviving_child_id", String(64), nullable=False, index=True),
    Column("merged_child_id", String(64), nullable=False, index=True),
    Column("merged_at", DateTime(timezone=True), nullable=False),
    Column("undone_at", DateTime(timezone=True), nullable=True),
)
