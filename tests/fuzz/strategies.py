"""Hypothesis strategies for fuzzing: arbitrary JSON, and mutations of valid documents."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

__all__ = ["json_values", "mutated_json", "paths_of"]

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["", " ", "2024-13-45", "9999-12-31T23:59:59Z", "null", "\u0000", "é" * 3])
)

json_values = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
"""Any JSON value (no NaN), small and sometimes nested."""


def paths_of(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and list indexes) inside a JSON document, parents before children."""
    paths: list[tuple[Any, ...]] = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            paths.extend(paths_of(value, (*prefix, key)))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            paths.extend(paths_of(value, (*prefix, index)))
    return paths


@st.composite
def mutated_json(draw: st.DrawFn, doc: Any, *, max_changes: int = 3) -> Any:
    """``doc`` with up to ``max_changes`` values replaced by arbitrary JSON, or removed."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, max_changes))):
        paths = paths_of(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return doc
