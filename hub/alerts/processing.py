"""The alert engine's transactional step: a batch of `hub.events` facts in, alerts out.

``AlertProcessor.handle`` is what a consumer over `hub.events` calls per batch: it skips
records below the saved log positions (read once per batch), loads the children's states
once, evaluates each event in log order, and writes alerts, states and positions together in
one transaction per part of the batch (a part ending at a record that raises or withdraws an
alert; a later part goes on from the states the earlier ones left, loaded again under lock on
PostgreSQL). A police incident (or a
correction or retraction) is also evaluated against every other child whose state shares one
of its household keys, found through the store's household-key index, so a brother not named
in the notice gets his school's notice too. The consumer commits Kafka offsets only after it
returns; a crash in between replays the batch, which the positions and the deterministic
alert ids make harmless. A part's webhooks are queued in its own transaction (``outbox``),
so no crash can fall between an alert and its webhooks. Once a part has committed, the
store's ``changes`` are announced, waking this process's alert streams, and its outcomes are
handed to the caller's ``on_committed`` (the consumer counts them there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.alerts.calendar import SchoolCalendar
from hub.alerts.engine import EngineOutcome, evaluate, evaluate_merge, evaluate_unmerge
from hub.alerts.escalation import escalations_due
from hub.alerts.facts import HubEventFacts
from hub.alerts.model import AlertEscalated, AlertRaised, AlertWithdrawn
from hub.alerts.rules import AlertRules
from hub.alerts.state import ChildAlertState, absorb, give_back, take_back
from hub.alerts.store import AlertStore

__all__ = ["AlertProcessor", "IdentityChange", "OnCommitted", "Outbox", "PositionedFacts"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class IdentityChange:
    """A merge (``merged``: ``other`` is now ``survivor``) or its undoing (``unmerged``:
    ``other`` is restored from ``survivor``), as decided on `hub.events` (``merge_id``)."""

    kind: Literal["merged", "unmerged"]
    survivor: str
    other: str
    merge_id: str


@dataclass(frozen=True, slots=True)
class PositionedFacts:
    """A `hub.events` record's facts and log position; ``facts`` None for a record that was
    dead-lettered, or an identity decision (``identity`` then says which, if the engine
    acts on it); its position advances either way."""

    facts: HubEventFacts | None
    topic: str
    partition: int
    offset: int
    identity: IdentityChange | None = None


OnCommitted = Callable[[list[EngineOutcome]], Awaitable[None]]
"""Called with a part's outcomes once that part of a batch has committed."""

Outbox = Callable[[AsyncConnection, list[EngineOutcome]], Awaitable[None]]
"""Called with a part's outcomes inside its transaction, before it commits (what must commit
with the alerts or not at all: the webhooks they queue)."""


@dataclass(slots=True)
class _Batch:
    """What one part of a batch hands the next: the records not yet applied when the batch
    began (``fresh``, by the positions read once) and where the next part starts in them, the
    states loaded and as the parts so far left them (a child absent: never saved), and the
    household keys each loaded child's index rows hold (``saved``)."""

    opened: bool = False
    fresh: list[PositionedFacts] = field(default_factory=list)
    start: int = 0
    states: dict[str, ChildAlertState] = field(default_factory=dict)
    saved: dict[str, tuple[str, ...]] = field(default_factory=dict)


