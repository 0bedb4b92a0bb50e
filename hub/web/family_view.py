"""Turns the family answer from the API into the child page's "Family and household" section:
the other children of the household the reader may see, how each is connected, and the
concerns and incidents about them, newest first.

Pure functions over the API's JSON (``GET /api/v1/children/{id}/family``): a household child
the reader may see nothing of is not in that answer, so nothing here can hint at one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FamilyMemberView", "FamilyView", "build_family"]


@dataclass(frozen=True, slots=True)
class FamilyMemberView:
    """Another child of the household: who, how connected, how many entries shown here."""

    child_id: str
    connection: str
    entries: int


@dataclass(frozen=True, slots=True)
class FamilyView:
    """The family section's content."""

    members: Sequence[FamilyMemberView]
    entries: Sequence[Mapping[str, Any]]
    merged_from: Sequence[str]

    @property
    def empty(self) -> bool:
        """Nobody in the household to show this reader."""
        return not self.members


def _when(entry: Mapping[str, Any]) -> tuple[str, str, str]:
    return (
        str(entry.get("occurred_at") or ""),
        str(entry.get("recorded_at") or ""),
        str(entry.get("event_id") or ""),
    )


def build_family(family: Mapping[str, Any]) -> FamilyView:
    """The section's content from the family answer, entries newest first like the timeline.

    Members keep the API's order (closest connection first); an entry whose child is not
    among the members is dropped, so every entry shown links to a child listed above it.
    """
    members = [
        FamilyMemberView(
            child_id=str(m["child_id"]),
            connection=str(m.get("connection") or "in the same household"),
            entries=int(m.get("entries") or 0),
        )
        for m in family.get("members") or []
    ]
    listed = {m.child_id for m in members}
    entries = [e for e in family.get("entries") or [] if e.get("via_child_id") in listed]
    entries.sort(key=_when, reverse=True)
    return FamilyView(
        members=members,
        entries=entries,
        merged_from=[str(c) for c in family.get("merged_from") or []],
    )
