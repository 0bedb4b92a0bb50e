"""Throughput and latency of the real hub pipeline, and its ratio to raw aiokafka.

One run, one broker:

1. **Broker**: ``HUB_KAFKA_BOOTSTRAP`` if set, else the hub's own local broker
   (``hub.kafka.local.LocalKafka``, data dir ``--data-dir``, default ``.hub``); stopped at the
   end only if this run started it.
2. **Hub**: a real ``python -m hub serve`` subprocess with an isolated environment (temporary
   ``HUB_DATA_DIR``, random topic and consumer-group prefixes, a fresh SQLite file or a fresh
   PostgreSQL database, ``HUB_BATCH_MAX_RECORDS``), ready when ``GET /readyz`` answers 200 and
   both of its consumer groups are stable.
3. **Load**: N valid ``concern.raised`` envelopes (``contracts.examples.example_envelope``) for
   N/20 children, pre-serialised to bytes before timing; only ``recorded_at`` is spliced in at
   the moment each one is produced, so ``stored_at - recorded_at`` is submission-to-stored
   latency. They go to ``<prefix>ingest.police`` keyed by ``nhs:<number>`` (as the HTTP API
   keys them) from an aiokafka producer (``enable_idempotence=True, linger_ms=5``), as fast
   as it goes.
4. **Hub figures**: the store is polled (SQLAlchemy, every 0.5 s) until it holds N narrative
   entries. Hub events/s = N / (first produce -> newest ``stored_at``). Latency p50/p99/max
   from ``narrative_entries.stored_at - recorded_at``. The hub's CPU time (``/proc``) and its
   ``hub_batch_processing_seconds`` per processor (``/metrics``) show where the time went.
5. **Raw baseline**: the hub is stopped; the same bytes are produced with the same producer
   settings to a fresh ``<prefix>raw`` topic with as many partitions as ``hub.events``, and
   consumed by a separate process in a consumer group with ``getmany`` batches and a commit
   after each batch (a minimal at-least-once consumer). Raw events/s = N / (first produce ->
   last consumed).

It prints plain lines and, last, one JSON line with every figure. No thresholds, no asserts.

Usage::

    .venv/bin/python bench/pipeline.py [--events 100000] [--store sqlite|postgresql]
        [--postgres-url URL] [--batch 500] [--data-dir .hub]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from multiprocessing.queues import Queue as MpQueue
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.examples import example_envelope, valid_nhs_number
from hub.crypto.agency_keys import dev_key_id, dev_private_key
from hub.crypto.signing import canonical_json
from hub.settings import Settings
from hub.store.db import create_engine
from hub.store.schema import narrative_entries

EVENTS_PER_CHILD = 20
POLL_SECONDS = 0.5
_PLACEHOLDER = "@@RECORDED_AT@@"
_SIGNATURE = "@@SIGNATURE@@"
_AGENCY = "northshire-police"
_CLK_TCK = os.sysconf("SC_CLK_TCK")

# `hub serve` under cProfile. uvicorn re-raises SIGTERM after its graceful shutdown, which would
# kill the process before `python -m cProfile` writes its stats; a SIGTERM handler of our own
# (uvicorn restores it before re-raising) turns that into SystemExit so the stats get written.
_PROFILED_HUB = """
import cProfile, runpy, signal, sys
out, port = sys.argv[1], sys.argv[2]
def _exit(*_):
    raise SystemExit(0)
signal.signal(signal.SIGTERM, _exit)
sys.argv = ["hub", "serve", "--port", port]
profile = cProfile.Profile()
try:
    profile.runcall(runpy.run_module, "hub", run_name="__main__")
except SystemExit:
    pass
finally:
    profile.dump_stats(out)
