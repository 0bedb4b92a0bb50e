"""Identity matching scored against ``hub synth`` truth: precision, recall and the review band.

1. ``hub.synth.generate(N, seed)`` writes native files for all four agency kinds; each file is
   parsed by the **real adapter**. Each distinct source record (``hub.synth.record_key``: a FHIR
   Patient, a CTF pupil, a concern row, a police person, a CIN child) becomes one
   ``PersonRecord`` from its envelope's contract ``Person``.
2. Records are fed, in a seeded random order, to a ``PersonIndex``: ``link`` attaches the
   record to that child; ``possible_match`` and ``no_match`` start a new child (a possible match
   waits for a person, so it is not counted as a link).
3. A link is **correct** when the child's first record is the same true person. Precision =
   correct links / links; recall = correct links / records whose person had already been seen
   (a link was due). Deterministic (identifier) and scored links are also shown apart, with
   the review band's size and how many of its pairs were truly one person, and twins linked.

``--estimate FILE`` instead writes m/u probabilities estimated from the truth (m from every
record against its person's first record, u from random pairs of different people) in the
shape of ``hub/identity/data/model.json``.

Usage::

    .venv/bin/python bench/matching_quality.py --children 50000 --seed 1
    .venv/bin/python bench/matching_quality.py --children 20000 --seed 3 --estimate model.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

from hub.identity.compare import compare
from hub.identity.index import PersonIndex
from hub.identity.records import PersonRecord, record_from_person
from hub.identity.scoring import Band, Thresholds, default_model, estimate
from hub.synth import generate, record_key
from hub.synth.load import parse_files


def load_records(children: int, seed: int) -> tuple[list[PersonRecord], dict[str, str], dict]:
    """Generate, parse through the adapters, and return (records, truth, twin map)."""
    synthetic = generate(children, seed)
    records: dict[str, PersonRecord] = {}
    errors = 0
    for _path, result in parse_files(synthetic.files):
        errors += len(result.rejected)
        for envelope in result.envelopes:
            key = record_key(envelope)
            if key not in records:
                records[key] = record_from_person(envelope.person, key)
    if errors:
        print(f"adapter errors: {errors}", file=sys.stderr)
    twins = {p.pid: p.twin_of for p in synthetic.population.people.values() if p.twin_of}
    ordered = sorted(records.values(), key=lambda r: r.record_id)
    random.Random(seed).shuffle(ordered)
    return ordered, synthetic.truth, twins


def run(records: list[PersonRecord], truth: dict[str, str], twins: dict, index: PersonIndex):
    """Feed every record to the index; return the figures."""
    founder: dict[str, str] = {}  # child id -> true person of its first record
    seen: set[str] = set()
    figures: Counter[str] = Counter()
    started = time.perf_counter()
    for record in records:
        person = truth[record.record_id]
        due = person in seen
        seen.add(person)
        figures["due"] += due
        result = index.match(record)
        if result.band is Band.link and result.child_id is not None:
            correct = founder[result.child_id] == person
            kind = "identifier" if result.linked_by != "score" else "score"
            figures[f"links_{kind}"] += 1
            figures[f"correct_{kind}"] += correct
            figures["twin_linked"] += twins.get(person) == founder[result.child_id]
            index.add(record, result.child_id)
            continue
        if result.band is Band.possible_match:
            figures["review"] += 1
            top = result.candidates[0].child_id
            figures["review_true"] += founder[top] == person
        else:
            figures["missed_no_match"] += due
        child_id = f"ch-{record.record_id}"
        founder[child_id] = person
        index.add(record, child_id)
    figures["seconds"] = round(time.perf_counter() - started, 2)
    return figures


def summarise(figures: Counter[str], records: int) -> dict[str, float]:
    """Precision, recall and review band from the raw counts."""
    links = figures["links_identifier"] + figures["links_score"]
    correct = figures["correct_identifier"] + figures["correct_score"]
    return {
        "records": records,
        "links": links,
        "precision": round(correct / links, 5) if links else 1.0,
        "recall": round(correct / figures["due"], 5) if figures["due"] else 1.0,
        "score_links": figures["links_score"],
        "score_precision": round(figures["correct_score"] / figures["links_score"], 5)
        if figures["links_score"]
        else 1.0,
        "review_band": figures["review"],
        "review_band_share": round(figures["review"] / records, 5),
        "review_truly_same": figures["review_true"],
        "missed_as_no_match": figures["missed_no_match"],
        "twins_linked": figures["twin_linked"],
        "match_seconds": figures["seconds"],
    }


def estimated_model(records: list[PersonRecord], truth: dict[str, str], seed: int) -> dict:
    """m from each record vs its person's first record; u from random different-person pairs."""
    first: dict[str, PersonRecord] = {}
    matches = []
    for record in records:
        person = truth[record.record_id]
        if person in first:
            matches.append(compare(record, first[person]))
        else:
            first[person] = record
    rng = random.Random(seed)
    non_matches = []
    while len(non_matches) < 200_000:
        a, b = rng.choice(records), rng.choice(records)
        if truth[a.record_id] != truth[b.record_id]:
            non_matches.append(compare(a, b))
    model = estimate(matches, non_matches, thresholds=default_model().thresholds)
    return model.to_json()


def main() -> None:
    """Run the figures (or the estimate) and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--link", type=float, default=None, help="override the link threshold")
    parser.add_argument("--review", type=float, default=None, help="override the review one")
    parser.add_argument("--estimate", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    records, truth, twins = load_records(args.children, args.seed)
    print(
        f"{len(records)} records from {args.children} children "
        f"generated and parsed in {time.perf_counter() - started:.1f}s"
    )
    if args.estimate:
        args.estimate.write_text(json.dumps(estimated_model(records, truth, args.seed), indent=2))
        print(f"estimated model written to {args.estimate}")
        return
    model = default_model()
    if args.link is not None or args.review is not None:
        t = model.thresholds
        model = type(model)(
            model.probabilities,
            Thresholds(
                args.link if args.link is not None else t.link,
                args.review if args.review is not None else t.review,
                t.sibling_guard,
            ),
        )
    figures = summarise(run(records, truth, twins, PersonIndex(model)), len(records))
    for name, value in figures.items():
        print(f"{name:>22}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
