"""Narrative read latency: one child with many events in a store of many children.

1. **Store**: a fresh SQLite file (default) or a fresh database on a PostgreSQL server
   (``--database-url``), migrated by ``hub.store.db.migrate`` like the hub does.
2. **Seed**, through the product's own code: ``--children`` children (``SqlStore.apply_links``
   with the keyed NHS digest, as ingest links them), each with a data key
   (``ChildKeyStore.current_keys``, wrapped under the local KEK) and ``--entries-per-child``
   narrative entries; then one more child with ``--events`` entries (a child-protection plan
   from children's services, police, health and school concerns, ED attendances). Entries are
   made by ``entry_for`` from valid envelopes, sealed by ``seal_entry`` under the child's key
   and stored by ``SqlStore.apply_entries``: exactly the rows the projector writes.
3. **Reads**: ``GET /api/v1/children/<child>/narrative`` on the real app (``create_app``) over
   ``httpx.ASGITransport`` in this process, as a children's-services social worker (token from
   the hub's own issuer): the sharing rules decide every entry and the read is audited.
   ``--warmup`` reads, then ``--reads`` timed ones, one at a time.
4. **Breakdown**: a further ``--breakdown`` reads with the read path's steps wrapped in timers
   (store query, opening sealed text, governance context, decisions, redaction, audit write,
   the rest = HTTP, response model, JSON), so the headline figures are taken without them.

Prints plain lines and, last, one JSON line. Target (issue 5): p99 < 50 ms at 2,000 events.

Usage::

    .venv/bin/python bench/narrative_read.py [--children 100000] [--events 2000] [--reads 200]
        [--database-url postgresql+asyncpg://user@host:port/postgres] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline import create_pg_database, drop_pg_database, percentiles, say

import hub.api.children as children_api
import hub.api.narrative_access as access
from contracts import parse_envelope
from contracts.examples import example_data, example_envelope, valid_nhs_number
from hub.api.app import create_app, settle_heap
from hub.bootstrap import Hub, ProcessRole, build_hub
from hub.crypto.data_keys import _context as key_context
from hub.crypto.narrative import NarrativeOpener, seal_entry
from hub.crypto.tables import child_data_keys
from hub.domain.identity import LinkDecision, LinkKey
from hub.domain.narrative import NarrativeEntry, entry_for
from hub.domain.roles import Role
from hub.narrative_cache import cache_for
from hub.observability import configure_logging
from hub.settings import Settings
from hub.store.checkpoints import run_checkpoints
from hub.store.db import migrate
from hub.store.repository import PositionedEntry

__all__ = ["Timers", "event_mix", "template_entries"]

TARGET = "ch-bench-target"
_SEED_TOPIC = "bench.seed"
_CHUNK = 1000
_LEAD = "sam.practitioner@northshire.example"


# -- pure helpers -------------------------------------------------------------------------------


def _envelope(kind: str, index: int, when: datetime) -> dict[str, Any]:
    """A valid envelope of one of the mix's kinds (``plan``, ``police``, ``health``, ``school``,
    ``attendance``) for the target child, happening at ``when``."""
    common: dict[str, Any] = {
        "time": when.isoformat(),
        "recorded_at": (when + timedelta(minutes=20)).isoformat(),
        "person": {
            "identifiers": [{"system": "nhs", "value": valid_nhs_number(899_999)}],
            "name": {"given": "Casey", "family": "Readbench", "aliases": []},
            "birth_date": "2014-09-09",
            "sex": "female",
        },
    }
    if kind == "plan":
        data = example_data("involvement.started")
        data["lead_practitioner"]["email"] = _LEAD
        data["started_on"] = when.date().isoformat()
        agency, agency_kind, etype, sens = "northshire-cs", "childrens_services", kind, []
        etype = "involvement.started"
    elif kind == "attendance":
        data = example_data("contact.recorded")
        data["ended_at"] = (when + timedelta(hours=2)).isoformat()
        agency, agency_kind, etype, sens = "northshire-health", "health", "contact.recorded", []
    else:
        data = example_data("concern.raised")
        agency, agency_kind, sens = {
            "police": ("northshire-police", "police", ["domestic_abuse"]),
            "health": ("northshire-health", "health", []),
            "school": ("northshire-primary", "schools", []),
        }[kind]
        if kind != "police":
            data["category"] = "neglect"
        etype = "concern.raised"
    return example_envelope(
        **common,
        id=f"{agency}:readbench-{index:06d}",
        source=f"urn:agency:{agency}",
        type=etype,
        subject=f"RB-{agency_kind}-0001",
        agency_id=agency,
        agency_kind=agency_kind,
        lawful_basis="law_enforcement_sch8" if agency_kind == "police" else "public_task",
        sensitivity=sens,
        data=data,
    )


def event_mix(count: int, start: datetime) -> Iterator[tuple[str, datetime]]:
    """``count`` (kind, when) pairs a day apart from ``start``: a plan first, then a rotation of
    police concerns (40%), ED attendances (20%), health concerns (20%) and school concerns."""
    rotation = ("police", "attendance", "police", "health", "school")
    for i in range(count):
        yield ("plan" if i == 0 else rotation[i % len(rotation)]), start + timedelta(hours=9 * i)


def template_entries() -> dict[str, NarrativeEntry]:
    """One unsealed entry per kind of the mix, made by ``entry_for`` from a valid envelope."""
    when = datetime(2025, 1, 6, 10, tzinfo=UTC)
    kinds = ("plan", "police", "health", "school", "attendance")
    return {k: entry_for(parse_envelope(_envelope(k, 0, when)), "template") for k in kinds}


@dataclasses.dataclass(slots=True)
class Timers:
    """Seconds spent per named step, summed over reads."""

    seconds: dict[str, float] = dataclasses.field(default_factory=lambda: defaultdict(float))
    clock: Callable[[], float] = time.perf_counter

    def wrap_async(self, name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        """``fn`` with its time added to ``name``."""

        async def timed(*args: Any, **kwargs: Any) -> Any:
            t = self.clock()
            try:
                return await fn(*args, **kwargs)
            finally:
                self.seconds[name] += self.clock() - t

        return timed

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` with its time added to ``name``."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            t = self.clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += self.clock() - t

        return timed

    def per_read_ms(self, reads: int) -> dict[str, float]:
        """Milliseconds per read of each step."""
        return {k: round(v * 1000 / reads, 2) for k, v in sorted(self.seconds.items())}


# -- seeding ------------------------------------------------------------------------------------


def _entry(
    template: NarrativeEntry, event_id: str, child_id: str, when: datetime
) -> NarrativeEntry:
    return dataclasses.replace(
        template,
        event_id=event_id,
        child_id=child_id,
        occurred_at=when,
        recorded_at=when + timedelta(minutes=20),
    )


async def _link(hub: Hub, ids: Sequence[str], seeds: Sequence[int], now: datetime) -> None:
    decisions = [
        LinkDecision(
            child_id=child,
            is_new_child=True,
            attach=(LinkKey("nhs", hub.security.digest("nhs", valid_nhs_number(seed))),),
        )
        for child, seed in zip(ids, seeds, strict=True)
    ]
    async with hub.store.engine.begin() as conn:
        await hub.store.apply_links(conn, decisions, now)


async def _bulk_keys(hub: Hub, ids: Sequence[str], now: datetime) -> None:
    """Version-1 data keys for new children in one INSERT: fresh AES-256 keys wrapped by the
    hub's own key provider with the context ``ChildKeyStore`` binds (its per-child insert and
    read-back is ~5 ms a child here; ``current_keys`` then reads and unwraps these rows)."""
    provider = hub.security.provider
    rows = []
    for child in ids:
        wrapped = await provider.wrap(AESGCM.generate_key(256), context=key_context(child, 1))
        rows.append(
            {
                "child_id": child,
                "key_version": 1,
                "kek_id": wrapped.kek_id,
                "wrapped_key": wrapped.blob,
                "created_at": now,
            }
        )
    async with hub.store.engine.begin() as conn:
        await conn.execute(child_data_keys.insert(), rows)


async def _store(hub: Hub, items: list[PositionedEntry], now: datetime) -> None:
    async with hub.store.engine.begin() as conn:
        await hub.store.apply_entries(conn, "narrative", items, now=now)


async def seed(hub: Hub, args: argparse.Namespace) -> dict[str, float]:
    """Fill the store; returns seconds per phase."""
    templates = template_entries()
    now = datetime.now(UTC)
    offset = 0
    timings: dict[str, float] = {}
    t = time.monotonic()
    kinds = ("police", "health", "school", "attendance")
    for start in range(0, args.children, _CHUNK):
        seeds = list(range(start, min(start + _CHUNK, args.children)))
        ids = [f"ch-bench-{s:07d}" for s in seeds]
        await _link(hub, ids, seeds, now)
        await _bulk_keys(hub, ids, now)
        keys = await hub.security.keys.current_keys(ids)
        items: list[PositionedEntry] = []
        for child, s in zip(ids, seeds, strict=True):
            for j in range(args.entries_per_child):
                when = now - timedelta(days=1 + (s + j) % 700)
                entry = _entry(templates[kinds[(s + j) % 4]], f"bench:{child}-{j}", child, when)
                items.append(
                    PositionedEntry(seal_entry(keys[child], entry), _SEED_TOPIC, 0, offset)
                )
                offset += 1
        if items:
            await _store(hub, items, now)
        if (start // _CHUNK) % 20 == 19:
            say(f"seed: {start + len(seeds)} children ({time.monotonic() - t:.0f}s)")
    timings["children_s"] = round(time.monotonic() - t, 1)

    t = time.monotonic()
    await _link(hub, [TARGET], [899_999], now)
    key = (await hub.security.keys.current_keys([TARGET]))[TARGET]
    first = now - timedelta(hours=9 * args.events + 24)
    items = []
    for i, (kind, when) in enumerate(event_mix(args.events, first)):
        entry = _entry(templates[kind], f"bench:target-{i:06d}", TARGET, when)
        items.append(PositionedEntry(seal_entry(key, entry), _SEED_TOPIC, 0, offset))
        offset += 1
    for start in range(0, len(items), _CHUNK):
        await _store(hub, items[start : start + _CHUNK], now)
    timings["target_s"] = round(time.monotonic() - t, 1)
    return timings


# -- reads --------------------------------------------------------------------------------------


@contextlib.contextmanager
def instrumented(timers: Timers) -> Iterator[None]:
    """Wrap the read path's steps in ``timers`` for the duration (module attributes restored)."""
    patches = [
        (access, "prepare_read", timers.wrap_async("governance_context", access.prepare_read)),
        (access, "record_read", timers.wrap_async("audit_write", access.record_read)),
        (access, "governance_of", timers.wrap("governance_of", access.governance_of)),
        (access, "decide_all", timers.wrap("decide", access.decide_all)),
        (access, "redact", timers.wrap("redact", access.redact)),
        (access, "describe_view", timers.wrap("describe_view", access.describe_view)),
        (NarrativeOpener, "open_all", timers.wrap_async("open_sealed", NarrativeOpener.open_all)),
        (access, "open_items", timers.wrap_async("open_items_total", access.open_items)),
        (access, "situation_of", timers.wrap("situation", access.situation_of)),
        (children_api, "_visible", timers.wrap_async("visible_total", children_api._visible)),
    ]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        yield
    finally:
        for obj, name, value in saved:
            setattr(obj, name, value)


