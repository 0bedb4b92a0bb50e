"""The alert engine: evaluates the rules over a child's state after each event (pure).

``evaluate`` folds the event into the state, works out every occurrence the rules see in it,
and compares them with the occurrences already marked: a new one is raised (once, under an id
derived from its occurrence key), one whose basis was retracted or corrected away is withdrawn.
Everything is judged by when things happened (``occurred_at``), so a late record lands in its
place. Windows (accumulating concerns, repeated missing episodes) are sticky: a window already
raised stays as it is while it still holds, and the next window starts after it, so each
window alerts once, not once per event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hub.alerts.calendar import SchoolCalendar, next_school_day_start
from hub.alerts.facts import HubEventFacts
from hub.alerts.model import (
    AlertRaised,
    AlertWithdrawn,
    EscalationStep,
    Recipient,
    RecipientKind,
    TriggerFacts,
    alert_id_for,
)
from hub.alerts.rules import (
    AccumulatingConcernsRule,
    AlertRule,
    AlertRules,
    DomesticAbuseToSchoolRule,
    MissingEpisodesRule,
    RecipientSelector,
    UnscheduledCareWithPlanRule,
)
from hub.alerts.state import (
    AlertMark,
    ChildAlertState,
    MarkStatus,
    Record,
    absorb,
    fold,
    give_back,
    involvement_spans,
    lead_of,
    open_at,
)

__all__ = [
    "EngineOutcome",
    "Occurrence",
    "evaluate",
    "evaluate_merge",
    "evaluate_unmerge",
    "occurrences",
    "trigger_facts",
]

EngineOutcome = AlertRaised | AlertWithdrawn

_RISK_ORDER = ("low", "medium", "high", "critical")
_LOOKED_AFTER = "looked_after"


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One situation a rule matches: what it rests on, when, who hears, and why."""

    key: str
    rule: AlertRule
    basis_event_ids: tuple[str, ...]
    occurred_at: datetime
    reason: str
    recipients: tuple[Recipient, ...]
    window_start: datetime | None = None
    due_at: datetime | None = None  # None: raised_at + the rule's acknowledgement time


def _key(rule: AlertRule, child_id: str, part: str) -> str:
    return f"{rule.id}|{child_id}|{part}"


def _practitioner(lead: object) -> Recipient | None:
    if lead is None:
        return None
    email = getattr(lead, "email", None)
    name = getattr(lead, "name", "")
    team = getattr(lead, "team", None)
    return Recipient(
        kind=RecipientKind.practitioner,
        id=email or f"{team or 'no-team'}/{name}".lower(),
        name=name,
        team=team,
        email=email,
        phone=getattr(lead, "phone", None),
        role=getattr(lead, "role", None),
    )


def _recipients(
    rule: AlertRule,
    rules: AlertRules,
    state: ChildAlertState,
    involvement_ids: Sequence[str],
) -> tuple[tuple[Recipient, ...], str | None]:
    """Recipients for the rule's selectors, and a reason note when a fallback was used."""
    authority = rules.authority
    found: list[Recipient] = []
    note = None
    for selector in rule.recipients:
        if selector is RecipientSelector.lead_practitioner:
            for involvement_id in involvement_ids:
                recipient = _practitioner(lead_of(state, involvement_id))
                if recipient is not None:
                    found.append(recipient)
        elif selector is RecipientSelector.duty_team:
            team = authority.duty_team
            found.append(
                Recipient(kind=RecipientKind.team, id=team.team_id, agency_id=team.agency_id)
            )
        elif selector is RecipientSelector.front_door:
            team = authority.front_door
            found.append(
                Recipient(kind=RecipientKind.team, id=team.team_id, agency_id=team.agency_id)
            )
        elif selector is RecipientSelector.school_dsl:
            school = state.school
            if school is not None:
                found.append(
                    Recipient(
                        kind=RecipientKind.agency,
                        id=school,
                        agency_id=school,
                        role="designated_safeguarding_lead",
                    )
                )
            else:
                note = "no_school_known"
                team = authority.duty_team
                found.append(
                    Recipient(kind=RecipientKind.team, id=team.team_id, agency_id=team.agency_id)
                )
    unique = {r.address: r for r in found}
    if not unique:  # nobody found from the data: the duty team always hears
        team = authority.duty_team
        duty = Recipient(kind=RecipientKind.team, id=team.team_id, agency_id=team.agency_id)
        unique[duty.address] = duty
        note = note or "no_recipient_found"
    return tuple(unique.values()), note


