"""Ingest's person index after a retention erasure (SQLite and PostgreSQL): the next refresh
forgets the erased child's records, and records written after the erasure stay indexed."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import Envelope
from contracts.examples import example_envelope
from hub.crypto.data_keys import ChildKeyStore
from hub.crypto.keyring import LocalFileKeyProvider
from hub.domain.identity import LinkDecision, LinkKey
from hub.governance.audit_store import AuditTrail
from hub.governance.config import load_retention
from hub.governance.retention import ChildRetentionFacts, RetentionRunner
from hub.identity.linking import IdentityLinker, Resolution
from hub.identity.records import make_record
from hub.identity.sealing import RecordSealer
from hub.identity.store import IdentityStore
from hub.store.db import create_engine, migrate
from tests.support.databases import BACKENDS, fresh_database_url

pytestmark = pytest.mark.integration

INDEXED = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
ERASED = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
AFTER = ERASED + timedelta(hours=1)
LAST_EVENT = date(2015, 3, 1)  # seven years of partner information ended in 2022


def _digest(system: str, value: str) -> str:
    return hmac.new(b"test-digest-key", f"{system}:{value}".encode(), hashlib.sha256).hexdigest()


def ottilie(n: int, *, given: str = "Ottilie") -> Envelope:
    """The n-th police notice about an invented child, known by subject reference only."""
    return Envelope.model_validate(
        example_envelope(
            id=f"northshire-police:evt-{n:04d}",
            subject=f"NP-PERSON-{n:04d}",
            person={
                "identifiers": [],
                "name": {"given": given, "family": "Quillfeather", "aliases": []},
                "birth_date": "2012-07-19",
                "sex": "female",
                "address": {"lines": ["7 Heron Row"], "postcode": "NS2 7QP"},
            },
        )
    )


@dataclass(frozen=True)
class Due:
    """Retention facts saying each listed child is past its retention period."""

    child_ids: tuple[str, ...]

    async def leftover_children(self) -> list[str]:
        return []

    async def live_children(self) -> list[str]:
        return list(self.child_ids)

    async def facts(self, child_id: str) -> ChildRetentionFacts:
        return ChildRetentionFacts(child_id, None, {}, last_activity=LAST_EVENT)


@pytest.fixture(params=BACKENDS)
async def hub(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """A migrated store, its key store, and ingest's linker over it."""
    engine = create_engine(await fresh_database_url(request.param, tmp_path))
    await migrate(engine)
    keys = ChildKeyStore(engine, LocalFileKeyProvider(tmp_path / "keys"), clock=lambda: INDEXED)
    identity = IdentityStore(engine, RecordSealer(keys))
    try:
        yield {"engine": engine, "keys": keys, "identity": identity}
    finally:
        await engine.dispose()


async def batch(
    engine: AsyncEngine,
    linker: IdentityLinker,
    env: Envelope,
    *,
    now: datetime,
    decision: LinkDecision | None = None,
) -> Resolution:
    """One ingest batch of one record: refresh, resolve, write (as ``IngestProcessor`` does)."""
    async with engine.begin() as conn:
        await linker.refresh(conn)
        resolution = linker.resolve(env, [], decision, now=now)
        assert resolution is not None
        await linker.flush(conn, now=now)
    return resolution


async def erase(hub: dict[str, Any], child_id: str, *, at: datetime = ERASED) -> None:
    """Retention's own run erases the child (its keys are created first, as ingest does)."""
    await hub["keys"].current_keys([child_id])
    runner = RetentionRunner(
        engine=hub["engine"],
        keys=hub["keys"],
        trail=AuditTrail(hub["engine"], clock=lambda: at),
        schedule=load_retention(),
        source=Due((child_id,)),
        clock=lambda: at,
    )
    [erased] = await runner.run()
    assert erased.child_id == child_id
    assert await hub["identity"].records_of(child_id) == []


class TestErasureReachesTheIndex:
    """A refresh after an erasure drops the child's records from the running ingest's index."""

    async def test_a_similar_record_is_not_matched_to_an_erased_child(
        self, hub: dict[str, Any]
    ) -> None:
        """Indexed, erased, refreshed: the same person from another agency record mints a new
        child instead of linking to the erased one by score."""
        engine: AsyncEngine = hub["engine"]
        linker = IdentityLinker(hub["identity"], _digest)
        first = await batch(engine, linker, ottilie(1), now=INDEXED)
        assert first.decision.is_new_child
        erased = first.decision.child_id
        seen = await batch(engine, linker, ottilie(2), now=INDEXED)
        assert (seen.decision.child_id, seen.linked_by) == (erased, "score")

        await erase(hub, erased)
        again = await batch(engine, linker, ottilie(3), now=AFTER)

        assert again.decision.is_new_child
        assert again.decision.child_id != erased
        assert again.review is None

    async def test_a_linker_loaded_after_an_erasure_sees_the_next(
        self, hub: dict[str, Any]
    ) -> None:
        """A linker whose first load already found an erasure still drops a child erased
        after that load."""
        engine: AsyncEngine = hub["engine"]
        earlier = IdentityLinker(hub["identity"], _digest)
        first = (await batch(engine, earlier, ottilie(1), now=INDEXED)).decision.child_id
        await erase(hub, first)
        linker = IdentityLinker(hub["identity"], _digest)
        second = (await batch(engine, linker, ottilie(2, given="Wren"), now=AFTER)).decision
        assert second.is_new_child

        await erase(hub, second.child_id, at=AFTER + timedelta(hours=1))
        again = await batch(
            engine, linker, ottilie(3, given="Wren"), now=AFTER + timedelta(hours=2)
        )

        assert again.decision.is_new_child
        assert again.decision.child_id != second.child_id


