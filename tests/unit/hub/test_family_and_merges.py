"""The family view's household logic, and merges as the narrative follows them from the log."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hub.crypto.runtime import HubSecurity
from hub.domain.family import Connection, FamilyMember, household_children
from hub.identity.events import ChildrenMerged, MergeUndone
from hub.identity.households import Link, LinkKind
from hub.identity.publish import identity_record
from hub.observability import Metrics
from hub.settings import Settings
from hub.store.repository import IdentityGroup, MergeChange, SqlStore
from hub.streams.projector import NarrativeProjector
from hub.streams.records import ConsumedRecord
from hub.streams.topics import Topics

from .conftest import NOW, RecordingPublish

pytestmark = pytest.mark.unit

ADDRESS, CARER, CONNECTED = LinkKind.address, LinkKind.related, LinkKind.connected


class TestHouseholdChildren:
    """Other children of the household, each with how they are connected, closest first."""

    def test_every_kind_of_connection(self) -> None:
        """Same address, same carer, through others, and through a connected adult."""
        links = [
            Link("ch-a", "addr:1", ADDRESS),
            Link("ch-b", "addr:1", ADDRESS),
            Link("ch-a", "adult:mum", CARER),
            Link("ch-c", "adult:mum", CARER),
            Link("ch-c", "addr:2", ADDRESS),
            Link("ch-d", "addr:2", ADDRESS),
            Link("ch-a", "adult:partner", CONNECTED),
            Link("ch-e", "adult:partner", CONNECTED),
        ]
        assert household_children(links, ["ch-a"]) == [
            FamilyMember("ch-b", Connection.same_address),
            FamilyMember("ch-c", Connection.same_carer),
            FamilyMember("ch-d", Connection.same_household),
            FamilyMember("ch-e", Connection.same_adult_connected),
        ]

    def test_merged_children_are_not_their_own_family(self) -> None:
        """A child merged into this one is the same child, not a sibling."""
        links = [Link("ch-a", "addr:1", ADDRESS), Link("ch-a2", "addr:1", ADDRESS)]
        assert household_children(links, ["ch-a", "ch-a2"]) == []

    def test_connected_adult_does_not_join_households(self) -> None:
        """A partner connected to two households does not make their addresses one."""
        links = [
            Link("ch-a", "adult:partner", CONNECTED),
            Link("ch-x", "addr:9", ADDRESS),
            Link("ch-y", "addr:9", ADDRESS),
        ]
        assert household_children(links, ["ch-a"]) == []


def change(merge_id: str, surviving: str, merged: str, minutes: int, *, undone: bool = False):
    return MergeChange(merge_id, surviving, merged, NOW + timedelta(minutes=minutes), undone)


class TestIdentityGroups:
    """A child's story covers every child merged into it, following merges of merges."""

    async def test_group_follows_merges_up_and_down(self, store: SqlStore) -> None:
        """A into B, C into B, B into D: asking for any of them gives D's whole group."""
        async with store.engine.begin() as conn:
            await store.apply_merges(
                conn,
                [
                    change("m1", "ch-b", "ch-a", 1),
                    change("m2", "ch-b", "ch-c", 2),
                    change("m3", "ch-d", "ch-b", 3),
                ],
            )
        expected = IdentityGroup("ch-d", ("ch-d", "ch-b", "ch-a", "ch-c"))
        assert await store.identity_group("ch-a") == expected
        assert await store.identity_group("ch-d") == expected
        assert await store.identity_group("ch-z") == IdentityGroup("ch-z", ("ch-z",))

    async def test_unmerge_seen_before_its_merge_wins(self, store: SqlStore) -> None:
        """Replayed out of order, an un-merge still leaves the children apart."""
        async with store.engine.begin() as conn:
            await store.apply_merges(conn, [change("m1", "ch-b", "ch-a", 5, undone=True)])
            await store.apply_merges(conn, [change("m1", "ch-b", "ch-a", 1)])
        assert await store.identity_group("ch-a") == IdentityGroup("ch-a", ("ch-a",))

    async def test_reset_forgets_merges(self, store: SqlStore) -> None:
        """`hub replay` rebuilds merges from the log like everything else."""
        async with store.engine.begin() as conn:
            await store.apply_merges(conn, [change("m1", "ch-b", "ch-a", 1)])
        await store.reset_projection("narrative")
        assert await store.identity_group("ch-a") == IdentityGroup("ch-a", ("ch-a",))


class TestProjectorFollowsMerges:
    """The projector applies identity records from hub.events with its positions."""

    async def test_merge_then_unmerge_records(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """A merge record groups the children; the un-merge record parts them again."""
        merged = ChildrenMerged("mg-1", "ch-b", "ch-a", ("r1",), "rv-1", "cs/sw-1", "same", NOW)
        undone = MergeUndone("mg-1", "ch-a", "ch-b", ("r1",), "cs/sw-1", "cousin", NOW)
        projector = NarrativeProjector(
            store=store,
            topics=Topics(Settings(topic_prefix="t.")),
            publish=publish,
            metrics=Metrics(),
            security=security,
            clock=lambda: NOW,
        )

        def consumed(offset: int, event: ChildrenMerged | MergeUndone) -> ConsumedRecord:
            value = identity_record(event, now=NOW).model_dump_json().encode()
            return ConsumedRecord("t.hub.events", 0, offset, b"ch-b", value)

        assert await projector.handle_batch([consumed(0, merged)]) == 0
        assert await store.identity_group("ch-a") == IdentityGroup("ch-b", ("ch-b", "ch-a"))
        await projector.handle_batch([consumed(0, merged), consumed(1, undone)])
        assert await store.identity_group("ch-a") == IdentityGroup("ch-a", ("ch-a",))
        async with store.engine.connect() as conn:
            assert await store.positions(conn, "narrative") == {("t.hub.events", 0): 2}
        assert publish.to("t.hub.dlq") == []

    async def test_malformed_identity_record_is_dead_lettered(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """An identity record missing its ids goes to hub.dlq and the log moves on."""
        projector = NarrativeProjector(
            store=store,
            topics=Topics(Settings(topic_prefix="t.")),
            publish=publish,
            metrics=Metrics(),
            security=security,
            clock=lambda: NOW,
        )
        value = (
            b'{"record_kind":"identity","type":"identity.merged","child_id":"ch-b",'
            b'"published_at":"2024-03-05T09:00:00Z","data":{}}'
        )
        await projector.handle_batch([ConsumedRecord("t.hub.events", 0, 0, None, value)])
        assert len(publish.to("t.hub.dlq")) == 1
        async with store.engine.connect() as conn:
            assert await store.positions(conn, "narrative") == {("t.hub.events", 0): 1}