@dataclass(frozen=True, slots=True)
class _View:
    """A state prepared once per evaluation: records in time order, involvement spans, and
    the records per-event rules look at (all of them, or only the event just folded in)."""

    every: list[Record]
    own: list[Record]
    spans: list
    focus: str | None

    @classmethod
    def of(cls, state: ChildAlertState, focus: str | None) -> _View:
        every = sorted(state.records.values(), key=lambda r: (r.occurred_at, r.event_id))
        return cls(
            every=every,
            own=[r for r in every if not r.via_household],
            spans=involvement_spans(state),
            focus=focus,
        )

    def candidates(self, records: list[Record]) -> list[Record]:
        """The records per-event rules judge now."""
        if self.focus is None:
            return records
        return [r for r in records if r.event_id == self.focus]

    def in_focus(self, state: ChildAlertState, test: Callable[[Record], bool]) -> bool:
        """Whether a window rule must be re-judged: a full evaluation, or its kind of record."""
        if self.focus is None:
            return True
        record = state.records.get(self.focus)
        return record is not None and test(record)


def _unscheduled_care(
    rule: UnscheduledCareWithPlanRule, rules: AlertRules, state: ChildAlertState, view: _View
) -> list[Occurrence]:
    wanted_contacts = {t.value for t in rule.contact_types}
    wanted_types = {t.value for t in rule.involvement_types}
    found = []
    for record in view.candidates(view.own):
        if record.contact_type not in wanted_contacts:
            continue
        matched = [o for o in open_at(view.spans, record.occurred_at) if o[1] in wanted_types]
        if not matched:
            continue
        recipients, note = _recipients(rule, rules, state, [m[0] for m in matched])
        basis = (record.event_id, *sorted({e for m in matched for e in m[2]}))
        found.append(
            Occurrence(
                key=_key(rule, state.child_id, record.event_id),
                rule=rule,
                basis_event_ids=basis,
                occurred_at=record.occurred_at,
                reason=note or "+".join(sorted({m[1] for m in matched})),
                recipients=recipients,
            )
        )
    return found


def _domestic_abuse(
    rule: DomesticAbuseToSchoolRule,
    rules: AlertRules,
    state: ChildAlertState,
    view: _View,
    calendar: SchoolCalendar,
    cause: str | None,
) -> list[Occurrence]:
    """Incidents about the child, and household incidents (another child's, at an address
    this child shares) for a child with a known school.

    A household incident is judged once, when it (or a correction of it) reaches the child;
    afterwards it counts only while the mark made then is active, so a school learned of
    later, or a full re-evaluation, never sends a late notice for it.
    """
    found = []
    for record in view.candidates(view.every):
        if record.contact_type != "police_incident" or record.agency_kind != "police":
            continue
        if record.incident_type not in rule.incident_types and (
            "domestic_abuse" not in record.sensitivity
        ):
            continue
        if record.via_household:
            mark = state.alerts.get(_key(rule, state.child_id, record.event_id))
            arriving = record.event_id in (view.focus, cause)
            if state.school is None or not (arriving or (mark is not None and mark.active)):
                continue
        recipients, note = _recipients(rule, rules, state, [])
        connection = "household" if record.via_household else (record.role or "involved")
        found.append(
            Occurrence(
                key=_key(rule, state.child_id, record.event_id),
                rule=rule,
                basis_event_ids=(record.event_id,),
                occurred_at=record.occurred_at,
                reason=note or connection,
                recipients=recipients,
                due_at=next_school_day_start(record.occurred_at, calendar),
            )
        )
    return found


