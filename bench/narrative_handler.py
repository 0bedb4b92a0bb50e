"""CPU per event of the narrative role's handler (projector, then topic deliveries), in process.

No broker and no subprocess, so this is the quiet way to compare two versions of the
narrative role on a shared box (``bench/alert_latency.py`` measures the whole hub):

1. **Store**: a fresh SQLite file in a temporary data dir, migrated, with the hub's own
   security (keys made there) and the packaged subscribers, rule pack and agencies.
2. **Seed**: ``--events`` signed police concerns about ``--events / 20`` children, each with
   its own person (``build_load(varied=True)``, as ``alert_latency --people varied``). They
   go through the real ``IngestProcessor``. Its ``hub.events`` records are collected from a
   publish that keeps them in memory, and are spread over three partitions by key.
3. **Timed**: the records are handled by ``ProjectThenDeliver`` (the ``NarrativeProjector``
   and the ``DeliveryConsumer`` that ``build_delivery`` wires) in batches of ``--batch``,
   in log order. The first tenth warms caches untimed. Publishing resolves at once.
   The figures are the process's CPU time per event (the SQLite worker thread included), the
   main thread's share, wall time, and the store's rows after.

It measures the ``hub`` of the current directory (put first on ``sys.path``, ahead of the
installed project), so run it from the root of the tree to measure; to compare two trees,
run it from each alternately and compare the lowest of a few runs, since other work on the
box inflates CPU time.

Usage::

    .venv/bin/python bench/narrative_handler.py [--events 3000] [--batch 25]
        [--profile FILE (cProfile of the timed part, main thread CPU)] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, os.getcwd())  # the tree measured: the one this is run from

from pipeline import build_load, signed_value
from sqlalchemy import func, select

from hub.crypto.agency_keys import dev_private_key
from hub.crypto.runtime import build_security
from hub.delivery import ProjectThenDeliver, build_delivery
from hub.governance.tables import audit_records
from hub.observability import Metrics, configure_logging
from hub.registry import AgencyRegistry
from hub.settings import Settings
from hub.store.db import create_engine, migrate
from hub.store.repository import SqlStore
from hub.streams.ingest import IngestProcessor
from hub.streams.projector import NarrativeProjector
from hub.streams.records import ConsumedRecord
from hub.streams.topics import Topics

_AGENCY = "northshire-police"
_PARTITIONS = 3


class KeptPublish:
    """A publish that keeps every record and resolves at once (no broker)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []

    async def __call__(
        self, topic: str, value: bytes, *, key: bytes | None, headers: dict[str, str]
    ) -> asyncio.Future[Any]:
        self.sent.append((topic, value, key))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def thread_cpu() -> tuple[float, float]:
    """CPU seconds of this process's main thread and of all its other threads."""
    main = other = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/self/task"):
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        used = (int(fields[11]) + int(fields[12])) / tick
        if int(tid) == os.getpid():
            main += used
        else:
            other += used
    return main, other


def hub_records(
    sent: Sequence[tuple[str, bytes, bytes | None]], topic: str
) -> list[ConsumedRecord]:
    """The ``hub.events`` records published, as a consumer would read them (by key)."""
    offsets = [0] * _PARTITIONS
    records = []
    for to, value, key in sent:
        if to != topic:
            continue
        partition = zlib.crc32(key or b"") % _PARTITIONS
        records.append(ConsumedRecord(to, partition, offsets[partition], key, value))
        offsets[partition] += 1
    return records


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    settings = Settings(data_dir=work, database_url=f"sqlite+aiosqlite:///{work / 'hub.db'}")
    registry = AgencyRegistry.load(settings.agencies_file)
    engine = create_engine(settings.db_url)
    await migrate(engine)
    store = SqlStore(engine)
    security = build_security(settings, engine, registry)
    await security.start()
    topics, metrics, publish = Topics(settings), Metrics(), KeptPublish()
    try:
        ingest = IngestProcessor(
            store=store,
            registry=registry,
            topics=topics,
            publish=publish,
            metrics=metrics,
            security=security,
        )
        load = build_load(args.events, "nh", signed=True, varied=True)
        key = dev_private_key(_AGENCY)
        ingest_topic = settings.topic("ingest.police")
        for start in range(0, args.events, 200):
            batch = [
                ConsumedRecord(
                    ingest_topic,
                    0,
                    i,
                    load.keys[i],
                    signed_value(load, i, datetime.now(UTC).isoformat().encode(), key),
                )
                for i in range(start, min(start + 200, args.events))
            ]
            await ingest.handle_batch(batch)
        records = hub_records(publish.sent, topics.events)
        publish.sent.clear()
        delivery = build_delivery(
            settings=settings, registry=registry, store=store, security=security, publish=publish
        )
        projector = NarrativeProjector(
            store=store, topics=topics, publish=publish, metrics=metrics, security=security
        )
        handler = ProjectThenDeliver(projector, delivery.consumer)
        warm = len(records) // 10
        for start in range(0, warm, args.batch):
            await handler.handle_batch(records[start : min(start + args.batch, warm)])
        timed = records[warm:]
        profile = cProfile.Profile(time.thread_time) if args.profile else None
        main0, other0 = thread_cpu()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if profile:
            profile.enable()
        for start in range(0, len(timed), args.batch):
            await handler.handle_batch(timed[start : start + args.batch])
        if profile:
            profile.disable()
            profile.dump_stats(args.profile)
        cpu1, wall1 = time.process_time(), time.perf_counter()
        main1, other1 = thread_cpu()
        async with engine.connect() as conn:
            audit = (await conn.execute(select(func.count()).select_from(audit_records))).scalar()
        n = len(timed)
        return {
            "events": n,
            "batch": args.batch,
            "hub_events_seeded": len(records),
            "cpu_ms_per_event": round(1000 * (cpu1 - cpu0) / n, 3),
            "main_thread_ms_per_event": round(1000 * (main1 - main0) / n, 3),
            "other_threads_ms_per_event": round(1000 * (other1 - other0) / n, 3),
            "wall_ms_per_event": round(1000 * (wall1 - wall0) / n, 3),
            "entries": await store.count_entries(),
            "audit_records": audit,
            "deliveries_published": len(publish.sent),
        }
    finally:
        await engine.dispose()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="police concerns seeded")
    parser.add_argument("--batch", type=int, default=25, help="records per handled batch")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the timed part here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging("WARNING", json=True)
    work = Path(tempfile.mkdtemp(prefix="hub-narrative-bench-"))
    try:
        result = asyncio.run(run(args, work))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(
        f"narrative handler: {result['events']} events in batches of {result['batch']}: "
        f"{result['cpu_ms_per_event']} ms CPU per event (main thread "
        f"{result['main_thread_ms_per_event']}, others {result['other_threads_ms_per_event']}), "
        f"wall {result['wall_ms_per_event']} ms"
    )
    print(
        f"store: {result['entries']} entries, {result['audit_records']} audit records; "
        f"{result['deliveries_published']} deliveries published"
    )
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
