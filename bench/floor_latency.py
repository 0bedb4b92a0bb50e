"""Alert latency of the pipeline's floor: its steps alone, run as the hub runs, at a rate.

``bench/pipeline_floor.py`` adds up the CPU each step of the design costs an event. This bench
runs those steps, and nothing else, as a concurrent pipeline on the real broker and measures
how long an event takes to get through it, so it answers: what alert latency could any
implementation of this design reach on this machine at ``--rate`` events/s? One run:

1. **Topics**: an "intake" topic (as many partitions as the hub's ingest topics) and an
   "events" topic (as many as ``hub.events``), with a random prefix, deleted at the end.
2. **Workers**: three processes, as the hub's split layout runs its roles, each with its own
   asyncio loop, aiokafka consumer (``getmany`` of at most ``--batch`` records, waiting the
   hub's ``batch_wait_ms``) and SQLite file through ``hub.store.db.create_engine``:

   - *ingest* reads the intake topic; per record ``verify_envelope`` (Ed25519 over the
     canonical bytes), ``parse_envelope`` and one AES-256-GCM seal; one ``executemany`` and
     commit per batch; then it produces every record, headers kept, to the events topic
     (aiokafka, ``enable_idempotence=True, linger_ms=5``, as the hub; a trigger also gets the
     wall clock when its batch arrived) and commits its offsets once the broker has
     acknowledged them all;
   - *narrative* reads the events topic, parses each record, stores a row each, commits;
   - *alerts* does the same and, for each record carrying a trigger header, notes the wall
     clock when its batch arrived (**received**) and when its rows were committed
     (**stored**: the earliest an alert could go out).

3. **Load**: ``--rate`` x ``--duration`` of ``bench/pipeline.py``'s ``concern.raised``
   envelopes, signed before the clock starts (signing is the agency's cost, not the hub's),
   produced to the intake topic from this process every 10 ms as ``bench/alert_latency.py``
   paces its load, once every worker has its partitions. The first record of each second is a
   trigger: the wall clock just before it is handed to the producer goes in its header.
4. **Drain**: up to ``--drain`` seconds for the triggers and the rest of the load to get
   through.

Latency = received (or stored) - submitted, per trigger; and, to split it, submitted -> ingest
received. It prints the latencies, each
worker's cores and records/s during the load, the broker's cores (its pid known: the local
broker, or ``--broker-pid``), this process's cores, the machine's busy share (``/proc/stat``)
and, last, one JSON line. No thresholds, no asserts. Each worker writes its own SQLite file, so
the workers never wait for one another's writer lock, as the hub's processes do.

Usage::

    .venv/bin/python bench/floor_latency.py [--rate 1000] [--duration 30] [--drain 60]
        [--batch 500] [--broker-pid PID] [--data-dir .hub]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import queue
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.queues import Queue as MpQueue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alert_latency import box_jiffies, busy_share, due
from pipeline import (
    build_load,
    cpu_seconds,
    create_topic,
    delete_topics_with_prefix,
    percentiles,
    say,
)
from pipeline_floor import (
    add_floor_options,
    dev_ring,
    open_floor_broker,
    open_store,
    signed_values,
)

from contracts import parse_envelope
from hub.crypto.signing import verify_envelope
from hub.settings import Settings

__all__ = [
    "ROLES",
    "Snapshot",
    "Worker",
    "during_load",
    "send_paced",
    "stamped",
    "stamps",
    "worker_main",
]

ROLES = ("ingest", "narrative", "alerts")
_STAMP = "floor-stamp"
"""Header of a trigger record, one per wall clock (``repr`` of ``time.time()``) stamped on it:
at submission, then when ingest's batch arrived."""
_TICK = 0.01
_HUB = Settings.model_fields


def stamps(headers: Sequence[tuple[str, bytes]]) -> list[float]:
    """The wall clocks stamped on a trigger record so far, in order; none on other records."""
    return [float(value) for name, value in headers if name == _STAMP]


def stamped(headers: Sequence[tuple[str, bytes]], at: float) -> list[tuple[str, bytes]]:
    """A record's headers with the wall clock ``at`` added."""
    return [*headers, (_STAMP, repr(at).encode())]


