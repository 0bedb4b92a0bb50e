"""The ingest processor on a real SQLite store: publish, link, de-duplicate, dead-letter."""

from __future__ import annotations

import json
from typing import Any

import pytest
from structlog.testing import capture_logs

from contracts import FieldError, parse_envelope
from contracts.examples import example_envelope, valid_nhs_number
from hub.observability import Metrics
from hub.registry import AgencyRegistry
from hub.settings import Settings
from hub.store.repository import SqlStore
from hub.streams.ingest import IngestProcessor
from hub.streams.projector import NarrativeProjector
from hub.streams.records import ConsumedRecord
from hub.streams.topics import Topics
from hub.streams.wire import (
    DeadLetter,
    DeadLetterReason,
    DeadLetterSource,
    HubEvent,
    envelope_digest,
)

from .conftest import NOW, BrokerDidNotConfirm, RecordingPublish, Sent, child_id, dlq_id

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("frozen_ids")]

POLICE = "t.ingest.police"
HEALTH = "t.ingest.health"
EVENTS = "t.hub.events"
DLQ = "t.hub.dlq"
NHS = valid_nhs_number(0)
OTHER_NHS = valid_nhs_number(1)
EVENT_ID = "northshire-police:evt-0001"
CONTRACT_DETAIL = "the envelope does not meet the contract"


def health_envelope(**overrides: Any) -> dict[str, Any]:
    """The example envelope as sent by Northshire health, about the same child."""
    return example_envelope(
        id="northshire-health:evt-0001",
        source="urn:agency:northshire-health",
        agency_id="northshire-health",
        agency_kind="health",
        subject="NH-0042",
        lawful_basis="public_task",
        **overrides,
    )


def record(
    value: dict[str, Any] | bytes,
    *,
    offset: int = 0,
    topic: str = POLICE,
    key: bytes | None = b"NP-PERSON-0001",
) -> ConsumedRecord:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return ConsumedRecord(topic=topic, partition=0, offset=offset, key=key, value=raw)


def hub_event_sent(envelope: dict[str, Any], child: str, linked_by: str = "nhs") -> Sent:
    """The hub.events record ingest should publish for an envelope linked to ``child``."""
    event = HubEvent(
        child_id=child, ingested_at=NOW, linked_by=linked_by, envelope=parse_envelope(envelope)
    )
    return Sent(
        topic=EVENTS,
        value=event.model_dump_json().encode(),
        key=child.encode(),
        headers={"content-type": "application/json", "event-id": parse_envelope(envelope).id},
    )


def dead_letter(
    consumed: ConsumedRecord,
    reason: DeadLetterReason,
    detail: str,
    *,
    n: int = 1,
    event_id: str | None = None,
    errors: tuple[FieldError, ...] = (),
) -> DeadLetter:
    """The dead letter ingest should write for a consumed record."""
    return DeadLetter(
        dlq_id=dlq_id(n),
        reason=reason,
        detail=detail,
        errors=errors,
        processor="ingest",
        event_id=event_id,
        source=DeadLetterSource(
            topic=consumed.topic,
            partition=consumed.partition,
            offset=consumed.offset,
            key=consumed.key.decode() if consumed.key else None,
        ),
        failed_at=NOW,
        original_b64=DeadLetter.encode_original(consumed.value),
    )


def letters(publish: RecordingPublish) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(s.value) for s in publish.to(DLQ)]


def processor(store: SqlStore, publish: RecordingPublish, metrics: Metrics | None = None) -> Any:
    return IngestProcessor(
        store=store,
        registry=AgencyRegistry.load(),
        topics=Topics(Settings(topic_prefix="t.")),
        publish=publish,
        metrics=metrics or Metrics(),
        clock=lambda: NOW,
    )


async def ledger(store: SqlStore, *event_ids: str) -> dict[str, str]:
    async with store.engine.connect() as conn:
        return await store.ingested_hashes(conn, event_ids)


