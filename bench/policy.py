"""Benchmark the sharing-rule decision point: decisions per second for a 200-rule pack on one
core, with and without the attribute cache, and the cost of filtering a 2,000-event narrative.

Run: .venv/bin/python bench/policy.py [--decisions N]
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from contracts import AgencyKind, EventType, SensitivityTag, parse_envelope
from contracts.examples import example_envelope
from hub.domain.roles import Role
from hub.sharing import (
    AccessRequest,
    ChildContext,
    ChildStatus,
    ConsentRecord,
    ConsentState,
    EventFacts,
    Purpose,
    RulePack,
    compile_pack,
    decide,
    read_pack,
    redact,
)

NOW = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
AGENCIES = {f"{kind.value.replace('_', '-')}-{n}": kind for kind in AgencyKind for n in range(5)}
DEFAULT_PACK = Path(__file__).resolve().parents[1] / "deploy" / "rules" / "northshire.yaml"


def pack_of_200(rng: random.Random) -> RulePack:
    """The Northshire pack plus synthetic rules up to 200, spread over purposes and roles."""
    base = read_pack(DEFAULT_PACK)
    rules: list[dict[str, Any]] = [r.model_dump(mode="json") for r in base.rules]
    tags = [str(t) for t in SensitivityTag]
    while len(rules) < 200:
        n = len(rules)
        rules.append(
            {
                "id": f"synthetic-{n}",
                "description": "Synthetic rule for the benchmark.",
                "owner": "Bench",
                "reason": "Load.",
                "effective_from": "2025-01-01",
                "effective_to": rng.choice([None, "2026-01-01"]),
                "match": {
                    "source_agency_kinds": rng.sample([str(k) for k in AgencyKind], 2),
                    "event_types": rng.sample([str(t) for t in EventType], 3),
                    "sensitivity_none": rng.sample(tags, 2),
                    **({"child_status": ["cp_plan"]} if rng.random() < 0.3 else {}),
                },
                "recipients": {
                    "agency_kinds": [str(rng.choice(list(AgencyKind)))],
                    "roles": [str(r) for r in rng.sample(list(Role), 2)],
                    "involved_with_child": rng.random() < 0.5,
                },
                "purpose": str(rng.choice(list(Purpose))),
                "lawful_basis": "public_task",
                "consent": rng.choice(["not_required", "required_unless_significant_harm"]),
                "obligations": {
                    "remove_fields": rng.sample(
                        ["data.details", "person.related", "data.location"], 2
                    )
                },
            }
        )
    return RulePack.model_validate(
        {"version": "bench.1", "author": "Bench", "reason": "Load.", "rules": rules}
    )


def workload(
    rng: random.Random, count: int
) -> list[tuple[AccessRequest, EventFacts, ChildContext]]:
    """Random requests over a realistic spread of attribute combinations."""
    cases = []
    children = [
        ChildContext.build(
            statuses=rng.sample(list(ChildStatus)[:3], rng.randint(0, 1)),
            consents=[
                ConsentRecord(Purpose.safeguarding, a, ConsentState.given, NOW)
                for a in rng.sample(list(AGENCIES), 3)
            ],
            significant_harm=rng.random() < 0.2,
            involved_agencies=rng.sample(list(AGENCIES), 4),
        )
        for _ in range(50)
    ]
    for _ in range(count):
        agency, source = rng.choice(list(AGENCIES)), rng.choice(list(AGENCIES))
        request = AccessRequest(
            agency, AGENCIES[agency], rng.choice(list(Role)), rng.choice(list(Purpose))
        )
        event = EventFacts(
            rng.choice(list(EventType)),
            source,
            AGENCIES[source],
            frozenset(rng.sample([str(t) for t in SensitivityTag], rng.randint(0, 1))),
            NOW - timedelta(hours=rng.randint(1, 5000)),
        )
        cases.append((request, event, rng.choice(children)))
    return cases


def rate(pack: RulePack, cases: list[Any], *, use_cache: bool) -> tuple[float, int]:
    """Decisions per second over the cases, and how many were permits."""
    permits = 0
    start = time.perf_counter()
    for request, event, child in cases:
        permits += decide(request, event, child, pack, now=NOW, use_cache=use_cache).permitted
    return len(cases) / (time.perf_counter() - start), permits


def narrative(rng: random.Random, size: int) -> list[tuple[EventFacts, dict[str, Any]]]:
    """A 2,000-event narrative of one child across the four Northshire agencies."""
    kinds = {
        "northshire-police": AgencyKind.police,
        "northshire-health": AgencyKind.health,
        "northshire-primary": AgencyKind.schools,
        "northshire-cs": AgencyKind.childrens_services,
    }
    view = parse_envelope(example_envelope(type="contact.recorded")).model_dump(mode="json")
    entries = []
    for i in range(size):
        source = rng.choice(list(kinds))
        tags = frozenset(
            rng.sample(
                ["domestic_abuse", "sexual_health", "mental_health", "third_party"],
                rng.randint(0, 1),
            )
        )
        event_type = rng.choice(
            [EventType.concern_raised, EventType.contact_recorded, EventType.involvement_started]
        )
        facts = EventFacts(event_type, source, kinds[source], tags, NOW - timedelta(hours=i))
        entries.append((facts, {**view, "id": f"evt-{i}", "summary": "Entry."}))
    return entries


def filter_narrative(
    pack: RulePack, request: AccessRequest, child: ChildContext, entries: list[Any]
) -> int:
    """Decide and redact each entry as the read path would; the number shown."""
    shown = []
    for facts, view in entries:
        decision = decide(request, facts, child, pack, now=NOW)
        if decision.permitted:
            shown.append(redact(view, decision.obligations))
    return len(shown)


def reads(
    rng: random.Random, count: int, per_read: int
) -> list[tuple[AccessRequest, EventFacts, ChildContext]]:
    """A day of narrative reads. Each of 40 children is known to 4 agencies and read by the 5
    people working with them; each read decides every event in the child's history."""
    pool = workload(rng, 200)
    children = []
    for child_no in range(40):
        sources = rng.sample(list(AGENCIES), 4)
        history = []
        for _ in range(per_read):
            source = rng.choice(sources)
            tags = frozenset(rng.sample([str(t) for t in SensitivityTag], rng.randint(0, 1)))
            event_type = rng.choice(list(EventType))
            history.append(EventFacts(event_type, source, AGENCIES[source], tags, NOW))
        team = [r for r, _, _ in rng.sample(pool, 5)]
        children.append((pool[child_no][2], team, history))
    cases = []
    for _ in range(count):
        child, team, history = rng.choice(children)
        request = rng.choice(team)
        cases.extend((request, event, child) for event in history)
    return cases


