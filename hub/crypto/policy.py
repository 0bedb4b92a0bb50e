"""Which envelope fields are sealed (encrypted) at rest, per event type: policy as data.

Sealed: free text a professional wrote about the child (summaries, reasons, contact details
and locations) and everything that identifies the child or their relatives (identifiers,
names, birth dates, address). Left in clear, because routing, sharing rules, alert rules and
the audit trail need them and they say little on their own: event type, times, agency,
classification, sensitivity tags, lawful basis, concern category and risk level, involvement
type and id and dates, contact type, ``ended_at``, the person's recorded sex and the
*relationship* of related people, and an involvement's lead practitioner (a professional's
work contact details, published so partners can reach them). An event type this table does
not know has its whole ``data`` sealed (default: seal).

Paths are dotted from the envelope's top level; ``*`` stands for every item of a list.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["DATA_FIELDS", "PERSON_FIELDS", "UNKNOWN_TYPE_FIELDS", "sensitive_paths"]

PERSON_FIELDS: tuple[str, ...] = (
    "person.identifiers",
    "person.name",
    "person.birth_date",
    "person.address",
    "person.related.*.name",
    "person.related.*.identifiers",
    "person.related.*.birth_date",
)
"""Sealed on every event: who the child and their relatives are."""

_INVOLVEMENT = ("reason",)

DATA_FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "concern.raised": ("summary",),
        "involvement.started": _INVOLVEMENT,
        "involvement.changed": _INVOLVEMENT,
        "involvement.ended": _INVOLVEMENT,
        "contact.recorded": ("summary", "location", "details"),
        "event.retracted": ("reason",),
        "event.corrected": ("reason",),  # plus the corrected type's fields under replacement.
    }
)
"""Sealed fields of ``data``, per event type."""

UNKNOWN_TYPE_FIELDS: tuple[str, ...] = ("data",)
"""What is sealed for an event type not in ``DATA_FIELDS``."""


def sensitive_paths(envelope: Mapping[str, Any]) -> tuple[str, ...]:
    """Every path to seal in this envelope (person fields, then its type's data fields)."""
    event_type = envelope.get("type")
    if not isinstance(event_type, str) or event_type not in DATA_FIELDS:
        return (*PERSON_FIELDS, *UNKNOWN_TYPE_FIELDS)
    data_paths = [f"data.{name}" for name in DATA_FIELDS[event_type]]
    if event_type == "event.corrected":
        data = envelope.get("data")
        corrected = data.get("corrected_type") if isinstance(data, Mapping) else None
        if isinstance(corrected, str) and corrected in DATA_FIELDS and corrected != event_type:
            data_paths += [f"data.replacement.{name}" for name in DATA_FIELDS[corrected]]
        else:
            data_paths.append("data.replacement")
    return (*PERSON_FIELDS, *data_paths)
