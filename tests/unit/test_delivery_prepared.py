"""A batch's governance context: exactly what ``prepare_read`` gives per child, in few queries."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from hub.delivery.context import ChildSnapshot
from hub.delivery.prepared import prepare_many
from hub.delivery.topics import DELIVERY_ACTOR
from hub.governance import Actor, Governance, SubjectKind
from hub.governance.consent import ConsentDecision, GivenBy
from hub.governance.read_path import prepare_read
from hub.sharing import ChildStatus, Purpose
from hub.store.db import create_engine, migrate
from tests.unit.test_delivery_topics import NOW, governance, write_config

pytestmark = pytest.mark.unit

SW = Actor("sw-1", "northshire-cs", "childrens_services", "social_worker")
PLAN = ChildSnapshot(
    statuses=frozenset({ChildStatus.cp_plan}),
    involved_agencies=frozenset({"northshire-cs"}),
    significant_harm=True,
)
CHILDREN = {f"child-{n:04d}": PLAN if n % 2 else ChildSnapshot() for n in range(1, 9)}
CONSENTING, PROTECTED, GLASS = "child-0002", "child-0003", "child-0004"


async def world(tmp_path: Path) -> tuple[Any, Governance]:
    """Governance over a migrated SQLite file: one child with a consent decision, one
    protected, one with the social worker's break-glass."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    await migrate(engine)
    rules, _ = write_config(tmp_path)
    gov = governance(engine, rules)
    await gov.rules.current()  # the bootstrap pack stored
    await gov.consents.record(
        child_id=CONSENTING, purpose=Purpose.safeguarding, agency_id="northshire-health",
        state=ConsentDecision.refused, given_by=GivenBy.parent, actor=SW, decided_at=NOW,
    )  # fmt: skip
    await gov.protections.protect(
        PROTECTED, kind=SubjectKind.child, reason="Family in a refuge.",
        review_on=date(2025, 9, 1), actor=SW,
    )  # fmt: skip
    await gov.break_glass.use(
        child_id=GLASS,
        actor=SW,
        justification="Child disclosed injuries at school; plan status needed before visit.",
    )
    return engine, gov


async def one_by_one(gov: Governance, actor: Actor) -> dict[str, Any]:
    return {
        c: await prepare_read(
            gov,
            child_id=c,
            actor=actor,
            statuses=s.statuses,
            involved_agencies=s.involved_agencies,
            milestones=s.milestones,
            significant_harm=s.significant_harm,
        )
        for c, s in CHILDREN.items()
    }


class TestPrepareMany:
    @pytest.mark.parametrize("actor", [DELIVERY_ACTOR, SW], ids=["delivery", "person"])
    async def test_same_as_prepare_read_per_child(self, tmp_path: Path, actor: Actor) -> None:
        """Every child's prepared read equals ``prepare_read``'s: consents in force, protection,
        the actor's break-glass (significant harm) and the pack."""
        engine, gov = await world(tmp_path)
        try:
            many = await prepare_many(gov, CHILDREN, actor=actor)
            expected = await one_by_one(gov, actor)
        finally:
            await engine.dispose()
        assert many == expected
        assert {c for c, p in many.items() if p.protected} == {PROTECTED}
        assert bool(many[CONSENTING].child.consents)
        assert (many[GLASS].break_glass is not None) is (actor == SW)

    async def test_queries_per_batch_not_per_child(self, tmp_path: Path) -> None:
        """Nine children cost the queries one child does, plus the per-child consent read of
        the one child holding a consent decision."""
        engine, gov = await world(tmp_path)
        statements: list[str] = []

        def count(*args: Any) -> None:
            statements.append(args[2])

        event.listen(engine.sync_engine, "before_cursor_execute", count)
        counts: list[int] = []
        try:
            for children in ({"child-0001": PLAN}, {"child-0001": PLAN, **CHILDREN}):
                statements.clear()
                await prepare_many(gov, children, actor=DELIVERY_ACTOR)
                counts.append(len(statements))
        finally:
            await engine.dispose()
        assert counts[1] == counts[0] + 1
