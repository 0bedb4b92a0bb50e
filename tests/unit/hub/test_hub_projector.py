"""The narrative projector on a real SQLite store: idempotent, order-tolerant, dead-letters junk,
stores text sealed, and shows erased records honestly."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, update

from contracts import parse_envelope
from contracts.examples import example_envelope
from hub.crypto.dead_letters import DeadLetterSealer
from hub.crypto.encryption import is_sealed
from hub.crypto.narrative import UNREADABLE_LINE, NarrativeOpener
from hub.crypto.runtime import HubSecurity, sign_as_dev
from hub.observability import Metrics
from hub.settings import Settings
from hub.store.repository import SqlStore, StoredEntry
from hub.store.schema import narrative_entries
from hub.streams.projector import NarrativeProjector, OpenedEvents
from hub.streams.records import ConsumedRecord
from hub.streams.topics import Topics
from hub.streams.wire import DeadLetter, DeadLetterReason, DeadLetterSource, SealedHubEvent

from .conftest import NOW, RecordingPublish, Sent, dlq_id, make_security

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("frozen_ids", "sealing_keys")]

_KEYS: list[HubSecurity] = []


@pytest.fixture
def sealing_keys(security: HubSecurity) -> Iterator[None]:
    """The keys ``hub_record`` seals with: the test's own security services."""
    _KEYS.append(security)
    yield
    _KEYS.pop()


EVENTS = "t.hub.events"
CHILD = "ch-0001"
TARGET = "northshire-police:evt-0000"  # what the example correction and retraction supersede
CONCERN_LINE = (
    "Concern raised: domestic abuse, high risk. "
    "Officers attended a domestic incident at the home; the child was present."
)


async def hub_record(offset: int, *, partition: int = 0, **overrides: Any) -> ConsumedRecord:
    """A hub.events record of the signed example envelope (with overrides) for CHILD, sealed
    under CHILD's data key as ingest seals it."""
    [security] = _KEYS
    envelope = sign_as_dev(example_envelope(**overrides))
    event = SealedHubEvent(
        child_id=CHILD,
        ingested_at=NOW,
        linked_by="nhs",
        envelope=await security.cipher.seal_envelope(CHILD, envelope),
    )
    return ConsumedRecord(
        topic=EVENTS,
        partition=partition,
        offset=offset,
        key=CHILD.encode(),
        value=event.model_dump_json().encode(),
    )


async def target(offset: int) -> ConsumedRecord:
    return await hub_record(offset, id=TARGET)


async def correction(offset: int) -> ConsumedRecord:
    return await hub_record(offset, id="northshire-police:evt-0002", type="event.corrected")


async def retraction(offset: int) -> ConsumedRecord:
    return await hub_record(offset, id="northshire-police:evt-0003", type="event.retracted")


@pytest.fixture
def projector(
    store: SqlStore, publish: RecordingPublish, security: HubSecurity
) -> NarrativeProjector:
    return NarrativeProjector(
        store=store,
        topics=Topics(Settings(topic_prefix="t.")),
        publish=publish,
        metrics=Metrics(),
        security=security,
        clock=lambda: NOW,
    )


async def readable(
    store: SqlStore, security: HubSecurity, *, include_superseded: bool = False
) -> list[StoredEntry]:
    """CHILD's stored entries with summary and payload opened, as the narrative API reads them."""
    entries = await store.narrative(CHILD, include_superseded=include_superseded)
    texts = await NarrativeOpener(security.keys).open_all(CHILD, entries)
    return [
        dataclasses.replace(e, summary=t.summary, payload=t.payload)
        for e, t in zip(entries, texts, strict=True)
    ]


async def shown(store: SqlStore) -> list[tuple[str, str]]:
    """(event id, status) of the entries a reader sees by default."""
    return [(e.event_id, e.status) for e in await store.narrative(CHILD)]


async def everything(store: SqlStore) -> list[tuple[str, str, str | None]]:
    """(event id, status, superseded by) of every stored entry of CHILD."""
    entries = await store.narrative(CHILD, include_superseded=True)
    return [(e.event_id, e.status, e.superseded_by) for e in entries]


