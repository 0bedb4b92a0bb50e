"""Refreshing the ingest person index: the process's own sealed writes are not opened again,
while any other write of a record (another process, a re-seal) still is."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.examples import example_envelope
from hub.crypto.runtime import HubSecurity, sign_as_dev
from hub.identity.index import Candidate
from hub.identity.records import PersonRecord, make_record
from hub.identity.scoring import Band, Score
from hub.identity.sealing import RecordSealer
from hub.identity.store import Decision, IdentityStore, OpenedRecords, pending_review
from hub.store.repository import SqlStore
from hub.streams.records import ConsumedRecord

from .conftest import NOW, RecordingPublish
from .test_ingest_identity import processor

pytestmark = pytest.mark.unit


class CountingSealer(RecordSealer):
    """A RecordSealer that counts the records it opens."""

    opens = 0

    async def open(self, text: str, record_id: str) -> dict[str, object]:
        self.opens += 1
        return await super().open(text, record_id)


def ruby(record_id: str = "police:ref:1", *, family: str = "Smith") -> PersonRecord:
    """An invented child's record, with an address and an identifier digest."""
    return make_record(
        record_id,
        given=["Ruby Mae", "Rubes"],
        family=[family],
        birth_date=NOW.date() - timedelta(days=3000),
        sex="female",
        postcode="ns14mb",
        address_lines=["3 Mill Lane"],
        identifiers=[("nhs", "d" * 64)],
    )


def identity(engine: AsyncEngine, security: HubSecurity) -> tuple[IdentityStore, CountingSealer]:
    sealer = CountingSealer(security.keys)
    return IdentityStore(engine, sealer), sealer


class TestRecordsSince:
    """``records_since(opened=...)`` opens only rows it has not seen with the same seal."""

    async def test_own_write_is_not_opened_and_equals_what_opening_gives(
        self, store: SqlStore, security: HubSecurity
    ) -> None:
        """A row still holding the text this process sealed comes back as the record written,
        which is the record opening the row gives."""
        ids, sealer = identity(store.engine, security)
        record = ruby()
        async with store.engine.begin() as conn:
            texts, version = await ids.save_records_in(conn, [(record, "ch-1")], now=NOW)
        opened: OpenedRecords = {record.record_id: (texts[record.record_id], record, version)}
        async with store.engine.connect() as conn:
            [(cached, child, at)] = await ids.records_since(conn, version, opened=opened)
            assert (cached, child, at, sealer.opens) == (record, "ch-1", version, 0)
            assert cached is record
            [(read, _, _)] = await ids.records_since(conn, version)
        assert sealer.opens == 1
        assert read == record

    async def test_another_write_of_the_record_is_opened(
        self, store: SqlStore, security: HubSecurity
    ) -> None:
        """Another writer's seal of the same record id is opened, and remembered in its stead;
        the child is the row's (a record keeps its child on upsert)."""
        ids, sealer = identity(store.engine, security)
        other, _ = identity(store.engine, security)
        record, renamed = ruby(), ruby(family="Jones")
        async with store.engine.begin() as conn:
            texts, version = await ids.save_records_in(conn, [(record, "ch-1")], now=NOW)
        opened: OpenedRecords = {record.record_id: (texts[record.record_id], record, version)}
        async with store.engine.begin() as conn:
            _, later = await other.save_records_in(conn, [(renamed, "ch-2")], now=NOW)
        assert later > version
        async with store.engine.connect() as conn:
            [(read, child, at)] = await ids.records_since(conn, version, opened=opened)
        assert (read, child, at, sealer.opens) == (renamed, "ch-1", later, 1)
        assert opened[record.record_id][1:] == (renamed, later)

    async def test_the_same_record_sealed_again_is_opened(
        self, store: SqlStore, security: HubSecurity
    ) -> None:
        """Re-sealing identical data gives new text (a fresh nonce): it is opened."""
        ids, sealer = identity(store.engine, security)
        record = ruby()
        async with store.engine.begin() as conn:
            first, version = await ids.save_records_in(conn, [(record, "ch-1")], now=NOW)
            second, _ = await ids.save_records_in(conn, [(record, "ch-1")], now=NOW)
        assert first != second
        opened: OpenedRecords = {record.record_id: (first[record.record_id], record, version)}
        async with store.engine.connect() as conn:
            [(read, _, _)] = await ids.records_since(conn, None, opened=opened)
        assert (read, sealer.opens) == (record, 1)

    async def test_a_store_without_a_sealer_keeps_no_text(self, store: SqlStore) -> None:
        """Rows kept in clear are not handed back to be remembered beside the store."""
        ids = IdentityStore(store.engine)
        async with store.engine.begin() as conn:
            texts, _ = await ids.save_records_in(conn, [(ruby(), "ch-1")], now=NOW)
        assert texts == {}

    async def test_a_reviewed_merge_moves_a_kept_record_to_the_surviving_child(
        self, store: SqlStore, security: HubSecurity
    ) -> None:
        """A merge decided through the review API changes the row's child but not its sealed
        text: the kept record is reused, and it comes back under the surviving child."""
        ids, sealer = identity(store.engine, security)
        record = ruby()
        async with store.engine.begin() as conn:
            texts, version = await ids.save_records_in(conn, [(record, "ch-new")], now=NOW)
            candidate = Candidate(
                child_id="ch-old",
                record_id="police:ref:0",
                score=Score(weight=9.5, breakdown=()),
                band=Band.possible_match,
            )
            review = pending_review(record.record_id, "ch-new", candidate, now=NOW)
            await ids.queue_review_in(conn, review)
        later = NOW + timedelta(seconds=1)
        await ids.decide_review(
            review.review_id, Decision.link, decided_by="ig-1", reason="same child", now=later
        )
        opened: OpenedRecords = {record.record_id: (texts[record.record_id], record, version)}
        async with store.engine.connect() as conn:
            [(kept, child, at)] = await ids.records_since(conn, version + 1, opened=opened)
        assert (kept, child, sealer.opens) == (record, "ch-old", 0)
        assert at > version  # the merge's own write, later in commit order