@dataclass(frozen=True, slots=True)
class Worker:
    """What one worker process reads, where it writes, and how it batches."""

    role: str
    bootstrap: str
    source: str
    sink: str | None
    group: str
    db: Path
    batch: int
    wait_ms: int


def worker_main(
    worker: Worker, handled: Synchronized[int], stop: MpEvent, out: MpQueue[Any]
) -> None:
    """Child process: run one role until ``stop``; report ready, then its triggers."""
    try:
        asyncio.run(_work(worker, handled, stop, out))
    except BaseException as exc:  # report, do not hang the parent
        out.put(("error", worker.role, repr(exc)))
        raise


async def _work(
    worker: Worker, handled: Synchronized[int], stop: MpEvent, out: MpQueue[Any]
) -> None:
    ingest = worker.role == "ingest"
    ring, aead = dev_ring(), AESGCM(AESGCM.generate_key(bit_length=256))
    engine, insert = await open_store(worker.db)
    consumer = AIOKafkaConsumer(
        worker.source,
        bootstrap_servers=worker.bootstrap,
        group_id=worker.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = (
        AIOKafkaProducer(bootstrap_servers=worker.bootstrap, enable_idempotence=True, linger_ms=5)
        if ingest
        else None
    )
    await consumer.start()
    if producer is not None:
        await producer.start()
    triggers: list[tuple[float, ...]] = []  # submitted, ingest received, received, stored
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100, max_records=worker.batch)
        out.put(("ready", worker.role, os.getpid()))
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=worker.wait_ms, max_records=worker.batch)
            received = time.time()
            records = [r for part in batches.values() for r in part]
            if not records:
                continue
            now, rows = datetime.now(UTC), []
            for r in records:
                envelope = orjson.loads(r.value)
                if ingest:
                    verify_envelope(envelope, ring, now=now)
                event_id = parse_envelope(envelope).id
                body = (
                    aead.encrypt(os.urandom(12), r.value, event_id.encode()) if ingest else r.value
                )
                rows.append({"event_id": event_id, "child_id": r.key.decode(), "body": body})
            async with engine.begin() as conn:
                await conn.execute(insert, rows)
            stored = time.time()
            if producer is not None and worker.sink is not None:
                sent = [
                    await producer.send(
                        worker.sink,
                        r.value,
                        key=r.key,
                        headers=stamped(r.headers, received) if stamps(r.headers) else r.headers,
                    )
                    for r in records
                ]
                await asyncio.gather(*sent)
            await consumer.commit()
            with handled.get_lock():
                handled.value += len(records)
            if worker.role == "alerts":
                triggers.extend(
                    (*times, received, stored) for r in records if (times := stamps(r.headers))
                )
        out.put(("done", worker.role, triggers))
    finally:
        if producer is not None:
            await producer.stop()
        await consumer.stop()
        await engine.dispose()


def _check(out: MpQueue[Any], procs: dict[str, Any], timeout: float) -> tuple[Any, ...] | None:
    """The next worker message within ``timeout`` s, or None; a failed worker raises."""
    try:
        message = out.get(True, timeout)
    except queue.Empty:
        dead = [role for role, proc in procs.items() if not proc.is_alive()]
        if dead:
            raise RuntimeError(f"worker(s) {', '.join(dead)} exited early") from None
        return None
    if message[0] == "error":
        raise RuntimeError(f"{message[1]} worker failed: {message[2]}")
    return tuple(message)


async def _messages(
    out: MpQueue[Any], procs: dict[str, Any], kind: str, seconds: float
) -> dict[str, Any]:
    """One ``kind`` message from every worker (role -> its payload), waiting ``seconds``."""
    got: dict[str, Any] = {}
    deadline = time.monotonic() + seconds
    while len(got) < len(procs):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {kind!r} from {sorted(set(procs) - set(got))} in {seconds} s")
        waiting = {role: proc for role, proc in procs.items() if role not in got}
        message = await asyncio.to_thread(_check, out, waiting, 0.5)
        if message is not None and message[0] == kind:
            got[message[1]] = message[2]
    return {role: got[role] for role in procs}