class TestStores:
    """A hub event becomes one stored narrative entry."""

    async def test_whole_stored_entry(
        self, store: SqlStore, projector: NarrativeProjector, security: HubSecurity
    ) -> None:
        """The stored entry opens whole, times in UTC and payload as a dict."""
        assert await projector.handle_batch([await hub_record(0)]) == 1
        assert await readable(store, security) == [
            StoredEntry(
                event_id="northshire-police:evt-0001",
                child_id=CHILD,
                event_type="concern.raised",
                family="concern",
                occurred_at=datetime(2024, 3, 4, 21, 40, tzinfo=UTC),
                recorded_at=datetime(2024, 3, 4, 22, 5, tzinfo=UTC),
                agency_id="northshire-police",
                agency_kind="police",
                summary=CONCERN_LINE,
                sensitivity=("domestic_abuse",),
                supersedes=None,
                status="active",
                superseded_by=None,
                payload={
                    "category": "domestic_abuse",
                    "raised_by_role": "attending officer",
                    "risk_level": "high",
                    "summary": "Officers attended a domestic incident at the home; "
                    "the child was present.",
                },
            )
        ]


class TestSharesWhatItOpened:
    """Envelopes the projector opened are handed on, so deliveries need not open them again."""

    async def test_opened_envelopes_by_position(
        self, store: SqlStore, projector: NarrativeProjector
    ) -> None:
        """Each fresh record's validated envelope is kept by position; junk and records
        below the stored position are not."""
        await projector.handle_batch([await hub_record(0)])
        later = await hub_record(1, id="northshire-police:evt-0002")
        junk = dataclasses.replace(later, offset=2, value=b"not json")
        opened: OpenedEvents = {}
        batch = [await hub_record(0), later, junk]
        assert await projector.handle_batch(batch, opened=opened) == 1
        assert opened == {
            (EVENTS, 0, 1): (
                CHILD,
                parse_envelope(sign_as_dev(example_envelope(id="northshire-police:evt-0002"))),
            )
        }


class TestIdempotence:
    """Redelivery and replay are harmless: the stored positions skip what is done."""

    async def test_same_records_twice_stored_once(
        self, store: SqlStore, projector: NarrativeProjector
    ) -> None:
        """A redelivered batch stores nothing new."""
        batch = [await hub_record(0), await hub_record(1, id="northshire-police:evt-0002")]
        assert await projector.handle_batch(batch) == 2
        assert await projector.handle_batch(batch) == 0
        assert await store.count_entries() == 2
        async with store.engine.connect() as conn:
            assert await store.positions(conn, "narrative") == {(EVENTS, 0): 2}

    async def test_positions_per_partition(
        self, store: SqlStore, projector: NarrativeProjector
    ) -> None:
        """Each partition's next offset is kept; an old offset on one is skipped."""
        await projector.handle_batch([await hub_record(5, partition=0)])
        stored = await projector.handle_batch(
            [
                await hub_record(3, partition=0, id="northshire-police:evt-0002"),
                await hub_record(3, partition=1, id="northshire-police:evt-0003"),
            ]
        )
        assert stored == 1
        assert [e for e, _ in await shown(store)] == [
            "northshire-police:evt-0001",
            "northshire-police:evt-0003",
        ]
        async with store.engine.connect() as conn:
            assert await store.positions(conn, "narrative") == {(EVENTS, 0): 6, (EVENTS, 1): 4}

    async def test_same_event_at_later_offset_stored_once(
        self, store: SqlStore, projector: NarrativeProjector
    ) -> None:
        """An event republished at a new offset (ingest retry) is not stored twice."""
        assert await projector.handle_batch([await hub_record(0)]) == 1
        assert await projector.handle_batch([await hub_record(1)]) == 0
        assert await store.count_entries() == 1


