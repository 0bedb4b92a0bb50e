"""A child's chronology as practitioners read it: spans, involvement, summary, filters, export.

Pure functions over decrypted narrative items; the API decides who may see which items first.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

__all__ = [
    "SITUATION_AGENCY_KINDS",
    "ChildSituation",
    "ChronologyItem",
    "ChronologyQuery",
    "InvolvementSpan",
    "Summary",
    "child_statuses",
    "filter_items",
    "involvement_spans",
    "milestones",
    "situation_of",
    "summarise",
    "to_markdown",
]

_STATUS_OF = {
    "child_protection_plan": "cp_plan",
    "looked_after": "looked_after",
    "child_in_need": "child_in_need",
}
_PLAN_TYPES = frozenset(_STATUS_OF)
_MILESTONE_CONTACTS = {"strategy_meeting": "strategy_meeting"}
MILESTONE_CONTACT_TYPES = frozenset(_MILESTONE_CONTACTS)
"""Contact types that record a case milestone (what a sharing rule's delay may wait for)."""
SITUATION_AGENCY_KINDS = frozenset({"schools"})
"""Agency kinds whose every entry counts in ``situation_of``: a school's entries make the
school involved (readers of a situation read these kinds' entries whatever their family)."""


@dataclass(frozen=True, slots=True)
class ChronologyItem:
    """One entry of a child's chronology, decrypted, in the shape the API shows."""

    event_id: str
    event_type: str
    family: str
    occurred_at: datetime
    recorded_at: datetime
    agency_id: str
    agency_kind: str
    summary: str
    sensitivity: tuple[str, ...]
    corrects: str | None
    data: dict[str, Any]
    erased_at: datetime | None = None

    def shown(self, summary: str, data: dict[str, Any]) -> ChronologyItem:
        """This item with the summary and data a reader is shown (``dataclasses.replace``
        without its per-field checks: a read makes hundreds)."""
        return ChronologyItem(
            self.event_id,
            self.event_type,
            self.family,
            self.occurred_at,
            self.recorded_at,
            self.agency_id,
            self.agency_kind,
            summary,
            self.sensitivity,
            self.corrects,
            data,
            self.erased_at,
        )


@dataclass(frozen=True, slots=True)
class InvolvementSpan:
    """An agency's involvement with the child, from its start to its end (open when no end)."""

    involvement_id: str
    involvement_type: str
    agency_id: str
    agency_kind: str
    started_on: date | None
    ended_on: date | None
    lead_practitioner: dict[str, Any] | None
    event_ids: tuple[str, ...]

    @property
    def is_open(self) -> bool:
        """Whether the involvement has not ended."""
        return self.ended_on is None


@dataclass(frozen=True, slots=True)
class Summary:
    """The header of a narrative: open plans, concerns per agency lately, last contact."""

    open_plans: tuple[str, ...]
    concerns_by_agency: dict[str, dict[str, int]]
    last_contact_by_agency: dict[str, datetime]


@dataclass(frozen=True, slots=True)
class ChronologyQuery:
    """Filters on a chronology: agency kinds, event families, a period, sensitivity tags."""

    agency_kinds: frozenset[str] = field(default_factory=frozenset)
    families: frozenset[str] = field(default_factory=frozenset)
    since: datetime | None = None
    until: datetime | None = None
    sensitivity: frozenset[str] = field(default_factory=frozenset)


def _day(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def involvement_spans(items: Iterable[ChronologyItem]) -> list[InvolvementSpan]:
    """Fold involvement events into spans, one per (agency, involvement id), by start date."""
    spans: dict[tuple[str, str], dict[str, Any]] = {}
    for item in sorted(items, key=lambda i: (i.occurred_at, i.recorded_at, i.event_id)):
        if item.family != "involvement":
            continue
        data = item.data
        key = (item.agency_id, str(data.get("involvement_id") or item.event_id))
        span = spans.setdefault(
            key,
            {
                "involvement_type": str(data.get("involvement_type", "other")),
                "agency_kind": item.agency_kind,
                "started_on": None,
                "ended_on": None,
                "lead": None,
                "events": [],
            },
        )
        span["events"].append(item.event_id)
        span["involvement_type"] = str(data.get("involvement_type", span["involvement_type"]))
        span["started_on"] = _day(data.get("started_on")) or span["started_on"]
        if item.event_type == "involvement.ended":
            span["ended_on"] = _day(data.get("ended_on")) or item.occurred_at.date()
        elif item.event_type == "involvement.started" and span["started_on"] is None:
            span["started_on"] = item.occurred_at.date()
        if data.get("lead_practitioner"):
            span["lead"] = dict(data["lead_practitioner"])
    result = [
        InvolvementSpan(
            involvement_id=involvement_id,
            involvement_type=s["involvement_type"],
            agency_id=agency_id,
            agency_kind=s["agency_kind"],
            started_on=s["started_on"],
            ended_on=s["ended_on"],
            lead_practitioner=s["lead"],
            event_ids=tuple(s["events"]),
        )
        for (agency_id, involvement_id), s in spans.items()
    ]
    return sorted(result, key=lambda s: (s.started_on or date.min, s.involvement_id))


def child_statuses(spans: Iterable[InvolvementSpan]) -> set[str]:
    """The child's open statuses (`cp_plan`, `looked_after`, `child_in_need`) from open spans."""
    return {
        _STATUS_OF[s.involvement_type]
        for s in spans
        if s.is_open and s.involvement_type in _STATUS_OF
    }


def milestones(items: Iterable[ChronologyItem]) -> dict[str, datetime]:
    """The latest time of each case milestone (e.g. a strategy meeting) in the chronology."""
    found: dict[str, datetime] = {}
    for item in items:
        contact_type = item.data.get("contact_type") if item.family == "contact" else None
        milestone = _MILESTONE_CONTACTS.get(str(contact_type)) if contact_type else None
        if milestone and (milestone not in found or item.occurred_at > found[milestone]):
            found[milestone] = item.occurred_at
    return found


SIGNIFICANT_HARM_STATUSES = frozenset({"cp_plan"})
"""A child on a child-protection plan has been judged at risk of significant harm."""


@dataclass(frozen=True, slots=True)
class ChildSituation:
    """What the sharing rules need to know about a child, read from its chronology."""

    statuses: frozenset[str]
    involved_agencies: frozenset[str]
    """Agencies with an open involvement, and the child's schools."""
    milestones: dict[str, datetime]
    significant_harm: bool


def situation_of(items: Sequence[ChronologyItem]) -> ChildSituation:
    """The child's open statuses, involved agencies, case milestones and harm judgement."""
    spans = involvement_spans(items)
    statuses = child_statuses(spans)
    involved = {s.agency_id for s in spans if s.is_open} | {
        i.agency_id for i in items if i.agency_kind in SITUATION_AGENCY_KINDS
    }
    return ChildSituation(
        statuses=frozenset(statuses),
        involved_agencies=frozenset(involved),
        milestones=milestones(items),
        significant_harm=bool(statuses & SIGNIFICANT_HARM_STATUSES),
    )


def summarise(
    items: Sequence[ChronologyItem], spans: Sequence[InvolvementSpan], *, now: datetime
) -> Summary:
    """Open plans, concerns per agency in the last 30/90/365 days, last contact per agency."""
    windows = {"30": timedelta(days=30), "90": timedelta(days=90), "365": timedelta(days=365)}
    since = [(label, now - width) for label, width in windows.items()]
    oldest = min(start for _, start in since)
    concerns: dict[str, Counter[str]] = defaultdict(Counter)
    last: dict[str, datetime] = {}
    for item in items:
        at = item.occurred_at
        if at > now:
            continue
        agency = item.agency_id
        if item.family == "concern" and at >= oldest:
            counts = concerns[agency]
            for label, start in since:
                if start <= at:
                    counts[label] += 1
        seen = last.get(agency)
        if seen is None or at > seen:
            last[agency] = at
    return Summary(
        open_plans=tuple(
            sorted(
                {
                    s.involvement_type
                    for s in spans
                    if s.is_open and s.involvement_type in _PLAN_TYPES
                }
            )
        ),
        concerns_by_agency={
            a: {w: c.get(w, 0) for w in windows} for a, c in sorted(concerns.items())
        },
        last_contact_by_agency=dict(sorted(last.items())),
    )


def filter_items(items: Iterable[ChronologyItem], query: ChronologyQuery) -> list[ChronologyItem]:
    """The items that pass every filter of the query (an empty filter passes everything)."""
    return [
        i
        for i in items
        if (not query.agency_kinds or i.agency_kind in query.agency_kinds)
        and (not query.families or i.family in query.families)
        and (query.since is None or i.occurred_at >= query.since)
        and (query.until is None or i.occurred_at <= query.until)
        and (not query.sensitivity or query.sensitivity.intersection(i.sensitivity))
    ]


def _words(value: str) -> str:
    return value.replace("_", " ")


def to_markdown(
    child_id: str,
    items: Sequence[ChronologyItem],
    spans: Sequence[InvolvementSpan],
    agency_names: dict[str, str],
    *,
    generated_at: datetime,
) -> str:
    """The chronology as Markdown, the kind practitioners paste into assessments."""
    lines = [
        f"# Chronology for child {child_id}",
        "",
        f"Generated {generated_at:%d %B %Y %H:%M} UTC.",
        "",
    ]
    current = [s for s in spans if s.is_open]
    if current:
        lines += ["## Involved now", ""]
        for s in current:
            lead = s.lead_practitioner or {}
            reach = ", ".join(
                str(lead[k]) for k in ("name", "role", "phone", "email") if lead.get(k)
            )
            since = f" since {s.started_on:%d/%m/%Y}" if s.started_on else ""
            who = f" — {reach}" if reach else ""
            lines.append(
                f"- {_words(s.involvement_type).capitalize()} "
                f"({agency_names.get(s.agency_id, s.agency_id)}){since}{who}"
            )
        lines.append("")
    lines += ["## Chronology", "", "| Date | Agency | What happened |", "|---|---|---|"]
    for i in items:
        text = i.summary.replace("|", "\\|").replace("\n", " ")
        agency = agency_names.get(i.agency_id, i.agency_id)
        lines.append(f"| {i.occurred_at:%d/%m/%Y %H:%M} | {agency} | {text} |")
    return "\n".join(lines) + "\n"
