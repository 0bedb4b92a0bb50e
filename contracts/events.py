"""Event payloads: what happened, one versioned model per event type, grouped in families.

Families: a *concern* raised by a professional, an agency's *involvement* starting, changing
or ending, a dated *contact*, and the *correction* or retraction of an earlier event.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AwareDatetime,
    BeforeValidator,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from contracts._base import Code, ContractModel, LongText, Name, ShortText

__all__ = [
    "CORRECTION_TYPES",
    "EVENT_FAMILIES",
    "ConcernCategory",
    "ConcernRaised",
    "ContactRecorded",
    "ContactType",
    "EventCorrected",
    "EventFamily",
    "EventPayload",
    "EventRetracted",
    "EventType",
    "FamilyPayload",
    "InvolvementChanged",
    "InvolvementEnded",
    "InvolvementStarted",
    "InvolvementType",
    "Payload",
    "Practitioner",
    "RiskLevel",
    "family_of",
    "validate_payload",
]


class EventType(StrEnum):
    """The CloudEvents ``type`` of every hub event."""

    concern_raised = "concern.raised"
    involvement_started = "involvement.started"
    involvement_changed = "involvement.changed"
    involvement_ended = "involvement.ended"
    contact_recorded = "contact.recorded"
    event_corrected = "event.corrected"
    event_retracted = "event.retracted"


class EventFamily(StrEnum):
    """The group an event type belongs to."""

    concern = "concern"
    involvement = "involvement"
    contact = "contact"
    correction = "correction"


CORRECTION_TYPES = frozenset({EventType.event_corrected, EventType.event_retracted})
"""Event types that replace or withdraw an earlier event (they need ``supersedes``)."""


def family_of(event_type: EventType) -> EventFamily:
    """Return the family (concern, involvement, contact, correction) of an event type."""
    event_type = EventType(event_type)
    if event_type in CORRECTION_TYPES:
        return EventFamily.correction
    return EventFamily(event_type.value.split(".", 1)[0])


class EventPayload(ContractModel):
    """Base of every event's ``data``; ``schema_version`` is the payload model's version."""

    schema_version: ClassVar[int] = 1
    event_type: ClassVar[EventType]


class ConcernCategory(StrEnum):
    """What kind of harm a concern is about."""

    neglect = "neglect"
    physical_abuse = "physical_abuse"
    sexual_abuse = "sexual_abuse"
    emotional_abuse = "emotional_abuse"
    domestic_abuse = "domestic_abuse"
    exploitation = "exploitation"
    missing = "missing"
    self_harm = "self_harm"
    online_harm = "online_harm"
    other = "other"


class RiskLevel(StrEnum):
    """The sender's judgement of risk, lowest first."""

    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class ConcernRaised(EventPayload):
    """A professional has raised a worry about the child."""

    event_type: ClassVar[EventType] = EventType.concern_raised

    category: ConcernCategory
    risk_level: RiskLevel
    summary: LongText
    raised_by_role: ShortText | None = None


class InvolvementType(StrEnum):
    """The kind of work an agency does with the child."""

    child_protection_plan = "child_protection_plan"
    child_in_need = "child_in_need"
    looked_after = "looked_after"
    early_help = "early_help"
    police_investigation = "police_investigation"
    health_visiting = "health_visiting"
    school_nursing = "school_nursing"
    camhs = "camhs"
    youth_justice = "youth_justice"
    section_47_enquiry = "section_47_enquiry"
    assessment = "assessment"
    referral = "referral"
    other = "other"


Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 ()-]{3,32}$")]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
]


class Practitioner(ContractModel):
    """The professional leading an involvement and how to reach them."""

    name: Name
    role: ShortText | None = None
    team: ShortText | None = None
    phone: Phone | None = None
    email: Email | None = None


class _Involvement(EventPayload):
    """Fields shared by the involvement events; dates must be in order."""

    involvement_type: InvolvementType
    involvement_id: Code
    started_on: date | None = None
    ended_on: date | None = None
    lead_practitioner: Practitioner | None = None
    reason: LongText | None = None

    @model_validator(mode="after")
    def _dates_in_order(self) -> Self:
        if self.started_on and self.ended_on and self.ended_on < self.started_on:
            raise ValueError("ended_on must not be before started_on")
        return self


