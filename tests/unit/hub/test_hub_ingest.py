"""The ingest processor on a real SQLite store: verify, publish sealed, link, de-duplicate,
dead-letter. Records are signed with the development agency keys unless a test says not."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from structlog.testing import capture_logs

from contracts import FieldError, parse_envelope
from contracts.examples import example_envelope, valid_nhs_number
from hub.crypto.agency_keys import AgencyKeyRing, AgencyPublicKey, dev_key_id, dev_private_key
from hub.crypto.dead_letters import DeadLetterSealer
from hub.crypto.encryption import sealed_paths
from hub.crypto.runtime import INTAKE_AGENCY, HubSecurity, sign_as_dev
from hub.crypto.signing import sign_envelope
from hub.crypto.tables import child_data_keys
from hub.observability import Metrics
from hub.registry import AgencyRegistry
from hub.settings import Settings
from hub.store.repository import SqlStore
from hub.store.schema import child_identifiers
from hub.streams.ingest import IngestProcessor
from hub.streams.projector import NarrativeProjector
from hub.streams.records import ConsumedRecord
from hub.streams.topics import Topics
from hub.streams.wire import (
    DeadLetter,
    DeadLetterReason,
    DeadLetterSource,
    SealedHubEvent,
    envelope_digest,
)

from .conftest import (
    NOW,
    BrokerDidNotConfirm,
    RecordingPublish,
    child_id,
    dlq_id,
    make_security,
)

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("frozen_ids")]

POLICE = "t.ingest.police"
HEALTH = "t.ingest.health"
EVENTS = "t.hub.events"
DLQ = "t.hub.dlq"
NHS = valid_nhs_number(0)
OTHER_NHS = valid_nhs_number(1)
EVENT_ID = "northshire-police:evt-0001"
CONTRACT_DETAIL = "the envelope does not meet the contract"
SEALED = {"sealed": "(compared in TestDeadLetters.test_not_json)"}
"""Stands in for a letter's sealed original, which differs on every run (random nonce)."""


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
    sign: bool = True,
) -> ConsumedRecord:
    """An ingest record; a dict is signed with its agency's development key unless ``sign``."""
    if isinstance(value, bytes):
        raw = value
    else:
        raw = json.dumps(sign_as_dev(value) if sign else value).encode()
    return ConsumedRecord(topic=topic, partition=0, offset=offset, key=key, value=raw)


@dataclass(frozen=True, slots=True)
class Published:
    """A hub.events record as a reader with the keys sees it: the envelope opened."""

    key: bytes | None
    headers: dict[str, str]
    child_id: str
    ingested_at: datetime
    linked_by: str | None
    envelope: dict[str, Any]


def hub_event_sent(envelope: dict[str, Any], child: str, linked_by: str = "nhs") -> Published:
    """The hub.events record ingest should publish for an envelope linked to ``child``.

    The envelope travels as signed and received: ``key_id`` and ``signature`` included.
    """
    return Published(
        key=child.encode(),
        headers={"content-type": "application/json", "event-id": envelope["id"]},
        child_id=child,
        ingested_at=NOW,
        linked_by=linked_by,
        envelope=sign_as_dev(envelope),
    )


async def published(publish: RecordingPublish, security: HubSecurity) -> list[Published]:
    """Every hub.events record sent, opened with the child's data key."""
    out = []
    for sent in publish.to(EVENTS):
        event = SealedHubEvent.model_validate_json(sent.value)
        opened = await security.cipher.open_envelope(event.child_id, event.envelope)
        out.append(
            Published(
                sent.key, sent.headers, event.child_id, event.ingested_at, event.linked_by, opened
            )
        )
    return out


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
            key=None,
        ),
        failed_at=NOW,
        original_sealed=SEALED,
    )


def letters(publish: RecordingPublish) -> list[DeadLetter]:
    return [
        DeadLetter.model_validate_json(s.value).model_copy(update={"original_sealed": SEALED})
        for s in publish.to(DLQ)
    ]


def processor(
    store: SqlStore,
    publish: RecordingPublish,
    security: HubSecurity,
    metrics: Metrics | None = None,
) -> IngestProcessor:
    return IngestProcessor(
        store=store,
        registry=AgencyRegistry.load(),
        topics=Topics(Settings(topic_prefix="t.")),
        publish=publish,
        metrics=metrics or Metrics(),
        security=security,
        clock=lambda: NOW,
    )


