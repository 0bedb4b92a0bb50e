"""Specifications of the local broker's pure parts: its config, jar cache and shipped files."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import uuid
from pathlib import Path

import pytest

from hub.kafka.local import (
    LOG4J2_PROPERTIES,
    POM_XML,
    LocalKafka,
    jar_cache_complete,
    new_cluster_id,
    server_properties,
)
from hub.settings import Settings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
POM_SHA = hashlib.sha256(POM_XML.encode()).hexdigest()


def _parse(properties: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in properties.splitlines() if line)


class TestServerProperties:
    def test_describes_a_combined_single_node_on_loopback(self) -> None:
        """A combined broker+controller on 127.0.0.1 with replication 1 for every internal topic."""
        rendered = server_properties(
            port=29092, controller_port=29093, log_dir=Path("/data/k"), num_partitions=3
        )
        assert _parse(rendered) == {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093",
            "advertised.listeners": "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "controller.quorum.bootstrap.servers": "127.0.0.1:29093",
            "log.dirs": "/data/k",
            "num.partitions": "3",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
        }

    def test_has_no_static_voters(self) -> None:
        """``--standalone`` formatting needs the dynamic quorum, so no controller.quorum.voters."""
        rendered = server_properties(port=1, controller_port=2, log_dir=Path("/d"))
        assert "controller.quorum.voters" not in rendered


class TestClusterId:
    def test_is_a_uuid_in_kafka_base64(self) -> None:
        """22 URL-safe base64 characters that decode to the 16 bytes of a UUID."""
        cluster_id = new_cluster_id()
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16

    def test_differs_each_time(self) -> None:
        """Every formatted data directory gets its own cluster."""
        assert new_cluster_id() != new_cluster_id()

    def test_never_starts_with_a_dash(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A UUID whose base64 starts with "-" (the tool would read it as an option and not
        format) is drawn again."""
        dashed = uuid.UUID(bytes=bytes([0xF8]) + bytes(15))
        plain = uuid.UUID(bytes=bytes([0x01]) + bytes(15))
        assert base64.urlsafe_b64encode(dashed.bytes).startswith(b"-")
        draws = iter([dashed, plain])
        monkeypatch.setattr(uuid, "uuid4", lambda: next(draws))
        assert new_cluster_id() == base64.urlsafe_b64encode(plain.bytes).decode().rstrip("=")


