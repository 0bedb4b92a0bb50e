"""Finds the synthetic personal data the tests use in captured log text, without echoing it.

``Registry`` is the set of known invented values, by kind (name, birth date, address line,
postcode, NHS number, UPN); ``harvest_registry()`` collects them from every place the tests
take people from: ``contracts.examples``, the adapters' sample files (read by the adapters
themselves), the synthetic population for the seeds the tests use, and person literals in the
test sources. Beside the registry, any NHS number of the 999 test range and any UPN with a
valid check letter is found by pattern, harvested or not.

``scan_lines`` reports a ``Finding`` per value found: where (source and line), the log
event's name (the ``event`` of a JSON log line) and the kind of value, never the value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = [
    "SYNTH_SEEDS",
    "Finding",
    "Kind",
    "Registry",
    "harvest_registry",
    "scan_lines",
    "scan_text",
]

REPO = Path(__file__).resolve().parents[2]

SYNTH_SEEDS: tuple[tuple[int, int], ...] = ((600, 11), (600, 12), (20, 3), (5, 1))
"""(children, seed) of every synthetic population the tests generate (tests/unit/synth)."""


class Kind(StrEnum):
    """The kind of a personal value, which is all a report says about it."""

    name = "name"
    birth_date = "birth_date"
    address = "address"
    postcode = "postcode"
    nhs_number = "nhs_number"
    upn = "upn"


_WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")
_ISO_DATE = re.compile(r"(?<![\d-])(\d{4})-(\d{2})-(\d{2})(?![\d:T]|\s\d{2}:)")
_UK_DATE = re.compile(r"(?<![\d/])(\d{2})/(\d{2})/(\d{4})(?![\d/])")
_EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*(?:[.:][a-z0-9_]+)*$")
_LEADING_WORDS = re.compile(r"^[A-Za-z ]{1,40}")
_BY_PATTERN = frozenset({Kind.nhs_number, Kind.upn})
"""Kinds found by pattern (with registry values as a fallback), not by phrase look-up."""
_NHS_LIKE = re.compile(r"(?<!\d)999[ -]?\d{3}[ -]?\d{4}(?![^\W_])")
_UPN_LIKE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]\d{11}[A-Za-z0-9](?![A-Za-z0-9])")


def _phrase(text: str) -> str:
    """Lower-case words joined by one space: the form values are stored and compared in."""
    return " ".join(w.lower() for w in _WORD.findall(text))


@dataclass(slots=True)
class Registry:
    """Known synthetic values as normalised phrases (and ISO dates), each with its kind."""

    phrases: dict[str, Kind] = field(default_factory=dict)
    dates: set[str] = field(default_factory=set)

    def add(self, kind: Kind, value: str | date | None) -> None:
        """Remember a value; blanks, single letters and lone short words are ignored."""
        if value is None:
            return
        if kind is Kind.birth_date:
            self.dates.add(value.isoformat() if isinstance(value, date) else str(value)[:10])
            return
        phrase = _phrase(str(value))
        if kind is Kind.name and " " not in phrase:
            return  # a lone given or family name is too common a word to accuse a log of
        if len(phrase) < 4:
            return
        self.phrases.setdefault(phrase, kind)
        if kind in (Kind.postcode, Kind.nhs_number, Kind.upn):
            self.phrases.setdefault(phrase.replace(" ", ""), kind)

    def add_person(self, person: Any) -> None:
        """Remember a contract person (or its JSON dict) and the people related to it."""
        data = person if isinstance(person, dict) else person.model_dump(mode="json")
        name = data.get("name") or {}
        given, family = name.get("given"), name.get("family")
        if given and family:
            self.add(Kind.name, f"{given} {family}")
            self.add(Kind.name, f"{family} {given}")  # "Smith, Jayden" in school exports
        for alias in name.get("aliases") or ():
            self.add(Kind.name, alias if " " in alias.strip() else f"{alias} {family or ''}")
        self.add(Kind.birth_date, data.get("birth_date"))
        address = data.get("address") or {}
        for line in (address.get("lines") or ())[:1]:
            self.add(Kind.address, line)
        self.add(Kind.postcode, address.get("postcode"))
        for ident in data.get("identifiers") or ():
            kind = {"nhs": Kind.nhs_number, "upn": Kind.upn}.get(str(ident.get("system")))
            if kind is not None:
                self.add(kind, ident.get("value"))
        for related in data.get("related") or ():
            self.add_person(related)

    def longest(self) -> int:
        """Words in the longest phrase (how far the scanner looks ahead)."""
        return max((p.count(" ") + 1 for p in self.phrases), default=1)


@dataclass(frozen=True, slots=True)
class Finding:
    """A personal value found in a log: where, in which event, of what kind (not the value)."""

    source: str
    line: int
    event: str
    kind: Kind

    def describe(self) -> str:
        """``hub-1234.log:17 event=submission.rejected: nhs_number``."""
        return f"{self.source}:{self.line} event={self.event}: {self.kind.value}"


def _nhs_check_ok(digits: str) -> bool:
    from contracts import nhs_number_is_valid

    return nhs_number_is_valid(digits)


def _upn_check_ok(text: str) -> bool:
    from contracts import upn_is_valid

    return upn_is_valid(text)


def scan_text(text: str, registry: Registry, *, longest: int | None = None) -> list[Kind]:
    """Every kind of known or test-range personal value in ``text`` (one entry per hit).

    ``longest`` is ``registry.longest()``, passed in when scanning many texts.
    """
    found: list[Kind] = []
    words = [w.lower() for w in _WORD.findall(text)]
    for n in range(1, (longest or registry.longest()) + 1):
        for i in range(len(words) - n + 1):
            kind = registry.phrases.get(" ".join(words[i : i + n]))
            if kind is not None and kind not in _BY_PATTERN:
                found.append(kind)
    for m in _ISO_DATE.finditer(text):
        if m.group(0) in registry.dates:
            found.append(Kind.birth_date)
    for m in _UK_DATE.finditer(text):
        if f"{m.group(3)}-{m.group(2)}-{m.group(1)}" in registry.dates:
            found.append(Kind.birth_date)
    for m in _NHS_LIKE.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if digits in registry.phrases or _nhs_check_ok(digits):
            found.append(Kind.nhs_number)
    for m in _UPN_LIKE.finditer(text):
        if m.group(0).lower() in registry.phrases or _upn_check_ok(m.group(0)):
            found.append(Kind.upn)
    return found


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif value is not None:
        yield str(value)


def _safe_event(event: str) -> str:
    """A stable event name as is; free text (which may hold the value) cut to its leading words.

    Standard-library loggers put a message where structlog puts an event name, e.g. httpx's
    ``HTTP Request: GET <url>``: only ``HTTP Request…`` is kept.
    """
    if _EVENT_NAME.match(event):
        return event
    lead = _LEADING_WORDS.match(event)
    return f"{lead.group(0).strip()}\u2026" if lead and lead.group(0).strip() else "<free text>"


def _event_and_text(line: str) -> tuple[str, str]:
    """The log event's name and the text to scan (JSON lines decoded, so escapes are undone)."""
    start = line.find("{")
    if start != -1:
        try:
            record = json.loads(line[start:])
        except ValueError:
            record = None
        if isinstance(record, dict):
            event = _safe_event(str(record.get("event", "<no event>")))
            return event, "\n".join(_strings(record))
    return "<text line>", line


