"""How the hub's consumers are configured: the ingest consumer fetches small slices."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from hub.observability import Metrics
from hub.settings import Settings
from hub.streams.app import HubStreams
from hub.streams.topics import Topics

pytestmark = pytest.mark.unit


class _Handler:
    async def handle_batch(self, records: Any) -> None:
        return None


def consumer_args(settings: Settings, name: str) -> dict[str, Any]:
    """One argument of each consumer group, as handed to the Kafka consumer."""
    streams = HubStreams(settings, Topics(settings), Metrics())
    streams.subscribe_ingest(_Handler())  # type: ignore[arg-type]
    streams.subscribe_narrative(_Handler())
    streams.subscribe_alerts(_Handler())  # type: ignore[arg-type]
    return {
        str(s.group_id).removeprefix("hub-"): s._connection_args[name]
        for s in streams.broker.subscribers
    }


def fetch_bytes(settings: Settings) -> dict[str, int]:
    """Each consumer group's per-partition fetch limit."""
    return consumer_args(settings, "max_partition_fetch_bytes")


class TestFetchSizes:
    def test_ingest_fetches_small_slices_the_others_kafkas_default(self) -> None:
        """Ingest reads 64 KiB of a partition at a time (a quiet topic's record is not queued
        behind a busy topic's megabyte); the `hub.events` consumers keep 1 MiB for full
        batches."""
        assert fetch_bytes(Settings()) == {
            "ingest": 64 * 1024,
            "narrative": 1024 * 1024,
            "alerts": 1024 * 1024,
        }

    def test_ingest_fetch_is_a_setting(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``HUB_INGEST_FETCH_BYTES`` sets it; below 1 KiB is refused."""
        monkeypatch.setenv("HUB_INGEST_FETCH_BYTES", "16384")
        assert fetch_bytes(Settings())["ingest"] == 16384
        monkeypatch.setenv("HUB_INGEST_FETCH_BYTES", "100")
        with pytest.raises(ValidationError, match="ingest_fetch_bytes"):
            Settings()


class TestSessionTimeout:
    def test_thirty_seconds_by_default_heartbeats_every_three(self) -> None:
        """A long batch on a loaded machine does not cost a member its partitions."""
        groups = ("ingest", "narrative", "alerts")
        assert consumer_args(Settings(), "session_timeout_ms") == dict.fromkeys(groups, 30_000)
        assert consumer_args(Settings(), "heartbeat_interval_ms") == dict.fromkeys(groups, 3_000)

    def test_a_setting_heartbeats_a_third_of_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``HUB_KAFKA_SESSION_TIMEOUT_MS`` sets it (a restart after a crash waits that long);
        heartbeats keep to a third of it; under Kafka's 6 s minimum is refused."""
        monkeypatch.setenv("HUB_KAFKA_SESSION_TIMEOUT_MS", "7500")
        assert set(consumer_args(Settings(), "session_timeout_ms").values()) == {7_500}
        assert set(consumer_args(Settings(), "heartbeat_interval_ms").values()) == {2_500}
        monkeypatch.setenv("HUB_KAFKA_SESSION_TIMEOUT_MS", "1000")
        with pytest.raises(ValidationError, match="kafka_session_timeout_ms"):
            Settings()
