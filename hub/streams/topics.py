"""The hub's topic names and partition counts, derived from settings (with a test prefix)."""

from __future__ import annotations

from dataclasses import dataclass

from contracts import AgencyKind
from hub.settings import Settings

__all__ = ["TopicSpec", "Topics"]

INGEST_PREFIX = "ingest."


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create: name, partitions and topic-level configuration."""

    name: str
    partitions: int
    config: dict[str, str]


class Topics:
    """Names of every topic for one deployment (prefix applied)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._prefix = settings.topic_prefix
        self.events = settings.topic("hub.events")
        self.dlq = settings.topic("hub.dlq")

    def ingest(self, kind: AgencyKind | str) -> str:
        """The ingest topic for an agency kind (`ingest.<kind>`)."""
        return self._settings.topic(f"{INGEST_PREFIX}{AgencyKind(kind).value}")

    @property
    def all_ingest(self) -> list[str]:
        """Every ingest topic, one per agency kind."""
        return [self.ingest(kind) for kind in AgencyKind]

    def ingest_kind(self, topic: str) -> AgencyKind | None:
        """The agency kind an ingest topic carries, or None for any other topic."""
        if not topic.startswith(self._prefix):
            return None
        bare = topic[len(self._prefix) :]
        if not bare.startswith(INGEST_PREFIX):
            return None
        try:
            return AgencyKind(bare.removeprefix(INGEST_PREFIX))
        except ValueError:
            return None

    def specs(self) -> list[TopicSpec]:
        """Every topic the hub needs, with explicit partition counts.

        `hub.events` is the source of truth: kept forever (retention -1), keyed by child id.
        """
        keep_forever = {"retention.ms": "-1", "cleanup.policy": "delete"}
        specs = [
            TopicSpec(t, self._settings.ingest_partitions, {"retention.ms": str(7 * 86_400_000)})
            for t in self.all_ingest
        ]
        specs.append(TopicSpec(self.events, self._settings.events_partitions, dict(keep_forever)))
        specs.append(TopicSpec(self.dlq, 1, dict(keep_forever)))
        return specs