async def send_paced(
    producer: AIOKafkaProducer, topic: str, keys: list[bytes], values: list[bytes], rate: float
) -> tuple[int, int]:
    """Send every value at ``rate``/s, a burst every 10 ms, and wait for every acknowledgement;
    the first record of each second is a trigger. Returns (records sent, triggers sent)."""
    every, sent, triggers = max(1, round(rate)), 0, 0
    pending: list[asyncio.Future[Any]] = []
    started = time.monotonic()
    while sent < len(values):
        for _ in range(min(due(rate, time.monotonic() - started, sent), len(values) - sent)):
            headers: list[tuple[str, bytes]] = []
            if sent % every == 0:
                headers, triggers = stamped([], time.time()), triggers + 1
            pending.append(
                await producer.send(topic, values[sent], key=keys[sent], headers=headers)
            )
            sent += 1
        await asyncio.sleep(_TICK)
    await asyncio.gather(*pending)
    return sent, triggers


@dataclass(frozen=True, slots=True)
class Snapshot:
    """CPU seconds so far (workers, broker, this process), machine jiffies, records handled."""

    wall: float
    workers: dict[str, float | None]
    broker: float | None
    own: float
    box: tuple[int, int] | None
    handled: dict[str, int]

    @classmethod
    def take(
        cls, pids: dict[str, int], broker: int | None, handled: dict[str, Synchronized[int]]
    ) -> Snapshot:
        return cls(
            wall=time.monotonic(),
            workers={role: cpu_seconds(pid) for role, pid in pids.items()},
            broker=cpu_seconds(broker),
            own=time.process_time(),
            box=box_jiffies(),
            handled={role: count.value for role, count in handled.items()},
        )


def _per_second(before: float | None, after: float | None, seconds: float) -> float | None:
    return None if before is None or after is None else round((after - before) / seconds, 2)


def during_load(a: Snapshot, b: Snapshot) -> dict[str, Any]:
    """Each worker's cores, records/s and CPU ms per record between two snapshots; the
    broker's and this process's cores; the machine's busy share."""
    seconds = b.wall - a.wall
    workers = {}
    for role in a.workers:
        cores = _per_second(a.workers[role], b.workers[role], seconds)
        records = b.handled[role] - a.handled[role]
        workers[role] = {
            "cores": cores,
            "records_per_s": round(records / seconds, 1),
            "cpu_ms_per_record": None if cores is None or not records
            else round(cores * seconds * 1000 / records, 3),
        }  # fmt: skip
    return {
        "seconds": round(seconds, 1),
        "workers": workers,
        "broker_cores": _per_second(a.broker, b.broker, seconds),
        "producer_cores": _per_second(a.own, b.own, seconds),
        "machine_busy": busy_share(a.box, b.box),
    }


