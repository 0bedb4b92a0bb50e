"""The alert store: alerts, their history and recipients, and the engine's state per child.

``apply`` writes the engine's and escalation's outcomes, the children's new states and the log
positions in one transaction (like the narrative projector's ``projection_positions``), so a
restart resumes exactly where the last commit left off. Applying the same outcome twice
changes nothing. ``alert_household_keys`` mirrors each saved state's household keys, so the
children at an address are found by key (``household_members``). ``alert_events.seq`` orders
every step; on PostgreSQL writers take a
transaction-level advisory lock before appending, so sequence numbers become visible in order
and a reader resuming after ``seq`` (SSE ``Last-Event-ID``) never skips a step. Whoever commits
alert steps announces them on ``changes`` afterwards (``acknowledge`` does so itself), so this
process's alert streams wake at once; ``latest_seq`` lets a watcher notice other processes' steps.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, func, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.alerts.changes import AlertChanges, Doorbell
from hub.alerts.escalation import EscalationView, next_escalation_at
from hub.alerts.model import (
    AlertEscalated,
    AlertOutcome,
    AlertRaised,
    AlertStatus,
    AlertWithdrawn,
    EscalationStep,
    Recipient,
    TriggerFacts,
)
from hub.alerts.state import ChildAlertState
from hub.alerts.tables import (
    alert_child_states,
    alert_events,
    alert_household_keys,
    alert_recipients,
    alerts,
)
from hub.sharing import EventFacts
from hub.store.schema import projection_positions
from hub.store.times import as_utc

__all__ = [
    "ALERTS_PROJECTION",
    "AlertNotFound",
    "AlertNotOpen",
    "AlertStore",
    "InboxItem",
    "StoredAlert",
]

ALERTS_PROJECTION = "alerts"
_APPEND_LOCK = 0x41_4C_45_52  # "ALER": the advisory lock that orders alert_events appends
_CHUNK = 400
_OPEN = (AlertStatus.raised.value, AlertStatus.escalated.value)
_PARSED_STATES = 1024
"""How many children's parsed engine states a store keeps (most recently used)."""


class AlertNotFound(LookupError):
    """No such alert, or not one addressed to the caller (the two are not told apart)."""


class AlertNotOpen(Exception):
    """The alert was withdrawn; there is nothing to acknowledge."""


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """An alert as the store holds it now."""

    alert_id: str
    child_id: str
    rule_id: str
    rule_kind: str
    rule_version: int
    severity: str
    reason: str
    status: AlertStatus
    recipients: tuple[Recipient, ...]
    trigger_event_ids: tuple[str, ...]
    occurred_at: datetime
    raised_at: datetime
    due_at: datetime
    window_start: datetime | None
    escalation_plan: tuple[EscalationStep, ...]
    escalation_step: int
    next_escalation_at: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    withdrawn_at: datetime | None
    trigger_facts: Mapping[str, EventFacts] = field(default_factory=dict)
    """The trigger events' facts stored when the alert was raised, by event id (empty for an
    alert raised before they were kept)."""


@dataclass(frozen=True, slots=True)
class InboxItem:
    """One step in the life of an alert, for an inbox or an SSE stream (``seq`` is the id)."""

    seq: int
    kind: str
    at: datetime
    alert: StoredAlert


def _stored(row: Any) -> StoredAlert:
    return StoredAlert(
        alert_id=row.alert_id,
        child_id=row.child_id,
        rule_id=row.rule_id,
        rule_kind=row.rule_kind,
        rule_version=row.rule_version,
        severity=row.severity,
        reason=row.reason,
        status=AlertStatus(row.status),
        recipients=tuple(Recipient.model_validate(r) for r in json.loads(row.recipients)),
        trigger_event_ids=tuple(json.loads(row.trigger_event_ids)),
        occurred_at=as_utc(row.occurred_at),  # type: ignore[arg-type]
        raised_at=as_utc(row.raised_at),  # type: ignore[arg-type]
        due_at=as_utc(row.due_at),  # type: ignore[arg-type]
        window_start=as_utc(row.window_start),
        escalation_plan=tuple(
            EscalationStep.model_validate(s) for s in json.loads(row.escalation_plan)
        ),
        escalation_step=row.escalation_step,
        next_escalation_at=as_utc(row.next_escalation_at),
        acknowledged_by=row.acknowledged_by,
        acknowledged_at=as_utc(row.acknowledged_at),
        withdrawn_at=as_utc(row.withdrawn_at),
        trigger_facts=_trigger_facts(row.trigger_facts),
    )


