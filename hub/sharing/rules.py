"""The sharing-rule model: a versioned pack of rules IG staff write in YAML or JSON.

A rule grants one kind of recipient, for one purpose, the events it matches, under a lawful
basis, a consent mode and obligations (fields removed or generalised, a delay, re-sharing).
Anything no rule grants is denied. Omitting a match field means "any"; an empty list is an
error (write nothing rather than ``[]``). Every model forbids unknown keys, so a misspelt key
is an error with its place, never a silently ignored condition.
"""

from __future__ import annotations

from datetime import date, datetime, time
from enum import StrEnum
from typing import Annotated, Self
from zoneinfo import ZoneInfo

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from contracts import AgencyKind, EventType, LawfulBasis, SensitivityTag
from hub.domain.roles import Role

__all__ = [
    "RULES_TIMEZONE",
    "ChildStatus",
    "ConsentMode",
    "Delay",
    "Match",
    "Milestone",
    "ObligationSpec",
    "Purpose",
    "Recipients",
    "Rule",
    "RulePack",
    "When",
    "instant",
]

RULES_TIMEZONE = ZoneInfo("Europe/London")
"""A bare date in a rule pack (``effective_from: 2025-04-01``) means midnight here."""

RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")]
AgencyId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{2,64}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
FieldPath = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+(\.([A-Za-z0-9_-]+|\*))*$", max_length=200)
]
Version = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
When = AwareDatetime | date


def _person_role(value: object) -> object:
    """A role that may hold a protected location: a known role, and a person's."""
    if isinstance(value, Role) or not isinstance(value, str):
        role = value
    elif value in Role.__members__.values():
        role = Role(value)
    else:
        known = ", ".join(r.value for r in Role if r is not Role.agency_system)
        raise ValueError(f"unknown role {value!r}; expected one of {known}")
    if role is Role.agency_system:
        raise ValueError(
            "agency_system is a partner system, not a person: a protected location is never "
            "released to a system"
        )
    return role


PersonRole = Annotated[
    Role,
    BeforeValidator(_person_role),
    WithJsonSchema(
        {
            "type": "string",
            "enum": [r.value for r in Role if r is not Role.agency_system],
            "description": "A person's role (not agency_system).",
        }
    ),
]
"""A role named in ``protected_location_roles`` (checked with a message IG staff can act on)."""


class Purpose(StrEnum):
    """Why a recipient asks; consent is recorded per purpose and recipient agency."""

    safeguarding = "safeguarding"
    """Protecting a child from harm: enquiries, plans, partner concerns (Children Act 1989)."""
    unscheduled_care = "unscheduled_care"
    """A clinician treating the child in an emergency department or urgent care (CP-IS)."""
    education_safeguarding = "education_safeguarding"
    """A school supporting a pupil after an incident (Operation Encompass)."""
    law_enforcement = "law_enforcement"
    """Police investigating an offence against or involving the child."""
    direct_care = "direct_care"
    """Routine health or care for the child (not safeguarding)."""
    audit = "audit"
    """IG oversight: audit, complaints and subject-access requests."""


class ChildStatus(StrEnum):
    """The child's open statuses a rule can require; ``none`` means a child with none of them."""

    cp_plan = "cp_plan"
    looked_after = "looked_after"
    child_in_need = "child_in_need"
    none = "none"


class ConsentMode(StrEnum):
    """Whether a rule needs the consent recorded for its purpose and the recipient agency."""

    not_required = "not_required"
    required = "required"
    required_unless_significant_harm = "required_unless_significant_harm"


class Milestone(StrEnum):
    """Case events a delay can wait for (recorded on the child after the shared event)."""

    strategy_meeting = "strategy_meeting"
    child_protection_conference = "child_protection_conference"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Match(_Strict):
    """Which events a rule covers; every given condition must hold, omitted ones match any."""

    source_agency_kinds: tuple[AgencyKind, ...] | None = Field(default=None, min_length=1)
    source_agencies: tuple[AgencyId, ...] | None = Field(default=None, min_length=1)
    event_types: tuple[EventType, ...] | None = Field(default=None, min_length=1)
    sensitivity_any: tuple[SensitivityTag, ...] | None = Field(
        default=None, min_length=1, description="The event carries at least one of these tags."
    )
    sensitivity_all: tuple[SensitivityTag, ...] | None = Field(
        default=None, min_length=1, description="The event carries every one of these tags."
    )
    sensitivity_none: tuple[SensitivityTag, ...] | None = Field(
        default=None, min_length=1, description="The event carries none of these tags."
    )
    sensitivity_only: tuple[SensitivityTag, ...] | None = Field(
        default=None,
        description="The event carries no tag outside this list ([] means: untagged events only).",
    )
    child_status: tuple[ChildStatus, ...] | None = Field(
        default=None,
        min_length=1,
        description="The child has at least one of these open statuses (`none`: no status).",
    )