"""


# -- small helpers ------------------------------------------------------------------------------


def say(line: str = "") -> None:
    """Print a progress/result line at once (the bench runs for minutes)."""
    print(line, flush=True)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int | None) -> float | None:
    """User+system CPU seconds a process has used so far (from /proc), None if unknown."""
    if pid is None:
        return None
    return cpu_seconds_of(Path(f"/proc/{pid}/stat"))


def cpu_seconds_of(stat: Path) -> float | None:
    """User+system CPU seconds from a /proc ``stat`` file (process or thread)."""
    try:
        fields = stat.read_text().rpartition(")")[2].split()
    except OSError:
        return None
    # After the command name: state is fields[0], utime is field 14 of stat => index 11 here.
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def thread_cpu_seconds(pid: int | None) -> dict[int, float]:
    """CPU seconds per thread of a process (thread id -> seconds); the main thread's id is pid."""
    out: dict[int, float] = {}
    if pid is None:
        return out
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            seconds = cpu_seconds_of(task / "stat")
            if seconds is not None:
                out[int(task.name)] = seconds
    return out


def thread_split(pid: int | None, before: dict[int, float]) -> dict[str, float]:
    """CPU seconds used since ``before`` by the main thread and by all other threads."""
    after = thread_cpu_seconds(pid)
    used = {tid: cpu - before.get(tid, 0.0) for tid, cpu in after.items()}
    main = used.pop(pid, 0.0) if pid is not None else 0.0
    busiest = max(used.values(), default=0.0)
    return {
        "main_thread": round(main, 1),
        "other_threads": round(sum(used.values()), 1),
        "busiest_other_thread": round(busiest, 1),
    }


