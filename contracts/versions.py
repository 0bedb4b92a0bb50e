"""Schema versions and upcasting: old envelopes are lifted one version at a time on read."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from contracts.errors import ContractValidationError, FieldError

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "FIRST_SCHEMA_VERSION",
    "UPCASTERS",
    "UnsupportedSchemaVersion",
    "Upcaster",
    "upcast",
]

CURRENT_SCHEMA_VERSION = 1
"""The envelope schema version this code writes and validates."""

FIRST_SCHEMA_VERSION = 1
"""The version assumed for a raw envelope that carries no ``schemaversion``."""

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns a raw envelope of version n into one of version n + 1 (may mutate its argument)."""

UPCASTERS: dict[int, Upcaster] = {}
"""Version n -> the upcaster from n to n + 1. Empty while only version 1 exists."""


class UnsupportedSchemaVersion(ContractValidationError):
    """The envelope's schema version is newer than this hub, invalid, or cannot be upcast."""

    def __init__(self, msg: str) -> None:
        super().__init__([FieldError(loc="schemaversion", msg=msg, type="schema_version")])


def upcast(
    raw: dict[str, Any],
    upcasters: Mapping[int, Upcaster] = UPCASTERS,
    current: int = CURRENT_SCHEMA_VERSION,
) -> dict[str, Any]:
    """Return a raw envelope dict lifted to ``current``, one step at a time; ``raw`` is untouched.

    A missing ``schemaversion`` means version 1. Raises UnsupportedSchemaVersion for a
    version that is not a positive integer, is newer than ``current``, or lacks a step.
    """
    version = raw.get("schemaversion", FIRST_SCHEMA_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise UnsupportedSchemaVersion("schemaversion must be a positive integer")
    if version > current:
        raise UnsupportedSchemaVersion(
            f"schema version {version} is newer than this hub supports ({current})"
        )
    # Upcasters may mutate nested values, so they get a deep copy; otherwise a shallow one will do.
    result = copy.deepcopy(raw) if version < current else dict(raw)
    while version < current:
        step = upcasters.get(version)
        if step is None:
            raise UnsupportedSchemaVersion(
                f"no upcaster from schema version {version} to {version + 1}"
            )
        result = step(result)
        version += 1
        result["schemaversion"] = version
    result["schemaversion"] = version
    return result