def _windows(
    rule: AlertRule,
    state: ChildAlertState,
    items: Sequence[Record],
    *,
    min_count: int,
    min_agencies: int,
    within: timedelta,
    cause: str | None,
) -> list[tuple[str, tuple[Record, ...], datetime]]:
    """Sticky windows: (occurrence key, records in the window, window start); ``items`` in
    time order."""

    def holds(window: Sequence[Record]) -> bool:
        return len(window) >= min_count and len({r.agency_id for r in window}) >= min_agencies

    marks = sorted(
        (m for m in state.alerts.values() if m.rule_id == rule.id and m.active and m.window_start),
        key=lambda m: (m.window_end, m.occurrence_key),
    )
    found: list[tuple[str, tuple[Record, ...], datetime]] = []
    last_end: datetime | None = None
    for mark in marks:
        assert mark.window_start is not None and mark.window_end is not None
        if cause not in mark.basis_event_ids:  # nothing it rests on changed: it stays
            inside: tuple[Record, ...] = ()
        else:
            inside = tuple(
                i for i in items if mark.window_start <= i.occurred_at <= mark.window_end
            )
        if cause not in mark.basis_event_ids or holds(inside):
            found.append((mark.occurrence_key, inside, mark.window_start))
            last_end = mark.window_end if last_end is None else max(last_end, mark.window_end)
    pool = [i for i in items if last_end is None or i.occurred_at > last_end]
    if not holds(pool):  # no run of the pool can hold what all of it does not
        return found
    # ``items`` are in time order, so the records within ``within`` before each one (and
    # after the last window found) are a run ending at it, whose start only moves forward:
    # one pass, counting the run's agencies as records enter and leave it.
    agencies: Counter[str] = Counter()
    first = low = 0
    for j, item in enumerate(pool):
        agencies[item.agency_id] += 1
        floor = item.occurred_at - within
        while low <= j and (low < first or pool[low].occurred_at < floor):
            agencies[pool[low].agency_id] -= 1
            if not agencies[pool[low].agency_id]:
                del agencies[pool[low].agency_id]
            low += 1
        if j + 1 - low >= min_count and len(agencies) >= min_agencies:
            window = pool[low : j + 1]
            start = window[0].occurred_at
            found.append(
                (_key(rule, state.child_id, f"window:{start.isoformat()}"), tuple(window), start)
            )
            first = j + 1
    return found


def _accumulating(
    rule: AccumulatingConcernsRule,
    rules: AlertRules,
    state: ChildAlertState,
    view: _View,
    cause: str | None,
) -> list[Occurrence]:
    if not view.in_focus(state, lambda r: r.category is not None):
        return []
    categories = {c.value for c in rule.categories}
    floor = _RISK_ORDER.index(rule.min_risk_level.value)
    items = [
        r
        for r in view.own
        if r.category is not None
        and (not categories or r.category in categories)
        and _RISK_ORDER.index(r.risk_level or "low") >= floor
    ]
    found = []
    for key, window, start in _windows(
        rule,
        state,
        items,
        min_count=rule.min_concerns,
        min_agencies=rule.min_agencies,
        within=timedelta(days=rule.within_days),
        cause=cause,
    ):
        kept = key in state.alerts and state.alerts[key].active
        recipients, note = ((), None) if kept else _recipients(rule, rules, state, [])
        found.append(
            Occurrence(
                key=key,
                rule=rule,
                basis_event_ids=tuple(r.event_id for r in window),
                occurred_at=window[-1].occurred_at if window else start,
                reason=note
                or f"{len(window)}_concerns_{len({r.agency_id for r in window})}_agencies",
                recipients=recipients,
                window_start=start,
            )
        )
    return found


def _missing(
    rule: MissingEpisodesRule,
    rules: AlertRules,
    state: ChildAlertState,
    view: _View,
    cause: str | None,
) -> list[Occurrence]:
    episodes = [r for r in view.own if r.contact_type == "missing_episode"]
    found: list[Occurrence] = []
    if not view.in_focus(state, lambda r: r.contact_type == "missing_episode"):
        return found
    if rule.any_when_looked_after:
        for episode in view.candidates(episodes):
            looked_after = [
                o for o in open_at(view.spans, episode.occurred_at) if o[1] == _LOOKED_AFTER
            ]
            if not looked_after:
                continue
            recipients, note = _recipients(rule, rules, state, [o[0] for o in looked_after])
            found.append(
                Occurrence(
                    key=_key(rule, state.child_id, episode.event_id),
                    rule=rule,
                    basis_event_ids=(
                        episode.event_id,
                        *sorted({e for o in looked_after for e in o[2]}),
                    ),
                    occurred_at=episode.occurred_at,
                    reason=note or _LOOKED_AFTER,
                    recipients=recipients,
                )
            )
    for key, window, start in _windows(
        rule,
        state,
        episodes,
        min_count=rule.min_episodes,
        min_agencies=1,
        within=timedelta(days=rule.within_days),
        cause=cause,
    ):
        end = window[-1].occurred_at if window else start
        if key in state.alerts and state.alerts[key].active:
            found.append(
                Occurrence(key, rule, (), end, "kept", (), window_start=start)
            )  # already raised; it stays as it is
            continue
        held_by_authority = [
            o[0]
            for o in open_at(view.spans, end)
            if any(
                state.records[e].agency_id == rules.authority.agency_id
                for e in o[2]
                if e in state.records
            )
        ]
        recipients, note = _recipients(rule, rules, state, held_by_authority)
        found.append(
            Occurrence(
                key=key,
                rule=rule,
                basis_event_ids=tuple(r.event_id for r in window),
                occurred_at=end,
                reason=note or f"{len(window)}_episodes",
                recipients=recipients,
                window_start=start,
            )
        )
    return found


