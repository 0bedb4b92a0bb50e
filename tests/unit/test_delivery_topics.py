"""Topic deliveries: permitted events, redacted, to ``deliver.<subscriber>`` once, audited.

Runs on a SQLite file (no server) with a fake publisher that records the exact bytes.
The builders here are reused by the integration tests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from contracts import AgencyKind, Envelope, parse_envelope
from contracts.examples import example_envelope
from hub.delivery.config import Subscribers, load_subscribers
from hub.delivery.store import DeliveryStatus, DeliveryStore, delivery_id_for
from hub.delivery.tables import deliveries
from hub.delivery.topics import (
    DeliveryCounts,
    DeliveryEvent,
    TopicDeliveryProcessor,
    deliver_topic,
    deliver_topic_specs,
)
from hub.governance import Actor, Governance, GovernanceSettings, SubjectKind
from hub.settings import Settings
from hub.store.db import create_engine, migrate
from hub.streams.topics import TopicSpec

pytestmark = pytest.mark.unit

NOW = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
CHILD = "child-0001"
AGENCIES = {
    "northshire-police": AgencyKind.police,
    "northshire-health": AgencyKind.health,
    "northshire-primary": AgencyKind.schools,
    "northshire-cs": AgencyKind.childrens_services,
}

RULES = """\
version: "delivery-test.1"
author: Test IG
reason: Testing deliveries.
rules:
  - id: school-encompass
    description: Police domestic-abuse concerns to the school DSL, without the people in them.
    owner: Test IG
    reason: Testing.
    effective_from: 2025-04-01
    match:
      source_agency_kinds: [police]
      event_types: [concern.raised]
      sensitivity_any: [domestic_abuse]
    recipients:
      agency_kinds: [schools]
      roles: [designated_safeguarding_lead]
    purpose: education_safeguarding
    lawful_basis: legal_obligation
    consent: not_required
    obligations:
      remove_fields: [data.raised_by_role, person.related, person.address, subject]
      generalise:
        data.summary: Police attended a domestic abuse incident in this pupil's household.
"""

SUBSCRIBERS = """\
version: 1
subscribers:
  - id: school-dsl
    agency_id: northshire-primary
    role: designated_safeguarding_lead
    purpose: education_safeguarding
    kind: topic
  - id: nurse
    agency_id: northshire-health
    role: named_nurse
    purpose: safeguarding
    kind: topic
  - id: school-hook
    agency_id: northshire-primary
    role: designated_safeguarding_lead
    purpose: education_safeguarding
    kind: webhook
    url: http://127.0.0.1:9/never
    secret: {env: HUB_TEST_DELIVERY_SECRET}
"""


def clock() -> datetime:
    return NOW


def write_config(tmp_path: Path, subscribers: str = SUBSCRIBERS) -> tuple[Path, Subscribers]:
    """The rule pack file and the loaded subscribers, under ``tmp_path``."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, "utf-8")
    subs = tmp_path / "subscribers.yaml"
    subs.write_text(subscribers, "utf-8")
    return rules, load_subscribers(subs, agencies=AGENCIES)


def governance(engine: Any, rules: Path) -> Governance:
    """Governance over ``engine`` with the test pack and the frozen clock."""
    return Governance.over(
        engine, GovernanceSettings(rules_bootstrap_file=rules), agencies=AGENCIES, clock=clock
    )


def police_concern(n: int = 1, *, kind: str = "police", tags: tuple[str, ...] = ()) -> Envelope:
    """A police domestic-abuse concern (invented people, test-range NHS number)."""
    agency = f"northshire-{kind}" if kind != "childrens_services" else "northshire-cs"
    return parse_envelope(
        example_envelope(
            id=f"{agency}:evt-{n:04d}",
            agency_id=agency,
            agency_kind=kind,
            source=f"urn:agency:{agency}",
            sensitivity=list(tags or ("domestic_abuse",)),
        )
    )


