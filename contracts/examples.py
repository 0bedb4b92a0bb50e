"""Invented, valid example envelopes and identifiers for tests across the project.

Every person here is made up; NHS numbers come from the 999 range, which is never issued.
"""

from __future__ import annotations

import copy
from typing import Any

from contracts.events import CORRECTION_TYPES, EventType
from contracts.identifiers import UPN_CHECK_ALPHABET, nhs_check_digit, upn_check_letter

__all__ = ["example_data", "example_envelope", "valid_nhs_number", "valid_upn"]

_NHS_SEEDS = 900_000
_UPN_SEEDS = 10**9
_EXAMPLE_LA = "938"  # a real LA code, so validators that check the LA list accept it


def valid_nhs_number(seed: int) -> str:
    """Return a valid NHS number in the 999 test range; different seeds give different numbers.

    Seeds run from 0 to 899,999.
    """
    if not 0 <= seed < _NHS_SEEDS:
        raise ValueError(f"seed must be between 0 and {_NHS_SEEDS - 1}")
    prefix, index = divmod(seed, 9)
    stem = f"999{prefix:05d}"
    # Digit 9 has weight 2, so at most one of its ten values makes the check digit impossible.
    ninth = [d for d in "0123456789" if nhs_check_digit(stem + d) is not None][index]
    first_nine = stem + ninth
    return f"{first_nine}{nhs_check_digit(first_nine)}"


def valid_upn(seed: int, *, temporary: bool = False) -> str:
    """Return a valid UPN built from ``seed`` (0 to 999,999,999).

    A temporary UPN ends in a letter instead of a digit.
    """
    if not 0 <= seed < _UPN_SEEDS:
        raise ValueError(f"seed must be between 0 and {_UPN_SEEDS - 1}")
    body = f"{_EXAMPLE_LA}{seed:09d}"
    if temporary:
        body = body[:-1] + UPN_CHECK_ALPHABET[seed % len(UPN_CHECK_ALPHABET)]
    return upn_check_letter(body) + body


_CONCERN = {
    "category": "domestic_abuse",
    "risk_level": "high",
    "summary": "Officers attended a domestic incident at the home; the child was present.",
    "raised_by_role": "attending officer",
}
_INVOLVEMENT = {
    "involvement_type": "child_protection_plan",
    "involvement_id": "CPP-0001",
    "started_on": "2024-01-10",
    "lead_practitioner": {
        "name": "Sam Practitioner",
        "role": "social worker",
        "team": "Northshire Safeguarding Team 2",
        "phone": "01632 960001",
        "email": "sam.practitioner@northshire.example",
    },
    "reason": "Initial child protection conference decision.",
}
_EXAMPLE_DATA: dict[EventType, dict[str, Any]] = {
    EventType.concern_raised: _CONCERN,
    EventType.involvement_started: _INVOLVEMENT,
    EventType.involvement_changed: {**_INVOLVEMENT, "reason": "Lead practitioner changed."},
    EventType.involvement_ended: {
        **_INVOLVEMENT,
        "ended_on": "2024-03-01",
        "reason": "Plan ended at review conference.",
    },
    EventType.contact_recorded: {
        "contact_type": "unscheduled_care_attendance",
        "summary": "Attended the emergency department with a head injury.",
        "location": "Northshire General emergency department",
        "ended_at": "2024-03-04T23:55:00+00:00",
        "details": {"encounter_class": "EMER", "admitted": False, "waiting_minutes": 95},
    },
    EventType.event_corrected: {
        "reason": "Risk level entered wrongly.",
        "corrected_type": "concern.raised",
        "replacement": {**_CONCERN, "risk_level": "medium"},
    },
    EventType.event_retracted: {"reason": "Recorded against the wrong child."},
}


def example_data(event_type: EventType | str) -> dict[str, Any]:
    """Return a valid ``data`` dict for an event type (a fresh copy each call)."""
    return copy.deepcopy(_EXAMPLE_DATA[EventType(event_type)])


def example_envelope(**overrides: Any) -> dict[str, Any]:
    """Return a valid ``concern.raised`` envelope as a JSON-ready dict, with top-level overrides.

    Overriding ``type`` alone also swaps in that type's example ``data`` and, for corrections
    and retractions, a ``supersedes``; pass ``data``/``supersedes`` to choose your own.
    """
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": "northshire-police:evt-0001",
        "source": "urn:agency:northshire-police",
        "type": "concern.raised",
        "time": "2024-03-04T21:40:00+00:00",
        "subject": "NP-PERSON-0001",
        "datacontenttype": "application/json",
        "schemaversion": 1,
        "agency_id": "northshire-police",
        "agency_kind": "police",
        "recorded_at": "2024-03-04T22:05:00+00:00",
        "classification": "official_sensitive",
        "sensitivity": ["domestic_abuse"],
        "lawful_basis": "law_enforcement_sch8",
        "consent_ref": None,
        "supersedes": None,
        "signature": None,
        "key_id": None,
        "person": {
            "identifiers": [{"system": "nhs", "value": valid_nhs_number(0)}],
            "name": {"given": "Ruby", "family": "Example", "aliases": ["Rubes Example"]},
            "birth_date": "2015-06-01",
            "sex": "female",
            "address": {"lines": ["1 Example Street", "Northshire"], "postcode": "ZZ99 3ZZ"},
            "related": [
                {
                    "relationship": "mother",
                    "name": {"given": "Jo", "family": "Example", "aliases": []},
                    "identifiers": [],
                    "birth_date": "1990-02-03",
                }
            ],
        },
        "data": example_data(EventType.concern_raised),
    }
    if overrides.get("type") in EventType.__members__.values():
        event_type = EventType(overrides["type"])
        envelope["data"] = example_data(event_type)
        if event_type in CORRECTION_TYPES:
            envelope["supersedes"] = "northshire-police:evt-0000"
    envelope.update(copy.deepcopy(overrides))
    return envelope
