"""The agency registry: which partner agencies exist, their kind and name (configuration data)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts import AgencyKind

__all__ = ["Agency", "AgencyRegistry", "RegistryError", "UnknownAgency"]


class RegistryError(Exception):
    """The agency registry file cannot be read or is not valid."""


class UnknownAgency(LookupError):
    """An agency id that is not in the registry."""

    def __init__(self, agency_id: str) -> None:
        super().__init__(f"agency {agency_id!r} is not registered")
        self.agency_id = agency_id


class _AgencyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z0-9-]{2,64}$")
    kind: AgencyKind
    name: str = Field(min_length=1, max_length=200)


class _RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agencies: list[_AgencyEntry] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Agency:
    """A registered partner agency."""

    id: str
    kind: AgencyKind
    name: str


class AgencyRegistry:
    """Looks agencies up by id; loaded once from YAML at start-up."""

    def __init__(self, agencies: list[Agency]) -> None:
        self._by_id: dict[str, Agency] = {}
        for agency in agencies:
            if agency.id in self._by_id:
                raise RegistryError(f"agency id {agency.id!r} is registered twice")
            self._by_id[agency.id] = agency

    @classmethod
    def load(cls, path: Path | None = None) -> AgencyRegistry:
        """Read a registry file, or the packaged Northshire default when no path is given."""
        if path is None:
            text = resources.files("hub.config").joinpath("agencies.yaml").read_text("utf-8")
            where = "packaged agencies.yaml"
        else:
            try:
                text = path.read_text("utf-8")
            except OSError as exc:
                raise RegistryError(f"cannot read agency registry {path}: {exc.strerror}") from exc
            except UnicodeDecodeError as exc:
                raise RegistryError(f"agency registry {path} is not UTF-8 text") from exc
            where = str(path)
        try:
            raw = yaml.safe_load(text)
            if not isinstance(raw, dict):
                raise RegistryError(f"{where} must be a mapping with an 'agencies' list")
            parsed = _RegistryFile.model_validate(raw)
        except yaml.YAMLError as exc:
            raise RegistryError(f"{where} is not valid YAML: {exc}") from exc
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise RegistryError(f"{where} is not a valid agency registry: {problems}") from exc
        try:
            return cls([Agency(id=e.id, kind=e.kind, name=e.name) for e in parsed.agencies])
        except RegistryError as exc:
            raise RegistryError(f"{where}: {exc}") from exc

    def get(self, agency_id: str) -> Agency:
        """The agency with this id, or ``UnknownAgency``."""
        try:
            return self._by_id[agency_id]
        except KeyError:
            raise UnknownAgency(agency_id) from None

    def __contains__(self, agency_id: object) -> bool:
        return agency_id in self._by_id

    def all(self) -> list[Agency]:
        """Every registered agency, in registry order."""
        return list(self._by_id.values())
