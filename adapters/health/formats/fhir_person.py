"""FHIR R4 Patient to the contract's person, and small helpers for codings and date-times."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from adapters.common import LONDON, local_midnight
from contracts import FHIR_SYSTEMS, IdentifierSystem, normalise_nhs_number

__all__ = ["NHS_SYSTEM", "codes", "fhir_instant", "nhs_number_rejected", "patient_person", "texts"]

NHS_SYSTEM = FHIR_SYSTEMS[IdentifierSystem.nhs]

_SEX = {"male": "male", "female": "female", "unknown": "unknown", "other": "not_specified"}
# HL7 v3 RoleCode codes a Patient.contact.relationship may carry, to the hub's relationships.
_RELATIONSHIP = {
    "MTH": "mother",
    "FTH": "father",
    "NMTH": "mother",
    "NFTH": "father",
    "STPMTH": "carer",
    "STPFTH": "carer",
    "GUARD": "carer",
    "FSTPAR": "carer",
    "SIB": "sibling",
    "BRO": "sibling",
    "SIS": "sibling",
}


def codes(*concepts: Any) -> list[str]:
    """Return every coding code of the given CodeableConcepts/Codings (upper-cased)."""
    found: list[str] = []
    for concept in concepts:
        if concept is None:
            continue
        for coding in getattr(concept, "coding", None) or [concept]:
            code = getattr(coding, "code", None)
            if code:
                found.append(str(code).upper())
    return found


def texts(concept: Any) -> str | None:
    """Return a CodeableConcept's text, else its first coding's display."""
    if concept is None:
        return None
    if getattr(concept, "text", None):
        return str(concept.text)
    for coding in getattr(concept, "coding", None) or []:
        if coding.display:
            return str(coding.display)
    return None


def fhir_instant(value: datetime | date | None) -> datetime | None:
    """Turn a FHIR date/dateTime into an aware datetime (London time when no offset is given)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=LONDON)
    return local_midnight(value)


def _name(names: list[Any]) -> dict[str, Any] | None:
    usable = [n for n in names if n.family and n.given]
    if not usable:
        return None
    official = next((n for n in usable if n.use == "official"), usable[0])
    aliases = [
        f"{' '.join(n.given)} {n.family}"
        for n in usable
        if n is not official and (n.given, n.family) != (official.given, official.family)
    ]
    return {"given": official.given[0], "family": official.family, "aliases": aliases}


def _address(addresses: list[Any]) -> dict[str, Any] | None:
    current = [a for a in addresses if a.use in (None, "home") and not (a.period and a.period.end)]
    for address in current or addresses:
        lines = [*(address.line or []), *(p for p in (address.city, address.district) if p)]
        if lines or address.postalCode:
            return {"lines": lines, "postcode": address.postalCode}
    return None


def _related(contacts: list[Any]) -> list[dict[str, Any]]:
    related = []
    for contact in contacts:
        relationship = next(
            (
                _RELATIONSHIP[c]
                for r in contact.relationship or []
                for c in codes(r)
                if c in _RELATIONSHIP
            ),
            None,
        )
        if relationship is None:
            continue
        name = None
        if contact.name and contact.name.family and contact.name.given:
            name = {"given": contact.name.given[0], "family": contact.name.family}
        related.append({"relationship": relationship, "name": name})
    return related


def patient_person(patient: Any) -> dict[str, Any]:
    """Map a fhir.resources R4B Patient to a contract person dict.

    Only the NHS number is taken as an identifier; an NHS number that fails its check digit is
    left out (the caller decides whether to warn). Contacts coded with an HL7 v3 RoleCode for
    mother, father, guardian or sibling become related people.
    """
    identifiers = []
    for identifier in patient.identifier or []:
        if identifier.system == NHS_SYSTEM and identifier.value:
            try:
                identifiers.append(
                    {"system": "nhs", "value": normalise_nhs_number(identifier.value)}
                )
            except ValueError:
                continue
    return {
        "identifiers": identifiers,
        "name": _name(patient.name or []),
        "birth_date": patient.birthDate,
        "sex": _SEX.get(patient.gender or "unknown", "unknown"),
        "address": _address(patient.address or []),
        "related": _related(patient.contact or []),
    }


def nhs_number_rejected(patient: Any) -> bool:
    """Say whether the Patient carries an NHS-number identifier that fails validation."""
    return any(
        i.system == NHS_SYSTEM and i.value and not _valid(i.value) for i in patient.identifier or []
    )


def _valid(value: str) -> bool:
    try:
        normalise_nhs_number(value)
    except ValueError:
        return False
    return True