class TestErasuresInCommitOrder:
    """Erasures reach the index in the order they commit, whatever the erasing clocks say."""

    async def test_an_erasure_stamped_earlier_but_committed_later_is_applied(
        self, hub: dict[str, Any]
    ) -> None:
        """Two erasing processes with skewed clocks: the one committed second carries the
        earlier time. Ingest has already seen the first; it still drops the second child."""
        engine: AsyncEngine = hub["engine"]
        linker = IdentityLinker(hub["identity"], _digest)
        wren = (await batch(engine, linker, ottilie(1, given="Wren"), now=INDEXED)).decision
        tilly = (await batch(engine, linker, ottilie(2), now=INDEXED)).decision
        await erase(hub, wren.child_id, at=ERASED + timedelta(minutes=30))
        await batch(engine, linker, ottilie(3, given="Bramble"), now=AFTER)  # a refresh

        await erase(hub, tilly.child_id, at=ERASED)  # a process whose clock runs behind
        again = await batch(engine, linker, ottilie(4), now=AFTER + timedelta(minutes=1))

        assert again.decision.is_new_child
        assert again.decision.child_id != tilly.child_id

    async def test_an_erasure_of_leftovers_by_hand_reaches_a_running_ingest(
        self, hub: dict[str, Any]
    ) -> None:
        """Keys destroyed alone (the old by-hand path), then the leftovers erased by hand:
        no key is destroyed this time, and the running ingest still drops the records."""
        from hub.governance.audit import Actor
        from hub.governance.erasure import by_hand_entry, erase_child

        engine: AsyncEngine = hub["engine"]
        linker = IdentityLinker(hub["identity"], _digest)
        child = (await batch(engine, linker, ottilie(1), now=INDEXED)).decision.child_id
        await hub["keys"].destroy_child_key(child)
        await batch(engine, linker, ottilie(2, given="Bramble"), now=AFTER)  # a refresh
        erased = await erase_child(
            engine,
            hub["keys"],
            AuditTrail(engine, clock=lambda: AFTER),
            child,
            audit=by_hand_entry(Actor(sub="ig-officer-7"), "court order", child),
            now=AFTER,
        )
        assert erased is not None and erased.key_versions == ()

        again = await batch(engine, linker, ottilie(3), now=AFTER + timedelta(minutes=1))
        assert again.decision.is_new_child and again.decision.child_id != child


async def erased_then_relinked(hub: dict[str, Any], linker: IdentityLinker) -> str:
    """Index a child, erase it, then link a new record to it by an identifier digest (kept
    by the erasure), as ingest does for the child's next event; the child's id."""
    engine: AsyncEngine = hub["engine"]
    erased = (await batch(engine, linker, ottilie(1), now=INDEXED)).decision.child_id
    await erase(hub, erased)
    nhs = LinkKey("nhs", _digest("nhs", "9990001138"))
    kept = LinkDecision(child_id=erased, is_new_child=False, attach=(), linked_by=nhs)
    await batch(engine, linker, ottilie(2), now=AFTER, decision=kept)
    return erased


async def others_write(hub: dict[str, Any], linker: IdentityLinker, minutes: int) -> None:
    """Another process writes an unrelated record a minute, each followed by a refresh: the
    records mark moves past the relinked record."""
    engine: AsyncEngine = hub["engine"]
    other = IdentityStore(engine, RecordSealer(hub["keys"]))
    for minute in range(1, minutes + 1):
        stranger = make_record(
            f"northshire-health:ref:{minute}",
            given=["Bartholomew"],
            family=["Aldergrove"],
            birth_date=date(2010, 1, minute),
        )
        at = AFTER + timedelta(minutes=minute)
        async with engine.begin() as conn:
            await other.save_records_in(conn, [(stranger, f"ch-other-{minute}")], now=at)
        async with engine.begin() as conn:
            await linker.refresh(conn)


class TestRecordsAfterTheErasure:
    """A record written for the child after its erasure belongs in the index: kept there."""

    async def test_a_record_linked_after_the_erasure_stays_indexed(
        self, hub: dict[str, Any]
    ) -> None:
        """After the erasure a new event links to the child deterministically; that record is
        matched by later records, however many refreshes follow and whatever other writes
        move the records mark on."""
        linker = IdentityLinker(hub["identity"], _digest)
        erased = await erased_then_relinked(hub, linker)
        await others_write(hub, linker, 3)

        later = await batch(hub["engine"], linker, ottilie(20), now=AFTER + timedelta(minutes=5))
        assert (later.decision.child_id, later.linked_by) == (erased, "score")

    async def test_a_restarted_linker_keeps_a_record_written_after_the_erasure(
        self, hub: dict[str, Any]
    ) -> None:
        """A linker first loaded after the erasure and the child's new record keeps that
        record through every later refresh."""
        erased = await erased_then_relinked(hub, IdentityLinker(hub["identity"], _digest))
        linker = IdentityLinker(hub["identity"], _digest)  # a restart: the first load
        await others_write(hub, linker, 2)

        later = await batch(hub["engine"], linker, ottilie(20), now=AFTER + timedelta(minutes=5))
        assert (later.decision.child_id, later.linked_by) == (erased, "score")