async def run(args: argparse.Namespace, bootstrap: str, broker_pid: int | None) -> dict[str, Any]:
    """One measured run: topics, workers, load, drain; topics deleted whatever happens."""
    prefix = f"floorlat{uuid.uuid4().hex[:8]}."
    intake, events = f"{prefix}intake", f"{prefix}events"
    n = max(1, int(args.rate * args.duration))
    load = build_load(n, prefix[:-1])
    values, sign_seconds = signed_values(load)
    ctx = mp.get_context("spawn")
    out: MpQueue[Any] = ctx.Queue()
    stop = ctx.Event()
    handled = {role: ctx.Value("q", 0) for role in ROLES}
    procs: dict[str, Any] = {}
    await create_topic(bootstrap, intake, _HUB["ingest_partitions"].default)
    await create_topic(bootstrap, events, _HUB["events_partitions"].default)
    try:
        with tempfile.TemporaryDirectory(prefix="hub-floor-latency-") as tmp:
            for role in ROLES:
                worker = Worker(
                    role=role,
                    bootstrap=bootstrap,
                    source=intake if role == "ingest" else events,
                    sink=events if role == "ingest" else None,
                    group=f"{prefix}{role}",
                    db=Path(tmp) / f"{role}.db",
                    batch=args.batch,
                    wait_ms=_HUB["batch_wait_ms"].default,
                )
                procs[role] = ctx.Process(
                    target=worker_main, args=(worker, handled[role], stop, out), daemon=True
                )
                procs[role].start()
            pids = await _messages(out, procs, "ready", 120)
            say(f"workers: {', '.join(f'{r} pid {p}' for r, p in pids.items())}; load starts")
            producer = AIOKafkaProducer(
                bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5
            )
            await producer.start()
            try:
                before = Snapshot.take(pids, broker_pid, handled)
                sent, triggers_sent = await send_paced(
                    producer, intake, load.keys, values, args.rate
                )
                after = Snapshot.take(pids, broker_pid, handled)
            finally:
                await producer.stop()
            deadline = time.monotonic() + args.drain
            while min(count.value for count in handled.values()) < sent:
                if time.monotonic() > deadline:
                    break
                await asyncio.to_thread(_check, out, procs, 0.1)
            drained = time.monotonic()
            stop.set()
            done = await _messages(out, procs, "done", 60)
    finally:
        stop.set()
        for proc in procs.values():
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
        await delete_topics_with_prefix(bootstrap, prefix)
    triggers: list[tuple[float, float, float, float]] = done["alerts"]
    left = {role: sent - count.value for role, count in handled.items()}
    return {
        "bench": "floor_latency",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "rate_offered": args.rate,
        "duration_s": args.duration,
        "batch": args.batch,
        "signing_ms_per_event_excluded": round(sign_seconds / n * 1000, 4),
        "sent": sent,
        "sent_per_s": round(sent / (after.wall - before.wall), 1),
        "triggers_sent": triggers_sent,
        "triggers_received": len(triggers),
        "received_ms": percentiles([(got - sub) * 1000 for sub, _, got, _ in triggers]),
        "stored_ms": percentiles([(put - sub) * 1000 for sub, _, _, put in triggers]),
        "ingest_received_ms": percentiles([(got - sub) * 1000 for sub, got, _, _ in triggers]),
        "during_load": during_load(before, after),
        "left_at_end_of_load": {role: sent - after.handled[role] for role in ROLES},
        "all_handled_after_load_s": None if any(left.values())
        else round(drained - after.wall, 1),
        "left_after_drain": left,
    }  # fmt: skip


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=1_000, help="events/s offered")
    parser.add_argument("--duration", type=float, default=30, help="seconds of load")
    parser.add_argument("--drain", type=float, default=60, help="seconds to wait after the load")
    add_floor_options(parser)
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    broker, broker_pid = open_floor_broker(args)
    try:
        return await run(args, broker.bootstrap, broker_pid)
    finally:
        if broker.local is not None:
            broker.local.stop()


def _ms(figures: dict[str, float]) -> str:
    keys = ("p50", "p95", "p99", "max")
    return " / ".join(f"{figures[k]:.0f}" for k in keys) + " ms" if figures else "none"


def report(result: dict[str, Any]) -> None:
    load = result["during_load"]
    say(
        f"load: {result['sent']} events at {result['sent_per_s']}/s "
        f"(offered {result['rate_offered']:g}/s, signing excluded)"
    )
    say(f"triggers: {result['triggers_received']} of {result['triggers_sent']} received")
    say(f"  submitted -> alerts received   p50/p95/p99/max {_ms(result['received_ms'])}")
    say(f"  submitted -> alerts stored     p50/p95/p99/max {_ms(result['stored_ms'])}")
    say(f"  (submitted -> ingest received  p50/p95/p99/max {_ms(result['ingest_received_ms'])})")
    for role, figures in load["workers"].items():
        say(
            f"  {role:<9} {figures['cores']} cores, {figures['records_per_s']} records/s, "
            f"{figures['cpu_ms_per_record']} ms CPU per record; "
            f"{result['left_at_end_of_load'][role]} behind at the end of the load"
        )
    say(
        f"broker {load['broker_cores']} cores, producer {load['producer_cores']} cores, "
        f"machine busy {load['machine_busy']} (of {result['cpus']} CPUs)"
    )
    drained = result["all_handled_after_load_s"]
    say(
        f"all handled {drained} s after the load"
        if drained is not None
        else f"not all handled after the drain: {result['left_after_drain']}"
    )
    print(json.dumps(result), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    report(asyncio.run(main_async(parse_args(argv))))


if __name__ == "__main__":
    main()
