"""The FastStream side of the hub: the Kafka broker, its publishers and the subscribers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from aiokafka import TopicPartition
from faststream import AckPolicy, StreamMessage
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.specification import AsyncAPI

from contracts import Envelope
from hub.observability import Metrics, get_logger
from hub.settings import Settings
from hub.streams.alerting import AlertConsumer
from hub.streams.ingest import IngestProcessor
from hub.streams.projector import NarrativeProjector
from hub.streams.records import ConsumedRecord
from hub.streams.topics import Topics
from hub.streams.wire import DeadLetter, SealedHubEvent

__all__ = ["HubStreams"]

log = get_logger(__name__)

_RETRY_PAUSE_SECONDS = 1.0
_KAFKA_FETCH_BYTES = 1024 * 1024
"""Kafka's default for one partition's fetch: big fetches keep bulk batches full."""


class BatchHandler(Protocol):
    """Anything that handles a consumed batch (a processor, or processors chained)."""

    async def handle_batch(self, records: Sequence[ConsumedRecord]) -> object:
        """Handle one batch; raise to have it redelivered."""


class HubStreams:
    """Owns the broker connection; publishers are declared so AsyncAPI documents every topic."""

    def __init__(self, settings: Settings, topics: Topics, metrics: Metrics) -> None:
        self.settings = settings
        self.topics = topics
        self.metrics = metrics
        self.broker = KafkaBroker(
            settings.bootstrap,
            client_id="safeguarding-hub",
            enable_idempotence=True,  # acks=all, no duplicates from producer retries
            linger_ms=5,
            max_batch_size=256 * 1024,
            graceful_timeout=30.0,
            # FastStream's own lines go through the root logger, so they come out as JSON too.
            logger=logging.getLogger("hub.faststream"),
            log_level=logging.DEBUG,
            description="Safeguarding Hub event spine.",
        )
        self._publishers: dict[str, Any] = {}
        for kind_topic in topics.all_ingest:
            self._declare(
                kind_topic,
                Envelope,
                "Envelopes submitted by one kind of agency (keyed by the person's identifier).",
            )
        self._declare(
            topics.events,
            SealedHubEvent,
            "Source of truth: validated events linked to a canonical child, keyed by child id.",
        )
        self._declare(topics.dlq, DeadLetter, "Messages the hub could not process, with reason.")

    def _declare(self, topic: str, schema: type, description: str) -> None:
        self._publishers[topic] = self.broker.publisher(
            topic, schema=schema, title=f"{topic}:publish", description=description
        )

    async def publish(
        self, topic: str, value: bytes, *, key: bytes | None, headers: dict[str, str]
    ) -> asyncio.Future[Any]:
        """Send a record; returns a future that resolves when the broker has acknowledged it."""
        publisher = self._publishers[topic]
        return await publisher.publish(value, key=key, headers=headers, no_confirm=True)  # type: ignore[no-any-return]

    def asyncapi(self) -> AsyncAPI:
        """The AsyncAPI description of every topic the hub reads and writes."""
        return AsyncAPI(
            self.broker,
            title="Safeguarding Hub",
            version="0.1.0",
            description="Topics of the multi-agency safeguarding hub.",
        )

    def subscribe_ingest(self, processor: IngestProcessor) -> None:
        """Consume every ingest topic as the `<prefix>-ingest` consumer group."""
        self._subscribe(
            "ingest",
            self.topics.all_ingest,
            processor.handle_batch,
            "Validates, de-duplicates and links submissions; publishes hub.events or hub.dlq.",
            fetch_bytes=self.settings.ingest_fetch_bytes,
        )

    def declare_deliver_topics(self, names: Sequence[str]) -> None:
        """Declare the per-subscriber `deliver.<subscriber>` topics this process publishes to."""
        for name in names:
            self._declare(
                name, dict, "Redacted events for one partner subscriber, keyed by child id."
            )

    def subscribe_narrative(self, projector: NarrativeProjector | BatchHandler) -> None:
        """Consume `hub.events` as the `<prefix>-narrative` consumer group."""
        self._subscribe(
            "narrative",
            [self.topics.events],
            projector.handle_batch,
            "Projects each child's chronology into the store.",
        )

    def subscribe_alerts(self, consumer: AlertConsumer) -> None:
        """Consume `hub.events` as the `<prefix>-alerts` consumer group."""
        self._subscribe(
            "alerts",
            [self.topics.events],
            consumer.handle_batch,
            "Evaluates the alert rules on each child's events; raises and withdraws alerts.",
        )

    def _subscribe(
        self,
        name: str,
        topics: Sequence[str],
        handle: Callable[[Sequence[ConsumedRecord]], Awaitable[object]],
        description: str,
        *,
        fetch_bytes: int = _KAFKA_FETCH_BYTES,
    ) -> None:
        metrics = self.metrics

        # NACK_ON_ERROR: offsets are committed only after the handler returns; an exception
        # rewinds to the batch's first record so it is redelivered (at-least-once).
        @self.broker.subscriber(
            *topics,
            group_id=f"{self.settings.group_prefix}-{name}",
            batch=True,
            max_records=self.settings.batch_max_records,
            batch_timeout_ms=self.settings.batch_wait_ms,
            auto_offset_reset="earliest",
            # A long batch must not cost the group its member: heartbeats every 3 s (or a
            # third of the session), and a member is declared dead only after the session
            # timeout (30 s by default) without one. aiokafka also waits that long (its
            # rebalance timeout defaults to the session's) for members to rejoin a rebalance.
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=min(3_000, self.settings.kafka_session_timeout_ms // 3),
            max_partition_fetch_bytes=fetch_bytes,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=_no_body,
            title=f"{name}:consume",
            description=description,
        )
        async def consume(msg: KafkaMessage) -> None:
            raw = msg.raw_message
            records = [
                ConsumedRecord.from_kafka(r) for r in (raw if isinstance(raw, tuple) else (raw,))
            ]
            try:
                with metrics.processing_seconds.labels(name).time():
                    await handle(records)
            except Exception:
                log.exception(f"{name}.batch_failed", records=len(records))
                await asyncio.sleep(_RETRY_PAUSE_SECONDS)  # back off before redelivery
                raise
            _record_lag(metrics, name, msg, records)


async def _no_body(message: StreamMessage[Any]) -> None:
    """The subscribers read ``msg.raw_message`` (the Kafka records) and parse each value
    themselves: FastStream's default batch decoder would build a message object and
    JSON-decode every record only for the result to be thrown away."""
    return None


def _record_lag(
    metrics: Metrics, processor: str, msg: Any, records: Sequence[ConsumedRecord]
) -> None:
    """Set the consumer-lag gauge from the consumer's high watermarks."""
    consumer = getattr(msg, "consumer", None)
    if consumer is None or not hasattr(consumer, "highwater"):
        return
    last: dict[tuple[str, int], int] = {}
    for r in records:
        last[(r.topic, r.partition)] = max(last.get((r.topic, r.partition), -1), r.offset)
    for (topic, partition), offset in last.items():
        high = consumer.highwater(TopicPartition(topic, partition))
        if high is not None:
            metrics.consumer_lag.labels(processor, topic, str(partition)).set(
                max(high - offset - 1, 0)
            )
