"""Alert webhooks: queued per wanting subscriber, decided, signed, retried, dead, audited.

HTTP is answered in memory (``httpx.MockTransport``); the integration tests use a real server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from hub.alerts.model import AlertRaised, AlertWithdrawn
from hub.delivery.backoff import RetryPolicy
from hub.delivery.context import ChildSnapshot
from hub.delivery.signing import verify
from hub.delivery.store import DeliveryStatus, DeliveryStore, StoredDelivery, delivery_id_for
from hub.delivery.webhooks import AlertDispatcher, alert_body
from hub.governance import Governance
from hub.sharing import EventFacts
from hub.store.db import create_engine, migrate
from tests.unit.test_delivery_topics import CHILD, NOW, clock, governance, police_concern
from tests.unit.test_delivery_topics import write_config as write_topic_config

pytestmark = pytest.mark.unit

SECRET = "whsec-test-0001"
HOOK = "school-hook"
EVENT = police_concern()
HEALTH_EVENT = police_concern(2, kind="health")


def alert(
    n: int = 1, *, triggers: tuple[str, ...] = (EVENT.id,), severity: str = "high"
) -> AlertRaised:
    """A raised alert on the test child (ids and codes only)."""
    return AlertRaised(
        alert_id=f"al-{n:032x}",
        occurrence_key=f"domestic_abuse_to_school|{CHILD}|{n}",
        child_id=CHILD,
        rule_id="domestic_abuse_to_school",
        rule_kind="event",
        rule_version=1,
        severity=severity,
        reason="domestic_abuse",
        recipients=(),
        trigger_event_ids=triggers,
        occurred_at=NOW - timedelta(hours=10),
        raised_at=NOW - timedelta(minutes=1),
        due_at=NOW + timedelta(hours=2),
    )


SUBSCRIBERS = """\
version: 1
subscribers:
  - id: school-hook
    agency_id: northshire-primary
    role: designated_safeguarding_lead
    purpose: education_safeguarding
    kind: webhook
    url: https://dsl.example/hub
    secret: {env: HUB_TEST_DELIVERY_SECRET}
    alerts: {severities: [high, critical]}
"""


@dataclass
class Receiver:
    """An in-memory partner endpoint answering the given status codes in turn (0: refuse)."""

    codes: list[int]
    seen: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        code = self.codes.pop(0) if len(self.codes) > 1 else self.codes[0]
        if code == 0:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(code)


async def snapshot(child_id: str) -> ChildSnapshot:
    """The child's stored events: the police concern and a health record."""
    assert child_id == CHILD
    return ChildSnapshot(
        events={EVENT.id: EventFacts.of(EVENT), HEALTH_EVENT.id: EventFacts.of(HEALTH_EVENT)}
    )


@dataclass
class World:
    dispatcher: AlertDispatcher
    receiver: Receiver
    store: DeliveryStore
    gov: Governance


Make = Callable[..., World]


@pytest.fixture
async def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Make]:
    """Builds a dispatcher over a migrated SQLite file answering with the given codes."""
    monkeypatch.setenv("HUB_TEST_DELIVERY_SECRET", SECRET)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    await migrate(engine)
    rules, subs = write_topic_config(tmp_path, SUBSCRIBERS)
    clients: list[httpx.AsyncClient] = []

    def build(codes: list[int], attempts: int = 3) -> World:
        receiver = Receiver(list(codes))
        client = httpx.AsyncClient(transport=httpx.MockTransport(receiver))
        clients.append(client)
        store = DeliveryStore(engine, clock=clock)
        gov = governance(engine, rules)
        dispatcher = AlertDispatcher(
            subscribers=subs,
            store=store,
            governance=gov,
            snapshots=snapshot,
            policy=RetryPolicy(attempts=attempts, base_seconds=10, rand=lambda: 0.5),
            client=client,
            clock=clock,
        )
        return World(dispatcher, receiver, store, gov)

    try:
        yield build
    finally:
        for client in clients:
            await client.aclose()
        await engine.dispose()


