"""Retention on a schedule: find children whose retention period has ended and erase them.

The schedule (``retention.yaml``, ``load_retention``) says per category which children it covers
(the statuses they ever held: ``cp_plan``, ``looked_after``, ``child_in_need``, ``adoption``, or
``none``), how many years, and from when (birth, closure of that status, last activity, the
adoption order). A child is *due* when every period that covers them has ended; the longest
wins, and a period that cannot be computed (no birth date known, a plan still open) keeps the
child. Erasure is crypto-shredding: the child's data keys are destroyed, so everything sealed
under them, on the log, in the store and in backups, becomes unreadable.

Each erasure and its audit record commit in one transaction (``hub.governance.erasure``, the
path an erasure by hand takes too), so there is never an erasure without its record or a
record without its erasure. A child with no live data key is already erased and skipped, so a
second run does nothing. The audit record holds the category, the rule and the period in
years, never the dates it was computed from (a due date counted from birth would give away
the date of birth of the child it erased).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, cast

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.crypto.data_keys import ChildKeyStore
from hub.crypto.dead_letters import DeadLetterSealer
from hub.crypto.narrative import read_chronology
from hub.crypto.tables import child_data_keys
from hub.domain.chronology import involvement_spans
from hub.governance.audit import AuditAction, AuditEntry
from hub.governance.audit_store import AuditTrail
from hub.governance.config import RetentionPeriod, RetentionSchedule
from hub.governance.erasure import ErasedChild, erase_child, leftover_children, sweep_child
from hub.identity.sealing import RecordSealer
from hub.identity.store import IdentityStore
from hub.observability import get_logger
from hub.periodic import run_every
from hub.store.repository import SqlStore
from hub.store.schema import children
from hub.store.times import as_utc

__all__ = [
    "RETENTION_ACTOR",
    "ChildRetentionFacts",
    "PeriodEnd",
    "RetentionFactsSource",
    "RetentionOutcome",
    "RetentionRunner",
    "StoreRetentionFacts",
    "Verdict",
    "add_years",
    "assess",
    "build_retention_runner",
    "outcomes_table",
    "run_retention_periodically",
]

log = get_logger(__name__)

RETENTION_ACTOR = "system/retention"
"""Who an erasure's audit record names."""

_STATUS_OF_INVOLVEMENT = {
    "child_protection_plan": "cp_plan",
    "looked_after": "looked_after",
    "child_in_need": "child_in_need",
    "adoption": "adoption",
}


def add_years(start: date, years: int) -> date:
    """The anniversary ``years`` after ``start``; 29 February falls on 1 March in common years."""
    try:
        return start.replace(year=start.year + years)
    except ValueError:  # 29 February in a common year
        return date(start.year + years, 3, 1)


@dataclass(frozen=True, slots=True)
class ChildRetentionFacts:
    """What retention needs to know about a child; dates are UTC calendar days.

    ``closures`` maps each status the child ever held to the day its last span ended, or None
    while one is still open.
    """

    child_id: str
    birth_date: date | None
    closures: Mapping[str, date | None]
    last_activity: date
    adoption_order: date | None = None

    @property
    def statuses(self) -> tuple[str, ...]:
        return tuple(sorted(self.closures))


@dataclass(frozen=True, slots=True)
class PeriodEnd:
    """One period that covers a child and the day it ends (None: it cannot end yet)."""

    period: RetentionPeriod
    due_on: date | None
    why_not: str = ""


class Verdict(StrEnum):
    """What the schedule says about a child today."""

    due = "due"
    kept = "kept"
    undetermined = "undetermined"


@dataclass(frozen=True, slots=True)
class RetentionOutcome:
    """A child's verdict, the period that governs it and when it ends (or why it cannot)."""

    child_id: str
    verdict: Verdict
    governing: PeriodEnd | None
    ends: tuple[PeriodEnd, ...]
    held: bool = False

    @property
    def due_on(self) -> date | None:
        return None if self.governing is None else self.governing.due_on

    def as_line(self) -> str:
        """One line for the dry-run listing (ids, category and due date only)."""
        g = self.governing
        if g is None:
            return f"{self.child_id}\t{self.verdict}\t-\t-"
        due = g.due_on.isoformat() if g.due_on else f"never yet ({g.why_not})"
        return f"{self.child_id}\t{self.verdict}\t{g.period.category}\t{due}"


def _start(period: RetentionPeriod, facts: ChildRetentionFacts) -> tuple[date | None, str]:
    """The day a period is counted from, or None and why."""
    match period.counted_from:
        case "birth":
            return facts.birth_date, "no date of birth known"
        case "last_activity":
            return facts.last_activity, ""
        case "adoption_order":
            return facts.adoption_order, "no adoption order date known"
        case _:  # closure
            covered = [s for s in period.applies_to if s in facts.closures]
            if not covered:
                return facts.last_activity, ""
            ends = [facts.closures[s] for s in covered]
            if any(e is None for e in ends):
                return None, "still open"
            return max(e for e in ends if e is not None), ""


