"""Topic deliveries on a real broker: a partner consuming ``deliver.<id>`` with aiokafka gets
exactly the permitted events, redacted, keyed by child, each once despite a redelivery."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from hub.delivery.store import DeliveryStore
from hub.delivery.topics import (
    DeliveryCounts,
    DeliveryEvent,
    TopicDeliveryProcessor,
    deliver_topic,
    deliver_topic_specs,
)
from hub.kafka.admin import ensure_topics
from hub.settings import Settings
from hub.store.db import create_engine, migrate
from tests.unit.test_delivery_topics import (
    CHILD,
    clock,
    expected_copy,
    governance,
    police_concern,
    write_config,
)

pytestmark = pytest.mark.integration


class ProducerPublish:
    """The hub's ``Publish`` over a plain idempotent aiokafka producer."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def __call__(
        self, topic: str, value: bytes, *, key: bytes | None, headers: dict[str, str]
    ) -> asyncio.Future[Any]:
        return await self._producer.send(
            topic, value, key=key, headers=[(k, v.encode()) for k, v in headers.items()]
        )


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    made = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await made.start()
    try:
        yield made
    finally:
        await made.stop()


async def consume_all(bootstrap: str, topic: str, *, expect: int) -> list[Any]:
    """Every record on ``topic`` from the start (waits for ``expect``, then a little more)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"partner-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        quiet_until = None
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            got += [r for records in batch.values() for r in records]
            if len(got) >= expect:
                quiet_until = quiet_until or loop.time() + 1.5  # catch any extra copy
                if loop.time() >= quiet_until:
                    break
    finally:
        await consumer.stop()
    return got


class TestDeliverTopic:
    async def test_partner_gets_exactly_the_permitted_redacted_events(
        self, kafka_bootstrap: str, producer: AIOKafkaProducer, tmp_path: Path
    ) -> None:
        """Two police concerns are delivered (redacted); a health one is not; replay adds none."""
        settings = Settings(topic_prefix=f"t{uuid.uuid4().hex[:8]}-")
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
        await migrate(engine)
        rules, subs = write_config(tmp_path)
        await ensure_topics(kafka_bootstrap, deliver_topic_specs(settings, subs, partitions=2))
        processor = TopicDeliveryProcessor(
            settings=settings,
            subscribers=subs,
            store=DeliveryStore(engine, clock=clock),
            governance=governance(engine, rules),
            publish=ProducerPublish(producer),
            clock=clock,
        )
        permitted = [police_concern(1), police_concern(3)]
        batch = [
            DeliveryEvent(CHILD, permitted[0]),
            DeliveryEvent(CHILD, police_concern(2, kind="health")),
            DeliveryEvent(CHILD, permitted[1]),
        ]
        try:
            first = await processor.handle_batch(batch)
            replay = await processor.handle_batch(batch)
        finally:
            await engine.dispose()
        assert first == DeliveryCounts(published=2, denied=4, duplicates=0)
        assert replay == DeliveryCounts(published=0, denied=4, duplicates=2)
        records = await consume_all(
            kafka_bootstrap, deliver_topic(settings, "school-dsl"), expect=2
        )
        assert [(r.key, json.loads(r.value)) for r in records] == [
            (CHILD.encode(), expected_copy(e)) for e in permitted
        ]
        assert [dict(r.headers)["x-event-id"] for r in records] == [
            e.id.encode() for e in permitted
        ]
        assert {dict(r.headers)["x-rule-ids"] for r in records} == {b"school-encompass"}
        assert {dict(r.headers)["x-rule-pack-version"] for r in records} == {b"delivery-test.1"}
        nurse = await consume_all(kafka_bootstrap, deliver_topic(settings, "nurse"), expect=0)
        assert nurse == []
