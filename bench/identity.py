"""Identity lookups per second with a large person index, and the index's memory.

1. ``hub.synth.population.people(N, seed)`` invents N children (default 1,000,000); each is
   indexed once as a health-style record (name, birth date, sex, postcode; no identifiers, so
   every lookup is probabilistic).
2. ``--lookups`` children are drawn at random and looked up as the police would record them
   (``hub.synth.views`` police noise: misspellings, nicknames, day/month swaps, one part of a
   double-barrelled surname, old or no address), built before timing.
3. Lookups/s = lookups / wall time of ``PersonIndex.match`` over them (one core). Memory is the
   process's resident set growth while building the index (``/proc/self/status`` VmRSS).
   Candidates compared per lookup and the share of lookups linking to the right child are
   printed too. Plain lines, then one JSON line.

Usage::

    .venv/bin/python bench/identity.py --people 1000000 --lookups 20000
"""

from __future__ import annotations

import argparse
import json
import random
import time

from hub.identity.index import PersonIndex
from hub.identity.records import PersonRecord, make_record
from hub.identity.scoring import Band
from hub.synth.population import people
from hub.synth.views import NOISE, View, view_of


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _record(record_id: str, v: View) -> PersonRecord:
    return make_record(
        record_id,
        given=[v.given, *([v.preferred] if v.preferred else [])],
        family=[v.family],
        birth_date=v.birth_date,
        sex=v.sex,
        postcode=v.place.postcode if v.place else None,
        address_lines=v.place.lines if v.place else (),
    )


def main() -> None:
    """Build the index, time the lookups, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    started = time.perf_counter()
    population = people(args.people, args.seed)
    homes = {h.hid: h for h in population.households}
    children = population.children
    print(f"{len(children)} children invented in {time.perf_counter() - started:.1f}s")

    rng = random.Random(args.seed)
    before = _rss_mb()
    started = time.perf_counter()
    index = PersonIndex()
    clean = NOISE["ctf"]
    for child in children:
        v = view_of(child, homes[child.household], clean, rng)
        index.add(_record(f"h|{child.pid}", v), child.pid)
    build = time.perf_counter() - started
    grown = _rss_mb() - before
    print(f"indexed {len(index)} in {build:.1f}s ({len(index) / build:,.0f}/s), +{grown:,.0f} MB")

    sample = rng.sample(children, min(args.lookups, len(children)))
    lookups = [
        (
            child.pid,
            _record(f"p|{child.pid}", view_of(child, homes[child.household], NOISE["police"], rng)),
        )
        for child in sample
    ]
    candidates = right = 0
    started = time.perf_counter()
    for pid, record in lookups:
        result = index.match(record)
        candidates += len(result.candidates)
        right += result.band is Band.link and result.child_id == pid
    elapsed = time.perf_counter() - started
    figures = {
        "people_indexed": len(index),
        "index_build_seconds": round(build, 1),
        "index_memory_mb": round(grown),
        "lookups": len(lookups),
        "lookups_per_second": round(len(lookups) / elapsed),
        "mean_candidate_children": round(candidates / len(lookups), 1),
        "linked_to_right_child": round(right / len(lookups), 4),
    }
    for name, value in figures.items():
        print(f"{name:>24}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
