"""Topic deliveries a rule's delay holds: kept in the ledger with the sealed record, and sent
once the delay ends (its time passes, or the milestone it waits for is recorded for the
child), or withheld for good when the rules no longer permit it or the event is gone."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from contracts import parse_envelope
from contracts.examples import example_data, example_envelope
from hub.crypto.encryption import FieldCipher
from hub.crypto.fakes import MemoryDataKeys
from hub.delivery.config import load_subscribers
from hub.delivery.consumer import DeliveryConsumer
from hub.delivery.context import ChildSnapshot
from hub.delivery.store import DeliveryStatus, DeliveryStore, StoredDelivery, delivery_id_for
from hub.delivery.topics import DeliveryCounts, TopicDeliveryProcessor
from hub.governance import Governance, GovernanceSettings
from hub.governance.audit import AuditAction
from hub.governance.tables import audit_records
from hub.settings import Settings
from hub.sharing import Milestone
from hub.store.db import create_engine, migrate
from hub.streams.records import ConsumedRecord
from hub.streams.wire import SealedHubEvent
from tests.unit.test_delivery_consumer import record
from tests.unit.test_delivery_topics import AGENCIES, CHILD, FakePublish, police_concern

pytestmark = pytest.mark.unit

EVENT_AT = datetime(2024, 3, 4, 21, 40, tzinfo=UTC)  # the example envelope's time
RELEASE_AT = EVENT_AT + timedelta(hours=12)
SCHOOL = "school-dsl"

RULES = """\
version: "held-test.1"
author: Test IG
reason: Testing held deliveries.
rules:
  - id: school-after-twelve-hours
    description: Police domestic-abuse concerns reach the school DSL twelve hours on.
    owner: Test IG
    reason: Testing.
    effective_from: 2024-01-01
    match:
      source_agency_kinds: [police]
      event_types: [concern.raised]
    recipients:
      agency_kinds: [schools]
      roles: [designated_safeguarding_lead]
    purpose: education_safeguarding
    lawful_basis: legal_obligation
    consent: not_required
    obligations:
      remove_fields: [person.related, person.address, subject]
      delay: {hours_after_event: 12}
  - id: school-after-strategy
    description: Children's services concerns reach the DSL of an involved school after a
      strategy meeting.
    owner: Test IG
    reason: Testing.
    effective_from: 2024-01-01
    match:
      source_agency_kinds: [childrens_services]
      event_types: [concern.raised]
    recipients:
      agency_kinds: [schools]
      roles: [designated_safeguarding_lead]
      involved_with_child: true
    purpose: education_safeguarding
    lawful_basis: public_task
    consent: not_required
    obligations:
      remove_fields: [person.related, person.address, subject]
      delay: {until_milestone: strategy_meeting}
"""

SUBSCRIBERS = """\
version: 1
subscribers:
  - id: school-dsl
    agency_id: northshire-primary
    role: designated_safeguarding_lead
    purpose: education_safeguarding
    kind: topic
"""


@dataclass
class Clock:
    now: datetime = EVENT_AT + timedelta(hours=1)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Story:
    """What the narrative store says of the child: its situation, and the events shown."""

    snapshot: ChildSnapshot = field(default_factory=ChildSnapshot)
    hidden: set[str] = field(default_factory=set)

    async def snapshots(self, child_ids: Sequence[str]) -> dict[str, ChildSnapshot]:
        return dict.fromkeys(child_ids, self.snapshot)

    async def shown(self, event_ids: Sequence[str]) -> set[str]:
        return set(event_ids) - self.hidden


@dataclass
class World:
    consumer: DeliveryConsumer
    processor: TopicDeliveryProcessor
    publish: FakePublish
    ledger: DeliveryStore
    gov: Governance
    clock: Clock
    story: Story
    keys: MemoryDataKeys
    cipher: FieldCipher

    def another_consumer(self) -> DeliveryConsumer:
        """A second process's consumer over the same store."""
        return consumer(self.processor, self.cipher, self.ledger, self.story, self.clock)

    async def row(self, event_id: str) -> StoredDelivery:
        found = await self.ledger.get(delivery_id_for(SCHOOL, event_id))
        assert found is not None
        return found

    def published_ids(self) -> list[str]:
        return [json.loads(value)["id"] for _, value, _, _ in self.publish.sent]

    async def actions(self) -> list[str]:
        async with self.ledger.engine.connect() as conn:
            rows = await conn.execute(select(audit_records.c.action).order_by(audit_records.c.seq))
            return [str(a) for a in rows.scalars()]


def consumer(
    processor: TopicDeliveryProcessor,
    cipher: FieldCipher,
    ledger: DeliveryStore,
    story: Story,
    clock: Clock,
) -> DeliveryConsumer:
    return DeliveryConsumer(
        processor=processor,
        cipher=cipher,
        snapshots=story.snapshots,
        ledger=ledger,
        shown=story.shown,
        clock=clock,
    )


