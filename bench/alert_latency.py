"""Alert latency under background load: agency submission -> alert on the recipient's SSE stream.

One run, one broker, one real hub:

1. **Broker and hub** as in ``bench/pipeline.py``: ``HUB_KAFKA_BOOTSTRAP`` or the local broker;
   a real ``python -m hub serve`` with a temporary data dir, random topic and group prefixes
   and a fresh SQLite file (or PostgreSQL database); ready when ``/readyz`` answers and its
   ingest, narrative and alerts consumer groups have partitions.
2. **Recipient**: ``hub token --sub sam.practitioner@northshire.example --agency northshire-cs
   --role social_worker`` (the lead practitioner named on the plans below) opens
   ``GET /api/v1/alerts/stream`` and keeps it open for the whole run.
3. **Plans first**: K children get a ``involvement.started`` child-protection plan from
   children's services (signed with the agency's dev key) on ``<prefix>ingest.childrens_services``;
   the bench waits until all K are in the narrative store (so they are on ``hub.events``, ahead
   of anything later for the same child: the alert engine sees the plan before the attendance).
4. **Load**: ``--rate`` signed ``concern.raised`` envelopes per second from the police (as
   ``bench/pipeline.py`` builds them, over rate*duration/20 other children) to
   ``<prefix>ingest.police`` with aiokafka, paced every 10 ms, for ``--duration`` seconds.
   Every ``--alert-every`` seconds one of the K children gets a signed ED attendance
   (``contact.recorded``, ``unscheduled_care_attendance``, happened now) from the health trust on
   ``<prefix>ingest.health``. Its **submission time** is the wall clock just before it is handed
   to the producer.
5. **Receipt**: each ``raised`` SSE event whose ``trigger_event_ids`` names an attendance is
   stamped with the wall clock when its ``data:`` line arrives. Latency = receipt - submission.
   After the load stops the bench waits (``--drain``) for the alerts still owed.

Beside the latencies it prints what the CPU went on during the load: each hub process's cores,
the hub's CPU milliseconds per stored event (all its processes together), the bench's own cores
and the machine's busy share (``/proc/stat``), so a run shows whether the machine had any CPU
left for the hub. It prints plain lines and, last, one JSON line. No thresholds, no asserts.
Target (issue 5): p99 < 500 ms at 1,000 background events/s. The hub drains about 300 events/s
per core; an offered rate above what it sustains grows a backlog and the alert waits behind it
(the figure then measures the queue, and grows with ``--duration``).

Usage::

    .venv/bin/python bench/alert_latency.py [--rates 0,100,1000] [--split-roles] [--duration 60]
        [--alert-every 1] [--store sqlite|postgresql] [--postgres-url URL] [--batch 500]
        [--hub-env HUB_X=V ...] [--baseline-tree DIR] [--drain 600] [--backlog-wait 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline import (
    Broker,
    Hub,
    build_load,
    count_entries,
    cpu_seconds,
    create_pg_database,
    delete_topics_with_prefix,
    drop_pg_database,
    open_broker,
    percentiles,
    say,
    signed_value,
)

from contracts.examples import example_data, example_envelope, valid_nhs_number
from hub.crypto.agency_keys import dev_private_key
from hub.crypto.runtime import sign_as_dev
from hub.store.db import create_engine

__all__ = [
    "LEAD_EMAIL",
    "SseParser",
    "attendance_envelope",
    "box_jiffies",
    "busy_share",
    "cpu_delta",
    "due",
    "plan_envelope",
]

LEAD_EMAIL = "sam.practitioner@northshire.example"
"""The lead practitioner on every plan, and the ``sub`` of the recipient's token."""

ALERT_NHS_SEED = 800_000
"""NHS seeds of the alerting children start here (the background load uses 0, 1, ...)."""

_TICK = 0.01
_CS, _HEALTH, _POLICE = "northshire-cs", "northshire-health", "northshire-police"


# -- pure helpers -------------------------------------------------------------------------------


