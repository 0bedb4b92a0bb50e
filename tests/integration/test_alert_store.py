"""The alert store on SQLite and PostgreSQL: exactly one alert per occurrence, inbox, steps,
webhooks queued in the alert's own transaction, and household incidents reaching every child at
the address."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import AgencyKind, EventType
from hub.alerts import processing
from hub.alerts.calendar import load_calendar
from hub.alerts.engine import EngineOutcome
from hub.alerts.model import AlertRaised, AlertStatus
from hub.alerts.processing import AlertProcessor, IdentityChange, Outbox, PositionedFacts
from hub.alerts.rules import load_rules
from hub.alerts.state import ChildAlertState
from hub.alerts.store import AlertNotFound, AlertNotOpen, AlertStore
from hub.alerts.tables import alert_child_states, alert_events, alert_household_keys, alerts
from hub.delivery.backoff import RetryPolicy
from hub.delivery.store import DeliveryStore
from hub.delivery.webhooks import AlertDispatcher
from hub.sharing import EventFacts
from hub.store.db import create_engine, migrate
from tests.support.databases import BACKENDS, fresh_database_url, upgrade_to
from tests.unit.alerts.conftest import (
    CALENDAR_FILE,
    CHILD,
    RULES_FILE,
    T0,
    attendance,
    concern,
    incident,
    plan,
    retraction,
    school_contact,
)
from tests.unit.test_delivery_topics import governance as delivery_governance
from tests.unit.test_delivery_topics import write_config as write_delivery_config
from tests.unit.test_delivery_webhooks import SECRET, SUBSCRIBERS, snapshot

pytestmark = pytest.mark.integration

_T = TypeVar("_T")

TOPIC = "hub.events"
DUTY = "team:northshire-cs:duty"
SW = "practitioner:sam.practitioner@northshire.example"
TM = "role:northshire-cs:team_manager"
SM = "role:northshire-cs:service_manager"


class Clock:
    """A settable frozen clock."""

    def __init__(self) -> None:
        self.now = T0 + timedelta(minutes=6)

    def __call__(self):
        return self.now


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AlertStore]:
    """An AlertStore on a freshly migrated database of each backend."""
    engine = create_engine(await fresh_database_url(request.param, tmp_path))
    await migrate(engine)
    try:
        yield AlertStore(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_processor(store: AlertStore, clock: Clock, outbox: Outbox | None = None) -> AlertProcessor:
    return AlertProcessor(
        store=store,
        rules=load_rules(RULES_FILE),
        calendar=load_calendar(CALENDAR_FILE),
        clock=clock,
        outbox=outbox,
    )


@pytest.fixture
def processor(store: AlertStore, clock: Clock) -> AlertProcessor:
    return make_processor(store, clock)


def batch(*facts, start: int = 0, partition: int = 0) -> list[PositionedFacts]:
    return [PositionedFacts(f, TOPIC, partition, start + i) for i, f in enumerate(facts)]


def fail_at(monkeypatch: pytest.MonkeyPatch, event_id: str) -> Callable[[], None]:
    """Make evaluating the event ``event_id`` raise (the process stops there); returns what
    puts the real evaluation back."""
    real = processing.evaluate

    def failing(state, facts, *args, **kwargs):
        if facts.event_id == event_id:
            raise RuntimeError("the process stops here")
        return real(state, facts, *args, **kwargs)

    monkeypatch.setattr(processing, "evaluate", failing)
    return lambda: monkeypatch.setattr(processing, "evaluate", real)


async def count(store: AlertStore, table) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def upgraded(
    store: AlertStore,
    tmp_path: Path,
    seed: Callable[[AsyncConnection], Awaitable[None]],
    read: Callable[[AlertStore], Awaitable[_T]],
) -> _T:
    """What ``read`` finds in a database of the store's backend made at revision 0004,
    seeded by ``seed``, then migrated to the newest revisions."""
    backend = "postgresql" if store.engine.dialect.name == "postgresql" else "sqlite"
    url = await fresh_database_url(backend, tmp_path / "upgrade")
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade_to, url, "0004")
            await seed(conn)
        await migrate(engine)
        return await read(AlertStore(engine))
    finally:
        await engine.dispose()


class TestExactlyOncePerOccurrence:
    """Redelivery and restart store one alert and one history step."""

    async def test_a_batch_redelivered_and_replayed_after_a_restart(self, store, processor):
        """Same records twice, then a new processor over the same database: one alert."""
        records = batch(plan(), attendance())
        first = await processor.handle(records)
        assert [o.rule_id for o in first] == ["unscheduled_care_with_plan"]
        assert await processor.handle(records) == []
        restarted = AlertProcessor(
            store=AlertStore(store.engine),
            rules=load_rules(RULES_FILE),
            calendar=load_calendar(CALENDAR_FILE),
            clock=lambda: T0 + timedelta(minutes=7),
        )
        assert await restarted.handle(records) == []
        assert (await count(store, alerts), await count(store, alert_events)) == (1, 1)
        async with store.engine.connect() as conn:
            assert await store.positions(conn) == {(TOPIC, 0): 2}
            assert await count(store, alert_child_states) == 1

    async def test_state_survives_when_positions_are_lost(self, store, processor):
        """A duplicate record on hub.events at a new offset still raises nothing new."""
        await processor.handle(batch(plan(), attendance()))
        assert await processor.handle(batch(attendance(), start=2)) == []
        assert await count(store, alerts) == 1

    async def test_an_alert_is_committed_before_the_rest_of_its_batch(
        self, store, processor, monkeypatch
    ):
        """A failure after an alert in a batch leaves the alert stored and the position just
        past it; the batch redelivered raises nothing twice and applies the rest."""
        records = batch(plan(), attendance(), attendance("health:ed-2", T0 + timedelta(hours=1)))
        restore = fail_at(monkeypatch, "health:ed-2")
        with pytest.raises(RuntimeError):
            await processor.handle(records)
        assert await count(store, alerts) == 1
        async with store.engine.connect() as conn:
            assert await store.positions(conn) == {(TOPIC, 0): 2}
        restore()
        again = await processor.handle(records)
        assert [o.trigger_event_ids[0] for o in again] == ["health:ed-2"]
        assert (await count(store, alerts), await count(store, alert_events)) == (2, 2)
        async with store.engine.connect() as conn:
            assert await store.positions(conn) == {(TOPIC, 0): 3}

    @pytest.mark.parametrize("crash", [False, True], ids=["whole", "crash"])
    async def test_parts_across_two_partitions(self, store, processor, monkeypatch, crash):
        """Records of two partitions interleaved, an alert raised in the first part and
        withdrawn by a retraction in a later one. If the process stops in the second part,
        each partition's position is just past what the first part applied, one alert is
        stored, and the batch redelivered withdraws it."""
        records = [
            PositionedFacts(plan(), TOPIC, 0, 0),
            PositionedFacts(pupil_of(OSCAR, "school:o"), TOPIC, 1, 0),
            PositionedFacts(attendance(), TOPIC, 0, 1),  # raises: the first part ends here
            PositionedFacts(pupil_of(THEO, "school:t"), TOPIC, 1, 1),  # the process stops
            PositionedFacts(retraction("health:rtr-1", "health:ed-1"), TOPIC, 0, 2),
        ]
        if crash:
            restore = fail_at(monkeypatch, "school:t")
            with pytest.raises(RuntimeError):
                await processor.handle(records)
            async with store.engine.connect() as conn:
                assert await store.positions(conn) == {(TOPIC, 0): 2, (TOPIC, 1): 1}
            (raised,) = await store.open_alerts([SW])
            restore()
            again = await processor.handle(records)
        else:
            raised, *again = await processor.handle(records)
        assert [(type(o).__name__, o.alert_id) for o in again] == [
            ("AlertWithdrawn", raised.alert_id)
        ]
        assert await processor.handle(records) == []
        async with store.engine.connect() as conn:
            assert await store.positions(conn) == {(TOPIC, 0): 3, (TOPIC, 1): 2}
        assert (await count(store, alerts), await store.open_alerts([SW])) == (1, [])
        assert (await store.get(raised.alert_id)).status is AlertStatus.withdrawn

    async def test_each_child_s_state_is_loaded_once_per_batch(self, store, processor, monkeypatch):
        """A batch raising an alert for each of several children (a part each), with a
        household incident reaching a sibling saved earlier: every state is loaded once."""
        await processor.handle(batch(pupil_of(OSCAR, "school:o"), partition=1))
        children = [f"ch-{n}" for n in range(4)]
        records = batch(
            *[
                replace(f, child_id=c)
                for c in children
                for f in (plan(f"cs:plan-{c}"), attendance(f"health:ed-{c}"))
            ],
            pupil_of(RUBY, "school:r"),
            notice(),
        )
        loaded: list[str] = []
        real = store.load_states

        async def load_states(conn: AsyncConnection, child_ids) -> dict:
            ids = list(child_ids)
            loaded.extend(ids)
            return await real(conn, ids)

        monkeypatch.setattr(store, "load_states", load_states)
        out = await processor.handle(records)
        assert sorted(o.child_id for o in out) == sorted([*children, OSCAR, RUBY])
        if store.locks_states:  # PostgreSQL: each part loads (locks) the rest's states again
            assert set(loaded) == {*children, OSCAR, RUBY}
            assert len(loaded) > len(set(loaded))
        else:
            assert sorted(loaded) == sorted([*children, OSCAR, RUBY])

    async def test_a_state_written_between_parts_is_not_overwritten(self, store, processor):
        """On PostgreSQL another consumer may write a state between two parts of a batch (a
        household incident reaches children of other partitions): the later part loads it
        again, under lock, and builds on it instead of writing back what it carried."""
        if not store.locks_states:
            pytest.skip("SQLite: one alerts process per database file")
        await processor.handle(batch(pupil_of(OSCAR, "school:o"), partition=1))
        other = AlertStore(store.engine)

        async def another_consumer_writes(_outcomes: list[object]) -> None:
            async with store.engine.begin() as conn:
                (theirs,) = (await other.load_states(conn, [OSCAR])).values()
                moved = theirs.model_copy(update={"household_keys": (ELSEWHERE, HOME)})
                await other.apply(conn, [], states={OSCAR: moved}, now=T0)

        records = batch(plan(), attendance(), pupil_of(OSCAR, "school:o2"), start=0)
        out = await processor.handle(records, another_consumer_writes)
        assert [type(o).__name__ for o in out] == ["AlertRaised"]
        async with store.engine.connect() as conn:
            (final,) = (await AlertStore(store.engine).load_states(conn, [OSCAR])).values()
        assert set(final.household_keys) == {ELSEWHERE, HOME}
        assert {"school:o", "school:o2"} <= set(final.records)

    async def test_a_position_never_moves_backwards(self, store):
        """An older offset written after a newer one leaves the newer one in place."""
        async with store.engine.begin() as conn:
            await store.apply(conn, [], positions={(TOPIC, 0): 9, (TOPIC, 1): 4}, now=T0)
        async with store.engine.begin() as conn:
            await store.apply(conn, [], positions={(TOPIC, 0): 5, (TOPIC, 1): 6}, now=T0)
        async with store.engine.connect() as conn:
            assert await store.positions(conn) == {(TOPIC, 0): 9, (TOPIC, 1): 6}

    async def test_a_state_is_read_as_stored_whoever_wrote_it(self, store):
        """A state saved by this store reads back equal; one another process saved since,
        or a save rolled back, reads as the database holds it."""
        mine = ChildAlertState(child_id=OSCAR, household_keys=(HOME,))
        async with store.engine.begin() as conn:
            await store.apply(conn, [], states={OSCAR: mine}, now=T0)
        other = AlertStore(store.engine)
        async with store.engine.begin() as conn:
            assert await store.load_states(conn, [OSCAR]) == {OSCAR: mine}
            # the store's own cache answers with ``mine`` itself: a store without it must agree
            assert await AlertStore(store.engine).load_states(conn, [OSCAR]) == {OSCAR: mine}
            theirs = mine.model_copy(update={"household_keys": (ELSEWHERE, HOME)})
            await other.apply(conn, [], states={OSCAR: theirs}, now=T0)
        async with store.engine.connect() as conn:
            assert await store.load_states(conn, [OSCAR]) == {OSCAR: theirs}
            assert await AlertStore(store.engine).load_states(conn, [OSCAR]) == {OSCAR: theirs}
        with pytest.raises(RuntimeError):
            async with store.engine.begin() as conn:
                await store.apply(conn, [], states={OSCAR: mine}, now=T0)
                raise RuntimeError("rolled back")
        async with store.engine.connect() as conn:
            assert await store.load_states(conn, [OSCAR]) == {OSCAR: theirs}

    async def test_applying_the_same_outcomes_twice_records_nothing_new(self, store, processor):
        """The store is idempotent on its own too."""
        outcomes = await processor.handle(batch(plan(), attendance()))
        async with store.engine.begin() as conn:
            assert await store.apply(conn, outcomes, now=T0) == 0


def webhook_outbox(
    store: AlertStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[AlertDispatcher, DeliveryStore]:
    """The hub's webhook dispatcher over the alert store's database, with one subscriber that
    wants high alerts (the unscheduled-care alert is one), and its delivery ledger."""
    monkeypatch.setenv("HUB_TEST_DELIVERY_SECRET", SECRET)
    rules, subscribers = write_delivery_config(tmp_path, SUBSCRIBERS)
    ledger = DeliveryStore(store.engine)
    dispatcher = AlertDispatcher(
        subscribers=subscribers,
        store=ledger,
        governance=delivery_governance(store.engine, rules),
        snapshots=snapshot,
        policy=RetryPolicy(attempts=3),
    )
    return dispatcher, ledger


async def queued(ledger: DeliveryStore) -> list[str]:
    """The alert ids of the webhook deliveries in the ledger, oldest first."""
    return [d.subject_id for d in reversed(await ledger.listing())]


class TestWebhookOutbox:
    """Webhooks are queued in the transaction that records their alert: once per alert, never
    for an alert rolled back, and never lost to a crash just after the alert committed."""

    async def test_each_committed_part_queues_its_alert_once(
        self, store, clock, tmp_path, monkeypatch
    ):
        """The batch fails in the part after an alert: that alert's webhook is queued all the
        same, and the batch redelivered queues the second part's alert only."""
        dispatcher, ledger = webhook_outbox(store, tmp_path, monkeypatch)
        processor = make_processor(store, clock, dispatcher.queue_in)
        items = batch(plan(), attendance(), attendance("health:ed-2", T0 + timedelta(hours=1)))
        restore = fail_at(monkeypatch, "health:ed-2")
        with pytest.raises(RuntimeError):
            await processor.handle(items)
        (first,) = await store.open_alerts([SW])
        assert await queued(ledger) == [first.alert_id]
        restore()
        assert len(await processor.handle(items)) == 1
        second = {a.alert_id for a in await store.open_alerts([SW])} - {first.alert_id}
        assert await queued(ledger) == [first.alert_id, *second] and len(second) == 1
        assert await processor.handle(items) == []
        assert (await count(store, alerts), len(await queued(ledger))) == (2, 2)

    async def test_a_crash_just_after_the_commit_loses_no_webhook(
        self, store, clock, tmp_path, monkeypatch
    ):
        """The process dies as the alert's part commits (before anything runs after it): the
        webhook is in the ledger, pending and due, for the restarted hub's sender."""
        dispatcher, ledger = webhook_outbox(store, tmp_path, monkeypatch)
        processor = make_processor(store, clock, dispatcher.queue_in)

        async def dies(_: list[EngineOutcome]) -> None:
            raise SystemExit("killed")

        with pytest.raises(SystemExit):
            await processor.handle(batch(plan(), attendance()), on_committed=dies)
        (alert,) = await store.open_alerts([SW])
        (row,) = await ledger.listing()
        assert (row.subject_id, row.status, row.attempts) == (alert.alert_id, "pending", 0)
        assert row.next_attempt_at is not None and row.body is not None
        assert [r.delivery_id for r in await ledger.due(row.next_attempt_at, kind="webhook")] == [
            row.delivery_id
        ]

    async def test_an_alert_rolled_back_leaves_no_webhook(
        self, store, clock, tmp_path, monkeypatch
    ):
        """A failure after the webhooks are queued, before the commit, rolls back both."""
        dispatcher, ledger = webhook_outbox(store, tmp_path, monkeypatch)

        async def then_fails(conn: AsyncConnection, outcomes: list[EngineOutcome]) -> None:
            await dispatcher.queue_in(conn, outcomes)
            raise RuntimeError("the transaction fails before its commit")

        with pytest.raises(RuntimeError):
            await make_processor(store, clock, then_fails).handle(batch(plan(), attendance()))
        assert (await count(store, alerts), await ledger.listing()) == (0, [])