def settle() -> None:
    """Collect garbage and freeze what is left, so a timed section does not pay for walking
    the benchmark's own fixtures (hundreds of thousands of cases) in a full collection."""
    gc.collect()
    gc.freeze()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=100_000)
    args = parser.parse_args()
    rng = random.Random(7)
    pack = pack_of_200(rng)
    compiled = compile_pack(pack)
    print(f"pack: {len(pack.rules)} rules (Northshire's 13 + synthetic)")

    stream = workload(rng, args.decisions)
    settle()
    uncached, permits = rate(pack, stream, use_cache=False)
    print(
        f"no cache, random stream:        {uncached:>9,.0f} decisions/s "
        f"({permits:,} of {len(stream):,} permitted)"
    )
    compiled.cache_clear()
    worst, _ = rate(pack, stream, use_cache=True)
    info = compiled._cached.cache_info()
    print(f"cache, same stream (all miss):  {worst:>9,.0f} decisions/s ({info.hits:,} hits)")

    day = reads(rng, args.decisions // 200, 200)
    compiled.cache_clear()
    settle()
    cached, _ = rate(pack, day, use_cache=True)
    info = compiled._cached.cache_info()
    print(
        f"cache, narrative reads:         {cached:>9,.0f} decisions/s "
        f"({len(day):,} decisions, {info.misses:,} distinct attribute tuples)"
    )
    hot, _ = rate(pack, day, use_cache=True)
    print(f"cache, narrative reads, warm:   {hot:>9,.0f} decisions/s")

    entries = narrative(rng, 2000)
    worker = AccessRequest(
        "northshire-cs", AgencyKind.childrens_services, Role.social_worker, Purpose.safeguarding
    )
    dsl = AccessRequest(
        "northshire-primary",
        AgencyKind.schools,
        Role.designated_safeguarding_lead,
        Purpose.education_safeguarding,
    )
    ctx = ChildContext.build(
        statuses=[ChildStatus.cp_plan], involved_agencies=["northshire-cs", "northshire-primary"]
    )
    for who, request in (("social worker", worker), ("school DSL", dsl)):
        compiled.cache_clear()
        settle()
        start = time.perf_counter()
        for facts, _ in entries:
            decide(request, facts, ctx, pack, now=NOW)
        decide_only = time.perf_counter() - start
        compiled.cache_clear()
        start = time.perf_counter()
        shown = filter_narrative(pack, request, ctx, entries)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        filter_narrative(pack, request, ctx, entries)
        warm = time.perf_counter() - start
        print(
            f"2,000-event narrative, {who}: {shown:,} shown; "
            f"decisions {decide_only * 1000:.1f} ms; decide + redact "
            f"{cold * 1000:.1f} ms (cold cache), {warm * 1000:.1f} ms (warm)"
        )


if __name__ == "__main__":
    main()