def _person(index: int) -> dict[str, Any]:
    return {
        "identifiers": [{"system": "nhs", "value": valid_nhs_number(ALERT_NHS_SEED + index)}],
        "name": {"given": "Alex", "family": f"Alertbench{index}", "aliases": []},
        "birth_date": "2016-04-02",
        "sex": "male",
    }


def plan_envelope(run_id: str, index: int, now: datetime) -> dict[str, Any]:
    """An unsigned child-protection plan start for alert child ``index``, begun 30 days ago."""
    started = now - timedelta(days=30)
    data = example_data("involvement.started")
    data["involvement_id"] = f"CPP-{run_id}-{index}"
    data["started_on"] = started.date().isoformat()
    data["lead_practitioner"]["email"] = LEAD_EMAIL
    return example_envelope(
        id=f"{_CS}:alertbench-{run_id}-plan-{index}",
        source=f"urn:agency:{_CS}",
        type="involvement.started",
        time=started.isoformat(),
        recorded_at=now.isoformat(),
        subject=f"CS-ALERTBENCH-{index}",
        agency_id=_CS,
        agency_kind="childrens_services",
        lawful_basis="public_task",
        sensitivity=[],
        person=_person(index),
        data=data,
    )


def attendance_envelope(run_id: str, index: int, now: datetime) -> dict[str, Any]:
    """An unsigned ED attendance of alert child ``index`` that happened ``now``."""
    data = example_data("contact.recorded")
    data["ended_at"] = (now + timedelta(hours=2)).isoformat()
    return example_envelope(
        id=f"{_HEALTH}:alertbench-{run_id}-ed-{index}",
        source=f"urn:agency:{_HEALTH}",
        type="contact.recorded",
        time=now.isoformat(),
        recorded_at=now.isoformat(),
        subject=f"NH-ALERTBENCH-{index}",
        agency_id=_HEALTH,
        agency_kind="health",
        lawful_basis="public_task",
        sensitivity=[],
        person=_person(index),
        data=data,
    )


