"""Children: find a child by an agency identifier, and read a child's narrative.

The identifier is looked up by its keyed digest. The narrative is decided entry by entry by
the sharing rules for the caller (see ``narrative_access``); what is denied is absent, also
from the summary and spans. An entry whose child's key was destroyed reads "Record erased on
<date>." with no content.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from contracts import Identifier
from hub.api.deps import CurrentCaller, HubDep
from hub.api.narrative_access import VisibleNarrative, read_visible_narrative
from hub.domain.chronology import (
    ChronologyItem,
    ChronologyQuery,
    InvolvementSpan,
    filter_items,
    involvement_spans,
    summarise,
    to_markdown,
)
from hub.domain.roles import Role
from hub.observability import get_logger
from hub.sharing import Purpose

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

    @classmethod
    def fields_of(cls, item: ChronologyItem) -> dict[str, Any]:
        """The response fields of a decided, redacted chronology item."""
        return {
            "event_id": item.event_id,
            "event_type": item.event_type,
            "family": item.family,
            "occurred_at": item.occurred_at,
            "recorded_at": item.recorded_at,
            "agency_id": item.agency_id,
            "agency_kind": item.agency_kind,
            "summary": item.summary,
            "sensitivity": list(item.sensitivity),
            "corrects": item.corrects,
            "data": item.data,
            "erased_at": item.erased_at,
        }


class Practitioner(BaseModel):
    """How to reach the lead practitioner of an involvement."""

    name: str | None = None
    role: str | None = None
    team: str | None = None
    phone: str | None = None
    email: str | None = None


class Span(BaseModel):
    """An agency's involvement with the child, from - to (open when ``ended_on`` is empty)."""

    involvement_id: str
    involvement_type: str
    agency_id: str
    agency_kind: str
    started_on: date | None
    ended_on: date | None
    lead_practitioner: Practitioner | None


class SummaryHeader(BaseModel):
    """Open plans, concerns per agency in the last 30/90/365 days, last contact per agency."""

    open_plans: list[str]
    concerns_by_agency: dict[str, dict[str, int]]
    last_contact_by_agency: dict[str, datetime]


class Narrative(BaseModel):
    """A child's cross-agency chronology, as far as the caller may see it."""

    child_id: str
    merged_from: list[str] = Field(
        default=[], description="Children merged into this one; their entries are included."
    )
    purposes: list[str]
    summary: SummaryHeader
    involved_now: list[Span]
    spans: list[Span]
    total: int
    page: int
    page_size: int
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


def _span(span: InvolvementSpan) -> Span:
    lead = span.lead_practitioner
    return Span(
        involvement_id=span.involvement_id,
        involvement_type=span.involvement_type,
        agency_id=span.agency_id,
        agency_kind=span.agency_kind,
        started_on=span.started_on,
        ended_on=span.ended_on,
        lead_practitioner=Practitioner.model_validate(
            {k: lead.get(k) for k in ("name", "role", "team", "phone", "email")}
        )
        if lead
        else None,
    )


def _query(
    agency_kind: list[str] | None,
    family: list[str] | None,
    since: datetime | None,
    until: datetime | None,
    sensitivity: list[str] | None,
) -> ChronologyQuery:
    return ChronologyQuery(
        agency_kinds=frozenset(agency_kind or ()),
        families=frozenset(family or ()),
        since=since,
        until=until,
        sensitivity=frozenset(sensitivity or ()),
    )


