"""Reading versioned YAML data files with errors that name the file, the path and the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

__all__ = ["DataFileError", "load_model", "location", "read_text"]

_M = TypeVar("_M", bound=BaseModel)


class DataFileError(ValueError):
    """A data file (alert rules, term calendar) cannot be read or is not valid."""


def location(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a path a person can find: ``rules[1].params.min_agencies``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _resolve(node: yaml.Node | None, loc: tuple[int | str, ...]) -> tuple[str, int | None]:
    """The path of ``loc`` as written in the file, and the 1-based line of its node.

    Parts that are not in the file (a discriminated union's tag) are left out; the line is
    that of the deepest node found.
    """
    kept: list[int | str] = []
    line = None if node is None else node.start_mark.line + 1
    for part in loc:
        found: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            tags = {v.value for k, v in node.value if getattr(k, "value", None) == "kind"}
            if found is None and part in tags:
                continue
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            found = node.value[part] if 0 <= part < len(node.value) else None
        kept.append(part)
        if found is not None:
            node = found
            line = node.start_mark.line + 1
        else:
            node = None
    return location(tuple(kept)), line


def load_model(model: type[_M], text: str, where: str) -> _M:
    """Parse YAML ``text`` as ``model``; ``DataFileError`` names ``where``, the path and line."""
    try:
        raw: Any = yaml.safe_load(text)
        tree = yaml.compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise DataFileError(f"{where}:{at} is not valid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise DataFileError(f"{where} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise DataFileError(f"{where}: must be a mapping at the top level")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path, line = _resolve(tree, tuple(err["loc"]))
            at = f" (line {line})" if line is not None else ""
            problems.append(f"{path}{at}: {err['msg']}")
        raise DataFileError(f"{where}: " + "; ".join(problems)) from exc


def read_text(path: Path) -> str:
    """A data file's text, or ``DataFileError`` saying why it cannot be read."""
    try:
        return path.read_text("utf-8")
    except OSError as exc:
        raise DataFileError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path} is not UTF-8 text") from exc