async def queue(
    dispatcher: AlertDispatcher, store: DeliveryStore, outcomes: list[object]
) -> list[StoredDelivery]:
    """Queue the outcomes' webhooks as the alert processor does (in a transaction, here one of
    their own); the ledger rows of the deliveries they want."""
    async with store.engine.begin() as conn:
        await dispatcher.queue_in(conn, outcomes)
    rows = [await store.get(item.delivery_id) for item in dispatcher.wanted(outcomes)]
    assert None not in rows
    return [row for row in rows if row is not None]


class TestEnqueue:
    async def test_wanting_subscribers_only(self, make: Make) -> None:
        """High alerts are queued with their body; medium ones and withdrawals are not."""
        w = make([200])
        withdrawn = AlertWithdrawn(
            alert_id="al-x",
            occurrence_key="k",
            child_id=CHILD,
            rule_id="r",
            cause_event_id="e",
            withdrawn_at=NOW,
        )
        rows = await queue(
            w.dispatcher, w.store, [alert(1), alert(2, severity="medium"), withdrawn]
        )
        assert [(r.subscriber_id, r.subject_id, r.status, r.attempts) for r in rows] == [
            (HOOK, alert(1).alert_id, DeliveryStatus.pending, 0)
        ]
        assert rows[0].body == alert_body(alert(1), HOOK)
        assert rows[0].next_attempt_at == NOW
        again = await queue(w.dispatcher, w.store, [alert(1)])
        assert again == rows  # a replayed alert keeps its row

    async def test_rolled_back_with_the_transaction_that_queued_it(self, make: Make) -> None:
        """Queued in the caller's transaction: if the alert's transaction rolls back, no row
        is left behind to send an alert that was never recorded."""
        w = make([200])
        with pytest.raises(RuntimeError):
            async with w.store.engine.begin() as conn:
                await w.dispatcher.queue_in(conn, [alert(1)])
                raise RuntimeError("the alert transaction fails")
        assert await w.store.get(delivery_id_for(HOOK, alert(1).alert_id)) is None

    def test_body(self) -> None:
        """The body holds the alert's ids and codes, nothing about the child but its id."""
        assert json.loads(alert_body(alert(1), HOOK)) == {
            "type": "alert.raised",
            "delivery_id": delivery_id_for(HOOK, alert(1).alert_id),
            "subscriber_id": HOOK,
            "alert": {
                "alert_id": alert(1).alert_id,
                "child_id": CHILD,
                "rule_id": "domestic_abuse_to_school",
                "rule_version": 1,
                "severity": "high",
                "reason": "domestic_abuse",
                "trigger_event_ids": [EVENT.id],
                "occurred_at": "2025-06-01T23:00:00+00:00",
                "raised_at": "2025-06-02T08:59:00+00:00",
                "due_at": "2025-06-02T11:00:00+00:00",
            },
        }