class TestInbox:
    """Who sees what, in order, resumable after the last seq."""

    async def test_the_raised_alert_for_each_recipient(self, store, processor, clock):
        """Social worker and duty team see it; another team does not."""
        await processor.handle(batch(plan(), attendance()))
        (item,) = await store.inbox([DUTY])
        alert = item.alert
        assert (item.kind, item.at, alert.status, alert.due_at) == (
            "raised",
            clock.now,
            AlertStatus.raised,
            clock.now + timedelta(minutes=15),
        )
        assert [r.address for r in alert.recipients] == [SW, DUTY]
        assert alert.trigger_event_ids == ("health:ed-1", "cs:plan-1")
        assert [a.alert_id for a in await store.open_alerts([SW])] == [alert.alert_id]
        assert await store.inbox(["team:northshire-cs:front-door"]) == []
        assert await store.inbox([DUTY], since_id=item.seq) == []

    async def test_a_retraction_shows_as_a_withdrawn_step(self, store, processor):
        """The stream carries the withdrawal; the open list drops it."""
        await processor.handle(batch(plan(), attendance()))
        await processor.handle(batch(retraction("health:rtr-1", "health:ed-1"), start=2))
        steps = await store.inbox([SW])
        assert [(s.kind, s.alert.status) for s in steps] == [
            ("raised", AlertStatus.withdrawn),
            ("withdrawn", AlertStatus.withdrawn),
        ]
        assert steps[0].seq < steps[1].seq
        assert await store.open_alerts([SW]) == []


