"""The child snapshot a delivery is decided with, read from the narrative store."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from contracts import Envelope, parse_envelope
from contracts.examples import example_envelope
from hub.delivery.context import ChildSnapshot, NarrativeChildFacts
from hub.domain.narrative import entry_for
from hub.sharing import ChildStatus, EventFacts
from hub.store.db import create_engine, migrate
from hub.store.repository import PositionedEntry, SqlStore
from tests.unit.test_delivery_topics import CHILD, NOW, police_concern

pytestmark = pytest.mark.unit

OTHER = "child-0002"


class NoKeys:
    """A key store for plain (unsealed) rows: no key records, never asked for a key."""

    async def key_records(self, child_id: str) -> list[Any]:
        return []


def agency_event(agency_id: str, kind: str, **overrides: Any) -> dict[str, Any]:
    """An example envelope from ``agency_id`` (of ``kind``), with no sensitivity tags."""
    return example_envelope(
        agency_id=agency_id,
        agency_kind=kind,
        source=f"urn:agency:{agency_id}",
        sensitivity=[],
        lawful_basis="public_task",
        **overrides,
    )


def plan_started() -> Envelope:
    """Children's services start a child-protection plan (invented child)."""
    return parse_envelope(
        agency_event(
            "northshire-cs",
            "childrens_services",
            type="involvement.started",
            id="northshire-cs:evt-0001",
        )
    )


class TestNarrativeChildFacts:
    async def test_statuses_involvement_and_event_facts(self, tmp_path: Path) -> None:
        """A child-protection plan opened by children's services: status cp_plan, that
        agency involved, significant harm, and each stored event's facts by id."""
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
        await migrate(engine)
        store = SqlStore(engine)
        plan = plan_started()
        concern = police_concern()
        entries = [
            PositionedEntry(entry_for(e, CHILD), "hub.events", 0, n)
            for n, e in enumerate((plan, concern))
        ]
        try:
            async with engine.begin() as conn:
                await store.apply_entries(conn, "narrative", entries, now=NOW)
            snapshot = await NarrativeChildFacts(store, NoKeys())(CHILD)  # type: ignore[arg-type]
            empty = await NarrativeChildFacts(store, NoKeys())("child-unknown")  # type: ignore[arg-type]
        finally:
            await engine.dispose()
        assert snapshot == ChildSnapshot(
            statuses=frozenset({ChildStatus.cp_plan}),
            involved_agencies=frozenset({"northshire-cs"}),
            milestones={},  # no strategy meeting or other milestone contact recorded
            significant_harm=True,
            events={plan.id: EventFacts.of(plan), concern.id: EventFacts.of(concern)},
        )
        assert empty == ChildSnapshot()


def school_concern() -> Envelope:
    """A school raises a concern (invented child): the school is then involved."""
    return parse_envelope(
        agency_event("northshire-primary", "schools", id="northshire-primary:evt-0001")
    )


def strategy_meeting() -> Envelope:
    """Children's services record a strategy meeting (a milestone; invented child)."""
    envelope = agency_event(
        "northshire-cs", "childrens_services", type="contact.recorded", id="northshire-cs:evt-0002"
    )
    envelope["data"]["contact_type"] = "strategy_meeting"
    return parse_envelope(envelope)


class TestSituations:
    async def test_each_childs_situation_from_one_query(self, tmp_path: Path) -> None:
        """``situations`` gives each child the statuses, involved agencies, milestones and
        harm that the child's own read gives (no event facts), reading only the entries
        they come from, in one query for every child (one with no entries the empty one)."""
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
        await migrate(engine)
        store = SqlStore(engine)
        placed = [
            (CHILD, plan_started()),
            (CHILD, police_concern(1)),
            (CHILD, strategy_meeting()),
            (OTHER, police_concern(2)),
            (OTHER, school_concern()),
        ]
        entries = [
            PositionedEntry(entry_for(e, child), "hub.events", 0, n)
            for n, (child, e) in enumerate(placed)
        ]
        facts = NarrativeChildFacts(store, NoKeys())  # type: ignore[arg-type]
        statements: list[str] = []
        wanted = [OTHER, CHILD, "child-unknown", CHILD]
        try:
            async with engine.begin() as conn:
                await store.apply_entries(conn, "narrative", entries, now=NOW)
            alone = {c: await facts(c) for c in wanted}
            event.listen(
                engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2])
            )
            situations = await facts.situations(wanted)
        finally:
            await engine.dispose()
        assert situations == {c: replace(s, events={}) for c, s in alone.items()}
        assert situations["child-unknown"] == ChildSnapshot()
        assert situations[CHILD].significant_harm and situations[CHILD].milestones
        assert situations[OTHER].involved_agencies == frozenset({"northshire-primary"})
        assert len(statements) == 1

    async def test_no_children_no_query(self) -> None:
        """No children asked for: an empty answer, the store untouched."""
        assert await NarrativeChildFacts(None, NoKeys()).situations([]) == {}  # type: ignore[arg-type]
