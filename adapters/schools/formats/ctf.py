"""DfE Common Transfer File (CTF) XML to school absence and exclusion contact envelopes.

Accepts both layouts schools' systems emit: names flat on ``Pupil`` (``Surname``, ``Forename``,
``Sex``) or inside ``BasicDetails`` (``LegalSurname``, ``LegalForename``, ``PreferredForename``,
``Gender``); addresses as ``BS7666Address`` parts or ``AddressLines``. The hub has no
"demographics only" event, so a pupil without absences or exclusions sends nothing: the
pupil's demographics (UPN, names, DOB, sex, address, parent/carer contacts) travel in the
``person`` of that pupil's attendance and exclusion events. Each attendance ``YearData`` with
absent sessions becomes one ``school_absence`` contact (a yearly summary, keyed by year and
sessions possible so a later, fuller summary is a new event); each ``Exclusion`` becomes a
``school_exclusion`` contact. Lawful basis: UK GDPR Art. 6(1)(e), the school's duties under
Education Act 2002 s. 175 (s. 157 for academies) to safeguard pupils.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from xml.etree.ElementTree import Element

from adapters.common import (
    AgencyRef,
    RecordProblem,
    ResultBuilder,
    UnreadableFile,
    local_midnight,
    make_envelope,
    parse_date,
    read_xml,
    stable_id,
)
from contracts import EventType, LawfulBasis, normalise_upn

__all__ = ["parse_ctf"]

_SEX = {
    "M": "male",
    "F": "female",
    "U": "unknown",
    "X": "not_specified",
    "1": "male",
    "2": "female",
}
# CBDS relationship-to-pupil codes that name a parent, carer or sibling.
_RELATION = {
    "PAR": "carer",
    "CAR": "carer",
    "STP": "carer",
    "FOS": "carer",
    "SIB": "sibling",
    "GRP": "other",
    "FAM": "other",
    "REL": "other",
}
_BS7666 = ("SAON", "PAON", "Street", "Locality", "Town", "AdministrativeArea", "PostTown")
_BASIS = LawfulBasis.public_task


def _text(element: Element | None, *tags: str) -> str | None:
    """Return the first non-empty text among ``tags`` (paths relative to ``element``)."""
    if element is None:
        return None
    for tag in tags:
        found = element.find(tag)
        if found is not None and (found.text or "").strip():
            return (found.text or "").strip()
    return None


def _address(pupil: Element) -> dict[str, Any] | None:
    block = pupil.find("Address")
    if block is None:
        return None
    lines: list[str] = []
    bs7666 = block.find("BS7666Address")
    if bs7666 is not None:
        paon, street = _text(bs7666, "PAON"), _text(bs7666, "Street")
        parts = [
            _text(bs7666, "SAON"),
            f"{paon} {street}" if paon and street else paon or street,
            *(_text(bs7666, t) for t in _BS7666[3:]),
        ]
        lines = [p for p in parts if p]
    container = block.find("AddressLines")
    if not lines and container is not None:
        lines = [(e.text or "").strip() for e in container if (e.text or "").strip()]
    postcode = _text(block, "PostCode", "BS7666Address/PostCode")
    return {"lines": lines, "postcode": postcode} if lines or postcode else None


def _related(pupil: Element) -> list[dict[str, Any]]:
    related = []
    for contact in pupil.findall("Contacts/Contact"):
        code = (_text(contact, "Relationship") or "").upper()
        relationship = _RELATION.get(code)
        if relationship is None:
            continue
        gender = (_text(contact, "Gender", "Sex") or "").upper()
        if code == "PAR" and gender in ("F", "M"):
            relationship = "mother" if gender == "F" else "father"
        given = _text(contact, "Forename", "LegalForename", "BasicDetails/LegalForename")
        family = _text(contact, "Surname", "LegalSurname", "BasicDetails/LegalSurname")
        related.append(
            {
                "relationship": relationship,
                "name": {"given": given, "family": family} if given and family else None,
            }
        )
    return related


def _person(pupil: Element, upn: str) -> dict[str, Any]:
    given = _text(pupil, "Forename", "BasicDetails/LegalForename")
    family = _text(pupil, "Surname", "BasicDetails/LegalSurname")
    aliases = []
    preferred = _text(pupil, "PreferredForename", "BasicDetails/PreferredForename")
    preferred_family = _text(pupil, "PreferredSurname", "BasicDetails/PreferredSurname") or family
    if preferred and (preferred, preferred_family) != (given, family):
        aliases.append(f"{preferred} {preferred_family}")
    if former := _text(pupil, "FormerSurname", "BasicDetails/FormerSurname"):
        aliases.append(f"{given} {former}")
    sex = (_text(pupil, "Sex", "Gender", "BasicDetails/Gender", "BasicDetails/Sex") or "").upper()
    if sex and sex not in _SEX:
        raise RecordProblem("Sex", "must be M, F, U or X")
    return {
        "identifiers": [{"system": "upn", "value": upn}],
        "name": {"given": given, "family": family, "aliases": aliases}
        if given and family
        else None,
        "birth_date": parse_date(_text(pupil, "DOB", "BasicDetails/DOB"), "DOB", required=False),
        "sex": _SEX.get(sex, "unknown"),
        "address": _address(pupil),
        "related": _related(pupil),
    }


def _int(element: Element, tag: str) -> int:
    value = _text(element, tag)
    if value is None:
        return 0
    if not value.isdigit():
        raise RecordProblem(tag, "must be a whole number")
    return int(value)


def _absences(
    pupil: Element,
    upn: str,
    person: dict[str, Any],
    school: str,
    agency: AgencyRef,
    now: datetime,
    out: ResultBuilder,
    locator: str,
) -> None:
    for n, year in enumerate(pupil.findall("Attendance/YearData")):
        where = f"{locator} Attendance/YearData[{n}]"
        with out.record(where):
            possible = _int(year, "SessionsPossible")
            authorised, unauthorised = (
                _int(year, "SessionsAuthorised"),
                _int(year, "SessionsUnauthorised"),
            )
            if authorised + unauthorised == 0:
                continue
            label = _text(year, "Year")
            if label is None or not label.isdigit():
                raise RecordProblem("Year", "is missing or not a year")
            start = parse_date(
                _text(year, "AttendanceStartDate"), "AttendanceStartDate", required=False
            ) or parse_date(f"{label}-09-01", "Year")
            out.add(
                make_envelope(
                    agency,
                    event_id=stable_id(
                        agency, "ctf", upn, "attendance", label, str(possible), opaque=True
                    ),
                    event_type=EventType.contact_recorded,
                    time=local_midnight(start),
                    now=now,
                    person=person,
                    data={
                        "contact_type": "school_absence",
                        "summary": (
                            f"Attendance for the {label}/{int(label) + 1 - 2000:02d} school "
                            f"year: {authorised} authorised and {unauthorised} unauthorised "
                            f"absent sessions out of {possible}."
                        ),
                        "location": school,
                        "details": {
                            "year": int(label),
                            "sessions_possible": possible,
                            "sessions_authorised_absence": authorised,
                            "sessions_unauthorised_absence": unauthorised,
                        },
                    },
                    lawful_basis=_BASIS,
                )
            )


def _exclusions(
    pupil: Element,
    upn: str,
    person: dict[str, Any],
    school: str,
    agency: AgencyRef,
    now: datetime,
    out: ResultBuilder,
    locator: str,
) -> None:
    for n, exclusion in enumerate(pupil.findall("Exclusions/Exclusion")):
        where = f"{locator} Exclusions/Exclusion[{n}]"
        with out.record(where):
            start = parse_date(_text(exclusion, "StartDate"), "StartDate")
            category = _text(exclusion, "Category") or "unknown"
            reason = _text(exclusion, "Reason")
            sessions = _text(exclusion, "Sessions", "ActualSessions")
            kind = {"PERM": "permanent exclusion", "FIXD": "suspension"}.get(
                category.upper(), "exclusion"
            )
            details: dict[str, Any] = {"category": category, "reason_code": reason}
            if sessions and sessions.isdigit():
                details["sessions"] = int(sessions)
            out.add(
                make_envelope(
                    agency,
                    event_id=stable_id(
                        agency, "ctf", upn, "exclusion", start.isoformat(), category, opaque=True
                    ),
                    event_type=EventType.contact_recorded,
                    time=local_midnight(start),
                    now=now,
                    person=person,
                    data={
                        "contact_type": "school_exclusion",
                        "summary": f"School {kind}"
                        + (f" (reason code {reason})." if reason else "."),
                        "location": school,
                        "details": details,
                    },
                    lawful_basis=_BASIS,
                )
            )


def parse_ctf(body: bytes, agency: AgencyRef, now: datetime, out: ResultBuilder) -> None:
    """Map each pupil's absences and exclusions; a pupil with a bad UPN or DOB is rejected."""
    root = read_xml(body, "CTF file", "CTfile")
    pupils = root.find("CTFpupilData")
    if pupils is None:
        raise UnreadableFile("CTF file has no <CTFpupilData> element")
    source = root.find("Header/SourceSchool")
    school = _text(source, "SchoolName") or (
        f"school {_text(source, 'LEA')}/{_text(source, 'Estab')}" if source is not None else None
    )
    for index, pupil in enumerate(pupils.findall("Pupil")):
        locator = f"Pupil[{index}]"
        with out.record(locator):
            try:
                upn = normalise_upn(_text(pupil, "UPN") or "")
            except ValueError as exc:
                raise RecordProblem("UPN", str(exc)) from None
            person = _person(pupil, upn)
            _absences(pupil, upn, person, school, agency, now, out, locator)
            _exclusions(pupil, upn, person, school, agency, now, out, locator)
