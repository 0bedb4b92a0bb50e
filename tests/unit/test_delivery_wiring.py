"""``build_delivery``: the parts the composition root adds, from the hub's own pieces."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.crypto.runtime import build_security
from hub.delivery.wiring import build_delivery
from hub.registry import AgencyRegistry
from hub.settings import Settings
from hub.store.db import create_engine
from hub.store.repository import SqlStore
from hub.streams.topics import TopicSpec
from tests.unit.test_delivery_topics import FakePublish

pytestmark = pytest.mark.unit


class TestBuildDelivery:
    async def test_packaged_subscribers_and_topic_specs(self, tmp_path: Path) -> None:
        """With defaults: the packaged subscribers, one deliver topic per topic subscriber."""
        settings = Settings(
            data_dir=tmp_path, topic_prefix="x-", deliver_partitions=2, deliver_retention_days=7
        )
        registry = AgencyRegistry.load(None)
        store = SqlStore(create_engine(settings.db_url))
        parts = build_delivery(
            settings=settings,
            registry=registry,
            store=store,
            security=build_security(settings, store.engine, registry),
            publish=FakePublish(),
        )
        try:
            config = {"retention.ms": str(7 * 86_400_000), "cleanup.policy": "delete"}
            assert parts.topic_specs == [
                TopicSpec("x-deliver.northshire-primary-dsl", 2, config),
                TopicSpec("x-deliver.northshire-health-named-nurse", 2, config),
            ]
            assert [s.agency_kind for s in parts.subscribers.subscribers] == [
                "schools",
                "health",
            ]
        finally:
            await parts.aclose()
            await store.engine.dispose()
