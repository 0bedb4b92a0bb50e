"""Export the contracts as JSON Schema files: the envelope, and one per event type."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from contracts.envelope import Envelope
from contracts.events import EVENT_FAMILIES, EventType
from contracts.versions import CURRENT_SCHEMA_VERSION

__all__ = ["envelope_json_schema", "export_json_schemas", "schema_filename"]

_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_REF_PREFIX = "#/$defs/"


def schema_filename(event_type: EventType | None = None) -> str:
    """Name of the schema file for an event type (``concern.raised.v1.schema.json``)."""
    if event_type is None:
        return "envelope.schema.json"
    version = EVENT_FAMILIES[EventType(event_type)].schema_version
    return f"{EventType(event_type).value}.v{version}.schema.json"


def envelope_json_schema(event_type: EventType | None = None) -> dict[str, Any]:
    """Return the envelope's JSON Schema, specialised to one event type's ``data`` if given."""
    schema = Envelope.model_json_schema()
    schema["$schema"] = _DIALECT
    if event_type is None:
        schema["$id"] = f"urn:safeguarding-hub:schema:envelope:v{CURRENT_SCHEMA_VERSION}"
        return schema
    event_type = EventType(event_type)
    model = EVENT_FAMILIES[event_type]
    schema = copy.deepcopy(schema)
    properties = schema["properties"]
    properties["type"] = {"const": event_type.value, "title": "Type", "type": "string"}
    properties["data"] = {"$ref": f"{_REF_PREFIX}{model.__name__}"}
    schema["title"] = f"Envelope[{event_type.value}]"
    schema["$id"] = f"urn:safeguarding-hub:schema:{event_type.value}:v{model.schema_version}"
    schema["$defs"] = _reachable_defs(schema)
    return schema


def _refs(node: Any) -> set[str]:
    """Names of the ``$defs`` entries referenced anywhere inside ``node``."""
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
            found.add(ref.removeprefix(_REF_PREFIX))
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def _reachable_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """Keep only the ``$defs`` entries reachable from the root of ``schema``."""
    defs = schema.get("$defs", {})
    pending = _refs({k: v for k, v in schema.items() if k != "$defs"})
    kept: dict[str, Any] = {}
    while pending:
        name = pending.pop()
        if name in kept:
            continue
        kept[name] = defs[name]
        pending |= _refs(defs[name]) - kept.keys()
    return kept


def _write(path: Path, schema: dict[str, Any]) -> Path:
    text = json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def export_json_schemas(directory: Path) -> list[Path]:
    """Write ``envelope.schema.json`` and one schema per event type; return the paths written.

    Output is deterministic (sorted keys, two-space indent, trailing newline) so the files
    can be committed and diffed.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = [_write(directory / schema_filename(), envelope_json_schema())]
    for event_type in EventType:
        path = directory / schema_filename(event_type)
        written.append(_write(path, envelope_json_schema(event_type)))
    return written
