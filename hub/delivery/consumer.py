"""The delivery consumer: opens `hub.events` records and hands them to the topic processor.

Each record is opened with the child's data key and validated as the projector does (or taken
as the projector already opened it, when it runs first on the same batch); the snapshots
(statuses, involved agencies, milestones) of the batch's children are read in one call, and
their governance context with them, on one shared connection. A record
that cannot be opened (invalid, erased child) is skipped: the narrative projector
dead-letters invalid records, and an erased child's events must never leave the hub.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pydantic import ValidationError

from contracts import ContractValidationError, Envelope, parse_envelope
from contracts.events import ContactRecorded
from hub.crypto.data_keys import KeyDestroyed, UnknownDataKey
from hub.crypto.encryption import FieldCipher, FieldDecryptionFailed
from hub.delivery.context import ChildSnapshot
from hub.delivery.store import DeliveryStore, StoredDelivery
from hub.delivery.topics import DeliveryCounts, DeliveryEvent, TopicDeliveryProcessor
from hub.domain.chronology import MILESTONE_CONTACT_TYPES
from hub.observability import get_logger
from hub.periodic import run_every
from hub.streams.projector import OpenedEvents
from hub.streams.records import ConsumedRecord
from hub.streams.wire import IdentityHubEvent, SealedHubEvent

__all__ = ["DeliveryConsumer", "ProjectThenDeliver", "run_held_releases"]

log = get_logger(__name__)


class DeliveryConsumer:
    """Turns a batch of `hub.events` records into deliveries (returns once all are recorded),
    and decides again the deliveries a rule's delay held (``release``)."""

    def __init__(
        self,
        *,
        processor: TopicDeliveryProcessor,
        cipher: FieldCipher,
        snapshots: Callable[[Sequence[str]], Awaitable[Mapping[str, ChildSnapshot]]],
        ledger: DeliveryStore,
        shown: Callable[[Sequence[str]], Awaitable[set[str]]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        lease_seconds: float = 300.0,
    ) -> None:
        self._processor = processor
        self._cipher = cipher
        self._snapshots = snapshots
        self._ledger = ledger
        self._shown = shown
        self._clock = clock
        self._lease = timedelta(seconds=lease_seconds)

    async def handle_batch(
        self, records: Sequence[ConsumedRecord], *, opened: OpenedEvents | None = None
    ) -> DeliveryCounts:
        """Open, describe and deliver one batch (records in log order).

        ``opened`` holds envelopes the projector already opened and validated in this batch,
        by record position; the other records are opened here.
        """
        opened_here: list[_Opened] = []
        for record in records:
            if IdentityHubEvent.is_one(record.value):
                continue  # a merge decision is not an agency event: nothing to deliver
            done = opened.get((record.topic, record.partition, record.offset)) if opened else None
            if done is None:
                done = await self._open(record.value, where=_where(record))
            if done is not None:
                opened_here.append((*done, record.value.decode("utf-8")))
        if not opened_here:  # merges only, or nothing that opens: no connection to check out
            return DeliveryCounts(published=0, denied=0, duplicates=0)
        counts = await self._deliver(opened_here)
        # A held delivery waits for a time (the sweep's) or a milestone: a batch recording
        # one for a child (a strategy meeting) may release the child's. What the batch held
        # itself has just been decided. The batch is stored and delivered: a failure here is
        # left to the due sweep, not allowed to fail (and replay) the batch.
        milestones = [child_id for child_id, env, _ in opened_here if _records_milestone(env)]
        if not milestones:
            return counts
        try:
            released = await self.release(child_ids=milestones)
        except Exception:
            log.exception("delivery.held_release_failed")
            return counts
        return _sum(counts, released)

    async def release(
        self, *, child_ids: Sequence[str] = (), due_by: datetime | None = None
    ) -> DeliveryCounts:
        """Decide again the held deliveries of these children (their story changed), or those
        whose delay ends by ``due_by``: each one this process takes is sent if the rules now
        permit it, held again if a delay still holds it, and withheld for good otherwise, or
        when its event has since been corrected or retracted, or its child erased. (A hold
        decided again unchanged writes no new audit record, so deciding one of the batch's
        own holds again costs a write, not a record.)"""
        candidates = await self._ledger.held(child_ids=child_ids, due_by=due_by)
        if not candidates:
            return DeliveryCounts()
        until = self._clock() + self._lease
        # Taken first, then checked: only the taker may send, hold again or withhold a row.
        taken = [row for row in candidates if await self._ledger.take_held(row, until)]
        shown = await self._shown([row.subject_id for row in taken])
        subscribers = self._processor.subscriber_ids
        opened: dict[str, _Opened] = {}
        only: dict[tuple[str, str], StoredDelivery] = {}
        gone: dict[str, list[str]] = {}
        for row in taken:
            if row.subscriber_id not in subscribers:
                gone.setdefault("SubscriberNotConfigured", []).append(row.delivery_id)
                continue
            if row.subject_id not in shown:
                gone.setdefault("EventSuperseded", []).append(row.delivery_id)
                continue
            done = opened.get(row.subject_id)
            if done is None and row.body is not None:
                where = {"delivery_id": row.delivery_id}
                if (event := await self._open(row.body.encode("utf-8"), where=where)) is not None:
                    done = opened[row.subject_id] = (*event, row.body)
            if done is None or done[1].id != row.subject_id:
                gone.setdefault("RecordUnreadable", []).append(row.delivery_id)
                continue
            only[(row.subject_id, row.subscriber_id)] = row
        if gone:
            async with self._ledger.engine.begin() as conn:
                for why, ids in gone.items():
                    await self._ledger.withhold_in(conn, ids, why=why)
            log.info("delivery.held_dropped", **{why: len(ids) for why, ids in gone.items()})
        dropped = sum(len(ids) for ids in gone.values())
        if not only:
            return DeliveryCounts(denied=dropped)
        counts = await self._deliver(list(opened.values()), only=only)
        log.info(
            "delivery.held_decided",
            deliveries=len(only),
            published=counts.published,
            held=counts.held,
        )
        return _sum(counts, DeliveryCounts(denied=dropped))

    async def _deliver(
        self,
        opened: Sequence[_Opened],
        *,
        only: Mapping[tuple[str, str], StoredDelivery] | None = None,
    ) -> DeliveryCounts:
        # Every child of the batch read at once (a trickle's batch is nearly a child an event),
        # with the governance context of each, on one connection.
        async with self._processor.reading():
            snapshots = await self._snapshots([child_id for child_id, _, _ in opened])
            events = [
                DeliveryEvent(
                    child_id=child_id,
                    envelope=envelope,
                    statuses=snapshots[child_id].statuses,
                    involved_agencies=snapshots[child_id].involved_agencies,
                    milestones=snapshots[child_id].milestones,
                    significant_harm=snapshots[child_id].significant_harm,
                    sealed_record=sealed,
                )
                for child_id, envelope, sealed in opened
            ]
            prepared = await self._processor.prepare(events)
        return await self._processor.deliver(events, prepared, only=only)

    async def _open(
        self, value: bytes, *, where: Mapping[str, object]
    ) -> tuple[str, Envelope] | None:
        """The record's child and validated envelope; None (logged) if it cannot be opened."""
        try:
            sealed = SealedHubEvent.model_validate_json(value)
            plain = await self._cipher.open_envelope(sealed.child_id, sealed.envelope)
            return sealed.child_id, parse_envelope(plain)
        except (ValidationError, ContractValidationError, FieldDecryptionFailed) as exc:
            self._skipped(where, "invalid", exc)
        except (KeyDestroyed, UnknownDataKey) as exc:
            self._skipped(where, "erased", exc)
        return None

    @staticmethod
    def _skipped(where: Mapping[str, object], cause: str, exc: Exception) -> None:
        log.info("delivery.record_skipped", **where, cause=cause, error_class=type(exc).__name__)


def _records_milestone(envelope: Envelope) -> bool:
    """Whether the event records a case milestone (a strategy meeting, say)."""
    data = envelope.data
    return isinstance(data, ContactRecorded) and data.contact_type.value in MILESTONE_CONTACT_TYPES


_Opened = tuple[str, Envelope, str]
"""An opened hub event: its child, its envelope and its record as it came (sealed)."""


def _where(record: ConsumedRecord) -> dict[str, object]:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}