def percentiles(values_ms: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99, max (and mean, min, p90) of a list of milliseconds, rounded to 0.1 ms."""
    if not values_ms:
        return {}
    ordered = sorted(values_ms)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "min": round(ordered[0], 1),
        "p50": round(pick(0.50), 1),
        "p90": round(pick(0.90), 1),
        "p95": round(pick(0.95), 1),
        "p99": round(pick(0.99), 1),
        "max": round(ordered[-1], 1),
        "mean": round(statistics.fmean(ordered), 1),
    }


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; the hub writes UTC, so treat naive as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# -- the load -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Load:
    """Pre-serialised messages: value = head + <recorded_at> + tail, and a partition key.

    Signed loads (``mids`` set): value = head + <recorded_at> + mid + <signature> + tail, the
    Ed25519 signature (the agency's dev key) made at produce time over canonical head +
    <recorded_at> + canonical tail, since ``recorded_at`` is part of the signed content.
    """

    keys: list[bytes]
    heads: list[bytes]
    tails: list[bytes]
    children: int
    mids: list[bytes] | None = None
    canonical: list[tuple[bytes, bytes]] | None = None

    def __len__(self) -> int:
        return len(self.keys)


def bench_person(child: int, *, varied: bool) -> dict[str, Any]:
    """The person of background child ``child``, without identifiers.

    By default every child is "Ruby Bench", born 2015-06-01 (digits are not name tokens):
    one identity block for all, the worst case for matching new children. ``varied`` gives
    each child its own birth date (from 2008-01-01, a day apart) and one of 12 given names and
    169 family names, as a population's blocks are: a handful of people each.
    """
    if not varied:
        return {"given": "Ruby", "family": f"Bench{child}", "born": "2015-06-01"}
    first, second = divmod(child // len(_GIVEN) % len(_LETTERS) ** 2, len(_LETTERS))
    return {
        "given": _GIVEN[child % len(_GIVEN)],
        "family": f"Bench{_LETTERS[first]}{_LETTERS[second]}",
        "born": (date(2008, 1, 1) + timedelta(days=child)).isoformat(),
    }


_GIVEN = (
    "Ruby",
    "Amir",
    "Chloe",
    "Dev",
    "Esme",
    "Femi",
    "Grace",
    "Hugo",
    "Ines",
    "Jo",
    "Kai",
    "Lena",
)
_LETTERS = "bdfklmnprstvz"


def build_load(events: int, run_id: str, *, signed: bool = True, varied: bool = False) -> Load:
    """N valid envelopes over N/20 children, serialised except for ``recorded_at`` (and the
    signature, when ``signed``); the children's people as ``bench_person`` gives them."""
    children = max(1, events // EVENTS_PER_CHILD)
    if children > 900_000:
        raise SystemExit("too many children for valid_nhs_number's seed range")
    nhs = [valid_nhs_number(seed) for seed in range(children)]
    keys: list[bytes] = []
    heads: list[bytes] = []
    tails: list[bytes] = []
    mids: list[bytes] = []
    canonical: list[tuple[bytes, bytes]] = []
    for i in range(events):
        child = i % children
        person = bench_person(child, varied=varied)
        envelope = example_envelope(
            id=f"northshire-police:bench-{run_id}-{i:08d}",
            subject=f"NP-BENCH-{child:07d}",
            recorded_at=_PLACEHOLDER,
            person={
                "identifiers": [{"system": "nhs", "value": nhs[child]}],
                "name": {"given": person["given"], "family": person["family"], "aliases": []},
                "birth_date": person["born"],
                "sex": "female",
            },
        )
        if signed:
            envelope = {**envelope, "key_id": dev_key_id(_AGENCY), "signature": _SIGNATURE}
            c_head, _, c_tail = canonical_json(envelope).partition(_PLACEHOLDER.encode())
            canonical.append((c_head, c_tail))
        raw = json.dumps(envelope, separators=(",", ":")).encode()
        head, _, tail = raw.partition(_PLACEHOLDER.encode())
        if signed:
            mid, _, tail = tail.partition(_SIGNATURE.encode())
            mids.append(mid)
        keys.append(f"nhs:{nhs[child]}".encode())
        heads.append(head)
        tails.append(tail)
    if signed:
        return Load(keys, heads, tails, children, mids=mids, canonical=canonical)
    return Load(keys=keys, heads=heads, tails=tails, children=children)


def signed_value(load: Load, index: int, stamp: bytes, key: Any) -> bytes:
    """A signed load's message ``index`` with its recorded_at and a fresh signature."""
    assert load.mids is not None and load.canonical is not None
    c_head, c_tail = load.canonical[index]
    signature = base64.urlsafe_b64encode(key.sign(c_head + stamp + c_tail)).rstrip(b"=")
    return load.heads[index] + stamp + load.mids[index] + signature + load.tails[index]


@dataclass(slots=True)
class Produced:
    """When producing started (wall clock) and how long until every record was acknowledged."""

    started_wall: float
    acked_wall: float

    @property
    def seconds(self) -> float:
        return self.acked_wall - self.started_wall


async def produce(bootstrap: str, topic: str, load: Load) -> Produced:
    """Send every message as fast as the producer takes them; wait for every acknowledgement."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures: list[asyncio.Future[Any]] = []
        signer = dev_private_key(_AGENCY)
        started = time.time()
        for index, (key, head, tail) in enumerate(
            zip(load.keys, load.heads, load.tails, strict=True)
        ):
            stamp = datetime.now(UTC).isoformat().encode()
            value = (
                head + stamp + tail
                if load.mids is None
                else signed_value(load, index, stamp, signer)
            )
            futures.append(await producer.send(topic, value, key=key))
        await asyncio.gather(*futures)
        return Produced(started_wall=started, acked_wall=time.time())
    finally:
        await producer.stop()


# -- the broker ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Broker:
    """The Kafka the bench talks to, and whether (and how) to stop it afterwards."""

    bootstrap: str
    pid: int | None = None
    local: Any = None  # hub.kafka.local.LocalKafka when this run started it
    note: str = ""


def open_broker(data_dir: Path) -> Broker:
    """``HUB_KAFKA_BOOTSTRAP`` if set, else the hub's local broker (started if not running)."""
    if bootstrap := os.environ.get("HUB_KAFKA_BOOTSTRAP"):
        return Broker(bootstrap=bootstrap, note="HUB_KAFKA_BOOTSTRAP (external)")
    from hub.kafka.local import LocalKafka

    local = LocalKafka(Settings(data_dir=data_dir, kafka_bootstrap=None))
    running = local.is_running()
    status = local.start(timeout=300)
    note = f"local broker in {local.dir} ({'reused' if running else 'started by the bench'})"
    return Broker(
        bootstrap=status.bootstrap, pid=status.pid, local=None if running else local, note=note
    )


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    """Create one topic with an explicit partition count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def delete_topics_with_prefix(bootstrap: str, prefix: str) -> list[str]:
    """Delete every topic this run created (they all carry its random prefix)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if mine:
            await admin.delete_topics(mine)
        return mine
    finally:
        await admin.close()


# -- the database -------------------------------------------------------------------------------


async def create_pg_database(admin_url: str) -> tuple[str, str]:
    """A fresh database on the PostgreSQL server (as tests/support/databases.py makes them)."""
    import asyncpg

    name = f"hub_bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}", name


async def drop_pg_database(admin_url: str, name: str) -> None:
    """Drop the bench's database (forcing off any connection left behind)."""
    import asyncpg

    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def count_entries(engine: AsyncEngine) -> int:
    """How many narrative entries the store holds (0 until the hub has migrated it)."""
    async with engine.connect() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(narrative_entries))).scalar_one()
        )