class TestAttempts:
    async def test_delivered_signed_and_audited(self, make: Make) -> None:
        """A 2xx delivers: exact body, valid signature over it, one alert.delivered record."""
        w = make([204])
        await queue(w.dispatcher, w.store, [alert(1)])
        assert await w.dispatcher.run_due() == 1
        (request,) = w.receiver.seen
        assert request.content == alert_body(alert(1), HOOK).encode()
        verify(request.content, request.headers, SECRET.encode(), now=int(NOW.timestamp()))
        assert request.headers["x-hub-timestamp"] == str(int(NOW.timestamp()))
        assert request.headers["x-hub-delivery"] == delivery_id_for(HOOK, alert(1).alert_id)
        row = await w.store.get(delivery_id_for(HOOK, alert(1).alert_id))
        assert row is not None
        assert (row.status, row.attempts, row.last_status_code) == (
            DeliveryStatus.delivered,
            1,
            204,
        )
        records = [r.body async for r in w.gov.trail.records(child_id=CHILD)]
        delivered = [b for b in records if b["action"] == "alert.delivered"]
        assert [(b["who"], b["event_ids"], b["rule_ids"], b["extra"]) for b in delivered] == [
            (
                f"subscriber:{HOOK}",
                [EVENT.id],
                ["school-encompass"],
                {
                    "subscriber_id": HOOK,
                    "delivery_id": row.delivery_id,
                    "alert_id": alert(1).alert_id,
                    "alert_rule_id": "domestic_abuse_to_school",
                    "alert_rule_version": 1,
                },
            )
        ]

    async def test_failure_schedules_a_retry(self, make: Make) -> None:
        """A 503 keeps it pending, next attempt after the jittered back-off (7.5s here)."""
        w = make([503])
        await queue(w.dispatcher, w.store, [alert(1)])
        await w.dispatcher.run_due()
        row = await w.store.get(delivery_id_for(HOOK, alert(1).alert_id))
        assert row is not None
        assert (row.status, row.attempts, row.last_error_class, row.last_status_code) == (
            DeliveryStatus.pending,
            1,
            "HTTPStatusError",
            503,
        )
        assert row.next_attempt_at == NOW + timedelta(seconds=7.5)
        assert await w.dispatcher.run_due() == 0  # not due yet at the frozen time

    async def test_dead_after_the_allowance(self, make: Make) -> None:
        """After the last allowed failure the delivery is dead, keeping the last error."""
        w = make([500], attempts=1)
        await queue(w.dispatcher, w.store, [alert(1)])
        await w.dispatcher.run_due()
        row = await w.store.get(delivery_id_for(HOOK, alert(1).alert_id))
        assert row is not None
        assert (row.status, row.attempts, row.next_attempt_at, row.last_status_code) == (
            DeliveryStatus.dead,
            1,
            None,
            500,
        )
        assert [r async for r in w.gov.trail.records(child_id=CHILD)] == []

    async def test_not_permitted_nothing_sent(self, make: Make) -> None:
        """An alert resting on an event the subscriber may not see is withheld, never sent."""
        w = make([200])
        await queue(w.dispatcher, w.store, [alert(1, triggers=(EVENT.id, HEALTH_EVENT.id))])
        await w.dispatcher.run_due()
        assert w.receiver.seen == []
        row = await w.store.get(delivery_id_for(HOOK, alert(1).alert_id))
        assert row is not None
        assert (row.status, row.last_error_class) == (DeliveryStatus.withheld, "Denied")

    async def test_trigger_not_yet_projected(self, make: Make) -> None:
        """A trigger event not in the store yet counts as a failed attempt, nothing sent."""
        w = make([200])
        await queue(w.dispatcher, w.store, [alert(1, triggers=("northshire-police:evt-9999",))])
        await w.dispatcher.run_due()
        assert w.receiver.seen == []
        row = await w.store.get(delivery_id_for(HOOK, alert(1).alert_id))
        assert row is not None
        assert (row.status, row.last_error_class) == (
            DeliveryStatus.pending,
            "TriggerEventNotProjected",
        )

    async def test_missing_secret(self, make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without its secret nothing is sent; the attempt fails as SecretUnavailable."""
        w = make([200])
        monkeypatch.delenv("HUB_TEST_DELIVERY_SECRET")
        await queue(w.dispatcher, w.store, [alert(1)])
        await w.dispatcher.run_due()
        assert w.receiver.seen == []
        row = await w.store.get(delivery_id_for(HOOK, alert(1).alert_id))
        assert row is not None and row.last_error_class == "SecretUnavailable"

    async def test_connection_error(self, make: Make) -> None:
        """A transport error is recorded by its class, with no status code."""
        w = make([0])
        await queue(w.dispatcher, w.store, [alert(1)])
        await w.dispatcher.run_due()
        row = await w.store.get(delivery_id_for(HOOK, alert(1).alert_id))
        assert row is not None
        assert (row.last_error_class, row.last_status_code) == ("ConnectError", None)
