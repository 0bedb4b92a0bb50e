"""`hub demo`: start the hub, load the scenario through the agencies' adapters, print a guide.

Each file goes the way `hub adapter <kind> FILE` sends it: the agency's adapter parses it,
the agency's development key signs every envelope, and the envelopes go to the agency kind's
ingest topic. Waves are sent one after another, each waited for in the narrative store, so
identity resolves in a readable order (see ``hub.demo.scenario.DemoFile``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.bootstrap import Hub, ProcessRole, build_hub
from hub.demo.scenario import CHILDREN, FILES, DemoFile, file_bytes, render, shift_for
from hub.observability import get_logger
from hub.settings import Settings

__all__ = [
    "DemoLoadError",
    "LoadReport",
    "anchor_shift",
    "child_ids",
    "guide",
    "load_scenario",
    "run_demo",
    "wait_for_events",
]

log = get_logger(__name__)

_ANCHOR_FILE = "demo-shift-days"


class DemoLoadError(RuntimeError):
    """The scenario could not be loaded: a file was refused or the hub did not store it."""


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What a load sent: event ids per file, and the day shift applied to the files."""

    shift_days: int
    sent: dict[str, list[str]]

    @property
    def total(self) -> int:
        """Events sent in all."""
        return sum(len(ids) for ids in self.sent.values())


def anchor_shift(settings: Settings, today: date) -> int:
    """The day shift for this hub: fixed at its first demo load, so reloading sends the same.

    Kept in ``<data dir>/demo-shift-days``; delete it (or the data dir) to move the scenario
    to the current week again.
    """
    path = settings.data_dir / _ANCHOR_FILE
    if path.exists():
        return int(path.read_text().strip())
    shift = shift_for(today)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{shift}\n")
    return shift


async def wait_for_events(
    engine: AsyncEngine,
    event_ids: Iterable[str],
    *,
    timeout: float = 120.0,  # noqa: ASYNC109 - a polling deadline, not cancellation
) -> None:
    """Return once the narrative store holds every event id; DemoLoadError after ``timeout``."""
    from hub.store.schema import narrative_entries

    wanted = set(event_ids)
    deadline = time.monotonic() + timeout
    while True:
        async with engine.connect() as conn:
            query = select(narrative_entries.c.event_id).where(
                narrative_entries.c.event_id.in_(wanted)
            )
            stored = {row[0] for row in await conn.execute(query)}
        missing = wanted - stored
        if not missing:
            return
        if time.monotonic() > deadline:
            raise DemoLoadError(
                f"{len(missing)} demo event(s) not stored within {timeout:.0f}s "
                f"(see `hub dlq list`): {', '.join(sorted(missing)[:5])}"
            )
        await asyncio.sleep(0.2)


async def _send_file(hub: Hub, demo: DemoFile, shift_days: int, now: datetime) -> list[str]:
    from hub.crypto.runtime import agency_signer
    from hub.intake import content_type_for, parse_native, publish_envelopes

    agency = hub.registry.get(demo.agency_id)
    body = render(file_bytes(demo.name), shift_days)
    result = parse_native(agency, body, content_type_for(Path(demo.name)), now=now)
    if result.rejected:
        raise DemoLoadError(f"{demo.name}: {len(result.rejected)} record(s) rejected")
    signer = agency_signer(hub.settings, agency.id, hub.registry, now=now)
    return await publish_envelopes(
        hub.streams, hub.topics, agency.kind, result.envelopes, signer=signer
    )


async def load_scenario(
    hub: Hub,
    shift_days: int,
    *,
    timeout: float = 120.0,  # noqa: ASYNC109 - a polling deadline, not cancellation
    now: datetime | None = None,
) -> LoadReport:
    """Send every scenario file wave by wave, waiting for each wave in the narrative store."""
    sent: dict[str, list[str]] = {}
    for wave in sorted({f.wave for f in FILES}):
        wave_ids: list[str] = []
        for demo in (f for f in FILES if f.wave == wave):
            ids = await _send_file(hub, demo, shift_days, now or datetime.now(UTC))
            sent[demo.name] = ids
            wave_ids += ids
        await wait_for_events(hub.store.engine, wave_ids, timeout=timeout)
        log.info("demo.wave_loaded", wave=wave, events=len(wave_ids))
    return LoadReport(shift_days=shift_days, sent=sent)


