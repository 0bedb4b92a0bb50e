"""The narrative projector on a real SQLite store: idempotent, order-tolerant, dead-letters junk."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts import parse_envelope
from contracts.examples import example_envelope
from hub.observability import Metrics
from hub.settings import Settings
from hub.store.repository import SqlStore, StoredEntry
from hub.streams.projector import NarrativeProjector
from hub.streams.records import ConsumedRecord
from hub.streams.topics import Topics
from hub.streams.wire import DeadLetter, DeadLetterReason, DeadLetterSource, HubEvent

from .conftest import NOW, RecordingPublish, Sent, dlq_id

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("frozen_ids")]

EVENTS = "t.hub.events"
CHILD = "ch-0001"
TARGET = "northshire-police:evt-0000"  # what the example correction and retraction supersede
CONCERN_LINE = (
    "Concern raised: domestic abuse, high risk. "
    "Officers attended a domestic incident at the home; the child was present."
)


def hub_record(offset: int, *, partition: int = 0, **overrides: Any) -> ConsumedRecord:
    """A hub.events record of the example envelope (with overrides) for CHILD."""
    event = HubEvent(
        child_id=CHILD,
        ingested_at=NOW,
        linked_by="nhs",
        envelope=parse_envelope(example_envelope(**overrides)),
    )
    return ConsumedRecord(
        topic=EVENTS,
        partition=partition,
        offset=offset,
        key=CHILD.encode(),
        value=event.model_dump_json().encode(),
    )


def target(offset: int) -> ConsumedRecord:
    return hub_record(offset, id=TARGET)


def correction(offset: int) -> ConsumedRecord:
    return hub_record(offset, id="northshire-police:evt-0002", type="event.corrected")


def retraction(offset: int) -> ConsumedRecord:
    return hub_record(offset, id="northshire-police:evt-0003", type="event.retracted")


@pytest.fixture
def projector(store: SqlStore, publish: RecordingPublish) -> NarrativeProjector:
    return NarrativeProjector(
        store=store,
        topics=Topics(Settings(topic_prefix="t.")),
        publish=publish,
        metrics=Metrics(),
        clock=lambda: NOW,
    )


async def shown(store: SqlStore) -> list[tuple[str, str]]:
    """(event id, status) of the entries a reader sees by default."""
    return [(e.event_id, e.status) for e in await store.narrative(CHILD)]


async def everything(store: SqlStore) -> list[tuple[str, str, str | None]]:
    """(event id, status, superseded by) of every stored entry of CHILD."""
    entries = await store.narrative(CHILD, include_superseded=True)
    return [(e.event_id, e.status, e.superseded_by) for e in entries]


class TestStores:
    """A hub event becomes one stored narrative entry."""

    async def test_whole_stored_entry(self, store: SqlStore, projector: NarrativeProjector) -> None:
        """The stored entry reads back whole, times in UTC and payload as a dict."""
        assert await projector.handle_batch([hub_record(0)]) == 1
        assert await store.narrative(CHILD) == [
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


class TestIdempotence:
    """Redelivery and replay are harmless: the stored positions skip what is done."""

    async def test_same_records_twice_stored_once(
        self, store: SqlStore, projector: NarrativeProjector
    ) -> None:
        """A redelivered batch stores nothing new."""
        batch = [hub_record(0), hub_record(1, id="northshire-police:evt-0002")]
        assert await projector.handle_batch(batch) == 2
        assert await projector.handle_batch(batch) == 0
        assert await store.count_entries() == 2
        async with store.engine.connect() as conn:
            assert await store.positions(conn, "narrative") == {(EVENTS, 0): 2}

    async def test_positions_per_partition(
        self, store: SqlStore, projector: NarrativeProjector
    ) -> None:
        """Each partition's next offset is kept; an old offset on one is skipped."""
        await projector.handle_batch([hub_record(5, partition=0)])
        stored = await projector.handle_batch(
            [
                hub_record(3, partition=0, id="northshire-police:evt-0002"),
                hub_record(3, partition=1, id="northshire-police:evt-0003"),
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
        assert await projector.handle_batch([hub_record(0)]) == 1
        assert await projector.handle_batch([hub_record(1)]) == 0
        assert await store.count_entries() == 1


class TestSupersession:
    """Corrections replace and retractions withdraw, in whichever order they arrive."""

    async def test_correction_after_target(
        self, store: SqlStore, projector: NarrativeProjector
    ) -> None:
        """Only the correction is shown; the target is kept as corrected."""
        await projector.handle_batch([target(0)])
        await projector.handle_batch([correction(1)])
        assert await shown(store) == [("northshire-police:evt-0002", "active")]
        assert await everything(store) == [
            ("northshire-police:evt-0000", "corrected", "northshire-police:evt-0002"),
            ("northshire-police:evt-0002", "active", None),
        ]

    async def test_correction_before_target(
        self, store: SqlStore, projector: NarrativeProjector
    ) -> None:
        """A correction stored before its target still leaves only the correction shown."""
        await projector.handle_batch([correction(0)])
        await projector.handle_batch([target(1)])
        assert await shown(store) == [("northshire-police:evt-0002", "active")]
        assert await everything(store) == [
            ("northshire-police:evt-0000", "corrected", "northshire-police:evt-0002"),
            ("northshire-police:evt-0002", "active", None),
        ]

    async def test_correction_before_target_in_one_batch(
        self, store: SqlStore, projector: NarrativeProjector
    ) -> None:
        """Correction first within one batch: only the correction is shown."""
        await projector.handle_batch([correction(0), target(1)])
        assert await shown(store) == [("northshire-police:evt-0002", "active")]

    async def test_corrected_summary(self, store: SqlStore, projector: NarrativeProjector) -> None:
        """The shown line is the replacement's, with the reason for the correction."""
        await projector.handle_batch([target(0), correction(1)])
        [entry] = await store.narrative(CHILD)
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
        await projector.handle_batch([target(0)])
        await projector.handle_batch([retraction(1)])
        assert await shown(store) == []
        assert await everything(store) == [
            ("northshire-police:evt-0000", "retracted", "northshire-police:evt-0003"),
            ("northshire-police:evt-0003", "notice", None),
        ]

    async def test_retraction_before_target(
        self, store: SqlStore, projector: NarrativeProjector
    ) -> None:
        """A retraction arriving first still hides the record when it comes."""
        await projector.handle_batch([retraction(0)])
        await projector.handle_batch([target(1)])
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
                hub_record(0, id="evt-c", time="2024-03-04T21:40:00+00:00"),
                hub_record(1, id="evt-a", time="2024-01-10T09:00:00+00:00"),
                # 22:30 at +02:00 is 20:30Z: before evt-c although later on the clock face.
                hub_record(2, id="evt-b", time="2024-03-04T22:30:00+02:00"),
            ]
        )
        await projector.handle_batch([hub_record(3, id="evt-0", time="2023-12-31T23:59:00Z")])
        assert [e for e, _ in await shown(store)] == ["evt-0", "evt-a", "evt-b", "evt-c"]

    async def test_ties_by_recorded_at_then_id(
        self, store: SqlStore, projector: NarrativeProjector
    ) -> None:
        """Same occurred_at: earlier recorded first, then by event id."""
        await projector.handle_batch(
            [
                hub_record(0, id="evt-z", recorded_at="2024-03-04T22:00:00+00:00"),
                hub_record(1, id="evt-y", recorded_at="2024-03-04T22:05:00+00:00"),
                hub_record(2, id="evt-x", recorded_at="2024-03-04T22:05:00+00:00"),
            ]
        )
        assert [e for e, _ in await shown(store)] == ["evt-z", "evt-x", "evt-y"]


