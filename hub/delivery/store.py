"""The delivery ledger: claims, outcomes, due retries and the operator's view and re-drive.

Every method runs its own short transaction unless it takes a connection (then it joins the
caller's, so an outcome and its audit record commit together).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, bindparam, case, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.delivery.tables import deliveries
from hub.store.times import as_utc

__all__ = [
    "DeliveryNotDead",
    "DeliveryNotFound",
    "DeliveryStatus",
    "DeliveryStore",
    "HeldDelivery",
    "NewDelivery",
    "StoredDelivery",
    "delivery_id_for",
]


class DeliveryStatus(StrEnum):
    """Where a delivery stands."""

    pending = "pending"
    delivered = "delivered"
    dead = "dead"
    withheld = "withheld"  # the rules in force at send time did not permit it: nothing sent
    held = "held"  # a rule's delay holds it: decided again when the delay may have ended


class DeliveryNotFound(LookupError):
    """No delivery has that id."""


class DeliveryNotDead(Exception):
    """Only a dead delivery can be retried by an operator."""


def delivery_id_for(subscriber_id: str, subject_id: str) -> str:
    """The deterministic id of one subject's delivery to one subscriber."""
    digest = hashlib.sha256(f"{subscriber_id}\x00{subject_id}".encode()).hexdigest()
    return "dl-" + digest[:32]


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """One ledger row."""

    delivery_id: str
    subscriber_id: str
    kind: str
    subject_id: str
    child_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_error_class: str | None
    last_status_code: int | None
    body: str | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None

    def public(self) -> dict[str, Any]:
        """What the operator API shows: ids, status, counts, times, error class (no body)."""
        return {
            "delivery_id": self.delivery_id,
            "subscriber_id": self.subscriber_id,
            "kind": self.kind,
            "subject_id": self.subject_id,
            "status": str(self.status),
            "attempts": self.attempts,
            "next_attempt_at": _iso(self.next_attempt_at),
            "last_error_class": self.last_error_class,
            "last_status_code": self.last_status_code,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "delivered_at": _iso(self.delivered_at),
        }


