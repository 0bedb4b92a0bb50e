"""Possible-match reviews over HTTP: list them, and link or keep apart with a reason.

``GET /api/v1/identity/reviews`` and ``POST /api/v1/identity/reviews/{review_id}``. A decision
returns the event to put on the log; the router hands it to the identity event sink the lead
sets on ``app.state.identity_sink`` (an object with ``async def publish(event)``). Responses
carry ids, levels and weights only: never a name, birth date or address.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, Field

from hub.api.deps import CurrentCaller, HubDep
from hub.auth import Caller
from hub.domain.roles import NARRATIVE_READER_ROLES, Role
from hub.identity.events import ChildrenMerged, MatchKeptApart, MergeUndone
from hub.identity.store import (
    Decision,
    IdentityStore,
    MergeNotFound,
    Review,
    ReviewAlreadyDecided,
    ReviewNotFound,
    ReviewStatus,
)
from hub.observability import get_logger

__all__ = ["DECIDER_ROLES", "IdentityEventSink", "router"]

log = get_logger(__name__)

router = APIRouter(prefix="/api/v1/identity", tags=["identity"])

DECIDER_ROLES = frozenset(
    {Role.social_worker, Role.team_manager, Role.service_manager, Role.duty_officer}
)
"""Roles that may decide a possible match (children's social care staff)."""


class IdentityEventSink(Protocol):
    """Where identity decisions go to become events on the log."""

    async def publish(self, event: ChildrenMerged | MergeUndone | MatchKeptApart) -> None:
        """Put one identity event on the log."""


class LevelOut(BaseModel):
    """One comparison's level and weight."""

    comparison: str
    level: str
    weight: float


class ReviewOut(BaseModel):
    """A possible match as a reviewer sees it (ids and evidence, no personal data)."""

    review_id: str
    record_id: str
    provisional_child_id: str
    candidate_child_id: str
    weight: float
    breakdown: list[LevelOut]
    status: ReviewStatus
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    reason: str | None


class ReviewList(BaseModel):
    """Reviews, oldest first."""

    reviews: list[ReviewOut]


class DecisionIn(BaseModel):
    """A reviewer's decision and why."""

    decision: Decision
    reason: str = Field(min_length=5, max_length=1000)


class DecisionOut(BaseModel):
    """The decided review and the event it put on the log."""

    review: ReviewOut
    event_type: Literal["identity.merged", "identity.kept_apart"]
    event: dict[str, Any]


def _out(review: Review) -> ReviewOut:
    return ReviewOut(
        review_id=review.review_id,
        record_id=review.record_id,
        provisional_child_id=review.provisional_child_id,
        candidate_child_id=review.candidate_child_id,
        weight=review.weight,
        breakdown=[LevelOut(**b) for b in review.breakdown],
        status=review.status,
        created_at=review.created_at,
        decided_at=review.decided_at,
        decided_by=review.decided_by,
        reason=review.reason,
    )


def _require(caller: Caller, roles: frozenset[Role], action: str) -> None:
    if caller.role not in roles:
        log.info("identity.review_refused", role=caller.role.value, action=action)
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {caller.role} may not {action}")


@router.get("/reviews", response_model=ReviewList, summary="List possible matches.")
async def list_reviews(
    hub: HubDep,
    caller: CurrentCaller,
    review_status: Annotated[ReviewStatus | None, Query(alias="status")] = ReviewStatus.pending,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ReviewList:
    """Possible matches of one status (pending by default), oldest first."""
    _require(caller, NARRATIVE_READER_ROLES, "read identity reviews")
    found = await IdentityStore(hub.store.engine).list_reviews(review_status, limit=limit)
    return ReviewList(reviews=[_out(r) for r in found])


@router.post("/reviews/{review_id}", response_model=DecisionOut, summary="Decide a possible match.")
async def decide_review(
    hub: HubDep,
    caller: CurrentCaller,
    request: Request,
    review_id: Annotated[str, Path(max_length=64)],
    body: DecisionIn,
) -> DecisionOut:
    """Link the two children (a merge event) or keep them apart, with the reviewer's reason."""
    _require(caller, DECIDER_ROLES, "decide identity reviews")
    store = IdentityStore(hub.store.engine)
    try:
        review, event = await store.decide_review(
            review_id,
            body.decision,
            decided_by=f"{caller.agency.id}/{caller.sub}",
            reason=body.reason,
            now=datetime.now(UTC),
        )
    except ReviewNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no review with that id") from None
    except ReviewAlreadyDecided:
        raise HTTPException(status.HTTP_409_CONFLICT, "the review was already decided") from None
    sink = await _publish(request, event)
    log.info(
        "identity.review_decided",
        review_id=review_id,
        decision=body.decision.value,
        event_type=event.type,
        published=sink is not None,
    )
    return DecisionOut(review=_out(review), event_type=event.type, event=event.as_data())  # type: ignore[arg-type]


async def _publish(
    request: Request, event: ChildrenMerged | MergeUndone | MatchKeptApart
) -> IdentityEventSink | None:
    """Hand a recorded decision to the log; 503 (decision kept) when the broker fails."""
    sink: IdentityEventSink | None = getattr(request.app.state, "identity_sink", None)
    if sink is None:
        return None
    try:
        await sink.publish(event)
    except Exception:
        log.exception("identity.event_not_published", event_type=event.type)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the decision is recorded but its event could not be put on the log; "
            "the narrative follows it once it is",
        ) from None
    return sink


class UndoIn(BaseModel):
    """Why a merge is being undone."""

    reason: str = Field(min_length=5, max_length=1000)


class UndoOut(BaseModel):
    """The un-merge event put on the log."""

    event_type: Literal["identity.unmerged"]
    event: dict[str, Any]


@router.post(
    "/merges/{merge_id}/undo",
    response_model=UndoOut,
    summary="Undo a merge: its records and events go back to the child they came from.",
    responses={404: {"description": "No such merge, or it was already undone."}},
)
async def undo_merge(
    hub: HubDep,
    caller: CurrentCaller,
    request: Request,
    merge_id: Annotated[str, Path(max_length=64)],
    body: UndoIn,
) -> UndoOut:
    """Reverse a merge with a reason; the narrative moves the merged child's events back."""
    _require(caller, DECIDER_ROLES, "undo identity merges")
    try:
        event = await IdentityStore(hub.store.engine).undo_merge(
            merge_id,
            undone_by=f"{caller.agency.id}/{caller.sub}",
            reason=body.reason,
            now=datetime.now(UTC),
        )
    except MergeNotFound:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "no merge with that id, or it was already undone"
        ) from None
    await _publish(request, event)
    log.info("identity.merge_undone", merge_id=merge_id, child_id=event.restored_child_id)
    return UndoOut(event_type="identity.unmerged", event=event.as_data())
