"""The delivery consumer: sealed `hub.events` records opened, described and delivered."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.event import listen
from structlog.testing import capture_logs

from hub.crypto.encryption import FieldCipher
from hub.crypto.fakes import MemoryDataKeys
from hub.delivery.consumer import DeliveryConsumer, ProjectThenDeliver
from hub.delivery.context import ChildSnapshot, NarrativeChildFacts
from hub.delivery.topics import DeliveryCounts
from hub.store.repository import SqlStore
from hub.streams.projector import OpenedEvents
from hub.streams.records import ConsumedRecord
from hub.streams.wire import SealedHubEvent
from tests.unit.test_delivery_topics import (
    CHILD,
    World,
    clock,
    expected_copy,
    police_concern,
    world,
)

pytestmark = pytest.mark.unit

__all__ = ["world"]  # the fixture, imported for this module's tests

ERASED_CHILD = "child-0002"
OTHER_CHILD = "child-0003"


async def snapshot(child_ids: Sequence[str]) -> dict[str, ChildSnapshot]:
    return dict.fromkeys(child_ids, ChildSnapshot())


async def record(cipher: FieldCipher, child_id: str, offset: int, n: int) -> ConsumedRecord:
    """A `hub.events` record of police concern ``n``, sealed under the child's key."""
    plain = police_concern(n).model_dump(mode="json")
    sealed = SealedHubEvent(
        child_id=child_id,
        ingested_at=datetime(2025, 6, 2, 8, 0, tzinfo=UTC),
        envelope=await cipher.seal_envelope(child_id, plain),
    )
    value = sealed.model_dump_json().encode()
    return ConsumedRecord("hub.events", 0, offset, child_id.encode(), value)


def consumer_of(
    world: World,
    cipher: FieldCipher,
    snapshots: Callable[[Sequence[str]], Awaitable[Mapping[str, ChildSnapshot]]],
) -> DeliveryConsumer:
    """The consumer over the world's processor and ledger, the narrative store beside it."""
    return DeliveryConsumer(
        processor=world.processor,
        cipher=cipher,
        snapshots=snapshots,
        ledger=world.store,
        shown=SqlStore(world.store.engine).shown_events,
        clock=clock,
    )


class TestDeliveryConsumer:
    async def test_opens_and_delivers(self, world: World) -> None:
        """A sealed record is opened and its permitted, redacted copy published."""
        keys = MemoryDataKeys()
        cipher = FieldCipher(keys)
        consumer = consumer_of(world, cipher, snapshot)
        counts = await consumer.handle_batch([await record(cipher, CHILD, 0, 1)])
        assert counts == DeliveryCounts(published=1, denied=1, duplicates=0)
        ((_, value, key, _),) = world.publish.sent
        assert (key, json.loads(value)) == (CHILD.encode(), expected_copy(police_concern(1)))

    async def test_reads_the_batchs_children_in_one_call(self, world: World) -> None:
        """The snapshots of every child in the batch are asked for once, together, and each
        event is decided with its own child's snapshot."""
        keys = MemoryDataKeys()
        cipher = FieldCipher(keys)
        asked: list[list[str]] = []

        async def snapshots(child_ids: Sequence[str]) -> dict[str, ChildSnapshot]:
            asked.append(sorted(set(child_ids)))
            return await snapshot(child_ids)

        consumer = consumer_of(world, cipher, snapshots)
        batch = [
            await record(cipher, CHILD, 0, 1),
            await record(cipher, OTHER_CHILD, 1, 2),
            await record(cipher, CHILD, 2, 3),
        ]
        counts = await consumer.handle_batch(batch)
        assert asked == [[CHILD, OTHER_CHILD]]
        assert counts == DeliveryCounts(published=3, denied=3, duplicates=0)

    async def test_skips_invalid_and_erased(self, world: World) -> None:
        """A record that is not a hub event, or whose child's key is destroyed, is skipped
        (logged with its position only); the rest of the batch is delivered."""
        keys = MemoryDataKeys()
        cipher = FieldCipher(keys)
        consumer = consumer_of(world, cipher, snapshot)
        erased = await record(cipher, ERASED_CHILD, 1, 2)
        keys.destroy_child_key(ERASED_CHILD)
        batch = [
            ConsumedRecord("hub.events", 0, 0, None, b"not json"),
            erased,
            await record(cipher, CHILD, 2, 3),
        ]
        with capture_logs() as logs:
            counts = await consumer.handle_batch(batch)
        assert counts.published == 1
        skipped = [
            (e["offset"], e["cause"]) for e in logs if e["event"] == "delivery.record_skipped"
        ]
        assert skipped == [(0, "invalid"), (1, "erased")]
        assert [json.loads(v)["id"] for _, v, _, _ in world.publish.sent] == [police_concern(3).id]

    async def test_reads_snapshots_and_context_on_one_connection(self, world: World) -> None:
        """The batch's snapshots and its children's governance context are read on one
        connection checked out once; the ledger and audit writes come after it."""
        keys = MemoryDataKeys()
        cipher = FieldCipher(keys)
        engine = world.store.engine
        situations = NarrativeChildFacts(SqlStore(engine), keys).situations
        batch = [await record(cipher, CHILD, 0, 1), await record(cipher, OTHER_CHILD, 1, 2)]
        checkouts: list[str] = []

        async def snapshots(child_ids: Sequence[str]) -> dict[str, ChildSnapshot]:
            checkouts.append("snapshots")
            return await situations(child_ids)

        consumer = consumer_of(world, cipher, snapshots)
        listen(engine.sync_engine.pool, "checkout", lambda *a: checkouts.append("checkout"))
        listen(engine.sync_engine, "commit", lambda *a: checkouts.append("commit"))
        counts = await consumer.handle_batch(batch)
        assert counts.published == 2
        # The shared reads (snapshots, then governance), then the ledger's first claim.
        assert checkouts[: checkouts.index("commit")] == ["checkout", "snapshots", "checkout"]