class TestTriggerFacts:
    """An alert keeps its triggers' sharing facts, so it can be decided before the narrative."""

    async def test_kept_with_the_alert_as_clear_attributes_only(self, store, processor):
        """Per trigger: type, agency and kind, sensitivity, time in UTC; nothing else."""
        await processor.handle(batch(plan(), attendance(sensitivity=("mental_health",))))
        (item,) = await store.inbox([DUTY])
        assert item.alert.trigger_facts == {
            "health:ed-1": EventFacts(
                EventType.contact_recorded,
                "northshire-health",
                AgencyKind.health,
                frozenset({"mental_health"}),
                T0,
            ),
            "cs:plan-1": EventFacts(
                EventType.involvement_started,
                "northshire-cs",
                AgencyKind.childrens_services,
                frozenset(),
                T0 - timedelta(days=60),
            ),
        }
        async with store.engine.connect() as conn:
            kept = (await conn.execute(select(alerts.c.trigger_facts))).scalar_one()
        assert json.loads(kept)[0] == {
            "agency_id": "northshire-health",
            "agency_kind": "health",
            "event_id": "health:ed-1",
            "event_type": "contact.recorded",
            "occurred_at": "2026-03-02T10:00:00Z",
            "sensitivity": ["mental_health"],
        }

    async def test_the_migration_keeps_existing_alerts_readable(self, store, processor, tmp_path):
        """An alert stored before 0013 reads the same, with no facts kept."""
        await processor.handle(batch(plan(), attendance()))
        async with store.engine.connect() as conn:
            row = dict((await conn.execute(select(alerts))).one()._mapping)
        kept = row.pop("trigger_facts")

        async def seed(conn: AsyncConnection) -> None:
            await conn.execute(sa.table("alerts", *map(sa.column, row)).insert(), [row])

        before = await upgraded(store, tmp_path, seed, lambda s: s.get(row["alert_id"]))
        now = await store.get(row["alert_id"])
        assert (kept is not None, before) == (True, replace(now, trigger_facts={}))


