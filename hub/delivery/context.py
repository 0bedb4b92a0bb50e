"""What the rules need to know of a child for a delivery, read from the narrative store.

The same basis as the narrative read path (``hub.narrative_cache``, kept while the child's
entries are unchanged): the opened involvements and contacts give the open statuses, the
agencies involved and the milestones the delay conditions need; a child-protection plan means
significant harm. The facts of each stored event (type, source, tags, time) come back too, by
event id, so the webhook dispatcher can decide an alert's triggering events.

A consumer batch asks for many children at once (``NarrativeChildFacts.situations``: the
topic deliveries): it reads just the entries a situation is made from, texts included, in one
query for the whole batch, instead of a few queries per child (a batch of a trickle touches
nearly one child per event).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from hub.crypto.data_keys import ChildKeyStore
from hub.crypto.narrative import CONTEXT_FAMILIES, open_items
from hub.domain.chronology import (
    SITUATION_AGENCY_KINDS,
    ChildSituation,
    ChronologyItem,
    situation_of,
)
from hub.narrative_cache import cache_for
from hub.sharing import ChildStatus, EventFacts, Milestone
from hub.store.repository import SqlStore, StoredEntry

__all__ = ["ChildSnapshot", "NarrativeChildFacts"]


@dataclass(frozen=True, slots=True)
class ChildSnapshot:
    """A child's statuses, involved agencies, milestones and stored events' facts, now."""

    statuses: frozenset[ChildStatus] = frozenset()
    involved_agencies: frozenset[str] = frozenset()
    milestones: Mapping[Milestone, datetime] = field(default_factory=dict)
    significant_harm: bool = False
    events: Mapping[str, EventFacts] = field(default_factory=dict)


class NarrativeChildFacts:
    """Reads a child's snapshot from the narrative store (key records read on every call)."""

    def __init__(self, store: SqlStore, keys: ChildKeyStore) -> None:
        self._store = store
        self._keys = keys

    async def __call__(self, child_id: str) -> ChildSnapshot:
        """One child's snapshot (through the process's narrative cache)."""
        basis = await cache_for(self._store, self._keys).basis([child_id])
        return _snapshot(basis.situation, zip(basis.items, basis.facts, strict=True))

    async def situations(self, child_ids: Iterable[str]) -> dict[str, ChildSnapshot]:
        """Each child's snapshot without its events' facts (``events`` empty), read fresh.

        The situation is made from the opened involvements and contacts and the agencies of
        the child's school entries only (``situation_of``), so only those entries are read,
        with their texts, in one query: the same statuses, involved agencies, milestones
        and harm as the one-child read gives, for a fraction of the rows."""
        wanted = sorted(set(child_ids))
        if not wanted:
            return {}
        entries = await self._store.narrative_of_kinds(
            wanted, families=CONTEXT_FAMILIES, agency_kinds=SITUATION_AGENCY_KINDS
        )
        items = await open_items(self._keys, entries, only=_is_context, summaries=False)
        per_child: dict[str, list[ChronologyItem]] = {c: [] for c in wanted}
        for entry, item in zip(entries, items, strict=True):
            per_child[entry.child_id].append(item)
        return {child_id: _snapshot(situation_of(its), ()) for child_id, its in per_child.items()}


def _is_context(entry: StoredEntry) -> bool:
    return entry.family in CONTEXT_FAMILIES


def _snapshot(
    situation: ChildSituation, facts: Iterable[tuple[ChronologyItem, EventFacts]]
) -> ChildSnapshot:
    return ChildSnapshot(
        statuses=frozenset(ChildStatus(s) for s in situation.statuses),
        involved_agencies=situation.involved_agencies,
        milestones={Milestone(k): v for k, v in situation.milestones.items()},
        significant_harm=situation.significant_harm,
        events={i.event_id: f for i, f in facts},
    )
