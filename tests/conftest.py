"""Shared fixtures: where the integration and end-to-end tests find a real Kafka broker."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

pytest_plugins = ["tests.support.pii_plugin"]
"""Scans everything the suite logged for the synthetic personal data it used (session end)."""

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """CLI tests point logging at a runner's stream that closes; restore it after every test."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**config)
    root.handlers[:], root.level = handlers, level


def _docker_answers() -> bool:
    """Tells, within a few seconds, whether a Docker engine answers a ping."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, no engine: all mean "no Docker here"
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real Kafka, chosen in this order.

    1. ``HUB_KAFKA_BOOTSTRAP`` if set (a cluster someone else runs; left alone).
    2. testcontainers' Kafka module (Confluent image, KRaft) if a Docker engine answers.
    3. The hub's own ``LocalKafka`` in ``<repo>/.hub/test-kafka`` on ports 29092/29093, its jars
       cached there across runs. A broker already running there is reused and left running;
       one this fixture started is stopped at the end of the session.
    """
    if bootstrap := os.environ.get("HUB_KAFKA_BOOTSTRAP"):
        yield bootstrap
        return
    if _docker_answers():
        from testcontainers.community.kafka import KafkaContainer

        container = (
            KafkaContainer("confluentinc/cp-kafka:7.9.0")
            .with_kraft()
            .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
            .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
            .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
        )
        with container:
            yield container.get_bootstrap_server()
        return
    from hub.kafka.local import LocalKafka
    from hub.settings import Settings

    broker = LocalKafka(
        Settings(
            data_dir=REPO / ".hub" / "test-kafka",
            kafka_bootstrap=None,
            kafka_port=29092,
            kafka_controller_port=29093,
        )
    )
    started_here = not broker.is_running()
    broker.start(timeout=300)
    try:
        yield broker.bootstrap
    finally:
        if started_here:
            broker.stop()
