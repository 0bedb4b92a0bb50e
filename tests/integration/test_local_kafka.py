"""Specifications of LocalKafka against the real broker it provisions (Java 17+, Maven needed).

The tests run in file order on one broker: it starts in the fixture, serves clients and
transactions, and is stopped by the last test (the fixture stops it again, harmlessly).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from hub.kafka.local import KafkaPortInUseError, KafkaStartError, LocalKafka
from hub.settings import Settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
JAR_CACHE = REPO / ".hub" / "test-kafka" / "kafka"  # shared with the kafka_bootstrap fixture


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _settings(data_dir: Path) -> Settings:
    port, controller_port = _free_ports(2)
    return Settings(
        data_dir=data_dir,
        kafka_bootstrap=None,
        kafka_port=port,
        kafka_controller_port=controller_port,
    )


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A broker of its own in a temporary data dir on a free port pair."""
    local = LocalKafka(_settings(tmp_path_factory.mktemp("kafka")), jar_cache=JAR_CACHE)
    local.start(timeout=300)
    try:
        yield local
    finally:
        local.stop()


def _topic() -> str:
    return f"it-{uuid.uuid4().hex[:8]}"


async def _create_topics(bootstrap: str, *names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1) for name in names])
    finally:
        await admin.close()


async def _consume_one(consumer: AIOKafkaConsumer) -> list[bytes | None]:
    for _ in range(10):
        batches = await consumer.getmany(timeout_ms=2000)
        if batches:
            return [record.value for records in batches.values() for record in records]
    return []


class TestLocalKafka:
    def test_start_reports_a_running_broker(self, broker: LocalKafka) -> None:
        """After start() the status names the pid, version, address and log file."""
        status = broker.status()
        assert status.running is True
        assert status.pid is not None
        assert status.bootstrap == broker.bootstrap
        assert status.version == broker.settings.kafka_version
        assert status.log_path.read_text().count("Kafka Server started") == 1

    def test_second_start_reuses_the_running_broker(self, broker: LocalKafka) -> None:
        """Another LocalKafka on the same dir (as from another process) starts nothing new."""
        pid = broker.status().pid
        assert LocalKafka(broker.settings).start(timeout=30).pid == pid
        assert broker.log_path.read_text().count("Kafka Server started") == 1

    async def test_produces_consumes_and_commits_in_a_group(self, broker: LocalKafka) -> None:
        """An idempotent producer's record reaches a group consumer whose commit sticks."""
        topic = _topic()
        await _create_topics(broker.bootstrap, topic)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True)
        await producer.start()
        try:
            sent = await producer.send_and_wait(topic, b"concern-raised", key=b"child-1")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=broker.bootstrap,
            group_id=f"{topic}-group",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            assert await _consume_one(consumer) == [b"concern-raised"]
            await consumer.commit({sent.topic_partition: sent.offset + 1})
            assert await consumer.committed(sent.topic_partition) == sent.offset + 1
        finally:
            await consumer.stop()

    async def test_transactions_commit_output_and_offsets_together(
        self, broker: LocalKafka
    ) -> None:
        """A transactional producer's output and sent offsets commit atomically on one node."""
        source, sink = _topic(), _topic()
        group = f"{source}-group"
        await _create_topics(broker.bootstrap, source, sink)
        seed = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await seed.start()
        try:
            consumed = await seed.send_and_wait(source, b"submission")
        finally:
            await seed.stop()
        producer = AIOKafkaProducer(
            bootstrap_servers=broker.bootstrap, transactional_id=f"{source}-tx"
        )
        await producer.start()
        try:
            async with producer.transaction():
                await producer.send(sink, b"event")
                await producer.send_offsets_to_transaction(
                    {consumed.topic_partition: consumed.offset + 1}, group
                )
        finally:
            await producer.stop()
        reader = AIOKafkaConsumer(
            sink,
            bootstrap_servers=broker.bootstrap,
            group_id=f"{sink}-reader",
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await reader.start()
        try:
            assert await _consume_one(reader) == [b"event"]
        finally:
            await reader.stop()
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(group)
        finally:
            await admin.close()
        assert offsets[consumed.topic_partition].offset == consumed.offset + 1

    def test_stop_leaves_status_stopped(self, broker: LocalKafka) -> None:
        """stop() ends the process, removes the pid file, and a second stop() is a no-op."""
        assert broker.stop() is True
        status = broker.status()
        assert (status.running, status.pid) == (False, None)
        assert not broker.pid_path.exists()
        assert broker.stop() is False


class TestStartFailures:
    def test_refuses_a_port_held_by_something_else(self, tmp_path: Path) -> None:
        """A non-Kafka listener on the client port is reported, and no broker is launched."""
        local = LocalKafka(_settings(tmp_path), jar_cache=JAR_CACHE)
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", local.settings.kafka_port))
            squatter.listen()
            with pytest.raises(KafkaPortInUseError, match=str(local.settings.kafka_port)):
                local.start(timeout=30)
        assert not local.pid_path.exists()

    def test_a_broker_that_cannot_start_raises_with_the_jvm_output(self, tmp_path: Path) -> None:
        """A JVM that exits at once (heap too small) fails fast with its own error message."""
        local = LocalKafka(_settings(tmp_path), heap="1k", jar_cache=JAR_CACHE)
        with pytest.raises(KafkaStartError, match="heap"):
            local.start(timeout=60)
        assert local.status().running is False
