"""Read a synthetic population's files back through the real agency adapters."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from types import ModuleType

from adapters import childrens_services, health, police, schools
from adapters.common import AdapterResult, AgencyRef
from contracts import AgencyKind
from hub.synth.formats import AGENCIES

__all__ = ["SYNTH_NOW", "content_type_of", "parse_files"]

SYNTH_NOW = datetime.fromisoformat("2024-04-02T09:00:00+00:00")
"""The ``recorded_at`` synthetic files are parsed with."""

_ADAPTERS: dict[str, ModuleType] = {
    "health": health,
    "schools": schools,
    "police": police,
    "childrens_services": childrens_services,
}
_TYPES = {"json": "application/json", "xml": "application/xml", "csv": "text/csv"}


def content_type_of(path: str) -> str:
    """The content type a synthetic file is submitted with, from its extension."""
    return _TYPES[path.rsplit(".", 1)[-1]]


def parse_files(
    files: Mapping[str, bytes], *, now: datetime = SYNTH_NOW
) -> Iterator[tuple[str, AdapterResult]]:
    """Parse every agency file (``<kind>/<name>``) with its kind's adapter, in path order."""
    for path in sorted(files):
        kind = path.split("/", 1)[0]
        if kind not in _ADAPTERS:
            continue
        agency = AgencyRef(AGENCIES[kind], AgencyKind(kind))
        yield path, _ADAPTERS[kind].parse(files[path], content_type_of(path), agency, now=now)