def occurrences(
    state: ChildAlertState,
    rules: AlertRules,
    calendar: SchoolCalendar,
    *,
    cause: str | None = None,
    focus: str | None = None,
) -> list[Occurrence]:
    """The occurrences the rules in force see in a state.

    ``cause`` is the event superseded now, if any. With ``focus`` (an event id) only what that
    event can change is judged: per-event rules on that record, window rules if it is of their
    kind. Without it (after an involvement, correction or retraction) everything is judged.
    """
    view = _View.of(state, focus)
    found: list[Occurrence] = []
    for rule in rules.enabled:
        if isinstance(rule, UnscheduledCareWithPlanRule):
            found += _unscheduled_care(rule, rules, state, view)
        elif isinstance(rule, DomesticAbuseToSchoolRule):
            found += _domestic_abuse(rule, rules, state, view, calendar, cause)
        elif isinstance(rule, AccumulatingConcernsRule):
            found += _accumulating(rule, rules, state, view, cause)
        elif isinstance(rule, MissingEpisodesRule):
            found += _missing(rule, rules, state, view, cause)
    return found


def _escalation(rule: AlertRule, rules: AlertRules, due_at: datetime) -> tuple[EscalationStep, ...]:
    return tuple(
        EscalationStep(
            step=n + 1,
            at=due_at + rule.escalation.every * n,
            recipients=(
                Recipient(
                    kind=RecipientKind.role, id=role.value, agency_id=rules.authority.agency_id
                ),
            ),
        )
        for n, role in enumerate(rule.escalation.roles)
    )


def trigger_facts(state: ChildAlertState, event_ids: Sequence[str]) -> tuple[TriggerFacts, ...]:
    """The facts of these events as their narrative entries have them, for each the state
    holds from the event itself: one it holds from a correction (or not at all) is left out."""
    found = []
    for event_id in event_ids:
        record = state.records.get(event_id)
        if record is None or event_id in state.superseded:
            continue
        found.append(
            TriggerFacts(
                event_id=event_id,
                event_type=record.kind,
                agency_id=record.agency_id,
                agency_kind=record.agency_kind,
                sensitivity=record.sensitivity,
                occurred_at=record.occurred_at.astimezone(UTC),
            )
        )
    return tuple(found)


def _raise(
    occurrence: Occurrence, state: ChildAlertState, rules: AlertRules, now: datetime
) -> AlertRaised:
    rule = occurrence.rule
    due_at = occurrence.due_at
    if due_at is None:
        minutes = getattr(rule, "acknowledge_within_minutes", 15)
        due_at = now + timedelta(minutes=minutes)
    return AlertRaised(
        alert_id=alert_id_for(occurrence.key),
        occurrence_key=occurrence.key,
        child_id=state.child_id,
        rule_id=rule.id,
        rule_kind=rule.kind,
        rule_version=rules.version,
        severity=rule.severity.value,
        reason=occurrence.reason,
        recipients=occurrence.recipients,
        trigger_event_ids=occurrence.basis_event_ids,
        occurred_at=occurrence.occurred_at,
        raised_at=now,
        due_at=due_at,
        escalation=_escalation(rule, rules, due_at),
        window_start=occurrence.window_start,
        trigger_facts=trigger_facts(state, occurrence.basis_event_ids),
    )