class TestSupersession:
    """Corrections replace and retractions withdraw, in whichever order they arrive."""

    async def test_correction_after_target(
        self, store: SqlStore, projector: NarrativeProjector
    ) -> None:
        """Only the correction is shown; the target is kept as corrected."""
        await projector.handle_batch([await target(0)])
        await projector.handle_batch([await correction(1)])
        assert await shown(store) == [("northshire-police:evt-0002", "active")]
        assert await everything(store) == [
            ("northshire-police:evt-0000", "corrected", "northshire-police:evt-0002"),
            ("northshire-police:evt-0002", "active", None),
        ]

    async def test_correction_before_target(
        self, store: SqlStore, projector: NarrativeProjector
    ) -> None:
        """A correction stored before its target still leaves only the correction shown."""
        await projector.handle_batch([await correction(0)])
        await projector.handle_batch([await target(1)])
        assert await shown(store) == [("northshire-police:evt-0002", "active")]
        assert await everything(store) == [
            ("northshire-police:evt-0000", "corrected", "northshire-police:evt-0002"),
            ("northshire-police:evt-0002", "active", None),
        ]

    async def test_correction_before_target_in_one_batch(
        self, store: SqlStore, projector: NarrativeProjector
    ) -> None:
        """Correction first within one batch: only the correction is shown."""
        await projector.handle_batch([await correction(0), await target(1)])
        assert await shown(store) == [("northshire-police:evt-0002", "active")]

    async def test_corrected_summary(
        self, store: SqlStore, projector: NarrativeProjector, security: HubSecurity
    ) -> None:
        """The shown line is the replacement's, with the reason for the correction."""
        await projector.handle_batch([await target(0), await correction(1)])
        [entry] = await readable(store, security)
        assert (entry.summary, entry.family, entry.event_type, entry.supersedes) == (
            "Concern raised: domestic abuse, medium risk. Officers attended a domestic incident "
            "at the home; the child was present. (Corrected: Risk level entered wrongly.)",
            "concern",
            "concern.raised",
            TARGET,
        )

    async def test_retraction_hides_target(
        self, store: SqlStore, projector: NarrativeProjector
    ) -> None:
        """A retracted record and the retraction notice are both hidden, both kept."""
        await projector.handle_batch([await target(0)])
        await projector.handle_batch([await retraction(1)])
        assert await shown(store) == []
        assert await everything(store) == [
            ("northshire-police:evt-0000", "retracted", "northshire-police:evt-0003"),
            ("northshire-police:evt-0003", "notice", None),
        ]

    async def test_retraction_before_target(
        self, store: SqlStore, projector: NarrativeProjector
    ) -> None:
        """A retraction arriving first still hides the record when it comes."""
        await projector.handle_batch([await retraction(0)])
        await projector.handle_batch([await target(1)])
        assert await shown(store) == []
        assert ("northshire-police:evt-0000", "retracted", "northshire-police:evt-0003") in (
            await everything(store)
        )


class TestOrder:
    """A narrative reads in the order things happened, not the order they arrived."""

    async def test_ordered_by_occurred_at(
        self, store: SqlStore, projector: NarrativeProjector
    ) -> None:
        """Entries sort by occurred_at in UTC, whatever their offsets and arrival."""
        await projector.handle_batch(
            [
                await hub_record(0, id="evt-c", time="2024-03-04T21:40:00+00:00"),
                await hub_record(1, id="evt-a", time="2024-01-10T09:00:00+00:00"),
                # 22:30 at +02:00 is 20:30Z: before evt-c although later on the clock face.
                await hub_record(2, id="evt-b", time="2024-03-04T22:30:00+02:00"),
            ]
        )
        await projector.handle_batch([await hub_record(3, id="evt-0", time="2023-12-31T23:59:00Z")])
        assert [e for e, _ in await shown(store)] == ["evt-0", "evt-a", "evt-b", "evt-c"]

    async def test_ties_by_recorded_at_then_id(
        self, store: SqlStore, projector: NarrativeProjector
    ) -> None:
        """Same occurred_at: earlier recorded first, then by event id."""
        await projector.handle_batch(
            [
                await hub_record(0, id="evt-z", recorded_at="2024-03-04T22:00:00+00:00"),
                await hub_record(1, id="evt-y", recorded_at="2024-03-04T22:05:00+00:00"),
                await hub_record(2, id="evt-x", recorded_at="2024-03-04T22:05:00+00:00"),
            ]
        )
        assert [e for e, _ in await shown(store)] == ["evt-z", "evt-x", "evt-y"]