def _sum(a: DeliveryCounts, b: DeliveryCounts) -> DeliveryCounts:
    return DeliveryCounts(
        published=a.published + b.published,
        denied=a.denied + b.denied,
        duplicates=a.duplicates + b.duplicates,
        held=a.held + b.held,
    )


async def run_held_releases(consumer: DeliveryConsumer, *, every_seconds: float = 60.0) -> None:
    """Decide again, for ever (cancelled at shutdown), the held deliveries whose delay has
    ended by now; a failure is logged and the sweep goes on at the next tick."""
    await run_every(
        lambda: consumer.release(due_by=datetime.now(UTC)),
        every_seconds=every_seconds,
        failed="delivery.held_release_failed",
    )


class _BatchHandler(Protocol):
    async def handle_batch(
        self, records: Sequence[ConsumedRecord], *, opened: OpenedEvents | None = None
    ) -> int: ...


class ProjectThenDeliver:
    """The narrative consumer's handler with deliveries after it: the projector stores the
    batch, then the same records are delivered, so each child's snapshot already includes
    the batch's own events (a plan opened in this batch counts for the next event). Both are
    idempotent, so a failure in either redelivers the batch harmlessly. Each envelope is
    opened once: deliveries reuse what the projector opened."""

    def __init__(self, projector: _BatchHandler, deliveries: DeliveryConsumer) -> None:
        self._projector = projector
        self._deliveries = deliveries

    async def handle_batch(self, records: Sequence[ConsumedRecord]) -> int:
        """Project, then deliver; returns how many entries the projector stored."""
        opened: OpenedEvents = {}
        stored = await self._projector.handle_batch(records, opened=opened)
        await self._deliveries.handle_batch(records, opened=opened)
        return stored