class TestProjectThenDeliver:
    async def test_a_batch_with_nothing_to_deliver_checks_out_no_connection(
        self, world: World
    ) -> None:
        """A batch of merge decisions and unreadable records reads no snapshot and takes no
        connection from the pool; it delivers nothing."""
        cipher = FieldCipher(MemoryDataKeys())
        asked: list[list[str]] = []

        async def snapshots(child_ids: Sequence[str]) -> dict[str, ChildSnapshot]:
            asked.append(list(child_ids))
            return await snapshot(child_ids)

        consumer = consumer_of(world, cipher, snapshots)
        checkouts: list[object] = []
        listen(world.store.engine.sync_engine.pool, "checkout", lambda *a: checkouts.append(a))
        merge = b'{"record_kind":"identity","type":"identity.merged"}'
        batch = [
            ConsumedRecord("hub.events", 0, 0, CHILD.encode(), merge),
            ConsumedRecord("hub.events", 0, 1, None, b"not json"),
        ]
        counts = await consumer.handle_batch(batch)
        assert (counts, asked, checkouts) == (DeliveryCounts(0, 0, 0), [], [])
        assert world.publish.sent == []

    async def test_projects_first_then_delivers(self, world: World) -> None:
        """The projector sees the batch before delivery does; its count is returned."""
        order: list[str] = []

        class Projector:
            async def handle_batch(
                self, records: list[ConsumedRecord], *, opened: OpenedEvents | None = None
            ) -> int:
                order.append("projected")
                return len(records)

        async def snap(child_ids: Sequence[str]) -> dict[str, ChildSnapshot]:
            order.append("snapshot")
            return await snapshot(child_ids)

        cipher = FieldCipher(MemoryDataKeys())
        deliveries = consumer_of(world, cipher, snap)
        handler = ProjectThenDeliver(Projector(), deliveries)
        assert await handler.handle_batch([await record(cipher, CHILD, 0, 1)]) == 1
        assert order == ["projected", "snapshot"]
        assert len(world.publish.sent) == 1

    async def test_deliveries_reuse_what_the_projector_opened(self, world: World) -> None:
        """An envelope the projector opened is delivered without being opened again; a record
        it did not open (below its position, say) is opened by the delivery consumer."""
        keys = MemoryDataKeys()
        cipher = FieldCipher(keys)
        first, second = await record(cipher, CHILD, 0, 1), await record(cipher, CHILD, 1, 2)
        opens: list[int] = []

        class CountingCipher(FieldCipher):
            async def open_envelope(self, child_id: str, sealed: Any, **kw: Any) -> Any:
                opens.append(1)
                return await super().open_envelope(child_id, sealed, **kw)

        class Projector:
            async def handle_batch(
                self, records: list[ConsumedRecord], *, opened: OpenedEvents | None = None
            ) -> int:
                assert opened == {}
                opened[("hub.events", 0, 0)] = (CHILD, police_concern(1))
                return 1

        deliveries = consumer_of(world, CountingCipher(keys), snapshot)
        assert await ProjectThenDeliver(Projector(), deliveries).handle_batch([first, second]) == 1
        assert opens == [1]
        assert [json.loads(v) for _, v, _, _ in world.publish.sent] == [
            expected_copy(police_concern(1)),
            expected_copy(police_concern(2)),
        ]
