"""Provisions and runs a single-node Apache Kafka (KRaft) broker from Maven Central jars.

The broker's files live under ``settings.kafka_dir``::

    pom.xml, log4j2.properties    written from the texts below on every use
    libs-<version>/               jar cache filled by Maven (``.complete.json`` marks it whole)
    server.properties, data/      broker config and KRaft log dirs (formatted once)
    broker.log, broker.pid        the running broker's stdout/stderr and process id

The pom and the log4j config are embedded here rather than read from ``deploy/kafka/`` so that an
installed hub (a wheel, no repository around it) provisions the same broker; the copies in
``deploy/kafka/`` are for people and are kept identical by a unit test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import structlog

from hub.settings import Settings

__all__ = [
    "LOG4J2_PROPERTIES",
    "POM_XML",
    "KafkaJarsError",
    "KafkaPortInUseError",
    "KafkaStartError",
    "KafkaStartTimeoutError",
    "LocalKafka",
    "LocalKafkaError",
    "LocalKafkaStatus",
    "jar_cache_complete",
    "new_cluster_id",
    "server_properties",
]

log = structlog.get_logger(__name__)

POM_XML = """\
<?xml version="1.0" encoding="UTF-8"?>
<!--
  Resolves a runnable single-node Apache Kafka (KRaft) from Maven Central; builds nothing.

  The hub copies these jars into <kafka_dir>/libs-<version> with
    mvn -q -B -f pom.xml dependency:copy-dependencies -DoutputDirectory=... -Dkafka.version=4.1.1
  and runs `java -cp 'libs-<version>/*' kafka.Kafka server.properties`.
  hub/kafka/local.py embeds this exact text (a unit test keeps the two identical).
