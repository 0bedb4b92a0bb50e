"""The identity decisions that go on the log as events, so the narrative can follow them.

The lead publishes these on ``hub.events`` (keyed by the surviving child id); the narrative
projector moves a merged child's entries to the surviving child on ``identity.merged`` and
moves exactly those entries back on ``identity.unmerged``. Payloads carry ids only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

__all__ = ["ChildrenMerged", "MatchKeptApart", "MergeUndone"]


def _iso(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}


@dataclass(frozen=True, slots=True)
class ChildrenMerged:
    """``identity.merged``: every record (and event) of ``merged_child_id`` now belongs to
    ``surviving_child_id``; ``record_ids`` are the agency records moved."""

    merge_id: str
    surviving_child_id: str
    merged_child_id: str
    record_ids: tuple[str, ...]
    review_id: str | None
    decided_by: str
    reason: str
    merged_at: datetime
    type: str = "identity.merged"

    def as_data(self) -> dict[str, Any]:
        """The event's JSON data."""
        return _iso({**asdict(self), "record_ids": list(self.record_ids)})


@dataclass(frozen=True, slots=True)
class MergeUndone:
    """``identity.unmerged``: the merge ``merge_id`` is reversed; ``record_ids`` (and the
    events that came with them) go back to ``restored_child_id``."""

    merge_id: str
    restored_child_id: str
    from_child_id: str
    record_ids: tuple[str, ...]
    undone_by: str
    reason: str
    undone_at: datetime
    type: str = "identity.unmerged"

    def as_data(self) -> dict[str, Any]:
        """The event's JSON data."""
        return _iso({**asdict(self), "record_ids": list(self.record_ids)})


@dataclass(frozen=True, slots=True)
class MatchKeptApart:
    """``identity.kept_apart``: a reviewer decided a possible match is two different people."""

    review_id: str
    child_id: str
    other_child_id: str
    decided_by: str
    reason: str
    decided_at: datetime
    type: str = "identity.kept_apart"

    def as_data(self) -> dict[str, Any]:
        """The event's JSON data."""
        return _iso(asdict(self))
