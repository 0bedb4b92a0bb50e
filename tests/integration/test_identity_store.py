"""The identity store and review API on SQLite and PostgreSQL: records, reviews, merges."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from contracts import AgencyKind
from hub.auth import Caller, InvalidToken
from hub.domain.roles import Role
from hub.identity.api import router
from hub.identity.events import ChildrenMerged, MatchKeptApart, MergeUndone
from hub.identity.households import Link, LinkKind
from hub.identity.records import make_record
from hub.identity.scoring import Band
from hub.identity.store import (
    Decision,
    IdentityStore,
    MergeNotFound,
    ReviewAlreadyDecided,
    ReviewNotFound,
    ReviewStatus,
)
from hub.registry import Agency
from hub.store.db import create_engine, migrate
from tests.support.databases import BACKENDS, fresh_database_url

pytestmark = pytest.mark.integration

NOW = datetime(2024, 3, 5, 9, 0, tzinfo=UTC)
LATER = datetime(2024, 3, 6, 10, 0, tzinfo=UTC)

JAYDEN = make_record(
    "northshire-health|Patient/pt-1",
    given=["Jayden"],
    family=["Smith"],
    birth_date=date(2016, 5, 4),
    sex="male",
    postcode="NS1 4MB",
    address_lines=["3 Mill Lane"],
    identifiers=[("nhs", "9990001138")],
)
JAY = make_record(
    "northshire-primary|concern:SC-1",
    given=["Jay"],
    family=["Jones-Smith"],
    birth_date=date(2016, 4, 5),
)


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IdentityStore]:
    engine = create_engine(await fresh_database_url(request.param, tmp_path))
    await migrate(engine)
    try:
        yield IdentityStore(engine)
    finally:
        await engine.dispose()


async def queued(store: IdentityStore) -> str:
    """Persist Jayden, match the concern record, queue the possible match; the review id."""
    await store.save_record(JAYDEN, "ch-jayden", now=NOW)
    index = await store.load_index()
    result = index.match(JAY)
    assert result.band is Band.possible_match
    await store.save_record(JAY, "ch-provisional", now=NOW)
    review = await store.queue_review(
        JAY.record_id, "ch-provisional", result.candidates[0], now=NOW
    )
    return review.review_id


class TestRecords:
    """Persisted records rebuild the same index."""

    async def test_round_trip(self, store: IdentityStore) -> None:
        """A saved record loads back equal, under the same child."""
        await store.save_record(JAYDEN, "ch-jayden", now=NOW)
        await store.save_record(JAYDEN, "ch-jayden", now=LATER)  # idempotent upsert
        index = await store.load_index()
        assert len(index) == 1
        assert index.child_of(JAYDEN.record_id) == "ch-jayden"
        assert index.match(JAYDEN).child_id == "ch-jayden"
        assert await store.records_of("ch-jayden") == [JAYDEN.record_id]


class TestReviews:
    """Possible matches wait for a person; decisions are final and become events."""

    async def test_pending_review_lists_evidence(self, store: IdentityStore) -> None:
        """The queue shows the pair, the weight and the breakdown, oldest first."""
        review_id = await queued(store)
        [review] = await store.list_reviews()
        assert (review.review_id, review.status, review.candidate_child_id) == (
            review_id,
            ReviewStatus.pending,
            "ch-jayden",
        )
        assert [b["level"] for b in review.breakdown] == [
            "alias",
            "partial",
            "transposed",
            "missing",
            "missing",
            "missing",
        ]
        assert await store.list_reviews(ReviewStatus.linked) == []

    async def test_link_merges_and_undo_moves_back(self, store: IdentityStore) -> None:
        """Linking moves the provisional child's records; undoing the merge moves them back."""
        review_id = await queued(store)
        review, event = await store.decide_review(
            review_id,
            Decision.link,
            decided_by="northshire-cs/sw1",
            reason="Same child, school confirmed",
            now=LATER,
        )
        assert isinstance(event, ChildrenMerged)
        assert (
            review.status,
            review.decided_by,
            event.surviving_child_id,
            event.merged_child_id,
            event.record_ids,
        ) == (
            ReviewStatus.linked,
            "northshire-cs/sw1",
            "ch-jayden",
            "ch-provisional",
            (JAY.record_id,),
        )
        assert await store.records_of("ch-jayden") == [JAYDEN.record_id, JAY.record_id]
        undone = await store.undo_merge(
            event.merge_id, undone_by="northshire-cs/tm1", reason="Wrong child", now=LATER
        )
        assert undone == MergeUndone(
            event.merge_id,
            "ch-provisional",
            "ch-jayden",
            (JAY.record_id,),
            "northshire-cs/tm1",
            "Wrong child",
            LATER,
        )
        assert await store.records_of("ch-provisional") == [JAY.record_id]
        with pytest.raises(MergeNotFound):
            await store.undo_merge(event.merge_id, undone_by="x", reason="again", now=LATER)

    async def test_keep_apart_and_no_second_decision(self, store: IdentityStore) -> None:
        """Keeping apart records the decision; deciding again is refused."""
        review_id = await queued(store)
        review, event = await store.decide_review(
            review_id,
            Decision.keep_apart,
            decided_by="cs/sw1",
            reason="Different children",
            now=LATER,
        )
        assert event == MatchKeptApart(
            review_id, "ch-provisional", "ch-jayden", "cs/sw1", "Different children", LATER
        )
        assert review.status is ReviewStatus.kept_apart
        with pytest.raises(ReviewAlreadyDecided):
            await store.decide_review(
                review_id, Decision.link, decided_by="x", reason="again", now=LATER
            )
        with pytest.raises(ReviewNotFound):
            await store.decide_review(
                "rv-missing", Decision.link, decided_by="x", reason="x", now=LATER
            )


