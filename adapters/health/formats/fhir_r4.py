"""FHIR R4 JSON Bundle (NHS UK Core shapes) to contact, concern and involvement envelopes.

Mappings (each documented in adapters/README.md):

- ``Encounter`` with class ``EMER`` (emergency department) or ``AMB`` (urgent care, walk-in)
  -> ``contact.recorded`` / ``unscheduled_care_attendance``: ``period`` gives the time and
  ``ended_at``, ``reasonCode`` the summary, ``serviceProvider`` the location.
- ``Flag`` whose ``code`` carries a coding in ``CONCERN_SYSTEM`` (codes are the hub's concern
  categories) -> ``concern.raised``; risk from the ``RISK_EXTENSION`` extension (default
  ``medium``), summary from ``code.text``, role from the author ``PractitionerRole``.
  A Flag is what a clinician uses to make a safeguarding concern visible on the record; other
  flags (allergies, access needs) are not concerns and are ignored.
- ``EpisodeOfCare`` typed health visiting, school nursing or CAMHS -> ``involvement.started``
  (and ``involvement.ended`` once ``period.end`` is known), lead from ``careManager``.

Every event is tagged ``health``; ``meta.security`` labels from HL7 v3 ActCode add
``mental_health`` (MH, PSY), ``sexual_health`` (SEX, STD, HIV) or ``domestic_abuse`` (SDV).
Lawful basis: DPA 2018 Sch. 1 para 18 (special-category health data shared to safeguard a child).
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from adapters.common import (
    LONDON,
    AgencyRef,
    RecordProblem,
    ResultBuilder,
    UnreadableFile,
    make_envelope,
    read_json,
    stable_id,
)
from adapters.health.formats.fhir_person import (
    codes,
    fhir_instant,
    nhs_number_rejected,
    patient_person,
    texts,
)
from contracts import EventType, LawfulBasis, SensitivityTag

__all__ = ["CONCERN_SYSTEM", "INVOLVEMENT_SYSTEM", "RISK_EXTENSION", "parse_bundle"]

CONCERN_SYSTEM = "https://fhir.safeguarding-hub.example/CodeSystem/concern-category"
RISK_EXTENSION = "https://fhir.safeguarding-hub.example/StructureDefinition/risk-level"
INVOLVEMENT_SYSTEM = "https://fhir.safeguarding-hub.example/CodeSystem/involvement-type"

_MAPPED = {
    "Patient",
    "Encounter",
    "Flag",
    "EpisodeOfCare",
    "Organization",
    "Practitioner",
    "PractitionerRole",
}
_UNSCHEDULED = {"EMER": "Emergency department attendance", "AMB": "Urgent care attendance"}
_SECURITY = {
    "MH": SensitivityTag.mental_health,
    "PSY": SensitivityTag.mental_health,
    "SEX": SensitivityTag.sexual_health,
    "STD": SensitivityTag.sexual_health,
    "HIV": SensitivityTag.sexual_health,
    "SDV": SensitivityTag.domestic_abuse,
}
_EPISODE_WORDS = {
    "health visit": "health_visiting",
    "school nurs": "school_nursing",
    "camhs": "camhs",
    "child and adolescent mental health": "camhs",
}
_BASIS = LawfulBasis.safeguarding_sch1_para18


class _Bundle:
    """The parsed resources of a bundle, indexed by fullUrl and ``Type/id`` for references."""

    def __init__(self) -> None:
        self.by_ref: dict[str, Any] = {}
        self.people: dict[int, dict[str, Any]] = {}

    def add(self, full_url: str | None, resource: Any) -> None:
        if full_url:
            self.by_ref[full_url] = resource
        if resource.id:
            self.by_ref[f"{resource.get_resource_type()}/{resource.id}"] = resource

    def resolve(self, reference: Any, kind: str) -> Any:
        ref = getattr(reference, "reference", None)
        found = self.by_ref.get(ref) if ref else None
        if found is None and ref and "/" in ref:
            found = self.by_ref.get("/".join(ref.rstrip("/").split("/")[-2:]))
        return found if found is not None and found.get_resource_type() == kind else None

    def name_of(self, reference: Any, kind: str) -> str | None:
        found = self.resolve(reference, kind)
        if found is not None and getattr(found, "name", None):
            return str(found.name)
        return getattr(reference, "display", None)


def parse_bundle(body: bytes, agency: AgencyRef, now: Any, out: ResultBuilder) -> None:
    """Map every usable resource of a FHIR R4 Bundle, noting each bad one in ``out``."""
    raw = read_json(body, "FHIR file")
    if not isinstance(raw, dict) or raw.get("resourceType") != "Bundle":
        found = raw.get("resourceType") if isinstance(raw, dict) else type(raw).__name__
        raise UnreadableFile(f"FHIR file must be a Bundle resource, not {found!s}")
    entries = raw.get("entry") or []
    if not isinstance(entries, list):
        raise UnreadableFile("FHIR Bundle 'entry' must be a list")

    bundle = _Bundle()
    parsed: list[tuple[str, Any]] = []
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        kind = kind if isinstance(kind, str) else None
        rid = resource.get("id") if isinstance(resource, dict) else None
        locator = f"entry[{index}]" + (f" {kind}/{rid}" if kind and rid else "")
        if kind not in _MAPPED:
            if kind is None:
                out.reject(locator, "resource", "entry has no resource with a resourceType")
            continue
        with out.record(locator):
            model = _validate(kind, resource)
            full_url = entry.get("fullUrl")
            bundle.add(full_url if isinstance(full_url, str) else None, model)
            parsed.append((locator, model))
            if kind == "Patient" and nhs_number_rejected(model):
                out.warn(locator, "identifier", "NHS number fails the check-digit test; left out")

    mappers = {"Encounter": _encounter, "Flag": _flag, "EpisodeOfCare": _episode}
    for locator, model in parsed:
        mapper = mappers.get(model.get_resource_type())
        if mapper is not None:
            with out.record(locator):
                mapper(model, bundle, agency, now, out, locator)


def _validate(kind: str, resource: dict[str, Any]) -> Any:
    try:
        return get_fhir_model_class(kind).model_validate(resource)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or kind
        raise RecordProblem(field, f"not valid FHIR R4: {first['msg']}") from None


def _subject(resource: Any, field: str, bundle: _Bundle) -> tuple[Any, dict[str, Any]]:
    patient = bundle.resolve(getattr(resource, field), "Patient")
    if patient is None:
        raise RecordProblem(field, "does not refer to a Patient in this Bundle")
    return patient, patient_person(patient)


def _sensitivity(resource: Any, *extra: SensitivityTag) -> tuple[SensitivityTag, ...]:
    labels = codes(*((resource.meta.security or []) if resource.meta else []))
    return (SensitivityTag.health, *extra, *(_SECURITY[c] for c in labels if c in _SECURITY))


def _source_key(resource: Any, kind: str) -> str:
    if not resource.id:
        raise RecordProblem("id", f"{kind} has no id, so re-sending it could not be recognised")
    return f"{kind.lower()}:{resource.id}"


def _encounter(
    enc: Any, bundle: _Bundle, agency: AgencyRef, now: Any, out: ResultBuilder, locator: str
) -> None:
    klass = (enc.class_fhir.code or "").upper()
    if klass not in _UNSCHEDULED:
        out.warn(locator, "class", "only EMER and AMB encounters are shared; encounter skipped")
        return
    if enc.status in ("planned", "cancelled", "entered-in-error"):
        out.warn(locator, "status", f"{enc.status} encounter skipped")
        return
    start = fhir_instant(enc.period.start if enc.period else None)
    if start is None:
        raise RecordProblem("period.start", "is missing")
    patient, person = _subject(enc, "subject", bundle)
    reason = "; ".join(t for t in (texts(r) for r in enc.reasonCode or []) if t)
    details: dict[str, Any] = {
        "encounter_class": klass,
        "encounter_status": enc.status,
        "fhir_id": f"Encounter/{enc.id}",
    }
    if enc.hospitalization and (disposal := texts(enc.hospitalization.dischargeDisposition)):
        details["discharge"] = disposal
    out.add(
        make_envelope(
            agency,
            event_id=stable_id(agency, _source_key(enc, "Encounter")),
            event_type=EventType.contact_recorded,
            time=start,
            now=now,
            person=person,
            subject=f"Patient/{patient.id}" if patient.id else None,
            data={
                "contact_type": "unscheduled_care_attendance",
                "summary": f"{_UNSCHEDULED[klass]}: {reason or 'reason not recorded'}",
                "location": bundle.name_of(enc.serviceProvider, "Organization"),
                "ended_at": fhir_instant(enc.period.end),
                "details": details,
            },
            lawful_basis=_BASIS,
            sensitivity=_sensitivity(enc),
        )
    )


def _flag(
    flag: Any, bundle: _Bundle, agency: AgencyRef, now: Any, out: ResultBuilder, locator: str
) -> None:
    category = next(
        (c.code for c in flag.code.coding or [] if c.system == CONCERN_SYSTEM and c.code), None
    )
    if category is None:
        return  # not a safeguarding flag
    if flag.status == "entered-in-error":
        out.warn(locator, "status", "entered-in-error flag skipped")
        return
    start = fhir_instant(flag.period.start if flag.period else None)
    if start is None:
        raise RecordProblem("period.start", "is missing")
    if not flag.code.text:
        raise RecordProblem("code.text", "is missing; a concern needs a summary")
    risk = next((e.valueCode for e in flag.extension or [] if e.url == RISK_EXTENSION), "medium")
    role = bundle.resolve(flag.author, "PractitionerRole")
    patient, person = _subject(flag, "subject", bundle)
    out.add(
        make_envelope(
            agency,
            event_id=stable_id(agency, _source_key(flag, "Flag")),
            event_type=EventType.concern_raised,
            time=start,
            now=now,
            person=person,
            subject=f"Patient/{patient.id}" if patient.id else None,
            data={
                "category": category,
                "risk_level": risk,
                "summary": flag.code.text,
                "raised_by_role": texts((role.code or [None])[0]) if role is not None else None,
            },
            lawful_basis=_BASIS,
            sensitivity=_sensitivity(flag),
        )
    )


def _episode_type(episode: Any) -> str | None:
    for concept in episode.type or []:
        for coding in concept.coding or []:
            if coding.system == INVOLVEMENT_SYSTEM and coding.code:
                return str(coding.code)
        label = (texts(concept) or "").lower()
        for words, kind in _EPISODE_WORDS.items():
            if words in label:
                return kind
    return None


def _lead(episode: Any, bundle: _Bundle) -> dict[str, Any] | None:
    manager = episode.careManager or None
    practitioner = bundle.resolve(manager, "Practitioner") if manager else None
    name = None
    phone = email = None
    if practitioner is not None:
        named = next((n for n in practitioner.name or [] if n.text or n.family), None)
        if named is not None:
            name = named.text or " ".join([*(named.given or []), named.family or ""]).strip()
        for telecom in practitioner.telecom or []:
            if telecom.system == "phone" and phone is None:
                phone = telecom.value
            if telecom.system == "email" and email is None:
                email = telecom.value
    name = name or getattr(manager, "display", None)
    if not name:
        return None
    return {
        "name": name,
        "role": texts((episode.type or [None])[0]),
        "team": bundle.name_of(episode.managingOrganization, "Organization"),
        "phone": phone,
        "email": email,
    }


def _episode(
    episode: Any, bundle: _Bundle, agency: AgencyRef, now: Any, out: ResultBuilder, locator: str
) -> None:
    kind = _episode_type(episode)
    if kind is None:
        raise RecordProblem("type", "is not health visiting, school nursing or CAMHS")
    if episode.status in ("planned", "waitlist", "cancelled", "entered-in-error"):
        out.warn(locator, "status", f"{episode.status} episode of care skipped")
        return
    period = episode.period
    if period is None or period.start is None:
        raise RecordProblem("period.start", "is missing")
    patient, person = _subject(episode, "patient", bundle)
    extra = (SensitivityTag.mental_health,) if kind == "camhs" else ()
    key = _source_key(episode, "EpisodeOfCare")
    data = {
        "involvement_type": kind,
        "involvement_id": f"EpisodeOfCare/{episode.id}",
        "started_on": fhir_instant(period.start).astimezone(LONDON).date(),
        "lead_practitioner": _lead(episode, bundle),
        "reason": texts((episode.type or [None])[0]),
    }
    common = {
        "now": now,
        "person": person,
        "subject": f"Patient/{patient.id}" if patient.id else None,
        "lawful_basis": _BASIS,
        "sensitivity": _sensitivity(episode, *extra),
    }
    out.add(
        make_envelope(
            agency,
            event_id=stable_id(agency, key, "started"),
            event_type=EventType.involvement_started,
            time=fhir_instant(period.start),
            data=data,
            **common,
        )
    )
    if period.end is not None:
        ended = {**data, "ended_on": fhir_instant(period.end).astimezone(LONDON).date()}
        out.add(
            make_envelope(
                agency,
                event_id=stable_id(agency, key, "ended"),
                event_type=EventType.involvement_ended,
                time=fhir_instant(period.end),
                data=ended,
                **common,
            )
        )
    elif episode.status == "finished":
        out.warn(locator, "period.end", "finished episode has no end date; end not sent")
