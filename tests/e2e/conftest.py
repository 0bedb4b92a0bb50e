"""Fixtures for end-to-end tests: a real `hub serve` process on the real broker and store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from tests.support.databases import BACKENDS, fresh_database_url
from tests.support.hub_process import HubProcess


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each end-to-end test runs once with SQLite and once with PostgreSQL."""
    return str(request.param)


@pytest.fixture
async def hub_env(kafka_bootstrap: str, backend: str, tmp_path: Path) -> dict[str, str]:
    """Environment of an isolated hub: its own topics, consumer groups and database."""
    tag = f"t{uuid.uuid4().hex[:10]}"
    return {
        "HUB_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "HUB_TOPIC_PREFIX": f"{tag}.",
        "HUB_GROUP_PREFIX": tag,
        "HUB_DATABASE_URL": await fresh_database_url(backend, tmp_path),
        "HUB_EVENTS_PARTITIONS": "3",
        "HUB_INGEST_PARTITIONS": "2",
        "HUB_LOG_LEVEL": "INFO",
        # A hub killed mid-test holds its partitions until its session times out; the
        # restarted one waits that long (30 s by default) before it reads anything.
        "HUB_KAFKA_SESSION_TIMEOUT_MS": "10000",
    }


@pytest.fixture
def make_hub(hub_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., HubProcess]]:
    """Factory of hub processes sharing one environment; every one is stopped at the end."""
    made: list[HubProcess] = []

    def make(role: str = "all", **extra_env: str) -> HubProcess:
        hub = HubProcess(env={**hub_env, **extra_env}, data_dir=tmp_path / "data", role=role)
        made.append(hub)
        return hub

    yield make
    for hub in made:
        hub.kill()


@pytest.fixture
def running_hub(make_hub: Callable[..., HubProcess]) -> HubProcess:
    """One started hub running every part."""
    hub = make_hub()
    hub.start()
    return hub


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """A raw producer, for putting messages on topics as a misbehaving adapter would."""
    p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await p.start()
    yield p
    await p.stop()
