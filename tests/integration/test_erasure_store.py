"""Erasure by hand against a real store (SQLite and PostgreSQL): the same erasure retention makes.

``hub keys destroy-child`` destroys the keys, deletes the child's person records and household
links, and appends an audit record that verifies in the chain, in one transaction; a second
run changes and records nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import select
from typer.testing import CliRunner

from hub.crypto.cli import keys_app
from hub.crypto.data_keys import ChildKeyStore
from hub.crypto.keyring import LocalFileKeyProvider
from hub.delivery.store import DeliveryStore, HeldDelivery, delivery_id_for
from hub.delivery.tables import deliveries
from hub.governance import Governance
from hub.governance.audit import Actor, AuditAction
from hub.governance.config import load_governance_settings
from hub.identity.tables import household_links, person_records
from hub.store.db import create_engine, migrate
from tests.support.databases import BACKENDS, fresh_database_url
from tests.support.identity_rows import household_link_row, person_record_row

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
ERASED, KEPT = "ch-erased", "ch-kept"
REASON = "Court order NS-2026-118: erase"


@pytest.fixture(params=BACKENDS)
async def hub_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[dict[str, Any]]:
    """Two children with keys and person records; household links naming the erased child at
    either end (its address, and an adult's link to it) and the kept child's own."""
    url = await fresh_database_url(request.param, tmp_path)
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HUB_DATABASE_URL", url)
    monkeypatch.delenv("HUB_AGENCIES_FILE", raising=False)
    engine = create_engine(url)
    await migrate(engine)
    keys = ChildKeyStore(engine, LocalFileKeyProvider(tmp_path / "keys"), clock=lambda: NOW)
    await keys.current_keys([ERASED, KEPT])
    await keys.rotate_child_key(ERASED)
    links = [
        (ERASED, "addr:1", "address"),
        ("adult:9", ERASED, "related"),
        (KEPT, "addr:1", "address"),
    ]
    async with engine.begin() as conn:
        await conn.execute(
            person_records.insert(),
            [person_record_row(f"r-{n}", c, NOW) for n, c in enumerate((ERASED, ERASED, KEPT))],
        )
        await conn.execute(
            household_links.insert(), [household_link_row(*link, NOW) for link in links]
        )
    # Partner deliveries: one of the child's held by a rule's delay (its sealed record kept),
    # one already sent, and one of the kept child's held.
    ledger = DeliveryStore(engine, clock=lambda: NOW)
    async with engine.begin() as conn:
        await ledger.hold_in(
            conn,
            [
                HeldDelivery("school-dsl", "cs:evt-1", ERASED, '{"sealed": "..."}', None),
                HeldDelivery("school-dsl", "cs:evt-9", KEPT, '{"sealed": "..."}', None),
            ],
        )
    await ledger.claim_many([("school-dsl", "topic", "police:evt-2", ERASED)])
    async with engine.begin() as conn:
        await ledger.mark_delivered_many(conn, [(delivery_id_for("school-dsl", "police:evt-2"), 1)])
    gov = Governance.over(engine, load_governance_settings(), keys_dir=tmp_path / "keys")
    # An earlier record, so the erasure's must chain onto it.
    await gov.trail.append(Actor(sub="ig-lead").entry(AuditAction.rules_applied, reason="v2"))
    try:
        yield {"engine": engine, "keys": keys, "trail": gov.trail}
    finally:
        await engine.dispose()


async def destroy_child(*args: str) -> tuple[int, str, str]:
    """Run ``hub keys destroy-child`` (in a thread: the command runs its own event loop).

    The command routes logs to the runner's stderr, closed once it returns: the process's
    logging is put back before the test logs again."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = await asyncio.to_thread(CliRunner().invoke, keys_app, ["destroy-child", *args])
    finally:
        structlog.configure(**config)
        root.handlers[:], root.level = handlers, level
    return result.exit_code, result.stdout, result.stderr


async def left_of(engine: Any) -> tuple[list[str], list[tuple[str, str]]]:
    """The children of the person records, and the household links, still stored."""
    async with engine.connect() as conn:
        records = (await conn.execute(select(person_records.c.child_id))).scalars().all()
        links = (await conn.execute(select(household_links.c.a, household_links.c.b))).all()
    return sorted(records), sorted((a, b) for a, b in links)


async def deliveries_of(engine: Any) -> list[tuple[str, str, str, bool]]:
    """Each delivery's event, child, status and whether it still keeps a record."""
    d = deliveries.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(d.subject_id, d.child_id, d.status, d.body).order_by(d.subject_id)
        )
        return [(r.subject_id, r.child_id, r.status, r.body is not None) for r in rows]


