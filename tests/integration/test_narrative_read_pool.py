"""A narrative read never holds two of the store's connections at once: its shared read
connection goes back to the pool before the audit append takes one, so a pool of one
connection serves a read, and concurrent reads never wait on each other for the pool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from contracts import AgencyKind, parse_envelope
from contracts.examples import example_envelope
from hub.api.narrative_access import read_visible_narrative
from hub.auth import Agency, Caller
from hub.bootstrap import Hub, ProcessRole, build_hub
from hub.crypto.narrative import seal_entry
from hub.domain.identity import LinkDecision, LinkKey
from hub.domain.narrative import entry_for
from hub.domain.roles import Role
from hub.governance.api import governance_of
from hub.governance.audit import AuditAction
from hub.settings import Settings
from hub.store.db import migrate
from hub.store.repository import PositionedEntry

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
CHILD = "ch-pool-1"
WORKER = Caller(
    "sam.sw",
    Agency("northshire-cs", AgencyKind.childrens_services, "Northshire CS"),
    Role.social_worker,
)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    """A hub whose store engine has a pool of one connection (no overflow, 2 s timeout)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    hub = build_hub(
        Settings(data_dir=tmp_path, database_url=url, kafka_bootstrap="127.0.0.1:1"),
        ProcessRole.api,
    )
    await migrate(hub.store.engine)
    await hub.security.start()
    await hub.store.engine.dispose()
    hub.store.engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=2)
    await governance_of(hub).rules.current()  # the pack in force stored, as at start
    async with hub.store.engine.begin() as conn:
        decision = LinkDecision(child_id=CHILD, is_new_child=True, attach=(LinkKey("nhs", "d"),))
        await hub.store.apply_links(conn, [decision], NOW)
    key = (await hub.security.keys.current_keys([CHILD]))[CHILD]
    for n in range(3):
        envelope = parse_envelope(example_envelope(id=f"northshire-police:pool-{n}"))
        entry = seal_entry(key, entry_for(envelope, CHILD))
        async with hub.store.engine.begin() as conn:
            positioned = PositionedEntry(entry, "t.hub.events", 0, n)
            await hub.store.apply_entries(conn, "narrative", [positioned], now=NOW)
    try:
        yield hub
    finally:
        await hub.store.engine.dispose()
        await hub.security.keys.engine.dispose()


async def audited_reads(hub: Hub) -> int:
    """The narrative reads the audit trail holds for the child (each decided its 3 entries)."""
    found = [
        r
        async for r in governance_of(hub).trail.records(
            child_id=CHILD, actions=[AuditAction.narrative_read]
        )
    ]
    assert all(r.body["event_ids"] and len(r.body["event_ids"]) == 3 for r in found)
    return len(found)


def page(items: list) -> list[str]:
    return [i.event_id for i in items]


class TestPool:
    """One connection is enough for a read, and for reads one after another."""

    async def test_a_read_on_a_pool_of_one(self, hub: Hub) -> None:
        visible = await read_visible_narrative(hub, WORKER, CHILD, present=page)
        assert (visible.child_id, await audited_reads(hub)) == (CHILD, 1)
        assert hub.store.engine.pool.checkedout() == 0  # type: ignore[attr-defined]

    async def test_concurrent_reads_on_a_pool_of_one(self, hub: Hub) -> None:
        """They queue for the one connection and all finish (none waits holding it)."""
        reads = [read_visible_narrative(hub, WORKER, CHILD, present=page) for _ in range(4)]
        done = await asyncio.wait_for(asyncio.gather(*reads), timeout=30)
        assert [v.child_id for v in done] == [CHILD] * 4
        assert await audited_reads(hub) == 4
