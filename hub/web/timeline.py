"""Turns a narrative from the API into what the child page shows: who is involved now and how
to reach them, each involvement's span, and the entries a reader's filters keep.

Pure functions over the API's JSON: whatever the API withheld from this reader is simply not
there, so nothing here can reveal it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

__all__ = [
    "AGENCY_KIND_LABELS",
    "FAMILY_LABELS",
    "Filters",
    "Involvement",
    "Timeline",
    "build_timeline",
]

AGENCY_KIND_LABELS: Mapping[str, str] = {
    "childrens_services": "Children's social care",
    "health": "Health",
    "police": "Police",
    "schools": "School",
}
FAMILY_LABELS: Mapping[str, str] = {
    "concern": "Concerns",
    "contact": "Contacts",
    "involvement": "Involvements",
    "correction": "Corrections",
}


@dataclass(frozen=True, slots=True)
class Filters:
    """What the reader chose to see: agency kinds and families (empty: all), and a date range."""

    agency_kinds: frozenset[str] = frozenset()
    families: frozenset[str] = frozenset()
    since: date | None = None
    until: date | None = None

    @property
    def active(self) -> bool:
        """Whether any filter narrows the entries."""
        return bool(self.agency_kinds or self.families or self.since or self.until)

    def keeps(self, entry: Mapping[str, Any]) -> bool:
        """Whether an entry passes every filter."""
        if self.agency_kinds and entry.get("agency_kind") not in self.agency_kinds:
            return False
        if self.families and entry.get("family") not in self.families:
            return False
        day = _date(entry.get("occurred_at"))
        if self.since and (day is None or day < self.since):
            return False
        return not (self.until and (day is None or day > self.until))


@dataclass(frozen=True, slots=True)
class Involvement:
    """One agency's piece of work with the child, from its start to its end (or still open)."""

    agency_id: str
    agency_kind: str
    involvement_type: str
    involvement_id: str
    started_on: date | None
    ended_on: date | None
    lead: Mapping[str, Any]

    @property
    def current(self) -> bool:
        """Still open."""
        return self.ended_on is None


@dataclass(frozen=True, slots=True)
class Timeline:
    """The child page's content."""

    involvements: Sequence[Involvement]
    entries: Sequence[Mapping[str, Any]]
    total: int
    agency_kinds: Sequence[str]
    families: Sequence[str]

    @property
    def involved_now(self) -> list[Involvement]:
        """Open involvements, newest first: who to contact about the child today."""
        return [i for i in self.involvements if i.current]


def _date(value: Any) -> date | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return datetime.fromisoformat(str(value)).date()
    except ValueError:
        try:
            return date.fromisoformat(str(value)[:10])
        except ValueError:
            return None


def _involvements(entries: Iterable[Mapping[str, Any]]) -> list[Involvement]:
    spans: dict[tuple[str, str], Involvement] = {}
    for entry in entries:
        if entry.get("family") != "involvement" or entry.get("erased_at"):
            continue
        data = entry.get("data") or {}
        kind = str(data.get("involvement_type") or "involvement")
        key = (str(entry.get("agency_id")), str(data.get("involvement_id") or kind))
        before = spans.get(key)
        ended = entry.get("event_type") == "involvement.ended"
        lead = data.get("lead_practitioner") or (before.lead if before else {})
        spans[key] = Involvement(
            agency_id=key[0],
            agency_kind=str(entry.get("agency_kind")),
            involvement_type=kind,
            involvement_id=key[1],
            started_on=_date(data.get("started_on"))
            or (before.started_on if before else _date(entry.get("occurred_at"))),
            ended_on=(_date(data.get("ended_on")) or _date(entry.get("occurred_at")))
            if ended
            else None,
            lead=dict(lead) if isinstance(lead, Mapping) else {},
        )
    return sorted(
        spans.values(),
        key=lambda i: (not i.current, -(i.started_on or date.min).toordinal()),
    )


def build_timeline(narrative: Mapping[str, Any], filters: Filters) -> Timeline:
    """The page's content from ``GET /api/v1/children/{id}/narrative``, newest entry first."""
    entries = list(narrative.get("entries") or [])
    kept = [e for e in entries if filters.keeps(e)]
    kept.sort(key=lambda e: str(e.get("occurred_at") or ""), reverse=True)
    return Timeline(
        involvements=_involvements(entries),
        entries=kept,
        total=len(entries),
        agency_kinds=sorted({str(e.get("agency_kind")) for e in entries}),
        families=sorted({str(e.get("family")) for e in entries}),
    )