class TestAcknowledgeAndEscalate:
    """Acknowledgement stops escalation; unacknowledged alerts climb the ladder."""

    async def test_escalation_then_acknowledgement(self, store, processor, clock):
        """Team manager at the due time, service manager 30 minutes later, then acknowledged."""
        (raised,) = await processor.handle(batch(plan(), attendance()))
        assert await processor.escalate() == []
        clock.now = raised.due_at
        assert [(e.step, e.recipients[0].address) for e in await processor.escalate()] == [(1, TM)]
        assert await processor.escalate() == []
        clock.now = raised.due_at + timedelta(minutes=45)
        assert [e.step for e in await processor.escalate()] == [2]
        (tm_item,) = [i for i in await store.inbox([TM]) if i.kind == "escalated"][:1]
        assert tm_item.alert.status is AlertStatus.escalated
        done = await store.acknowledge(raised.alert_id, "sm-1", now=clock.now, addresses=[SM])
        assert (done.status, done.acknowledged_by, done.escalation_step) == (
            AlertStatus.acknowledged,
            "sm-1",
            2,
        )
        assert await store.due_for_escalation(clock.now + timedelta(days=1)) == []
        kinds = [i.kind for i in await store.inbox([SW, TM, SM])]
        assert kinds == ["raised", "escalated", "escalated", "acknowledged"]
        async with store.engine.connect() as conn:
            detail = (
                await conn.execute(
                    select(alert_events.c.detail).where(alert_events.c.kind == "escalated")
                )
            ).scalars()
            assert [json.loads(d)["to"] for d in detail] == [[TM], [SM]]

    async def test_acknowledge_is_idempotent(self, store, processor, clock):
        """A second acknowledgement keeps the first one's who and when."""
        (raised,) = await processor.handle(batch(plan(), attendance()))
        first = await store.acknowledge(raised.alert_id, "sw-1", now=clock.now)
        again = await store.acknowledge(raised.alert_id, "sw-2", now=clock.now + timedelta(hours=1))
        assert again == first
        assert (first.acknowledged_by, first.acknowledged_at) == ("sw-1", clock.now)

    async def test_acknowledge_refusals(self, store, processor, clock):
        """Not addressed to the caller: not found; unknown: not found; withdrawn: not open."""
        (raised,) = await processor.handle(batch(plan(), attendance()))
        with pytest.raises(AlertNotFound):
            await store.acknowledge(raised.alert_id, "x", now=clock.now, addresses=["team:x:y"])
        with pytest.raises(AlertNotFound):
            await store.acknowledge("al-nope", "x", now=clock.now)
        await processor.handle(batch(retraction("health:rtr-1", "health:ed-1"), start=2))
        with pytest.raises(AlertNotOpen):
            await store.acknowledge(raised.alert_id, "sw-1", now=clock.now)