class TestDeadLetters:
    """A hub.events record that is not a hub event is dead-lettered, and the rest applied."""

    async def test_invalid_hub_event(
        self, store: SqlStore, publish: RecordingPublish, projector: NarrativeProjector
    ) -> None:
        """hub_event_invalid with the error count; the valid record is still stored."""
        junk = ConsumedRecord(
            topic=EVENTS, partition=0, offset=0, key=b"ch-0001", value=b'{"child_id": "ch-0001"}'
        )
        assert await projector.handle_batch([junk, hub_record(1)]) == 1
        expected = DeadLetter(
            dlq_id=dlq_id(1),
            reason=DeadLetterReason.hub_event_invalid,
            detail="a hub.events record is not a valid hub event (2 errors)",
            processor="narrative",
            source=DeadLetterSource(topic=EVENTS, partition=0, offset=0, key="ch-0001"),
            failed_at=NOW,
            original_b64=DeadLetter.encode_original(junk.value),
        )
        assert publish.sent == [
            Sent(
                topic="t.hub.dlq",
                value=expected.model_dump_json().encode(),
                key=b"ch-0001",
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
        self, publish: RecordingPublish, projector: NarrativeProjector, value: bytes
    ) -> None:
        """Bytes that are not a JSON object are dead-lettered too, not crashed on."""
        junk = ConsumedRecord(topic=EVENTS, partition=0, offset=0, key=None, value=value)
        assert await projector.handle_batch([junk]) == 0
        [sent] = publish.sent
        letter = DeadLetter.model_validate_json(sent.value)
        assert (letter.reason, letter.original) == (DeadLetterReason.hub_event_invalid, value)
        assert json.loads(sent.value)["processor"] == "narrative"

    async def test_redelivered_invalid_record_dead_lettered_once(
        self, publish: RecordingPublish, projector: NarrativeProjector
    ) -> None:
        """A junk record below the stored position is skipped like any other, not re-sent."""
        junk = ConsumedRecord(topic=EVENTS, partition=0, offset=0, key=None, value=b"junk")
        batch = [junk, hub_record(1)]
        await projector.handle_batch(batch)
        await projector.handle_batch(batch)
        assert len(publish.sent) == 1