def _trigger_facts(stored: str | None) -> dict[str, EventFacts]:
    """The sharing facts of each trigger event kept with an alert (none when NULL)."""
    kept = (TriggerFacts.model_validate(raw) for raw in json.loads(stored or "[]"))
    return {each.event_id: each.event_facts() for each in kept}


def _w(value: datetime | None) -> datetime | None:
    """Every stored time in UTC: SQLite keeps wall-clock text, so offsets must agree."""
    return None if value is None else value.astimezone(UTC)


def _json(items: Iterable[Any]) -> str:
    return json.dumps([i.model_dump(mode="json") for i in items], sort_keys=True)


def _doorbell(engine: AsyncEngine) -> Doorbell | None:
    """The doorbell beside a SQLite database file (every process sharing it is on this
    machine); None for PostgreSQL or an in-memory database, whose watchers only poll."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database.startswith((":", "file:")):
        return None
    path = Path(database).absolute()
    return Doorbell(path.with_name(f"{path.name}.alert-steps"))


class _ParsedStates:
    """Parsed engine states by child, each kept with the exact JSON text it was parsed from
    or saved as, so a state read back unchanged is not parsed again.

    Invalidation: an entry is used only when the text the database returns, read in the
    caller's transaction, is identical to the text kept with it; so it only ever skips a
    parse and can never answer with another state than the one stored. A save by another
    process, a save rolled back, or a row deleted shows as other text (or no row) and the
    state is parsed (or absent) exactly as without it. Bounded: least recently used go first.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._kept: OrderedDict[str, tuple[str, ChildAlertState]] = OrderedDict()

    def parse(self, child_id: str, text: str) -> ChildAlertState:
        """The state this stored text holds."""
        kept = self._kept.get(child_id)
        if kept is not None and kept[0] == text:
            self._kept.move_to_end(child_id)
            return kept[1]
        state = ChildAlertState.model_validate_json(text)
        self.keep(child_id, text, state)
        return state

    def keep(self, child_id: str, text: str, state: ChildAlertState) -> None:
        """Remember that ``text`` is the JSON form of ``state``."""
        self._kept[child_id] = (text, state)
        self._kept.move_to_end(child_id)
        if len(self._kept) > self._size:
            self._kept.popitem(last=False)