class TestChangesAnnounced:
    """Readers of this process wake when alert steps commit, and read them at once."""

    async def wake_reader(self, store: AlertStore, write) -> list[str]:
        """Wait from a mark (as the SSE stream does) while ``write`` runs; what the woken
        reader reads."""
        mark = store.changes.mark()
        since = await store.latest_seq()
        woke = asyncio.create_task(store.changes.wait(mark, 30.0))
        await asyncio.sleep(0)
        started = time.monotonic()
        await write()
        assert await asyncio.wait_for(woke, 5.0) is True
        assert time.monotonic() - started < 5.0
        return [i.kind for i in await store.inbox([SW], since_id=since)]

    async def test_a_raise_is_readable_when_announced(self, store, processor):
        """The processor announces after its transaction: the woken reader sees the step."""
        read = await self.wake_reader(store, lambda: processor.handle(batch(plan(), attendance())))
        assert (read, await store.latest_seq()) == (["raised"], 1)

    async def test_an_acknowledgement_is_announced(self, store, processor, clock):
        """Acknowledging wakes readers with the acknowledged step committed."""
        (raised,) = await processor.handle(batch(plan(), attendance()))

        async def acknowledge() -> None:
            await store.acknowledge(raised.alert_id, "sw-1", now=clock.now)

        assert await self.wake_reader(store, acknowledge) == ["acknowledged"]

    async def test_an_escalation_is_announced(self, store, processor, clock):
        """An escalation step due now wakes readers."""
        (raised,) = await processor.handle(batch(plan(), attendance()))
        clock.now = raised.due_at
        mark = store.changes.mark()
        await processor.escalate()
        assert await store.changes.wait(mark, 0.01) is True

    async def test_nothing_recorded_nothing_announced(self, store, processor):
        """A batch (or a redelivery) that records no step wakes nobody."""
        await processor.handle(batch(plan(), attendance()))
        mark = store.changes.mark()
        await processor.handle(batch(plan(), attendance()))  # redelivered: nothing new
        await processor.handle(batch(school_contact("school:c-1"), start=2))
        assert await store.changes.wait(mark, 0.05) is False

    async def test_latest_seq_of_an_empty_store(self, store):
        """No alert step yet: the newest sequence number is 0."""
        assert await store.latest_seq() == 0


