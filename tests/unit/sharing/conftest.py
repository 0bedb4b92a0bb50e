"""Builders for the sharing-rule tests: rules as plain dicts, packs, requests, events, children."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from contracts import AgencyKind, EventType
from hub.domain.roles import Role
from hub.sharing import (
    AccessRequest,
    ChildContext,
    ConsentRecord,
    ConsentState,
    EventFacts,
    Purpose,
    RulePack,
)

NOW = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
"""The frozen clock of every sharing test (a Monday morning)."""

INCIDENT_AT = datetime(2025, 6, 1, 22, 30, tzinfo=UTC)
"""When the incidents in these tests happened (the Sunday night before)."""

BASE_RULE: dict[str, Any] = {
    "id": "base-rule",
    "description": "A rule for tests.",
    "owner": "Test IG",
    "reason": "Testing.",
    "effective_from": "2025-04-01",
    "recipients": {"agency_kinds": ["childrens_services"], "roles": ["social_worker"]},
    "purpose": "safeguarding",
    "lawful_basis": "public_task",
    "consent": "not_required",
}


def rule(**overrides: Any) -> dict[str, Any]:
    """A valid rule dict with top-level overrides (a fresh copy each call)."""
    made = copy.deepcopy(BASE_RULE)
    made.update(copy.deepcopy(overrides))
    return made


def pack(*rules: dict[str, Any], version: str = "test.1") -> RulePack:
    """A rule pack of these rules."""
    return RulePack.model_validate(
        {"version": version, "author": "Test IG", "reason": "Testing.", "rules": list(rules)}
    )


def social_worker(
    purpose: Purpose = Purpose.safeguarding, team: str | None = None
) -> AccessRequest:
    """A Northshire children's social care social worker."""
    return AccessRequest(
        "northshire-cs", AgencyKind.childrens_services, Role.social_worker, purpose, team
    )


def school_dsl() -> AccessRequest:
    """Northshire Primary's designated safeguarding lead, for education safeguarding."""
    return AccessRequest(
        "northshire-primary",
        AgencyKind.schools,
        Role.designated_safeguarding_lead,
        Purpose.education_safeguarding,
    )


def police_event(
    event_type: EventType = EventType.contact_recorded, *tags: str, at: datetime = INCIDENT_AT
) -> EventFacts:
    """An event from Northshire Police with these sensitivity tags."""
    return EventFacts(event_type, "northshire-police", AgencyKind.police, frozenset(tags), at)


def health_event(*tags: str, at: datetime = INCIDENT_AT) -> EventFacts:
    """A contact recorded by the Northshire hospitals trust with these sensitivity tags."""
    return EventFacts(
        EventType.contact_recorded, "northshire-health", AgencyKind.health, frozenset(tags), at
    )


def consent(
    state: ConsentState,
    agency_id: str = "northshire-cs",
    purpose: Purpose = Purpose.safeguarding,
    on: datetime = datetime(2025, 5, 1, 12, 0, tzinfo=UTC),
) -> ConsentRecord:
    """A consent record for ``purpose`` with ``agency_id``, recorded on 1 May 2025."""
    return ConsentRecord(purpose, agency_id, state, on)


def child(**kwargs: Any) -> ChildContext:
    """A child context; Northshire children's social care works with the child by default."""
    kwargs.setdefault("involved_agencies", ["northshire-cs"])
    return ChildContext.build(**kwargs)