TWO_SYSTEMS = (
    SUBSCRIBERS
    + """\
  - id: school-mis
    agency_id: northshire-primary
    role: designated_safeguarding_lead
    purpose: education_safeguarding
    kind: topic
"""
)


@contextlib.asynccontextmanager
async def made(
    tmp_path: Path, subscribers: str = SUBSCRIBERS, keys: MemoryDataKeys | None = None
) -> AsyncIterator[World]:
    """A world over a migrated SQLite file: the held-test pack and these subscribers."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    await migrate(engine)
    (tmp_path / "rules.yaml").write_text(RULES, "utf-8")
    (tmp_path / "subscribers.yaml").write_text(subscribers, "utf-8")
    clock = Clock()
    gov = Governance.over(
        engine,
        GovernanceSettings(rules_bootstrap_file=tmp_path / "rules.yaml"),
        agencies=AGENCIES,
        clock=clock,
    )
    ledger = DeliveryStore(engine, clock=clock)
    publish = FakePublish()
    processor = TopicDeliveryProcessor(
        settings=Settings(topic_prefix="t1-"),
        subscribers=load_subscribers(tmp_path / "subscribers.yaml", agencies=AGENCIES),
        store=ledger,
        governance=gov,
        publish=publish,
        clock=clock,
    )
    keys = keys or MemoryDataKeys()
    cipher = FieldCipher(keys)
    story = Story()
    try:
        yield World(
            consumer(processor, cipher, ledger, story, clock),
            processor,
            publish,
            ledger,
            gov,
            clock,
            story,
            keys,
            cipher,
        )
    finally:
        await engine.dispose()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with made(tmp_path) as built:
        yield built


async def meeting_record(world: World, offset: int, at: datetime) -> ConsumedRecord:
    """Children's services' record of a strategy meeting about the child, held at ``at``."""
    data = example_data("contact.recorded")
    data["contact_type"] = "strategy_meeting"
    data["ended_at"] = (at + timedelta(hours=1)).isoformat()
    plain = example_envelope(
        id=f"northshire-cs:meeting-{offset}",
        source="urn:agency:northshire-cs",
        type="contact.recorded",
        agency_id="northshire-cs",
        agency_kind="childrens_services",
        time=at.isoformat(),
        recorded_at=(at + timedelta(hours=1)).isoformat(),
        data=data,
    )
    sealed = SealedHubEvent(
        child_id=CHILD,
        ingested_at=at,
        envelope=await world.cipher.seal_envelope(
            CHILD, parse_envelope(plain).model_dump(mode="json")
        ),
    )
    return ConsumedRecord(
        "hub.events", 0, offset, CHILD.encode(), sealed.model_dump_json().encode()
    )


class TestHeldByTime:
    async def test_sent_once_after_the_hours_pass(self, world: World) -> None:
        """Held at first (nothing sent, the decision audited, the sealed record kept with the
        row); not released before its time; sent once, audited, when the sweep finds it due."""
        event = await record(world.cipher, CHILD, 0, 1)
        counts = await world.consumer.handle_batch([event])
        assert counts == DeliveryCounts(published=0, denied=1, duplicates=0, held=1)
        assert world.publish.sent == []
        held = await world.row(police_concern(1).id)
        assert (held.status, held.next_attempt_at) == (DeliveryStatus.held, RELEASE_AT)
        assert held.body == event.value.decode()  # sealed: only the child's key opens it
        assert (await world.actions())[1:] == [AuditAction.delivery_withheld.value]

        world.clock.now = RELEASE_AT - timedelta(minutes=1)
        assert await world.consumer.release(due_by=world.clock.now) == DeliveryCounts()
        world.clock.now = RELEASE_AT + timedelta(minutes=1)
        released = await world.consumer.release(due_by=world.clock.now)
        assert released == DeliveryCounts(published=1)
        assert world.published_ids() == [police_concern(1).id]
        ((_, value, key, headers),) = world.publish.sent
        copy = json.loads(value)
        assert (key, "subject" in copy, "address" in copy["person"]) == (
            CHILD.encode(),
            False,
            False,
        )
        assert headers["x-rule-ids"] == "school-after-twelve-hours"
        done = await world.row(police_concern(1).id)
        assert (done.status, done.attempts, done.body) == (DeliveryStatus.delivered, 1, None)
        assert (await world.actions())[-1] == AuditAction.delivery_pushed.value

        assert await world.consumer.release(due_by=world.clock.now) == DeliveryCounts()
        await world.consumer.handle_batch([event])  # the event redelivered: not sent again
        assert len(world.publish.sent) == 1

    async def test_two_processes_send_it_once(self, world: World) -> None:
        """Two narrative processes sweeping at once: one takes the held delivery."""
        await world.consumer.handle_batch([await record(world.cipher, CHILD, 0, 1)])
        world.clock.now = RELEASE_AT
        other = world.another_consumer()
        counts = await asyncio.gather(
            world.consumer.release(due_by=RELEASE_AT), other.release(due_by=RELEASE_AT)
        )
        assert sorted(c.published for c in counts) == [0, 1]
        assert world.published_ids() == [police_concern(1).id]


class TestHeldByMilestone:
    def cs_concern(self, n: int) -> str:
        return police_concern(n, kind="childrens_services").id

    async def cs_record(self, world: World, offset: int, n: int) -> ConsumedRecord:
        plain = police_concern(n, kind="childrens_services").model_dump(mode="json")
        sealed = SealedHubEvent(
            child_id=CHILD,
            ingested_at=EVENT_AT,
            envelope=await world.cipher.seal_envelope(CHILD, plain),
        )
        return ConsumedRecord(
            "hub.events", 0, offset, CHILD.encode(), sealed.model_dump_json().encode()
        )

    async def test_released_when_a_later_batch_records_the_meeting(self, world: World) -> None:
        """Held with no time (a milestone has none until it is recorded); the batch that
        brings the child's strategy meeting releases it at once."""
        world.story.snapshot = ChildSnapshot(involved_agencies=frozenset({"northshire-primary"}))
        counts = await world.consumer.handle_batch([await self.cs_record(world, 0, 1)])
        assert (counts.held, world.publish.sent) == (1, [])
        held = await world.row(self.cs_concern(1))
        assert (held.status, held.next_attempt_at) == (DeliveryStatus.held, None)
        # A month on, the sweep's backstop decides it again: still held, nothing new audited.
        audited = await world.actions()
        world.clock.now = EVENT_AT + timedelta(days=30)
        assert await world.consumer.release(due_by=world.clock.now) == DeliveryCounts(
            denied=1, held=1
        )
        assert (await world.actions(), world.publish.sent) == (audited, [])
        assert await world.consumer.release(due_by=world.clock.now) == DeliveryCounts()

        meeting = EVENT_AT + timedelta(days=2)
        world.story.snapshot = ChildSnapshot(
            involved_agencies=frozenset({"northshire-primary"}),
            milestones={Milestone.strategy_meeting: meeting},
        )
        # An event that records no milestone leaves it alone; the meeting's batch releases it.
        counts = await world.consumer.handle_batch([await record(world.cipher, CHILD, 1, 2)])
        assert (counts.published, world.published_ids()) == (1, [police_concern(2).id])
        assert (await world.row(self.cs_concern(1))).status is DeliveryStatus.held
        counts = await world.consumer.handle_batch([await meeting_record(world, 2, meeting)])
        assert counts.published == 1
        assert world.published_ids() == [police_concern(2).id, self.cs_concern(1)]
        assert (await world.row(self.cs_concern(1))).status is DeliveryStatus.delivered

    async def test_withheld_for_good_when_the_rules_no_longer_permit_it(self, world: World) -> None:
        """The school is no longer involved when the meeting is recorded: the delivery is
        withheld for good (audited), and never decided again."""
        world.story.snapshot = ChildSnapshot(involved_agencies=frozenset({"northshire-primary"}))
        await world.consumer.handle_batch([await self.cs_record(world, 0, 1)])
        world.story.snapshot = ChildSnapshot(
            milestones={Milestone.strategy_meeting: EVENT_AT + timedelta(days=2)}
        )
        released = await world.consumer.release(child_ids=[CHILD])
        assert (released.published, released.denied, released.held) == (0, 1, 0)
        withheld = await world.row(self.cs_concern(1))
        assert (withheld.status, withheld.next_attempt_at) == (DeliveryStatus.withheld, None)
        assert (await world.actions()).count(AuditAction.delivery_withheld.value) == 2
        assert await world.consumer.release(child_ids=[CHILD]) == DeliveryCounts()
        assert world.publish.sent == []


