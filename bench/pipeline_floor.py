"""The CPU floor of the hub's pipeline per event: what the design pays before any hub logic.

Issue 5 asks for alert latency while 1,000 events/s flow. An event is written to Kafka twice
(the agency's producer to the intake topic, ingest's publisher to ``hub.events``) and read
three times (ingest reads the intake topic; the narrative and alerts roles each read
``hub.events``), is verified once, parsed by every role, sealed and stored. This bench makes
each of those steps alone, on the real broker, with the hub's own libraries and the bench
load's envelopes, and adds them up: the CPU any implementation of this design in this stack
spends per event before its own logic (sharing decisions, audit, identity, alert state). One
run:

1. **Kafka, as the pipeline uses it**: N signed ``concern.raised`` envelopes
   (``bench/pipeline.py``'s load, signed with the police dev key, signing timed apart) are
   produced to an "intake" topic with aiokafka (``enable_idempotence=True, linger_ms=5``),
   read back by one consumer group, produced again to an "events" topic, and read back by two
   more groups (``getmany`` batches of ``--batch``, a commit after each). This process's CPU
   (``time.process_time``) per step; the broker's CPU (``/proc``) over all of it, when its pid
   is known (the hub's local broker, or ``--broker-pid``).
2. **Verify**: ``hub.crypto.signing.verify_envelope`` of each record against the development
   key ring (ingest verifies every envelope; the canonical bytes included).
3. **Parse**: ``orjson.loads`` + ``contracts.parse_envelope`` of each record (every role
   validates the envelope it reads).
4. **Seal**: AES-256-GCM of each record's bytes under one key (one ciphertext per event; the
   hub seals per field).
5. **Store**: each record as one row (id, child, the record's bytes) into a fresh SQLite file
   through the hub's own engine (``hub.store.db.create_engine``: WAL, its writer lock), one
   ``executemany`` and commit per ``--batch`` rows (ingest, the narrative and alerts each write
   a row's worth per event).

Floor per event = 2 produces + 3 consumes + the broker + verify + 3 x parse + seal +
3 x store, and the cores that floor needs at ``--rate`` events/s. The agency's producer runs
on the hub's machine only in the benches (there it shares the cores). It prints plain lines
and, last, one JSON line. No thresholds, no asserts.

Usage::

    .venv/bin/python bench/pipeline_floor.py [--events 20000] [--batch 500] [--rate 1000]
        [--broker-pid PID] [--data-dir .hub]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Column, Insert, LargeBinary, MetaData, String, Table
from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline import (
    Broker,
    Load,
    build_load,
    cpu_seconds,
    create_topic,
    delete_topics_with_prefix,
    open_broker,
    say,
    signed_value,
)

from contracts import parse_envelope
from hub.crypto.agency_keys import AgencyKeyRing, dev_private_key
from hub.crypto.signing import verify_envelope
from hub.store.db import create_engine

_AGENCY = "northshire-police"
_COUNTED = {
    "produce": 2,
    "consume": 3,
    "broker_two_writes_three_reads": 1,
    "verify_ed25519": 1,
    "parse_envelope": 3,
    "seal_aes_gcm": 1,
    "store_row_sqlite": 3,
}
"""How many times each step happens to one event on its way through the hub."""


def signed_values(load: Load) -> tuple[list[bytes], float]:
    """Every message of the load, signed now; and the CPU seconds the signing took."""
    signer = dev_private_key(_AGENCY)
    stamp = datetime.now(UTC).isoformat().encode()
    started = time.process_time()
    values = [signed_value(load, i, stamp, signer) for i in range(len(load))]
    return values, time.process_time() - started


async def produce_all(bootstrap: str, topic: str, keys: list[bytes], values: list[bytes]) -> float:
    """Send every value and wait for every acknowledgement; this process's CPU seconds."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        started = time.process_time()
        futures = [await producer.send(topic, v, key=k) for k, v in zip(keys, values, strict=True)]
        await asyncio.gather(*futures)
        return time.process_time() - started
    finally:
        await producer.stop()


async def consume_all(bootstrap: str, topic: str, group: str, events: int, batch: int) -> float:
    """Read ``events`` records as a group member, committing after each batch; CPU seconds."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        seen = 0
        started = time.process_time()
        deadline = time.monotonic() + 300
        while seen < events:
            if time.monotonic() > deadline:
                raise RuntimeError(f"consumed {seen} of {events} records in 300 s")
            batches = await consumer.getmany(timeout_ms=1000, max_records=batch)
            seen += sum(len(records) for records in batches.values())
            if batches:
                await consumer.commit()
        return time.process_time() - started
    finally:
        await consumer.stop()


def cpu_per_call(values: Sequence[bytes], step: Callable[[bytes], Any]) -> float:
    """Mean CPU seconds of ``step`` over every value."""
    started = time.process_time()
    for value in values:
        step(value)
    return (time.process_time() - started) / len(values)


def seal_each(values: Sequence[bytes]) -> float:
    """Mean CPU seconds to AES-256-GCM one value (fresh nonce, its id as associated data)."""
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    started = time.process_time()
    for index, value in enumerate(values):
        aead.encrypt(os.urandom(12), value, str(index).encode())
    return (time.process_time() - started) / len(values)


def dev_ring() -> AgencyKeyRing:
    """The development key ring the load's envelopes verify against."""
    return AgencyKeyRing.development([_AGENCY])