class TestPublish:
    """A valid envelope is linked to a child and published to hub.events keyed by that child."""

    async def test_valid_envelope_published(
        self, store: SqlStore, publish: RecordingPublish
    ) -> None:
        """A new child is minted; the HubEvent goes to hub.events keyed by its id."""
        envelope = example_envelope()
        consumed = record(envelope)
        await processor(store, publish).handle_batch([consumed])
        assert publish.sent == [hub_event_sent(envelope, child_id(1))]
        assert await ledger(store, EVENT_ID) == {
            EVENT_ID: envelope_digest(parse_envelope(consumed.value))
        }
        assert await store.children_by_identifier("nhs", NHS) == [child_id(1)]
        assert await store.children_by_identifier("ref:northshire-police", "NP-PERSON-0001") == [
            child_id(1)
        ]

    async def test_same_nhs_number_same_child_across_batches(
        self, store: SqlStore, publish: RecordingPublish
    ) -> None:
        """Health's record of the NHS number police already sent joins police's child."""
        ingest = processor(store, publish)
        await ingest.handle_batch([record(example_envelope())])
        await ingest.handle_batch([record(health_envelope(), topic=HEALTH, key=b"NH-0042")])
        assert publish.sent == [
            hub_event_sent(example_envelope(), child_id(1)),
            hub_event_sent(health_envelope(), child_id(1)),
        ]
        assert await store.children_by_identifier("ref:northshire-health", "NH-0042") == [
            child_id(1)
        ]

    async def test_same_nhs_number_same_child_within_batch(
        self, store: SqlStore, publish: RecordingPublish
    ) -> None:
        """Two envelopes with one NHS number in the same batch get one child."""
        second = example_envelope(id="northshire-police:evt-0002")
        await processor(store, publish).handle_batch(
            [record(example_envelope()), record(second, offset=1)]
        )
        assert publish.sent == [
            hub_event_sent(example_envelope(), child_id(1)),
            hub_event_sent(second, child_id(1)),
        ]

    async def test_linked_by_agency_subject_ref(
        self, store: SqlStore, publish: RecordingPublish
    ) -> None:
        """A person with no identifiers is linked by the agency's own subject reference."""
        first = example_envelope()
        first["person"]["identifiers"] = []
        second = {**first, "id": "northshire-police:evt-0002"}
        await processor(store, publish).handle_batch([record(first), record(second, offset=1)])
        assert publish.sent == [
            hub_event_sent(first, child_id(1), linked_by="ref:northshire-police"),
            hub_event_sent(second, child_id(1), linked_by="ref:northshire-police"),
        ]

    async def test_conflicting_key_reported_not_merged(
        self, store: SqlStore, publish: RecordingPublish
    ) -> None:
        """A police ref already on another child is logged as a conflict and left there."""
        ingest = processor(store, publish)
        await ingest.handle_batch([record(example_envelope())])  # NHS + NP-PERSON-0001 -> ch-1
        other = health_envelope()
        other["person"]["identifiers"] = [{"system": "nhs", "value": OTHER_NHS}]
        await ingest.handle_batch([record(other, topic=HEALTH)])  # OTHER_NHS -> ch-2
        clash = example_envelope(id="northshire-police:evt-0002")
        clash["person"]["identifiers"] = [{"system": "nhs", "value": OTHER_NHS}]
        with capture_logs() as logs:
            await ingest.handle_batch([record(clash, offset=1)])
        assert publish.sent[-1] == hub_event_sent(clash, child_id(2))
        assert await store.children_by_identifier("ref:northshire-police", "NP-PERSON-0001") == [
            child_id(1)
        ]
        assert [e for e in logs if e["event"] == "identity.conflict"] == [
            {
                "event": "identity.conflict",
                "log_level": "warning",
                "event_id": "northshire-police:evt-0002",
                "child_id": child_id(2),
                "systems": ["ref:northshire-police"],
            }
        ]

    async def test_nothing_to_link_on(self, store: SqlStore, publish: RecordingPublish) -> None:
        """No identifiers and no subject: dead-lettered as identity_unresolved."""
        envelope = example_envelope(subject=None)
        envelope["person"]["identifiers"] = []
        consumed = record(envelope)
        await processor(store, publish).handle_batch([consumed])
        assert letters(publish) == [
            dead_letter(
                consumed,
                DeadLetterReason.identity_unresolved,
                "the person has no identifier and no agency subject reference",
                event_id=EVENT_ID,
            )
        ]
        assert publish.to(EVENTS) == []