-->
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>hub.local</groupId>
  <artifactId>hub-kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>

  <properties>
    <kafka.version>4.1.1</kafka.version>
    <!-- One log4j version for api, core and the SLF4J 1.x binding Kafka's slf4j-api 1.7 needs. -->
    <log4j.version>2.25.3</log4j.version>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>

  <dependencyManagement>
    <dependencies>
      <dependency>
        <groupId>org.apache.logging.log4j</groupId>
        <artifactId>log4j-api</artifactId>
        <version>${log4j.version}</version>
      </dependency>
      <dependency>
        <groupId>org.apache.logging.log4j</groupId>
        <artifactId>log4j-core</artifactId>
        <version>${log4j.version}</version>
      </dependency>
    </dependencies>
  </dependencyManagement>

  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>${kafka.version}</version>
    </dependency>
    <!-- Without an SLF4J binding the broker starts but logs nothing. -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>${log4j.version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
    </dependency>
  </dependencies>

  <build>
    <pluginManagement>
      <plugins>
        <plugin>
          <groupId>org.apache.maven.plugins</groupId>
          <artifactId>maven-dependency-plugin</artifactId>
          <version>3.8.1</version>
        </plugin>
      </plugins>
    </pluginManagement>
  </build>
</project>
"""

LOG4J2_PROPERTIES = """\
# Logging of the hub's local Kafka broker: console only (the hub sends it to broker.log).
# hub/kafka/local.py embeds this exact text (a unit test keeps the two identical).
name = hub-local-kafka
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
"""

_MARKER = ".complete.json"
_LOG_TAIL_LINES = 40


class LocalKafkaError(RuntimeError):
    """Base of every failure to provision or run the local broker."""


class KafkaJarsError(LocalKafkaError):
    """Maven is missing or could not resolve the broker's jars."""


class KafkaPortInUseError(LocalKafkaError):
    """Something that is not a Kafka broker holds the client or controller port."""


class KafkaStartError(LocalKafkaError):
    """The broker could not be formatted or exited before it accepted clients."""


class KafkaStartTimeoutError(KafkaStartError):
    """The broker did not accept clients within the allowed time (it has been stopped)."""


@dataclass(frozen=True, slots=True)
class LocalKafkaStatus:
    """What ``hub kafka status`` reports: whether a broker answers, and where its files are."""

    running: bool
    pid: int | None
    bootstrap: str
    version: str
    log_path: Path


def new_cluster_id() -> str:
    """Returns a fresh KRaft cluster id: a random UUID in Kafka's URL-safe base64 form.

    Never one starting with "-" (one in 64 would): the storage tool's argument parser reads
    it as an option and refuses to format ("--cluster-id: expected one argument"), as Kafka's
    own ``Uuid.randomUuid`` avoids too.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def server_properties(
    *, port: int, controller_port: int, log_dir: Path, num_partitions: int = 3
) -> str:
    """Renders ``server.properties`` of a combined broker+controller node on 127.0.0.1."""
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": (
            f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"
        ),
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "log.dirs": str(log_dir),
        "num.partitions": str(num_partitions),
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
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def jar_cache_complete(libs_dir: Path, *, version: str, pom_sha256: str) -> bool:
    """Tells whether ``libs_dir`` holds every jar Maven copied for this version and pom."""
    try:
        marker = json.loads((libs_dir / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict):
        return False
    jars = marker.get("jars")
    if marker.get("version") != version or marker.get("pom_sha256") != pom_sha256:
        return False
    if not isinstance(jars, list) or f"kafka_2.13-{version}.jar" not in jars:
        return False
    return all(
        (libs_dir / name).is_file() and (libs_dir / name).stat().st_size > 0 for name in jars
    )


def _pom_sha256() -> str:
    return hashlib.sha256(POM_XML.encode()).hexdigest()


def _log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _port_open(port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout):
        return True
    return False


def _kafka_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """Asks ``bootstrap`` for cluster metadata; True when a broker lists itself."""
    from aiokafka.admin import AIOKafkaAdminClient  # imported late: only start/status need it

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000)
        )
        try:
            await asyncio.wait_for(admin.start(), timeout)
            cluster = await asyncio.wait_for(admin.describe_cluster(), timeout)
            return bool(cluster.get("brokers"))
        except Exception:  # any failure to answer means "not ready"; the caller retries
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    # A thread of its own, so callers inside a running event loop can use this too.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, probe()).result()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``path`` so two processes never fetch or start at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class LocalKafka:
    """Fetches, formats, starts, watches and stops the hub's own single-node Kafka broker."""

    def __init__(
        self, settings: Settings, *, heap: str = "512m", jar_cache: Path | None = None
    ) -> None:
        """Binds to ``settings.kafka_dir``; ``jar_cache`` lets brokers share one jar cache."""
        self.settings = settings
        self.version = settings.kafka_version
        self.dir = settings.kafka_dir.resolve()
        self.jar_cache = (jar_cache or self.dir).resolve()
        self.libs_dir = self.jar_cache / f"libs-{self.version}"
        self.data_dir = self.dir / "data"
        self.config_path = self.dir / "server.properties"
        self.log_path = self.dir / "broker.log"
        self.pid_path = self.dir / "broker.pid"
        self.bootstrap = f"127.0.0.1:{settings.kafka_port}"
        self.heap = heap
        self._proc: subprocess.Popen[bytes] | None = None

    # -- jars ---------------------------------------------------------------------------------

    def ensure_jars(self) -> Path:
        """Fills the jar cache with Maven unless it is already complete; returns its folder."""
        with _locked(self.jar_cache / ".jars.lock"):
            return self._fetch_jars()

    def _fetch_jars(self) -> Path:
        pom_sha = _pom_sha256()
        if jar_cache_complete(self.libs_dir, version=self.version, pom_sha256=pom_sha):
            return self.libs_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaJarsError(
                "Maven (mvn) is not on PATH: install Maven 3.8+ (e.g. apt-get install maven) "
                "or set HUB_KAFKA_BOOTSTRAP to a running Kafka cluster."
            )
        pom = self.jar_cache / "pom.xml"
        pom.write_text(POM_XML)
        partial = self.jar_cache / f"libs-{self.version}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        started = time.monotonic()
        log.info("kafka.local.fetching_jars", version=self.version, libs_dir=str(self.libs_dir))
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}",
            f"-Dkafka.version={self.version}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-_LOG_TAIL_LINES:])
            raise KafkaJarsError(
                f"Maven could not resolve org.apache.kafka:kafka_2.13:{self.version} "
                f"(exit {result.returncode}); is Maven Central reachable?\n{tail}"
            )
        jars = sorted(p.name for p in partial.glob("*.jar"))
        marker = {"version": self.version, "pom_sha256": _pom_sha256(), "jars": jars}
        (partial / _MARKER).write_text(json.dumps(marker, indent=1))
        shutil.rmtree(self.libs_dir, ignore_errors=True)
        partial.rename(self.libs_dir)
        log.info(
            "kafka.local.jars_fetched",
            version=self.version,
            jars=len(jars),
            seconds=round(time.monotonic() - started, 1),
        )
        return self.libs_dir

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> LocalKafkaStatus:
        """Starts the broker unless one already answers; returns once it serves metadata."""
        deadline = time.monotonic() + timeout
        with _locked(self.dir / ".lock"):
            pid = self._live_pid()
            if pid is not None:
                self._wait_ready(deadline, pid)
                return self.status()
            if _port_open(self.settings.kafka_port) and _kafka_answers(self.bootstrap):
                log.info("kafka.local.already_running", bootstrap=self.bootstrap)
                return self.status()
            for port in (self.settings.kafka_port, self.settings.kafka_controller_port):
                if _port_open(port):
                    raise KafkaPortInUseError(
                        f"port {port} on 127.0.0.1 is taken by something that is not this hub's "
                        "Kafka broker; free it or set HUB_KAFKA_PORT / HUB_KAFKA_CONTROLLER_PORT."
                    )
            self._launch(self.ensure_jars())
            self._wait_ready(deadline, self._proc.pid if self._proc else None)
            return self.status()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stops the broker this hub started (SIGTERM, then SIGKILL); False if none was running."""
        with _locked(self.dir / ".lock"):
            pid = self._live_pid()
            if pid is None:
                self.pid_path.unlink(missing_ok=True)
                return False
            self._terminate(pid, timeout)
            log.info("kafka.local.stopped", pid=pid, bootstrap=self.bootstrap)
            return True

    def is_running(self) -> bool:
        """Tells whether this hub's broker process lives or some broker answers on the port."""
        if self._live_pid() is not None:
            return True
        return _port_open(self.settings.kafka_port) and _kafka_answers(self.bootstrap, 3.0)

    def status(self) -> LocalKafkaStatus:
        """Reports whether the broker runs, its pid (if this hub started it) and its files."""
        pid = self._live_pid()
        running = pid is not None or (
            _port_open(self.settings.kafka_port) and _kafka_answers(self.bootstrap, 3.0)
        )
        return LocalKafkaStatus(running, pid, self.bootstrap, self.version, self.log_path)

    # -- helpers ------------------------------------------------------------------------------

    def _java_command(self, libs_dir: Path, *args: str) -> list[str]:
        java_home = os.environ.get("JAVA_HOME")
        java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
        if not java or not Path(java).exists():
            raise KafkaStartError("java is not on PATH (Kafka 4 needs Java 17+); install it.")
        return [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            "-cp",
            str(libs_dir / "*"),
            *args,
        ]

    def _launch(self, libs_dir: Path) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
        self.config_path.write_text(
            server_properties(
                port=self.settings.kafka_port,
                controller_port=self.settings.kafka_controller_port,
                log_dir=self.data_dir,
                num_partitions=self.settings.ingest_partitions,
            )
        )
        if not (self.data_dir / "meta.properties").exists():
            self._format(libs_dir)
        if self.log_path.exists():
            self.log_path.replace(self.log_path.with_suffix(".log.1"))
        cmd = self._java_command(libs_dir, "kafka.Kafka", str(self.config_path))
        with self.log_path.open("wb") as out:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,
            )
        self.pid_path.write_text(f"{self._proc.pid}\n")
        log.info(
            "kafka.local.starting",
            pid=self._proc.pid,
            version=self.version,
            bootstrap=self.bootstrap,
            log_path=str(self.log_path),
        )

    def _format(self, libs_dir: Path) -> None:
        cluster_id = new_cluster_id()
        cmd = self._java_command(
            libs_dir,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            cluster_id,
            "-c",
            str(self.config_path),
        )
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise KafkaStartError(
                f"formatting Kafka storage in {self.data_dir} failed (exit {result.returncode}):\n"
                + "\n".join((result.stdout + result.stderr).splitlines()[-_LOG_TAIL_LINES:])
            )
        log.info("kafka.local.formatted", cluster_id=cluster_id, data_dir=str(self.data_dir))

    def _wait_ready(self, deadline: float, pid: int | None) -> None:
        started = time.monotonic()
        while True:
            exit_code = self._proc.poll() if self._proc is not None else None
            if exit_code is not None or (pid is not None and not self._alive(pid)):
                self.pid_path.unlink(missing_ok=True)
                raise KafkaStartError(
                    f"Kafka broker exited (code {exit_code}) before accepting clients; "
                    f"last lines of {self.log_path}:\n{_log_tail(self.log_path)}"
                )
            if _port_open(self.settings.kafka_port) and _kafka_answers(self.bootstrap, 3.0):
                log.info(
                    "kafka.local.ready",
                    pid=pid,
                    bootstrap=self.bootstrap,
                    seconds=round(time.monotonic() - started, 1),
                )
                return
            if time.monotonic() >= deadline:
                if pid is not None:
                    self._terminate(pid, 10.0)
                raise KafkaStartTimeoutError(
                    f"Kafka broker did not accept clients on {self.bootstrap} in time (stopped); "
                    f"last lines of {self.log_path}:\n{_log_tail(self.log_path)}"
                )
            time.sleep(0.25)

    def _terminate(self, pid: int, timeout: float) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self._alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._alive(pid):
            log.warning("kafka.local.killed", pid=pid, after_seconds=timeout)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while self._alive(pid):
                time.sleep(0.05)
        if self._proc is not None and self._proc.pid == pid:
            self._proc.wait()
            self._proc = None
        self.pid_path.unlink(missing_ok=True)

    def _alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rpartition(")")[2].split()[0] != "Z"  # a zombie has already exited

    def _live_pid(self) -> int | None:
        """The pid in the pid file, if that process lives and is this directory's broker."""
        try:
            pid = int(self.pid_path.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        if b"kafka.Kafka" not in cmdline or str(self.config_path).encode() not in cmdline:
            return None
        return pid if self._alive(pid) else None
