"""The published JSON Schema of a rule pack, for editors and for partners who write rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hub.sharing.rules import RulePack

__all__ = ["SCHEMA_ID", "export_rule_pack_schema", "rule_pack_json_schema"]

SCHEMA_ID = "urn:safeguarding-hub:schema:rule-pack:v1"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def rule_pack_json_schema() -> dict[str, Any]:
    """The JSON Schema of a rule pack file (YAML files are checked against it as JSON)."""
    schema = RulePack.model_json_schema()
    schema["$schema"] = _DIALECT
    schema["$id"] = SCHEMA_ID
    schema["title"] = "Safeguarding hub sharing-rule pack"
    return schema


def export_rule_pack_schema(path: Path) -> Path:
    """Write the schema to ``path`` deterministically (sorted keys, trailing newline)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(rule_pack_json_schema(), indent=2, sort_keys=True, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path
