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
from typing import Protocol

from pydantic import ValidationError

from contracts import ContractValidationError, Envelope, parse_envelope
from hub.crypto.data_keys import KeyDestroyed, UnknownDataKey
from hub.crypto.encryption import FieldCipher, FieldDecryptionFailed
from hub.delivery.context import ChildSnapshot
from hub.delivery.topics import DeliveryCounts, DeliveryEvent, TopicDeliveryProcessor
from hub.observability import get_logger
from hub.streams.projector import OpenedEvents
from hub.streams.records import ConsumedRecord
from hub.streams.wire import IdentityHubEvent, SealedHubEvent

__all__ = ["DeliveryConsumer", "ProjectThenDeliver"]

log = get_logger(__name__)


class DeliveryConsumer:
    """Turns a batch of `hub.events` records into deliveries (returns once all are recorded)."""

    def __init__(
        self,
        *,
        processor: TopicDeliveryProcessor,
        cipher: FieldCipher,
        snapshots: Callable[[Sequence[str]], Awaitable[Mapping[str, ChildSnapshot]]],
    ) -> None:
        self._processor = processor
        self._cipher = cipher
        self._snapshots = snapshots

    async def handle_batch(
        self, records: Sequence[ConsumedRecord], *, opened: OpenedEvents | None = None
    ) -> DeliveryCounts:
        """Open, describe and deliver one batch (records in log order).

        ``opened`` holds envelopes the projector already opened and validated in this batch,
        by record position; the other records are opened here.
        """
        opened_here: list[tuple[str, Envelope]] = []
        for record in records:
            if IdentityHubEvent.is_one(record.value):
                continue  # a merge decision is not an agency event: nothing to deliver
            done = opened.get((record.topic, record.partition, record.offset)) if opened else None
            if done is None:
                done = await self._open(record)
            if done is not None:
                opened_here.append(done)
        if not opened_here:  # merges only, or nothing that opens: no connection to check out
            return DeliveryCounts(published=0, denied=0, duplicates=0)
        # Every child of the batch read at once (a trickle's batch is nearly a child an event),
        # with the governance context of each, on one connection.
        async with self._processor.reading():
            snapshots = await self._snapshots([child_id for child_id, _ in opened_here])
            events = [
                DeliveryEvent(
                    child_id=child_id,
                    envelope=envelope,
                    statuses=snapshots[child_id].statuses,
                    involved_agencies=snapshots[child_id].involved_agencies,
                    milestones=snapshots[child_id].milestones,
                    significant_harm=snapshots[child_id].significant_harm,
                )
                for child_id, envelope in opened_here
            ]
            prepared = await self._processor.prepare(events)
        return await self._processor.deliver(events, prepared)

    async def _open(self, record: ConsumedRecord) -> tuple[str, Envelope] | None:
        """The record's child and validated envelope; None (logged) if it cannot be opened."""
        try:
            sealed = SealedHubEvent.model_validate_json(record.value)
            plain = await self._cipher.open_envelope(sealed.child_id, sealed.envelope)
            return sealed.child_id, parse_envelope(plain)
        except (ValidationError, ContractValidationError, FieldDecryptionFailed) as exc:
            self._skipped(record, "invalid", exc)
        except (KeyDestroyed, UnknownDataKey) as exc:
            self._skipped(record, "erased", exc)
        return None

    @staticmethod
    def _skipped(record: ConsumedRecord, cause: str, exc: Exception) -> None:
        log.info(
            "delivery.record_skipped",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            cause=cause,
            error_class=type(exc).__name__,
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
