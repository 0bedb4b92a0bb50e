"""The values alerts are made of: recipients, and the outcomes the engine and escalation emit."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from contracts import AgencyKind, EventType
from hub.sharing import EventFacts

__all__ = [
    "AlertEscalated",
    "AlertOutcome",
    "AlertRaised",
    "AlertStatus",
    "AlertWithdrawn",
    "EscalationStep",
    "Recipient",
    "RecipientKind",
    "TriggerFacts",
    "alert_id_for",
]


class _Value(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecipientKind(StrEnum):
    """What a recipient names: a role in an agency, an agency, a team, or one practitioner."""

    role = "role"
    agency = "agency"
    team = "team"
    practitioner = "practitioner"


class Recipient(_Value):
    """Someone an alert is for, found from the data; ``address`` is its inbox key.

    - ``role``: ``id`` is the role (e.g. ``team_manager``) within ``agency_id``;
    - ``agency``: ``id`` is the agency id, ``role`` optionally narrows it (a school's DSL);
    - ``team``: ``id`` is the team id within ``agency_id`` (a duty inbox, the front door);
    - ``practitioner``: ``id`` is the practitioner's email (lower-cased), with how to reach them.
    """

    kind: RecipientKind
    id: str
    agency_id: str | None = None
    role: str | None = None
    name: str | None = None
    team: str | None = None
    email: str | None = None
    phone: str | None = None

    @property
    def address(self) -> str:
        """The inbox key the store indexes and the API matches a caller against."""
        match self.kind:
            case RecipientKind.role:
                return f"role:{self.agency_id}:{self.id}"
            case RecipientKind.agency:
                return f"agency:{self.id}:{self.role}" if self.role else f"agency:{self.id}"
            case RecipientKind.team:
                return f"team:{self.agency_id}:{self.id}"
            case RecipientKind.practitioner:
                return f"practitioner:{self.id}"
        raise ValueError(f"unknown recipient kind {self.kind}")


class AlertStatus(StrEnum):
    """Where an alert stands."""

    raised = "raised"
    escalated = "escalated"
    acknowledged = "acknowledged"
    withdrawn = "withdrawn"


class EscalationStep(_Value):
    """Step ``step`` (1-based) of an alert's escalation: who hears of it, and from when."""

    step: int
    at: datetime
    recipients: tuple[Recipient, ...]


class TriggerFacts(_Value):
    """What the sharing rules match on for one trigger event, as its narrative entry has it.

    Clear attributes only (no names, no free text): the event type (a correction's corrected
    type), the sending agency and its kind, the sensitivity tags, and when it happened (UTC).
    """

    event_id: str
    event_type: str
    agency_id: str
    agency_kind: str
    sensitivity: tuple[str, ...] = ()
    occurred_at: datetime

    def event_facts(self) -> EventFacts:
        """The same facts as the sharing rules take them."""
        return EventFacts(
            event_type=EventType(self.event_type),
            source_agency_id=self.agency_id,
            source_agency_kind=AgencyKind(self.agency_kind),
            sensitivity=frozenset(self.sensitivity),
            occurred_at=self.occurred_at.astimezone(UTC),
        )


class AlertRaised(_Value):
    """An alert raised for one occurrence of a rule (the same occurrence, the same alert id)."""

    alert_id: str
    occurrence_key: str
    child_id: str
    rule_id: str
    rule_kind: str
    rule_version: int
    severity: str
    reason: str
    """A machine-readable reason code (e.g. ``child_protection_plan``, ``household``)."""
    recipients: tuple[Recipient, ...]
    trigger_event_ids: tuple[str, ...]
    occurred_at: datetime
    raised_at: datetime
    due_at: datetime
    escalation: tuple[EscalationStep, ...] = ()
    window_start: datetime | None = None
    trigger_facts: tuple[TriggerFacts, ...] = ()
    """The facts of the trigger events the engine held as their own (none for one it holds
    only through a correction: its narrative entry keeps the corrected event's facts)."""


class AlertWithdrawn(_Value):
    """An alert withdrawn because the event it rested on was retracted or corrected away."""

    alert_id: str
    occurrence_key: str
    child_id: str
    rule_id: str
    cause_event_id: str
    withdrawn_at: datetime


class AlertEscalated(_Value):
    """An unacknowledged alert passed to the next step's recipients."""

    alert_id: str
    step: int
    recipients: tuple[Recipient, ...]
    due_at: datetime
    escalated_at: datetime


AlertOutcome = AlertRaised | AlertWithdrawn | AlertEscalated
"""Anything the store applies."""


def alert_id_for(occurrence_key: str) -> str:
    """The alert id of an occurrence: deterministic, so redelivery and replay name one alert."""
    return "al-" + hashlib.sha256(occurrence_key.encode()).hexdigest()[:32]