# --- Households: an incident about one child reaches the other children at the address ------
RUBY, OSCAR, THEO = "ch-ruby", "ch-oscar", "ch-theo"
HOME, ELSEWHERE = "addr:quarry", "addr:elsewhere"
NIGHT = T0 + timedelta(hours=12)  # Monday 22:00: due Tuesday 09:00
DSL = "agency:northshire-primary:designated_safeguarding_lead"


def at_home(facts, child_id: str, *keys: str):
    return replace(facts, child_id=child_id, household_keys=keys or (HOME,))


def pupil_of(child_id: str, event_id: str, *keys: str):
    return at_home(school_contact(event_id), child_id, *keys)


def notice(event_id: str = "police:inc-1", *keys: str):
    return at_home(incident(event_id, NIGHT), RUBY, *keys)


async def index(store: AlertStore) -> set[tuple[str, str]]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            select(alert_household_keys.c.key, alert_household_keys.c.child_id)
        )
        return {(r.key, r.child_id) for r in rows}


class TestHouseholdKeyIndex:
    """alert_household_keys mirrors the saved states' household keys."""

    async def test_kept_in_step_with_states(self, store, processor):
        """Each state written adds its keys; members are found by key."""
        await processor.handle(
            batch(pupil_of(RUBY, "school:r"), pupil_of(OSCAR, "school:o", HOME, ELSEWHERE))
        )
        assert await index(store) == {(HOME, RUBY), (HOME, OSCAR), (ELSEWHERE, OSCAR)}
        async with store.engine.connect() as conn:
            assert await store.household_members(conn, [HOME]) == {RUBY, OSCAR}
            assert await store.household_members(conn, [ELSEWHERE, "addr:none"]) == {OSCAR}
            assert await store.household_members(conn, []) == set()

    async def test_a_state_losing_a_key_drops_its_row(self, store):
        """apply writes what the state says (a rebuilt state may hold fewer keys)."""
        both = ChildAlertState(child_id=OSCAR, household_keys=(ELSEWHERE, HOME))
        async with store.engine.begin() as conn:
            await store.apply(conn, [], states={OSCAR: both}, now=T0)
        async with store.engine.begin() as conn:
            one = both.model_copy(update={"household_keys": (HOME,)})
            await store.apply(conn, [], states={OSCAR: one}, now=T0)
        assert await index(store) == {(HOME, OSCAR)}

    async def test_keys_as_indexed_are_not_rewritten(self, store):
        """A state saved with the keys it was loaded with leaves the index as it was; one
        with other keys (or none given) is indexed anew."""
        home = ChildAlertState(child_id=OSCAR, household_keys=(HOME,))
        async with store.engine.begin() as conn:
            await store.apply(conn, [], states={OSCAR: home}, indexed={OSCAR: ()}, now=T0)
        assert await index(store) == {(HOME, OSCAR)}
        async with store.engine.begin() as conn:
            await conn.execute(sa.delete(alert_household_keys))  # shows whether it rewrites
            await store.apply(conn, [], states={OSCAR: home}, indexed={OSCAR: (HOME,)}, now=T0)
        assert await index(store) == set()
        moved = home.model_copy(update={"household_keys": (ELSEWHERE,)})
        async with store.engine.begin() as conn:
            await store.apply(conn, [], states={OSCAR: moved}, indexed={OSCAR: (HOME,)}, now=T0)
        assert await index(store) == {(ELSEWHERE, OSCAR)}

    async def test_the_migration_fills_it_from_saved_states(self, store, tmp_path):
        """A store upgraded from 0004 finds the children already at each address."""

        async def seed(conn: AsyncConnection) -> None:
            await conn.execute(
                alert_child_states.insert(),
                [
                    {"child_id": c, "state": s.model_dump_json(exclude_defaults=True),
                     "updated_at": T0}
                    for c, s in {
                        OSCAR: ChildAlertState(child_id=OSCAR, household_keys=(HOME,)),
                        THEO: ChildAlertState(child_id=THEO),
                    }.items()
                ],
            )  # fmt: skip

        assert await upgraded(store, tmp_path, seed, index) == {(HOME, OSCAR)}


