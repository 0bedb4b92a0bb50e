"""Turning an event on the log into a child's narrative entry: a readable line, in its place."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contracts import Envelope, EventType, family_of

__all__ = ["EntryStatus", "NarrativeEntry", "describe", "describe_view", "entry_for"]


class EntryStatus:
    """Status values of a narrative entry."""

    ACTIVE = "active"
    CORRECTED = "corrected"  # replaced by a later correction (kept, not shown by default)
    RETRACTED = "retracted"  # withdrawn by its agency (kept, not shown by default)
    NOTICE = "notice"  # a retraction notice itself: audit history, not a story line

    SHOWN = frozenset({ACTIVE})


@dataclass(frozen=True, slots=True)
class NarrativeEntry:
    """One line of a child's chronology, as the projector stores it."""

    event_id: str
    child_id: str
    event_type: str
    family: str
    occurred_at: datetime
    recorded_at: datetime
    agency_id: str
    agency_kind: str
    summary: str
    sensitivity: tuple[str, ...]
    supersedes: str | None
    status: str
    payload: str


def _words(value: object) -> str:
    return str(value).replace("_", " ")


def describe(event_type: EventType, data: object) -> str:
    """A short, plain-language line for a payload, the kind a practitioner would write."""
    match event_type:
        case EventType.concern_raised:
            return (
                f"Concern raised: {_words(data.category)}, {_words(data.risk_level)} risk. "  # type: ignore[attr-defined]
                f"{data.summary}"  # type: ignore[attr-defined]
            )
        case (
            EventType.involvement_started
            | EventType.involvement_changed
            | EventType.involvement_ended
        ):
            verb = {
                EventType.involvement_started: "started",
                EventType.involvement_changed: "changed",
                EventType.involvement_ended: "ended",
            }[event_type]
            line = f"{_words(data.involvement_type).capitalize()} {verb}."  # type: ignore[attr-defined]
            lead = data.lead_practitioner  # type: ignore[attr-defined]
            if lead is not None:
                line += f" Lead practitioner: {lead.name}" + (
                    f" ({lead.role})." if lead.role else "."
                )
            return line
        case EventType.contact_recorded:
            return f"{_words(data.contact_type).capitalize()}: {data.summary}"  # type: ignore[attr-defined]
        case EventType.event_retracted:
            return f"Earlier record retracted: {data.reason}"  # type: ignore[attr-defined]
        case EventType.event_corrected:
            replaced = describe(data.corrected_type, data.replacement)  # type: ignore[attr-defined]
            return f"{replaced} (Corrected: {data.reason})"  # type: ignore[attr-defined]
    raise ValueError(f"no description for event type {event_type}")


def entry_for(envelope: Envelope, child_id: str) -> NarrativeEntry:
    """The narrative entry an envelope makes; a correction takes the family it corrects."""
    event_type = EventType(envelope.type)
    if event_type is EventType.event_corrected:
        shown_type = EventType(envelope.data.corrected_type)  # type: ignore[union-attr]
        status = EntryStatus.ACTIVE
    elif event_type is EventType.event_retracted:
        shown_type = event_type
        status = EntryStatus.NOTICE
    else:
        shown_type = event_type
        status = EntryStatus.ACTIVE
    return NarrativeEntry(
        event_id=envelope.id,
        child_id=child_id,
        event_type=shown_type.value,
        family=family_of(shown_type),
        occurred_at=envelope.time.astimezone(UTC),
        recorded_at=envelope.recorded_at.astimezone(UTC),
        agency_id=envelope.agency_id,
        agency_kind=str(envelope.agency_kind),
        summary=describe(event_type, envelope.data),
        sensitivity=tuple(str(t) for t in envelope.sensitivity),
        supersedes=envelope.supersedes,
        status=status,
        payload=json.dumps(envelope.model_dump(mode="json")["data"], sort_keys=True),
    )


def describe_view(event_type: str, data: Mapping[str, Any]) -> str:
    """A plain line for an event's (possibly redacted) data: fields a rule removed are skipped.

    Used on every read, so a summary never carries text the reader's rules withhold.
    """
    get = data.get
    if event_type == "concern.raised":
        line = f"Concern raised: {_words(get('category', 'concern'))}"
        if get("risk_level"):
            line += f", {_words(get('risk_level'))} risk"
        line += "."
        return f"{line} {get('summary')}" if get("summary") else line
    if event_type.startswith("involvement."):
        verb = event_type.split(".", 1)[1]
        line = f"{_words(get('involvement_type', 'involvement')).capitalize()} {verb}."
        lead = get("lead_practitioner")
        if isinstance(lead, Mapping) and lead.get("name"):
            role = f" ({lead['role']})" if lead.get("role") else ""
            line += f" Lead practitioner: {lead['name']}{role}."
        return line
    if event_type == "contact.recorded":
        line = _words(get("contact_type", "contact")).capitalize()
        return f"{line}: {get('summary')}" if get("summary") else f"{line}."
    if event_type == "event.retracted":
        return "Earlier record retracted."
    return _words(event_type).capitalize()