async def open_store(path: Path) -> tuple[AsyncEngine, Insert]:
    """A fresh SQLite file through the hub's engine, with one table of (id, child, bytes) rows;
    the engine and the insert of a row."""
    rows = Table(
        "floor_rows",
        MetaData(),
        Column("event_id", String(64), primary_key=True),
        Column("child_id", String(64), nullable=False),
        Column("body", LargeBinary, nullable=False),
    )
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.run_sync(rows.metadata.create_all)
    return engine, rows.insert()


async def store_all(path: Path, values: Sequence[bytes], batch: int) -> float:
    """Mean CPU seconds to write one value as a row, ``batch`` rows per transaction."""
    engine, insert = await open_store(path)
    try:
        started = time.process_time()
        for at in range(0, len(values), batch):
            chunk = [
                {"event_id": f"e{at + i}", "child_id": f"c{(at + i) % 997}", "body": value}
                for i, value in enumerate(values[at : at + batch])
            ]
            async with engine.begin() as conn:
                await conn.execute(insert, chunk)
        return (time.process_time() - started) / len(values)
    finally:
        await engine.dispose()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="records to send and read")
    parser.add_argument("--rate", type=int, default=1_000, help="events/s to size cores for")
    add_floor_options(parser)
    return parser.parse_args(argv)


def add_floor_options(parser: argparse.ArgumentParser) -> None:
    """The options every floor bench takes: the batch size and the broker."""
    parser.add_argument(
        "--batch", type=int, default=500, help="getmany max_records, and rows per store commit"
    )
    parser.add_argument("--broker-pid", type=int, default=None, help="broker pid (for its CPU)")
    parser.add_argument("--data-dir", type=Path, default=Path(".hub"), help="local broker's dir")


def open_floor_broker(args: argparse.Namespace) -> tuple[Broker, int | None]:
    """The broker ``add_floor_options`` names and its pid (for its CPU), announced."""
    broker = open_broker(args.data_dir)
    pid = args.broker_pid or broker.pid
    say(f"broker: {broker.note}; pid {pid or 'unknown (pass --broker-pid)'}")
    return broker, pid


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    broker, broker_pid = open_floor_broker(args)
    run_id = uuid.uuid4().hex[:8]
    prefix = f"floor{run_id}."
    intake, events = f"{prefix}intake", f"{prefix}events"
    load = build_load(args.events, run_id)
    values, sign_seconds = signed_values(load)
    n = len(values)
    for topic in (intake, events):
        await create_topic(broker.bootstrap, topic, 3)
    try:
        broker0 = cpu_seconds(broker_pid)
        produced = [await produce_all(broker.bootstrap, intake, load.keys, values)]
        consumed = [await consume_all(broker.bootstrap, intake, f"{prefix}ingest", n, args.batch)]
        produced.append(await produce_all(broker.bootstrap, events, load.keys, values))
        for role in ("narrative", "alerts"):
            consumed.append(
                await consume_all(broker.bootstrap, events, f"{prefix}{role}", n, args.batch)
            )
        broker1 = cpu_seconds(broker_pid)
    finally:
        await delete_topics_with_prefix(broker.bootstrap, prefix)
        if broker.local is not None:
            broker.local.stop()
    ring = dev_ring()
    now = datetime.now(UTC)
    verify = cpu_per_call(values, lambda v: verify_envelope(orjson.loads(v), ring, now=now))
    decode = cpu_per_call(values, orjson.loads)
    parse = cpu_per_call(values, lambda v: parse_envelope(orjson.loads(v)))
    seal = seal_each(values)
    with tempfile.TemporaryDirectory(prefix="hub-floor-") as tmp:
        store = await store_all(Path(tmp) / "floor.db", values, args.batch)
    ms = {
        "produce": sum(produced) / len(produced) / n * 1000,
        "consume": sum(consumed) / len(consumed) / n * 1000,
        "broker_two_writes_three_reads": (
            None if broker0 is None or broker1 is None else (broker1 - broker0) / n * 1000
        ),
        "verify_ed25519": (verify - decode) * 1000,
        "parse_envelope": parse * 1000,
        "seal_aes_gcm": seal * 1000,
        "store_row_sqlite": store * 1000,
    }
    floor = sum(value * _COUNTED[step] for step, value in ms.items() if value is not None)
    return {
        "bench": "pipeline_floor",
        "python": platform.python_version(),
        "events": n,
        "batch": args.batch,
        "signing_ms_per_event_excluded": round(sign_seconds / n * 1000, 4),
        "ms_per_event": {k: None if v is None else round(v, 4) for k, v in ms.items()},
        "counted": _COUNTED,
        "floor_ms_per_event": round(floor, 3),
        "broker_counted": ms["broker_two_writes_three_reads"] is not None,
        "rate": args.rate,
        "floor_cores_at_rate": round(floor * args.rate / 1000, 2),
    }


def report(result: dict[str, Any]) -> None:
    per = result["ms_per_event"]
    say(f"events: {result['events']} (batches of {result['batch']})")
    for step, times in _COUNTED.items():
        value = per[step]
        shown = "unknown" if value is None else f"{value:.4f} ms"
        say(f"  {step:<30} {shown} per event, counted {times}x")
    say(
        f"floor: {result['floor_ms_per_event']} ms of CPU per event"
        + ("" if result["broker_counted"] else " (broker not counted: its pid is unknown)")
    )
    say(f"at {result['rate']} events/s the floor alone needs {result['floor_cores_at_rate']} cores")
    print(json.dumps(result), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    report(asyncio.run(main_async(parse_args(argv))))


if __name__ == "__main__":
    main()
