"""Ingest's person index reads other processes' writes in commit order, not by their clocks
(SQLite and PostgreSQL; ADR 0022): a record stamped behind the index's mark, or committed
after a later-stamped one, is still read and matched."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.identity.linking import IdentityLinker
from hub.identity.records import PersonRecord, make_record
from hub.identity.sealing import RecordSealer
from hub.identity.store import IdentityStore
from tests.integration.test_identity_erasure import (  # noqa: F401 - ``hub`` is a fixture
    AFTER,
    _digest,
    batch,
    hub,
    ottilie,
)

pytestmark = pytest.mark.integration

OTTILIE = "ch-ottilie"


def ottilie_record() -> PersonRecord:
    """The record another process holds of the child in ``ottilie(n)`` notices."""
    return make_record(
        "northshire-health:ref:ottilie",
        given=["Ottilie"],
        family=["Quillfeather"],
        birth_date=date(2012, 7, 19),
        sex="female",
        postcode="ns27qp",
        address_lines=["7 Heron Row"],
    )


def stranger(n: int) -> PersonRecord:
    """An unrelated child's record."""
    return make_record(
        f"northshire-health:ref:stranger-{n}",
        given=["Bartholomew"],
        family=["Aldergrove"],
        birth_date=date(2010, 1, n),
    )


def other_process(hub: dict[str, Any]) -> IdentityStore:  # noqa: F811 - the fixture's value
    return IdentityStore(hub["engine"], RecordSealer(hub["keys"]))


async def write(engine: AsyncEngine, store: IdentityStore, record: PersonRecord, child: str,
                at: datetime) -> None:  # fmt: skip
    async with engine.begin() as conn:
        await store.save_records_in(conn, [(record, child)], now=at)


async def refresh(engine: AsyncEngine, linker: IdentityLinker) -> None:
    async with engine.begin() as conn:
        await linker.refresh(conn)


class TestCommitOrder:
    async def test_a_record_stamped_behind_the_mark_is_matched(
        self,
        hub: dict[str, Any],  # noqa: F811 - the fixture imported above
    ) -> None:
        """One process's clock runs an hour ahead, another's behind: the record written last
        but stamped earliest is read at the next refresh, and a new notice matches it."""
        engine = hub["engine"]
        linker = IdentityLinker(hub["identity"], _digest)
        await refresh(engine, linker)
        await write(
            engine, other_process(hub), stranger(1), "ch-stranger", AFTER + timedelta(hours=1)
        )
        await refresh(engine, linker)
        await write(engine, other_process(hub), ottilie_record(), OTTILIE, AFTER)

        found = await batch(engine, linker, ottilie(30), now=AFTER + timedelta(minutes=5))
        assert (found.decision.child_id, found.linked_by) == (OTTILIE, "score")

    async def test_a_write_committed_after_a_later_one_is_matched(
        self,
        hub: dict[str, Any],  # noqa: F811 - the fixture imported above
    ) -> None:
        """A writes first and commits last; B writes and commits in between, and the index
        refreshes then: A's record is read once it commits. (SQLite lets one transaction write
        at a time, so B waits for A there; the outcome must be the same.)"""
        engine = hub["engine"]
        linker = IdentityLinker(hub["identity"], _digest)
        # The first record sealed makes the identity key's row; made now, so B does not wait
        # on A's uncommitted one.
        await write(engine, other_process(hub), stranger(3), "ch-stranger-3", AFTER)
        await refresh(engine, linker)
        a_wrote, a_may_commit = asyncio.Event(), asyncio.Event()

        async def a() -> None:
            async with engine.begin() as conn:
                await other_process(hub).save_records_in(
                    conn, [(ottilie_record(), OTTILIE)], now=AFTER
                )
                a_wrote.set()
                await a_may_commit.wait()

        async def b() -> None:
            await a_wrote.wait()
            later = AFTER + timedelta(seconds=1)
            await write(engine, other_process(hub), stranger(2), "ch-stranger", later)
            await refresh(engine, linker)

        writer_a = asyncio.create_task(a())
        if engine.dialect.name == "postgresql":
            await b()
            a_may_commit.set()
        else:
            second = asyncio.create_task(b())
            await a_wrote.wait()
            a_may_commit.set()
            await second
        await writer_a

        found = await batch(engine, linker, ottilie(31), now=AFTER + timedelta(minutes=5))
        assert (found.decision.child_id, found.linked_by) == (OTTILIE, "score")
