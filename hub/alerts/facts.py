"""What the alert engine needs to know of one `hub.events` record, and nothing more.

``facts_from_hub_event`` reduces a ``HubEvent`` to ``HubEventFacts``: ids, times, the sender,
and the few payload fields the rules read. Free text (summaries, reasons) and the person's
name and birth date are left behind; an address becomes an opaque household key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from contracts import (
    ConcernRaised,
    ContactRecorded,
    Envelope,
    EventCorrected,
    EventType,
    InvolvementChanged,
    InvolvementEnded,
    InvolvementStarted,
    Practitioner,
)
from contracts.events import FamilyPayload
from hub.streams.wire import HubEvent

__all__ = [
    "ConcernFacts",
    "ContactFacts",
    "HubEventFacts",
    "InvolvementFacts",
    "PractitionerFacts",
    "facts_from_envelope",
    "facts_from_hub_event",
    "household_key",
]


@dataclass(frozen=True, slots=True)
class PractitionerFacts:
    """The lead practitioner of an involvement and how to reach them."""

    name: str
    role: str | None = None
    team: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class ConcernFacts:
    """A concern: its category and the sender's risk level."""

    category: str
    risk_level: str


@dataclass(frozen=True, slots=True)
class InvolvementFacts:
    """An involvement started, changed or ended."""

    involvement_id: str
    involvement_type: str
    ended: bool
    started_on: str | None = None  # ISO dates: state snapshots stay plain JSON
    ended_on: str | None = None
    lead: PractitionerFacts | None = None


@dataclass(frozen=True, slots=True)
class ContactFacts:
    """A dated contact: its type and the sender's machine-readable details the rules read."""

    contact_type: str
    incident_type: str | None = None
    role: str | None = None


@dataclass(frozen=True, slots=True)
class HubEventFacts:
    """One event as the alert engine sees it.

    ``kind`` is the event type of what the facts describe: for a correction, the corrected
    type (``supersedes`` names the event it replaces); for a retraction, ``event.retracted``.
    Exactly one of ``concern``/``involvement``/``contact`` is set unless it is a retraction.
    """

    event_id: str
    child_id: str
    kind: str
    occurred_at: datetime
    recorded_at: datetime
    agency_id: str
    agency_kind: str
    sensitivity: tuple[str, ...] = ()
    supersedes: str | None = None
    household_keys: tuple[str, ...] = ()
    concern: ConcernFacts | None = None
    involvement: InvolvementFacts | None = None
    contact: ContactFacts | None = None
    is_correction: bool = field(default=False)

    @property
    def is_retraction(self) -> bool:
        """Whether this event withdraws the one it supersedes."""
        return self.kind == EventType.event_retracted.value


def household_key(envelope: Envelope) -> str | None:
    """An opaque key for the child's address (postcode + first line), or None without both."""
    address = envelope.person.address
    if address is None or address.postcode is None or not address.lines:
        return None
    first = " ".join(address.lines[0].lower().split())
    digest = hashlib.sha256(f"{address.postcode}|{first}".encode()).hexdigest()
    return f"addr:{digest[:32]}"


def _practitioner(lead: Practitioner | None) -> PractitionerFacts | None:
    if lead is None:
        return None
    return PractitionerFacts(
        name=lead.name,
        role=lead.role,
        team=lead.team,
        email=lead.email.lower() if lead.email else None,
        phone=lead.phone,
    )


def _payload_facts(
    data: FamilyPayload,
) -> tuple[ConcernFacts | None, InvolvementFacts | None, ContactFacts | None]:
    if isinstance(data, ConcernRaised):
        return (
            ConcernFacts(category=data.category.value, risk_level=data.risk_level.value),
            None,
            None,
        )
    if isinstance(data, InvolvementStarted | InvolvementChanged | InvolvementEnded):
        involvement = InvolvementFacts(
            involvement_id=data.involvement_id,
            involvement_type=data.involvement_type.value,
            ended=isinstance(data, InvolvementEnded),
            started_on=data.started_on.isoformat() if data.started_on else None,
            ended_on=data.ended_on.isoformat() if data.ended_on else None,
            lead=_practitioner(data.lead_practitioner),
        )
        return None, involvement, None
    if isinstance(data, ContactRecorded):
        incident = data.details.get("incident_type")
        role = data.details.get("role")
        contact = ContactFacts(
            contact_type=data.contact_type.value,
            incident_type=incident if isinstance(incident, str) else None,
            role=role if isinstance(role, str) else None,
        )
        return None, None, contact
    raise TypeError(f"no facts for payload {type(data).__name__}")


def facts_from_envelope(envelope: Envelope, child_id: str) -> HubEventFacts:
    """The facts of an envelope linked to ``child_id``."""
    key = household_key(envelope)
    common = {
        "event_id": envelope.id,
        "child_id": child_id,
        "occurred_at": envelope.time.astimezone(UTC),
        "recorded_at": envelope.recorded_at.astimezone(UTC),
        "agency_id": envelope.agency_id,
        "agency_kind": envelope.agency_kind.value,
        "sensitivity": tuple(t.value for t in envelope.sensitivity),
        "supersedes": envelope.supersedes,
        "household_keys": (key,) if key else (),
    }
    data = envelope.data
    if envelope.type is EventType.event_retracted:
        return HubEventFacts(kind=EventType.event_retracted.value, **common)  # type: ignore[arg-type]
    if isinstance(data, EventCorrected):
        concern, involvement, contact = _payload_facts(data.replacement)
        return HubEventFacts(
            kind=data.corrected_type.value,
            concern=concern,
            involvement=involvement,
            contact=contact,
            is_correction=True,
            **common,  # type: ignore[arg-type]
        )
    concern, involvement, contact = _payload_facts(data)  # type: ignore[arg-type]
    return HubEventFacts(
        kind=envelope.type.value,
        concern=concern,
        involvement=involvement,
        contact=contact,
        **common,  # type: ignore[arg-type]
    )


def facts_from_hub_event(event: HubEvent) -> HubEventFacts:
    """The facts of a `hub.events` record (the consumer's one call per record)."""
    return facts_from_envelope(event.envelope, event.child_id)