def assess(
    facts: ChildRetentionFacts, schedule: RetentionSchedule, today: date
) -> RetentionOutcome:
    """Whether a child is due for erasure today: due only when every covering period ended."""
    ends: list[PeriodEnd] = []
    for period in schedule.for_statuses(facts.statuses):
        start, why = _start(period, facts)
        due_on = None if start is None else add_years(start, period.years)
        ends.append(PeriodEnd(period, due_on, "" if start else why))
    if not ends:
        return RetentionOutcome(facts.child_id, Verdict.undetermined, None, ())
    open_ended = [e for e in ends if e.due_on is None]
    if open_ended:
        still_open = all(e.why_not == "still open" for e in open_ended)
        verdict = Verdict.kept if still_open else Verdict.undetermined
        return RetentionOutcome(facts.child_id, verdict, open_ended[0], tuple(ends))
    governing = max(ends, key=lambda e: cast(date, e.due_on))
    verdict = Verdict.due if cast(date, governing.due_on) <= today else Verdict.kept
    return RetentionOutcome(facts.child_id, verdict, governing, tuple(ends))


class RetentionFactsSource(Protocol):
    """Where children's retention facts come from (the store, or a list in tests)."""

    async def live_children(self) -> list[str]:
        """Every child that still has a live data key (others are already erased)."""
        ...

    async def facts(self, child_id: str) -> ChildRetentionFacts:
        """The facts of one child."""
        ...

    async def leftover_children(self) -> list[str]:
        """Children an earlier erasure left matching data of (``erasure.leftover_children``)."""
        ...


def _day(value: datetime) -> date:
    return as_utc(value).date()  # type: ignore[union-attr]


class StoreRetentionFacts:
    """Retention facts from the store: the narrative (opened), the person index, the keys."""

    def __init__(self, store: SqlStore, keys: ChildKeyStore) -> None:
        self._store = store
        self._keys = keys

    async def live_children(self) -> list[str]:
        k = child_data_keys.c
        async with self._store.engine.connect() as conn:
            rows = await conn.execute(
                select(children.c.child_id)
                .where(
                    select(k.child_id)
                    .where(and_(k.child_id == children.c.child_id, k.destroyed_at.is_(None)))
                    .exists()
                )
                .order_by(children.c.child_id)
            )
            return [r.child_id for r in rows]

    async def leftover_children(self) -> list[str]:
        return await leftover_children(self._store.engine)

    async def facts(self, child_id: str) -> ChildRetentionFacts:
        entries = await read_chronology(self._store, self._keys, child_id)
        closures: dict[str, date | None] = {}
        for span in involvement_spans(entries):
            status = _STATUS_OF_INVOLVEMENT.get(span.involvement_type)
            if status is None:
                continue
            previous = closures.get(status, date.min)
            if span.ended_on is None or previous is None:
                closures[status] = None
            else:
                closures[status] = max(previous, span.ended_on)
        async with self._store.engine.connect() as conn:
            created = (
                await conn.execute(
                    select(children.c.created_at).where(children.c.child_id == child_id)
                )
            ).scalar_one()
        births = await IdentityStore(self._store.engine, RecordSealer(self._keys)).birth_dates(
            child_id
        )
        birth = births[0] if births else None
        times = [_day(created)] + [max(_day(e.occurred_at), _day(e.recorded_at)) for e in entries]
        return ChildRetentionFacts(
            child_id=child_id,
            birth_date=birth,
            closures=closures,
            last_activity=max(times),
        )


