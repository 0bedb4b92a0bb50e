"""The roles people and systems act in, as carried in tokens and named by sharing rules."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["NARRATIVE_READER_ROLES", "Role"]


class Role(StrEnum):
    """A caller's role; `agency_system` is an adapter or partner system, not a person."""

    social_worker = "social_worker"
    team_manager = "team_manager"
    service_manager = "service_manager"
    duty_officer = "duty_officer"
    designated_safeguarding_lead = "designated_safeguarding_lead"
    named_nurse = "named_nurse"
    clinician = "clinician"
    police_ppu = "police_ppu"
    ig_officer = "ig_officer"
    agency_system = "agency_system"


# Children's social care staff and IG: the roles that work identity reviews and see the
# practice pages. Narrative reads are decided by the sharing rules (docs/decisions/0004).
NARRATIVE_READER_ROLES: frozenset[Role] = frozenset(
    {
        Role.social_worker,
        Role.team_manager,
        Role.service_manager,
        Role.duty_officer,
        Role.ig_officer,
    }
)