class AlertStore:
    """Alert repository over one async engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.changes = AlertChanges(_doorbell(engine))
        self._pg = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if self._pg else sqlite.insert
        self._parsed = _ParsedStates(_PARSED_STATES)
        # Built once: the per-batch writes reuse them instead of constructing them each time.
        states = self._insert(alert_child_states)
        self._save_states = states.on_conflict_do_update(
            index_elements=["child_id"],
            set_={"state": states.excluded.state, "updated_at": states.excluded.updated_at},
        )
        moved = self._insert(projection_positions)
        # A position never moves backwards: the row is only updated to a higher offset, so
        # no read is needed first (and a concurrent writer's higher offset is kept).
        self._advance_positions = moved.on_conflict_do_update(
            index_elements=["projection", "topic", "partition"],
            set_={"next_offset": moved.excluded.next_offset},
            where=projection_positions.c.next_offset < moved.excluded.next_offset,
        )

    # -- engine state and positions --------------------------------------------------------
    async def positions(self, conn: AsyncConnection) -> dict[tuple[str, int], int]:
        """Next log offset to apply per (topic, partition)."""
        rows = await conn.execute(
            select(
                projection_positions.c.topic,
                projection_positions.c.partition,
                projection_positions.c.next_offset,
            ).where(projection_positions.c.projection == ALERTS_PROJECTION)
        )
        return {(r.topic, r.partition): r.next_offset for r in rows}

    @property
    def locks_states(self) -> bool:
        """Whether ``load_states`` locks the rows it reads until the transaction ends (on
        PostgreSQL, where several alerts consumers may share the store). A state carried past
        a commit is then no longer locked, so it must be loaded again before it is written."""
        return self._pg

    async def load_states(
        self, conn: AsyncConnection, child_ids: Iterable[str]
    ) -> dict[str, ChildAlertState]:
        """The saved engine states of these children (absent: never seen).

        On PostgreSQL the rows stay locked until the transaction ends: a household incident
        lets a consumer of one partition write the state of a child keyed to another, so two
        consumers must not both read and rewrite one state.
        """
        ids = sorted(set(child_ids))
        found: dict[str, ChildAlertState] = {}
        for start in range(0, len(ids), _CHUNK):
            query = select(alert_child_states.c.child_id, alert_child_states.c.state).where(
                alert_child_states.c.child_id.in_(ids[start : start + _CHUNK])
            )
            if self._pg:
                query = query.order_by(alert_child_states.c.child_id).with_for_update()
            rows = await conn.execute(query)
            for row in rows:
                found[row.child_id] = self._parsed.parse(row.child_id, row.state)
        return found

    async def household_members(self, conn: AsyncConnection, keys: Iterable[str]) -> set[str]:
        """The children whose saved states hold any of these household keys (a keyed lookup)."""
        wanted = sorted(set(keys))
        found: set[str] = set()
        for start in range(0, len(wanted), _CHUNK):
            rows = await conn.execute(
                select(alert_household_keys.c.child_id).where(
                    alert_household_keys.c.key.in_(wanted[start : start + _CHUNK])
                )
            )
            found.update(rows.scalars())
        return found

    async def _index_households(
        self,
        conn: AsyncConnection,
        states: Mapping[str, ChildAlertState],
        indexed: Mapping[str, tuple[str, ...]],
    ) -> None:
        """Make ``alert_household_keys`` say what these states' household keys say.

        A child whose keys equal its ``indexed`` keys (those of its state as saved, read in
        this transaction) is already indexed so, and is skipped: the index is written only
        here, with the states, so it says what the saved state says.
        """
        ids = sorted(
            c for c, s in states.items() if c not in indexed or indexed[c] != s.household_keys
        )
        if not ids:
            return
        held: set[tuple[str, str]] = set()
        for start in range(0, len(ids), _CHUNK):
            rows = await conn.execute(
                select(alert_household_keys.c.key, alert_household_keys.c.child_id).where(
                    alert_household_keys.c.child_id.in_(ids[start : start + _CHUNK])
                )
            )
            held.update((r.key, r.child_id) for r in rows)
        wanted = {(k, c) for c in ids for k in states[c].household_keys}
        added, gone = sorted(wanted - held), sorted(held - wanted)
        if added:
            await conn.execute(
                self._insert(alert_household_keys).on_conflict_do_nothing(
                    index_elements=["key", "child_id"]
                ),
                [{"key": k, "child_id": c} for k, c in added],
            )
        for start in range(0, len(gone), _CHUNK):
            await conn.execute(
                delete(alert_household_keys).where(
                    tuple_(alert_household_keys.c.key, alert_household_keys.c.child_id).in_(
                        gone[start : start + _CHUNK]
                    )
                )
            )

    async def apply(
        self,
        conn: AsyncConnection,
        outcomes: Sequence[AlertOutcome],
        *,
        positions: Mapping[tuple[str, int], int] | None = None,
        states: Mapping[str, ChildAlertState] | None = None,
        indexed: Mapping[str, tuple[str, ...]] | None = None,
        now: datetime,
    ) -> int:
        """Write outcomes, states and positions in the caller's transaction; idempotent.

        ``positions`` maps (topic, partition) to the next offset to apply; a position never
        moves backwards. Each state written also updates the household-key index, unless its
        household keys are those ``indexed`` gives for it (the keys of the child's state as
        loaded in this transaction; ``()`` for a child with no saved state). Returns how many
        alert steps were recorded.
        """
        if outcomes:
            await self._lock_appends(conn)
        recorded = 0
        for outcome in outcomes:
            if isinstance(outcome, AlertRaised):
                recorded += await self._raise(conn, outcome, now)
            elif isinstance(outcome, AlertWithdrawn):
                recorded += await self._withdraw(conn, outcome, now)
            elif isinstance(outcome, AlertEscalated):
                recorded += await self._escalate(conn, outcome, now)
            else:
                raise TypeError(f"not an alert outcome: {type(outcome).__name__}")
        if states:
            saved = []
            for child_id, state in sorted(states.items()):
                text = state.model_dump_json(exclude_defaults=True)
                self._parsed.keep(child_id, text, state)  # used only if read back unchanged
                saved.append({"child_id": child_id, "state": text, "updated_at": _w(now)})
            await conn.execute(self._save_states, saved)
            await self._index_households(conn, states, indexed or {})
        if positions:
            await conn.execute(
                self._advance_positions,
                [
                    {"projection": ALERTS_PROJECTION, "topic": t, "partition": p, "next_offset": o}
                    for (t, p), o in sorted(positions.items())
                ],
            )
        return recorded

    async def _lock_appends(self, conn: AsyncConnection) -> None:
        if self._pg:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _APPEND_LOCK})

    async def _history(
        self,
        conn: AsyncConnection,
        alert_id: str,
        kind: str,
        at: datetime,
        detail: Mapping[str, Any],
        actor: str | None = None,
    ) -> None:
        await conn.execute(
            alert_events.insert().values(
                alert_id=alert_id,
                kind=kind,
                at=_w(at),
                actor=actor,
                detail=json.dumps(detail, sort_keys=True),
            )
        )

    async def _add_recipients(
        self, conn: AsyncConnection, alert_id: str, recipients: Iterable[Recipient]
    ) -> None:
        stmt = self._insert(alert_recipients).on_conflict_do_nothing(
            index_elements=["alert_id", "address"]
        )
        rows = [{"alert_id": alert_id, "address": r.address} for r in recipients]
        if rows:
            await conn.execute(stmt, rows)

    async def _raise(self, conn: AsyncConnection, raised: AlertRaised, now: datetime) -> int:
        row = (
            await conn.execute(select(alerts.c.status).where(alerts.c.alert_id == raised.alert_id))
        ).first()
        detail = {"rule_id": raised.rule_id, "rule_version": raised.rule_version}
        if row is None:
            await conn.execute(
                alerts.insert().values(
                    alert_id=raised.alert_id,
                    occurrence_key=raised.occurrence_key,
                    child_id=raised.child_id,
                    rule_id=raised.rule_id,
                    rule_kind=raised.rule_kind,
                    rule_version=raised.rule_version,
                    severity=raised.severity,
                    reason=raised.reason,
                    status=AlertStatus.raised.value,
                    recipients=_json(raised.recipients),
                    trigger_event_ids=json.dumps(list(raised.trigger_event_ids)),
                    occurred_at=_w(raised.occurred_at),
                    raised_at=_w(raised.raised_at),
                    due_at=_w(raised.due_at),
                    window_start=_w(raised.window_start),
                    escalation_plan=_json(raised.escalation),
                    escalation_step=0,
                    next_escalation_at=_w(next_escalation_at(raised.escalation, 0)),
                    updated_at=_w(now),
                    trigger_facts=_json(raised.trigger_facts),
                )
            )
        elif row.status == AlertStatus.withdrawn.value:
            # The occurrence holds again (a correction undid what withdrew it).
            await conn.execute(
                update(alerts)
                .where(alerts.c.alert_id == raised.alert_id)
                .values(
                    status=AlertStatus.raised.value,
                    withdrawn_at=None,
                    escalation_step=0,
                    due_at=_w(raised.due_at),
                    escalation_plan=_json(raised.escalation),
                    next_escalation_at=_w(next_escalation_at(raised.escalation, 0)),
                    updated_at=_w(now),
                )
            )
            detail["again"] = True
        else:
            return 0
        await self._add_recipients(conn, raised.alert_id, raised.recipients)
        await self._history(conn, raised.alert_id, "raised", raised.raised_at, detail)
        return 1

    async def _withdraw(self, conn: AsyncConnection, gone: AlertWithdrawn, now: datetime) -> int:
        result = await conn.execute(
            update(alerts)
            .where(
                and_(
                    alerts.c.alert_id == gone.alert_id,
                    alerts.c.status != AlertStatus.withdrawn.value,
                )
            )
            .values(
                status=AlertStatus.withdrawn.value,
                withdrawn_at=_w(gone.withdrawn_at),
                next_escalation_at=None,
                updated_at=_w(now),
            )
        )
        if not result.rowcount:
            return 0
        await self._history(
            conn, gone.alert_id, "withdrawn", gone.withdrawn_at, {"cause": gone.cause_event_id}
        )
        return 1

    async def _escalate(self, conn: AsyncConnection, step: AlertEscalated, now: datetime) -> int:
        row = (
            await conn.execute(
                select(alerts.c.escalation_plan).where(
                    and_(
                        alerts.c.alert_id == step.alert_id,
                        alerts.c.status.in_(_OPEN),
                        alerts.c.escalation_step < step.step,
                    )
                )
            )
        ).first()
        if row is None:
            return 0
        plan = [EscalationStep.model_validate(s) for s in json.loads(row.escalation_plan)]
        await conn.execute(
            update(alerts)
            .where(alerts.c.alert_id == step.alert_id)
            .values(
                status=AlertStatus.escalated.value,
                escalation_step=step.step,
                next_escalation_at=_w(next_escalation_at(plan, step.step)),
                updated_at=_w(now),
            )
        )
        await self._add_recipients(conn, step.alert_id, step.recipients)
        await self._history(
            conn,
            step.alert_id,
            "escalated",
            step.escalated_at,
            {
                "step": step.step,
                "due_at": step.due_at.isoformat(),
                "to": [r.address for r in step.recipients],
            },
        )
        return 1

    # -- reads and acknowledgement -----------------------------------------------------------
    async def latest_seq(self) -> int:
        """The sequence number of the newest alert step (0 if none): a primary-key lookup."""
        async with self.engine.connect() as conn:
            newest = (await conn.execute(select(func.max(alert_events.c.seq)))).scalar()
            return int(newest or 0)

    async def get(self, alert_id: str) -> StoredAlert | None:
        """One alert, whoever it is for (callers check the recipients)."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(alerts).where(alerts.c.alert_id == alert_id))).first()
            return _stored(row) if row is not None else None

    def _for(self, addresses: Collection[str]) -> Any:
        return alerts.c.alert_id.in_(
            select(alert_recipients.c.alert_id).where(
                alert_recipients.c.address.in_(sorted(set(addresses)))
            )
        )

    async def open_alerts(
        self, addresses: Collection[str], *, limit: int = 100
    ) -> list[StoredAlert]:
        """Alerts for these inbox addresses not yet acknowledged or withdrawn, most urgent first."""
        if not addresses:
            return []
        query = (
            select(alerts)
            .where(and_(self._for(addresses), alerts.c.status.in_(_OPEN)))
            .order_by(alerts.c.due_at, alerts.c.alert_id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [_stored(r) for r in await conn.execute(query)]

    async def inbox(
        self, addresses: Collection[str], *, since_id: int = 0, limit: int = 100
    ) -> list[InboxItem]:
        """Every step (raised, escalated, acknowledged, withdrawn) of alerts for these addresses
        after ``since_id``, oldest first; ``seq`` of the last item is the next ``since_id``."""
        if not addresses:
            return []
        query = (
            select(alert_events.c.seq, alert_events.c.kind, alert_events.c.at, alerts)
            .join(alerts, alerts.c.alert_id == alert_events.c.alert_id)
            .where(and_(alert_events.c.seq > since_id, self._for(addresses)))
            .order_by(alert_events.c.seq)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [
                InboxItem(seq=r.seq, kind=r.kind, at=as_utc(r.at), alert=_stored(r))  # type: ignore[arg-type]
                for r in await conn.execute(query)
            ]

    async def acknowledge(
        self,
        alert_id: str,
        by: str,
        *,
        now: datetime,
        addresses: Collection[str] | None = None,
    ) -> StoredAlert:
        """Mark an alert acknowledged by ``by`` (idempotent) and stop its escalation.

        With ``addresses``, only an alert addressed to one of them can be acknowledged; any
        other is ``AlertNotFound``. A withdrawn alert is ``AlertNotOpen``.
        """
        recorded = False
        async with self.engine.begin() as conn:
            await self._lock_appends(conn)
            query = select(alerts).where(alerts.c.alert_id == alert_id)
            if addresses is not None:
                query = query.where(
                    self._for(addresses) if addresses else alerts.c.alert_id.is_(None)
                )
            row = (await conn.execute(query)).first()
            if row is None:
                raise AlertNotFound(f"alert {alert_id} not found")
            if row.status == AlertStatus.withdrawn.value:
                raise AlertNotOpen(f"alert {alert_id} was withdrawn")
            if row.status != AlertStatus.acknowledged.value:
                await conn.execute(
                    update(alerts)
                    .where(alerts.c.alert_id == alert_id)
                    .values(
                        status=AlertStatus.acknowledged.value,
                        acknowledged_by=by,
                        acknowledged_at=_w(now),
                        next_escalation_at=None,
                        updated_at=_w(now),
                    )
                )
                await self._history(conn, alert_id, "acknowledged", now, {}, actor=by)
                recorded = True
            row = (await conn.execute(select(alerts).where(alerts.c.alert_id == alert_id))).one()
        if recorded:
            self.changes.announce()
        return _stored(row)

    async def due_for_escalation(self, now: datetime, *, limit: int = 500) -> list[EscalationView]:
        """Open alerts whose next escalation step is due by ``now``, earliest first."""
        query = (
            select(
                alerts.c.alert_id,
                alerts.c.status,
                alerts.c.escalation_step,
                alerts.c.escalation_plan,
            )
            .where(
                and_(
                    alerts.c.status.in_(_OPEN),
                    alerts.c.next_escalation_at.is_not(None),
                    alerts.c.next_escalation_at <= _w(now),
                )
            )
            .order_by(alerts.c.next_escalation_at, alerts.c.alert_id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [
                EscalationView(
                    alert_id=r.alert_id,
                    status=AlertStatus(r.status),
                    escalation_step=r.escalation_step,
                    plan=tuple(
                        EscalationStep.model_validate(s) for s in json.loads(r.escalation_plan)
                    ),
                )
                for r in await conn.execute(query)
            ]