class TestDuplicates:
    """An event id is published once per content; other content under it is a conflict."""

    async def test_same_content_other_key_order_skipped(
        self, store: SqlStore, publish: RecordingPublish
    ) -> None:
        """A redelivery spelled differently (key order, spacing) is skipped silently."""
        envelope = example_envelope()
        ingest = processor(store, publish)
        await ingest.handle_batch([record(envelope)])
        reordered = json.dumps(dict(reversed(envelope.items())), indent=2).encode()
        await ingest.handle_batch([record(reordered, offset=1)])
        assert publish.sent == [hub_event_sent(envelope, child_id(1))]

    async def test_same_content_twice_in_one_batch(
        self, store: SqlStore, publish: RecordingPublish
    ) -> None:
        """The same event twice in one batch is published once."""
        envelope = example_envelope()
        await processor(store, publish).handle_batch([record(envelope), record(envelope, offset=1)])
        assert publish.sent == [hub_event_sent(envelope, child_id(1))]

    async def test_resent_later_is_a_duplicate(
        self, store: SqlStore, publish: RecordingPublish
    ) -> None:
        """The same facts sent again later (new recorded_at, new signature) are skipped."""
        ingest = processor(store, publish)
        await ingest.handle_batch([record(example_envelope())])
        later = example_envelope(recorded_at="2024-03-06T08:00:00+00:00", signature=None)
        await ingest.handle_batch([record(later, offset=1)])
        assert publish.to(EVENTS) == [hub_event_sent(example_envelope(), child_id(1))]
        assert letters(publish) == []

    async def test_same_id_other_content_dead_lettered(
        self, store: SqlStore, publish: RecordingPublish
    ) -> None:
        """Different content under an accepted id goes to hub.dlq as duplicate_id_conflict."""
        ingest = processor(store, publish)
        await ingest.handle_batch([record(example_envelope())])
        changed = example_envelope(time="2024-03-04T21:41:00+00:00")
        consumed = record(changed, offset=1)
        await ingest.handle_batch([consumed])
        assert publish.to(EVENTS) == [hub_event_sent(example_envelope(), child_id(1))]
        assert letters(publish) == [
            dead_letter(
                consumed,
                DeadLetterReason.duplicate_id_conflict,
                "an event with this id was already accepted with different content",
                event_id=EVENT_ID,
            )
        ]
        assert publish.to(DLQ)[0].headers == {
            "content-type": "application/json",
            "x-dlq-reason": "duplicate_id_conflict",
            "x-dlq-id": dlq_id(1),
        }


class TestDeadLetters:
    """A message ingest cannot accept goes to hub.dlq, whole, with a reason and no personal data."""

    async def test_not_json(self, store: SqlStore, publish: RecordingPublish) -> None:
        """Bytes that are not JSON: not_json, the bytes kept whole."""
        consumed = record(b"\xffnot json")
        metrics = Metrics()
        await processor(store, publish, metrics).handle_batch([consumed])
        assert letters(publish) == [
            dead_letter(
                consumed,
                DeadLetterReason.not_json,
                CONTRACT_DETAIL,
                errors=(FieldError("body", "body is not valid JSON", "json_invalid"),),
            )
        ]
        assert letters(publish)[0].original == b"\xffnot json"
        assert publish.to(DLQ)[0].key == b"NP-PERSON-0001"
        assert (
            metrics.registry.get_sample_value(
                "hub_events_dead_lettered_total", {"processor": "ingest", "reason": "not_json"}
            )
            == 1.0
        )

    async def test_contract_invalid_without_personal_data(
        self, store: SqlStore, publish: RecordingPublish
    ) -> None:
        """A contract breach lists field locations; neither letter nor log names the child."""
        envelope = example_envelope()
        del envelope["lawful_basis"]
        wrong_nhs = NHS[:-1] + str((int(NHS[-1]) + 1) % 10)
        envelope["person"]["identifiers"][0]["value"] = wrong_nhs
        consumed = record(envelope)
        with capture_logs() as logs:
            await processor(store, publish).handle_batch([consumed])
        assert letters(publish) == [
            dead_letter(
                consumed,
                DeadLetterReason.contract_invalid,
                CONTRACT_DETAIL,
                event_id=EVENT_ID,
                errors=(
                    FieldError("lawful_basis", "Field required", "missing"),
                    FieldError(
                        "person.identifiers.0.value",
                        "Value error, NHS number *******019 fails the check-digit test",
                        "value_error",
                    ),
                ),
            )
        ]
        text = publish.to(DLQ)[0].value.decode() + repr(logs)
        for personal in ("Ruby", "Example", "2015-06-01", "ZZ99", wrong_nhs, NHS):
            assert personal not in text
        assert publish.to(EVENTS) == []

    async def test_agency_unknown(self, store: SqlStore, publish: RecordingPublish) -> None:
        """An agency missing from the registry: agency_unknown."""
        envelope = example_envelope(
            id="acme-police:evt-0001", agency_id="acme-police", source="urn:agency:acme-police"
        )
        consumed = record(envelope)
        await processor(store, publish).handle_batch([consumed])
        assert letters(publish) == [
            dead_letter(
                consumed,
                DeadLetterReason.agency_unknown,
                "agency 'acme-police' is not registered",
                event_id="acme-police:evt-0001",
            )
        ]

    async def test_police_envelope_on_health_topic(
        self, store: SqlStore, publish: RecordingPublish
    ) -> None:
        """A police agency's envelope on the health ingest topic: agency_kind_mismatch."""
        consumed = record(example_envelope(), topic=HEALTH)
        await processor(store, publish).handle_batch([consumed])
        assert letters(publish) == [
            dead_letter(
                consumed,
                DeadLetterReason.agency_kind_mismatch,
                "agency 'northshire-police' is registered as police, the message says police "
                "on topic t.ingest.health",
                event_id=EVENT_ID,
            )
        ]

    async def test_envelope_claims_other_kind(
        self, store: SqlStore, publish: RecordingPublish
    ) -> None:
        """A police agency claiming to be health: agency_kind_mismatch."""
        consumed = record(example_envelope(agency_kind="health"))
        await processor(store, publish).handle_batch([consumed])
        assert letters(publish) == [
            dead_letter(
                consumed,
                DeadLetterReason.agency_kind_mismatch,
                "agency 'northshire-police' is registered as police, the message says health "
                "on topic t.ingest.police",
                event_id=EVENT_ID,
            )
        ]

    async def test_bad_record_does_not_hold_back_good(
        self, store: SqlStore, publish: RecordingPublish
    ) -> None:
        """In a mixed batch the bad record is dead-lettered and the good one published."""
        await processor(store, publish).handle_batch(
            [record(b"nope"), record(example_envelope(), offset=1)]
        )
        assert [(s.topic, s.key) for s in publish.sent] == [
            (DLQ, b"NP-PERSON-0001"),
            (EVENTS, child_id(1).encode()),
        ]

    async def test_deeply_nested_json_dead_lettered(
        self, store: SqlStore, publish: RecordingPublish
    ) -> None:
        """A message nested too deeply to parse is dead-lettered as not_json, not a crash."""
        consumed = record(b"[" * 100_000)
        await processor(store, publish).handle_batch([consumed])
        assert letters(publish) == [
            dead_letter(
                consumed,
                DeadLetterReason.not_json,
                CONTRACT_DETAIL,
                errors=(FieldError("body", "body is not valid JSON", "json_invalid"),),
            )
        ]


