"""The delivery ledger on SQLite and PostgreSQL: once per subject, leases, dead, re-drive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from hub.delivery.store import (
    DeliveryNotDead,
    DeliveryNotFound,
    DeliveryStatus,
    DeliveryStore,
    HeldDelivery,
    NewDelivery,
    delivery_id_for,
)
from hub.store.db import create_engine, migrate
from tests.support.databases import BACKENDS, fresh_database_url

pytestmark = pytest.mark.integration

T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)


class Clock:
    """A settable frozen clock."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=BACKENDS)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> AsyncIterator[DeliveryStore]:
    """A DeliveryStore on a freshly migrated database of each backend."""
    engine = create_engine(await fresh_database_url(request.param, tmp_path))
    await migrate(engine)
    try:
        yield DeliveryStore(engine, clock=clock)
    finally:
        await engine.dispose()


async def hook(store: DeliveryStore, subject: str = "al-1") -> str:
    """An alert's webhook queued as the alert processor's outbox queues it (due at T0)."""
    item = NewDelivery("hook", "webhook", subject, "child-1", '{"a":1}')
    async with store.engine.begin() as conn:
        await store.queue_in(conn, [item], due_at=T0)
    return item.delivery_id


class TestClaim:
    async def test_once_per_subscriber_and_subject(self, store: DeliveryStore) -> None:
        """Claiming the same subject twice (even at once) leaves one pending row."""
        rows = await asyncio.gather(*(hook(store) for _ in range(4)))
        assert set(rows) == {delivery_id_for("hook", "al-1")}
        listed = await store.listing()
        assert [(r.delivery_id, r.status, r.attempts) for r in listed] == [
            (delivery_id_for("hook", "al-1"), DeliveryStatus.pending, 0)
        ]

    async def test_other_subscriber_is_another_delivery(self, store: DeliveryStore) -> None:
        """The same event to two subscribers is two deliveries."""
        await hook(store)
        [other] = (await store.claim_many([("school", "topic", "al-1", "child-1")])).values()
        assert other.delivery_id == delivery_id_for("school", "al-1")
        assert len(await store.listing()) == 2

    async def test_claim_many_keeps_existing_rows(self, store: DeliveryStore) -> None:
        """Claiming a batch creates the new rows and returns existing ones unchanged,
        also when two consumers claim overlapping batches at once."""
        existing = await hook(store, "ev-1")
        await store.record_failure(
            existing, attempts=1, error_class="X", status_code=None, retry_at=None
        )
        batch = [("school", "topic", f"ev-{n}", "child-1") for n in (1, 2, 3)]
        batch.append(("hook", "webhook", "ev-1", "child-1"))
        first, second = await asyncio.gather(store.claim_many(batch), store.claim_many(batch))
        assert first == second
        assert sorted((r.subscriber_id, r.subject_id, r.status) for r in first.values()) == [
            ("hook", "ev-1", DeliveryStatus.dead),
            ("school", "ev-1", DeliveryStatus.pending),
            ("school", "ev-2", DeliveryStatus.pending),
            ("school", "ev-3", DeliveryStatus.pending),
        ]
        assert len(await store.listing()) == 4


class TestRetries:
    async def test_lease_once(self, store: DeliveryStore, clock: Clock) -> None:
        """Of two processes taking the same due row, one wins; it is not due again meanwhile."""
        await hook(store)
        (due,) = await store.due(T0, kind="webhook")
        won = await asyncio.gather(*(store.lease(due, T0, T0 + timedelta(minutes=2)) for _ in "ab"))
        assert sorted(won) == [False, True]
        assert await store.due(T0 + timedelta(minutes=1), kind="webhook") == []
        assert await store.due(T0, kind="topic") == []

    async def test_a_stale_attempt_changes_nothing(
        self, store: DeliveryStore, clock: Clock
    ) -> None:
        """An attempt whose lease ran out while another process delivered the webhook (or
        recorded a later failure) cannot set it back to pending or dead."""
        delivery_id = await hook(store)
        row = await store.get(delivery_id)
        assert row is not None
        async with store.engine.begin() as conn:
            await store.mark_delivered(conn, delivery_id, attempts=1, status_code=200)
        await store.record_failure(
            delivery_id, attempts=1, error_class="ReadTimeout", status_code=None, retry_at=T0
        )
        await store.mark_withheld(delivery_id, attempts=0)
        done = await store.get(delivery_id)
        assert done is not None
        assert (done.status, done.attempts, done.last_error_class) == (
            DeliveryStatus.delivered,
            1,
            None,
        )

    async def test_failure_then_dead_then_retry(self, store: DeliveryStore, clock: Clock) -> None:
        """Failures keep the last error; dead rows are listed; retry resets them to due now."""
        delivery_id = await hook(store)
        await store.record_failure(
            delivery_id,
            attempts=1,
            error_class="HTTPStatusError",
            status_code=503,
            retry_at=T0 + timedelta(seconds=2),
        )
        (due,) = await store.due(T0 + timedelta(seconds=2), kind="webhook")
        assert (due.attempts, due.last_status_code) == (1, 503)
        clock.now = T0 + timedelta(seconds=3)
        await store.record_failure(
            delivery_id, attempts=2, error_class="ReadTimeout", status_code=None, retry_at=None
        )
        (dead,) = await store.listing(status=DeliveryStatus.dead)
        assert dead.public() == {
            "delivery_id": delivery_id,
            "subscriber_id": "hook",
            "kind": "webhook",
            "subject_id": "al-1",
            "status": "dead",
            "attempts": 2,
            "next_attempt_at": None,
            "last_error_class": "ReadTimeout",
            "last_status_code": None,
            "created_at": T0.isoformat(),
            "updated_at": (T0 + timedelta(seconds=3)).isoformat(),
            "delivered_at": None,
        }
        clock.now = T0 + timedelta(minutes=5)
        retried = await store.retry(delivery_id)
        assert (retried.status, retried.attempts, retried.next_attempt_at) == (
            DeliveryStatus.pending,
            0,
            clock.now,
        )
        assert [r.delivery_id for r in await store.due(clock.now, kind="webhook")] == [delivery_id]

    async def test_retry_refuses_live_and_unknown(self, store: DeliveryStore) -> None:
        """Only a dead delivery can be retried; an unknown id is not found."""
        delivery_id = await hook(store)
        with pytest.raises(DeliveryNotDead, match="is pending, not dead"):
            await store.retry(delivery_id)
        with pytest.raises(DeliveryNotFound):
            await store.retry("dl-" + "0" * 32)

    async def test_listing_filters(self, store: DeliveryStore) -> None:
        """The listing filters by subscriber and by status."""
        first = await hook(store, "al-1")
        await hook(store, "al-2")
        await store.mark_withheld(first, attempts=0)
        withheld = await store.listing(status=DeliveryStatus.withheld)
        assert [r.delivery_id for r in withheld] == [first]
        assert await store.listing(subscriber_id="nobody") == []
        assert len(await store.listing(subscriber_id="hook", limit=1)) == 1