class TestHouseholdLinks:
    """Household links persist and rebuild the graph."""

    async def test_round_trip(self, store: IdentityStore) -> None:
        """Saved links (duplicates ignored) load into the same households."""
        links = [
            Link("ch-a", "addr:1", LinkKind.address),
            Link("ch-b", "addr:1", LinkKind.address),
            Link("ch-a", "adult:p", LinkKind.connected),
        ]
        await store.add_household_links(links, source_event_id="ev-1", now=NOW)
        await store.add_household_links(links[:1], source_event_id="ev-2", now=NOW)
        households = await store.load_households()
        assert households.children_reached(["adult:p"]) == frozenset({"ch-a", "ch-b"})


class _Verifier:
    def verify(self, token: str) -> Caller:
        roles = {"sw": Role.social_worker, "nurse": Role.named_nurse}
        if token not in roles:
            raise InvalidToken("token is not valid")
        return Caller(
            sub=f"{token}-1",
            agency=Agency("northshire-cs", AgencyKind.childrens_services, "CS"),
            role=roles[token],
        )


class _Sink:
    def __init__(self) -> None:
        self.events: list[object] = []

    async def publish(self, event: object) -> None:
        self.events.append(event)


class TestReviewApi:
    """GET and POST /api/v1/identity/reviews."""

    async def test_list_and_decide(self, store: IdentityStore) -> None:
        """A social worker lists pending reviews and links one; the merge event is published."""
        review_id = await queued(store)
        app = FastAPI()
        app.include_router(router)
        app.state.hub = SimpleNamespace(
            store=SimpleNamespace(engine=store.engine), verifier=_Verifier()
        )
        app.state.identity_sink = sink = _Sink()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            sw = {"Authorization": "Bearer sw"}
            listed = await client.get("/api/v1/identity/reviews", headers=sw)
            assert listed.status_code == 200
            assert [r["review_id"] for r in listed.json()["reviews"]] == [review_id]
            assert (
                await client.get(
                    "/api/v1/identity/reviews", headers={"Authorization": "Bearer nurse"}
                )
            ).status_code == 403
            assert (await client.get("/api/v1/identity/reviews")).status_code == 401
            bad = await client.post(
                f"/api/v1/identity/reviews/{review_id}",
                headers=sw,
                json={"decision": "merge", "reason": "because"},
            )
            assert bad.status_code == 422
            decided = await client.post(
                f"/api/v1/identity/reviews/{review_id}",
                headers=sw,
                json={"decision": "link", "reason": "Same child, school confirmed"},
            )
            assert decided.status_code == 200, decided.text
            body = decided.json()
            assert (body["event_type"], body["review"]["status"], body["review"]["decided_by"]) == (
                "identity.merged",
                "linked",
                "northshire-cs/sw-1",
            )
            assert [type(e) for e in sink.events] == [ChildrenMerged]
            again = await client.post(
                f"/api/v1/identity/reviews/{review_id}",
                headers=sw,
                json={"decision": "keep_apart", "reason": "changed mind"},
            )
            assert again.status_code == 409
            missing = await client.post(
                "/api/v1/identity/reviews/rv-x",
                headers=sw,
                json={"decision": "link", "reason": "reason"},
            )
            assert missing.status_code == 404
