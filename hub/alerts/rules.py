"""Alert rules as versioned data: the models of a rule file and its YAML loader.

A rule file names its authority (whose duty team and front door receive alerts), its version,
author, reason and effective date, and a list of rules. Each rule has a ``kind`` that picks the
evaluator in ``hub.alerts.engine`` and parameters an IG or service lead can change without a
release: thresholds, windows, who receives the alert and how it escalates.
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts import ConcernCategory, ContactType, InvolvementType, RiskLevel
from hub.alerts._yaml import DataFileError, load_model, read_text
from hub.domain.roles import Role

__all__ = [
    "AccumulatingConcernsRule",
    "AlertRule",
    "AlertRules",
    "Authority",
    "DataFileError",
    "DomesticAbuseToSchoolRule",
    "Escalation",
    "MissingEpisodesRule",
    "RecipientSelector",
    "Severity",
    "TeamRef",
    "UnscheduledCareWithPlanRule",
    "load_rules",
    "parse_rules",
]

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Severity(StrEnum):
    """How urgent an alert is, lowest first."""

    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class RecipientSelector(StrEnum):
    """Who, found from the child's data, receives a rule's alert."""

    lead_practitioner = "lead_practitioner"
    """The lead practitioner of the involvement that made the rule match (e.g. the CP plan)."""
    duty_team = "duty_team"
    """The authority's duty team inbox."""
    front_door = "front_door"
    """Children's social care's front door (MASH / referral and assessment)."""
    school_dsl = "school_dsl"
    """The designated safeguarding lead of every school that has sent events about the child;
    with no school known (e.g. home-educated), children's social care's duty team instead."""


class TeamRef(_Data):
    """A team inbox of an agency."""

    agency_id: Slug
    team_id: Slug


class Authority(_Data):
    """The local authority whose children's social care receives and escalates alerts."""

    agency_id: Slug
    duty_team: TeamRef
    front_door: TeamRef


class Escalation(_Data):
    """Who hears of an unacknowledged alert, and when: step n is due ``after`` + n-1 ``every``.

    Times count from the alert's due time. Recipients are roles of the authority (e.g. the
    team manager, then the service manager).
    """

    roles: tuple[Role, ...] = (Role.team_manager, Role.service_manager)
    every_minutes: int = Field(default=30, ge=1, le=7 * 24 * 60)

    @property
    def every(self) -> timedelta:
        """The interval between escalation steps."""
        return timedelta(minutes=self.every_minutes)


class _Rule(_Data):
    id: Slug
    enabled: bool = True
    severity: Severity
    recipients: tuple[RecipientSelector, ...] = Field(min_length=1)
    escalation: Escalation = Field(default_factory=Escalation)
    stale_after_days: int = Field(
        default=14,
        ge=1,
        le=3650,
        description="An occurrence older than this when first seen (a replay, a very late "
        "record) is remembered but not raised.",
    )

    @property
    def stale_after(self) -> timedelta:
        """How old an occurrence may be and still be raised."""
        return timedelta(days=self.stale_after_days)


class UnscheduledCareWithPlanRule(_Rule):
    """An unscheduled-care attendance of a child with an open plan or looked-after status."""

    kind: Literal["unscheduled_care_with_plan"]
    contact_types: tuple[ContactType, ...] = (ContactType.unscheduled_care_attendance,)
    involvement_types: tuple[InvolvementType, ...] = (
        InvolvementType.child_protection_plan,
        InvolvementType.looked_after,
    )
    acknowledge_within_minutes: int = Field(default=15, ge=1, le=7 * 24 * 60)


class DomesticAbuseToSchoolRule(_Rule):
    """A police domestic-abuse incident involving the child, or at the child's household."""

    kind: Literal["domestic_abuse_to_school"]
    incident_types: tuple[str, ...] = ("domestic_abuse",)
    """Values of the contact's ``details.incident_type``; a ``domestic_abuse`` sensitivity tag
    on a police incident also counts."""


class AccumulatingConcernsRule(_Rule):
    """At least ``min_concerns`` concerns from ``min_agencies`` agencies within ``within_days``."""

    kind: Literal["accumulating_concerns"]
    min_concerns: int = Field(default=3, ge=1, le=100)
    min_agencies: int = Field(default=2, ge=1, le=20)
    within_days: int = Field(default=30, ge=1, le=366)
    categories: tuple[ConcernCategory, ...] = ()
    """Only these categories count; empty means every category."""
    min_risk_level: RiskLevel = RiskLevel.low
    acknowledge_within_minutes: int = Field(default=24 * 60, ge=1, le=30 * 24 * 60)

    @model_validator(mode="after")
    def _agencies_fit(self) -> Self:
        if self.min_agencies > self.min_concerns:
            raise ValueError("min_agencies cannot exceed min_concerns")
        return self


class MissingEpisodesRule(_Rule):
    """Repeated missing episodes of a child, or any missing episode of a looked-after child."""

    kind: Literal["missing_episodes"]
    min_episodes: int = Field(default=3, ge=1, le=100)
    within_days: int = Field(default=90, ge=1, le=366)
    any_when_looked_after: bool = True
    acknowledge_within_minutes: int = Field(default=4 * 60, ge=1, le=30 * 24 * 60)


AlertRule = Annotated[
    UnscheduledCareWithPlanRule
    | DomesticAbuseToSchoolRule
    | AccumulatingConcernsRule
    | MissingEpisodesRule,
    Field(discriminator="kind"),
]
"""Any alert rule, chosen by its ``kind``."""


class AlertRules(_Data):
    """One version of an authority's alert rules."""

    version: int = Field(ge=1)
    effective_from: date
    author: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=2000)
    timezone: Literal["Europe/London"] = "Europe/London"
    authority: Authority
    rules: tuple[AlertRule, ...] = ()

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        if not self.rules:
            raise ValueError("at least one rule is needed")
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id!r} is used twice")
            seen.add(rule.id)
        return self

    @property
    def enabled(self) -> tuple[AlertRule, ...]:
        """The rules in force, in file order."""
        return tuple(r for r in self.rules if r.enabled)

    def get(self, rule_id: str) -> AlertRule:
        """The rule with this id, or ``KeyError``."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


def load_rules(path: Path) -> AlertRules:
    """Read and validate a rule file; ``DataFileError`` names the file, field path and line."""
    return parse_rules(read_text(path), str(path))


def parse_rules(text: str, where: str = "alert rules") -> AlertRules:
    """Validate rule-file text (the API and CLI can check a draft before it is saved)."""
    return load_model(AlertRules, text, where)