@dataclass(frozen=True, slots=True)
class HeldDelivery:
    """A topic delivery a rule's delay holds: the hub event's sealed record (as it came on
    ``hub.events``, so only the child's key opens it) and when to decide again (None: when the
    child's story changes, a milestone having no known time)."""

    subscriber_id: str
    event_id: str
    child_id: str
    sealed_record: str
    not_before: datetime | None

    @property
    def delivery_id(self) -> str:
        return delivery_id_for(self.subscriber_id, self.event_id)


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery to queue: whose, of what, for which child, with the body it will send."""

    subscriber_id: str
    kind: str
    subject_id: str
    child_id: str
    body: str | None = None

    @property
    def delivery_id(self) -> str:
        return delivery_id_for(self.subscriber_id, self.subject_id)


def _new_row(
    item: NewDelivery, status: DeliveryStatus, next_attempt_at: datetime | None, now: datetime
) -> dict[str, Any]:
    """A new ledger row: no attempt made yet."""
    return {
        "delivery_id": item.delivery_id,
        "subscriber_id": item.subscriber_id,
        "kind": item.kind,
        "subject_id": item.subject_id,
        "child_id": item.child_id,
        "status": status.value,
        "attempts": 0,
        "next_attempt_at": next_attempt_at,
        "body": item.body,
        "created_at": now,
        "updated_at": now,
    }


def _utc(value: datetime | None) -> datetime | None:
    """A time as UTC (SQLite keeps no offset: a stored time must already be UTC)."""
    return None if value is None else value.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _w(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _row(r: Any) -> StoredDelivery:
    return StoredDelivery(
        delivery_id=r.delivery_id,
        subscriber_id=r.subscriber_id,
        kind=r.kind,
        subject_id=r.subject_id,
        child_id=r.child_id,
        status=DeliveryStatus(r.status),
        attempts=r.attempts,
        next_attempt_at=_w(r.next_attempt_at),
        last_error_class=r.last_error_class,
        last_status_code=r.last_status_code,
        body=r.body,
        created_at=as_utc(r.created_at),
        updated_at=as_utc(r.updated_at),
        delivered_at=_w(r.delivered_at),
    )


class DeliveryStore:
    """The ``deliveries`` table over one engine."""

    def __init__(
        self, engine: AsyncEngine, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.engine = engine
        self._clock = clock
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    async def queue_in(
        self, conn: AsyncConnection, items: Sequence[NewDelivery], *, due_at: datetime | None
    ) -> None:
        """Queue these deliveries pending, first attempt at ``due_at``, in the caller's
        transaction (the alert transaction that raised them: the outbox). A delivery already
        in the ledger keeps its row, so a replayed alert is sent once."""
        if not items:
            return
        now = self._clock()
        rows = [_new_row(item, DeliveryStatus.pending, due_at, now) for item in items]
        await conn.execute(self._insert(deliveries).on_conflict_do_nothing(), rows)

    async def hold_in(self, conn: AsyncConnection, items: Sequence[HeldDelivery]) -> None:
        """Record new deliveries a delay holds, in the caller's transaction (beside the audit
        record of the decision). A delivery already in the ledger keeps its row: a held one is
        decided again only by ``release`` (a replayed event does not touch it)."""
        if not items:
            return
        now = self._clock()
        rows = [
            _new_row(
                NewDelivery(
                    item.subscriber_id, "topic", item.event_id, item.child_id, item.sealed_record
                ),
                DeliveryStatus.held,
                _utc(item.not_before),
                now,
            )
            for item in items
        ]
        await conn.execute(self._insert(deliveries).on_conflict_do_nothing(), rows)

    async def held(
        self,
        *,
        due_by: datetime | None = None,
        child_ids: Sequence[str] = (),
        limit: int = 100,
        recheck_after: timedelta = timedelta(days=1),
    ) -> list[StoredDelivery]:
        """Held deliveries to decide again, oldest change first: those of these children
        (a milestone recorded for them), or with ``due_by`` those whose delay ends by then,
        those a process took and did not finish (its lease ended by then), and, as a
        backstop, those waiting for a milestone not decided for ``recheck_after``."""
        c = deliveries.c
        held = c.status == DeliveryStatus.held.value
        if child_ids:
            where = and_(held, c.child_id.in_(sorted(set(child_ids))))
        elif due_by is not None:
            taken_and_left = and_(
                c.status == DeliveryStatus.pending.value,
                c.kind == "topic",
                c.body.is_not(None),
            )
            waiting_long = and_(
                held, c.next_attempt_at.is_(None), c.updated_at <= due_by - recheck_after
            )
            where = or_(and_(or_(held, taken_and_left), c.next_attempt_at <= due_by), waiting_long)
        else:
            return []
        stmt = select(deliveries).where(where).order_by(c.updated_at, c.delivery_id).limit(limit)
        async with self.engine.connect() as conn:
            return [_row(r) for r in (await conn.execute(stmt)).all()]

    async def take_held(self, found: StoredDelivery, until: datetime) -> bool:
        """Take a held delivery (as ``held`` read it) to decide it again: it becomes pending
        until ``until`` (a process dying meanwhile leaves it to the due sweep then), counting
        an attempt. False when another process took or changed it since it was read; only
        the taker may then send it, hold it again or withhold it."""
        c = deliveries.c
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(
                    c.delivery_id == found.delivery_id,
                    c.status == found.status.value,
                    c.attempts == found.attempts,
                )
                .values(
                    status=DeliveryStatus.pending.value,
                    next_attempt_at=until,
                    attempts=c.attempts + 1,
                    updated_at=self._clock(),
                )
            )
        return bool(result.rowcount == 1)

    async def hold_again_in(
        self, conn: AsyncConnection, items: Sequence[tuple[str, datetime | None]]
    ) -> None:
        """Deliveries this process took that a delay still holds: held again until the new
        time (delivery id, time or None), in the caller's transaction."""
        if not items:
            return
        c = deliveries.c
        stmt = (
            update(deliveries)
            .where(c.delivery_id == bindparam("b_id"), c.status == DeliveryStatus.pending.value)
            .values(
                status=DeliveryStatus.held.value,
                next_attempt_at=bindparam("b_at"),
                updated_at=self._clock(),
            )
        )
        await conn.execute(stmt, [{"b_id": i, "b_at": _utc(at)} for i, at in items])

    async def withhold_in(
        self, conn: AsyncConnection, delivery_ids: Sequence[str], *, why: str = "Denied"
    ) -> None:
        """Deliveries this process took that will never be sent (the rules no longer permit
        them, the event was corrected or retracted, the subscriber is gone): withheld for
        good, the kept record dropped, in the caller's transaction."""
        if not delivery_ids:
            return
        await conn.execute(
            update(deliveries)
            .where(
                deliveries.c.delivery_id.in_(sorted(delivery_ids)),
                deliveries.c.status == DeliveryStatus.pending.value,
            )
            .values(
                status=DeliveryStatus.withheld.value,
                next_attempt_at=None,
                body=None,
                last_error_class=why[:64],
                updated_at=self._clock(),
            )
        )

    async def claim_many(
        self, items: Sequence[tuple[str, str, str, str]]
    ) -> dict[str, StoredDelivery]:
        """The deliveries of (subscriber id, kind, subject id, child id), by delivery id: each
        created pending if new, else the existing row unchanged (so a redelivered event is
        handled once); one read and one insert for a whole batch (rows another consumer
        claimed first stand)."""
        wanted = {d.delivery_id: d for d in (NewDelivery(*item) for item in items)}
        found = await self._get_many(list(wanted))
        missing = [i for i in wanted if i not in found]
        if missing:
            async with self.engine.begin() as conn:
                await self.queue_in(conn, [wanted[i] for i in missing], due_at=None)
            found.update(await self._get_many(missing))
        return found

    async def _get_many(self, delivery_ids: Sequence[str]) -> dict[str, StoredDelivery]:
        found: dict[str, StoredDelivery] = {}
        async with self.engine.connect() as conn:
            for start in range(0, len(delivery_ids), 500):
                chunk = delivery_ids[start : start + 500]
                stmt = select(deliveries).where(deliveries.c.delivery_id.in_(chunk))
                for row in (await conn.execute(stmt)).all():
                    found[row.delivery_id] = _row(row)
        return found

    async def get(self, delivery_id: str) -> StoredDelivery | None:
        """One delivery by id."""
        stmt = select(deliveries).where(deliveries.c.delivery_id == delivery_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else _row(row)

    async def mark_delivered(
        self, conn: AsyncConnection, delivery_id: str, *, attempts: int, status_code: int | None
    ) -> None:
        """Record success (in the caller's transaction, beside the audit record)."""
        await self.mark_delivered_many(conn, [(delivery_id, attempts)], status_code=status_code)

    async def mark_delivered_many(
        self,
        conn: AsyncConnection,
        done: Sequence[tuple[str, int]],
        *,
        status_code: int | None = None,
    ) -> None:
        """Record success of many (delivery id, attempts) at once, in the caller's transaction."""
        if not done:
            return
        now = self._clock()
        stmt = (
            update(deliveries)
            .where(
                deliveries.c.delivery_id == bindparam("b_id"),
                deliveries.c.status == DeliveryStatus.pending.value,
            )
            .values(
                status=DeliveryStatus.delivered.value,
                # A topic row's body is a held event's sealed record: not kept once sent.
                body=case((deliveries.c.kind == "topic", None), else_=deliveries.c.body),
                attempts=bindparam("b_attempts"),
                next_attempt_at=None,
                last_status_code=status_code,
                updated_at=now,
                delivered_at=now,
            )
        )
        await conn.execute(stmt, [{"b_id": i, "b_attempts": n} for i, n in done])

    async def record_failure(
        self,
        delivery_id: str,
        *,
        attempts: int,
        error_class: str,
        status_code: int | None,
        retry_at: datetime | None,
    ) -> None:
        """Record a failed attempt: pending until ``retry_at``, or dead when that is None
        (unless the delivery has moved on meanwhile: another process's later attempt)."""
        status = DeliveryStatus.pending if retry_at is not None else DeliveryStatus.dead
        await self._set(
            delivery_id,
            attempts - 1,
            status=status.value,
            attempts=attempts,
            next_attempt_at=retry_at,
            last_error_class=error_class[:64],
            last_status_code=status_code,
        )

    async def mark_withheld(self, delivery_id: str, *, attempts: int) -> None:
        """The rules did not permit sending it: nothing was sent, nothing will be."""
        await self._set(
            delivery_id,
            attempts,
            status=DeliveryStatus.withheld.value,
            attempts=attempts,
            next_attempt_at=None,
            last_error_class="Denied",
            last_status_code=None,
        )

    async def _set(self, delivery_id: str, attempts_before: int, **values: Any) -> None:
        """Record an attempt's outcome on a delivery still pending with the attempts it had
        when the attempt began; a stale attempt (another process has recorded one since, or
        it was delivered) changes nothing."""
        c = deliveries.c
        async with self.engine.begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(
                    c.delivery_id == delivery_id,
                    c.status == DeliveryStatus.pending.value,
                    c.attempts == attempts_before,
                )
                .values(**values, updated_at=self._clock())
            )

    async def due(self, now: datetime, *, kind: str, limit: int = 100) -> list[StoredDelivery]:
        """Pending deliveries of ``kind`` whose next attempt is due, oldest first."""
        c = deliveries.c
        stmt = (
            select(deliveries)
            .where(
                and_(
                    c.kind == kind,
                    c.status == DeliveryStatus.pending.value,
                    c.next_attempt_at <= now,
                )
            )
            .order_by(c.next_attempt_at, c.delivery_id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [_row(r) for r in (await conn.execute(stmt)).all()]

    async def lease(self, found: StoredDelivery, now: datetime, until: datetime) -> bool:
        """Take a due delivery for one attempt (pushes its next attempt to ``until``); False when
        another process took it first (it is no longer due, or its attempts moved on)."""
        c = deliveries.c
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(
                    and_(
                        c.delivery_id == found.delivery_id,
                        c.status == DeliveryStatus.pending.value,
                        c.attempts == found.attempts,
                        c.next_attempt_at <= now,
                    )
                )
                .values(next_attempt_at=until)
            )
        return bool(result.rowcount == 1)

    async def listing(
        self,
        *,
        subscriber_id: str | None = None,
        status: DeliveryStatus | None = None,
        limit: int = 100,
    ) -> list[StoredDelivery]:
        """Deliveries, newest change first, optionally of one subscriber and status."""
        c = deliveries.c
        stmt = select(deliveries)
        if subscriber_id is not None:
            stmt = stmt.where(c.subscriber_id == subscriber_id)
        if status is not None:
            stmt = stmt.where(c.status == status.value)
        stmt = stmt.order_by(c.updated_at.desc(), c.delivery_id).limit(limit)
        async with self.engine.connect() as conn:
            return [_row(r) for r in (await conn.execute(stmt)).all()]

    async def retry(self, delivery_id: str) -> StoredDelivery:
        """Give a dead delivery a fresh allowance of attempts, the first due now."""
        found = await self.get(delivery_id)
        if found is None:
            raise DeliveryNotFound(delivery_id)
        if found.status is not DeliveryStatus.dead:
            raise DeliveryNotDead(f"delivery {delivery_id} is {found.status}, not dead")
        c = deliveries.c
        now = self._clock()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(and_(c.delivery_id == delivery_id, c.status == DeliveryStatus.dead.value))
                .values(
                    status=DeliveryStatus.pending.value,
                    attempts=0,
                    next_attempt_at=now,
                    updated_at=now,
                )
            )
        if result.rowcount != 1:
            raise DeliveryNotDead(f"delivery {delivery_id} changed meanwhile")
        retried = await self.get(delivery_id)
        assert retried is not None
        return retried