@dataclass
class FakePublish:
    """Records what is published; can be told to fail."""

    sent: list[tuple[str, bytes, bytes | None, dict[str, str]]] = field(default_factory=list)
    fail: bool = False

    async def __call__(
        self, topic: str, value: bytes, *, key: bytes | None, headers: dict[str, str]
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.fail:
            future.set_exception(ConnectionError("broker unavailable"))
        else:
            self.sent.append((topic, value, key, headers))
            future.set_result(None)
        return future


@dataclass
class World:
    processor: TopicDeliveryProcessor
    publish: FakePublish
    store: DeliveryStore
    gov: Governance
    settings: Settings


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """A processor over a migrated SQLite file with the test pack and subscribers."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    await migrate(engine)
    rules, subs = write_config(tmp_path)
    gov = governance(engine, rules)
    store = DeliveryStore(engine, clock=clock)
    publish = FakePublish()
    settings = Settings(topic_prefix="t1-")
    processor = TopicDeliveryProcessor(
        settings=settings,
        subscribers=subs,
        store=store,
        governance=gov,
        publish=publish,
        clock=clock,
    )
    try:
        yield World(processor, publish, store, gov, settings)
    finally:
        await engine.dispose()


def expected_copy(envelope: Envelope) -> dict[str, Any]:
    """The envelope as the school DSL may see it under the test pack."""
    view = envelope.model_dump(mode="json", exclude={"signature", "key_id"})
    del view["subject"], view["person"]["related"], view["person"]["address"]
    del view["data"]["raised_by_role"]
    view["data"]["summary"] = "Police attended a domestic abuse incident in this pupil's household."
    return view


class TestPermitted:
    async def test_publishes_the_redacted_copy(self, world: World) -> None:
        """A permitted event goes to deliver.<subscriber>, keyed by child, redacted, headed."""
        event = police_concern()
        counts = await world.processor.handle_batch([DeliveryEvent(CHILD, event)])
        assert counts == DeliveryCounts(published=1, denied=1, duplicates=0)  # nurse: denied
        ((topic, value, key, headers),) = world.publish.sent
        assert (topic, key) == ("t1-deliver.school-dsl", CHILD.encode())
        assert json.loads(value) == expected_copy(event)
        assert headers == {
            "content-type": "application/json",
            "x-event-id": event.id,
            "x-delivery-id": delivery_id_for("school-dsl", event.id),
            "x-subscriber-id": "school-dsl",
            "x-rule-ids": "school-encompass",
            "x-rule-pack-version": "delivery-test.1",
            "x-lawful-bases": "legal_obligation",
        }

    async def test_removed_fields_never_leave(self, world: World) -> None:
        """What a rule removes is absent from the published bytes, not blanked."""
        await world.processor.handle_batch([DeliveryEvent(CHILD, police_concern())])
        ((_, value, _, _),) = world.publish.sent
        for secret in (b"1990-02-03", b"ZZ99 3ZZ", b"attending officer", b"NP-PERSON-0001"):
            assert secret not in value
        for key in (b'"related"', b'"address"', b'"raised_by_role"', b'"subject"'):
            assert key not in value

    async def test_audits_each_delivered_event(self, world: World) -> None:
        """One delivery.pushed record: subscriber, agency, purpose, child, event, rule, basis."""
        event = police_concern()
        await world.processor.handle_batch([DeliveryEvent(CHILD, event)])
        records = [r async for r in world.gov.trail.records(child_id=CHILD)]
        bodies = [r.body for r in records if r.body["action"] == "delivery.pushed"]
        assert len(bodies) == 1
        body = bodies[0]
        assert {k: body[k] for k in ("who", "agency_id", "agency_kind", "role", "purpose")} == {
            "who": "subscriber:school-dsl",
            "agency_id": "northshire-primary",
            "agency_kind": "schools",
            "role": "designated_safeguarding_lead",
            "purpose": "education_safeguarding",
        }
        assert (body["child_id"], body["event_ids"], body["effect"]) == (
            CHILD,
            [event.id],
            "permit",
        )
        assert (body["rule_ids"], body["lawful_bases"], body["pack_version"]) == (
            ["school-encompass"],
            ["legal_obligation"],
            "delivery-test.1",
        )
        assert body["extra"] == {
            "subscriber_id": "school-dsl",
            "delivery_id": delivery_id_for("school-dsl", event.id),
            "topic": "t1-deliver.school-dsl",
        }

    async def test_redelivery_is_delivered_once(self, world: World) -> None:
        """The same event again (a redelivered batch) is not published again."""
        batch = [DeliveryEvent(CHILD, police_concern())]
        await world.processor.handle_batch(batch)
        again = await world.processor.handle_batch(batch + batch)
        assert again == DeliveryCounts(published=0, denied=2, duplicates=2)
        assert len(world.publish.sent) == 1
        row = await world.store.get(delivery_id_for("school-dsl", batch[0].envelope.id))
        assert row is not None
        assert (row.status, row.attempts, row.delivered_at) == (DeliveryStatus.delivered, 1, NOW)

    async def test_twice_in_one_batch_is_sent_once(self, world: World) -> None:
        """An event that appears twice in one batch is published once."""
        item = DeliveryEvent(CHILD, police_concern())
        counts = await world.processor.handle_batch([item, item])
        assert counts == DeliveryCounts(published=1, denied=2, duplicates=1)


class TestProtected:
    async def test_protected_childs_location_is_stripped(
        self, world: World, tmp_path: Path
    ) -> None:
        """For a protected child the copy loses every address and location, even where the
        rule itself would have shown them."""
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES.replace("person.address, ", ""), "utf-8")
        await world.gov.protections.protect(
            CHILD,
            kind=SubjectKind.child,
            reason="Family in a refuge.",
            review_on=date(2025, 9, 1),
            actor=Actor("sw-1", "northshire-cs", "childrens_services", "social_worker"),
        )
        event = police_concern()
        await world.processor.handle_batch([DeliveryEvent(CHILD, event)])
        ((_, value, _, _),) = world.publish.sent
        expected = expected_copy(event)
        assert json.loads(value) == expected  # the rule kept the address; protection removed it
        assert b"ZZ99 3ZZ" not in value and b"Example Street" not in value


class TestDenied:
    async def test_nothing_published_ids_logged(self, world: World) -> None:
        """A health event no rule shares: nothing published, no ledger row, ids-only log, and
        the decision not to share audited per subscriber (so a dry-run can replay it)."""
        event = police_concern(2, kind="health", tags=("domestic_abuse",))
        with capture_logs() as logs:
            counts = await world.processor.handle_batch([DeliveryEvent(CHILD, event)])
        assert counts == DeliveryCounts(published=0, denied=2, duplicates=0)
        assert world.publish.sent == []
        async with world.store.engine.connect() as conn:
            assert (await conn.execute(select(deliveries))).all() == []
        denied = [e for e in logs if e["event"] == "delivery.not_permitted"]
        assert denied == [
            {
                "event": "delivery.not_permitted",
                "log_level": "debug",
                "subscriber_id": sub,
                "event_id": event.id,
                "child_id": CHILD,
                "pack_version": "delivery-test.1",
                "held_until": None,
            }
            for sub in ("school-dsl", "nurse")
        ]
        records = [r async for r in world.gov.trail.records(child_id=CHILD)]
        assert sorted(
            (
                r.body["action"],
                r.body["extra"]["subscriber_id"],
                r.body["effect"],
                [(d["event_id"], d["effect"]) for d in r.disclosure_items()],
            )
            for r in records
        ) == [
            ("delivery.withheld", sub, "deny", [(event.id, "deny")])
            for sub in ("nurse", "school-dsl")
        ]


class TestFaults:
    async def test_broker_failure_leaves_it_pending_then_sends(self, world: World) -> None:
        """If the broker refuses, the batch fails unaudited; the redelivery publishes it."""
        batch = [DeliveryEvent(CHILD, police_concern())]
        world.publish.fail = True
        with pytest.raises(ConnectionError):
            await world.processor.handle_batch(batch)
        row = await world.store.get(delivery_id_for("school-dsl", batch[0].envelope.id))
        assert row is not None and row.status is DeliveryStatus.pending
        assert [r async for r in world.gov.trail.records(child_id=CHILD)] == []
        world.publish.fail = False
        assert (await world.processor.handle_batch(batch)).published == 1


class TestTopics:
    def test_specs_one_per_topic_subscriber(self, tmp_path: Path) -> None:
        """A deliver topic per topic subscriber (webhooks have none), prefix applied."""
        _, subs = write_config(tmp_path)
        settings = Settings(topic_prefix="p-")
        config = {"retention.ms": str(14 * 86_400_000), "cleanup.policy": "delete"}
        assert deliver_topic_specs(settings, subs, partitions=3, retention_days=14) == [
            TopicSpec("p-deliver.school-dsl", 3, config),
            TopicSpec("p-deliver.nurse", 3, config),
        ]
        assert deliver_topic(settings, "x") == "p-deliver.x"
