"""The identity tables: persisted person records, the review queue, merges and household links.

Defined on the shared ``hub.store.schema.metadata``; migration ``0005`` creates them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from hub.store.schema import metadata

__all__ = ["change_head", "household_links", "merges", "person_records", "reviews"]

_VERSION = BigInteger().with_variant(Integer(), "sqlite")

# One row per agency record of a person (record id = the agency's source-record key).
person_records = Table(
    "identity_person_records",
    metadata,
    Column("record_id", String(160), primary_key=True),
    Column("child_id", String(64), nullable=False, index=True),
    Column("features", Text, nullable=False),  # JSON: normalised name tokens
    Column("birth_date", Date, nullable=True),
    Column("sex", String(16), nullable=True),
    Column("postcode", String(16), nullable=True),
    Column("address_key", String(120), nullable=True),
    Column("identifiers", Text, nullable=False),  # JSON: [[system, value], ...]
    Column("blocking_keys", Text, nullable=False),  # JSON: the keys it is indexed under
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The write's place in commit order (migration 0016): PostgreSQL's transaction id, or on
    # SQLite the change head's seq. Ingest's refresh reads the rows at or after its mark by it;
    # NULL for rows written before 0016 (every process reads them at its first load).
    Column("version", _VERSION, nullable=True),
    # Retention's leftover sweep compares update times (migration 0014).
    Index("ix_identity_person_records_updated_at", "updated_at"),
    Index("ix_identity_person_records_version", "version"),
)

# SQLite only: the last version handed to a person-record write (one row, id 1). Taken by an
# UPDATE in the writing transaction, which holds the database's write lock until it commits,
# so versions follow commit order. PostgreSQL uses transaction ids instead.
change_head = Table(
    "identity_change_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", _VERSION, nullable=False),
)

# Possible matches waiting for (or decided by) a person; never merged silently.
reviews = Table(
    "identity_reviews",
    metadata,
    Column("review_id", String(64), primary_key=True),
    Column("record_id", String(160), nullable=False),
    Column("provisional_child_id", String(64), nullable=False),
    Column("candidate_child_id", String(64), nullable=False),
    Column("weight", Float, nullable=False),
    Column("breakdown", Text, nullable=False),  # JSON: [{comparison, level, weight}, ...]
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("decided_by", String(128), nullable=True),
    Column("reason", Text, nullable=True),
    Index("ix_identity_reviews_status_created", "status", "created_at"),
)

# A merge moves every record of one child to another; an un-merge moves them back.
merges = Table(
    "identity_merges",
    metadata,
    Column("merge_id", String(64), primary_key=True),
    Column("surviving_child_id", String(64), nullable=False, index=True),
    Column("merged_child_id", String(64), nullable=False, index=True),
    Column("record_ids", Text, nullable=False),  # JSON: the records moved
    Column("review_id", String(64), nullable=True),
    Column("decided_by", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("merged_at", DateTime(timezone=True), nullable=False),
    Column("undone_at", DateTime(timezone=True), nullable=True),
    Column("undone_by", String(128), nullable=True),
    Column("undo_reason", Text, nullable=True),
)

# Edges of the household graph (opaque node keys, see hub.identity.households).
household_links = Table(
    "identity_household_links",
    metadata,
    Column("a", String(80), primary_key=True),
    Column("b", String(80), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("source_event_id", String(128), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_identity_household_links_b", "b"),  # erasures delete links at either end (0015)
)
