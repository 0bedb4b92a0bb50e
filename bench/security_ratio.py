"""What security costs the real pipeline: events/s with security on versus off, in one run.

Both sides run the real ``hub serve`` (ingest processor -> ``hub.events`` -> narrative projector
-> store, alert engine alongside) exactly as ``bench/pipeline.py`` does, on the same broker,
with the same load built once:

- **on**: the product as shipped. Envelopes are Ed25519-signed by the agency's dev key at
  produce time and the hub verifies every signature (``HUB_REQUIRE_SIGNATURES=true``); ingest
  seals the sensitive fields under the child's data key (created, wrapped by the KEK and stored
  on first use); the projector and the alert engine open them; the projector seals the entry
  again for the store.
- **off**: the same hub with signing off (unsigned envelopes, ``HUB_REQUIRE_SIGNATURES=false``)
  and sealing replaced by a *null cipher* injected here only (this file re-executes itself as
  the hub process and patches ``HubSecurity.cipher`` and the projector's ``seal_entry`` before
  ``hub serve`` starts). The null cipher returns documents unchanged and never looks up, creates
  or unwraps a data key, so "off" is a hub without signatures, without per-child keys and
  without encryption: the whole cost of security, not just AES. It is not a product setting.

Phases run in the order on, off, off, on, ... (``--rounds`` pairs, ABBA) so a drifting machine
load falls on both sides. Each phase: a fresh hub, temp ``HUB_DATA_DIR``, database and topic
prefix. Figures: events/s (as ``bench/pipeline.py``: N / first produce -> newest
``stored_at``), and hub CPU seconds per 1,000 events, which is less sensitive to other load on a
shared machine. The ratio is median(on) / median(off); the issue's target is on/off >= 0.75.

Usage::

    .venv/bin/python bench/security_ratio.py [--events 5000] [--rounds 1] [--batch 500]
        [--store sqlite|postgresql] [--postgres-url URL] [--profile-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SELF = Path(__file__).resolve()
_HERE = _SELF.parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

_SERVE_FLAG = "--serve-null-cipher"


# -- the null cipher (used only inside the "off" hub process) -----------------------------------


class NullCipher:
    """Stands in for ``FieldCipher``: seals nothing, opens nothing, touches no key."""

    async def seal_envelopes(
        self, items: Sequence[tuple[str, Mapping[str, Any]]], *, conn: Any = None
    ) -> list[dict[str, Any]]:
        return [dict(envelope) for _, envelope in items]

    async def seal_envelope(
        self, child_id: str, envelope: Mapping[str, Any], *, conn: Any = None
    ) -> dict[str, Any]:
        return dict(envelope)

    async def encrypt_fields(
        self,
        child_id: str,
        payload: Mapping[str, Any],
        fields: Iterable[str],
        *,
        event_id: str,
        conn: Any = None,
    ) -> dict[str, Any]:
        return dict(payload)

    async def decrypt_fields(
        self, child_id: str, payload: Mapping[str, Any], *, event_id: str
    ) -> dict[str, Any]:
        return dict(payload)

    async def open_envelope(self, child_id: str, sealed: Mapping[str, Any]) -> dict[str, Any]:
        return dict(sealed)

    async def open_envelope_keyed(
        self, child_id: str, sealed: Mapping[str, Any]
    ) -> tuple[dict[str, Any], Any]:
        return dict(sealed), None  # the patched seal_entry ignores the key


def serve_with_null_cipher(port: str, profile: str | None) -> None:
    """Run ``hub serve --port PORT`` with the null cipher patched in (this process only)."""
    import runpy
    import signal

    import hub.crypto.runtime as runtime
    import hub.streams.projector as projector

    original_init = runtime.HubSecurity.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.cipher = NullCipher()

    runtime.HubSecurity.__init__ = init  # type: ignore[method-assign]
    projector.seal_entry = lambda key, entry: entry  # type: ignore[assignment]
    sys.argv = ["hub", "serve", "--port", port]
    if profile is None:
        runpy.run_module("hub", run_name="__main__")
        return
    import cProfile

    def _exit(*_: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _exit)
    prof = cProfile.Profile()
    try:
        prof.runcall(runpy.run_module, "hub", run_name="__main__")
    except SystemExit:
        pass
    finally:
        prof.dump_stats(profile)


# -- the benchmark -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Phase:
    """One measured hub run."""

    side: str  # on | off
    events_per_s: float
    seconds: float
    cpu_seconds: float | None
    latency_p50_ms: float | None
    processing: dict[str, dict[str, float]]
    dead_letters_seen: bool

    def cpu_ms_per_event(self, events: int) -> float | None:
        return None if self.cpu_seconds is None else round(self.cpu_seconds * 1000 / events, 3)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=5_000, help="events per phase (N)")
    parser.add_argument("--rounds", type=int, default=1, help="on/off pairs, run ABBA")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", default=os.environ.get("HUB_TEST_POSTGRES_URL"))
    parser.add_argument("--batch", type=int, default=500, help="HUB_BATCH_MAX_RECORDS")
    parser.add_argument("--data-dir", type=Path, default=Path(".hub"), help="local broker dir")
    parser.add_argument("--timeout", type=float, default=1200.0, help="per phase, seconds")
    parser.add_argument(
        "--profile-dir",
        type=Path,
        default=None,
        help="run every hub under cProfile, stats to DIR/<side>-<n>.prof (slows both sides)",
    )
    args = parser.parse_args(argv)
    if args.store == "postgresql" and not args.postgres_url:
        parser.error("--store postgresql needs --postgres-url (or HUB_TEST_POSTGRES_URL)")
    return args


def order(rounds: int) -> list[str]:
    """ABBA: on, off, off, on, on, off, ... for ``rounds`` pairs."""
    out: list[str] = []
    for r in range(rounds):
        out += ["on", "off"] if r % 2 == 0 else ["off", "on"]
    return out


async def run_phase(
    pipeline: Any, args: argparse.Namespace, broker: Any, loads: dict[str, Any], side: str, n: int
) -> Phase:
    """One fresh hub, the side's load pushed through it, measured and cleaned up."""
    run_id = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix=f"hub-secbench-{side}-"))
    profile = None if args.profile_dir is None else args.profile_dir / f"{side}-{n}.prof"
    phase_args = argparse.Namespace(**vars(args))
    phase_args.unsigned = side == "off"
    phase_args.profile = profile if side == "on" else None
    command = None
    if side == "off":
        command = [sys.executable, str(_SELF), _SERVE_FLAG]
        if profile is not None:
            command += ["--profile-out", str(profile)]
    leftovers = pipeline.Leftovers()
    try:
        result, hub = await pipeline.run_hub_phase(
            phase_args, broker, loads[side], run_id, work, leftovers, hub_command=command
        )
        await asyncio.to_thread(hub.stop)
    finally:
        if leftovers.hub is not None:
            await asyncio.to_thread(leftovers.hub.stop)
        with contextlib.suppress(Exception):
            await pipeline.delete_topics_with_prefix(broker.bootstrap, f"bench{run_id}.")
        if leftovers.db_name:
            with contextlib.suppress(Exception):
                await pipeline.drop_pg_database(args.postgres_url, leftovers.db_name)
        shutil.rmtree(work, ignore_errors=True)
    phase = Phase(
        side=side,
        events_per_s=result.events_per_s,
        seconds=result.seconds,
        cpu_seconds=None if result.hub_cpu_seconds is None else round(result.hub_cpu_seconds, 2),
        latency_p50_ms=result.latency_ms.get("p50"),
        processing={
            k: {"sum": round(v.get("sum", 0.0), 2), "batches": int(v.get("count", 0))}
            for k, v in result.processing.items()
        },
        dead_letters_seen=result.dead_letters_seen,
    )
    pipeline.say(
        f"{side:>3}: {phase.events_per_s:.0f} events/s over {phase.seconds:.1f}s, hub CPU "
        f"{phase.cpu_seconds}s ({phase.cpu_ms_per_event(args.events)} ms/event)"
    )
    return phase


