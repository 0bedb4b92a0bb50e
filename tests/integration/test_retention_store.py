"""Retention against a real store (SQLite and PostgreSQL): only the expired child is erased."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.crypto.data_keys import ChildKeyStore
from hub.crypto.keyring import LocalFileKeyProvider
from hub.crypto.narrative import NarrativeOpener, seal_entry
from hub.domain.narrative import NarrativeEntry
from hub.governance.audit import AuditAction
from hub.governance.audit_store import AuditTrail
from hub.governance.config import load_retention
from hub.governance.retention import (
    RetentionRunner,
    StoreRetentionFacts,
    Verdict,
)
from hub.store.db import create_engine, migrate
from hub.store.repository import PositionedEntry, SqlStore
from hub.store.schema import children
from tests.support.databases import BACKENDS, fresh_database_url
from tests.support.identity_rows import household_link_row, person_record_row

pytestmark = pytest.mark.integration

LEFTOVER_COUNTS = {
    "key_versions": [],
    "person_records": 1,
    "household_links": 1,
    "unsent_deliveries": 0,
}

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
EXPIRED, KEPT = "ch-expired", "ch-kept"


def _entry(
    n: int, child_id: str, event_type: str, at: datetime, data: dict[str, Any]
) -> NarrativeEntry:
    return NarrativeEntry(
        event_id=f"northshire-police:ev-{n}",
        child_id=child_id,
        event_type=event_type,
        family=event_type.split(".")[0],
        occurred_at=at,
        recorded_at=at,
        agency_id="northshire-police",
        agency_kind="police",
        summary="Concern raised about Ottilie Quillfeather",
        sensitivity=(),
        supersedes=None,
        status="active",
        payload=json.dumps(data, sort_keys=True),
    )


@pytest.fixture(params=BACKENDS)
async def seeded(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """A store with an expired child (no status, last event 2015) and a kept one (open CP plan)."""
    engine = create_engine(await fresh_database_url(request.param, tmp_path))
    await migrate(engine)
    keys = ChildKeyStore(engine, LocalFileKeyProvider(tmp_path / "keys"), clock=lambda: NOW)
    store = SqlStore(engine)
    old = datetime(2015, 3, 1, 10, 0, tzinfo=UTC)
    entries = [
        _entry(1, EXPIRED, "concern.raised", old, {"category": "neglect"}),
        _entry(
            2,
            KEPT,
            "involvement.started",
            old,
            {"involvement_type": "child_protection_plan", "involvement_id": "cp-1"},
        ),
    ]
    live = await keys.current_keys([EXPIRED, KEPT])
    async with engine.begin() as conn:
        await conn.execute(
            children.insert(), [{"child_id": c, "created_at": old} for c in (EXPIRED, KEPT)]
        )
        await store.apply_entries(
            conn,
            "narrative",
            [
                PositionedEntry(seal_entry(live[e.child_id], e), "hub.events", 0, i)
                for i, e in enumerate(entries)
            ],
            now=old,
        )
    trail = AuditTrail(engine, clock=lambda: NOW)
    runner = RetentionRunner(
        engine=engine,
        keys=keys,
        trail=trail,
        schedule=load_retention(),
        source=StoreRetentionFacts(store, keys),
        clock=lambda: NOW,
    )
    try:
        yield {"engine": engine, "keys": keys, "store": store, "trail": trail, "runner": runner}
    finally:
        await engine.dispose()


class TestRetentionRun:
    """A run erases exactly the expired child, audits it, and a second run does nothing."""

    async def test_dry_run_lists_the_expired_child_only(self, seeded: dict[str, Any]) -> None:
        """Category and due date for the expired child; the kept one's plan is still open."""
        runner: RetentionRunner = seeded["runner"]
        assert [o.as_line() for o in await runner.run(dry_run=True)] == [
            "ch-expired\tdue\tpartner_information\t2022-03-01"
        ]
        verdicts = {o.child_id: o.verdict for o in await runner.assess_all()}
        assert verdicts == {EXPIRED: Verdict.due, KEPT: Verdict.kept}
        assert all(r.destroyed_at is None for r in await seeded["keys"].key_records(EXPIRED))

    async def test_run_erases_audits_and_is_idempotent(self, seeded: dict[str, Any]) -> None:
        """Only the expired child's key is destroyed, with one audit record; run two: nothing."""
        runner: RetentionRunner = seeded["runner"]
        keys: ChildKeyStore = seeded["keys"]
        [erased] = await runner.run()
        assert erased.child_id == EXPIRED
        assert [(r.key_version, r.destroyed_at) for r in await keys.key_records(EXPIRED)] == [
            (1, NOW)
        ]
        assert [r.destroyed_at for r in await keys.key_records(KEPT)] == [None]

        records = [r async for r in seeded["trail"].records(actions=[AuditAction.retention_erased])]
        assert [(r.body["who"], r.body["child_id"], r.body["effect"]) for r in records] == [
            ("system/retention", EXPIRED, "erased")
        ]
        assert records[0].body["reason"] == "retention period ended: partner_information"
        assert records[0].body["extra"] == {
            "category": "partner_information",
            "rule": "7 years after the last event, when no plan or status was ever opened.",
            "years": 7,
            "counted_from": "last_activity",
            "categories": ["partner_information"],
            "key_versions": [1],
            "person_records": 0,  # this child has none (the tests below count them)
            "household_links": 0,
            "unsent_deliveries": 0,
        }
        assert "2015" not in json.dumps(records[0].body["extra"])  # no dates it came from
        assert (await seeded["trail"].verify()).ok

        opened = await NarrativeOpener(keys).open_all(
            EXPIRED, await seeded["store"].narrative(EXPIRED)
        )
        assert [(o.summary, o.payload) for o in opened] == [("Record erased on 2026-11-28.", {})]

        assert await runner.run() == []
        again = [r async for r in seeded["trail"].records(actions=[AuditAction.retention_erased])]
        assert len(again) == 1
        assert [o.child_id for o in await runner.assess_all()] == [KEPT]

    async def test_erasure_forgets_the_matching_record_and_household(
        self, seeded: dict[str, Any]
    ) -> None:
        """The person index's name tokens and the child's household links go with the key."""
        from sqlalchemy import select

        from hub.identity.tables import household_links, person_records

        async with seeded["engine"].begin() as conn:
            both = (EXPIRED, KEPT)
            await conn.execute(
                person_records.insert(), [person_record_row(f"r-{c}", c, NOW) for c in both]
            )
            await conn.execute(
                household_links.insert(),
                [household_link_row(c, "addr:1", "address", NOW) for c in both],
            )
        await seeded["runner"].run()
        async with seeded["engine"].connect() as conn:
            records = (await conn.execute(select(person_records.c.child_id))).scalars().all()
            links = (await conn.execute(select(household_links.c.a))).scalars().all()
        assert (records, links) == ([KEPT], [KEPT])
        [record] = [
            r async for r in seeded["trail"].records(actions=[AuditAction.retention_erased])
        ]
        assert {k: record.body["extra"][k] for k in ("person_records", "household_links")} == {
            "person_records": 1,
            "household_links": 1,
        }

    async def test_erasure_forgets_links_naming_the_child_at_either_end(
        self, seeded: dict[str, Any]
    ) -> None:
        """Household links are undirected: one that names the child as ``b`` goes too."""
        from sqlalchemy import select

        from hub.identity.tables import household_links

        async with seeded["engine"].begin() as conn:
            await conn.execute(
                household_links.insert(),
                [
                    household_link_row(a, b, "related", NOW)
                    for a, b in ((KEPT, EXPIRED), ("adult:1", EXPIRED), ("adult:1", KEPT))
                ],
            )
        await seeded["runner"].run()
        async with seeded["engine"].connect() as conn:
            links = (await conn.execute(select(household_links.c.a, household_links.c.b))).all()
        assert sorted((a, b) for a, b in links) == [("adult:1", KEPT)]

    async def test_a_run_sweeps_what_an_earlier_erasure_left(self, seeded: dict[str, Any]) -> None:
        """Matching data written no later than a child's erasure (an ingest batch committed
        after the erasure on PostgreSQL, or keys destroyed alone) goes at the next run, with
        its own record. What was written since (a new event, under a new key) stays, and so
        does the new key."""
        from sqlalchemy import select

        from hub.identity.tables import household_links, person_records

        keys: ChildKeyStore = seeded["keys"]
        left, reborn = "ch-left", "ch-reborn"
        await keys.current_keys([left, reborn])
        await keys.destroy_child_key(left)  # both erased at NOW (the keys' clock)
        await keys.destroy_child_key(reborn)
        await keys.current_keys([reborn])  # a new event about it since: version 2, live
        before, since = NOW - timedelta(seconds=1), NOW + timedelta(minutes=5)
        async with seeded["engine"].begin() as conn:
            await conn.execute(
                person_records.insert(),
                [
                    person_record_row("r-left", left, before),
                    person_record_row("r-reborn-old", reborn, before),
                    person_record_row("r-reborn-new", reborn, since),
                    person_record_row("r-kept", KEPT, before),
                ],
            )
            await conn.execute(
                household_links.insert(),
                [
                    household_link_row("adult:1", left, "related", before),
                    household_link_row(reborn, "addr:1", "address", before),
                    household_link_row(reborn, "addr:2", "address", since),
                ],
            )

        await seeded["runner"].run()

        async with seeded["engine"].connect() as conn:
            records = (await conn.execute(select(person_records.c.record_id))).scalars().all()
            links = (await conn.execute(select(household_links.c.a, household_links.c.b))).all()
        assert sorted(records) == ["r-kept", "r-reborn-new"]
        assert [(a, b) for a, b in links] == [(reborn, "addr:2")]
        assert [r.destroyed_at is None for r in await keys.key_records(reborn)] == [False, True]
        swept = {
            r.body["child_id"]: (r.body["reason"], r.body["extra"])
            async for r in seeded["trail"].records(actions=[AuditAction.retention_erased])
            if r.body["child_id"] in (left, reborn)
        }
        reason = "matching data left after the child's erasure"
        assert swept == {
            left: (reason, LEFTOVER_COUNTS),
            reborn: (reason, LEFTOVER_COUNTS),
        }
        assert (await seeded["trail"].verify()).ok
        await seeded["runner"].run()  # nothing left: nothing more recorded
        assert len([r async for r in seeded["trail"].records()]) == 3  # EXPIRED's and these

    async def test_birth_date_from_the_person_index(self, seeded: dict[str, Any]) -> None:
        """The facts read the date of birth the identity index holds for the child."""
        from hub.identity.tables import person_records

        async with seeded["engine"].begin() as conn:
            await conn.execute(
                person_records.insert().values(
                    person_record_row("r1", KEPT, NOW, features="{}", birth_date=date(2012, 2, 29))
                )
            )
        facts = await StoreRetentionFacts(seeded["store"], seeded["keys"]).facts(KEPT)
        assert (facts.birth_date, dict(facts.closures), facts.last_activity) == (
            date(2012, 2, 29),
            {"cp_plan": None},
            date(2015, 3, 1),
        )