class TestIngestRefresh:
    """Ingest keeps the records it wrote rather than reading them back."""

    async def test_batches_open_no_record_the_process_wrote(
        self,
        store: SqlStore,
        security: HubSecurity,
        publish: RecordingPublish,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Three batches of new children: their records are sealed, linked and published,
        and no refresh opens a record this process sealed; the store holds every one."""
        opens: list[str] = []
        real_open = RecordSealer.open

        async def counting_open(self: RecordSealer, text: str, record_id: str) -> Any:
            opens.append(record_id)
            return await real_open(self, text, record_id)

        monkeypatch.setattr(RecordSealer, "open", counting_open)
        ingest = processor(store, publish, security)
        for batch in range(3):
            await ingest.handle_batch([police(batch * 10 + n) for n in range(4)])
        assert len(publish.to("t.hub.events")) == 12
        assert opens == []
        index = await IdentityStore(store.engine, RecordSealer(security.keys)).load_index()
        assert len(index) == 12


def police(n: int) -> ConsumedRecord:
    """A police notice about invented child ``n``, known by subject reference only."""
    envelope = example_envelope(
        id=f"northshire-police:evt-{n:04d}",
        subject=f"NP-PERSON-{n:04d}",
        person={
            "identifiers": [],
            "name": {"given": "Ruby", "family": f"Smith{'abcdefghijklmnopqrstuvwxyz'[n % 26]}"},
            "birth_date": (NOW.date() - timedelta(days=3000 + n)).isoformat(),
            "sex": "female",
        },
    )
    raw = json.dumps(sign_as_dev(envelope)).encode()
    return ConsumedRecord(topic="t.ingest.police", partition=0, offset=n, key=None, value=raw)
