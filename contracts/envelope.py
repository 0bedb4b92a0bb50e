"""The envelope every event travels in: CloudEvents 1.0 attributes plus the hub's extensions.

``parse_envelope`` is the one way in from the wire: it upcasts old versions, validates, and
raises ContractValidationError whose messages never carry the submitted values.
"""

from __future__ import annotations

import json
from datetime import date, timedelta, timezone
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from contracts._base import Code, ContractModel
from contracts.errors import ContractValidationError
from contracts.events import (
    CORRECTION_TYPES,
    EVENT_FAMILIES,
    ContactRecorded,
    EventFamily,
    EventType,
    Payload,
    family_of,
    validate_payload,
)
from contracts.person import Person
from contracts.versions import CURRENT_SCHEMA_VERSION, upcast

__all__ = [
    "AgencyKind",
    "Classification",
    "Envelope",
    "LawfulBasis",
    "SensitivityTag",
    "parse_envelope",
]

EventId = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$"
    ),
]
# Characters RFC 3986 allows in a URI-reference (no spaces, no control characters).
UriReference = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=256,
        pattern=r"^[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+$",
    ),
]
Opaque = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Signature = Annotated[
    str, StringConstraints(min_length=1, max_length=4096, pattern=r"^[A-Za-z0-9+/=_.:-]+$")
]
AgencyId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{2,64}$")]

_LATEST_OFFSET = timezone(timedelta(hours=14))  # the earth's most advanced time zone


class AgencyKind(StrEnum):
    """The kind of agency that sent an event."""

    police = "police"
    health = "health"
    schools = "schools"
    childrens_services = "childrens_services"


class Classification(StrEnum):
    """Government Security Classification marking of the event."""

    official = "official"
    official_sensitive = "official_sensitive"


class SensitivityTag(StrEnum):
    """Kinds of information in an event that sharing rules treat with extra care."""

    health = "health"
    mental_health = "mental_health"
    sexual_health = "sexual_health"
    criminal_intelligence = "criminal_intelligence"
    domestic_abuse = "domestic_abuse"
    third_party = "third_party"


class LawfulBasis(StrEnum):
    """The legal ground on which the sender shares the event with the hub."""

    public_task = "public_task"
    """UK GDPR Art. 6(1)(e): a task in the public interest or official authority, e.g. a local
    authority's duties under the Children Act 1989 ss. 17 and 47."""
    legal_obligation = "legal_obligation"
    """UK GDPR Art. 6(1)(c): a statute requires the sharing, e.g. an Operation Encompass notice."""
    vital_interests = "vital_interests"
    """UK GDPR Art. 6(1)(d): needed to protect someone's life when consent cannot be given."""
    consent = "consent"
    """UK GDPR Art. 6(1)(a) / 9(2)(a): the person, or someone with parental responsibility,
    agreed; ``consent_ref`` must say where that agreement is recorded."""
    safeguarding_sch1_para18 = "safeguarding_sch1_para18"
    """DPA 2018 Sch. 1 para 18: special-category data shared to safeguard a child or individual
    at risk without consent, when consent cannot be given, cannot reasonably be obtained, or
    seeking it would prejudice the child's protection."""
    law_enforcement_sch8 = "law_enforcement_sch8"
    """DPA 2018 Part 3, s. 35 and Sch. 8: sensitive processing by a competent authority (the
    police) for law-enforcement purposes, including safeguarding children at risk."""
    legitimate_interests = "legitimate_interests"
    """UK GDPR Art. 6(1)(f): the sender's legitimate interests; not available to public
    authorities for their public tasks (e.g. for an independent school or a charity)."""


