"""A school safeguarding-record system's CSV export of concerns to ``concern.raised`` envelopes.

Columns: ``concern_id`` (the system's own record id; without it the id is a hash of the row's
date, pupil and summary), ``date``, ``upn``, ``name`` (``Surname, Forename`` or ``Forename
Surname``) or ``forename``/``surname``, ``dob``, ``category``, ``risk_level`` (low, medium,
high, critical; ``medium`` when absent), ``summary`` and ``staff_role``. Categories are the
labels such systems use (``Domestic abuse``, ``Neglect``, ``CSE``...), mapped to the hub's.
Lawful basis: DPA 2018 Sch. 1 para 18 (concerns often carry special-category detail).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters.common import (
    AgencyRef,
    RecordProblem,
    ResultBuilder,
    local_midnight,
    make_envelope,
    parse_date,
    parse_datetime,
    read_csv,
    stable_id,
)
from contracts import EventType, LawfulBasis, SensitivityTag, normalise_upn

__all__ = ["REQUIRED_COLUMNS", "parse_concerns_csv"]

REQUIRED_COLUMNS = {"date", "category", "summary"}
_CATEGORIES = {
    "neglect": "neglect",
    "physical abuse": "physical_abuse",
    "physical": "physical_abuse",
    "sexual abuse": "sexual_abuse",
    "sexual": "sexual_abuse",
    "emotional abuse": "emotional_abuse",
    "emotional": "emotional_abuse",
    "domestic abuse": "domestic_abuse",
    "domestic violence": "domestic_abuse",
    "operation encompass": "domestic_abuse",
    "exploitation": "exploitation",
    "cse": "exploitation",
    "cce": "exploitation",
    "child sexual exploitation": "exploitation",
    "child criminal exploitation": "exploitation",
    "missing": "missing",
    "missing from education": "missing",
    "self-harm": "self_harm",
    "self harm": "self_harm",
    "online safety": "online_harm",
    "online harm": "online_harm",
    "other": "other",
}
_SENSITIVITY = {
    "domestic_abuse": (SensitivityTag.domestic_abuse,),
    "self_harm": (SensitivityTag.mental_health,),
}
_RISKS = ("low", "medium", "high", "critical")
_BASIS = LawfulBasis.safeguarding_sch1_para18


def _name(row: dict[str, str]) -> dict[str, Any] | None:
    given, family = row.get("forename", ""), row.get("surname", "")
    whole = row.get("name", "")
    if not (given and family) and whole:
        if "," in whole:
            family, given = (p.strip() for p in whole.split(",", 1))
        elif " " in whole:
            given, family = whole.rsplit(" ", 1)
    return {"given": given, "family": family} if given and family else None


def _when(text: str) -> datetime:
    if len(text.strip()) > 10:
        return parse_datetime(text, "date")
    day = parse_date(text, "date")
    if day is None:  # pragma: no cover - parse_date raises for a required value
        raise RecordProblem("date", "is missing")
    return local_midnight(day)


def parse_concerns_csv(body: bytes, agency: AgencyRef, now: datetime, out: ResultBuilder) -> None:
    """Map each row to a concern; a bad row is listed and the rest still parse."""
    for number, row in read_csv(body, "safeguarding concerns CSV", REQUIRED_COLUMNS):
        locator = f"row {number}" + (
            f" concern {row['concern_id']}" if row.get("concern_id") else ""
        )
        with out.record(locator):
            when = _when(row.get("date", ""))
            category = _CATEGORIES.get(row.get("category", "").strip().lower())
            if category is None:
                raise RecordProblem("category", "is not a known safeguarding category")
            risk = (row.get("risk_level") or "medium").lower()
            if risk not in _RISKS:
                raise RecordProblem("risk_level", f"must be one of: {', '.join(_RISKS)}")
            identifiers = []
            if row.get("upn"):
                try:
                    identifiers.append({"system": "upn", "value": normalise_upn(row["upn"])})
                except ValueError as exc:
                    raise RecordProblem("upn", str(exc)) from None
            person = {
                "identifiers": identifiers,
                "name": _name(row),
                "birth_date": parse_date(row.get("dob"), "dob", required=False),
            }
            if row.get("concern_id"):
                event_id = stable_id(agency, "concern", row["concern_id"])
            else:
                event_id = stable_id(
                    agency,
                    "concern",
                    when.isoformat(),
                    row.get("upn", ""),
                    row.get("name", ""),
                    row["summary"],
                    opaque=True,
                )
            out.add(
                make_envelope(
                    agency,
                    event_id=event_id,
                    event_type=EventType.concern_raised,
                    time=when,
                    now=now,
                    person=person,
                    data={
                        "category": category,
                        "risk_level": risk,
                        "summary": row["summary"],
                        "raised_by_role": row.get("staff_role") or None,
                    },
                    lawful_basis=_BASIS,
                    sensitivity=_SENSITIVITY.get(category, ()),
                )
            )