class TestDeadLetters:
    """A hub.events record that is not a hub event is dead-lettered, and the rest applied."""

    async def test_invalid_hub_event(
        self,
        store: SqlStore,
        publish: RecordingPublish,
        projector: NarrativeProjector,
        security: HubSecurity,
    ) -> None:
        """hub_event_invalid with the error count; the valid record is still stored."""
        junk = ConsumedRecord(
            topic=EVENTS, partition=0, offset=0, key=b"ch-0001", value=b'{"child_id": "ch-0001"}'
        )
        assert await projector.handle_batch([junk, await hub_record(1)]) == 1
        expected = DeadLetter(
            dlq_id=dlq_id(1),
            reason=DeadLetterReason.hub_event_invalid,
            detail="a hub.events record is not a valid hub event (2 errors)",
            processor="narrative",
            source=DeadLetterSource(topic=EVENTS, partition=0, offset=0, key=None),
            failed_at=NOW,
            original_sealed={"compared": "below"},
        )
        [sent] = publish.sent
        letter = DeadLetter.model_validate_json(sent.value)
        assert letter.original_sealed is not None
        opened = await DeadLetterSealer(security.keys).open_original(
            letter.original_sealed, dlq_id=dlq_id(1)
        )
        assert (opened.value, opened.key) == (junk.value, b"ch-0001")
        assert publish.sent == [
            Sent(
                topic="t.hub.dlq",
                value=expected.model_copy(update={"original_sealed": letter.original_sealed})
                .model_dump_json()
                .encode(),
                key=dlq_id(1).encode(),
                headers={
                    "content-type": "application/json",
                    "x-dlq-reason": "hub_event_invalid",
                    "x-dlq-id": dlq_id(1),
                },
            )
        ]
        assert [e for e, _ in await shown(store)] == ["northshire-police:evt-0001"]

    @pytest.mark.parametrize("value", [b"not json", b"\xff\xfe", b"[]", b""], ids=repr)
    async def test_not_json_is_invalid_hub_event(
        self,
        publish: RecordingPublish,
        projector: NarrativeProjector,
        security: HubSecurity,
        value: bytes,
    ) -> None:
        """Bytes that are not a JSON object are dead-lettered too, not crashed on."""
        junk = ConsumedRecord(topic=EVENTS, partition=0, offset=0, key=None, value=value)
        assert await projector.handle_batch([junk]) == 0
        [sent] = publish.sent
        letter = DeadLetter.model_validate_json(sent.value)
        assert letter.original_sealed is not None
        opened = await DeadLetterSealer(security.keys).open_original(
            letter.original_sealed, dlq_id=letter.dlq_id
        )
        assert (letter.reason, opened.value) == (DeadLetterReason.hub_event_invalid, value)
        assert json.loads(sent.value)["processor"] == "narrative"

    async def test_redelivered_invalid_record_dead_lettered_once(
        self, publish: RecordingPublish, projector: NarrativeProjector
    ) -> None:
        """A junk record below the stored position is skipped like any other, not re-sent."""
        junk = ConsumedRecord(topic=EVENTS, partition=0, offset=0, key=None, value=b"junk")
        batch = [junk, await hub_record(1)]
        await projector.handle_batch(batch)
        await projector.handle_batch(batch)
        assert len(publish.sent) == 1


SENSITIVE = ("Ruby", "Example", "2015-06-01", "ZZ99", "Officers attended", "domestic incident")


class TestSealedAtRest:
    """The store holds the narrative's text sealed; only a reader with the key opens it."""

    async def test_no_plain_text_in_any_column(
        self, store: SqlStore, projector: NarrativeProjector
    ) -> None:
        """Every column of the stored row is free of the example's sensitive strings."""
        await projector.handle_batch([await hub_record(0)])
        async with store.engine.connect() as conn:
            [row] = (await conn.execute(select(narrative_entries))).all()
        text = json.dumps([str(v) for v in row])
        assert [s for s in SENSITIVE if s in text] == []
        assert is_sealed(json.loads(row.summary)) and is_sealed(json.loads(row.payload))
        assert (row.event_type, row.agency_id, row.status, row.erased_at) == (
            "concern.raised",
            "northshire-police",
            "active",
            None,
        )

    async def test_text_moved_to_another_entry_does_not_open(
        self, store: SqlStore, projector: NarrativeProjector, security: HubSecurity
    ) -> None:
        """Sealed text is bound to its event: copied onto another row it fails, visibly."""
        await projector.handle_batch(
            [await hub_record(0), await hub_record(1, id="northshire-police:evt-0002")]
        )
        async with store.engine.begin() as conn:
            first = (await conn.execute(select(narrative_entries.c.summary))).first()
            assert first is not None
            await conn.execute(
                update(narrative_entries)
                .where(narrative_entries.c.event_id == "northshire-police:evt-0002")
                .values(summary=first.summary)
            )
        texts = [e.summary for e in await readable(store, security)]
        assert texts == [CONCERN_LINE, UNREADABLE_LINE]