class TestHouseholdNotice:
    """The sibling's school hears once; retraction withdraws both; no school, no notice."""

    async def test_the_sibling_saved_earlier_gets_a_notice(self, store, processor):
        """Oscar's state is saved in an earlier batch on another partition."""
        await processor.handle(batch(pupil_of(OSCAR, "school:o"), partition=1))
        out = await processor.handle(batch(pupil_of(RUBY, "school:r"), notice()))
        assert sorted((o.child_id, o.reason, o.trigger_event_ids) for o in out) == [
            (OSCAR, "household", ("police:inc-1",)),
            (RUBY, "child_present", ("police:inc-1",)),
        ]
        alerts_now = {i.alert.child_id: i.alert for i in await store.inbox([DSL])}
        assert sorted(alerts_now) == [OSCAR, RUBY]
        assert alerts_now[OSCAR].due_at == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)

    async def test_the_sibling_seen_earlier_in_the_same_batch(self, store, processor):
        """Keys not yet in the index are found among the batch's own states."""
        out = await processor.handle(batch(pupil_of(OSCAR, "school:o"), notice()))
        assert sorted(o.child_id for o in out) == [OSCAR, RUBY]

    async def test_redelivery_and_restart_give_one_alert_per_child(self, store, processor):
        """The batch again, at new offsets, and through a new processor: still two alerts."""
        records = batch(pupil_of(OSCAR, "school:o"), pupil_of(RUBY, "school:r"), notice())
        assert len(await processor.handle(records)) == 2
        assert await processor.handle(records) == []
        assert await processor.handle(batch(notice(), start=3)) == []
        restarted = AlertProcessor(
            store=AlertStore(store.engine),
            rules=load_rules(RULES_FILE),
            calendar=load_calendar(CALENDAR_FILE),
            clock=lambda: T0 + timedelta(days=1),
        )
        assert await restarted.handle(batch(notice(), start=4, partition=2)) == []
        assert (await count(store, alerts), await count(store, alert_events)) == (2, 2)

    async def test_a_retraction_withdraws_the_sibling_s_notice(self, store, processor):
        """Police retract the notice (no address on the retraction): both alerts withdrawn."""
        await processor.handle(
            batch(pupil_of(OSCAR, "school:o"), pupil_of(RUBY, "school:r"), notice())
        )
        gone = replace(retraction("police:rtr-1", "police:inc-1"), child_id=RUBY)
        out = await processor.handle(batch(gone, start=3))
        assert sorted((type(o).__name__, o.child_id) for o in out) == [
            ("AlertWithdrawn", OSCAR),
            ("AlertWithdrawn", RUBY),
        ]
        assert await store.open_alerts([DSL]) == []

    async def test_no_school_no_other_address_no_other_contact(self, store, processor):
        """Theo (health only) and a child elsewhere get nothing; Ruby's A&E visit reaches no one."""
        theo = at_home(attendance("health:theo", T0 - timedelta(days=3)), THEO)
        away = pupil_of(OSCAR, "school:o", ELSEWHERE)
        await processor.handle(batch(theo, away))
        async with store.engine.connect() as conn:
            before = await store.load_states(conn, [THEO])
        ruby_ed = at_home(attendance("health:ruby", T0), RUBY)
        assert await processor.handle(batch(ruby_ed, start=2)) == []
        async with store.engine.connect() as conn:
            assert await store.load_states(conn, [THEO]) == before
        out = await processor.handle(batch(notice(), start=3))
        assert [(o.child_id, o.reason) for o in out] == [(RUBY, "no_school_known")]


