"""The alert store's tables (SQLAlchemy Core, on the shared metadata); migrations 0004,
0011 (``alert_household_keys``) and 0013 (``alerts.trigger_facts``) make them.

Log positions go in the shared ``projection_positions`` table under the projection ``alerts``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, Integer, String, Table, Text

from hub.store.schema import metadata

__all__ = [
    "alert_child_states",
    "alert_events",
    "alert_household_keys",
    "alert_recipients",
    "alerts",
]

_SEQ = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only

# One row per alert occurrence; alert_id is derived from the occurrence key.
alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", String(64), primary_key=True),
    Column("occurrence_key", String(400), nullable=False, unique=True),
    Column("child_id", String(64), nullable=False, index=True),
    Column("rule_id", String(64), nullable=False),
    Column("rule_kind", String(64), nullable=False),
    Column("rule_version", Integer, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("reason", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("recipients", Text, nullable=False),  # JSON list of Recipient
    Column("trigger_event_ids", Text, nullable=False),  # JSON list
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("raised_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=True),
    Column("escalation_plan", Text, nullable=False),  # JSON list of EscalationStep
    Column("escalation_step", Integer, nullable=False),
    Column("next_escalation_at", DateTime(timezone=True), nullable=True, index=True),
    Column("acknowledged_by", String(200), nullable=True),
    Column("acknowledged_at", DateTime(timezone=True), nullable=True),
    Column("withdrawn_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("trigger_facts", Text, nullable=True),  # JSON list of TriggerFacts; NULL before 0013
)

# Inbox keys (Recipient.address) of everyone an alert has gone to, escalations included.
alert_recipients = Table(
    "alert_recipients",
    metadata,
    Column("alert_id", String(64), ForeignKey("alerts.alert_id"), primary_key=True),
    Column("address", String(300), primary_key=True),
    Index("ix_alert_recipients_address", "address", "alert_id"),
)

# Every step of every alert, in commit order; seq is the SSE event id (Last-Event-ID).
alert_events = Table(
    "alert_events",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("alert_id", String(64), ForeignKey("alerts.alert_id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # raised|escalated|acknowledged|withdrawn
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=True),
    Column("detail", Text, nullable=False),  # JSON; ids and codes only
)

# The engine's state per child (JSON of ChildAlertState), saved with the log positions.
alert_child_states = Table(
    "alert_child_states",
    metadata,
    Column("child_id", String(64), primary_key=True),
    Column("state", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Which children's saved states hold each opaque household key (ChildAlertState.household_keys),
# so an incident at an address finds the other children there by key, not by a scan of states.
alert_household_keys = Table(
    "alert_household_keys",
    metadata,
    Column("key", String(80), primary_key=True),
    Column("child_id", String(64), primary_key=True),
    Index("ix_alert_household_keys_child_id", "child_id", "key"),
)