def summarise(phases: Sequence[Phase], events: int) -> dict[str, Any]:
    """Medians per side, the on/off ratios and the JSON-ready phases."""

    def median(side: str, value: str) -> float | None:
        values = [getattr(p, value) for p in phases if p.side == side]
        values = [v for v in values if v is not None]
        return round(statistics.median(values), 2) if values else None

    on_eps, off_eps = median("on", "events_per_s"), median("off", "events_per_s")
    on_cpu, off_cpu = median("on", "cpu_seconds"), median("off", "cpu_seconds")
    ratio = round(on_eps / off_eps, 3) if on_eps and off_eps else None
    return {
        "events": events,
        "on_events_per_s": on_eps,
        "off_events_per_s": off_eps,
        "ratio_on_over_off": ratio,
        "security_cost_of_throughput": None if ratio is None else round(1 - ratio, 3),
        "on_cpu_ms_per_event": None if on_cpu is None else round(on_cpu * 1000 / events, 3),
        "off_cpu_ms_per_event": None if off_cpu is None else round(off_cpu * 1000 / events, 3),
        "cpu_ratio_on_over_off": (
            round(on_cpu / off_cpu, 3) if on_cpu is not None and off_cpu else None
        ),
        "target_met": None if ratio is None else ratio >= 0.75,
        "phases": [
            {
                "side": p.side,
                "events_per_s": p.events_per_s,
                "seconds": p.seconds,
                "hub_cpu_seconds": p.cpu_seconds,
                "latency_p50_ms": p.latency_p50_ms,
                "processing_seconds": p.processing,
                "dead_letters_seen": p.dead_letters_seen,
            }
            for p in phases
        ],
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    import pipeline

    pipeline.say(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}"
    )
    build_id = uuid.uuid4().hex[:8]
    loads = {
        "on": pipeline.build_load(args.events, f"{build_id}on", signed=True),
        "off": pipeline.build_load(args.events, f"{build_id}off", signed=False),
    }
    broker = await asyncio.to_thread(pipeline.open_broker, args.data_dir)
    pipeline.say(f"broker: {broker.bootstrap} - {broker.note}")
    if args.profile_dir is not None:
        args.profile_dir.mkdir(parents=True, exist_ok=True)
    phases: list[Phase] = []
    t = time.monotonic()
    try:
        for n, side in enumerate(order(args.rounds)):
            phases.append(await run_phase(pipeline, args, broker, loads, side, n))
    finally:
        if broker.local is not None:
            await asyncio.to_thread(broker.local.stop)
    result = summarise(phases, args.events)
    result["wall_seconds"] = round(time.monotonic() - t, 1)
    result["load_average_end"] = round(os.getloadavg()[0], 2)
    return result


def report(result: dict[str, Any]) -> None:
    say = print
    say()
    say(f"events per phase:     {result['events']}")
    say(f"security on events/s: {result['on_events_per_s']}")
    say(f"security off events/s:{result['off_events_per_s']}")
    say(
        f"ratio on/off:         {result['ratio_on_over_off']} "
        f"(security costs {result['security_cost_of_throughput']} of throughput; target <= 0.25)"
    )
    say(
        f"hub CPU ms/event:     on {result['on_cpu_ms_per_event']}, "
        f"off {result['off_cpu_ms_per_event']} (ratio {result['cpu_ratio_on_over_off']})"
    )
    say(json.dumps(result, sort_keys=True), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == _SERVE_FLAG:
        profile = None
        if "--profile-out" in argv:
            profile = argv[argv.index("--profile-out") + 1]
        serve_with_null_cipher(argv[-1], profile)
        return
    report(asyncio.run(main_async(parse_args(argv))))


if __name__ == "__main__":
    main()
