"""Children: find a child by an agency identifier, and read a child's narrative.

The identifier is looked up by its keyed digest; narrative text is opened on read, and an
entry whose child's key was destroyed reads "Record erased on <date>." with no content.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel

from contracts import Identifier
from hub.api.deps import CurrentCaller, HubDep
from hub.crypto.narrative import NarrativeOpener
from hub.domain.roles import NARRATIVE_READER_ROLES, Role
from hub.observability import get_logger

__all__ = ["router"]

log = get_logger(__name__)

router = APIRouter(prefix="/api/v1/children", tags=["children"])


class ChildRef(BaseModel):
    """A canonical child known to the hub."""

    child_id: str


class ChildSearchResult(BaseModel):
    """Children an identifier links to."""

    children: list[ChildRef]


class NarrativeItem(BaseModel):
    """One entry of a child's chronology (``erased_at`` set: its content was erased)."""

    event_id: str
    event_type: str
    family: str
    occurred_at: datetime
    recorded_at: datetime
    agency_id: str
    agency_kind: str
    summary: str
    sensitivity: list[str]
    corrects: str | None
    data: dict[str, object]
    erased_at: datetime | None = None


class Narrative(BaseModel):
    """A child's cross-agency chronology, in the order things happened."""

    child_id: str
    entries: list[NarrativeItem]


@router.get("", response_model=ChildSearchResult, summary="Find children by an agency identifier.")
async def find_children(
    hub: HubDep,
    caller: CurrentCaller,
    identifier: Annotated[
        str,
        Query(
            description="`<system>:<value>`, system one of nhs, upn, la, police.", max_length=100
        ),
    ],
) -> ChildSearchResult:
    """Answer the canonical child ids an identifier is linked to (empty when none)."""
    if caller.role is Role.agency_system:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "agency systems cannot search children")
    try:
        parsed = Identifier.parse(identifier)
    except ValueError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=[{"loc": "query.identifier", "msg": str(exc), "type": "value_error"}],
        ) from exc
    system = parsed.system.value
    ids = await hub.store.children_by_identifier(system, hub.security.digest(system, parsed.value))
    log.info(
        "children.searched",
        caller=caller.sub,
        agency_id=caller.agency.id,
        system=parsed.system.value,
        found=len(ids),
    )
    return ChildSearchResult(children=[ChildRef(child_id=i) for i in ids])


@router.get(
    "/{child_id}/narrative",
    response_model=Narrative,
    summary="A child's chronology across agencies.",
    responses={
        403: {"description": "Your role may not read narratives."},
        404: {"description": "No such child."},
    },
)
async def read_narrative(child_id: str, hub: HubDep, caller: CurrentCaller) -> Narrative:
    """The child's entries ordered by when they happened; corrected and retracted ones left out."""
    if caller.role not in NARRATIVE_READER_ROLES:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "your role may not read narratives")
    if len(child_id) > 64 or not await hub.store.child_exists(child_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such child")
    entries = await hub.store.narrative(child_id)
    texts = await NarrativeOpener(hub.security.keys).open_all(child_id, entries)
    log.info(
        "narrative.read",
        caller=caller.sub,
        agency_id=caller.agency.id,
        role=caller.role.value,
        child_id=child_id,
        entries=len(entries),
        erased=sum(1 for t in texts if t.erased_at is not None),
    )
    return Narrative(
        child_id=child_id,
        entries=[
            NarrativeItem(
                event_id=e.event_id,
                event_type=e.event_type,
                family=e.family,
                occurred_at=e.occurred_at,
                recorded_at=e.recorded_at,
                agency_id=e.agency_id,
                agency_kind=e.agency_kind,
                summary=t.summary,
                sensitivity=list(e.sensitivity),
                corrects=e.supersedes,
                data=t.payload,
                erased_at=t.erased_at,
            )
            for e, t in zip(entries, texts, strict=True)
        ],
    )