class Envelope(ContractModel):
    """One event as it crosses the wire: who sent it, about whom, on what basis, and what happened.

    ``data`` is validated as the payload model of ``type`` and serialised as that payload's
    plain JSON. Corrections and retractions must name the event they replace in ``supersedes``.
    """

    specversion: Literal["1.0"]
    id: EventId
    source: UriReference
    type: EventType
    time: AwareDatetime
    subject: Opaque | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    schemaversion: int = CURRENT_SCHEMA_VERSION
    agency_id: AgencyId
    agency_kind: AgencyKind
    recorded_at: AwareDatetime
    classification: Classification = Classification.official_sensitive
    sensitivity: tuple[SensitivityTag, ...] = ()
    lawful_basis: LawfulBasis
    consent_ref: Opaque | None = Field(default=None, validate_default=True)
    supersedes: EventId | None = Field(default=None, validate_default=True)
    signature: Signature | None = None
    key_id: Code | None = Field(default=None, validate_default=True)
    person: Person
    data: Payload

    def __repr_args__(self) -> Any:
        """Show ids only, so an envelope in a log line carries no personal data."""
        return [("id", self.id), ("type", self.type.value), ("agency_id", self.agency_id)]

    @property
    def family(self) -> EventFamily:
        """The family of this event's type (concern, involvement, contact, correction)."""
        return family_of(self.type)

    def payload_json(self) -> str:
        """Return ``data`` as JSON, exactly as it appears inside the envelope."""
        return self.data.model_dump_json()

    @field_validator("schemaversion")
    @classmethod
    def _is_current(cls, value: int) -> int:
        if value != CURRENT_SCHEMA_VERSION:
            raise ValueError(
                f"schemaversion must be {CURRENT_SCHEMA_VERSION}; read older envelopes "
                "with parse_envelope, which upcasts them"
            )
        return value

    @field_validator("sensitivity")
    @classmethod
    def _no_duplicate_tags(cls, value: tuple[SensitivityTag, ...]) -> tuple[SensitivityTag, ...]:
        if len(set(value)) != len(value):
            raise ValueError("a sensitivity tag is listed twice")
        return value

    @field_validator("consent_ref")
    @classmethod
    def _consent_has_reference(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("lawful_basis") is LawfulBasis.consent:
            raise ValueError("consent_ref is required when lawful_basis is consent")
        return value

    @field_validator("supersedes")
    @classmethod
    def _supersedes_fits_type(cls, value: str | None, info: ValidationInfo) -> str | None:
        event_type = info.data.get("type")
        if event_type in CORRECTION_TYPES and value is None:
            raise ValueError(f"supersedes is required for {event_type}")
        if event_type is not None and event_type not in CORRECTION_TYPES and value is not None:
            allowed = " and ".join(sorted(CORRECTION_TYPES))
            raise ValueError(f"supersedes is only allowed on {allowed}")
        if value is not None and value == info.data.get("id"):
            raise ValueError("an event cannot supersede itself")
        return value

    @field_validator("key_id")
    @classmethod
    def _signature_names_key(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("signature") is not None:
            raise ValueError("key_id is required when a signature is given")
        return value

    @field_validator("person")
    @classmethod
    def _born_by_recording(cls, person: Person, info: ValidationInfo) -> Person:
        recorded_at = info.data.get("recorded_at")
        if recorded_at is None:
            return person
        latest = recorded_at.astimezone(_LATEST_OFFSET).date()
        dates: list[date | None] = [person.birth_date, *(r.birth_date for r in person.related)]
        if any(d is not None and d > latest for d in dates):
            raise ValueError("a birth date is later than recorded_at")
        return person

    @field_validator("data", mode="before")
    @classmethod
    def _data_matches_type(cls, value: Any, info: ValidationInfo) -> Any:
        event_type = info.data.get("type")
        if event_type is None:
            raise PydanticCustomError("data_unchecked", "cannot be checked until type is valid")
        payload = validate_payload(event_type, value, "data", EVENT_FAMILIES)
        time = info.data.get("time")
        ended_at = payload.ended_at if isinstance(payload, ContactRecorded) else None
        if ended_at is not None and time is not None and ended_at < time:
            raise PydanticCustomError("ended_before_start", "ended_at is before time")
        return payload


def parse_envelope(raw: bytes | str | dict[str, Any]) -> Envelope:
    """Parse an envelope from JSON bytes/text or a dict: upcast to the current version, validate.

    Raises ContractValidationError (``body``/``json_invalid`` for text that is not JSON).
    """
    if isinstance(raw, bytes | bytearray | str):
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):
            raise ContractValidationError.single(
                "body", "body is not valid JSON", "json_invalid"
            ) from None
    if not isinstance(raw, dict):
        raise ContractValidationError.single("body", "body must be a JSON object", "model_type")
    try:
        return Envelope.model_validate(upcast(raw))
    except ValidationError as exc:
        raise ContractValidationError.from_pydantic(exc) from None
