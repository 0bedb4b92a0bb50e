"""Reading a topic from its beginning to the end offsets seen at the start (replay, DLQ)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition

from hub.streams.records import ConsumedRecord

__all__ = ["read_topic"]


async def read_topic(
    bootstrap: str, topic: str, *, batch_records: int = 2000
) -> AsyncIterator[list[ConsumedRecord]]:
    """Yield batches of every record in a topic as it stands now; no consumer group, no commits."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=1000, max_records=batch_records)
            batch: list[ConsumedRecord] = []
            for tp, records in fetched.items():
                batch.extend(ConsumedRecord.from_kafka(r) for r in records if r.offset < ends[tp])
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if batch:
                yield batch
    finally:
        await consumer.stop()