class TestMerges:
    """A merge on `hub.events` joins two children's alert states in the store; an un-merge
    parts them again."""

    async def test_a_merge_alerts_the_joined_story_and_an_unmerge_withdraws_it(
        self, store, processor, clock
    ):
        """Concerns linked to two children reach the threshold only together: the merge
        record raises the front door's alert for the surviving child, once however often the
        batch is replayed, and survives a reload; the un-merge withdraws it."""
        police, health = "northshire-police", "northshire-health"
        other = "ch-0002"
        concerns = [
            concern("c-1", T0 - timedelta(days=4), police),
            concern("c-2", T0 - timedelta(days=2), police),
            replace(concern("c-3", T0 - timedelta(days=1), health), child_id=other),
        ]
        assert await processor.handle(batch(*concerns)) == []
        merged = IdentityChange("merged", CHILD, other, "m-1")
        items = [PositionedFacts(None, TOPIC, 0, 3, identity=merged)]
        [alert] = await processor.handle(items)
        assert isinstance(alert, AlertRaised)
        assert (alert.child_id, alert.rule_id, alert.trigger_event_ids) == (
            CHILD,
            "accumulating_concerns",
            ("c-1", "c-2", "c-3"),
        )
        assert await processor.handle(items) == []  # replayed: below the saved position
        again = make_processor(AlertStore(store.engine), clock)
        async with store.engine.connect() as conn:
            [kept] = (await AlertStore(store.engine).load_states(conn, [CHILD])).values()
        assert set(kept.absorbed) == {other}

        undone = IdentityChange("unmerged", CHILD, other, "m-1")
        [gone] = await again.handle([PositionedFacts(None, TOPIC, 0, 4, identity=undone)])
        assert (gone.alert_id, type(gone).__name__) == (alert.alert_id, "AlertWithdrawn")
        assert [
            a.alert_id for a in await store.open_alerts(["team:northshire-cs:front-door"])
        ] == []

    async def test_an_event_linked_to_the_merged_child_joins_the_survivor(self, store, processor):
        """An attendance that ingest linked to the merged child's id before it knew of the
        merge reaches the survivor's state: the plan there makes it an alert for the
        survivor's social worker; the merged child's state takes nothing."""
        other = "ch-0002"
        await processor.handle(batch(plan()))
        merged = IdentityChange("merged", CHILD, other, "m-1")
        assert await processor.handle([PositionedFacts(None, TOPIC, 0, 1, identity=merged)]) == []
        late = replace(attendance(), child_id=other)
        [alert] = await processor.handle(batch(late, start=2))
        assert isinstance(alert, AlertRaised)
        assert (alert.child_id, alert.rule_id) == (CHILD, "unscheduled_care_with_plan")
        async with store.engine.connect() as conn:
            states = await AlertStore(store.engine).load_states(conn, [CHILD, other])
        assert (states[other].merged_into, states[other].records) == (CHILD, {})
        assert set(states[CHILD].records) == {"cs:plan-1", "health:ed-1"}

    async def test_what_came_linked_to_the_merged_child_goes_back_with_it(self, store, processor):
        """While merged, an attendance, an address and a retraction arrive linked to the
        merged child. The un-merge gives the attendance and the address back (its alert is
        withdrawn from the survivor) and the restored child keeps the retraction."""
        other = "ch-0002"
        early = replace(attendance("health:ed-0", T0 - timedelta(days=20)), child_id=other)
        await processor.handle(batch(plan(), early))
        merge = IdentityChange("merged", CHILD, other, "m-1")
        await processor.handle([PositionedFacts(None, TOPIC, 0, 2, identity=merge)])
        late = replace(attendance("health:ed-1", T0), child_id=other, household_keys=("hh:b",))
        undo_early = replace(retraction("health:rtr-0", "health:ed-0"), child_id=other)
        out = await processor.handle(batch(late, undo_early, start=3))
        [raised] = [o for o in out if isinstance(o, AlertRaised)]
        assert raised.child_id == CHILD
        unmerge = IdentityChange("unmerged", CHILD, other, "m-1")
        gone = await processor.handle([PositionedFacts(None, TOPIC, 0, 5, identity=unmerge)])
        assert [g.alert_id for g in gone] == [raised.alert_id]
        async with store.engine.connect() as conn:
            states = await AlertStore(store.engine).load_states(conn, [CHILD, other])
        survivor, restored = states[CHILD], states[other]
        assert (set(survivor.records), survivor.household_keys) == ({"cs:plan-1"}, ())
        assert restored.merged_into is None
        assert set(restored.records) == {"health:ed-1"}  # ed-0 retracted while merged
        assert restored.superseded["health:ed-0"].retracted
        assert restored.household_keys == ("hh:b",)

    async def test_merges_into_a_merged_child_and_out_of_one(self, store, processor):
        """S is merged into T, then X into S: X's part is noted as having come through S, so
        undoing S from T takes X with it, and X's later events follow S. Undoing X from S
        then gives X back from S's state. Merging T into a child merged into it: nothing."""
        s_id, t_id, x_id = "ch-s", "ch-t", "ch-x"
        police, health = "northshire-police", "northshire-health"
        await processor.handle(
            batch(
                replace(concern("c-s", T0 - timedelta(days=3), police), child_id=s_id),
                replace(concern("c-t", T0 - timedelta(days=2), police), child_id=t_id),
                replace(concern("c-x", T0 - timedelta(days=1), health), child_id=x_id),
            )
        )

        def change(kind, survivor, other, n):
            return [PositionedFacts(None, TOPIC, 0, n, identity=IdentityChange(
                kind, survivor, other, f"m-{n}"))]  # fmt: skip

        await processor.handle(change("merged", t_id, s_id, 3))
        await processor.handle(change("merged", s_id, x_id, 4))  # T holds S's story now
        async with store.engine.connect() as conn:
            st = await AlertStore(store.engine).load_states(conn, [s_id, t_id, x_id])
        assert set(st[t_id].records) == {"c-s", "c-t", "c-x"}
        assert (st[t_id].absorbed[x_id].via, st[x_id].merged_into) == (s_id, s_id)
        assert await processor.handle(change("merged", s_id, t_id, 5)) == []  # into itself

        await processor.handle(change("unmerged", t_id, s_id, 6))
        async with store.engine.connect() as conn:
            st = await AlertStore(store.engine).load_states(conn, [s_id, t_id, x_id])
        assert set(st[t_id].records) == {"c-t"}
        assert set(st[s_id].records) == {"c-s", "c-x"}  # X went with S
        await processor.handle(change("unmerged", s_id, x_id, 7))
        async with store.engine.connect() as conn:
            st = await AlertStore(store.engine).load_states(conn, [s_id, x_id])
        assert (set(st[s_id].records), st[x_id].merged_into) == ({"c-s"}, None)
