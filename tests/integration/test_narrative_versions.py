"""Narrative versions on both stores: every change to a child's entries moves the child's
version in the same transaction, and an upgraded store starts with versions for its children."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts import parse_envelope
from contracts.examples import example_envelope
from hub.domain.narrative import entry_for
from hub.store.db import create_engine, migrate
from hub.store.repository import PositionedEntry, SqlStore
from hub.store.schema import narrative_entries
from tests.support.databases import fresh_database_url, upgrade_to

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
ANNA, BEN = "ch-ver-anna", "ch-ver-ben"


def positioned(child: str, event_id: str, offset: int, **overrides: object) -> PositionedEntry:
    entry = entry_for(parse_envelope(example_envelope(id=event_id, **overrides)), child)
    return PositionedEntry(entry, "t.hub.events", 0, offset)


async def apply(store: SqlStore, *items: PositionedEntry) -> None:
    async with store.engine.begin() as conn:
        await store.apply_entries(conn, "narrative", items, now=NOW)


class TestVersions:
    """What moves a child's version, and what does not."""

    async def test_unknown_children_are_at_zero(self, store: SqlStore) -> None:
        assert await store.narrative_stamp([ANNA, BEN]) == (0, 0)

    async def test_each_batch_moves_the_children_it_wrote(self, store: SqlStore) -> None:
        await apply(store, positioned(ANNA, "p:1", 0), positioned(ANNA, "p:2", 1))
        await apply(store, positioned(BEN, "p:3", 2))
        await apply(store, positioned(ANNA, "p:4", 3))
        assert await store.narrative_stamp([ANNA, BEN]) == (2, 1)

    async def test_a_replayed_batch_writes_nothing_and_moves_nothing(self, store: SqlStore) -> None:
        await apply(store, positioned(ANNA, "p:1", 0))
        await apply(store, positioned(ANNA, "p:1", 0))  # already applied at this position
        assert await store.narrative_stamp([ANNA]) == (1,)

    async def test_a_retraction_moves_the_child_of_what_it_retracts(self, store: SqlStore) -> None:
        """Even when the retraction was linked to another child, the retracted entry's child
        sees its story change."""
        await apply(store, positioned(ANNA, "p:1", 0))
        await apply(store, positioned(BEN, "p:2", 1, type="event.retracted", supersedes="p:1"))
        assert await store.narrative_stamp([ANNA, BEN]) == (2, 1)

    async def test_a_rebuild_moves_every_child(self, store: SqlStore) -> None:
        await apply(store, positioned(ANNA, "p:1", 0), positioned(BEN, "p:2", 1))
        await store.reset_projection("narrative")
        assert await store.narrative_stamp([ANNA, BEN]) == (2, 2)


class TestUpgrade:
    """A store upgraded to 0012 has a version for every child with entries."""

    async def test_the_migration_backfills_children_with_entries(self, tmp_path: Path) -> None:
        url = await fresh_database_url("sqlite", tmp_path)
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(upgrade_to, url, "0003")
                rows = [positioned(c, f"p:{c}", 0).entry for c in (ANNA, BEN)]
                await conn.execute(narrative_entries.insert(), [_row(e) for e in rows])
            await migrate(engine)
            assert await SqlStore(engine).narrative_stamp([ANNA, BEN, "ch-none"]) == (1, 1, 0)
        finally:
            await engine.dispose()


def _row(entry: object) -> dict[str, object]:
    fields = [
        "event_id",
        "child_id",
        "event_type",
        "family",
        "occurred_at",
        "recorded_at",
        "agency_id",
        "agency_kind",
        "summary",
        "supersedes",
        "status",
        "payload",
    ]
    row = {f: getattr(entry, f) for f in fields}
    return {
        **row,
        "sensitivity": "[]",
        "log_partition": 0,
        "log_offset": 0,
        "stored_at": NOW,
        "superseded_by": None,
        "erased_at": None,
    }