class TestFailedPublish:
    """A publish the broker does not confirm fails the batch; a retry loses nothing."""

    async def test_failure_raises_and_retry_publishes(self, store: SqlStore) -> None:
        """Nothing is recorded as ingested after a failure; the retry publishes again."""
        envelope = example_envelope()
        batch = [record(envelope)]
        failing = RecordingPublish(failing={0})
        with pytest.raises(BrokerDidNotConfirm):
            await processor(store, failing).handle_batch(batch)
        assert await ledger(store, EVENT_ID) == {}
        assert await store.children_by_identifier("nhs", NHS) == []

        working = RecordingPublish()
        await processor(store, working).handle_batch(batch)
        # The retry mints the same child as the failed attempt (seeded by the event id).
        assert working.sent == [hub_event_sent(envelope, child_id(1))]
        digest = envelope_digest(parse_envelope(batch[0].value))
        assert await ledger(store, EVENT_ID) == {EVENT_ID: digest}

    async def test_failed_dead_letter_fails_batch(self, store: SqlStore) -> None:
        """A dead letter the broker does not confirm fails the batch too."""
        failing = RecordingPublish(failing={0})
        with pytest.raises(BrokerDidNotConfirm):
            await processor(store, failing).handle_batch([record(b"nope")])

    async def test_retry_links_to_the_same_child(self, store: SqlStore) -> None:
        """Both copies of a retried event name the same child, so its narrative has it."""
        batch = [record(example_envelope())]
        publish = RecordingPublish(failing={0})  # delivered, but never confirmed
        with pytest.raises(BrokerDidNotConfirm):
            await processor(store, publish).handle_batch(batch)
        await processor(store, publish).handle_batch(batch)

        copies = [
            ConsumedRecord(EVENTS, 0, offset, s.key, s.value)
            for offset, s in enumerate(publish.to(EVENTS))
        ]
        projector = NarrativeProjector(
            store=store,
            topics=Topics(Settings(topic_prefix="t.")),
            publish=RecordingPublish(),
            metrics=Metrics(),
            clock=lambda: NOW,
        )
        await projector.handle_batch(copies)
        [child] = await store.children_by_identifier("nhs", NHS)
        assert [e.event_id for e in await store.narrative(child)] == [EVENT_ID]
        assert [c.key for c in copies] == [child.encode(), child.encode()]
