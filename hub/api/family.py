"""The family around a child: siblings and household members, and what happened to them.

``GET /api/v1/children/{child_id}/family``. Household links come from the identity linking at
ingest (shared addresses and related adults). Each other child's entries are read through the
same enforced path as the child's own narrative, so the sharing rules, consent, protection and
audit apply to every one; a household child the caller may see nothing of is not listed at
all, so what is hidden is not hinted at.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from hub.api.children import NarrativeItem, ensure_readable
from hub.api.deps import CurrentCaller, HubDep
from hub.api.narrative_access import read_visible_narrative
from hub.domain.chronology import ChronologyItem
from hub.domain.family import household_children
from hub.identity.store import IdentityStore
from hub.observability import get_logger
from hub.sharing import Purpose

__all__ = ["router"]

log = get_logger(__name__)

router = APIRouter(prefix="/api/v1/children", tags=["children"])

MAX_MEMBERS = 20
"""Household children read per request (a children's home or hostel can link many)."""

FAMILY_FAMILIES = frozenset({"concern"})
"""What of another child's story belongs in this child's family view: concerns and incidents."""


class FamilyMember(BaseModel):
    """Another child of the household, and how they are connected to this one."""

    child_id: str
    connection: str = Field(description="In words, e.g. 'lives at the same address'.")
    entries: int = Field(description="How many of their entries the caller may see here.")


class FamilyEntry(NarrativeItem):
    """A concern or incident about another child of the household."""

    via_child_id: str
    connection: str


class Family(BaseModel):
    """The household around a child, as far as the caller may see it."""

    child_id: str
    merged_from: list[str]
    members: list[FamilyMember]
    entries: list[FamilyEntry]


def _concerns(items: list[ChronologyItem]) -> list[str]:
    """The entries of another child the family view shows (only these are opened)."""
    return [i.event_id for i in items if i.family in FAMILY_FAMILIES]


def _entry(item: ChronologyItem, via: str, connection: str) -> FamilyEntry:
    return FamilyEntry(**NarrativeItem.fields_of(item), via_child_id=via, connection=connection)


@router.get(
    "/{child_id}/family",
    response_model=Family,
    summary="Siblings and household members, and the concerns and incidents around them.",
    responses={
        403: {"description": "Agency systems do not read narratives."},
        404: {"description": "No such child."},
    },
)
async def read_family(
    child_id: str,
    hub: HubDep,
    caller: CurrentCaller,
    purpose: Annotated[Purpose | None, Query(description="Default: your role's purposes.")] = None,
) -> Family:
    """Other children sharing the child's household, each entry saying how it is connected."""
    await ensure_readable(hub, caller, child_id)
    group = await hub.store.identity_group(child_id)
    links = await IdentityStore(hub.store.engine).household_around(group.members)
    members: list[FamilyMember] = []
    entries: list[FamilyEntry] = []
    for member in household_children(links, group.members)[:MAX_MEMBERS]:
        visible = await read_visible_narrative(
            hub, caller, member.child_id, purpose=purpose, present=_concerns
        )
        if not visible.items:
            continue
        shown = [i for i in visible.items if i.family in FAMILY_FAMILIES]
        members.append(
            FamilyMember(
                child_id=visible.child_id, connection=member.connection, entries=len(shown)
            )
        )
        entries.extend(_entry(i, visible.child_id, member.connection) for i in shown)
    entries.sort(key=lambda e: (e.occurred_at, e.recorded_at, e.event_id))
    log.info(
        "family.read",
        caller=caller.sub,
        agency_id=caller.agency.id,
        child_id=group.child_id,
        members=len(members),
        entries=len(entries),
    )
    return Family(
        child_id=group.child_id,
        merged_from=list(group.merged_from),
        members=members,
        entries=entries,
    )
