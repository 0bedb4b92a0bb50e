"""Specification of the retention schedule's arithmetic and the runner's decisions."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from hub.governance.config import load_retention
from hub.governance.retention import (
    ChildRetentionFacts,
    RetentionRunner,
    Verdict,
    add_years,
    assess,
)

pytestmark = pytest.mark.unit

SCHEDULE = load_retention()
TODAY = date(2026, 11, 28)


def facts(
    *,
    birth: date | None = date(2001, 11, 28),
    closures: dict[str, date | None] | None = None,
    last: date = date(2010, 1, 1),
    child_id: str = "ch-0001",
) -> ChildRetentionFacts:
    return ChildRetentionFacts(
        child_id=child_id, birth_date=birth, closures=closures or {}, last_activity=last
    )


class TestAddYears:
    """Anniversaries, including those of a 29 February."""

    @pytest.mark.parametrize(
        ("start", "years", "expected"),
        [
            (date(2001, 11, 28), 25, date(2026, 11, 28)),
            (date(2000, 2, 29), 25, date(2025, 3, 1)),  # common year: 1 March
            (date(2000, 2, 29), 28, date(2028, 2, 29)),  # leap year: the day itself
            (date(1999, 12, 31), 1, date(2000, 12, 31)),
        ],
    )
    def test_anniversary(self, start: date, years: int, expected: date) -> None:
        """The same day ``years`` later; a leap-day start falls on 1 March in a common year."""
        assert add_years(start, years) == expected


class TestAssess:
    """A child is due only when every period that covers them has ended."""

    def test_child_in_need_due_on_the_25th_birthday(self) -> None:
        """Due on the birthday itself, kept the day before."""
        child = facts(closures={"child_in_need": date(2012, 5, 1)})
        due = assess(child, SCHEDULE, TODAY)
        before = assess(child, SCHEDULE, date(2026, 11, 27))
        assert (due.verdict, due.due_on, due.governing and due.governing.period.category) == (
            Verdict.due,
            date(2026, 11, 28),
            "child_in_need",
        )
        assert (before.verdict, before.due_on) == (Verdict.kept, date(2026, 11, 28))

    def test_leap_day_birth_is_due_on_1_march(self) -> None:
        """Born 29 February 2000: the 25th birthday counts as 1 March 2025."""
        child = facts(birth=date(2000, 2, 29), closures={"child_in_need": date(2010, 1, 1)})
        assert assess(child, SCHEDULE, date(2025, 2, 28)).verdict is Verdict.kept
        on = assess(child, SCHEDULE, date(2025, 3, 1))
        assert (on.verdict, on.due_on) == (Verdict.due, date(2025, 3, 1))

    def test_looked_after_is_kept_longer(self) -> None:
        """Also looked after: the 75th birthday governs, not the 25th."""
        child = facts(
            closures={"child_in_need": date(2012, 5, 1), "looked_after": date(2015, 1, 1)}
        )
        outcome = assess(child, SCHEDULE, TODAY)
        assert (outcome.verdict, outcome.due_on, outcome.governing.period.category) == (  # type: ignore[union-attr]
            Verdict.kept,
            date(2076, 11, 28),
            "looked_after",
        )
        assert sorted(e.period.category for e in outcome.ends) == ["child_in_need", "looked_after"]

    def test_child_protection_counts_from_the_last_closure(self) -> None:
        """35 years after the latest plan ended."""
        child = facts(closures={"cp_plan": date(1991, 6, 30)})
        outcome = assess(child, SCHEDULE, TODAY)
        assert (outcome.verdict, outcome.due_on) == (Verdict.due, date(2026, 6, 30))

    def test_an_open_plan_keeps_the_child(self) -> None:
        """A plan still open cannot have ended its period."""
        outcome = assess(facts(closures={"cp_plan": None}), SCHEDULE, TODAY)
        assert outcome.verdict is Verdict.kept
        assert outcome.due_on is None
        assert outcome.governing is not None and outcome.governing.why_not == "still open"

    def test_unknown_birth_date_is_undetermined(self) -> None:
        """A birth-counted period without a date of birth keeps the child, flagged."""
        outcome = assess(facts(birth=None, closures={"child_in_need": None}), SCHEDULE, TODAY)
        assert outcome.verdict is Verdict.undetermined
        assert outcome.governing is not None
        assert outcome.governing.why_not == "no date of birth known"

    def test_partner_information_seven_years_after_last_activity(self) -> None:
        """No status ever: seven years after the last event."""
        assert assess(facts(last=date(2019, 11, 28)), SCHEDULE, TODAY).verdict is Verdict.due
        kept = assess(facts(last=date(2019, 11, 29)), SCHEDULE, TODAY)
        assert (kept.verdict, kept.due_on) == (Verdict.kept, date(2026, 11, 29))


class ListSource:
    """Retention facts from a list (the port's fake)."""

    def __init__(self, *items: ChildRetentionFacts) -> None:
        self.items = {f.child_id: f for f in items}

    async def leftover_children(self) -> list[str]:
        return []

    async def live_children(self) -> list[str]:
        return sorted(self.items)

    async def facts(self, child_id: str) -> ChildRetentionFacts:
        return self.items[child_id]


class ExplodingStore:
    """Any use of the engine, keys or trail fails the test: nothing due, nothing touched."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"touched {name}")


class TestRunnerWithNothingDue:
    """Nothing due: nothing erased, nothing audited, nothing touched."""

    async def test_nothing_due_does_nothing(self) -> None:
        """Kept children only: the run returns no one and touches no store."""
        boom = ExplodingStore()
        runner = RetentionRunner(
            engine=boom,  # type: ignore[arg-type]
            keys=boom,  # type: ignore[arg-type]
            trail=boom,  # type: ignore[arg-type]
            schedule=SCHEDULE,
            source=ListSource(
                facts(last=date(2025, 1, 1)), facts(child_id="ch-0002", closures={"cp_plan": None})
            ),
            clock=lambda: datetime(2026, 11, 28, 3, 0, tzinfo=UTC),
        )
        assert await runner.run() == []
        assert await runner.run(dry_run=True) == []

    async def test_dry_run_lists_without_erasing(self) -> None:
        """A due child is listed with its category and due date; nothing is touched."""
        boom = ExplodingStore()
        runner = RetentionRunner(
            engine=boom,  # type: ignore[arg-type]
            keys=boom,  # type: ignore[arg-type]
            trail=boom,  # type: ignore[arg-type]
            schedule=SCHEDULE,
            source=ListSource(facts(last=date(2018, 1, 1))),
            clock=lambda: datetime(2026, 11, 28, 3, 0, tzinfo=UTC),
        )
        [due] = await runner.run(dry_run=True)
        assert due.as_line() == "ch-0001\tdue\tpartner_information\t2025-01-01"

    async def test_held_child_is_kept(self) -> None:
        """A child on the hold list is kept even when due."""
        boom = ExplodingStore()
        runner = RetentionRunner(
            engine=boom,  # type: ignore[arg-type]
            keys=boom,  # type: ignore[arg-type]
            trail=boom,  # type: ignore[arg-type]
            schedule=SCHEDULE,
            source=ListSource(facts(last=date(2018, 1, 1))),
            clock=lambda: datetime(2026, 11, 28, 3, 0, tzinfo=UTC),
            holds=frozenset({"ch-0001"}),
        )
        assert await runner.run() == []
        [outcome] = await runner.assess_all()
        assert (outcome.verdict, outcome.held) == (Verdict.kept, True)