class TestEraseByHand:
    """An operator's erasure removes what retention's does and is recorded the same way."""

    async def test_erases_keys_records_links_and_audits_once(
        self, hub_store: dict[str, Any]
    ) -> None:
        """Both key versions, two person records and both links of the child go, in one
        audited erasure that verifies in the chain; the kept child is untouched; run two: no-op."""
        engine, keys, trail = hub_store["engine"], hub_store["keys"], hub_store["trail"]
        code, out, err = await destroy_child(
            ERASED, "--yes", "--reason", REASON, "--author", "ig-officer-7"
        )
        assert (code, out) == (
            0,
            f"child {ERASED} erased: data key versions 1, 2 destroyed, 2 person records and "
            "2 household links deleted; audit record 2\n",
        ), err
        assert [r.destroyed_at is not None for r in await keys.key_records(ERASED)] == [True, True]
        assert [r.destroyed_at for r in await keys.key_records(KEPT)] == [None]
        assert await left_of(engine) == ([KEPT], [(KEPT, "addr:1")])
        assert await deliveries_of(engine) == [
            ("cs:evt-1", ERASED, "withheld", False),  # never sent now; its record dropped
            ("cs:evt-9", KEPT, "held", True),
            ("police:evt-2", ERASED, "delivered", False),
        ]

        records = [r async for r in trail.records(actions=[AuditAction.operator_erased])]
        assert [(r.seq, r.body["who"], r.body["child_id"], r.body["effect"]) for r in records] == [
            (2, "ig-officer-7", ERASED, "erased")
        ]
        assert records[0].body["reason"] == REASON
        assert records[0].body["extra"] == {
            "key_versions": [1, 2],
            "person_records": 2,
            "household_links": 2,
            "unsent_deliveries": 1,
        }
        assert (await trail.verify()).ok

        code, out, _ = await destroy_child(ERASED, "--yes", "--reason", REASON)
        assert (code, out) == (
            0,
            f"child {ERASED}: already erased; nothing to erase, nothing recorded\n",
        )
        assert [r.seq async for r in trail.records()] == [1, 2]

    async def test_clears_what_a_keys_only_erasure_left(self, hub_store: dict[str, Any]) -> None:
        """A child whose keys alone were destroyed (the old by-hand path) has its person
        records and links deleted, and recorded with no key versions."""
        engine, keys, trail = hub_store["engine"], hub_store["keys"], hub_store["trail"]
        await keys.destroy_child_key(ERASED)
        code, out, err = await destroy_child(ERASED, "--yes", "--reason", REASON)
        assert (code, out) == (
            0,
            f"child {ERASED} erased: no live data key (destroyed earlier), 2 person "
            "records and 2 household links deleted; audit record 2\n",
        ), err
        assert await left_of(engine) == ([KEPT], [(KEPT, "addr:1")])
        [record] = [r async for r in trail.records(actions=[AuditAction.operator_erased])]
        assert record.body["extra"]["key_versions"] == []
        assert (await trail.verify()).ok


class _IngestBetween(ChildKeyStore):
    """A key store in which ingest makes the child a new key for a new event right after
    the erasure commits, before the erasing process clears its cache."""

    pending: asyncio.Future[None] | None = None

    async def _new_event_key(self, child_id: str) -> None:
        await ChildKeyStore.current_keys(self, [child_id])

    def forget_child(self, child_id: str) -> None:
        self.pending = asyncio.ensure_future(self._new_event_key(child_id))
        super().forget_child(child_id)

    async def destroy_child_key(self, child_id: str) -> list[int]:
        await self._new_event_key(child_id)
        return await super().destroy_child_key(child_id)


class TestAfterTheCommit:
    async def test_a_key_made_after_the_erasure_stays_live(
        self, hub_store: dict[str, Any], tmp_path: Path
    ) -> None:
        """The erasing process clears only its cache afterwards: a key ingest made for a
        new event about the child since the commit is not shredded (and unaudited)."""
        from hub.governance.erasure import by_hand_entry, erase_child

        engine, trail = hub_store["engine"], hub_store["trail"]
        keys = _IngestBetween(engine, LocalFileKeyProvider(tmp_path / "keys"), clock=lambda: NOW)
        erased = await erase_child(
            engine,
            keys,
            trail,
            ERASED,
            audit=by_hand_entry(Actor(sub="ig"), REASON, ERASED),
            now=NOW,
        )
        if keys.pending is not None:
            await keys.pending
        assert erased is not None and erased.key_versions == (1, 2)
        assert [r.destroyed_at is None for r in await keys.key_records(ERASED)] == [
            False,
            False,
            True,
        ]
