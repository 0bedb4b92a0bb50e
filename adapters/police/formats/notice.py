"""A public protection notice, whatever its file format, and its mapping to hub envelopes.

For each child in a notice (role child present, child in household or missing person; or a
victim or witness under 18 on the day) the adapter sends a ``contact.recorded``
(``police_incident``, or ``missing_episode`` for a missing child) and, for domestic abuse and
exploitation, a ``concern.raised``. The adults become the child's related people: suspects as
``alleged_perpetrator``, victims and other household adults as ``household_member``; witnesses
who are adults are left out. Children who are suspects are not the subject of these events.

Risk: the stated grade (standard / medium / high; ``low`` accepted for missing episodes), else a
DASH tick count (14+ high, 10-13 medium, fewer standard). Police grades map to the contract's
risk levels as standard -> low, medium -> medium, high -> high.
Lawful basis: DPA 2018 Part 3 s. 35 and Sch. 8 (law-enforcement processing to safeguard children).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from adapters.common import (
    AgencyRef,
    RecordProblem,
    ResultBuilder,
    make_envelope,
    parse_date,
    stable_id,
)
from contracts import EventType, LawfulBasis, SensitivityTag, normalise_nhs_number

__all__ = ["INCIDENT_TYPES", "ROLES", "Notice", "NoticePerson", "add_notice", "person_from"]

# incident type -> (label, contact type, concern category or None, sensitivity)
INCIDENT_TYPES: dict[str, tuple[str, str, str | None, tuple[SensitivityTag, ...]]] = {
    "domestic_abuse": (
        "Domestic abuse incident",
        "police_incident",
        "domestic_abuse",
        (SensitivityTag.domestic_abuse,),
    ),
    "missing_child": ("Missing child", "missing_episode", None, ()),
    "exploitation": (
        "Child exploitation",
        "police_incident",
        "exploitation",
        (SensitivityTag.criminal_intelligence,),
    ),
    "concern_for_welfare": ("Concern for welfare", "police_incident", None, ()),
    "other": ("Police incident", "police_incident", None, ()),
}
_TYPE_ALIASES = {
    "domestic": "domestic_abuse",
    "da": "domestic_abuse",
    "domestic_incident": "domestic_abuse",
    "missing": "missing_child",
    "missing_person": "missing_child",
    "cse": "exploitation",
    "cce": "exploitation",
    "county_lines": "exploitation",
    "child_exploitation": "exploitation",
    "welfare": "concern_for_welfare",
}
ROLES = ("victim", "suspect", "child_present", "child_in_household", "missing_person", "witness")
_CHILD_ROLES = {"child_present", "child_in_household", "missing_person"}
_ROLE_LABELS = {
    "victim": "a victim",
    "witness": "a witness",
    "child_present": "present",
    "child_in_household": "living in the household",
    "missing_person": "the missing person",
}
_GRADES = {"standard": "low", "low": "low", "medium": "medium", "high": "high"}
_SEX = {
    "m": "male",
    "male": "male",
    "f": "female",
    "female": "female",
    "u": "unknown",
    "unknown": "unknown",
    "x": "not_specified",
}
_BASIS = LawfulBasis.law_enforcement_sch8


def _key(text: str) -> str:
    return "_".join(text.strip().lower().replace("-", " ").split())


@dataclass(slots=True)
class NoticePerson:
    """One person named in a notice, with where to find them in the file."""

    locator: str
    ref: str | None
    role: str
    person: dict[str, Any]


@dataclass(slots=True)
class Notice:
    """One incident notice: what happened, when, where, how risky, and who was involved."""

    locator: str
    ref: str
    incident_type: str
    occurred_at: datetime
    location: str | None
    grade: str
    dash_ticks: int | None
    summary: str | None
    officer_role: str | None
    persons: list[NoticePerson] = field(default_factory=list)


def incident_type(text: str | None) -> str:
    """Normalise an incident type, or raise RecordProblem."""
    key = _key(text or "")
    key = _TYPE_ALIASES.get(key, key)
    if key not in INCIDENT_TYPES:
        raise RecordProblem("incident_type", f"must be one of: {', '.join(INCIDENT_TYPES)}")
    return key


def grade(risk_level: str | None, dash_ticks: Any) -> tuple[str, int | None]:
    """Return the police grade and DASH tick count from whichever the notice gives."""
    ticks: int | None = None
    if dash_ticks not in (None, ""):
        try:
            ticks = int(dash_ticks)
        except (TypeError, ValueError):
            raise RecordProblem("dash_ticks", "must be a whole number from 0 to 27") from None
        if not 0 <= ticks <= 27:
            raise RecordProblem("dash_ticks", "must be a whole number from 0 to 27")
    level = _key(risk_level or "")
    if level:
        if level not in _GRADES:
            raise RecordProblem("risk_level", "must be standard, medium or high")
        return level, ticks
    if ticks is None:
        raise RecordProblem("risk_level", "is missing, and no dash_ticks to grade from")
    return ("high" if ticks >= 14 else "medium" if ticks >= 10 else "standard"), ticks


def person_from(
    locator: str, fields: dict[str, Any], address: dict[str, Any] | None
) -> NoticePerson:
    """Build a notice person from flat fields (``person_ref``, ``role``, names, DOB, sex...)."""
    role = _key(fields.get("role") or "")
    if role not in ROLES:
        raise RecordProblem("role", f"must be one of: {', '.join(ROLES)}")
    ref = (fields.get("person_ref") or "").strip() or None
    identifiers = [{"system": "police", "value": ref}] if ref else []
    if nhs := (fields.get("nhs_number") or "").strip():
        try:
            identifiers.append({"system": "nhs", "value": normalise_nhs_number(nhs)})
        except ValueError as exc:
            raise RecordProblem("nhs_number", str(exc)) from None
    given, family = (fields.get("forename") or "").strip(), (fields.get("surname") or "").strip()
    sex = _SEX.get((fields.get("sex") or "").strip().lower())
    if fields.get("sex") and sex is None:
        raise RecordProblem("sex", "must be M, F, U or X")
    return NoticePerson(
        locator=locator,
        ref=ref,
        role=role,
        person={
            "identifiers": identifiers,
            "name": {"given": given, "family": family} if given and family else None,
            "birth_date": parse_date(fields.get("date_of_birth"), "date_of_birth", required=False),
            "sex": sex or "unknown",
            "address": address,
        },
    )


def _age_on(born: date | None, day: date) -> int | None:
    if born is None:
        return None
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def _is_child(person: NoticePerson, day: date) -> bool:
    if person.role in _CHILD_ROLES:
        return True
    age = _age_on(person.person["birth_date"], day)
    return person.role in ("victim", "witness") and age is not None and age < 18


def _related(child: NoticePerson, notice: Notice, day: date) -> list[dict[str, Any]]:
    related = []
    for other in notice.persons:
        if other is child or _is_child(other, day) or other.role == "witness":
            continue
        related.append(
            {
                "relationship": "alleged_perpetrator"
                if other.role == "suspect"
                else "household_member",
                "name": other.person["name"],
                "identifiers": other.person["identifiers"][:1],
                "birth_date": other.person["birth_date"],
            }
        )
    return related


def add_notice(notice: Notice, agency: AgencyRef, now: datetime, out: ResultBuilder) -> None:
    """Send the events for every child in ``notice``; problems go to ``out`` per child."""
    label, contact_type, category, tags = INCIDENT_TYPES[notice.incident_type]
    day = notice.occurred_at.date()
    children = [p for p in notice.persons if _is_child(p, day)]
    if not children:
        out.warn(notice.locator, "persons", "notice names no child; nothing sent")
        return
    risk = _GRADES[notice.grade]
    for child in children:
        with out.record(child.locator):
            related = _related(child, notice, day)
            # A notice naming an alleged perpetrator is third-party information about them,
            # not criminal intelligence: tagging it so would hide every domestic-abuse notice
            # from children's social care and from the school's DSL (Operation Encompass).
            # Intelligence-led incident types carry that tag themselves (INCIDENT_TYPES).
            sensitivity = (*tags, *((SensitivityTag.third_party,) if related else ()))
            who = child.ref or "|".join(
                str(v) for v in (child.person["name"], child.person["birth_date"])
            )
            opaque = child.ref is None
            person = {**child.person, "related": related}
            summary = f"{label}; the child was {_ROLE_LABELS[child.role]}."
            if notice.summary:
                summary = f"{summary} {notice.summary}"
            details: dict[str, Any] = {
                "incident_ref": notice.ref,
                "incident_type": notice.incident_type,
                "role": child.role,
                "police_risk_grade": notice.grade,
            }
            if notice.dash_ticks is not None:
                details["dash_ticks"] = notice.dash_ticks
            common = {
                "time": notice.occurred_at,
                "now": now,
                "person": person,
                "subject": child.ref,
                "lawful_basis": _BASIS,
                "sensitivity": sensitivity,
            }
            contact = make_envelope(
                agency,
                event_id=stable_id(agency, notice.ref, who, "contact", opaque=opaque),
                event_type=EventType.contact_recorded,
                data={
                    "contact_type": contact_type,
                    "summary": summary,
                    "location": notice.location,
                    "details": details,
                },
                **common,
            )
            concern = None
            if category is not None:
                concern = make_envelope(
                    agency,
                    event_id=stable_id(agency, notice.ref, who, "concern", opaque=opaque),
                    event_type=EventType.concern_raised,
                    data={
                        "category": category,
                        "risk_level": risk,
                        "summary": summary,
                        "raised_by_role": notice.officer_role or "police officer",
                    },
                    **common,
                )
            out.add(contact)
            if concern is not None:
                out.add(concern)