async def children_of(store: SqlStore, security: HubSecurity, system: str, value: str) -> list[str]:
    """The children the person index links an identifier to (looked up by its digest)."""
    return await store.children_by_identifier(system, security.digest(system, value))


async def ledger(store: SqlStore, *event_ids: str) -> dict[str, str]:
    async with store.engine.connect() as conn:
        return await store.ingested_hashes(conn, event_ids)


class TestPublish:
    """A valid envelope is linked to a child and published to hub.events keyed by that child."""

    async def test_valid_envelope_published(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """A new child is minted; the HubEvent goes to hub.events keyed by its id."""
        envelope = example_envelope()
        consumed = record(envelope)
        await processor(store, publish, security).handle_batch([consumed])
        assert await published(publish, security) == [hub_event_sent(envelope, child_id(1))]
        assert await ledger(store, EVENT_ID) == {
            EVENT_ID: envelope_digest(parse_envelope(consumed.value))
        }
        assert await children_of(store, security, "nhs", NHS) == [child_id(1)]
        assert await children_of(store, security, "ref:northshire-police", "NP-PERSON-0001") == [
            child_id(1)
        ]

    async def test_same_nhs_number_same_child_across_batches(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """Health's record of the NHS number police already sent joins police's child."""
        ingest = processor(store, publish, security)
        await ingest.handle_batch([record(example_envelope())])
        await ingest.handle_batch([record(health_envelope(), topic=HEALTH, key=b"NH-0042")])
        assert await published(publish, security) == [
            hub_event_sent(example_envelope(), child_id(1)),
            hub_event_sent(health_envelope(), child_id(1)),
        ]
        assert await children_of(store, security, "ref:northshire-health", "NH-0042") == [
            child_id(1)
        ]

    async def test_same_nhs_number_same_child_within_batch(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """Two envelopes with one NHS number in the same batch get one child."""
        second = example_envelope(id="northshire-police:evt-0002")
        await processor(store, publish, security).handle_batch(
            [record(example_envelope()), record(second, offset=1)]
        )
        assert await published(publish, security) == [
            hub_event_sent(example_envelope(), child_id(1)),
            hub_event_sent(second, child_id(1)),
        ]

    async def test_linked_by_agency_subject_ref(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """A person with no identifiers is linked by the agency's own subject reference."""
        first = example_envelope()
        first["person"]["identifiers"] = []
        second = {**first, "id": "northshire-police:evt-0002"}
        await processor(store, publish, security).handle_batch(
            [record(first), record(second, offset=1)]
        )
        assert await published(publish, security) == [
            hub_event_sent(first, child_id(1), linked_by="ref:northshire-police"),
            hub_event_sent(second, child_id(1), linked_by="ref:northshire-police"),
        ]

    async def test_conflicting_key_reported_not_merged(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """A police ref already on another child is logged as a conflict and left there."""
        ingest = processor(store, publish, security)
        await ingest.handle_batch([record(example_envelope())])  # NHS + NP-PERSON-0001 -> ch-1
        other = health_envelope()
        other["person"]["identifiers"] = [{"system": "nhs", "value": OTHER_NHS}]
        await ingest.handle_batch([record(other, topic=HEALTH)])  # OTHER_NHS -> ch-2
        clash = example_envelope(id="northshire-police:evt-0002")
        clash["person"]["identifiers"] = [{"system": "nhs", "value": OTHER_NHS}]
        with capture_logs() as logs:
            await ingest.handle_batch([record(clash, offset=1)])
        assert (await published(publish, security))[-1] == hub_event_sent(clash, child_id(2))
        assert await children_of(store, security, "ref:northshire-police", "NP-PERSON-0001") == [
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

    async def test_no_identifier_links_on_names(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """No identifiers and no subject: matched on names and birth date; nobody is known
        yet, so a new child is minted rather than the record being dead-lettered."""
        envelope = example_envelope(subject=None)
        envelope["person"]["identifiers"] = []
        await processor(store, publish, security).handle_batch([record(envelope)])
        assert letters(publish) == []
        assert await published(publish, security) == [
            hub_event_sent(envelope, child_id(1), linked_by="new")
        ]


class TestDuplicates:
    """An event id is published once per content; other content under it is a conflict."""

    async def test_same_content_other_key_order_skipped(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """A redelivery spelled differently (key order, spacing) is skipped silently."""
        envelope = example_envelope()
        ingest = processor(store, publish, security)
        await ingest.handle_batch([record(envelope)])
        signed = sign_as_dev(envelope)
        reordered = json.dumps(dict(reversed(signed.items())), indent=2).encode()
        await ingest.handle_batch([record(reordered, offset=1)])
        assert await published(publish, security) == [hub_event_sent(envelope, child_id(1))]

    async def test_same_content_twice_in_one_batch(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """The same event twice in one batch is published once."""
        envelope = example_envelope()
        await processor(store, publish, security).handle_batch(
            [record(envelope), record(envelope, offset=1)]
        )
        assert await published(publish, security) == [hub_event_sent(envelope, child_id(1))]

    async def test_resent_later_is_a_duplicate(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """The same facts sent again later (new recorded_at, new signature) are skipped."""
        ingest = processor(store, publish, security)
        await ingest.handle_batch([record(example_envelope())])
        later = example_envelope(recorded_at="2024-03-06T08:00:00+00:00", signature=None)
        await ingest.handle_batch([record(later, offset=1)])
        assert await published(publish, security) == [
            hub_event_sent(example_envelope(), child_id(1))
        ]
        assert letters(publish) == []

    async def test_same_id_other_content_dead_lettered(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """Different content under an accepted id goes to hub.dlq as duplicate_id_conflict."""
        ingest = processor(store, publish, security)
        await ingest.handle_batch([record(example_envelope())])
        changed = example_envelope(time="2024-03-04T21:41:00+00:00")
        consumed = record(changed, offset=1)
        await ingest.handle_batch([consumed])
        assert await published(publish, security) == [
            hub_event_sent(example_envelope(), child_id(1))
        ]
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

    async def test_not_json(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """Bytes that are not JSON: not_json, the bytes kept whole."""
        consumed = record(b"\xffnot json")
        metrics = Metrics()
        await processor(store, publish, security, metrics).handle_batch([consumed])
        assert letters(publish) == [
            dead_letter(
                consumed,
                DeadLetterReason.not_json,
                CONTRACT_DETAIL,
                errors=(FieldError("body", "body is not valid JSON", "json_invalid"),),
            )
        ]
        sent = publish.to(DLQ)[0]
        sealed = DeadLetter.model_validate_json(sent.value).original_sealed
        assert sealed is not None and b"NP-PERSON" not in sent.value
        opened = await DeadLetterSealer(security.keys).open_original(sealed, dlq_id=dlq_id(1))
        assert (opened.value, opened.key) == (b"\xffnot json", b"NP-PERSON-0001")
        assert sent.key == dlq_id(1).encode()
        assert (
            metrics.registry.get_sample_value(
                "hub_events_dead_lettered_total", {"processor": "ingest", "reason": "not_json"}
            )
            == 1.0
        )

    async def test_contract_invalid_without_personal_data(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """A contract breach lists field locations; neither letter nor log names the child."""
        envelope = example_envelope()
        del envelope["lawful_basis"]
        wrong_nhs = NHS[:-1] + str((int(NHS[-1]) + 1) % 10)
        envelope["person"]["identifiers"][0]["value"] = wrong_nhs
        consumed = record(envelope)
        with capture_logs() as logs:
            await processor(store, publish, security).handle_batch([consumed])
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

    async def test_agency_unknown(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """An agency missing from the registry: agency_unknown."""
        envelope = example_envelope(
            id="acme-police:evt-0001", agency_id="acme-police", source="urn:agency:acme-police"
        )
        consumed = record(envelope)
        await processor(store, publish, security).handle_batch([consumed])
        assert letters(publish) == [
            dead_letter(
                consumed,
                DeadLetterReason.agency_unknown,
                "agency 'acme-police' is not registered",
                event_id="acme-police:evt-0001",
            )
        ]

    async def test_police_envelope_on_health_topic(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """A police agency's envelope on the health ingest topic: agency_kind_mismatch."""
        consumed = record(example_envelope(), topic=HEALTH)
        await processor(store, publish, security).handle_batch([consumed])
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
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """A police agency claiming to be health: agency_kind_mismatch."""
        consumed = record(example_envelope(agency_kind="health"))
        await processor(store, publish, security).handle_batch([consumed])
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
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """In a mixed batch the bad record is dead-lettered and the good one published."""
        await processor(store, publish, security).handle_batch(
            [record(b"nope"), record(example_envelope(), offset=1)]
        )
        assert [(s.topic, s.key) for s in publish.sent] == [
            (DLQ, dlq_id(1).encode()),  # not the record's key: that can be an identifier
            (EVENTS, child_id(1).encode()),
        ]

    async def test_deeply_nested_json_dead_lettered(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """A message nested too deeply to parse is dead-lettered as not_json, not a crash."""
        consumed = record(b"[" * 100_000)
        await processor(store, publish, security).handle_batch([consumed])
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

    async def test_failure_raises_and_retry_publishes(
        self, store: SqlStore, security: HubSecurity
    ) -> None:
        """Nothing is recorded as ingested after a failure; the retry publishes again.

        The link and the child's data key were committed before publishing, so the copy the
        broker may hold is readable and the retry seals under the same key.
        """
        envelope = example_envelope()
        batch = [record(envelope)]
        failing = RecordingPublish(failing={0})
        with pytest.raises(BrokerDidNotConfirm):
            await processor(store, failing, security).handle_batch(batch)
        assert await ledger(store, EVENT_ID) == {}
        assert await children_of(store, security, "nhs", NHS) == [child_id(1)]
        assert await published(failing, security) == [hub_event_sent(envelope, child_id(1))]

        working = RecordingPublish()
        await processor(store, working, security).handle_batch(batch)
        # The retry mints the same child as the failed attempt (seeded by the event id).
        assert await published(working, security) == [hub_event_sent(envelope, child_id(1))]
        digest = envelope_digest(parse_envelope(batch[0].value))
        assert await ledger(store, EVENT_ID) == {EVENT_ID: digest}

    async def test_failed_dead_letter_fails_batch(
        self, store: SqlStore, security: HubSecurity
    ) -> None:
        """A dead letter the broker does not confirm fails the batch too."""
        failing = RecordingPublish(failing={0})
        with pytest.raises(BrokerDidNotConfirm):
            await processor(store, failing, security).handle_batch([record(b"nope")])

    async def test_retry_links_to_the_same_child(
        self, store: SqlStore, security: HubSecurity
    ) -> None:
        """Both copies of a retried event name the same child, so its narrative has it."""
        batch = [record(example_envelope())]
        publish = RecordingPublish(failing={0})  # delivered, but never confirmed
        with pytest.raises(BrokerDidNotConfirm):
            await processor(store, publish, security).handle_batch(batch)
        await processor(store, publish, security).handle_batch(batch)

        copies = [
            ConsumedRecord(EVENTS, 0, offset, s.key, s.value)
            for offset, s in enumerate(publish.to(EVENTS))
        ]
        projector = NarrativeProjector(
            store=store,
            topics=Topics(Settings(topic_prefix="t.")),
            publish=RecordingPublish(),
            metrics=Metrics(),
            security=security,
            clock=lambda: NOW,
        )
        await projector.handle_batch(copies)
        [child] = await children_of(store, security, "nhs", NHS)
        assert [e.event_id for e in await store.narrative(child)] == [EVENT_ID]
        assert [c.key for c in copies] == [child.encode(), child.encode()]


def retired_police_ring(*, retired_at: str, grace_days: int, valid_from: str) -> AgencyKeyRing:
    """A ring where police's only key is its dev key with the given dates."""
    police = dev_private_key("northshire-police").public_key()
    return AgencyKeyRing(
        [
            AgencyPublicKey(
                key_id=dev_key_id("northshire-police"),
                agency_id="northshire-police",
                public_key=police,
                valid_from=datetime.fromisoformat(valid_from),
                retired_at=datetime.fromisoformat(retired_at),
                grace=timedelta(days=grace_days),
            )
        ]
    )


class TestSignatures:
    """Only envelopes signed by a key registered to their agency get past ingest."""

    async def assert_rejected(
        self,
        store: SqlStore,
        security: HubSecurity,
        consumed: ConsumedRecord,
        reason: DeadLetterReason,
        detail: str,
    ) -> Metrics:
        """The record is dead-lettered with the reason, counted, and nothing is stored."""
        publish, metrics = RecordingPublish(), Metrics()
        await processor(store, publish, security, metrics).handle_batch([consumed])
        assert letters(publish) == [dead_letter(consumed, reason, detail, event_id=EVENT_ID)]
        assert publish.to(EVENTS) == []
        assert await ledger(store, EVENT_ID) == {}
        assert await children_of(store, security, "nhs", NHS) == []
        async with store.engine.connect() as conn:
            keys = (await conn.execute(select(child_data_keys.c.child_id))).scalars().all()
        assert keys == ["hub-dlq:2024-03"]  # only the dead-letter month key: no child's
        labels = {"agency_id": "northshire-police", "reason": reason.value}
        assert metrics.registry.get_sample_value("hub_signature_rejections_total", labels) == 1
        return metrics

    async def test_unsigned(self, store: SqlStore, security: HubSecurity) -> None:
        """No signature: signature_unsigned."""
        consumed = record(example_envelope(), sign=False)
        await self.assert_rejected(
            store,
            security,
            consumed,
            DeadLetterReason.signature_unsigned,
            "the envelope has no signature and key_id",
        )

    async def test_forged_signature(self, store: SqlStore, security: HubSecurity) -> None:
        """A signature by a key that is not the registered one: signature_invalid."""
        forged = sign_envelope(
            example_envelope(), Ed25519PrivateKey.generate(), dev_key_id("northshire-police")
        )
        await self.assert_rejected(
            store,
            security,
            record(forged, sign=False),
            DeadLetterReason.signature_invalid,
            "the signature does not match the content and key",
        )

    async def test_content_changed_after_signing(
        self, store: SqlStore, security: HubSecurity
    ) -> None:
        """One field changed after signing (the risk level): signature_invalid."""
        tampered = sign_as_dev(example_envelope())
        tampered["data"]["risk_level"] = "low"
        await self.assert_rejected(
            store,
            security,
            record(tampered, sign=False),
            DeadLetterReason.signature_invalid,
            "the signature does not match the content and key",
        )

    async def test_key_of_another_agency(self, store: SqlStore, security: HubSecurity) -> None:
        """Police's envelope signed with health's key: one agency speaking for another."""
        other = sign_envelope(
            example_envelope(),
            dev_private_key("northshire-health"),
            dev_key_id("northshire-health"),
        )
        await self.assert_rejected(
            store,
            security,
            record(other, sign=False),
            DeadLetterReason.signature_key_of_another_agency,
            "key 'northshire-health.dev-1' belongs to agency 'northshire-health', not the sender",
        )

    async def test_unknown_key(self, store: SqlStore, security: HubSecurity) -> None:
        """A key id nobody registered: signature_unknown_key."""
        unknown = sign_envelope(
            example_envelope(), dev_private_key("northshire-police"), "northshire-police.2099"
        )
        await self.assert_rejected(
            store,
            security,
            record(unknown, sign=False),
            DeadLetterReason.signature_unknown_key,
            "the key id is not registered",
        )

    async def test_expired_key(self, store: SqlStore, tmp_path: Path) -> None:
        """A key retired with 10 days' grace on 1 Feb is refused on 5 March: key_expired."""
        security = await make_security(store, tmp_path / "keys")
        security.agency_keys = retired_police_ring(
            valid_from="2024-01-01T00:00:00+00:00",
            retired_at="2024-02-01T00:00:00+00:00",
            grace_days=10,
        )
        await self.assert_rejected(
            store,
            security,
            record(example_envelope()),
            DeadLetterReason.signature_key_expired,
            "key 'northshire-police.dev-1' was retired and its grace period ended at "
            "2024-02-11T00:00:00+00:00",
        )

    async def test_key_in_grace_accepted(
        self, store: SqlStore, publish: RecordingPublish, tmp_path: Path
    ) -> None:
        """A retired key inside its grace period still verifies (rotation without a gap)."""
        security = await make_security(store, tmp_path / "keys")
        security.agency_keys = retired_police_ring(
            valid_from="2024-01-01T00:00:00+00:00",
            retired_at="2024-03-01T00:00:00+00:00",
            grace_days=30,
        )
        await processor(store, publish, security).handle_batch([record(example_envelope())])
        assert await published(publish, security) == [
            hub_event_sent(example_envelope(), child_id(1))
        ]

    async def test_not_yet_valid_key(self, store: SqlStore, tmp_path: Path) -> None:
        """A key valid only from next year: key_not_yet_valid."""
        security = await make_security(store, tmp_path / "keys")
        security.agency_keys = retired_police_ring(
            valid_from="2025-01-01T00:00:00+00:00",
            retired_at="2026-01-01T00:00:00+00:00",
            grace_days=0,
        )
        await self.assert_rejected(
            store,
            security,
            record(example_envelope()),
            DeadLetterReason.signature_key_not_yet_valid,
            "key 'northshire-police.dev-1' is valid from 2025-01-01T00:00:00+00:00",
        )

    async def test_hub_intake_key_speaks_for_any_agency(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """What the hub's adapters made (signed with the intake key) is accepted."""
        intake = sign_envelope(
            example_envelope(), dev_private_key(INTAKE_AGENCY), dev_key_id(INTAKE_AGENCY)
        )
        await processor(store, publish, security).handle_batch([record(intake, sign=False)])
        [event] = await published(publish, security)
        assert (event.child_id, event.envelope) == (child_id(1), intake)

    async def test_opt_out_accepts_unsigned_but_checks_signed(
        self, store: SqlStore, publish: RecordingPublish, tmp_path: Path
    ) -> None:
        """HUB_REQUIRE_SIGNATURES=false: unsigned passes; a bad signature is still refused."""
        security = await make_security(store, tmp_path / "keys", require_signatures=False)
        forged = sign_envelope(
            example_envelope(id="northshire-police:evt-0002"),
            Ed25519PrivateKey.generate(),
            dev_key_id("northshire-police"),
        )
        unsigned = record(example_envelope(), sign=False)
        await processor(store, publish, security).handle_batch(
            [unsigned, record(forged, offset=1, sign=False)]
        )
        [event] = await published(publish, security)
        assert event.envelope == example_envelope()
        assert [(x.reason, x.event_id) for x in letters(publish)] == [
            (DeadLetterReason.signature_invalid, "northshire-police:evt-0002")
        ]


SENSITIVE = (
    "Ruby",
    "Example",
    "Rubes",
    "2015-06-01",
    "1990-02-03",
    "ZZ99",
    "Example Street",
    "Officers attended",
    NHS,
    "NP-PERSON-0001",
)
"""Strings of the example envelope that must never be stored or published in clear."""


class TestSealedAtRest:
    """What ingest writes holds no plain personal data."""

    async def test_hub_event_bytes_hold_no_sensitive_text(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """The hub.events value has every sensitive field sealed; routing attributes in clear."""
        await processor(store, publish, security).handle_batch([record(example_envelope())])
        [sent] = publish.to(EVENTS)
        text = sent.value.decode()
        # The agency's subject reference stays in clear (an opaque id of the agency's own).
        assert [s for s in SENSITIVE if s in text] == ["NP-PERSON-0001"]
        envelope = json.loads(sent.value)["envelope"]
        assert sorted(p for p, _ in sealed_paths(envelope)) == [
            "data.summary",
            "person.address",
            "person.birth_date",
            "person.identifiers",
            "person.name",
            "person.related.0.birth_date",
            "person.related.0.identifiers",
            "person.related.0.name",
        ]
        assert (envelope["type"], envelope["data"]["risk_level"], envelope["agency_id"]) == (
            "concern.raised",
            "high",
            "northshire-police",
        )

    async def test_person_index_holds_digests(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """child_identifiers.value is the keyed digest of each identifier, never the value."""
        await processor(store, publish, security).handle_batch([record(example_envelope())])
        async with store.engine.connect() as conn:
            rows = sorted((await conn.execute(select(child_identifiers))).all())
        assert [(r.system, r.value, r.child_id) for r in rows] == sorted(
            [
                ("nhs", security.digest("nhs", NHS), child_id(1)),
                (
                    "ref:northshire-police",
                    security.digest("ref:northshire-police", "NP-PERSON-0001"),
                    child_id(1),
                ),
            ]
        )
        assert all(len(r.value) == 64 and NHS not in r.value for r in rows)