def box_jiffies(stat: Path = Path("/proc/stat")) -> tuple[int, int] | None:
    """(busy, total) CPU jiffies of the whole machine so far; None where /proc is missing."""
    try:
        # user nice system idle iowait irq softirq steal; guest time is already in user/nice.
        fields = [int(f) for f in stat.read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of the machine's CPU time that was busy between two ``box_jiffies``."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]), 2)


def due(rate: float, elapsed: float, sent: int) -> int:
    """How many more messages a paced sender owes after ``elapsed`` seconds at ``rate``/s."""
    if rate <= 0 or elapsed <= 0:
        return 0
    return max(0, int(rate * elapsed) - sent)


@dataclass(slots=True)
class SseParser:
    """Incremental server-sent-event parser: feed lines, get (id, event, data) per blank line."""

    _id: str | None = None
    _event: str = "message"
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> tuple[str | None, str, str] | None:
        """One line (without its newline); returns a whole event when ``line`` ends one."""
        if line == "":
            if not self._data:
                self._event = "message"
                return None
            out = (self._id, self._event, "\n".join(self._data))
            self._event, self._data = "message", []
            return out
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            self._id = value
        elif name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


# -- the run ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Tally:
    """What the run saw: submissions, receipts and background progress."""

    submitted: dict[str, float] = field(default_factory=dict)  # attendance id -> wall time
    received: dict[str, float] = field(default_factory=dict)  # attendance id -> wall time
    raised: dict[str, float] = field(default_factory=dict)  # attendance id -> alert raised_at
    other_alerts: int = 0
    background_sent: int = 0
    background_acked: int = 0
    stream_open: asyncio.Event = field(default_factory=asyncio.Event)


async def listen(url: str, token: str, tally: Tally) -> None:
    """Follow the SSE stream and stamp every attendance alert when its data line arrives."""
    parser = SseParser()
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    timeout = httpx.Timeout(10.0, read=None)
    async with (
        httpx.AsyncClient(timeout=timeout) as client,
        client.stream("GET", f"{url}/api/v1/alerts/stream", headers=headers) as response,
    ):
        response.raise_for_status()
        tally.stream_open.set()
        async for line in response.aiter_lines():
            event = parser.feed(line)
            if event is None or event[1] != "raised":
                continue
            now = time.time()
            alert = json.loads(event[2])["alert"]
            mine = [t for t in alert["trigger_event_ids"] if t in tally.submitted]
            if not mine:
                tally.other_alerts += 1
            raised = datetime.fromisoformat(alert["raised_at"]).timestamp()
            for trigger in mine:
                tally.received.setdefault(trigger, now)
                tally.raised.setdefault(trigger, raised)


async def background(
    producer: AIOKafkaProducer,
    topic: str,
    rate: float,
    seconds: float,
    run_id: str,
    tally: Tally,
    *,
    varied: bool = False,
) -> float:
    """Send signed police concerns at ``rate``/s for ``seconds``; returns the wall seconds used."""
    load = build_load(max(1, int(rate * seconds)), run_id, signed=True, varied=varied)
    signer = dev_private_key(_POLICE)
    started = time.monotonic()
    pending: list[asyncio.Future[Any]] = []
    while tally.background_sent < len(load):
        elapsed = time.monotonic() - started
        if elapsed >= seconds:
            break
        for _ in range(due(rate, elapsed, tally.background_sent)):
            i = tally.background_sent
            if i >= len(load):
                break
            stamp = datetime.now(UTC).isoformat().encode()
            value = signed_value(load, i, stamp, signer)
            pending.append(await producer.send(topic, value, key=load.keys[i]))
            tally.background_sent += 1
        await asyncio.sleep(_TICK)
    used = time.monotonic() - started
    await asyncio.gather(*pending)
    tally.background_acked = len(pending)
    return used


async def triggers(
    producer: AIOKafkaProducer, topic: str, count: int, every: float, run_id: str, tally: Tally
) -> None:
    """Submit one ED attendance every ``every`` seconds for children 0..count-1."""
    for index in range(count):
        await asyncio.sleep(every)
        now = datetime.now(UTC)
        envelope = sign_as_dev(attendance_envelope(run_id, index, now))
        value = json.dumps(envelope).encode()
        key = f"nhs:{valid_nhs_number(ALERT_NHS_SEED + index)}".encode()
        tally.submitted[envelope["id"]] = time.time()
        await producer.send(topic, value, key=key)


GROUPS_OF = {"all": ("ingest", "narrative", "alerts"), "ingest": ("ingest",),
             "narrative": ("narrative",), "alerts": ("alerts",), "api": ()}  # fmt: skip
"""The consumer groups each role's process joins (``hub.bootstrap.build_hub``)."""

LAYOUTS = {"single": ("all",), "split": ("api", "alerts", "narrative", "ingest")}
"""Processes of each layout, in start order (the first serves the API and migrates the store)."""


class RoleHub(Hub):
    """One ``python -m hub serve --role ROLE`` process, logging to its own file."""

    def __init__(
        self, env: dict[str, str], data_dir: Path, role: str, tree: Path | None = None
    ) -> None:
        serve = [sys.executable, "-m", "hub", "serve", "--role", role, "--port"]
        super().__init__(env, data_dir, None, command=serve, cwd=tree)
        self.role = role
        self.log_path = data_dir / f"hub-{role}.log"

    def wait_groups(self, seconds: float) -> bool:
        """Wait until this process's log shows a partition assignment per consumer group it
        joins (the JSON log line names no group, so they are counted)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            if text.count("assigned to partitions") >= len(GROUPS_OF[self.role]):
                return True
            time.sleep(0.1)
        return False


@dataclass(slots=True)
class Layout:
    """The hub's processes in one layout: one process with every role, or one per role."""

    name: str
    tree: Path | None = None
    """Another checkout of the project to run the hub from (a baseline), else this one."""
    processes: list[RoleHub] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.name if self.tree is None else f"{self.name}@base"

    @property
    def api(self) -> RoleHub:
        return self.processes[0]

    @property
    def ingest(self) -> RoleHub:
        """The process that runs ingest (``--role ingest``, or the one ``all``)."""
        return next(p for p in self.processes if p.role in ("ingest", "all"))

    def cpu(self) -> dict[str, float | None]:
        """CPU seconds used so far, per role."""
        return {p.role: cpu_seconds(p.pid) for p in self.processes}

    def start(self, env: dict[str, str], work: Path) -> None:
        """Start the processes one after another, each ready and its groups assigned."""
        for role in LAYOUTS[self.name]:
            hub = RoleHub(env, work, role, self.tree)
            self.processes.append(hub)
            hub.start()
            if not hub.wait_groups(60.0):
                say(f"  {role}: partition assignment not logged within 60 s")

    def stop(self) -> None:
        for hub in reversed(self.processes):
            hub.stop()

    def tail(self) -> str:
        return "\n".join(f"[{p.role}]\n{p.tail(15)}" for p in self.processes)


def hub_token(env: dict[str, str]) -> str:
    """A social worker's token for the lead practitioner, from ``hub token``."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "hub", "token", "--sub", LEAD_EMAIL, "--agency", _CS),
            *("--role", "social_worker", "--ttl-minutes", "240"),
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


@dataclass(slots=True)
class Case:
    """One measured case and what it must clean up whatever happens."""

    layout: Layout
    rate: float
    work: Path
    prefix: str = ""
    db_name: str | None = None


async def run(args: argparse.Namespace, broker: Broker, case: Case) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    case.prefix, groups = f"bench{run_id}.", f"bench{run_id}"
    prefix, work = case.prefix, case.work
    if args.store == "postgresql":
        db_url, case.db_name = await create_pg_database(args.postgres_url)
    else:
        db_url = f"sqlite+aiosqlite:///{work / 'hub.db'}"
    env = {
        "HUB_KAFKA_BOOTSTRAP": broker.bootstrap,
        "HUB_DATA_DIR": str(work),
        "HUB_TOPIC_PREFIX": prefix,
        "HUB_GROUP_PREFIX": groups,
        "HUB_DATABASE_URL": db_url,
        "HUB_BATCH_MAX_RECORDS": str(args.batch),
        "HUB_LOG_LEVEL": "INFO",
        **dict(kv.split("=", 1) for kv in args.hub_env),
    }
    if case.layout.tree is not None:  # its packages (and its cwd: see Hub.cwd) first
        env["PYTHONPATH"] = str(case.layout.tree)
    layout = case.layout
    await asyncio.to_thread(layout.start, env, work)
    say(f"hub ({layout.label}): " + ", ".join(f"{p.role} pid {p.pid}" for p in layout.processes))
    token = await asyncio.to_thread(hub_token, env)
    count = args.alerts or max(1, int(args.duration / args.alert_every))
    tally = Tally()
    engine = create_engine(db_url)
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap, enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    listener = asyncio.create_task(listen(layout.api.url, token, tally))
    try:
        await asyncio.wait_for(tally.stream_open.wait(), 30)
        now = datetime.now(UTC)
        for index in range(count):
            plan = sign_as_dev(plan_envelope(run_id, index, now))
            key = f"nhs:{valid_nhs_number(ALERT_NHS_SEED + index)}".encode()
            await producer.send(
                f"{prefix}ingest.childrens_services", json.dumps(plan).encode(), key=key
            )
        await producer.flush()
        t = time.monotonic()
        while await count_entries(engine) < count:
            if time.monotonic() - t > 300:
                raise RuntimeError(f"plans not stored after 300 s:\n{layout.tail()}")
            await asyncio.sleep(0.2)
        say(f"plans: {count} stored in {time.monotonic() - t:.1f}s; starting load")
        cpu0, box0, own0 = layout.cpu(), box_jiffies(), time.process_time()
        published0 = await asyncio.to_thread(layout.ingest.published, "ingest")
        stored0 = await count_entries(engine)
        load_start = time.time()
        bg = asyncio.create_task(
            background(
                producer,
                f"{prefix}ingest.police",
                case.rate,
                args.duration,
                run_id,
                tally,
                varied=args.people == "varied",
            )
        )
        await triggers(producer, f"{prefix}ingest.health", count, args.alert_every, run_id, tally)
        used = await bg
        load_end = time.time()
        load_average = os.getloadavg()[0]
        stored_at_end = await count_entries(engine) - stored0
        cpu1, box1, own1 = layout.cpu(), box_jiffies(), time.process_time()
        published1 = await asyncio.to_thread(layout.ingest.published, "ingest")
        say(
            f"load: {tally.background_sent} background events in {used:.1f}s "
            f"({tally.background_sent / used:.0f}/s); hub stored {stored_at_end} entries meanwhile"
        )
        deadline = time.monotonic() + args.drain
        while len(tally.received) < len(tally.submitted) and time.monotonic() < deadline:
            if listener.done():
                listener.result()
            await asyncio.sleep(0.2)
        drained = time.time()
        total = tally.background_sent + len(tally.submitted)
        caught_up: float | None = None
        backlog_deadline = time.monotonic() + args.backlog_wait
        while time.monotonic() < backlog_deadline:
            if await count_entries(engine) - stored0 >= total:
                caught_up = time.time()
                break
            await asyncio.sleep(0.5)
        stored_total = await count_entries(engine) - stored0
    finally:
        listener.cancel()
        with contextlib.suppress(BaseException):
            await listener
        await producer.stop()
        await engine.dispose()
    latencies = [
        (tally.received[i] - tally.submitted[i]) * 1000
        for i in tally.submitted
        if i in tally.received
    ]
    to_raise = [(tally.raised[i] - tally.submitted[i]) * 1000 for i in tally.raised]
    to_stream = [(tally.received[i] - tally.raised[i]) * 1000 for i in tally.raised]
    load_seconds = load_end - load_start
    cores = {
        role: None if cpu0[role] is None or cpu1[role] is None
        else round((cpu1[role] - cpu0[role]) / load_seconds, 2)  # type: ignore[operator]
        for role in cpu0
    }  # fmt: skip
    used_ms = sum(c for c in cores.values() if c is not None) * 1000
    hub_rate = stored_at_end / load_seconds
    ingested = None if published0 is None or published1 is None else round(published1 - published0)
    ingest_cpu = cpu_delta(cpu0, cpu1, layout.ingest.role)
    return {
        "layout": layout.label,
        "store": args.store,
        "rate_offered": case.rate,
        "duration_s": args.duration,
        "background_sent": tally.background_sent,
        "background_rate": round(tally.background_sent / used, 1),
        "hub_stored_during_load": stored_at_end,
        "hub_rate_during_load": round(stored_at_end / load_seconds, 1),
        "hub_cpu_cores_during_load": cores,
        "hub_cpu_ms_per_event": round(used_ms / hub_rate, 2) if hub_rate else None,
        "bench_cores_during_load": round((own1 - own0) / load_seconds, 2),
        "machine_busy_during_load": busy_share(box0, box1),
        "ingest_published_during_load": ingested,
        "ingest_rate_during_load": None if ingested is None else round(ingested / load_seconds, 1),
        "ingest_cpu_ms_per_record": None
        if not ingested or ingest_cpu is None
        else round(ingest_cpu * 1000 / ingested, 2),
        "load_average_end_of_load": round(load_average, 1),
        "alerts_submitted": len(tally.submitted),
        "alerts_received": len(tally.received),
        "other_alerts": tally.other_alerts,
        "latency_ms": percentiles(latencies),
        "submitted_to_raised_ms": percentiles(to_raise),
        "raised_to_sse_ms": percentiles(to_stream),
        "last_alert_after_load_s": round(drained - load_end, 1),
        "backlog_drained_after_load_s": None
        if caught_up is None
        else round(caught_up - load_end, 1),
        "backlog_left": total - stored_total,
        "batch": args.batch,
        "hub_env": list(args.hub_env),
        "people": args.people,
        "cpus": os.cpu_count(),
    }


def cpu_delta(
    before: dict[str, float | None], after: dict[str, float | None], role: str
) -> float | None:
    """CPU seconds one role used between two readings; None when either is unknown."""
    start, end = before.get(role), after.get(role)
    return None if start is None or end is None else end - start


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--rates", default="1000", help="background events/s offered, comma-separated: a case each"
    )
    parser.add_argument("--rate", type=float, help="one background rate (same as --rates R)")
    parser.add_argument(
        "--layouts",
        default="single",
        help="comma-separated: single (one `hub serve`), split (a process per role)",
    )
    parser.add_argument(
        "--split-roles", action="store_true", help="measure both layouts (--layouts single,split)"
    )
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="also run each layout from this checkout (e.g. a `git worktree` of an older commit)",
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of background load")
    parser.add_argument("--alert-every", type=float, default=1.0, help="seconds between triggers")
    parser.add_argument(
        "--alerts", type=int, default=0, help="alert triggers (default duration/alert-every)"
    )
    parser.add_argument(
        "--people",
        choices=("same", "varied"),
        default="same",
        help="background children: one name and birth date (one identity block, the worst "
        "case) or each their own (see pipeline.bench_person)",
    )
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", default=os.environ.get("HUB_TEST_POSTGRES_URL"))
    parser.add_argument("--batch", type=int, default=500, help="HUB_BATCH_MAX_RECORDS")
    parser.add_argument(
        "--hub-env", action="append", default=[], metavar="HUB_X=V", help="extra hub setting"
    )
    parser.add_argument("--drain", type=float, default=600.0, help="seconds to wait for alerts")
    parser.add_argument(
        "--backlog-wait", type=float, default=60.0, help="seconds to wait for the backlog after"
    )
    parser.add_argument("--data-dir", type=Path, default=Path(".hub"), help="local broker's dir")
    parser.add_argument("--keep", action="store_true", help="keep temp dirs, topics, databases")
    args = parser.parse_args(argv)
    if args.store == "postgresql" and not args.postgres_url:
        parser.error("--store postgresql needs --postgres-url (or HUB_TEST_POSTGRES_URL)")
    args.rates = [args.rate] if args.rate is not None else [float(r) for r in args.rates.split(",")]
    args.layouts = ["single", "split"] if args.split_roles else args.layouts.split(",")
    if any(layout not in LAYOUTS for layout in args.layouts):
        parser.error(f"--layouts takes {', '.join(LAYOUTS)}")
    if any("=" not in kv or not kv.startswith("HUB_") for kv in args.hub_env):
        parser.error("--hub-env takes HUB_NAME=VALUE")
    return args


async def run_case(args: argparse.Namespace, broker: Broker, layout: Layout, rate: float) -> dict:
    """One layout at one rate on a fresh hub; everything it made is removed afterwards."""
    case = Case(layout, rate, Path(tempfile.mkdtemp(prefix="hub-alertbench-")))
    say(f"\n== {layout.label}, {rate:g} events/s; load average {os.getloadavg()[0]:.1f}")
    try:
        result = await run(args, broker, case)
        report(result)
        return result
    finally:
        await asyncio.to_thread(case.layout.stop)
        if not args.keep:
            with contextlib.suppress(Exception):
                await delete_topics_with_prefix(broker.bootstrap, case.prefix)
            if case.db_name:
                with contextlib.suppress(Exception):
                    await drop_pg_database(args.postgres_url, case.db_name)
            shutil.rmtree(case.work, ignore_errors=True)
        else:
            say(f"kept: {case.work}, database {case.db_name}")


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    say(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}"
    )
    broker = await asyncio.to_thread(open_broker, args.data_dir)
    say(f"broker: {broker.bootstrap} - {broker.note}")
    results: list[dict[str, Any]] = []
    try:
        for rate in args.rates:  # the layouts side by side at each rate, close in time
            for name in args.layouts:
                for tree in (args.baseline_tree, None) if args.baseline_tree else (None,):
                    results.append(await run_case(args, broker, Layout(name, tree), rate))
    finally:
        if broker.local is not None:
            await asyncio.to_thread(broker.local.stop)
    return results


def _ms(figures: dict[str, float], key: str) -> str:
    return f"{figures[key]:.0f}" if figures else "-"


def report(result: dict[str, Any]) -> None:
    lat = result["latency_ms"]
    cores = result["hub_cpu_cores_during_load"]
    say(
        f"background:   offered {result['rate_offered']:.0f}/s for {result['duration_s']:.0f}s, "
        f"sent {result['background_sent']} ({result['background_rate']:.0f}/s achieved)"
    )
    drained = result["backlog_drained_after_load_s"]
    say(
        f"hub:          stored {result['hub_stored_during_load']} entries during the load "
        f"({result['hub_rate_during_load']:.0f}/s; cores {cores}); load average "
        f"{result['load_average_end_of_load']}; backlog "
        + (f"drained {drained:.1f}s after the load" if drained is not None
           else f"{result['backlog_left']} events left")
    )  # fmt: skip
    say(
        f"cpu:          hub {result['hub_cpu_ms_per_event']} ms a stored event; bench "
        f"{result['bench_cores_during_load']} cores; machine busy "
        f"{result['machine_busy_during_load']} of {result['cpus']} cpus"
    )
    say(
        f"ingest:       published {result['ingest_published_during_load']} during the load "
        f"({result['ingest_rate_during_load']}/s; "
        f"{result['ingest_cpu_ms_per_record']} ms CPU a record)"
    )
    say(
        f"alerts:       {result['alerts_received']}/{result['alerts_submitted']} received on SSE "
        f"(other alerts: {result['other_alerts']})"
    )
    if lat:
        up, out = result["submitted_to_raised_ms"], result["raised_to_sse_ms"]
        say(
            f"latency (ms): p50 {lat['p50']:.0f}  p99 {lat['p99']:.0f}  max {lat['max']:.0f}  "
            f"(submission -> raised_at p50 {_ms(up, 'p50')} p99 {_ms(up, 'p99')}; "
            f"raised_at -> SSE p50 {_ms(out, 'p50')} p99 {_ms(out, 'p99')})"
        )
    say(json.dumps(result, sort_keys=True))


def summary(results: Sequence[dict[str, Any]]) -> None:
    """One line per case, then every figure as one JSON line."""
    say("\nlayout       offered  achieved  stored/s  alerts   p50 ms  p99 ms  max ms"
        "  ->raised p50/p99  raised->SSE p50/p99  load avg")  # fmt: skip
    for r in results:
        lat, up, out = r["latency_ms"], r["submitted_to_raised_ms"], r["raised_to_sse_ms"]
        say(
            f"{r['layout']:<12} {r['rate_offered']:>7.0f} {r['background_rate']:>9.0f} "
            f"{r['hub_rate_during_load']:>9.0f} "
            f"{r['alerts_received']:>3}/{r['alerts_submitted']:<4}"
            f" {_ms(lat, 'p50'):>7} {_ms(lat, 'p99'):>7} {_ms(lat, 'max'):>7}"
            f" {_ms(up, 'p50'):>8}/{_ms(up, 'p99'):<8} {_ms(out, 'p50'):>10}/{_ms(out, 'p99'):<9}"
            f" {r['load_average_end_of_load']:>8}"
        )
    say(json.dumps(list(results), sort_keys=True))


def main(argv: Sequence[str] | None = None) -> None:
    summary(asyncio.run(main_async(parse_args(argv))))


if __name__ == "__main__":
    main()
