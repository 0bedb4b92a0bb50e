"""What the rules need to know of a child for a delivery, read from the narrative store.

The same basis as the narrative read path (``hub.narrative_cache``, kept while the child's
entries are unchanged): the opened involvements and contacts give the open statuses, the
agencies involved and the milestones the delay conditions need; a child-protection plan means
significant harm. The facts of each stored event (type, source, tags, time) come back too, by
event id, so the webhook dispatcher can decide an alert's triggering events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from hub.crypto.data_keys import ChildKeyStore
from hub.narrative_cache import cache_for
from hub.sharing import ChildStatus, EventFacts, Milestone
from hub.store.repository import SqlStore

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
        basis = await cache_for(self._store, self._keys).basis([child_id])
        situation = basis.situation
        return ChildSnapshot(
            statuses=frozenset(ChildStatus(s) for s in situation.statuses),
            involved_agencies=situation.involved_agencies,
            milestones={Milestone(k): v for k, v in situation.milestones.items()},
            significant_harm=situation.significant_harm,
            events={i.event_id: f for i, f in zip(basis.items, basis.facts, strict=True)},
        )
