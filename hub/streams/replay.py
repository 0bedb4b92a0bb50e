"""`hub replay`: rebuild the narrative projection from `hub.events`, from offset zero."""

from __future__ import annotations

from dataclasses import dataclass

from hub.bootstrap import Hub
from hub.observability import get_logger
from hub.streams.log_reader import read_topic
from hub.streams.projector import NARRATIVE_PROJECTION, NarrativeProjector

__all__ = ["ReplayReport", "replay_narrative"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """How much of the log a replay read and how many entries it stored."""

    records: int
    stored: int


async def replay_narrative(hub: Hub) -> ReplayReport:
    """Forget the narrative projection and apply every `hub.events` record again.

    Run it with the narrative processors stopped; the projection's stored positions then let
    the live processors carry on from the end of the log without re-applying anything. Events
    of a child whose data keys were destroyed come back as erased entries, without content.
    """
    projector = NarrativeProjector(
        store=hub.store,
        topics=hub.topics,
        publish=hub.streams.publish,
        metrics=hub.metrics,
        security=hub.security,
    )
    await hub.store.reset_projection(NARRATIVE_PROJECTION)
    log.info("replay.started", topic=hub.topics.events)
    records = stored = 0
    async for batch in read_topic(hub.settings.bootstrap, hub.topics.events):
        records += len(batch)
        stored += await projector.handle_batch(batch)
    log.info("replay.finished", records=records, stored=stored)
    return ReplayReport(records=records, stored=stored)