async def ensure_readable(hub: HubDep, caller: CurrentCaller, child_id: str) -> None:
    """403 for agency systems (they submit, they do not read), 404 for an unknown child."""
    if caller.role is Role.agency_system:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "agency systems cannot read narratives")
    if len(child_id) > 64 or not await hub.store.child_exists(child_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such child")


async def _visible(
    hub: HubDep,
    caller: CurrentCaller,
    child_id: str,
    purpose: Purpose | None,
    *,
    present: Callable[[list[ChronologyItem]], Collection[str]] | None = None,
) -> VisibleNarrative:
    await ensure_readable(hub, caller, child_id)
    return await read_visible_narrative(hub, caller, child_id, purpose=purpose, present=present)


_FILTERS = {
    "agency_kind": "Only these agency kinds (repeatable).",
    "family": "Only these event families: concern, involvement, contact (repeatable).",
    "sensitivity": "Only entries carrying one of these sensitivity tags (repeatable).",
}


@router.get(
    "/{child_id}/narrative",
    response_model=Narrative,
    summary="A child's chronology across agencies, as the sharing rules let you see it.",
    responses={
        403: {"description": "Agency systems do not read narratives."},
        404: {"description": "No such child."},
    },
)
async def read_narrative(
    child_id: str,
    hub: HubDep,
    caller: CurrentCaller,
    purpose: Annotated[Purpose | None, Query(description="Default: your role's purposes.")] = None,
    agency_kind: Annotated[list[str] | None, Query(description=_FILTERS["agency_kind"])] = None,
    family: Annotated[list[str] | None, Query(description=_FILTERS["family"])] = None,
    since: Annotated[datetime | None, Query(description="From this time.")] = None,
    until: Annotated[datetime | None, Query(description="Up to this time.")] = None,
    sensitivity: Annotated[list[str] | None, Query(description=_FILTERS["sensitivity"])] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Narrative:
    """Entries ordered by when they happened, each decided by the rules for you and audited."""
    query = _query(agency_kind, family, since, until, sensitivity)
    first = (page - 1) * page_size

    def page_of(items: list[ChronologyItem]) -> list[str]:
        # Filters read clear columns only, so the page is known before anything is opened.
        return [i.event_id for i in filter_items(items, query)[first : first + page_size]]

    visible = await _visible(hub, caller, child_id, purpose, present=page_of)
    spans = involvement_spans(visible.items)
    chosen = filter_items(visible.items, query)
    window = chosen[first : first + page_size]
    summary = summarise(visible.items, spans, now=datetime.now(UTC))
    log.info(
        "narrative.read",
        caller=caller.sub,
        agency_id=caller.agency.id,
        role=caller.role.value,
        child_id=child_id,
        visible=len(visible.items),
        returned=len(window),
    )
    return Narrative(
        child_id=visible.child_id,
        merged_from=list(visible.merged_from),
        purposes=[p.value for p in visible.purposes],
        summary=SummaryHeader(
            open_plans=list(summary.open_plans),
            concerns_by_agency=summary.concerns_by_agency,
            last_contact_by_agency=summary.last_contact_by_agency,
        ),
        involved_now=[_span(s) for s in spans if s.is_open],
        spans=[_span(s) for s in spans],
        total=len(chosen),
        page=page,
        page_size=page_size,
        entries=[NarrativeItem(**NarrativeItem.fields_of(i)) for i in window],
    )


@router.get(
    "/{child_id}/narrative/export",
    response_class=PlainTextResponse,
    summary="The chronology as Markdown, for assessments and case conferences.",
    responses={200: {"content": {"text/markdown": {}}}},
)
async def export_narrative(
    child_id: str,
    hub: HubDep,
    caller: CurrentCaller,
    purpose: Annotated[Purpose | None, Query()] = None,
    agency_kind: Annotated[list[str] | None, Query()] = None,
    family: Annotated[list[str] | None, Query()] = None,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
    sensitivity: Annotated[list[str] | None, Query()] = None,
) -> PlainTextResponse:
    """What the narrative endpoint shows you, as a Markdown table (audited the same way)."""
    visible = await _visible(hub, caller, child_id, purpose)
    chosen = filter_items(visible.items, _query(agency_kind, family, since, until, sensitivity))
    names = {a.id: a.name for a in hub.registry.all()}
    text = to_markdown(
        child_id, chosen, involvement_spans(visible.items), names, generated_at=datetime.now(UTC)
    )
    log.info("narrative.exported", caller=caller.sub, child_id=child_id, entries=len(chosen))
    return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")