@dataclass
class RetentionRunner:
    """Applies the schedule: lists (dry run) or erases and audits every child that is due."""

    engine: AsyncEngine
    keys: ChildKeyStore
    trail: AuditTrail
    schedule: RetentionSchedule
    source: RetentionFactsSource
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    holds: frozenset[str] = frozenset()

    async def assess_all(self) -> list[RetentionOutcome]:
        """The verdict on every child that still has a live key, as of now."""
        today = self.clock().astimezone(UTC).date()
        out: list[RetentionOutcome] = []
        for child_id in await self.source.live_children():
            outcome = assess(await self.source.facts(child_id), self.schedule, today)
            if child_id in self.holds:
                outcome = RetentionOutcome(
                    child_id, Verdict.kept, outcome.governing, outcome.ends, held=True
                )
            out.append(outcome)
        return out

    async def due(self) -> list[RetentionOutcome]:
        """The children that would be erased now (the dry run)."""
        return [o for o in await self.assess_all() if o.verdict is Verdict.due]

    async def run(self, *, dry_run: bool = False) -> list[RetentionOutcome]:
        """Erase every due child (unless ``dry_run``); returns those erased (or due)."""
        due = await self.due()
        if dry_run:
            return due
        erased: list[RetentionOutcome] = []
        for outcome in due:
            if await self._erase(outcome):
                erased.append(outcome)
        swept = await self.sweep_leftovers()
        log.info("retention.run_finished", erased=len(erased), due=len(due), leftovers=swept)
        return erased

    async def leftovers(self) -> list[str]:
        """The children an earlier erasure left matching data of, which the next run sweeps
        (the dry run lists them)."""
        return await self.source.leftover_children()

    async def sweep_leftovers(self) -> int:
        """Erase what earlier erasures left (the source's ``leftover_children``), each
        audited; how many children had some. Run after every retention run."""
        swept = 0
        for child_id in await self.leftovers():
            done = await sweep_child(self.engine, self.trail, child_id, audit=_leftovers_entry)
            swept += done is not None
        return swept

    async def _erase(self, outcome: RetentionOutcome) -> bool:
        """Erase the child and append the audit record, in one transaction (``erase_child``)."""
        governing = outcome.governing
        assert governing is not None
        erased = await erase_child(
            self.engine,
            self.keys,
            self.trail,
            outcome.child_id,
            audit=lambda e: _audit_entry(outcome, governing, e),
            now=self.clock(),
        )
        if erased is None:  # erased meanwhile by another run or by hand
            return False
        log.info(
            "retention.child_erased",
            child_id=outcome.child_id,
            category=governing.period.category,
            key_versions=list(erased.key_versions),
        )
        return True


def _audit_entry(outcome: RetentionOutcome, end: PeriodEnd, erased: ErasedChild) -> AuditEntry:
    """The retention period that ended and what went (as an erasure by hand records it)."""
    period = end.period
    return AuditEntry(
        action=AuditAction.retention_erased,
        who=RETENTION_ACTOR,
        child_id=outcome.child_id,
        effect="erased",
        reason=f"retention period ended: {period.category}",
        extra={
            "category": period.category,
            "rule": period.keep_until,
            "years": period.years,
            "counted_from": period.counted_from,
            "categories": sorted({e.period.category for e in outcome.ends}),
            **erased.counts(),
        },
    )


def _leftovers_entry(erased: ErasedChild) -> AuditEntry:
    """The record of a sweep: what an earlier erasure of the child left and this one deleted."""
    return AuditEntry(
        action=AuditAction.retention_erased,
        who=RETENTION_ACTOR,
        child_id=erased.child_id,
        effect="erased",
        reason="matching data left after the child's erasure",
        extra=erased.counts(),
    )


async def run_retention_periodically(
    runner: RetentionRunner,
    *,
    every_seconds: float = 86_400.0,
    dead_letters: DeadLetterSealer | None = None,
    dead_letter_days: int = 90,
) -> None:
    """Run retention for ever (cancelled at shutdown); a failure is logged and retried later.

    With ``dead_letters``, month keys of dead letters older than ``dead_letter_days`` are
    destroyed on each pass too.
    """

    async def step() -> None:
        await runner.run()
        if dead_letters is not None:
            cutoff = runner.clock().astimezone(UTC).date() - timedelta(days=dead_letter_days)
            await dead_letters.shred_before(cutoff)

    await run_every(step, every_seconds=every_seconds, failed="retention.run_failed")


def outcomes_table(outcomes: Iterable[RetentionOutcome]) -> list[dict[str, Any]]:
    """JSON-ready rows for the CLI: child id, verdict, category, due date."""
    return [
        {
            "child_id": o.child_id,
            "verdict": str(o.verdict),
            "category": None if o.governing is None else o.governing.period.category,
            "due_on": None if o.due_on is None else o.due_on.isoformat(),
            "held": o.held,
        }
        for o in outcomes
    ]


def build_retention_runner(
    engine: AsyncEngine,
    keys: ChildKeyStore,
    *,
    keys_dir: Path,
    clock: Callable[[], datetime] | None = None,
) -> RetentionRunner:
    """The runner over a hub's store: its audit trail (signed checkpoints) and schedule.

    Pass the process's own ``ChildKeyStore`` (``hub.security.keys``) so an erasure evicts the
    keys that process has cached.
    """
    from hub.governance import Governance
    from hub.governance.config import load_governance_settings

    gov = Governance.over(engine, load_governance_settings(), keys_dir=keys_dir, clock=clock)
    return RetentionRunner(
        engine=engine,
        keys=keys,
        trail=gov.trail,
        schedule=gov.retention,
        source=StoreRetentionFacts(SqlStore(engine), keys),
        clock=clock or (lambda: datetime.now(UTC)),
    )
