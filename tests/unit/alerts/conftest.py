"""Builders for the alert tests: the shipped rules and calendar, frozen time, event facts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.alerts.calendar import SchoolCalendar, load_calendar
from hub.alerts.engine import EngineOutcome, evaluate
from hub.alerts.facts import (
    ConcernFacts,
    ContactFacts,
    HubEventFacts,
    InvolvementFacts,
    PractitionerFacts,
)
from hub.alerts.rules import AlertRules, load_rules
from hub.alerts.state import ChildAlertState

REPO = Path(__file__).resolve().parents[3]
RULES_FILE = REPO / "deploy" / "alerts" / "northshire.yaml"
CALENDAR_FILE = REPO / "deploy" / "alerts" / "term-dates.yaml"

CHILD = "ch-0001"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday in the spring term
"""When the first event of a scenario happened."""

LEAD = PractitionerFacts(
    name="Sam Practitioner",
    role="social worker",
    team="Safeguarding Team 2",
    email="sam.practitioner@northshire.example",
    phone="01632 960001",
)


@pytest.fixture(scope="session")
def rules() -> AlertRules:
    """The shipped Northshire rules."""
    return load_rules(RULES_FILE)


@pytest.fixture(scope="session")
def calendar() -> SchoolCalendar:
    """The shipped Northshire term dates."""
    return load_calendar(CALENDAR_FILE)


def at(days: float = 0, hours: float = 0) -> datetime:
    """T0 plus an offset."""
    return T0 + timedelta(days=days, hours=hours)


def _facts(event_id: str, kind: str, when: datetime, agency: str, agency_kind: str, **kw: object):
    return HubEventFacts(
        event_id=event_id,
        child_id=kw.pop("child_id", CHILD),  # type: ignore[arg-type]
        kind=kind,
        occurred_at=when,
        recorded_at=kw.pop("recorded_at", when + timedelta(minutes=5)),  # type: ignore[arg-type]
        agency_id=agency,
        agency_kind=agency_kind,
        **kw,  # type: ignore[arg-type]
    )


def plan(
    event_id: str = "cs:plan-1",
    when: datetime = T0 - timedelta(days=60),
    *,
    involvement_type: str = "child_protection_plan",
    ended_on: str | None = None,
    started_on: str | None = "2026-01-01",
    lead: PractitionerFacts | None = LEAD,
    involvement_id: str = "CPP-1",
) -> HubEventFacts:
    """An involvement started (or ended, with ``ended_on``) by children's services."""
    return _facts(
        event_id,
        "involvement.ended" if ended_on else "involvement.started",
        when,
        "northshire-cs",
        "childrens_services",
        involvement=InvolvementFacts(
            involvement_id=involvement_id,
            involvement_type=involvement_type,
            ended=ended_on is not None,
            started_on=started_on,
            ended_on=ended_on,
            lead=lead,
        ),
    )


def attendance(event_id: str = "health:ed-1", when: datetime = T0, **kw: object) -> HubEventFacts:
    """An emergency-department attendance reported by the hospital trust."""
    return _facts(
        event_id,
        "contact.recorded",
        when,
        "northshire-health",
        "health",
        contact=ContactFacts(contact_type="unscheduled_care_attendance"),
        **kw,
    )


def incident(
    event_id: str = "police:inc-1",
    when: datetime = T0,
    *,
    incident_type: str | None = "domestic_abuse",
    role: str | None = "child_present",
    sensitivity: tuple[str, ...] = ("domestic_abuse",),
    **kw: object,
) -> HubEventFacts:
    """A police incident notice for the child."""
    return _facts(
        event_id,
        "contact.recorded",
        when,
        "northshire-police",
        "police",
        contact=ContactFacts(
            contact_type="police_incident", incident_type=incident_type, role=role
        ),
        sensitivity=sensitivity,
        **kw,
    )


def missing(event_id: str, when: datetime, **kw: object) -> HubEventFacts:
    """A missing episode reported by the police."""
    return _facts(
        event_id,
        "contact.recorded",
        when,
        "northshire-police",
        "police",
        contact=ContactFacts(contact_type="missing_episode", role="missing_person"),
        **kw,
    )


def concern(
    event_id: str, when: datetime, agency: str, *, risk: str = "medium", category: str = "neglect"
) -> HubEventFacts:
    """A concern raised by an agency (its kind guessed from the id)."""
    kinds = {
        "northshire-police": "police",
        "northshire-health": "health",
        "northshire-primary": "schools",
        "northshire-cs": "childrens_services",
    }
    return _facts(
        event_id,
        "concern.raised",
        when,
        agency,
        kinds[agency],
        concern=ConcernFacts(category=category, risk_level=risk),
    )


def school_contact(event_id: str = "school:abs-1", when: datetime = T0 - timedelta(days=5)):
    """A school absence: tells the hub which school the pupil attends."""
    return _facts(
        event_id,
        "contact.recorded",
        when,
        "northshire-primary",
        "schools",
        contact=ContactFacts(contact_type="school_absence"),
    )


def retraction(event_id: str, target: str, when: datetime = T0 + timedelta(hours=2)):
    """A retraction of ``target`` by its sender."""
    return _facts(
        event_id, "event.retracted", when, "northshire-health", "health", supersedes=target
    )


def corrected(original: HubEventFacts, event_id: str, **changes: object) -> HubEventFacts:
    """A correction of ``original`` with some facts changed."""
    fields: dict[str, object] = {"recorded_at": original.recorded_at + timedelta(hours=1)}
    fields.update(changes)
    return replace(
        original, event_id=event_id, supersedes=original.event_id, is_correction=True, **fields
    )


def run(
    events: list[HubEventFacts],
    rules: AlertRules,
    calendar: SchoolCalendar,
    *,
    now: datetime | None = None,
    state: ChildAlertState | None = None,
) -> tuple[ChildAlertState, list[EngineOutcome]]:
    """Fold events through the engine in order; ``now`` defaults to each event's time + 1 min."""
    state = state or ChildAlertState(child_id=CHILD)
    out: list[EngineOutcome] = []
    for event in events:
        clock = now or max(event.occurred_at, event.recorded_at) + timedelta(minutes=1)
        state, produced = evaluate(state, event, rules, now=clock, calendar=calendar)
        out += produced
    return state, out