async def read_once(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], cpu: list[float] | None = None
) -> float:
    """One narrative read; returns wall milliseconds and appends the process's CPU
    milliseconds (every thread: the event loop and the database driver's) to ``cpu``."""
    c = time.process_time()
    t = time.perf_counter()
    response = await client.get(url, headers=headers)
    elapsed = (time.perf_counter() - t) * 1000
    if cpu is not None:
        cpu.append((time.process_time() - c) * 1000)
    response.raise_for_status()
    return elapsed


async def measure(hub: Hub, args: argparse.Namespace) -> dict[str, Any]:
    """Warm up, time the reads, then the instrumented reads."""
    assert hub.issuer is not None
    token = hub.issuer.issue(
        sub=_LEAD, agency="northshire-cs", role=Role.social_worker, ttl=timedelta(hours=2)
    )
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/api/v1/children/{TARGET}/narrative?page_size={args.page_size}"
    transport = httpx.ASGITransport(app=create_app(hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        body = (await client.get(url, headers=headers)).json()
        for _ in range(args.warmup):
            await read_once(client, url, headers)
        profile = cProfile.Profile() if args.profile else None
        if profile:
            profile.enable()
        say(f"reads: first read returned {len(body['entries'])} of {body['total']} entries")
        times: list[float] = []
        cpu: list[float] = []
        for n in range(args.reads):
            times.append(await read_once(client, url, headers, cpu))
            if n % 50 == 49:
                say(f"reads: {n + 1} timed, p50 so far {percentiles(times)['p50']:.1f} ms")
        if profile:
            profile.disable()
            profile.dump_stats(args.profile)
        cache = cache_for(hub.store, hub.security.keys)
        cold: list[float] = []
        cold_cpu: list[float] = []
        for _ in range(args.cold_reads):  # the child's entries changed since the last read
            cache.clear()
            cold.append(await read_once(client, url, headers, cold_cpu))
        timers = Timers(clock=time.process_time)  # CPU: robust to the other tenants' load
        store = hub.store
        for name in ("narrative", "entry_texts", "identity_group", "child_exists"):
            setattr(store, name, timers.wrap_async(f"store_{name}", getattr(store, name)))
        with instrumented(timers):
            broken: list[float] = []
            for _ in range(args.breakdown):
                await read_once(client, url, headers, broken)
    steps = timers.per_read_ms(args.breakdown)
    total = sum(broken) / len(broken) if broken else 0.0
    # Outside the read path: authentication, the response model, JSON, HTTP, middleware.
    steps["outside_read_path"] = round(total - steps.get("visible_total", 0.0), 2)
    return {
        "visible_entries": body["total"],
        "returned_entries": len(body["entries"]),
        "latency_ms": percentiles(times),
        "cpu_ms_per_read": percentiles(cpu),
        "cold_latency_ms": percentiles(cold),
        "cold_cpu_ms_per_read": percentiles(cold_cpu),
        "instrumented_mean_ms": round(total, 2),
        "breakdown_ms_per_read": steps,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--children", type=int, default=100_000, help="other children")
    parser.add_argument("--entries-per-child", type=int, default=1, help="entries of each")
    parser.add_argument("--events", type=int, default=2000, help="entries of the read child")
    parser.add_argument("--reads", type=int, default=200, help="timed reads")
    parser.add_argument("--warmup", type=int, default=10, help="untimed reads first")
    parser.add_argument(
        "--cold-reads", type=int, default=30, help="reads after forgetting the kept basis"
    )
    parser.add_argument("--breakdown", type=int, default=20, help="instrumented reads after")
    parser.add_argument("--page-size", type=int, default=200, help="entries per response page")
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server (postgresql+asyncpg://...): a fresh database is made on it "
        "and dropped after. Default: a SQLite file in a temp dir",
    )
    parser.add_argument("--profile", type=Path, default=None, help="cProfile the timed reads")
    parser.add_argument(
        "--log-level", default="WARNING", help="the hub's log level (INFO logs every key made)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and database")
    args = parser.parse_args(argv)
    if args.children > 800_000 or args.events < 1:
        parser.error("--children must be at most 800000 and --events at least 1")
    return args


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    configure_logging(args.log_level)
    say(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}"
    )
    work = Path(tempfile.mkdtemp(prefix="hub-readbench-"))
    db_name: str | None = None
    if args.database_url:
        url, db_name = await create_pg_database(args.database_url)
    else:
        url = f"sqlite+aiosqlite:///{work / 'hub.db'}"
    # One caller reading back to back: the per-caller rate limit (an operational guard, 200
    # calls a burst) would refuse the later reads, so it is off here.
    settings = Settings(
        data_dir=work, database_url=url, kafka_bootstrap="127.0.0.1:1", rate_limit_enabled=False
    )
    hub = build_hub(settings, ProcessRole.api)
    try:
        await migrate(hub.store.engine)
        await hub.security.start()
        say(f"store: {hub.store.engine.dialect.name}; seeding {args.children} children ...")
        seeded = await seed(hub, args)
        say(f"seed: done {seeded}")
        settle_heap()  # as the hub's lifespan does once started (ASGITransport runs none)
        # As a started hub does: SQLite's checkpoints in their own task, not in a read.
        checkpoints = asyncio.create_task(run_checkpoints(hub.store.engine))
        try:
            result = await measure(hub, args)
        finally:
            checkpoints.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checkpoints
    finally:
        await hub.store.engine.dispose()
        if not args.keep:
            if db_name:
                with contextlib.suppress(Exception):
                    await drop_pg_database(args.database_url, db_name)
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"kept: {work}, database {db_name}")
    return {
        "store": hub.store.engine.dialect.name,
        "children": args.children + 1,
        "entries_per_child": args.entries_per_child,
        "events": args.events,
        "reads": args.reads,
        "page_size": args.page_size,
        "seed_seconds": seeded,
        "cpus": os.cpu_count(),
        **result,
    }


def report(result: dict[str, Any]) -> None:
    lat = result["latency_ms"]
    say()
    say(
        f"store:        {result['store']}, {result['children']} children, target child with "
        f"{result['events']} entries ({result['visible_entries']} visible to the social worker, "
        f"{result['returned_entries']} per page)"
    )
    say(
        f"read (ms):    p50 {lat['p50']:.1f}  p99 {lat['p99']:.1f}  max {lat['max']:.1f}  "
        f"over {result['reads']} reads"
    )
    cpu = result["cpu_ms_per_read"]
    say(f"read CPU (ms): p50 {cpu['p50']:.1f}  p99 {cpu['p99']:.1f}  max {cpu['max']:.1f}")
    cold, cold_cpu = result["cold_latency_ms"], result["cold_cpu_ms_per_read"]
    if cold:
        say(
            f"cold read:    p50 {cold['p50']:.1f}  p99 {cold['p99']:.1f} ms; CPU p50 "
            f"{cold_cpu['p50']:.1f}  p99 {cold_cpu['p99']:.1f} ms (basis read afresh each time)"
        )
    say(
        "breakdown:    CPU per read, mean of instrumented reads "
        f"({result['instrumented_mean_ms']} ms)"
    )
    for name, ms in sorted(result["breakdown_ms_per_read"].items(), key=lambda kv: -kv[1]):
        say(f"  {name:<22}{ms:8.2f} ms")
    say(json.dumps(result, sort_keys=True))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    report(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