class Recipients(_Strict):
    """Who a rule shares with; every given condition must hold. Name at least one of the first
    three, so no rule shares with everyone by accident."""

    agency_kinds: tuple[AgencyKind, ...] | None = Field(default=None, min_length=1)
    agencies: tuple[AgencyId, ...] | None = Field(default=None, min_length=1)
    roles: tuple[Role, ...] | None = Field(default=None, min_length=1)
    teams: tuple[Label, ...] | None = Field(default=None, min_length=1)
    involved_with_child: StrictBool = Field(
        default=False,
        description="Only when the recipient's agency has an open involvement with the child.",
    )
    own_agency_only: StrictBool = Field(
        default=False,
        description="Only events the recipient's own agency sent.",
    )

    @model_validator(mode="after")
    def _names_someone(self) -> Self:
        if self.agency_kinds is None and self.agencies is None and self.roles is None:
            raise ValueError("name at least one of agency_kinds, agencies or roles")
        return self


class Delay(_Strict):
    """Hold an event back: until some hours after it happened and/or until a milestone
    (e.g. a strategy meeting) is recorded for the child at or after the event."""

    hours_after_event: int | None = Field(default=None, ge=1, le=24 * 90)
    until_milestone: Milestone | None = None

    @model_validator(mode="after")
    def _says_something(self) -> Self:
        if self.hours_after_event is None and self.until_milestone is None:
            raise ValueError("give hours_after_event, until_milestone or both")
        return self


class ObligationSpec(_Strict):
    """What the recipient sees of a matched event: fields removed or generalised, a delay."""

    remove_fields: tuple[FieldPath, ...] = Field(
        default=(),
        description="Dotted paths into the event view (`data.details`, `person.address`, "
        "`person.related.*.name`); removed fields are absent from what is shared.",
    )
    generalise: dict[FieldPath, Text] = Field(
        default_factory=dict,
        description="Field path -> the plain text shown instead (only where the field exists).",
    )
    delay: Delay | None = None
    may_reshare: StrictBool = False


class Rule(_Strict):
    """One grant: matched events go to these recipients, for this purpose, on this basis."""

    id: RuleId
    description: Text
    owner: Label
    reason: Text
    effective_from: When
    effective_to: When | None = None
    match: Match = Field(default_factory=Match)
    recipients: Recipients
    purpose: Purpose
    lawful_basis: LawfulBasis
    consent: ConsentMode
    significant_harm_basis: LawfulBasis | None = Field(
        default=None,
        description="The basis relied on when a `required_unless_significant_harm` rule shares "
        "without consent (default safeguarding_sch1_para18).",
    )
    obligations: ObligationSpec = Field(default_factory=ObligationSpec)

    @property
    def active_from(self) -> datetime:
        """The instant the rule comes into force."""
        return instant(self.effective_from)

    @property
    def active_to(self) -> datetime | None:
        """The instant the rule stops being in force (exclusive), if any."""
        return None if self.effective_to is None else instant(self.effective_to)

    @property
    def harm_basis(self) -> LawfulBasis:
        """The lawful basis of a share made without consent on significant harm."""
        return self.significant_harm_basis or LawfulBasis.safeguarding_sch1_para18


class RulePack(_Strict):
    """A versioned set of rules with who wrote this version and why, and the roles that still
    see a protected person's address and location."""

    version: Version
    author: Label
    reason: Text
    protected_location_roles: tuple[PersonRole, ...] | None = Field(
        default=None,
        description="Roles that still see the address and location of a protected person (a "
        "child or adult flagged, e.g. in a refuge) in anything the rules let them see; everyone "
        "else gets the view without them. Omitted: the hub's configured fallback; [] means no "
        "role sees them. Holds for every disclosure, whichever rule granted it.",
        json_schema_extra={"uniqueItems": True},
    )
    rules: tuple[Rule, ...] = ()

    @field_validator("protected_location_roles")
    @classmethod
    def _each_role_once(cls, roles: tuple[Role, ...] | None) -> tuple[Role, ...] | None:
        twice = sorted({str(r) for r in roles or () if (roles or ()).count(r) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} is named more than once")
        return roles

    def rule(self, rule_id: str) -> Rule:
        """The rule with this id (KeyError if none)."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


def instant(value: datetime | date) -> datetime:
    """A rule date as an aware instant: a bare date is midnight in Europe/London."""
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time(0), tzinfo=RULES_TIMEZONE)