class TestJarCache:
    VERSION = "4.1.1"
    JARS = ("kafka_2.13-4.1.1.jar", "kafka-clients-4.1.1.jar", "log4j-slf4j-impl-2.25.3.jar")

    def _fill(self, libs: Path, **marker_changes: object) -> Path:
        libs.mkdir()
        for name in self.JARS:
            (libs / name).write_bytes(b"PK\x03\x04")
        marker = {"version": self.VERSION, "pom_sha256": POM_SHA, "jars": list(self.JARS)}
        marker.update(marker_changes)
        (libs / ".complete.json").write_text(json.dumps(marker))
        return libs

    def _complete(self, libs: Path) -> bool:
        return jar_cache_complete(libs, version=self.VERSION, pom_sha256=POM_SHA)

    def test_complete_when_marker_and_every_jar_are_there(self, tmp_path: Path) -> None:
        """A filled cache with its marker needs no Maven run."""
        assert self._complete(self._fill(tmp_path / "libs"))

    def test_incomplete_without_a_marker(self, tmp_path: Path) -> None:
        """An interrupted copy (no marker) is fetched again."""
        libs = self._fill(tmp_path / "libs")
        (libs / ".complete.json").unlink()
        assert not self._complete(libs)

    def test_incomplete_when_the_folder_is_missing(self, tmp_path: Path) -> None:
        """A first run fetches the jars."""
        assert not self._complete(tmp_path / "nothing")

    def test_incomplete_when_a_listed_jar_is_missing(self, tmp_path: Path) -> None:
        """A deleted jar triggers a fresh fetch."""
        libs = self._fill(tmp_path / "libs")
        (libs / "kafka-clients-4.1.1.jar").unlink()
        assert not self._complete(libs)

    def test_incomplete_when_a_jar_is_empty(self, tmp_path: Path) -> None:
        """A truncated jar triggers a fresh fetch."""
        libs = self._fill(tmp_path / "libs")
        (libs / "kafka-clients-4.1.1.jar").write_bytes(b"")
        assert not self._complete(libs)

    def test_incomplete_when_the_pom_changed(self, tmp_path: Path) -> None:
        """Editing the embedded pom (say, the log4j version) refreshes the cache."""
        assert not self._complete(self._fill(tmp_path / "libs", pom_sha256="0" * 64))

    def test_incomplete_for_another_version(self, tmp_path: Path) -> None:
        """A marker written for another Kafka version does not count."""
        assert not self._complete(self._fill(tmp_path / "libs", version="4.4.0"))

    def test_incomplete_without_the_broker_jar(self, tmp_path: Path) -> None:
        """A cache that lacks kafka_2.13 itself cannot run a broker."""
        libs = self._fill(tmp_path / "libs", jars=["kafka-clients-4.1.1.jar"])
        assert not self._complete(libs)

    def test_incomplete_when_the_marker_is_garbage(self, tmp_path: Path) -> None:
        """A corrupt marker is treated as no marker."""
        libs = self._fill(tmp_path / "libs")
        (libs / ".complete.json").write_text("{not json")
        assert not self._complete(libs)

    def test_skips_maven_when_complete(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``ensure_jars`` returns a complete cache without looking for Maven."""
        broker = LocalKafka(Settings(data_dir=tmp_path, kafka_version=self.VERSION))
        broker.libs_dir.parent.mkdir(parents=True)
        self._fill(broker.libs_dir)
        monkeypatch.setenv("PATH", "")  # no mvn reachable: a Maven run would raise
        assert broker.ensure_jars() == broker.libs_dir


class TestShippedFiles:
    def test_deploy_pom_is_the_embedded_pom(self) -> None:
        """deploy/kafka/pom.xml is byte-for-byte the pom the hub writes before running Maven."""
        assert (REPO / "deploy/kafka/pom.xml").read_text() == POM_XML

    def test_deploy_log4j_config_is_the_embedded_one(self) -> None:
        """deploy/kafka/log4j2.properties is byte-for-byte the config the broker runs with."""
        assert (REPO / "deploy/kafka/log4j2.properties").read_text() == LOG4J2_PROPERTIES

    def test_pom_defaults_to_the_settings_version(self) -> None:
        """The pom's default kafka.version is the version the settings provision."""
        default = Settings.model_fields["kafka_version"].default
        assert f"<kafka.version>{default}</kafka.version>" in POM_XML

    def test_pom_brings_an_slf4j_binding(self) -> None:
        """Without an SLF4J binding the broker would start silently."""
        assert "<artifactId>log4j-slf4j-impl</artifactId>" in POM_XML


class TestStopWithoutBroker:
    def test_stop_is_a_no_op_when_nothing_runs(self, tmp_path: Path) -> None:
        """Stopping twice, or before any start, reports False and leaves no pid file."""
        broker = LocalKafka(Settings(data_dir=tmp_path))
        assert broker.stop() is False
        assert broker.stop() is False
        assert not broker.pid_path.exists()

    def test_stop_never_signals_a_process_that_is_not_this_broker(self, tmp_path: Path) -> None:
        """A stale pid file naming an unrelated process (here: the test itself) is ignored."""
        broker = LocalKafka(Settings(data_dir=tmp_path))
        broker.dir.mkdir(parents=True)
        broker.pid_path.write_text(f"{os.getpid()}\n")
        assert broker.stop() is False
        assert not broker.pid_path.exists()