async def has_stored_at(engine: AsyncEngine) -> bool:
    """Whether this hub's schema records ``narrative_entries.stored_at``."""
    async with engine.connect() as conn:
        columns = await conn.run_sync(
            lambda sync: [c["name"] for c in inspect(sync).get_columns("narrative_entries")]
        )
    return "stored_at" in columns


async def entry_times(engine: AsyncEngine) -> list[tuple[datetime, datetime]]:
    """(recorded_at, stored_at) of every narrative entry, both as aware UTC."""
    cols = narrative_entries.c
    async with engine.connect() as conn:
        rows = (await conn.execute(select(cols.recorded_at, cols.stored_at))).all()
    return [(as_utc(r[0]), as_utc(r[1])) for r in rows]


# -- the hub process ----------------------------------------------------------------------------


class Hub:
    """A ``python -m hub serve`` subprocess with its own environment and log file."""

    def __init__(
        self,
        env: dict[str, str],
        data_dir: Path,
        profile: Path | None,
        command: Sequence[str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.env = env
        self.command = command
        self.cwd = cwd
        """Where ``python -m hub`` starts: its ``hub`` package comes from this folder (the
        current directory stands before PYTHONPATH and the installed project on sys.path)."""
        self.data_dir = data_dir
        self.port = free_port()
        self.log_path = data_dir / "hub.log"
        self.profile = profile
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 120.0) -> None:
        """Start it and wait until ``/readyz`` says 200."""
        cmd = [sys.executable, "-m", "hub", "serve", "--port", str(self.port)]
        if self.profile is not None:
            cmd = [sys.executable, "-c", _PROFILED_HUB, str(self.profile), str(self.port)]
        if self.command is not None:  # a wrapper that starts `hub serve` itself (last arg: port)
            cmd = [*self.command, str(self.port)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.cwd,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"hub not ready within {timeout}s:\n{self.tail()}")

    def wait_assigned(self, groups: Sequence[str], timeout: float) -> bool:
        """Wait until the hub logs a partition assignment for each consumer group.

        (aiokafka 0.14's ``describe_consumer_groups`` fails to decode Kafka 4's answer, so the
        hub's own log is read. Its JSON line "... assigned to partitions" names no group, so
        the lines are counted, one per group, as ``bench/alert_latency.py`` does.)
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            if text.count("assigned to partitions") >= len(groups):
                return True
            time.sleep(0.1)
        return False

    def processing_seconds(self) -> dict[str, dict[str, float]]:
        """Sum and count of ``hub_batch_processing_seconds`` per processor, from /metrics."""
        out: dict[str, dict[str, float]] = {}
        with contextlib.suppress(httpx.HTTPError):
            text = httpx.get(f"{self.url}/metrics", timeout=10).text
            for family in text_string_to_metric_families(text):
                if family.name != "hub_batch_processing_seconds":
                    continue
                for sample in family.samples:
                    name = sample.name.rpartition("_")[2]
                    if name in ("sum", "count"):
                        out.setdefault(sample.labels["processor"], {})[name] = sample.value
        return out

    def published(self, processor: str) -> float | None:
        """``hub_events_out_total{processor, outcome="published"}`` from /metrics, if it answers."""
        with contextlib.suppress(httpx.HTTPError):
            text = httpx.get(f"{self.url}/metrics", timeout=10).text
            return sum(
                sample.value
                for family in text_string_to_metric_families(text)
                if family.name == "hub_events_out"
                for sample in family.samples
                if sample.name == "hub_events_out_total"
                and sample.labels.get("processor") == processor
                and sample.labels.get("outcome") == "published"
            )
        return None

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (graceful), then SIGKILL of its process group if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()

    def tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass(slots=True)
class Leftovers:
    """What the run must clean up whatever happens: the hub process and a PostgreSQL database."""

    hub: Hub | None = None
    db_name: str | None = None


@dataclass(slots=True)
class HubResult:
    """What the hub phase measured."""

    produce_seconds: float
    seconds: float
    events_per_s: float
    latency_ms: dict[str, float]
    hub_cpu_seconds: float | None
    broker_cpu_seconds: float | None
    processing: dict[str, dict[str, float]]
    hub_threads: dict[str, float]
    dead_letters_seen: bool
    polled_seconds: float


async def run_hub_phase(
    args: argparse.Namespace,
    broker: Broker,
    load: Load,
    run_id: str,
    work: Path,
    leftovers: Leftovers,
    *,
    hub_command: Sequence[str] | None = None,
) -> tuple[HubResult, Hub]:
    """Start the hub, push the load through it and measure; returns the (still running) hub.

    ``hub_command`` replaces ``python -m hub serve`` with a wrapper (given the port as its last
    argument), e.g. ``bench/security_ratio.py``'s hub with a null cipher.
    """
    if args.store == "postgresql":
        db_url, leftovers.db_name = await create_pg_database(args.postgres_url)
    else:
        db_url = f"sqlite+aiosqlite:///{work / 'hub.db'}"
    prefix = f"bench{run_id}."
    group_prefix = f"bench{run_id}"
    env = {
        "HUB_KAFKA_BOOTSTRAP": broker.bootstrap,
        "HUB_DATA_DIR": str(work),
        "HUB_TOPIC_PREFIX": prefix,
        "HUB_GROUP_PREFIX": group_prefix,
        "HUB_DATABASE_URL": db_url,
        "HUB_BATCH_MAX_RECORDS": str(args.batch),
        "HUB_LOG_LEVEL": "INFO",
        "HUB_REQUIRE_SIGNATURES": "false" if args.unsigned else "true",
    }
    hub = leftovers.hub = Hub(env, work, args.profile, hub_command)
    t = time.monotonic()
    hub.start()
    stable = await asyncio.to_thread(
        hub.wait_assigned, [f"{group_prefix}-ingest", f"{group_prefix}-narrative"], 60.0
    )
    say(
        f"hub: pid {hub.pid} on {hub.url}, ready in {time.monotonic() - t:.1f}s"
        f"{'' if stable else ' (no partition assignment logged; measuring anyway)'}"
    )

    engine = create_engine(db_url)
    try:
        if not await has_stored_at(engine):
            say("warning: narrative_entries has no stored_at column; latency is not measurable")
            with_latency = False
        else:
            with_latency = True
        hub_cpu0, broker_cpu0 = cpu_seconds(hub.pid), cpu_seconds(broker.pid)
        hub_threads0 = thread_cpu_seconds(hub.pid)
        topic = f"{prefix}ingest.police"
        say(f"hub: producing {len(load)} events to {topic} ...")
        producing = asyncio.create_task(produce(broker.bootstrap, topic, load))
        deadline = time.monotonic() + args.timeout
        count, last_report = 0, time.monotonic()
        while True:
            await asyncio.sleep(POLL_SECONDS)
            count = await count_entries(engine)
            now = time.monotonic()
            if count >= len(load):
                break
            if hub.proc is not None and hub.proc.poll() is not None:
                raise RuntimeError(f"hub died:\n{hub.tail()}")
            if now > deadline:
                raise RuntimeError(f"only {count}/{len(load)} entries after {args.timeout}s")
            if now - last_report >= 10:
                say(f"hub: {count} entries stored")
                last_report = now
        polled_wall = time.time()
        produced = await producing
        hub_cpu, broker_cpu = cpu_seconds(hub.pid), cpu_seconds(broker.pid)
        hub_threads = thread_split(hub.pid, hub_threads0)
        processing = hub.processing_seconds()
        say(f"hub: produce took {produced.seconds:.1f}s; all {count} entries stored")

        latency: dict[str, float] = {}
        if with_latency:
            times = await entry_times(engine)
            last_stored = max(s for _, s in times).timestamp()
            latency = percentiles([(s - r).total_seconds() * 1000 for r, s in times])
        else:
            last_stored = polled_wall
        seconds = last_stored - produced.started_wall
        dead = "ingest.dead_lettered" in hub.log_path.read_text(errors="replace")
    finally:
        await engine.dispose()
    return (
        HubResult(
            produce_seconds=round(produced.seconds, 2),
            seconds=round(seconds, 2),
            events_per_s=round(len(load) / seconds, 1),
            latency_ms=latency,
            hub_cpu_seconds=None if hub_cpu is None or hub_cpu0 is None else hub_cpu - hub_cpu0,
            broker_cpu_seconds=(
                None if broker_cpu is None or broker_cpu0 is None else broker_cpu - broker_cpu0
            ),
            processing=processing,
            hub_threads=hub_threads,
            dead_letters_seen=dead,
            polled_seconds=round(polled_wall - produced.started_wall, 2),
        ),
        hub,
    )


# -- the raw baseline ---------------------------------------------------------------------------


def raw_consumer_main(
    bootstrap: str, topic: str, group: str, events: int, batch: int, queue: MpQueue[Any]
) -> None:
    """Child process: consume ``events`` records as a group, committing after every batch."""

    async def consume() -> None:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            while not consumer.assignment():  # join the group before the producer starts
                await consumer.getmany(timeout_ms=100, max_records=batch)
            queue.put(("ready", os.getpid()))
            seen = 0
            latencies: list[float] = []
            last = time.time()
            while seen < events:
                batches = await consumer.getmany(timeout_ms=1000, max_records=batch)
                if not batches:
                    continue
                now = time.time()
                for records in batches.values():
                    seen += len(records)
                    latencies.extend(now * 1000 - r.timestamp for r in records)
                await consumer.commit()
                last = time.time()
            queue.put(("done", seen, last, latencies))
        finally:
            await consumer.stop()

    try:
        asyncio.run(consume())
    except BaseException as exc:  # report, do not hang the parent
        queue.put(("error", repr(exc)))
        raise


@dataclass(slots=True)
class RawResult:
    """What the raw aiokafka baseline measured."""

    partitions: int
    produce_seconds: float
    seconds: float
    events_per_s: float
    latency_ms: dict[str, float] = field(default_factory=dict)
    consumer_cpu_seconds: float | None = None
    broker_cpu_seconds: float | None = None


async def run_raw_phase(
    args: argparse.Namespace, broker: Broker, load: Load, run_id: str, partitions: int
) -> RawResult:
    """Produce the same bytes to a fresh topic and consume them in a separate process."""
    topic = f"bench{run_id}.raw"
    await create_topic(broker.bootstrap, topic, partitions)
    ctx = mp.get_context("spawn")
    queue: MpQueue[Any] = ctx.Queue()
    child = ctx.Process(
        target=raw_consumer_main,
        args=(broker.bootstrap, topic, f"bench{run_id}-raw", len(load), args.batch, queue),
        daemon=True,
    )
    child.start()
    try:
        message = await asyncio.to_thread(queue.get, True, 120)
        if message[0] != "ready":
            raise RuntimeError(f"raw consumer failed: {message}")
        consumer_cpu0, broker_cpu0 = cpu_seconds(child.pid), cpu_seconds(broker.pid)
        say(f"raw: consumer joined; producing {len(load)} events to {topic} ...")
        produced = await produce(broker.bootstrap, topic, load)
        message = await asyncio.to_thread(queue.get, True, args.timeout)
        consumer_cpu, broker_cpu = cpu_seconds(child.pid), cpu_seconds(broker.pid)
        if message[0] != "done":
            raise RuntimeError(f"raw consumer failed: {message}")
        _, seen, last_wall, latencies = message
        seconds = last_wall - produced.started_wall
        say(f"raw: produce took {produced.seconds:.1f}s; consumed {seen} records")
        return RawResult(
            partitions=partitions,
            produce_seconds=round(produced.seconds, 2),
            seconds=round(seconds, 2),
            events_per_s=round(len(load) / seconds, 1),
            latency_ms=percentiles(latencies),
            consumer_cpu_seconds=(
                None
                if consumer_cpu is None or consumer_cpu0 is None
                else consumer_cpu - consumer_cpu0
            ),
            broker_cpu_seconds=(
                None if broker_cpu is None or broker_cpu0 is None else broker_cpu - broker_cpu0
            ),
        )
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000, help="events to push (N)")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("HUB_TEST_POSTGRES_URL"),
        help="admin URL of a PostgreSQL server (postgresql+asyncpg://...); a fresh database "
        "is created on it. Default: $HUB_TEST_POSTGRES_URL (scripts/postgres.sh start prints one)",
    )
    parser.add_argument("--batch", type=int, default=500, help="HUB_BATCH_MAX_RECORDS, raw batch")
    parser.add_argument(
        "--data-dir", type=Path, default=Path(".hub"), help="the local broker's data dir"
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="partitions of the raw topic (default: Settings().events_partitions, as hub.events)",
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up after seconds")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="run the hub under cProfile and write its stats here (slows the hub down)",
    )
    parser.add_argument("--keep", action="store_true", help="keep temp dir, topics, database")
    parser.add_argument(
        "--unsigned",
        action="store_true",
        help="send unsigned envelopes to a hub with HUB_REQUIRE_SIGNATURES=false (signing and "
        "verification off; encryption at rest has no off switch)",
    )
    args = parser.parse_args(argv)
    if args.store == "postgresql" and not args.postgres_url:
        parser.error("--store postgresql needs --postgres-url (or HUB_TEST_POSTGRES_URL)")
    return args


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    partitions = args.partitions or Settings().events_partitions
    say(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python "
        f"{platform.python_version()}, {platform.platform()}"
    )
    t = time.monotonic()
    load = build_load(args.events, run_id, signed=not args.unsigned)
    mean_bytes = (
        sum(len(h) + len(tl) for h, tl in zip(load.heads, load.tails, strict=True)) + 32 * len(load)
    ) / len(load)
    say(
        f"load: {len(load)} envelopes for {load.children} children, ~{mean_bytes:.0f} bytes each, "
        f"built in {time.monotonic() - t:.1f}s"
    )
    broker = await asyncio.to_thread(open_broker, args.data_dir)
    say(f"broker: {broker.bootstrap} - {broker.note}")
    work = Path(tempfile.mkdtemp(prefix=f"hub-bench-{run_id}-"))
    leftovers = Leftovers()
    try:
        hub_result, hub = await run_hub_phase(args, broker, load, run_id, work, leftovers)
        exit_code = await asyncio.to_thread(hub.stop)
        say(f"hub: stopped (exit {exit_code})")
        raw_result = await run_raw_phase(args, broker, load, run_id, partitions)
    finally:
        if leftovers.hub is not None:
            await asyncio.to_thread(leftovers.hub.stop)
        if not args.keep:
            with contextlib.suppress(Exception):
                await delete_topics_with_prefix(broker.bootstrap, f"bench{run_id}.")
            if leftovers.db_name:
                with contextlib.suppress(Exception):
                    await drop_pg_database(args.postgres_url, leftovers.db_name)
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"kept: {work}, topics bench{run_id}.*, database {leftovers.db_name}")
        if broker.local is not None:
            await asyncio.to_thread(broker.local.stop)
            say("broker: stopped (the bench had started it)")

    hub_cpu = hub_result.hub_cpu_seconds
    return {
        "events": len(load),
        "children": load.children,
        "store": args.store,
        "batch": args.batch,
        "broker": broker.bootstrap,
        "cpus": os.cpu_count(),
        "hub": {
            "events_per_s": hub_result.events_per_s,
            "seconds": hub_result.seconds,
            "produce_seconds": hub_result.produce_seconds,
            "latency_ms": hub_result.latency_ms,
            "hub_cpu_seconds": None if hub_cpu is None else round(hub_cpu, 1),
            "hub_cpu_cores": None if hub_cpu is None else round(hub_cpu / hub_result.seconds, 2),
            "broker_cpu_seconds": (
                None
                if hub_result.broker_cpu_seconds is None
                else round(hub_result.broker_cpu_seconds, 1)
            ),
            "hub_cpu_by_thread": hub_result.hub_threads,
            "processing_seconds": {
                k: {"sum": round(v.get("sum", 0.0), 1), "batches": int(v.get("count", 0))}
                for k, v in hub_result.processing.items()
            },
            "dead_letters_seen": hub_result.dead_letters_seen,
        },
        "raw": {
            "events_per_s": raw_result.events_per_s,
            "seconds": raw_result.seconds,
            "produce_seconds": raw_result.produce_seconds,
            "partitions": raw_result.partitions,
            "latency_ms": raw_result.latency_ms,
            "consumer_cpu_seconds": (
                None
                if raw_result.consumer_cpu_seconds is None
                else round(raw_result.consumer_cpu_seconds, 1)
            ),
            "broker_cpu_seconds": (
                None
                if raw_result.broker_cpu_seconds is None
                else round(raw_result.broker_cpu_seconds, 1)
            ),
        },
        "ratio_hub_over_raw": round(hub_result.events_per_s / raw_result.events_per_s, 4),
    }


def report(result: dict[str, Any]) -> None:
    hub, raw = result["hub"], result["raw"]
    lat = hub["latency_ms"]
    say()
    say(f"events:            {result['events']} ({result['children']} children)")
    say(f"store:             {result['store']} (batch {result['batch']})")
    say(
        f"hub events/s:      {hub['events_per_s']:.0f}  "
        f"({hub['seconds']:.1f}s first produce -> last stored)"
    )
    say(
        f"raw events/s:      {raw['events_per_s']:.0f}  "
        f"({raw['seconds']:.1f}s first produce -> last consumed)"
    )
    say(f"ratio hub/raw:     {result['ratio_hub_over_raw']:.3f}")
    if lat:
        say(
            f"latency (ms):      p50 {lat['p50']:.0f}  p99 {lat['p99']:.0f}  max {lat['max']:.0f}  "
            "(recorded_at at produce -> stored_at)"
        )
    rl = raw["latency_ms"]
    say(
        f"raw latency (ms):  p50 {rl['p50']:.0f}  p99 {rl['p99']:.0f}  max {rl['max']:.0f}  "
        "(producer CreateTime -> consumed)"
    )
    if hub["hub_cpu_seconds"] is not None:
        say(
            f"hub CPU:           {hub['hub_cpu_seconds']:.1f}s over {hub['seconds']:.1f}s = "
            f"{hub['hub_cpu_cores']:.2f} cores (one Python process: ~1.0 means the event loop "
            "is CPU-bound)"
        )
    threads = hub["hub_cpu_by_thread"]
    if threads:
        say(
            f"hub CPU by thread: main (event loop) {threads['main_thread']:.1f}s, others "
            f"{threads['other_threads']:.1f}s (busiest {threads['busiest_other_thread']:.1f}s; "
            "aiosqlite runs SQLite in its own thread)"
        )
    for name, p in sorted(hub["processing_seconds"].items()):
        say(f"hub {name + ':':<15}{p['sum']:.1f}s inside handle_batch over {p['batches']} batches")
    if hub["broker_cpu_seconds"] is not None:
        say(
            f"broker CPU:        hub phase {hub['broker_cpu_seconds']:.1f}s, "
            f"raw phase {raw['broker_cpu_seconds']:.1f}s"
        )
    if hub["dead_letters_seen"]:
        say("note: the hub dead-lettered messages during the run (see its log)")
    say(json.dumps(result, sort_keys=True))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    report(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
