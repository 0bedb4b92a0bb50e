"""What the rules need to know of a child for a delivery, read from the narrative store.

The same computation as the narrative read path (``hub.api.narrative_access``): the child's
entries are opened, their involvement spans give the open statuses and the agencies involved,
and their milestones the delay conditions; a child-protection plan means significant harm.
The facts of each stored event (type, source, tags, time) come back too, by event id, so the
webhook dispatcher can decide an alert's triggering events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from hub.crypto.data_keys import ChildKeyStore
from hub.crypto.narrative import NarrativeOpener
from hub.domain.chronology import ChronologyItem, child_statuses, involvement_spans, milestones
from hub.sharing import ChildStatus, EventFacts, Milestone
from hub.store.repository import SqlStore

__all__ = ["ChildSnapshot", "NarrativeChildFacts"]

_SIGNIFICANT_HARM_STATUSES = frozenset({"cp_plan"})


@dataclass(frozen=True, slots=True)
class ChildSnapshot:
    """A child's statuses, involved agencies, milestones and stored events' facts, now."""

    statuses: frozenset[ChildStatus] = frozenset()
    involved_agencies: frozenset[str] = frozenset()
    milestones: Mapping[Milestone, datetime] = field(default_factory=dict)
    significant_harm: bool = False
    events: Mapping[str, EventFacts] = field(default_factory=dict)


class NarrativeChildFacts:
    """Reads a child's snapshot from the narrative store (keys read fresh on every call)."""

    def __init__(self, store: SqlStore, keys: ChildKeyStore) -> None:
        self._store = store
        self._opener = NarrativeOpener(keys)

    async def __call__(self, child_id: str) -> ChildSnapshot:
        entries = await self._store.narrative(child_id)
        texts = await self._opener.open_all(child_id, entries)
        items = [
            ChronologyItem(
                event_id=e.event_id,
                event_type=e.event_type,
                family=e.family,
                occurred_at=e.occurred_at,
                recorded_at=e.recorded_at,
                agency_id=e.agency_id,
                agency_kind=e.agency_kind,
                summary=t.summary,
                sensitivity=tuple(e.sensitivity),
                corrects=e.supersedes,
                data=dict(t.payload),
                erased_at=t.erased_at,
            )
            for e, t in zip(entries, texts, strict=True)
        ]
        spans = involvement_spans(items)
        statuses = child_statuses(spans)
        involved = {s.agency_id for s in spans if s.is_open} | {
            i.agency_id for i in items if i.agency_kind == "schools"
        }
        return ChildSnapshot(
            statuses=frozenset(ChildStatus(s) for s in statuses),
            involved_agencies=frozenset(involved),
            milestones={Milestone(k): v for k, v in milestones(items).items()},
            significant_harm=bool(statuses & _SIGNIFICANT_HARM_STATUSES),
            events={e.event_id: EventFacts.of(e) for e in entries},
        )