class InvolvementStarted(_Involvement):
    """An agency has started work with the child (a plan, an investigation, a service)."""

    event_type: ClassVar[EventType] = EventType.involvement_started


class InvolvementChanged(_Involvement):
    """Something about an agency's work with the child has changed (lead, type, reason)."""

    event_type: ClassVar[EventType] = EventType.involvement_changed


class InvolvementEnded(_Involvement):
    """An agency's work with the child has ended; ``ended_on`` is required."""

    event_type: ClassVar[EventType] = EventType.involvement_ended

    ended_on: date


class ContactType(StrEnum):
    """The kind of dated interaction recorded."""

    unscheduled_care_attendance = "unscheduled_care_attendance"
    police_incident = "police_incident"
    missing_episode = "missing_episode"
    school_absence = "school_absence"
    school_exclusion = "school_exclusion"
    home_visit = "home_visit"
    strategy_meeting = "strategy_meeting"
    other = "other"


def _scalar(value: Any) -> Any:
    """Reject nested values in ``details`` with one clear error instead of one per union arm."""
    if value is not None and not isinstance(value, str | int | float | bool):
        raise PydanticCustomError("detail_not_scalar", "must be a string, number, boolean or null")
    return value


DetailKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
DetailValue = Annotated[
    Annotated[str, StringConstraints(max_length=1000)] | int | float | bool | None,
    BeforeValidator(_scalar),
]


class ContactRecorded(EventPayload):
    """A dated interaction with the child: an attendance, incident, absence, visit or meeting.

    The contact starts at the envelope's ``time``; ``details`` is a flat map of at most 50
    scalar values for facts specific to the sender.
    """

    event_type: ClassVar[EventType] = EventType.contact_recorded

    contact_type: ContactType
    summary: LongText
    location: ShortText | None = None
    ended_at: AwareDatetime | None = None
    details: dict[DetailKey, DetailValue] = Field(default_factory=dict, max_length=50)


FamilyPayload = (
    ConcernRaised | InvolvementStarted | InvolvementChanged | InvolvementEnded | ContactRecorded
)
"""Any payload that can be corrected (every type but corrections and retractions)."""


def validate_payload(
    event_type: EventType, value: Any, field: str, families: dict[EventType, type[EventPayload]]
) -> EventPayload:
    """Validate ``value`` as the payload model of ``event_type`` (used by before-validators)."""
    model = families[event_type]
    if isinstance(value, EventPayload):
        if type(value) is not model:
            raise PydanticCustomError(
                "payload_type_mismatch",
                "{field} must be a {model} for {event_type}",
                {"field": field, "model": model.__name__, "event_type": str(event_type)},
            )
        return value
    return model.model_validate(value)


class EventCorrected(EventPayload):
    """An earlier event (named by the envelope's ``supersedes``) is replaced by ``replacement``.

    ``replacement`` is validated as the payload of ``corrected_type`` and serialised as that
    payload's plain JSON.
    """

    event_type: ClassVar[EventType] = EventType.event_corrected

    reason: LongText
    corrected_type: EventType
    replacement: FamilyPayload

    @field_validator("corrected_type")
    @classmethod
    def _not_a_correction(cls, value: EventType) -> EventType:
        if value in CORRECTION_TYPES:
            raise ValueError("corrected_type must not be a correction or retraction")
        return value

    @field_validator("replacement", mode="before")
    @classmethod
    def _replacement_matches_type(cls, value: Any, info: ValidationInfo) -> Any:
        corrected_type = info.data.get("corrected_type")
        if corrected_type is None:
            raise PydanticCustomError(
                "replacement_unchecked", "cannot be checked until corrected_type is valid"
            )
        return validate_payload(corrected_type, value, "replacement", EVENT_FAMILIES)


class EventRetracted(EventPayload):
    """An earlier event (named by the envelope's ``supersedes``) is withdrawn."""

    event_type: ClassVar[EventType] = EventType.event_retracted

    reason: LongText


Payload = FamilyPayload | EventCorrected | EventRetracted
"""Any event payload."""

EVENT_FAMILIES: dict[EventType, type[EventPayload]] = {
    model.event_type: model
    for model in (
        ConcernRaised,
        InvolvementStarted,
        InvolvementChanged,
        InvolvementEnded,
        ContactRecorded,
        EventCorrected,
        EventRetracted,
    )
}
"""The payload model for each event type."""
