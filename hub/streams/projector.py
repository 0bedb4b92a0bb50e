"""The narrative projector: writes each child's chronology from `hub.events`, idempotently.

Each record's envelope is opened with the child's data key, parsed, described, and its text
sealed again under the same key before it is stored, so the store holds no plain text. An
event whose key was destroyed is stored as an *erased* entry (ADR 0006).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from contracts import ContractValidationError, Envelope, parse_envelope
from hub.crypto.data_keys import KeyDestroyed, UnknownDataKey
from hub.crypto.dead_letters import DeadLetterSealer
from hub.crypto.encryption import FieldDecryptionFailed
from hub.crypto.narrative import erased_entry, seal_entry
from hub.crypto.runtime import HubSecurity
from hub.domain.narrative import entry_for
from hub.observability import Metrics, get_logger
from hub.store.reading import reads, shared_reads
from hub.store.repository import MergeChange, PositionedEntry, SqlStore
from hub.streams.letters import sealed_dead_letter
from hub.streams.records import ConsumedRecord, Publish
from hub.streams.topics import Topics
from hub.streams.wire import (
    DeadLetterReason,
    IdentityHubEvent,
    SealedHubEvent,
)

__all__ = ["NARRATIVE_PROJECTION", "NarrativeProjector", "OpenedEvents"]

log = get_logger(__name__)

NARRATIVE_PROJECTION = "narrative"
PROCESSOR = "narrative"

OpenedEvents = dict[tuple[str, int, int], tuple[str, Envelope]]
"""Envelopes a consumer opened and validated, by record position (topic, partition, offset),
with their child id: handed to the next consumer of the same batch so it need not open them."""


class _Unusable(Exception):
    """A hub.events record the projector cannot turn into an entry (dead-lettered)."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class NarrativeProjector:
    """Applies `hub.events` records to the narrative store.

    The store records, in the same transaction as the entries, the next log offset of each
    partition it has applied; records below it are skipped, so redelivery and replay are
    harmless. The caller commits Kafka offsets only after this returns.
    """

    def __init__(
        self,
        *,
        store: SqlStore,
        topics: Topics,
        publish: Publish,
        metrics: Metrics,
        security: HubSecurity,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._topics = topics
        self._publish = publish
        self._metrics = metrics
        self._cipher = security.cipher
        self._dead_letters = DeadLetterSealer(security.keys)
        self._clock = clock

    async def handle_batch(
        self, records: Sequence[ConsumedRecord], *, opened: OpenedEvents | None = None
    ) -> int:
        """Apply one batch; returns how many entries were newly stored.

        With ``opened``, each envelope opened and validated here is added to it (in memory
        only), so deliveries after the projector reuse it instead of opening it again.
        """
        items: list[PositionedEntry] = []
        pending: list[asyncio.Future[Any]] = []
        now = self._clock()
        engine = self._store.engine
        merges: list[MergeChange] = []
        unusable: list[tuple[ConsumedRecord, _Unusable]] = []
        # Opening needs keys from the store: done before the write transaction (SQLite has
        # one writer), the positions and keys read on one connection; apply_entries checks
        # the positions again inside it.
        async with shared_reads(engine):
            async with reads(engine) as conn:
                done = await self._store.positions(conn, NARRATIVE_PROJECTION)
            fresh = [r for r in records if r.offset >= done.get((r.topic, r.partition), 0)]
            for topic, count in Counter(r.topic for r in fresh).items():
                self._metrics.events_in.labels(PROCESSOR, topic).inc(count)
            for record in fresh:
                try:
                    if IdentityHubEvent.is_one(record.value):
                        merges.extend(_merge_change(record))
                    else:
                        items.append(await self._entry(record, opened))
                except _Unusable as bad:
                    unusable.append((record, bad))
        # Sealing a dead letter may write its month's key: after the reads' block.
        for record, bad in unusable:
            pending.append(await self._dead_letter(record, bad.reason, bad.detail))
        # Dead letters confirmed before the positions that skip their records commit.
        await asyncio.gather(*pending)
        async with self._store.engine.begin() as conn:
            if merges:
                await self._store.apply_merges(conn, merges)
                log.info("narrative.merges_followed", changes=len(merges))
            stored = await self._store.apply_entries(
                conn,
                NARRATIVE_PROJECTION,
                items,
                now=now,
                consumed=[(r.topic, r.partition, r.offset) for r in fresh],
            )
        for item in items:
            self._metrics.end_to_end_seconds.observe(
                max((now - item.entry.recorded_at).total_seconds(), 0.0)
            )
        self._metrics.events_out.labels(PROCESSOR, "stored").inc(stored)
        return stored

    async def _entry(
        self, record: ConsumedRecord, opened: OpenedEvents | None = None
    ) -> PositionedEntry:
        """The sealed (or erased) narrative entry of one record; raises _Unusable."""
        try:
            event = SealedHubEvent.model_validate_json(record.value)
        except ValidationError as exc:
            raise _Unusable(
                DeadLetterReason.hub_event_invalid,
                f"a hub.events record is not a valid hub event ({exc.error_count()} errors)",
            ) from exc
        at = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        try:
            # One walk opens it and finds the key its entry is sealed under.
            plain, key = await self._cipher.open_envelope_keyed(event.child_id, event.envelope)
        except KeyDestroyed as gone:
            try:
                entry = erased_entry(event.envelope, event.child_id)
            except (KeyError, ValueError) as exc:
                raise _Unusable(
                    DeadLetterReason.hub_event_invalid,
                    "an erased hub event lacks the attributes its entry needs",
                ) from exc
            log.info("narrative.entry_erased", event_id=entry.event_id, child_id=entry.child_id)
            return PositionedEntry(entry=entry, erased_at=gone.destroyed_at, **at)
        except (FieldDecryptionFailed, UnknownDataKey, KeyError, ValueError, TypeError) as exc:
            raise _Unusable(
                DeadLetterReason.hub_event_unreadable,
                f"the sealed fields of a hub event do not open ({type(exc).__name__})",
            ) from exc
        try:
            envelope = parse_envelope(plain)
        except ContractValidationError as exc:
            raise _Unusable(
                DeadLetterReason.hub_event_invalid,
                f"a hub event's envelope does not meet the contract ({len(exc.errors)} errors)",
            ) from exc
        if opened is not None:
            opened[(record.topic, record.partition, record.offset)] = (event.child_id, envelope)
        return PositionedEntry(entry=seal_entry(key, entry_for(envelope, event.child_id)), **at)

    async def _dead_letter(
        self, record: ConsumedRecord, reason: DeadLetterReason, detail: str
    ) -> Any:
        letter = await sealed_dead_letter(
            record,
            sealer=self._dead_letters,
            dlq_id=uuid.uuid4().hex,
            reason=reason,
            detail=detail,
            processor=PROCESSOR,
            failed_at=self._clock(),
        )
        self._metrics.dead_lettered.labels(PROCESSOR, letter.reason.value).inc()
        log.error(
            "narrative.dead_lettered",
            dlq_id=letter.dlq_id,
            reason=reason.value,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
        return await self._publish(
            self._topics.dlq,
            letter.value(),
            key=letter.dlq_id.encode(),
            headers={"content-type": "application/json", **letter.headers()},
        )


def _merge_change(record: ConsumedRecord) -> list[MergeChange]:
    """The merge or un-merge an identity record asks the narrative to follow (none for the
    other identity decisions); raises _Unusable for a malformed one."""
    try:
        event = IdentityHubEvent.model_validate_json(record.value)
        data = event.data
        if event.type == "identity.merged":
            return [
                MergeChange(
                    merge_id=str(data["merge_id"]),
                    surviving_child_id=str(data["surviving_child_id"]),
                    merged_child_id=str(data["merged_child_id"]),
                    at=datetime.fromisoformat(str(data["merged_at"])),
                )
            ]
        if event.type == "identity.unmerged":
            return [
                MergeChange(
                    merge_id=str(data["merge_id"]),
                    surviving_child_id=str(data["from_child_id"]),
                    merged_child_id=str(data["restored_child_id"]),
                    at=datetime.fromisoformat(str(data["undone_at"])),
                    undone=True,
                )
            ]
        return []
    except (ValidationError, KeyError, ValueError) as exc:
        raise _Unusable(
            DeadLetterReason.hub_event_invalid,
            f"an identity record on hub.events is not valid ({type(exc).__name__})",
        ) from exc
