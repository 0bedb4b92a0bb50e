"""JSON Schema export: one deterministic file per event type plus the envelope."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from contracts import EVENT_FAMILIES, EventType, export_json_schemas, parse_envelope
from contracts.examples import example_envelope

pytestmark = pytest.mark.unit

EXPECTED_FILES = [
    "envelope.schema.json",
    "concern.raised.v1.schema.json",
    "involvement.started.v1.schema.json",
    "involvement.changed.v1.schema.json",
    "involvement.ended.v1.schema.json",
    "contact.recorded.v1.schema.json",
    "event.corrected.v1.schema.json",
    "event.retracted.v1.schema.json",
]
JSON_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


def schema_errors(
    instance: Any, schema: dict[str, Any], root: dict[str, Any], at: str = ""
) -> list[str]:
    """Check an instance against the JSON Schema keywords pydantic emits (jsonschema is not
    installed here); formats are not checked. Returns the paths that fail."""
    if "$ref" in schema:
        return schema_errors(instance, root["$defs"][schema["$ref"].split("/")[-1]], root, at)
    if "anyOf" in schema:
        if all(schema_errors(instance, s, root, at) for s in schema["anyOf"]):
            return [f"{at}: no anyOf branch matches"]
        return []
    if "type" in schema:
        expected = JSON_TYPES[schema["type"]]
        wrong_bool = isinstance(instance, bool) and schema["type"] in ("integer", "number")
        if not isinstance(instance, expected) or wrong_bool:
            return [f"{at}: not {schema['type']}"]
    if "const" in schema and instance != schema["const"]:
        return [f"{at}: not const"]
    if "enum" in schema and instance not in schema["enum"]:
        return [f"{at}: not in enum"]
    errors: list[str] = []
    if isinstance(instance, str):
        if len(instance) < schema.get("minLength", 0) or len(instance) > schema.get(
            "maxLength", 10**9
        ):
            errors.append(f"{at}: length")
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            errors.append(f"{at}: pattern")
    if isinstance(instance, list):
        if len(instance) > schema.get("maxItems", 10**9):
            errors.append(f"{at}: maxItems")
        for i, item in enumerate(instance):
            errors += schema_errors(item, schema.get("items", {}), root, f"{at}.{i}")
    if isinstance(instance, dict):
        properties = schema.get("properties", {})
        errors += [f"{at}.{k}: required" for k in schema.get("required", []) if k not in instance]
        for key, value in instance.items():
            if key in properties:
                errors += schema_errors(value, properties[key], root, f"{at}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{at}.{key}: additional")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += schema_errors(value, schema["additionalProperties"], root, f"{at}.{key}")
    return errors


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {p.name: p for p in export_json_schemas(tmp_path_factory.mktemp("schemas"))}


class TestSchemaExport:
    """Schemas are written per event type, deterministic and consistent with the models."""

    def test_writes_envelope_and_one_file_per_type(self, exported: dict[str, Path]) -> None:
        """One envelope schema and one schema per event type, named type.vN."""
        assert list(exported) == EXPECTED_FILES
        assert all(path.is_file() for path in exported.values())

    def test_output_is_deterministic(self, exported: dict[str, Path], tmp_path: Path) -> None:
        """A second export writes byte-identical files with sorted keys and a final newline."""
        again = {p.name: p for p in export_json_schemas(tmp_path / "again")}
        for name, path in exported.items():
            text = path.read_text(encoding="utf-8")
            assert text == again[name].read_text(encoding="utf-8")
            assert text.endswith("}\n")
            assert (
                text
                == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            )

    @pytest.mark.parametrize("event_type", list(EventType))
    def test_type_schema_is_specialised(
        self, exported: dict[str, Path], event_type: EventType
    ) -> None:
        """Each type's schema fixes type and points data at that type's model only."""
        model = EVENT_FAMILIES[event_type]
        schema = json.loads(
            exported[f"{event_type.value}.v1.schema.json"].read_text(encoding="utf-8")
        )
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["properties"]["type"]["const"] == event_type.value
        assert schema["properties"]["data"] == {"$ref": f"#/$defs/{model.__name__}"}
        assert schema["additionalProperties"] is False
        refs = set(re.findall(r'"#/\$defs/([A-Za-z]+)"', json.dumps(schema)))
        assert refs == set(schema["$defs"])  # every ref resolves, no unused definitions
        others = {m.__name__ for t, m in EVENT_FAMILIES.items() if t != event_type}
        if event_type is not EventType.event_corrected:
            assert not others & set(schema["$defs"])

    @pytest.mark.parametrize("event_type", list(EventType))
    def test_examples_are_accepted(self, exported: dict[str, Path], event_type: EventType) -> None:
        """The example envelope of each type, as the model serialises it, fits its schema."""
        instance = json.loads(parse_envelope(example_envelope(type=event_type)).model_dump_json())
        for name in ("envelope.schema.json", f"{event_type.value}.v1.schema.json"):
            schema = json.loads(exported[name].read_text(encoding="utf-8"))
            assert schema_errors(instance, schema, schema) == []

    def test_schema_rejects_a_mismatched_type(self, exported: dict[str, Path]) -> None:
        """A contact envelope does not fit the concern.raised schema."""
        schema = json.loads(exported["concern.raised.v1.schema.json"].read_text(encoding="utf-8"))
        instance = json.loads(
            parse_envelope(example_envelope(type="contact.recorded")).model_dump_json()
        )
        assert set(schema_errors(instance, schema, schema)) >= {
            ".type: not const",
            ".data.category: required",
        }
