"""The alert engine's keyed state per child, and how one event's facts fold into it.

The state holds only what the rules read: involvements with their lead practitioners, recent
concerns and contacts (ids, times, agency, codes), the child's school, opaque household keys,
and a mark per alert occurrence already seen. Folding the log from the start rebuilds it.
Records are keyed by the id of the event they came from, so redelivery changes nothing;
corrections replace a record under its original id, retractions remove it, and an original
that arrives after its correction or retraction is ignored.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from hub.alerts.facts import HubEventFacts, PractitionerFacts

__all__ = [
    "Absorbed",
    "AlertMark",
    "ChildAlertState",
    "MarkStatus",
    "Record",
    "Supersession",
    "absorb",
    "fold",
    "give_back",
    "involvement_spans",
    "lead_of",
    "local_date",
    "open_at",
    "open_involvements",
    "take_back",
]

_LONDON = ZoneInfo("Europe/London")
RETAIN = timedelta(days=400)
"""Concerns and contacts older than this, before the child's latest one, are dropped."""


def local_date(instant: datetime) -> date:
    """The calendar day of an instant in England."""
    return instant.astimezone(_LONDON).date()


class _Value(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Record(_Value):
    """One fact about the child the rules read, kept under the id of the event that said it."""

    event_id: str
    kind: str  # concern.raised | involvement.* | contact.recorded
    occurred_at: datetime
    recorded_at: datetime
    agency_id: str
    agency_kind: str
    sensitivity: tuple[str, ...] = ()
    via_household: bool = False
    category: str | None = None
    risk_level: str | None = None
    involvement_id: str | None = None
    involvement_type: str | None = None
    ended: bool = False
    started_on: date | None = None
    ended_on: date | None = None
    lead: PractitionerFacts | None = None
    contact_type: str | None = None
    incident_type: str | None = None
    role: str | None = None


class Supersession(_Value):
    """An event replaced by a correction or withdrawn by a retraction."""

    by: str
    recorded_at: datetime
    retracted: bool


class MarkStatus(StrEnum):
    """What the engine did with an occurrence."""

    raised = "raised"
    withdrawn = "withdrawn"
    suppressed = "suppressed"  # seen too late to raise (replay, very late record)


class AlertMark(_Value):
    """An occurrence the engine has seen: its alert id, basis events and window."""

    occurrence_key: str
    alert_id: str
    rule_id: str
    status: MarkStatus
    basis_event_ids: tuple[str, ...]
    window_start: datetime | None = None
    window_end: datetime | None = None

    @property
    def active(self) -> bool:
        """Raised or suppressed: it counts as seen and can be withdrawn."""
        return self.status is not MarkStatus.withdrawn


class Absorbed(_Value):
    """What a merge added to the surviving child's state from the merged child's, so that an
    un-merge can take exactly that away again: records, supersessions, alert marks (under
    the survivor's keys), household keys, and schools with the survivor's own time before
    (None: the survivor had none from that school)."""

    records: tuple[str, ...] = ()
    superseded: tuple[str, ...] = ()
    marks: tuple[str, ...] = ()
    household_keys: tuple[str, ...] = ()
    schools: dict[str, datetime | None] = Field(default_factory=dict)
    via: str | None = None
    """The child it was merged into, when that child was itself merged in later (None: this
    state's own merge)."""


class ChildAlertState(_Value):
    """Everything the alert rules know about one child (JSON-serialisable for snapshots)."""

    child_id: str
    records: dict[str, Record] = Field(default_factory=dict)
    superseded: dict[str, Supersession] = Field(default_factory=dict)
    schools: dict[str, datetime] = Field(default_factory=dict)
    """Schools-kind agencies that sent events about the child, with the latest event time."""
    household_keys: tuple[str, ...] = ()
    alerts: dict[str, AlertMark] = Field(default_factory=dict)
    absorbed: dict[str, Absorbed] = Field(default_factory=dict)
    """Per child merged into this one, directly or through another (by its id): what the
    merge added here."""
    merged_into: str | None = None
    """Set while this child is merged into another: its events go to that child's state."""

    @property
    def school(self) -> str | None:
        """The school of the pupil: the one that most recently sent an event about them."""
        if not self.schools:
            return None
        return max(self.schools.items(), key=lambda kv: (kv[1], kv[0]))[0]


def _record(facts: HubEventFacts, event_id: str, *, via_household: bool) -> Record | None:
    base = {
        "event_id": event_id,
        "kind": facts.kind,
        "occurred_at": facts.occurred_at,
        "recorded_at": facts.recorded_at,
        "agency_id": facts.agency_id,
        "agency_kind": facts.agency_kind,
        "sensitivity": facts.sensitivity,
        "via_household": via_household,
    }
    if facts.concern is not None:
        return Record(**base, category=facts.concern.category, risk_level=facts.concern.risk_level)
    if facts.involvement is not None:
        inv = facts.involvement
        return Record(
            **base,
            involvement_id=inv.involvement_id,
            involvement_type=inv.involvement_type,
            ended=inv.ended,
            started_on=date.fromisoformat(inv.started_on) if inv.started_on else None,
            ended_on=date.fromisoformat(inv.ended_on) if inv.ended_on else None,
            lead=inv.lead,
        )
    if facts.contact is not None:
        c = facts.contact
        return Record(
            **base, contact_type=c.contact_type, incident_type=c.incident_type, role=c.role
        )
    return None


def _prune(records: dict[str, Record]) -> dict[str, Record]:
    dated = [r.occurred_at for r in records.values() if r.involvement_id is None]
    if not dated:
        return records
    horizon = max(dated) - RETAIN
    return {
        k: r for k, r in records.items() if r.involvement_id is not None or r.occurred_at >= horizon
    }


def fold(
    state: ChildAlertState, facts: HubEventFacts, *, on_behalf_of: str | None = None
) -> ChildAlertState:
    """The state after one event (pure; the same event twice gives the same state).

    ``on_behalf_of`` names a child merged into this one whose id the event was linked to:
    what it adds is that child's, noted in ``absorbed`` so an un-merge gives it back, rather
    than this child's own.

    Facts about another child count only as a household incident: when they share a household
    key with this child, their contact is kept with ``via_household``; everything else about
    another child is ignored. A correction or retraction of a contact kept that way applies
    whatever address it carries: a retraction removes it, and a correction that places it
    at another address (keys, none shared) or makes it no contact removes it too.
    """
    own = facts.child_id == state.child_id
    shared = bool(set(facts.household_keys) & set(state.household_keys))
    held = (
        not own
        and facts.supersedes is not None
        and facts.supersedes in state.records
        and state.records[facts.supersedes].via_household
    )
    if not own and not shared and not held:
        return state
    records = dict(state.records)
    superseded = dict(state.superseded)
    if facts.supersedes is not None:
        target = facts.supersedes
        prior = superseded.get(target)
        if prior is not None and (prior.retracted or prior.recorded_at > facts.recorded_at):
            return state  # a retraction is final; an older correction loses to a newer one
        if facts.is_retraction:
            records.pop(target, None)
        else:
            record = _record(facts, target, via_household=not own)
            here = own or shared or not facts.household_keys
            if record is not None and here and (own or record.contact_type is not None):
                records[target] = record
            elif not own:
                records.pop(target, None)  # no longer a household contact of this child
        superseded[target] = Supersession(
            by=facts.event_id, recorded_at=facts.recorded_at, retracted=facts.is_retraction
        )
    else:
        if facts.event_id in superseded:
            return state  # the original arrived after its correction or retraction
        record = _record(facts, facts.event_id, via_household=not own)
        if record is None or (not own and record.contact_type is None):
            return state
        records[facts.event_id] = record
    schools = dict(state.schools)
    keys = state.household_keys
    absorbed = state.absorbed
    if own:
        if facts.agency_kind == "schools":
            seen = schools.get(facts.agency_id)
            schools[facts.agency_id] = max(seen, facts.occurred_at) if seen else facts.occurred_at
        keys = tuple(sorted(set(keys) | set(facts.household_keys)))
        if on_behalf_of is not None and on_behalf_of in absorbed:
            absorbed = _attributed(state, absorbed, on_behalf_of, facts, records, superseded)
        elif absorbed:
            absorbed = _learned(absorbed, facts)
    return state.model_copy(
        update={
            "records": _prune(records),
            "superseded": superseded,
            "schools": schools,
            "household_keys": keys,
            "absorbed": absorbed,
        }
    )


def _attributed(
    state: ChildAlertState,
    absorbed: dict[str, Absorbed],
    child_id: str,
    facts: HubEventFacts,
    records: dict[str, Record],
    superseded: dict[str, Supersession],
) -> dict[str, Absorbed]:
    """``absorbed`` with what one event of a merged-in child added noted as that child's."""
    taken = absorbed[child_id]
    new_records = tuple(k for k in records if k not in state.records and k not in taken.records)
    new_superseded = tuple(
        k for k in superseded if k not in state.superseded and k not in taken.superseded
    )
    new_keys = tuple(
        k
        for k in facts.household_keys
        if k not in state.household_keys and k not in taken.household_keys
    )
    schools = dict(taken.schools)
    if facts.agency_kind == "schools" and facts.agency_id not in schools:
        schools[facts.agency_id] = state.schools.get(facts.agency_id)
    return {
        **absorbed,
        child_id: taken.model_copy(
            update={
                "records": taken.records + new_records,
                "superseded": taken.superseded + new_superseded,
                "household_keys": taken.household_keys + new_keys,
                "schools": schools,
            }
        ),
    }


def _learned(absorbed: dict[str, Absorbed], facts: HubEventFacts) -> dict[str, Absorbed]:
    """What merges added, once the child's own event says some of it too: its household keys
    are the child's own now, and its school's time is the child's own (an un-merge keeps
    both)."""
    school = facts.agency_id if facts.agency_kind == "schools" else None
    out: dict[str, Absorbed] = {}
    for child_id, taken in absorbed.items():
        update: dict[str, object] = {}
        if facts.household_keys and set(taken.household_keys) & set(facts.household_keys):
            update["household_keys"] = tuple(
                k for k in taken.household_keys if k not in facts.household_keys
            )
        if school is not None and school in taken.schools:
            own = taken.schools[school]
            update["schools"] = {
                **taken.schools,
                school: facts.occurred_at if own is None else max(own, facts.occurred_at),
            }
        out[child_id] = taken.model_copy(update=update) if update else taken
    return out


def lead_of(state: ChildAlertState, involvement_id: str) -> PractitionerFacts | None:
    """The latest lead practitioner named for an involvement."""
    with_lead = [
        r
        for r in state.records.values()
        if r.involvement_id == involvement_id and r.lead is not None
    ]
    if not with_lead:
        return None
    return max(with_lead, key=lambda r: (r.occurred_at, r.recorded_at, r.event_id)).lead


Span = tuple[str, str, date, date | None, list[str]]
"""An involvement's (id, type, first day, last day or None while open, its event ids)."""


def involvement_spans(state: ChildAlertState) -> list[Span]:
    """Every involvement of the child as a span of days.

    An involvement spans from its earliest ``started_on`` (else its first event's day) to the
    ``ended_on`` of its latest event if that event ended it; both days inclusive, in England.
    """
    by_id: dict[str, list[Record]] = {}
    for record in state.records.values():
        if record.involvement_id is not None and not record.via_household:
            by_id.setdefault(record.involvement_id, []).append(record)
    spans: list[Span] = []
    for involvement_id, records in sorted(by_id.items()):
        records.sort(key=lambda r: (r.occurred_at, r.recorded_at, r.event_id))
        latest = records[-1]
        start = min(r.started_on or local_date(r.occurred_at) for r in records)
        end = (latest.ended_on or local_date(latest.occurred_at)) if latest.ended else None
        spans.append(
            (
                involvement_id,
                latest.involvement_type or "other",
                start,
                end,
                [r.event_id for r in records],
            )
        )
    return spans


def open_at(spans: list[Span], at: datetime) -> list[tuple[str, str, list[str]]]:
    """The spans open at an instant: (involvement id, type, ids of the events that say so)."""
    day = local_date(at)
    return [
        (inv_id, kind, ids)
        for inv_id, kind, start, end, ids in spans
        if start <= day and (end is None or day <= end)
    ]


def open_involvements(state: ChildAlertState, at: datetime) -> list[tuple[str, str, list[str]]]:
    """Involvements open at an instant: (involvement id, type, ids of the events that say so)."""
    return open_at(involvement_spans(state), at)


def _rekey(occurrence_key: str, child_id: str) -> str:
    """An occurrence key (``rule|child|part``) with another child's id in it."""
    rule_id, _, rest = occurrence_key.partition("|")
    _, _, part = rest.partition("|")
    return f"{rule_id}|{child_id}|{part}"


def absorb(survivor: ChildAlertState, merged: ChildAlertState) -> ChildAlertState:
    """The survivor's state once a merge has made the merged child the same child (pure).

    The merged child's records, supersessions, household keys and schools join the
    survivor's (the survivor's own win where both hold one). Its alert marks come over under
    the survivor's occurrence keys, keeping their alert ids, so an occurrence already alerted
    for either child is not alerted again. What was added is noted in ``absorbed`` for an
    un-merge, per child: what had come to the merged child from children merged into it
    before is noted under those children (``via`` the merged child), so undoing either merge
    later gives back the right part. Merging the same child again changes nothing.
    """
    if merged.child_id == survivor.child_id or merged.child_id in survivor.absorbed:
        return survivor
    records = dict(survivor.records)
    added_records = {k for k in merged.records if k not in records}
    records.update((k, merged.records[k]) for k in added_records)
    superseded = dict(survivor.superseded)
    added_superseded = {k for k in merged.superseded if k not in superseded}
    superseded.update((k, merged.superseded[k]) for k in added_superseded)
    marks = dict(survivor.alerts)
    added_marks: list[str] = []
    for key, mark in sorted(merged.alerts.items()):
        mine = _rekey(key, survivor.child_id)
        if mine not in marks:
            marks[mine] = mark.model_copy(update={"occurrence_key": mine})
            added_marks.append(mine)
    schools = dict(survivor.schools)
    before: dict[str, datetime | None] = {}
    for agency_id, at in merged.schools.items():
        own = schools.get(agency_id)
        if own is None or at > own:
            before[agency_id] = own
            schools[agency_id] = at
    added_keys = {k for k in merged.household_keys if k not in survivor.household_keys}
    absorbed = dict(survivor.absorbed)
    # What came to the merged child from its own merges stays theirs: moved up, via it.
    for child_id, taken in merged.absorbed.items():
        marks_here = (_rekey(m, survivor.child_id) for m in taken.marks)
        absorbed[child_id] = taken.model_copy(
            update={
                "records": tuple(k for k in taken.records if k in added_records),
                "superseded": tuple(k for k in taken.superseded if k in added_superseded),
                "marks": tuple(k for k in marks_here if k in added_marks),
                "household_keys": tuple(k for k in taken.household_keys if k in added_keys),
                "via": taken.via or merged.child_id,
            }
        )
    theirs = [absorbed[c] for c in merged.absorbed]
    absorbed[merged.child_id] = Absorbed(
        records=tuple(sorted(added_records - {k for t in theirs for k in t.records})),
        superseded=tuple(sorted(added_superseded - {k for t in theirs for k in t.superseded})),
        marks=tuple(k for k in added_marks if k not in {m for t in theirs for m in t.marks}),
        household_keys=tuple(sorted(added_keys - {k for t in theirs for k in t.household_keys})),
        schools=before,
    )
    return survivor.model_copy(
        update={
            "records": records,
            "superseded": superseded,
            "alerts": marks,
            "schools": schools,
            "household_keys": tuple(sorted({*survivor.household_keys, *added_keys})),
            "absorbed": absorbed,
        }
    )


def _parted(absorbed: dict[str, Absorbed], restored_id: str) -> set[str]:
    """The restored child and every child that came in through it, directly or not."""
    out = {restored_id} if restored_id in absorbed else set()
    grew = bool(out)
    while grew:
        more = {c for c, t in absorbed.items() if t.via in out and c not in out}
        out |= more
        grew = bool(more)
    return out


_UNCHANGED = datetime.min.replace(tzinfo=UTC)
"""``_school_before``: the survivor's time for the school does not depend on the entry."""


def _school_before(
    absorbed: dict[str, Absorbed], entry: Absorbed, agency_id: str, before: datetime | None
) -> datetime | None:
    """A school's time once ``entry`` is given back: the latest of the times it replaced,
    up the chain of merges it came through, or ``_UNCHANGED`` when a later merge in that
    chain did not take that school's time from it (the survivor's own was later)."""
    times = [before]
    step = entry
    while step.via is not None:
        parent = absorbed.get(step.via)
        if parent is None or agency_id not in parent.schools:
            return _UNCHANGED
        times.append(parent.schools[agency_id])
        step = parent
    known = [t for t in times if t is not None]
    return max(known) if known else None


def give_back(survivor: ChildAlertState, restored_id: str) -> tuple[ChildAlertState, set[str]]:
    """The survivor's state once the merge with ``restored_id`` is undone (pure), and the
    ids of the records it gave back. What the merge added goes, with what came in through
    the restored child from its own earlier merges; what the survivor had, or has learned
    itself since (its own events' schools and household keys), stays. Nothing to give back:
    the state unchanged and no ids."""
    parted = _parted(survivor.absorbed, restored_id)
    if not parted:
        return survivor, set()
    taken = [survivor.absorbed[c] for c in parted]
    gone_records = {k for t in taken for k in t.records}
    gone_superseded = {k for t in taken for k in t.superseded}
    gone_marks = {k for t in taken for k in t.marks}
    gone_keys = {k for t in taken for k in t.household_keys}
    schools = dict(survivor.schools)
    for child_id in parted:
        entry = survivor.absorbed[child_id]
        if entry.via in parted:
            continue  # the child it came through gives back its own and this one's times
        for agency_id, before in entry.schools.items():
            restored = _school_before(survivor.absorbed, entry, agency_id, before)
            if restored is _UNCHANGED:
                continue
            if restored is None:
                schools.pop(agency_id, None)
            else:
                schools[agency_id] = restored
    state = survivor.model_copy(
        update={
            "records": {k: v for k, v in survivor.records.items() if k not in gone_records},
            "superseded": {
                k: v for k, v in survivor.superseded.items() if k not in gone_superseded
            },
            "alerts": {k: v for k, v in survivor.alerts.items() if k not in gone_marks},
            "schools": schools,
            "household_keys": tuple(k for k in survivor.household_keys if k not in gone_keys),
            "absorbed": {k: v for k, v in survivor.absorbed.items() if k not in parted},
        }
    )
    return state, gone_records


def take_back(restored: ChildAlertState, holder: ChildAlertState) -> ChildAlertState:
    """The restored child's state once an un-merge gives it back from ``holder`` (the state
    that held its part, as it was before giving it back; pure).

    Its own stored state was left as the merge found it; what happened to its part meanwhile
    joins it: events linked to it since (now given back), and corrections and retractions of
    its records made while merged. It is no longer merged into anything.
    """
    parted = _parted(holder.absorbed, restored.child_id)
    taken = [holder.absorbed[c] for c in parted]
    ids = set(restored.records) | {k for t in taken for k in t.records}
    superseded = dict(restored.superseded)
    superseded.update((k, holder.superseded[k]) for k in ids if k in holder.superseded)
    records = {k: v for k, v in restored.records.items() if k not in holder.superseded}
    records.update((k, holder.records[k]) for k in ids if k in holder.records)
    schools = dict(restored.schools)
    for record in records.values():
        if record.agency_kind == "schools" and not record.via_household:
            seen = schools.get(record.agency_id)
            schools[record.agency_id] = (
                max(seen, record.occurred_at) if seen else record.occurred_at
            )
    keys = {*restored.household_keys, *(k for t in taken for k in t.household_keys)}
    return restored.model_copy(
        update={
            "records": _prune(records),
            "superseded": superseded,
            "schools": schools,
            "household_keys": tuple(sorted(keys)),
            "merged_into": None,
        }
    )