class TestErasure:
    """A child's destroyed keys erase their entries; the narrative shows the gap and its date."""

    async def test_erased_after_projection(
        self, store: SqlStore, projector: NarrativeProjector, security: HubSecurity
    ) -> None:
        """Destroying the key after the entry was stored makes it read as erased, no content."""
        await projector.handle_batch([await hub_record(0)])
        erased_on = datetime(2024, 4, 1, 12, 0, tzinfo=UTC)
        security.keys._clock = lambda: erased_on
        await security.keys.destroy_child_key(CHILD)
        [entry] = await readable(store, security)
        assert (entry.event_id, entry.summary, entry.payload, entry.family) == (
            "northshire-police:evt-0001",
            "Record erased on 2024-04-01.",
            {},
            "concern",
        )

    async def test_replay_after_erasure_stores_erased_entries(
        self, store: SqlStore, projector: NarrativeProjector, security: HubSecurity
    ) -> None:
        """Events whose key is gone are stored as erased, and a correction still supersedes."""
        batch = [await target(0), await correction(1), await hub_record(2, id="evt-other")]
        erased_on = datetime(2024, 4, 1, 12, 0, tzinfo=UTC)
        security.keys._clock = lambda: erased_on
        await security.keys.destroy_child_key(CHILD)
        assert await projector.handle_batch(batch) == 3
        entries = await readable(store, security, include_superseded=True)
        gone = "Record erased on 2024-04-01."
        assert [(e.event_id, e.status, e.superseded_by, e.erased_at) for e in entries] == [
            ("evt-other", "active", None, erased_on),
            (TARGET, "corrected", "northshire-police:evt-0002", erased_on),
            ("northshire-police:evt-0002", "active", None, erased_on),
        ]
        assert {(e.summary, json.dumps(e.payload)) for e in entries} == {(gone, "{}")}
        async with store.engine.connect() as conn:
            rows = (await conn.execute(select(narrative_entries))).all()
        assert {(r.summary, r.payload) for r in rows} == {("", "{}")}

    async def test_new_record_after_erasure_gets_a_new_key(
        self, store: SqlStore, projector: NarrativeProjector, security: HubSecurity
    ) -> None:
        """After erasure the child's next record is sealed under a fresh key and reads normally."""
        await projector.handle_batch([await hub_record(0)])
        await security.keys.destroy_child_key(CHILD)
        await projector.handle_batch([await hub_record(1, id="evt-later")])
        entries = await readable(store, security)
        assert [(e.event_id, e.summary.startswith("Record erased on")) for e in entries] == [
            ("evt-later", False),  # same time as the first: ties go by event id
            ("northshire-police:evt-0001", True),
        ]
        assert [r.key_version for r in await security.keys.key_records(CHILD)] == [1, 2]


class TestUnreadable:
    """A record whose sealed fields do not open is dead-lettered, not stored as if erased."""

    async def test_tampered_sealed_field(
        self, store: SqlStore, publish: RecordingPublish, projector: NarrativeProjector
    ) -> None:
        """A ciphertext changed on the log: hub_event_unreadable; the next record is stored."""
        good = await hub_record(0)
        value = json.loads(good.value)
        ct = value["envelope"]["data"]["summary"]["ct"]
        value["envelope"]["data"]["summary"]["ct"] = ("A" if ct[0] != "A" else "B") + ct[1:]
        bad = dataclasses.replace(good, value=json.dumps(value).encode())
        assert await projector.handle_batch([bad, await hub_record(1, id="evt-next")]) == 1
        [letter] = [DeadLetter.model_validate_json(s.value) for s in publish.sent]
        assert (letter.reason, letter.detail, letter.processor) == (
            DeadLetterReason.hub_event_unreadable,
            "the sealed fields of a hub event do not open (FieldDecryptionFailed)",
            "narrative",
        )
        assert [e for e, _ in await shown(store)] == ["evt-next"]


class TestKeyRotation:
    """Events sealed under old and new keys all stay readable."""

    async def test_child_key_versions_and_kek_rotation(
        self, store: SqlStore, projector: NarrativeProjector, security: HubSecurity
    ) -> None:
        """v1 under KEK 1, v2 after a child-key rotation, a KEK rotation with re-wrap, then v3."""
        batch = [await hub_record(0, id="evt-1")]
        await security.keys.rotate_child_key(CHILD)
        batch.append(await hub_record(1, id="evt-2"))
        await security.provider.rotate()
        assert await security.keys.rewrap_all() == 2
        await security.keys.rotate_child_key(CHILD)
        batch.append(await hub_record(2, id="evt-3"))
        fresh = await make_security(store, security.provider.kek_dir.parent)  # no cached keys
        reader = NarrativeProjector(
            store=store,
            topics=Topics(Settings(topic_prefix="t.")),
            publish=RecordingPublish(),
            metrics=Metrics(),
            security=fresh,
            clock=lambda: NOW,
        )
        assert await reader.handle_batch(batch) == 3
        records = await fresh.keys.key_records(CHILD)
        assert [(r.key_version, r.kek_id) for r in records] == [
            (1, "kek-0002"),
            (2, "kek-0002"),
            (3, "kek-0002"),
        ]
        assert [(e.event_id, e.summary) for e in await readable(store, fresh)] == [
            ("evt-1", CONCERN_LINE),
            ("evt-2", CONCERN_LINE),
            ("evt-3", CONCERN_LINE),
        ]
        sealed = [json.loads(r.value)["envelope"]["data"]["summary"]["kv"] for r in batch]
        assert sealed == [1, 2, 3]
