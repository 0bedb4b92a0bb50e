"""The demo scenario: five invented Northshire households as native agency files, and their story.

The files under ``hub/demo/scenario/`` are written as if today were ``REFERENCE_DAY`` (so a
person can read them as they are). At load every ISO date in them moves forward by whole weeks
(``render``) so that the most recent events stay within the alert rules' ``stale_after_days``
and school-day timing keeps its weekday. Event ids come from the agencies' own record ids;
the CIN census and CTF ids also carry dates, so the loader fixes the shift once per hub
(see ``hub.demo.loader.anchor_shift``) and a second load sends identical files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import resources

from adapters.common import AgencyRef, stable_id
from contracts import AgencyKind

__all__ = [
    "CHILDREN",
    "EXPECTED_ALERTS",
    "FILES",
    "REFERENCE_DAY",
    "DemoChild",
    "DemoFile",
    "ExpectedAlert",
    "file_bytes",
    "render",
    "shift_for",
]

REFERENCE_DAY = date(2026, 11, 27)
"""The 'today' the scenario files are written for (a Friday)."""

_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")


@dataclass(frozen=True, slots=True)
class DemoFile:
    """One native file of the scenario, the agency that sends it, and its load wave.

    Waves go in order so identity resolves as it would in life: schools first (UPN and name),
    then health and police (matched on name, birth date and address), then children's social
    care's daily exports (worker allocations, SSDA903 looked-after episodes), then the yearly
    CIN census (UPN only, no names), each wave stored before the next is sent. The allocation
    goes before the census because an alert, once raised, keeps its recipients: the lead must be
    known when the plan first opens in the hub.
    """

    name: str
    agency_id: str
    kind: AgencyKind
    wave: int


FILES: tuple[DemoFile, ...] = (
    DemoFile("school_ctf.xml", "northshire-primary", AgencyKind.schools, 1),
    DemoFile("school_concerns.csv", "northshire-primary", AgencyKind.schools, 1),
    DemoFile("health_attendances.fhir.json", "northshire-health", AgencyKind.health, 2),
    DemoFile("police_notices.csv", "northshire-police", AgencyKind.police, 3),
    DemoFile("allocations.csv", "northshire-cs", AgencyKind.childrens_services, 4),
    DemoFile("looked_after_episodes.csv", "northshire-cs", AgencyKind.childrens_services, 4),
    DemoFile("cin_census.xml", "northshire-cs", AgencyKind.childrens_services, 5),
)


def file_bytes(name: str) -> bytes:
    """The packaged scenario file, as written (dates as of ``REFERENCE_DAY``)."""
    return resources.files("hub.demo").joinpath("scenario", name).read_bytes()


def shift_for(today: date) -> int:
    """Days to add to every scenario date: whole weeks, landing REFERENCE_DAY on or before today."""
    return ((today - REFERENCE_DAY).days // 7) * 7


def render(body: bytes, shift_days: int) -> bytes:
    """The file with every ISO date (``YYYY-MM-DD``, also inside date-times) moved by the shift."""
    if shift_days == 0:
        return body

    def move(match: re.Match[bytes]) -> bytes:
        try:
            day = date(*(int(g) for g in match.groups()))
        except ValueError:
            return match.group(0)
        return (day + timedelta(days=shift_days)).isoformat().encode()

    return re.sub(_ISO_DATE.pattern.encode(), move, body)


def _ctf_attendance(upn: str) -> str:
    school = AgencyRef("northshire-primary", AgencyKind.schools)
    return stable_id(school, "ctf", upn, "attendance", "2026", "102", opaque=True)


def _cin(child: str, referral: str, *parts: str) -> tuple[str, ...]:
    return tuple(f"northshire-cs:cin:{child}:{referral}:{p}" for p in parts)


@dataclass(frozen=True, slots=True)
class DemoChild:
    """A demo child: who, how to find them, their story, and the events the files make."""

    key: str
    name: str
    household: str
    lookup: str  # identifier query for GET /api/v1/children (system:value)
    story: str
    event_ids: tuple[str, ...]


CHILDREN: tuple[DemoChild, ...] = (
    DemoChild(
        key="leo",
        name="Leo Harper (7)",
        household="Harper, 12 Orchard Row, Northtown",
        lookup="upn:C938000008101",
        story=(
            "On a child protection plan (neglect) since June, allocated to social worker Sam "
            "Practitioner; taken to A&E with a scald three days before the reference day: the "
            "CP-IS style unscheduled-care alert, to Sam and the duty team."
        ),
        event_ids=(
            _ctf_attendance("C938000008101"),
            "northshire-health:encounter:ed-26-004417",
            *_cin(
                "NCS0081011",
                "2026-02-16",
                "referral:started",
                "assessment-0:started",
                "assessment-0:ended",
                "s47-0:started",
                "s47-0:ended",
                "cpp-0:started",
            ),
            "northshire-cs:allocation:ALC-26-0417",
        ),
    ),
    DemoChild(
        key="ruby",
        name="Ruby Brennan (9)",
        household="Brennan, 41 Quarry Street, Northtown",
        lookup="upn:R938000008102",
        story=(
            "Present at a domestic-abuse incident at home (police spelt her 'Ruby Brenan'): "
            "Operation Encompass notice to the school's DSL before 9am."
        ),
        event_ids=(
            _ctf_attendance("R938000008102"),
            "northshire-police:NP-26-011842:NPP-410977:contact",
            "northshire-police:NP-26-011842:NPP-410977:concern",
            "northshire-primary:concern:SC-26-0440",
        ),
    ),
    DemoChild(
        key="oscar",
        name="Oscar Brennan (5)",
        household="Brennan, 41 Quarry Street, Northtown",
        lookup="upn:F938000008103",
        story=(
            "Ruby's little brother, asleep upstairs and not named by police; linked to the "
            "incident through the household (same address, same mother)."
        ),
        event_ids=(_ctf_attendance("F938000008103"),),
    ),
    DemoChild(
        key="thomas",
        name="Thomas Reilly (10)",
        household="Reilly, 7 Fen Close, Southbridge",
        lookup="upn:V938000008104",
        story=(
            "Two neglect concerns from school and one from the urgent treatment centre "
            "(registered as 'Tommy', no NHS number) within 30 days: the front-door alert."
        ),
        event_ids=(
            _ctf_attendance("V938000008104"),
            "northshire-primary:concern:SC-26-0412",
            "northshire-primary:concern:SC-26-0431",
            "northshire-health:encounter:ucc-26-002231",
            "northshire-health:flag:sg-flag-7730",
        ),
    ),
    DemoChild(
        key="kayden",
        name="Kayden Price (11)",
        household="foster carers, 22 Birch Avenue, Eastleigh",
        lookup="upn:J938000008105",
        story=(
            "Looked after since March (SSDA903 episodes), living with foster carers; reported "
            "missing four days before the reference day (and once in June): one episode of a "
            "looked-after child is enough for the missing-episodes alert."
        ),
        event_ids=(
            _ctf_attendance("J938000008105"),
            "northshire-police:NP-26-007310:NPP-410552:contact",
            "northshire-police:NP-26-011790:NPP-410552:contact",
            *_cin(
                "NCS0081055",
                "2025-12-01",
                "referral:started",
                "assessment-0:started",
                "assessment-0:ended",
                "cin-plan-0:started",
            ),
            "northshire-cs:ssda903:NCS0081055:2026-03-02:started",
        ),
    ),
    DemoChild(
        key="anaya",
        name="Anaya Patel (8)",
        household="Patel, 5 Linden Way, Northtown",
        lookup="nhs:9990090076",
        story=(
            "Nothing alarming: good attendance and an A&E visit for a sprained wrist from "
            "football. No plan, so no alert."
        ),
        event_ids=(_ctf_attendance("Y938000008106"), "northshire-health:encounter:ed-26-004388"),
    ),
)
"""The demo children, in the order the guide lists them."""


@dataclass(frozen=True, slots=True)
class ExpectedAlert:
    """An alert the scenario should raise: rule, child, trigger event, and an inbox address."""

    rule_id: str
    child_key: str
    trigger_event_id: str
    address: str
    known_gap: str | None = None  # why the hub does not raise it today, if it does not


EXPECTED_ALERTS: tuple[ExpectedAlert, ...] = (
    ExpectedAlert(
        "unscheduled_care_with_plan",
        "leo",
        "northshire-health:encounter:ed-26-004417",
        "team:northshire-cs:duty",
    ),
    ExpectedAlert(
        "unscheduled_care_with_plan",
        "leo",
        "northshire-health:encounter:ed-26-004417",
        "practitioner:sam.practitioner@northshire.example",
    ),
    ExpectedAlert(
        "domestic_abuse_to_school",
        "ruby",
        "northshire-police:NP-26-011842:NPP-410977:contact",
        "agency:northshire-primary:designated_safeguarding_lead",
    ),
    ExpectedAlert(
        "domestic_abuse_to_school",
        "oscar",
        "northshire-police:NP-26-011842:NPP-410977:contact",
        "agency:northshire-primary:designated_safeguarding_lead",
    ),
    ExpectedAlert(
        "accumulating_concerns",
        "thomas",
        "northshire-health:flag:sg-flag-7730",
        "team:northshire-cs:front-door",
    ),
    ExpectedAlert(
        "missing_episodes",
        "kayden",
        "northshire-police:NP-26-011790:NPP-410552:contact",
        "team:northshire-cs:duty",
    ),
)
"""The alerts a reader of the scenario expects; ``known_gap`` marks those the hub misses."""
