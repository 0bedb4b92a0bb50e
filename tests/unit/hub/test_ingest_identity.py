"""Identity at ingest: records no identifier links are matched on names, birth date and
address; possible matches are queued for review, not merged; households are linked."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from contracts.examples import example_envelope, valid_upn
from hub.crypto.runtime import HubSecurity, sign_as_dev
from hub.identity.store import IdentityStore, ReviewStatus
from hub.identity.tables import person_records
from hub.observability import Metrics
from hub.registry import AgencyRegistry
from hub.settings import Settings
from hub.store.repository import SqlStore
from hub.streams.ingest import IngestProcessor
from hub.streams.records import ConsumedRecord
from hub.streams.topics import Topics
from hub.streams.wire import SealedHubEvent

from .conftest import NOW, RecordingPublish, child_id

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("frozen_ids")]

EVENTS = "t.hub.events"
MILL_LANE = {"lines": ["3 Mill Lane", "Northtown"], "postcode": "NS1 4MB"}


def person(
    given: str, family: str, born: str, *, identifiers: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """An invented child at 3 Mill Lane whose mother is Jo Smith."""
    return {
        "identifiers": identifiers or [],
        "name": {"given": given, "family": family, "aliases": []},
        "birth_date": born,
        "sex": "male",
        "address": MILL_LANE,
        "related": [
            {
                "relationship": "mother",
                "name": {"given": "Jo", "family": "Smith", "aliases": []},
                "identifiers": [],
                "birth_date": "1990-02-03",
            }
        ],
    }


def school(n: int, who: dict[str, Any]) -> ConsumedRecord:
    """The n-th school concern (schools topic), about ``who``."""
    envelope = example_envelope(
        id=f"northshire-primary:evt-{n:04d}",
        source="urn:agency:northshire-primary",
        agency_id="northshire-primary",
        agency_kind="schools",
        subject=f"PUPIL-{n:04d}",
        lawful_basis="public_task",
        sensitivity=[],
        person=who,
    )
    return _record(envelope, "t.ingest.schools", n)


def police(n: int, who: dict[str, Any], subject: str = "NP-PERSON-0009") -> ConsumedRecord:
    """The n-th police notice (police topic), about ``who``, with no identifiers."""
    envelope = example_envelope(id=f"northshire-police:evt-{n:04d}", subject=subject, person=who)
    return _record(envelope, "t.ingest.police", n)


def _record(envelope: dict[str, Any], topic: str, offset: int) -> ConsumedRecord:
    raw = json.dumps(sign_as_dev(envelope)).encode()
    return ConsumedRecord(topic=topic, partition=0, offset=offset, key=None, value=raw)


def processor(store: SqlStore, publish: RecordingPublish, security: HubSecurity) -> IngestProcessor:
    return IngestProcessor(
        store=store,
        registry=AgencyRegistry.load(),
        topics=Topics(Settings(topic_prefix="t.")),
        publish=publish,
        metrics=Metrics(),
        security=security,
        clock=lambda: NOW,
    )


def linked(publish: RecordingPublish) -> list[tuple[str, str, str | None]]:
    """(event id, child id, linked by) of every hub.events record sent, in order."""
    out = []
    for sent in publish.to(EVENTS):
        event = SealedHubEvent.model_validate_json(sent.value)
        out.append((sent.headers["event-id"], event.child_id, event.linked_by))
    return out


def jayden() -> dict[str, Any]:
    """Jayden Smith as his school knows him: with his UPN."""
    return person(
        "Jayden", "Smith", "2016-05-14", identifiers=[{"system": "upn", "value": valid_upn(4401)}]
    )


class TestProbabilisticLinking:
    """A record without a shared identifier joins the child it matches in the link band."""

    async def test_misspelt_police_record_joins_the_school_child(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """ "Jaden Smyth" (no identifiers) from the police is the school's "Jayden Smith";
        the police reference is attached, so the next notice links on it exactly."""
        ingest = processor(store, publish, security)
        await ingest.handle_batch([school(1, jayden())])
        await ingest.handle_batch([police(2, person("Jaden", "Smyth", "2016-05-14"))])
        await ingest.handle_batch([police(3, person("Jaden", "Smyth", "2016-05-14"))])
        assert linked(publish) == [
            ("northshire-primary:evt-0001", child_id(1), "upn"),
            ("northshire-police:evt-0002", child_id(1), "score"),
            ("northshire-police:evt-0003", child_id(1), "ref:northshire-police"),
        ]
        assert await IdentityStore(store.engine).list_reviews() == []

    async def test_match_within_one_batch(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """A record matches one indexed earlier in the same batch."""
        await processor(store, publish, security).handle_batch(
            [school(1, jayden()), police(2, person("Jaden", "Smyth", "2016-05-14"))]
        )
        assert [c for _, c, _ in linked(publish)] == [child_id(1), child_id(1)]

    async def test_index_survives_a_new_processor(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """A restarted ingest process loads the person index from the store, where each
        record's matching data is sealed: no name, birth date or postcode in any column."""
        await processor(store, publish, security).handle_batch([school(1, jayden())])
        async with store.engine.connect() as conn:
            rows = (await conn.execute(select(person_records))).all()
        stored = repr(rows).lower()
        assert len(rows) == 1
        # Whole values and their normalised forms: short pieces such as "ns1" turn up in the
        # sealed bytes' random base64 by chance.
        for clear in (
            "jayden",
            "smith",
            "2016-05-14",
            "2016, 5, 14",
            "ns1 4mb",
            "ns14mb",
            "mill lane",
        ):
            assert clear not in stored
        await processor(store, publish, security).handle_batch(
            [police(2, person("Jaden", "Smyth", "2016-05-14"))]
        )
        assert [c for _, c, _ in linked(publish)] == [child_id(1), child_id(1)]