async def child_ids(engine: AsyncEngine) -> dict[str, str]:
    """The canonical child id of each demo child (by the first of its events), by key."""
    from hub.store.schema import narrative_entries

    firsts = {c.event_ids[0]: c.key for c in CHILDREN}
    async with engine.connect() as conn:
        query = select(narrative_entries.c.event_id, narrative_entries.c.child_id).where(
            narrative_entries.c.event_id.in_(firsts)
        )
        return {firsts[e]: c for e, c in await conn.execute(query)}


def guide(url: str, ids: dict[str, str], report: LoadReport) -> str:
    """The short text `hub demo` prints once the scenario is in."""
    lines = [
        f"Northshire demo loaded: {report.total} events from {len(report.sent)} agency files "
        f"(dates moved {report.shift_days} days).",
        "",
        f"Open {url}/sign-in and choose a demo user:",
        "  - Sam Practitioner, social worker: find a child and read their timeline",
        "  - Morgan Teale, school DSL: what the school sees of its pupils",
        "  - Robin Hale, IG officer: the audit trail of everything you opened",
        "Alerts go to the duty and front-door teams: GET /api/v1/alerts with a token from",
        "`hub token --sub duty-1 --agency northshire-cs --role duty_officer --team duty`",
        "(or --team front-door). docs/demo.md lists each alert and the ones not raised.",
        "",
        "Children (open /children/<id>):",
    ]
    for child in CHILDREN:
        lines.append(f"  {ids.get(child.key, '(not stored)'):<38} {child.name}: {child.story}")
    lines += ["", "Press Ctrl-C to stop the hub (the local broker keeps running)."]
    return "\n".join(lines)


async def _wait_ready(
    url: str,
    serving: asyncio.Task[None] | None,
    timeout: float,  # noqa: ASYNC109 - a polling deadline, not cancellation
) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if serving is not None and serving.done():
                serving.result()
                raise DemoLoadError("the hub stopped before it was ready")
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise DemoLoadError(f"the hub at {url} was not ready within {timeout:.0f}s")


async def _load_into(settings: Settings, url: str, echo: Callable[[str], None]) -> None:
    await _wait_ready(url, None, 30)
    hub = build_hub(settings, ProcessRole.api)
    await hub.start()
    try:
        report = await load_scenario(hub, anchor_shift(settings, datetime.now(UTC).date()))
        echo(guide(url, await child_ids(hub.store.engine), report))
    finally:
        await hub.stop()


async def _serve_and_load(
    settings: Settings, host: str, port: int, echo: Callable[[str], None]
) -> None:
    import uvicorn

    from hub.api.app import server_config

    hub = build_hub(settings, ProcessRole.all)
    server = uvicorn.Server(server_config(hub, host, port))
    url = f"http://{host}:{port}"
    serving = asyncio.create_task(server.serve())
    try:
        await _wait_ready(url, serving, 180)
        report = await load_scenario(hub, anchor_shift(settings, datetime.now(UTC).date()))
        echo(guide(url, await child_ids(hub.store.engine), report))
    except BaseException:
        server.should_exit = True
        await serving
        raise
    await serving


def run_demo(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    load_only: bool = False,
    url: str | None = None,
    echo: Callable[[str], None] = print,
) -> None:
    """Serve the hub with the demo scenario loaded until Ctrl-C, or only load it (``load_only``)
    into the hub already running at ``url`` with the same settings (broker and database)."""
    if not settings.kafka_bootstrap:
        from hub.kafka.local import LocalKafka

        LocalKafka(settings).start()
    if load_only:
        asyncio.run(_load_into(settings, url or f"http://{host}:{port}", echo))
    else:
        asyncio.run(_serve_and_load(settings, host, port, echo))