def scan_lines(source: str, lines: Iterable[str], registry: Registry) -> list[Finding]:
    """Scan log lines; one Finding per (line, kind) found."""
    findings: list[Finding] = []
    longest = registry.longest()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        event, text = _event_and_text(line)
        for kind in dict.fromkeys(scan_text(text, registry, longest=longest)):
            findings.append(Finding(source, number, event, kind))
    return findings


# --- harvesting -------------------------------------------------------------------------------

_SAMPLE_TYPES = {".json": "application/json", ".xml": "application/xml", ".csv": "text/csv"}
_GIVEN_FAMILY = re.compile(
    r"""["']given["']\s*:\s*["']([^"']+)["']\s*,\s*["']family["']\s*:\s*["']([^"']+)["']"""
)
_BIRTH_LITERAL = re.compile(r"""["']birth_date["']\s*:\s*["'](\d{4}-\d{2}-\d{2})["']""")


def _harvest_examples(registry: Registry) -> None:
    from contracts.examples import example_envelope

    registry.add_person(example_envelope()["person"])


def _harvest_samples(registry: Registry) -> None:
    """Run every adapter over its own sample files and remember the people they describe."""
    from datetime import UTC, datetime

    from adapters import childrens_services, health, police, schools
    from adapters.common import AgencyRef, UnreadableFile
    from contracts import AgencyKind

    now = datetime(2024, 4, 1, tzinfo=UTC)
    adapters = {
        "health": (AgencyKind.health, health.parse),
        "schools": (AgencyKind.schools, schools.parse),
        "police": (AgencyKind.police, police.parse),
        "childrens_services": (AgencyKind.childrens_services, childrens_services.parse),
    }
    for folder, (kind, parse) in adapters.items():
        for sample in sorted((REPO / "adapters" / folder / "samples").glob("*")):
            media = _SAMPLE_TYPES.get(sample.suffix)
            if media is None:
                continue
            try:
                result = parse(
                    sample.read_bytes(), media, AgencyRef(f"sample-{folder}", kind), now=now
                )
            except UnreadableFile:
                continue
            for envelope in result.envelopes:
                registry.add_person(envelope.person)


def _harvest_synth(registry: Registry, seeds: Iterable[tuple[int, int]]) -> None:
    from hub.synth.population import people

    for children, seed in seeds:
        population = people(children, seed)
        for person in population.people.values():
            registry.add(Kind.name, f"{person.given} {person.family}")
            registry.add(Kind.birth_date, person.birth_date)
            registry.add(Kind.nhs_number, person.nhs)
            registry.add(Kind.upn, person.upn)
        for household in population.households:
            for place in (household.address, household.previous):
                if place is not None:
                    registry.add(Kind.address, place.lines[0])
                    registry.add(Kind.postcode, place.postcode)


def _harvest_test_sources(registry: Registry, root: Path) -> None:
    """Person literals in test code: ``"given": "X", "family": "Y"`` and ``"birth_date"``."""
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        for given, family in _GIVEN_FAMILY.findall(text):
            registry.add(Kind.name, f"{given} {family}")
        for born in _BIRTH_LITERAL.findall(text):
            registry.add(Kind.birth_date, born)


def harvest_registry(
    *, seeds: Iterable[tuple[int, int]] = SYNTH_SEEDS, tests_root: Path | None = None
) -> Registry:
    """Every synthetic personal value the test suite uses (see the module docstring)."""
    registry = Registry()
    _harvest_examples(registry)
    _harvest_samples(registry)
    _harvest_synth(registry, seeds)
    _harvest_test_sources(registry, tests_root or REPO / "tests")
    return registry
