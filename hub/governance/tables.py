"""The governance store's tables (SQLAlchemy Core, shared metadata); migration 0006 makes them.

Audit records hold ids, codes and facts about events (types, agencies, sensitivity tags, times),
never event content, names or addresses. Free text a person writes (a break-glass
justification, a protection reason, a review note) lives only in its own table.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from hub.store.schema import metadata

__all__ = [
    "audit_checkpoints",
    "audit_head",
    "audit_records",
    "break_glass",
    "consents",
    "protections",
    "rule_packs",
]

_SEQ = BigInteger().with_variant(Integer(), "sqlite")

# The audit trail: one hash chain ordered by seq (assigned by the appender as head + 1).
audit_records = Table(
    "audit_records",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("action", String(64), nullable=False, index=True),
    Column("who", String(200), nullable=False, index=True),
    Column("role", String(64), nullable=True),
    Column("agency_id", String(64), nullable=True, index=True),
    Column("child_id", String(64), nullable=True),
    Column("effect", String(8), nullable=True),
    Column("record", Text, nullable=False),  # the canonical JSON the hash covers
    Column("prev_hash", String(64), nullable=False, index=True),
    Column("hash", String(64), nullable=False, unique=True),
    Index("ix_audit_records_child_seq", "child_id", "seq"),
    # Ingest's person index reads the erasures recorded after its mark (migration 0015).
    Index("ix_audit_records_action_seq", "action", "seq"),
)

# The head of the chain (one row, id 1): locked by every append, so appends are serialised.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", _SEQ, nullable=False),
    Column("hash", String(64), nullable=False),
)

# Every N records the head hash, optionally signed (Ed25519 over "seq:hash").
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("key_id", String(80), nullable=True),
    Column("signature", String(200), nullable=True),
)

# Consent decisions, all kept: the latest per (child, purpose, agency) is in force.
consents = Table(
    "consents",
    metadata,
    Column("consent_id", String(32), primary_key=True),
    Column("child_id", String(64), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("agency_id", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("given_by", String(32), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(200), nullable=False),
    Column("recorded_by_agency", String(64), nullable=False),
    Index("ix_consents_child", "child_id", "decided_at"),
)

# Break-glass: a justification, its time limit and the IG review.
break_glass = Table(
    "break_glass",
    metadata,
    Column("break_glass_id", String(32), primary_key=True),
    Column("child_id", String(64), nullable=False),
    Column("sub", String(200), nullable=False),
    Column("agency_id", String(64), nullable=False),
    Column("role", String(64), nullable=False),
    Column("team", String(128), nullable=True),
    Column("purpose", String(32), nullable=False),
    Column("justification", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("review_status", String(16), nullable=False, index=True),
    Column("reviewer", String(200), nullable=True),
    Column("reviewed_at", DateTime(timezone=True), nullable=True),
    Column("review_note", Text, nullable=True),
    Index("ix_break_glass_child", "child_id", "expires_at"),
)

# Protected people: a flag on a child or person; lifting it keeps the row (history).
protections = Table(
    "protections",
    metadata,
    Column("protection_id", String(32), primary_key=True),
    Column("subject_id", String(64), nullable=False, index=True),
    Column("subject_kind", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("review_on", Date, nullable=False),
    Column("set_by", String(200), nullable=False),
    Column("set_by_agency", String(64), nullable=False),
    Column("set_at", DateTime(timezone=True), nullable=False),
    Column("lifted_by", String(200), nullable=True),
    Column("lifted_at", DateTime(timezone=True), nullable=True),
)

# Rule packs as applied, numbered 1, 2, ...; the highest number is in force.
rule_packs = Table(
    "rule_packs",
    metadata,
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("version", String(64), nullable=False, unique=True),
    Column("text", Text, nullable=False),
    Column("filename", String(200), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("author", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)