class AlertProcessor:
    """Evaluates the alert rules over `hub.events` batches and escalates overdue alerts."""

    def __init__(
        self,
        *,
        store: AlertStore,
        rules: AlertRules,
        calendar: SchoolCalendar,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        outbox: Outbox | None = None,
    ) -> None:
        self._store = store
        self._rules = rules
        self._calendar = calendar
        self._clock = clock
        self._outbox = outbox

    async def handle(
        self, items: Sequence[PositionedFacts], on_committed: OnCommitted | None = None
    ) -> list[EngineOutcome]:
        """Apply one batch (records in log order); returns the alerts raised and withdrawn.

        The records are applied in order, in one transaction, up to the first that raises or
        withdraws an alert: that part commits (with its states and positions), is announced
        and is handed to ``on_committed`` at once, and the rest of the batch follows in the
        next part. So an alert early in a long batch reaches its recipients' streams (and the
        consumer's webhook queue) without waiting for the rest of the batch to be evaluated,
        and a batch raising nothing is still one transaction. A part that fails after an
        earlier one committed leaves that one's outcomes already handed over: on redelivery
        the parts already committed are skipped by their positions, so they are never
        produced again. The consumer commits offsets only after the whole batch.

        The positions are read once per batch. On SQLite (one alerts process per database
        file) each child's state is loaded once (the first part loads the batch's children, a
        household incident its other members): a later part goes on from the states as the
        earlier parts left them, as the whole batch did from the states loaded at its start
        when it was one transaction. On PostgreSQL ``load_states`` locks the rows it reads
        until the commit, and another consumer may write a state between two parts (a
        household incident reaches children of other partitions), so each part loads, and
        locks, the states of the rest of the batch again.
        """
        if not items:
            return []
        batch = _Batch()
        outcomes: list[EngineOutcome] = []
        while True:
            produced = await self._handle_part(items, batch)
            outcomes += produced
            if produced and on_committed is not None:
                await on_committed(produced)
            if batch.start >= len(batch.fresh):
                return outcomes

    async def _handle_part(
        self, items: Sequence[PositionedFacts], batch: _Batch
    ) -> list[EngineOutcome]:
        """Apply ``batch.fresh[batch.start:]`` in one transaction up to the first record that
        produces an outcome (on the first part, first read the positions and load the states
        of the batch); returns the outcomes, ``batch`` left where the next part starts."""
        now = self._clock()
        outcomes: list[EngineOutcome] = []
        states, saved = batch.states, batch.saved
        async with self._store.engine.begin() as conn:
            if not batch.opened:
                done = await self._store.positions(conn)
                batch.fresh = [i for i in items if i.offset >= done.get((i.topic, i.partition), 0)]
            if not batch.opened or self._store.locks_states:
                # A later part on PostgreSQL loads (and so locks) the rest's states again: the
                # locks of the states carried from the last part ended at its commit, and
                # another consumer may have written one since (a household incident).
                states.clear()
                saved.clear()
                rest = batch.fresh[batch.start :]
                children = {i.facts.child_id for i in rest if i.facts is not None}
                children |= {
                    c for i in rest if i.identity for c in (i.identity.survivor, i.identity.other)
                }
                await self._load(conn, children, batch)
                batch.opened = True
            changed: dict[str, ChildAlertState] = {}
            positions: dict[tuple[str, int], int] = {}
            end = len(batch.fresh)
            for count, n in enumerate(range(batch.start, end)):
                if count % 25 == 24:
                    await asyncio.sleep(0)  # let the consumer's heartbeats run between events
                item = batch.fresh[n]
                key = (item.topic, item.partition)
                positions[key] = max(positions.get(key, 0), item.offset + 1)
                if item.identity is not None:
                    moved, produced = await self._identity(conn, item.identity, batch, now)
                elif item.facts is not None:
                    moved, produced = await self._event(conn, item.facts, batch, now)
                else:
                    continue  # dead-lettered, or an identity decision the engine ignores
                for child_id, state in moved.items():
                    states[child_id] = changed[child_id] = state
                outcomes += produced
                if outcomes and n + 1 < end:
                    end = n + 1  # commit this alert now; the rest follows in the next part
                    break
            recorded = await self._store.apply(
                conn, outcomes, positions=positions, states=changed, indexed=saved, now=now
            )
            if outcomes and self._outbox is not None:
                await self._outbox(conn, outcomes)  # webhooks commit with their alerts
        batch.start = end
        for child_id, state in changed.items():
            saved[child_id] = state.household_keys  # as committed: the index says so now
        if recorded:
            self._store.changes.announce()  # committed: wake this process's alert streams
        for outcome in outcomes:
            if isinstance(outcome, AlertRaised):
                log.info(
                    "alert.raised",
                    alert_id=outcome.alert_id,
                    rule_id=outcome.rule_id,
                    child_id=outcome.child_id,
                )
            elif isinstance(outcome, AlertWithdrawn):
                log.info(
                    "alert.withdrawn",
                    alert_id=outcome.alert_id,
                    rule_id=outcome.rule_id,
                    cause_event_id=outcome.cause_event_id,
                )
        return outcomes

    async def _event(
        self, conn: AsyncConnection, facts: HubEventFacts, batch: _Batch, now: datetime
    ) -> tuple[dict[str, ChildAlertState], list[EngineOutcome]]:
        """The states one agency event changes (its child's, or the survivor's of a merged
        child, and the household's it reaches) and the alerts it raises or withdraws."""
        states = batch.states
        linked_to = facts.child_id
        top = await self._top(conn, linked_to, batch)
        if top != linked_to:  # linked to a merged child: its survivor holds its story
            facts = replace(facts, child_id=top)
        moved: dict[str, ChildAlertState] = {}
        outcomes: list[EngineOutcome] = []
        for child_id in [facts.child_id, *await self._household(conn, facts, batch)]:
            state = states.get(child_id) or ChildAlertState(child_id=child_id)
            new_state, produced = evaluate(
                state,
                facts,
                self._rules,
                now=now,
                calendar=self._calendar,
                on_behalf_of=linked_to if child_id == top != linked_to else None,
            )
            if new_state is not state:
                states[child_id] = moved[child_id] = new_state
            outcomes += produced
        return moved, outcomes

    async def _identity(
        self, conn: AsyncConnection, change: IdentityChange, batch: _Batch, now: datetime
    ) -> tuple[dict[str, ChildAlertState], list[EngineOutcome]]:
        """The states a merge or un-merge changes, and the alerts it raises or withdraws.

        A merge joins the merged child's state into the state that holds its survivor's
        story now (the survivor's, or that of the child it was merged into since), notes it
        there as having come through the survivor, and points the merged child at the
        survivor. An un-merge gives back, from the state that holds the restored child's
        part now, what came from it (and from children merged into it), and the restored
        child's state takes back what happened to its part meanwhile."""
        states = batch.states
        await self._load(conn, {change.survivor, change.other} - states.keys(), batch)
        top_id = await self._top(conn, change.survivor, batch)
        top = states.get(top_id) or ChildAlertState(child_id=top_id)
        survivor = states.get(change.survivor) or ChildAlertState(child_id=change.survivor)
        other = states.get(change.other) or ChildAlertState(child_id=change.other)
        moved: dict[str, ChildAlertState] = {}
        if change.kind == "merged":
            if other.merged_into is not None or other.child_id == top_id:
                return {}, []  # already merged (a redelivered decision), or into itself
            new, produced = evaluate_merge(
                top, other, self._rules, now=now, calendar=self._calendar
            )
            if top_id != change.survivor:  # the survivor was merged on since: noted via it
                part = new.absorbed[other.child_id].model_copy(update={"via": change.survivor})
                new = new.model_copy(update={"absorbed": {**new.absorbed, other.child_id: part}})
                moved[change.survivor] = absorb(survivor, other)
            moved[new.child_id] = new
            moved[other.child_id] = other.model_copy(update={"merged_into": change.survivor})
        else:
            new, produced = evaluate_unmerge(
                top,
                change.other,
                self._rules,
                now=now,
                calendar=self._calendar,
                cause=f"identity.unmerged:{change.merge_id}",
            )
            moved[new.child_id] = new
            if top_id != change.survivor:  # the survivor's own state still holds it too
                moved[change.survivor] = give_back(survivor, change.other)[0]
            if change.other in top.absorbed:
                moved[other.child_id] = take_back(other, top)
        log.info(
            "alerts.identity_applied",
            kind=change.kind,
            merge_id=change.merge_id,
            child_id=top_id,
            other_child_id=change.other,
            outcomes=len(produced),
        )
        return {k: v for k, v in moved.items() if v is not states.get(k)}, produced

    async def _top(self, conn: AsyncConnection, child_id: str, batch: _Batch) -> str:
        """The child whose state holds this child's story now: itself, or the survivor it
        was merged into (followed while that child was merged on in turn)."""
        seen = {child_id}
        state = batch.states.get(child_id)
        while state is not None and state.merged_into is not None:
            nxt = state.merged_into
            if nxt in seen:  # a cycle cannot be decided by merges; stop where it began
                log.warning("alerts.merge_cycle", child_id=child_id)
                return child_id
            seen.add(nxt)
            if nxt not in batch.states:
                await self._load(conn, {nxt}, batch)
            child_id, state = nxt, batch.states.get(nxt)
        return child_id

    async def _load(self, conn: AsyncConnection, child_ids: set[str], batch: _Batch) -> None:
        """Load these children's saved states into ``batch.states``, and note in
        ``batch.saved`` the household keys each was saved with (none for a child never
        saved)."""
        if not child_ids:
            return
        loaded = await self._store.load_states(conn, child_ids)
        batch.states.update(loaded)
        for child_id in child_ids:
            found = loaded.get(child_id)
            batch.saved[child_id] = found.household_keys if found is not None else ()

    async def _household(
        self,
        conn: AsyncConnection,
        facts: HubEventFacts,
        batch: _Batch,
    ) -> list[str]:
        """The other children an event reaches through a household, their states loaded.

        Only police incidents reach a household (the one thing household rules read), and a
        correction or retraction reaches the children holding what it supersedes, whatever
        address it carries: so the named child's keys are searched as well as its own.
        """
        incident = facts.contact is not None and facts.contact.contact_type == "police_incident"
        if not incident and facts.supersedes is None:
            return []
        states = batch.states
        keys = set(facts.household_keys)
        named = states.get(facts.child_id)
        if facts.supersedes is not None and named is not None:
            keys |= set(named.household_keys)
        if not keys:
            return []
        members = await self._store.household_members(conn, keys)
        members |= {c for c, s in states.items() if keys & set(s.household_keys)}
        members.discard(facts.child_id)
        await self._load(conn, members - states.keys(), batch)
        reached = sorted(
            c
            for c in members
            if c in states
            and states[c].merged_into is None  # its survivor holds its keys and story
            and (incident or facts.supersedes in states[c].records)
        )
        if reached:
            log.info(
                "alerts.household_reached",
                event_id=facts.event_id,
                child_id=facts.child_id,
                children=len(reached),
            )
        return reached

    async def escalate(self) -> list[AlertEscalated]:
        """Take every escalation step due now (call it every minute or so)."""
        now = self._clock()
        steps = [
            step
            for alert in await self._store.due_for_escalation(now)
            for step in escalations_due(alert, now=now)
        ]
        if steps:
            async with self._store.engine.begin() as conn:
                recorded = await self._store.apply(conn, steps, now=now)
            if recorded:
                self._store.changes.announce()
        for step in steps:
            log.warning("alert.escalated", alert_id=step.alert_id, step=step.step)
        return steps
