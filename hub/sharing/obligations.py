"""Obligations of a decision: one rule's, and several permitting rules' merged into one view.

Merging rule (documented in docs/decisions/0007): every permitting rule is a grant, and the
recipient sees a field if any permitting rule lets them see it. Per field the most open
treatment wins (shown > generalised > removed); two rules generalising the same field with
different words give the first rule's words (pack order). Re-sharing is allowed only when
every permitting rule allows it.
"""

from __future__ import annotations

from collections.abc import Sequence

from hub.sharing.facts import Obligations
from hub.sharing.rules import ObligationSpec

__all__ = ["covers", "merge_obligations", "obligations_of", "split_path"]

_SHOWN, _GENERALISED, _REMOVED = 2, 1, 0


def split_path(path: str) -> tuple[str, ...]:
    """The segments of a dotted field path."""
    return tuple(path.split("."))


def covers(prefix: tuple[str, ...], path: tuple[str, ...]) -> bool:
    """Whether ``prefix`` names ``path`` or one of its ancestors (``*`` matches any segment)."""
    if len(prefix) > len(path):
        return False
    return all(p == "*" or p == q for p, q in zip(prefix, path, strict=False))


def _minimal(paths: Sequence[str]) -> tuple[str, ...]:
    """Sorted paths without those another path already covers."""
    split = sorted({split_path(p) for p in paths})
    kept = [p for p in split if not any(q != p and covers(q, p) for q in split)]
    return tuple(".".join(p) for p in kept)


def obligations_of(spec: ObligationSpec) -> Obligations:
    """One rule's obligations in normal form (no path under another removed path)."""
    removed = _minimal(spec.remove_fields)
    removed_split = [split_path(p) for p in removed]
    generalise = tuple(
        sorted(
            (path, text)
            for path, text in spec.generalise.items()
            if not any(covers(r, split_path(path)) for r in removed_split)
        )
    )
    return Obligations(remove_fields=removed, generalise=generalise, may_reshare=spec.may_reshare)


def _treatment(obligations: Obligations, path: tuple[str, ...]) -> tuple[int, str | None]:
    """How one rule's obligations treat a path: shown, generalised (with text) or removed."""
    for removed in obligations.remove_fields:
        if covers(split_path(removed), path):
            return _REMOVED, None
    for general, text in obligations.generalise:
        general_path = split_path(general)
        if covers(general_path, path):
            # An ancestor replaced by text takes its descendants with it.
            return (_GENERALISED, text) if len(general_path) == len(path) else (_REMOVED, None)
    return _SHOWN, None


def merge_obligations(each: Sequence[Obligations]) -> Obligations:
    """The obligations of several permitting rules (in pack order) merged into one view."""
    if len(each) == 1:
        return each[0]
    paths = sorted(
        {split_path(p) for o in each for p in o.remove_fields}
        | {split_path(p) for o in each for p, _ in o.generalise}
    )
    removed: list[str] = []
    generalised: list[tuple[str, str]] = []
    for path in paths:
        treatments = [_treatment(o, path) for o in each]
        best = max(rank for rank, _ in treatments)
        if best == _REMOVED:
            removed.append(".".join(path))
        elif best == _GENERALISED:
            text = next(t for rank, t in treatments if rank == _GENERALISED)
            generalised.append((".".join(path), text or ""))
    kept_removed = _minimal(removed)
    removed_split = [split_path(p) for p in kept_removed]
    return Obligations(
        remove_fields=kept_removed,
        generalise=tuple(
            (p, t)
            for p, t in generalised
            if not any(covers(r, split_path(p)) for r in removed_split)
        ),
        may_reshare=all(o.may_reshare for o in each),
    )