class TestPossibleMatches:
    """A record in the review band gets its own child and a review; nothing is merged."""

    async def test_possible_match_is_queued(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """ "Jay Smith", born a month and a day later, at the same address: a new child and
        one pending review naming the school's child as the candidate."""
        ingest = processor(store, publish, security)
        await ingest.handle_batch([school(1, jayden())])
        await ingest.handle_batch([police(2, person("Jay", "Smith", "2016-07-15"))])
        assert linked(publish)[1][1:] == (child_id(2), "ref:northshire-police")
        reviews = await IdentityStore(store.engine).list_reviews()
        assert [
            (r.provisional_child_id, r.candidate_child_id, r.status, r.created_at) for r in reviews
        ] == [(child_id(2), child_id(1), ReviewStatus.pending, NOW)]
        assert {b["comparison"] for b in reviews[0].breakdown} >= {"given", "birth_date"}

    async def test_twin_is_not_linked_or_queued(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """Same family name, birth date and address, different given name: a twin."""
        ingest = processor(store, publish, security)
        await ingest.handle_batch([school(1, jayden())])
        await ingest.handle_batch([police(2, person("Jordan", "Smith", "2016-05-14"))])
        assert linked(publish)[1][1] == child_id(2)
        assert await IdentityStore(store.engine).list_reviews() == []


class TestHouseholds:
    """The address and the related people of each record become household links."""

    async def test_siblings_share_a_household(
        self, store: SqlStore, publish: RecordingPublish, security: HubSecurity
    ) -> None:
        """Two children at one address with one mother are one household; the stored nodes
        for the address and the mother are keyed digests, not the address or the name."""
        sister = person("Ayesha", "Smith", "2013-09-02")
        sister["identifiers"] = [{"system": "upn", "value": valid_upn(4402)}]
        await processor(store, publish, security).handle_batch(
            [school(1, jayden()), school(2, sister)]
        )
        identity = IdentityStore(store.engine)
        links = await identity.household_around([child_id(1)])
        households = await identity.load_households()
        assert households.household_of(child_id(1)) >= {child_id(1), child_id(2)}
        nodes = {n for x in links for n in (x.a, x.b)}
        assert {n.split(":")[0] for n in nodes} == {"ch-0001", "ch-0002", "addr", "adult"}
        text = " ".join(nodes).lower()
        assert "ns1" not in text and "mill" not in text and "smith" not in text
        assert {x.kind.value for x in links} == {"address", "related"}
