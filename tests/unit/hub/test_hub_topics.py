"""Topic names, the agency kind an ingest topic carries, and the topics the hub creates."""

from __future__ import annotations

import pytest

from contracts import AgencyKind
from hub.settings import Settings
from hub.streams.topics import Topics, TopicSpec

pytestmark = pytest.mark.unit

SEVEN_DAYS_MS = str(7 * 24 * 60 * 60 * 1000)
KEEP_FOREVER = {"retention.ms": "-1", "cleanup.policy": "delete"}


@pytest.fixture
def topics() -> Topics:
    return Topics(Settings(topic_prefix="t.", events_partitions=6, ingest_partitions=3))


class TestNames:
    """Every topic name carries the deployment's prefix."""

    def test_hub_topics(self, topics: Topics) -> None:
        """hub.events and hub.dlq are prefixed."""
        assert (topics.events, topics.dlq) == ("t.hub.events", "t.hub.dlq")

    def test_ingest_topic_per_kind(self, topics: Topics) -> None:
        """One ingest topic per agency kind, from an enum or its value."""
        assert topics.ingest(AgencyKind.health) == "t.ingest.health"
        assert topics.ingest("schools") == "t.ingest.schools"
        assert topics.all_ingest == [
            "t.ingest.police",
            "t.ingest.health",
            "t.ingest.schools",
            "t.ingest.childrens_services",
        ]

    def test_no_prefix(self) -> None:
        """With the default empty prefix the names are bare."""
        bare = Topics(Settings(topic_prefix=""))
        assert (bare.events, bare.dlq, bare.ingest("police")) == (
            "hub.events",
            "hub.dlq",
            "ingest.police",
        )

    def test_unknown_kind_refused(self, topics: Topics) -> None:
        """There is no ingest topic for a kind that does not exist."""
        with pytest.raises(ValueError):
            topics.ingest("fire")


class TestIngestKind:
    """An ingest topic names its agency kind; every other topic names none."""

    @pytest.mark.parametrize(
        ("topic", "kind"),
        [
            ("t.ingest.police", AgencyKind.police),
            ("t.ingest.health", AgencyKind.health),
            ("t.ingest.schools", AgencyKind.schools),
            ("t.ingest.childrens_services", AgencyKind.childrens_services),
            ("t.hub.events", None),
            ("t.hub.dlq", None),
            ("t.ingest.fire", None),
            ("t.ingest.", None),
            ("u.ingest.health", None),
        ],
    )
    def test_kind_of_topic(self, topics: Topics, topic: str, kind: AgencyKind | None) -> None:
        """The kind carried by a topic of this deployment, or None."""
        assert topics.ingest_kind(topic) == kind

    def test_unprefixed_ingest_topic_is_not_ours(self, topics: Topics) -> None:
        """Under prefix 't.', a bare 'ingest.health' is another deployment's topic: None."""
        assert topics.ingest_kind("ingest.health") is None


class TestSpecs:
    """The topics to create, with partitions and retention."""

    def test_specs(self, topics: Topics) -> None:
        """Ingest kept a week; hub.events and hub.dlq kept forever (retention -1)."""
        assert topics.specs() == [
            TopicSpec("t.ingest.police", 3, {"retention.ms": SEVEN_DAYS_MS}),
            TopicSpec("t.ingest.health", 3, {"retention.ms": SEVEN_DAYS_MS}),
            TopicSpec("t.ingest.schools", 3, {"retention.ms": SEVEN_DAYS_MS}),
            TopicSpec("t.ingest.childrens_services", 3, {"retention.ms": SEVEN_DAYS_MS}),
            TopicSpec("t.hub.events", 6, KEEP_FOREVER),
            TopicSpec("t.hub.dlq", 1, KEEP_FOREVER),
        ]

    def test_partitions_follow_settings(self) -> None:
        """Partition counts come from settings."""
        specs = Topics(Settings(topic_prefix="", events_partitions=12, ingest_partitions=2)).specs()
        assert {s.name: s.partitions for s in specs} == {
            "ingest.police": 2,
            "ingest.health": 2,
            "ingest.schools": 2,
            "ingest.childrens_services": 2,
            "hub.events": 12,
            "hub.dlq": 1,
        }