def evaluate(
    state: ChildAlertState,
    event: HubEventFacts,
    rules: AlertRules,
    *,
    now: datetime,
    calendar: SchoolCalendar,
    on_behalf_of: str | None = None,
) -> tuple[ChildAlertState, list[EngineOutcome]]:
    """The state after ``event`` and the alerts it raises or withdraws (pure, deterministic;
    ``on_behalf_of``: a merged-in child the event was linked to, see ``fold``).

    An occurrence already marked is never raised again (redelivery, restart, replay); one first
    seen more than its rule's ``stale_after`` after it happened is marked but not raised. An
    active alert is withdrawn only when this event supersedes one of the events it rests on
    and the occurrence no longer holds.
    """
    folded = fold(state, event, on_behalf_of=on_behalf_of)
    if folded is state:
        return state, []
    full = event.supersedes is not None or event.involvement is not None
    return _judge(
        folded,
        rules,
        calendar,
        now=now,
        cause=event.supersedes,
        cause_event_id=event.event_id,
        focus=None if full else event.event_id,
    )


def _judge(
    folded: ChildAlertState,
    rules: AlertRules,
    calendar: SchoolCalendar,
    *,
    now: datetime,
    cause: str | None,
    cause_event_id: str,
    focus: str | None,
) -> tuple[ChildAlertState, list[EngineOutcome]]:
    """Raise what the rules now see in a state and was not seen before, and withdraw what
    rested on the event superseded now (``cause``) and no longer holds; ``cause_event_id``
    names what changed in a withdrawal."""
    marks = dict(folded.alerts)
    outcomes: list[EngineOutcome] = []
    seen: set[str] = set()
    for occurrence in occurrences(folded, rules, calendar, cause=cause, focus=focus):
        seen.add(occurrence.key)
        mark = marks.get(occurrence.key)
        if mark is not None and mark.active:
            continue
        too_old = now - occurrence.occurred_at > occurrence.rule.stale_after
        status = MarkStatus.suppressed if too_old else MarkStatus.raised
        marks[occurrence.key] = AlertMark(
            occurrence_key=occurrence.key,
            alert_id=alert_id_for(occurrence.key),
            rule_id=occurrence.rule.id,
            status=status,
            basis_event_ids=occurrence.basis_event_ids,
            window_start=occurrence.window_start,
            window_end=occurrence.occurred_at if occurrence.window_start else None,
        )
        if not too_old:
            outcomes.append(_raise(occurrence, folded, rules, now))
    enabled = {r.id for r in rules.enabled}
    for key, mark in sorted(folded.alerts.items()) if cause is not None else ():
        if key in seen or not mark.active or mark.rule_id not in enabled:
            continue
        if cause not in mark.basis_event_ids:
            continue
        marks[key] = mark.model_copy(update={"status": MarkStatus.withdrawn})
        outcomes.append(
            AlertWithdrawn(
                alert_id=mark.alert_id,
                occurrence_key=key,
                child_id=folded.child_id,
                rule_id=mark.rule_id,
                cause_event_id=cause_event_id,
                withdrawn_at=now,
            )
        )
    return folded.model_copy(update={"alerts": marks}), outcomes


def evaluate_merge(
    survivor: ChildAlertState,
    merged: ChildAlertState,
    rules: AlertRules,
    *,
    now: datetime,
    calendar: SchoolCalendar,
) -> tuple[ChildAlertState, list[EngineOutcome]]:
    """The survivor's state after a merge made the merged child the same child, and the
    alerts the joined story now raises (pure). Everything is judged again over the joined
    records: a plan known to one record and an attendance to the other, or concerns that only
    together reach a threshold, raise for the survivor; an occurrence already alerted for
    either child is not raised again; one seen too late is marked, not raised."""
    joined = absorb(survivor, merged)
    if joined is survivor:
        return survivor, []
    return _judge(joined, rules, calendar, now=now, cause=None, cause_event_id="", focus=None)


def evaluate_unmerge(
    survivor: ChildAlertState,
    restored_id: str,
    rules: AlertRules,
    *,
    now: datetime,
    calendar: SchoolCalendar,
    cause: str,
) -> tuple[ChildAlertState, list[EngineOutcome]]:
    """The survivor's state after the merge with ``restored_id`` was undone, and the alerts
    withdrawn because they rested on what it gave back (pure; ``cause`` names the un-merge).
    Each record given back is judged as if retracted from the survivor: an alert resting on
    it is withdrawn unless it still holds without it. The restored child's own state is as
    the merge left it."""
    state, gone = give_back(survivor, restored_id)
    outcomes: list[EngineOutcome] = []
    for event_id in sorted(gone):
        state, produced = _judge(
            state, rules, calendar, now=now, cause=event_id, cause_event_id=cause, focus=None
        )
        outcomes += produced
    return state, outcomes
