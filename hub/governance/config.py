"""Governance configuration: time limits, checkpoints, location fields, retention schedule.

Read from ``HUB_*`` environment variables beside ``hub.settings.Settings`` (the lead may fold
these fields into it). The retention schedule is data (YAML), never constants in code.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.domain.roles import Role

__all__ = [
    "DEFAULT_RULES_FILE",
    "GovernanceConfigError",
    "GovernanceSettings",
    "RetentionPeriod",
    "RetentionSchedule",
    "load_governance_settings",
    "load_retention",
]

DEFAULT_RULES_FILE = Path(__file__).resolve().parents[2] / "deploy" / "rules" / "northshire.yaml"
"""The pack the rule store starts from when it holds none."""


class GovernanceConfigError(Exception):
    """A governance configuration file cannot be read or is not valid."""


class GovernanceSettings(BaseSettings):
    """Knobs of the governance package (``HUB_`` prefix, like the rest of the hub)."""

    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    break_glass_hours: float = Field(
        default=4.0, gt=0, le=72, description="How long a break-glass justification lasts."
    )
    audit_checkpoint_every: int = Field(
        default=100, ge=1, description="Store (and sign) the chain head every N records."
    )
    protected_location_roles: tuple[Role, ...] = Field(
        default=(Role.social_worker, Role.team_manager, Role.police_ppu),
        description="Fallback only: roles that still see a protected person's address and "
        "location when the rule pack in force names none (its protected_location_roles).",
    )
    protected_location_fields: tuple[str, ...] = Field(
        default=(),
        description="Extra dotted paths removed from views of protected people.",
    )
    retention_file: Path | None = Field(
        default=None, description="Retention schedule YAML; unset: the packaged default."
    )
    rules_bootstrap_file: Path = Field(
        default=DEFAULT_RULES_FILE, description="Rule pack stored when the store holds none."
    )


def load_governance_settings(**overrides: object) -> GovernanceSettings:
    """Governance settings from the environment, explicit overrides winning."""
    return GovernanceSettings(**overrides)  # type: ignore[arg-type]


class RetentionPeriod(BaseModel):
    """How long one category of record is kept, in words and as a rule a machine can apply."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str = Field(pattern=r"^[a-z_]{2,40}$")
    applies_to: tuple[str, ...] = Field(
        min_length=1, description="Child statuses or event families the period covers."
    )
    keep_until: str = Field(min_length=1, max_length=300)
    years: int = Field(ge=1, le=150)
    counted_from: str = Field(pattern=r"^(birth|closure|last_activity|adoption_order)$")


class RetentionSchedule(BaseModel):
    """The retention schedule: one period per category of record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1, max_length=300)
    periods: tuple[RetentionPeriod, ...] = Field(min_length=1)

    def for_statuses(self, statuses: tuple[str, ...] | list[str]) -> tuple[RetentionPeriod, ...]:
        """The periods that apply to a child with these statuses (``none`` when empty)."""
        wanted = set(statuses) or {"none"}
        return tuple(p for p in self.periods if wanted & set(p.applies_to))


def load_retention(path: Path | None = None) -> RetentionSchedule:
    """The retention schedule from ``path``, or the packaged default."""
    try:
        if path is None:
            text = resources.files("hub.governance").joinpath("retention.yaml").read_text("utf-8")
        else:
            text = path.read_text("utf-8")
        return RetentionSchedule.model_validate(yaml.safe_load(text))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValidationError) as exc:
        raise GovernanceConfigError(f"retention schedule {path or 'default'}: {exc}") from exc
