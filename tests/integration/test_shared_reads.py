"""Shared reads on both stores: a request's reads take one connection from the pool, only
in the task that opened the block, only for its engine, and see writes committed meanwhile.
A child seen to exist is remembered."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import parse_envelope
from contracts.examples import example_envelope
from hub.domain.identity import LinkDecision, LinkKey
from hub.domain.narrative import entry_for
from hub.store.db import create_engine
from hub.store.reading import reads, shared_reads
from hub.store.repository import PositionedEntry, SqlStore

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
CHILD = "ch-shared-reads"


class Checkouts:
    """Counts connections taken from an engine's pool."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        event.listen(engine.sync_engine, "checkout", self._seen)

    def _seen(self, *_: object) -> None:
        self.count += 1


async def write_entry(store: SqlStore, event_id: str, offset: int) -> None:
    entry = entry_for(parse_envelope(example_envelope(id=event_id)), CHILD)
    async with store.engine.begin() as conn:
        await store.apply_entries(
            conn, "narrative", [PositionedEntry(entry, "t.hub.events", 0, offset)], now=NOW
        )


class TestSharedReads:
    """One checkout per block, in its own task only."""

    async def test_reads_in_a_block_take_one_connection(self, store: SqlStore) -> None:
        checkouts = Checkouts(store.engine)
        async with shared_reads(store.engine):
            assert await store.child_exists(CHILD) is False
            assert await store.narrative_stamp([CHILD]) == (0,)
            assert (await store.identity_group(CHILD)).members == (CHILD,)
            assert await store.entry_texts(["nope"]) == {}
        assert checkouts.count == 1

    async def test_reads_outside_a_block_take_one_connection_each(self, store: SqlStore) -> None:
        checkouts = Checkouts(store.engine)
        await store.child_exists(CHILD)
        await store.narrative_stamp([CHILD])
        assert checkouts.count == 2

    async def test_a_nested_block_uses_the_outer_connection(self, store: SqlStore) -> None:
        checkouts = Checkouts(store.engine)
        async with shared_reads(store.engine):
            async with reads(store.engine) as outer:
                pass
            async with shared_reads(store.engine), reads(store.engine) as inner:
                assert inner is outer
        assert checkouts.count == 1

    async def test_tasks_started_inside_connect_on_their_own(self, store: SqlStore) -> None:
        """A connection never serves two tasks at once, though tasks copy the context."""
        checkouts = Checkouts(store.engine)
        async with shared_reads(store.engine):
            async with reads(store.engine) as mine:
                pass

            async def other() -> object:
                async with reads(store.engine) as theirs:
                    await store.narrative_stamp([CHILD])
                    return theirs

            theirs = await asyncio.gather(asyncio.create_task(other()), other())
        assert all(conn is not mine for conn in theirs)
        # the block's, one for the started task, one for the task gather wrapped the
        # coroutine in, and one more for each task's narrative_stamp
        assert checkouts.count == 5

    async def test_another_engine_is_not_given_this_ones_connection(
        self, store: SqlStore, tmp_path: Path
    ) -> None:
        other = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'other.db'}")
        try:
            async with (
                shared_reads(store.engine),
                reads(store.engine) as mine,
                reads(other) as theirs,
            ):
                assert theirs is not mine
                assert theirs.engine.sync_engine is other.sync_engine
        finally:
            await other.dispose()

    async def test_a_block_sees_what_is_committed_while_it_is_open(self, store: SqlStore) -> None:
        """Each read sees the latest committed state (the stamp a cached basis relies on)."""
        async with shared_reads(store.engine):
            assert await store.narrative_stamp([CHILD]) == (0,)
            await write_entry(store, "shared:1", 0)
            assert await store.narrative_stamp([CHILD]) == (1,)
            assert await store.child_exists(CHILD) is False  # entries link no child row
            await write_entry(store, "shared:2", 1)
            assert await store.narrative_stamp([CHILD]) == (2,)

    async def test_the_connection_goes_back_to_the_pool_after_an_error(
        self, store: SqlStore
    ) -> None:
        checkouts = Checkouts(store.engine)
        checkins: list[object] = []
        event.listen(store.engine.sync_engine, "checkin", lambda *a: checkins.append(a))
        with pytest.raises(RuntimeError, match="boom"):
            async with shared_reads(store.engine):
                await store.child_exists(CHILD)
                raise RuntimeError("boom")
        assert (checkouts.count, len(checkins)) == (1, 1)
        async with reads(store.engine) as conn:  # and the next read is not handed a stale one
            assert not conn.closed


async def link_child(store: SqlStore, child_id: str) -> None:
    decision = LinkDecision(child_id=child_id, is_new_child=True, attach=(LinkKey("nhs", "d"),))
    async with store.engine.begin() as conn:
        await store.apply_links(conn, [decision], NOW)


class TestKnownChildren:
    """A child once seen to exist is not asked after again; an unknown one always is."""

    async def test_a_known_child_is_remembered(self, store: SqlStore) -> None:
        await link_child(store, CHILD)
        checkouts = Checkouts(store.engine)
        assert [await store.child_exists(CHILD) for _ in range(3)] == [True, True, True]
        assert checkouts.count == 1

    async def test_an_unknown_child_is_asked_after_until_it_exists(self, store: SqlStore) -> None:
        checkouts = Checkouts(store.engine)
        assert await store.child_exists(CHILD) is False
        assert await store.child_exists(CHILD) is False
        await link_child(store, CHILD)
        assert await store.child_exists(CHILD) is True
        assert checkouts.count == 4  # three questions and the link's transaction