class TestGone:
    async def test_a_retracted_event_is_never_sent(self, world: World) -> None:
        """Retracted (or corrected) while held: withheld when its time comes, nothing sent."""
        await world.consumer.handle_batch([await record(world.cipher, CHILD, 0, 1)])
        world.story.hidden.add(police_concern(1).id)
        world.clock.now = RELEASE_AT
        assert await world.consumer.release(due_by=RELEASE_AT) == DeliveryCounts(denied=1)
        assert (await world.row(police_concern(1).id)).status is DeliveryStatus.withheld
        assert world.publish.sent == []

    async def test_an_erased_childs_event_is_never_sent(self, world: World) -> None:
        """The child's key destroyed while held: the kept record cannot be opened; withheld."""
        await world.consumer.handle_batch([await record(world.cipher, CHILD, 0, 1)])
        world.keys.destroy_child_key(CHILD)
        world.clock.now = RELEASE_AT
        assert await world.consumer.release(due_by=RELEASE_AT) == DeliveryCounts(denied=1)
        assert (await world.row(police_concern(1).id)).status is DeliveryStatus.withheld
        assert world.publish.sent == []


class TestDecidedOnce:
    async def test_each_subscriber_holding_one_event_is_released(self, tmp_path: Path) -> None:
        """Two systems of the school hold the same event: both are sent when it is due, each
        once, and the event's decision is audited once per system."""
        async with made(tmp_path, TWO_SYSTEMS) as world:
            await world.consumer.handle_batch([await record(world.cipher, CHILD, 0, 1)])
            world.clock.now = RELEASE_AT
            released = await world.consumer.release(due_by=RELEASE_AT)
            assert released == DeliveryCounts(published=2)
            assert sorted(topic for topic, _, _, _ in world.publish.sent) == [
                "t1-deliver.school-dsl",
                "t1-deliver.school-mis",
            ]
            assert (await world.actions()).count(AuditAction.delivery_pushed.value) == 2

    async def test_a_replayed_event_leaves_a_held_row_to_its_release(self, world: World) -> None:
        """The event redelivered after its delay ended is not sent by the replay (a sweep may
        hold it that very moment); the sweep sends it, once."""
        event = await record(world.cipher, CHILD, 0, 1)
        await world.consumer.handle_batch([event])
        world.clock.now = RELEASE_AT
        replayed = await world.consumer.handle_batch([event])
        assert (replayed.published, world.publish.sent) == (0, [])
        assert (await world.consumer.release(due_by=RELEASE_AT)).published == 1
        assert world.published_ids() == [police_concern(1).id]

    async def test_held_again_unchanged_is_not_audited_again(self, world: World) -> None:
        """A meeting recorded, but one held before the concern: the concern waits on, and
        deciding it again writes no new record while nothing changed."""
        world.story.snapshot = ChildSnapshot(involved_agencies=frozenset({"northshire-primary"}))
        cs = police_concern(1, kind="childrens_services")
        sealed = SealedHubEvent(
            child_id=CHILD,
            ingested_at=EVENT_AT,
            envelope=await world.cipher.seal_envelope(CHILD, cs.model_dump(mode="json")),
        )
        value = sealed.model_dump_json().encode()
        await world.consumer.handle_batch(
            [ConsumedRecord("hub.events", 0, 0, CHILD.encode(), value)]
        )
        before = await world.actions()
        earlier = EVENT_AT - timedelta(days=3)
        world.story.snapshot = ChildSnapshot(
            involved_agencies=frozenset({"northshire-primary"}),
            milestones={Milestone.strategy_meeting: earlier},
        )
        for n in range(2, 4):
            await world.consumer.handle_batch([await meeting_record(world, n, earlier)])
        after = await world.actions()
        # Each meeting itself is audited as not shared with the school; the concern is not.
        assert after[len(before) :].count(AuditAction.delivery_withheld.value) == 2
        waiting = await world.row(cs.id)
        assert (waiting.status, waiting.attempts) == (DeliveryStatus.held, 2)

    async def test_a_subscriber_no_longer_configured_is_withheld(self, tmp_path: Path) -> None:
        """A held delivery of a system removed from the configuration is withheld for good
        when its time comes, not taken again and again."""
        async with made(tmp_path, TWO_SYSTEMS) as world:
            await world.consumer.handle_batch([await record(world.cipher, CHILD, 0, 1)])
            keys = world.keys
        async with made(tmp_path, keys=keys) as world:  # the same store, school-mis removed
            world.clock.now = RELEASE_AT
            assert (await world.consumer.release(due_by=RELEASE_AT)).published == 1
            gone = await world.ledger.get(delivery_id_for("school-mis", police_concern(1).id))
            assert gone is not None
            assert (gone.status, gone.last_error_class) == (
                DeliveryStatus.withheld,
                "SubscriberNotConfigured",
            )

    async def test_a_failed_release_does_not_fail_the_batch(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The batch is stored and delivered before held deliveries are decided again: a
        failure there is logged and left to the sweep."""

        async def broken(**_: object) -> DeliveryCounts:
            raise RuntimeError("store unavailable")

        monkeypatch.setattr(world.consumer, "release", broken)
        world.clock.now = RELEASE_AT + timedelta(hours=1)
        counts = await world.consumer.handle_batch([await record(world.cipher, CHILD, 0, 1)])
        assert counts.published == 1