class TestHeld:
    """Deliveries a rule's delay holds: recorded once, taken by one process at a time, and
    only the taker sends, holds again or withholds them."""

    async def test_recorded_once_and_found_when_due_or_by_child(self, store: DeliveryStore) -> None:
        """A hold is recorded once (a replay leaves the row as it is); the sweep finds what
        is due (times kept in UTC whatever offset they came with), a batch its children's."""
        bst = timezone(timedelta(hours=1))
        first = HeldDelivery(
            "school", "evt-1", "child-1", '{"sealed": 1}', datetime(2025, 6, 2, 11, 0, tzinfo=bst)
        )
        waiting = HeldDelivery("school", "evt-2", "child-2", '{"sealed": 2}', None)
        async with store.engine.begin() as conn:
            await store.hold_in(conn, [first, waiting])
            await store.hold_in(conn, [HeldDelivery("school", "evt-1", "child-1", "x", T0)])
        row = await store.get(first.delivery_id)
        assert row is not None
        assert (row.status, row.next_attempt_at, row.body) == (
            DeliveryStatus.held,
            T0 + timedelta(hours=1),  # 11:00 BST is 10:00 UTC
            '{"sealed": 1}',
        )
        assert await store.held(due_by=T0 + timedelta(minutes=59)) == []
        assert [r.subject_id for r in await store.held(due_by=T0 + timedelta(hours=1))] == ["evt-1"]
        assert [r.subject_id for r in await store.held(child_ids=["child-2"])] == ["evt-2"]
        assert await store.held() == []

    async def test_one_process_takes_it_and_only_the_taker_decides(
        self, store: DeliveryStore, clock: Clock
    ) -> None:
        """Of two processes that read the same held row, one takes it (pending, an attempt
        counted, until the lease ends); the other's take and a batch's search miss it. Held
        again it can be taken again; withheld, its record is dropped and it is never due."""
        item = HeldDelivery("school", "evt-1", "child-1", "{}", T0)
        async with store.engine.begin() as conn:
            await store.hold_in(conn, [item])
        (seen,) = await store.held(due_by=T0)
        lease = T0 + timedelta(minutes=5)
        taken = await asyncio.gather(store.take_held(seen, lease), store.take_held(seen, lease))
        assert sorted(taken) == [False, True]
        row = await store.get(item.delivery_id)
        assert row is not None
        assert (row.status, row.attempts, row.next_attempt_at) == (
            DeliveryStatus.pending,
            1,
            lease,
        )
        assert await store.held(child_ids=["child-1"]) == []
        assert await store.held(due_by=T0) == []
        # The taker died: once its lease ends the sweep finds the row again.
        (left,) = await store.held(due_by=lease)
        assert await store.take_held(left, lease + timedelta(minutes=5))

        async with store.engine.begin() as conn:
            await store.hold_again_in(conn, [(item.delivery_id, T0 + timedelta(days=1))])
        (again,) = await store.held(child_ids=["child-1"])
        assert (again.status, again.next_attempt_at) == (
            DeliveryStatus.held,
            T0 + timedelta(days=1),
        )
        assert await store.take_held(again, lease)
        async with store.engine.begin() as conn:
            await store.withhold_in(conn, [item.delivery_id], why="EventSuperseded")
        gone = await store.get(item.delivery_id)
        assert gone is not None
        assert (gone.status, gone.body, gone.last_error_class) == (
            DeliveryStatus.withheld,
            None,
            "EventSuperseded",
        )
        assert await store.held(due_by=T0 + timedelta(days=30)) == []
        async with store.engine.begin() as conn:  # a late "sent" from a stale taker: no effect
            await store.mark_delivered_many(conn, [(item.delivery_id, 9)])
        still = await store.get(item.delivery_id)
        assert still is not None and still.status is DeliveryStatus.withheld
