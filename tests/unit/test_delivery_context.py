"""The child snapshot a delivery is decided with, read from the narrative store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contracts import parse_envelope
from contracts.examples import example_envelope
from hub.delivery.context import ChildSnapshot, NarrativeChildFacts
from hub.domain.narrative import entry_for
from hub.sharing import ChildStatus, EventFacts
from hub.store.db import create_engine, migrate
from hub.store.repository import PositionedEntry, SqlStore
from tests.unit.test_delivery_topics import CHILD, NOW, police_concern

pytestmark = pytest.mark.unit


class NoKeys:
    """A key store for plain (unsealed) rows: no key records, never asked for a key."""

    async def key_records(self, child_id: str) -> list[Any]:
        return []


class TestNarrativeChildFacts:
    async def test_statuses_involvement_and_event_facts(self, tmp_path: Path) -> None:
        """A child-protection plan opened by children's services: status cp_plan, that
        agency involved, significant harm, and each stored event's facts by id."""
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
        await migrate(engine)
        store = SqlStore(engine)
        plan = parse_envelope(
            example_envelope(
                type="involvement.started",
                id="northshire-cs:evt-0001",
                agency_id="northshire-cs",
                agency_kind="childrens_services",
                source="urn:agency:northshire-cs",
                sensitivity=[],
                lawful_basis="public_task",
            )
        )
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
