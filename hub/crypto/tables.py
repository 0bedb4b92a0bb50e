"""The crypto area's tables: per-child data keys, stored only wrapped by a KEK.

Defined on the shared ``hub.store.schema.metadata``; migration ``0002`` creates them.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, LargeBinary, String, Table

from hub.store.schema import metadata

__all__ = ["child_data_keys"]

# One row per child and key version. ``wrapped_key`` is the data key encrypted under
# ``kek_id``; destroying a child's keys sets it to NULL and stamps ``destroyed_at`` (the row
# stays as a tombstone so readers can say "erased" rather than "unknown").
child_data_keys = Table(
    "child_data_keys",
    metadata,
    Column("child_id", String(64), primary_key=True),
    Column("key_version", Integer, primary_key=True),
    Column("kek_id", String(64), nullable=False),
    Column("wrapped_key", LargeBinary, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("destroyed_at", DateTime(timezone=True), nullable=True),
    Index("ix_child_data_keys_kek_id", "kek_id"),
)
