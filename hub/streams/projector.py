"""The narrative projector: writes each child's chronology from `hub.events`, idempotently."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from hub.domain.narrative import entry_for
from hub.observability import Metrics, get_logger
from hub.store.repository import PositionedEntry, SqlStore
from hub.streams.records import ConsumedRecord, Publish
from hub.streams.topics import Topics
from hub.streams.wire import DeadLetter, DeadLetterReason, DeadLetterSource, HubEvent

__all__ = ["NARRATIVE_PROJECTION", "NarrativeProjector"]

log = get_logger(__name__)

NARRATIVE_PROJECTION = "narrative"
PROCESSOR = "narrative"


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
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._topics = topics
        self._publish = publish
        self._metrics = metrics
        self._clock = clock

    async def handle_batch(self, records: Sequence[ConsumedRecord]) -> int:
        """Apply one batch; returns how many entries were newly stored."""
        items: list[PositionedEntry] = []
        pending: list[asyncio.Future[Any]] = []
        now = self._clock()
        async with self._store.engine.begin() as conn:
            done = await self._store.positions(conn, NARRATIVE_PROJECTION)
            fresh = [r for r in records if r.offset >= done.get((r.topic, r.partition), 0)]
            for record in fresh:
                self._metrics.events_in.labels(PROCESSOR, record.topic).inc()
                try:
                    event = HubEvent.model_validate_json(record.value)
                except ValidationError as exc:
                    pending.append(await self._dead_letter(record, exc))
                    continue
                items.append(
                    PositionedEntry(
                        entry=entry_for(event.envelope, event.child_id),
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                    )
                )
            # Dead letters confirmed before the positions that skip their records commit.
            await asyncio.gather(*pending)
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

    async def _dead_letter(self, record: ConsumedRecord, exc: ValidationError) -> Any:
        letter = DeadLetter(
            dlq_id=uuid.uuid4().hex,
            reason=DeadLetterReason.hub_event_invalid,
            detail=f"a hub.events record is not a valid hub event ({exc.error_count()} errors)",
            processor=PROCESSOR,
            source=DeadLetterSource(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key.decode("utf-8", "replace") if record.key else None,
            ),
            failed_at=self._clock(),
            original_b64=DeadLetter.encode_original(record.value),
        )
        self._metrics.dead_lettered.labels(PROCESSOR, letter.reason.value).inc()
        log.error(
            "narrative.dead_lettered",
            dlq_id=letter.dlq_id,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
        return await self._publish(
            self._topics.dlq,
            letter.model_dump_json().encode(),
            key=record.key,
            headers={"content-type": "application/json", **letter.headers()},
        )
