"""Applying a decision's obligations to an event view: a redacted copy, the input untouched.

A view is the JSON-ready dict of a narrative entry or an envelope. Removed fields are absent
from the copy (not null, not a placeholder); generalised fields, where present, hold the rule's
text instead. Paths are dotted; ``*`` stands for every item of a list or every value of a map.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hub.sharing.facts import Obligations
from hub.sharing.obligations import split_path

__all__ = ["redact", "redact_many"]


_CONTAINERS = (dict, list, tuple)
_SCALARS = (str, int, float, type(None))


def _nested(value: Any) -> bool:
    """Whether a value is a container to copy (cheap checks first: most values are scalars)."""
    return isinstance(value, _CONTAINERS) or (
        not isinstance(value, _SCALARS) and isinstance(value, Mapping)
    )


def _copy(value: Any) -> Any:
    """A deep copy of JSON-like data: maps become dicts, lists and tuples lists; other values
    (strings, numbers, datetimes) are shared, being immutable."""
    if isinstance(value, list | tuple):
        return [_copy(v) if _nested(v) else v for v in value]
    if isinstance(value, Mapping):
        return {k: _copy(v) if _nested(v) else v for k, v in value.items()}
    return value


def _children(node: Any, segment: str) -> Iterable[tuple[Any, Any]]:
    """(container, key) pairs that ``segment`` names inside ``node``."""
    if isinstance(node, dict):
        if segment == "*":
            return [(node, k) for k in list(node)]
        return [(node, segment)] if segment in node else []
    if isinstance(node, list):
        if segment == "*":
            return [(node, i) for i in range(len(node))]
        if segment.isdigit() and int(segment) < len(node):
            return [(node, int(segment))]
    return []


def _targets(root: Any, path: tuple[str, ...]) -> list[tuple[Any, Any]]:
    """Every (container, key) the path names in ``root``."""
    nodes = [root]
    for segment in path[:-1]:
        nodes = [c[k] for node in nodes for c, k in _children(node, segment)]
    return [pair for node in nodes for pair in _children(node, path[-1])]


def _remove_all(root: Any, paths: Iterable[str]) -> None:
    """Remove every target of every path, found before anything is removed (so one removal
    never shifts the list index another path names)."""
    targets = {(id(c), k): (c, k) for p in paths for c, k in _targets(root, split_path(p))}
    in_lists = sorted(
        (t for t in targets.values() if isinstance(t[1], int)), key=lambda t: t[1], reverse=True
    )
    for container, key in [t for t in targets.values() if not isinstance(t[1], int)] + in_lists:
        del container[key]


def redact(view: Mapping[str, Any], obligations: Obligations) -> dict[str, Any]:
    """A copy of ``view`` with the obligations applied; ``view`` itself is never changed."""
    result: dict[str, Any] = _copy(view)
    for path, text in obligations.generalise:
        for container, key in _targets(result, split_path(path)):
            container[key] = text
    _remove_all(result, obligations.remove_fields)
    return result


def redact_many(
    views: Iterable[Mapping[str, Any]], obligations: Iterable[Obligations]
) -> list[dict[str, Any]]:
    """Each view redacted by the obligations at the same position."""
    return [redact(v, o) for v, o in zip(views, obligations, strict=True)]
