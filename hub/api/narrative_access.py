"""The enforced narrative read: sharing rules, consent, break-glass, protection and audit.

Every item a caller sees passed the decision point for one of the caller's purposes; what is
denied is absent (and so are the summary counts and spans it would have fed). Every decision,
permit or deny, is written to the audit trail in one record per purpose.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub.auth import Caller
from hub.bootstrap import Hub
from hub.crypto.narrative import open_items, with_texts
from hub.domain.chronology import ChronologyItem, situation_of
from hub.domain.narrative import describe_view
from hub.domain.roles import Role
from hub.governance import Governance
from hub.governance.api import governance_of
from hub.governance.audit import Actor, FactColumns
from hub.governance.read_path import PreparedRead, prepare_read, record_read
from hub.narrative_cache import Destroyed, cache_for
from hub.sharing import AccessRequest, Decision, EventFacts, Purpose, decide_all, redact
from hub.store.reading import shared_reads
from hub.store.repository import StoredEntry

__all__ = ["ROLE_PURPOSES", "VisibleNarrative", "read_visible_narrative"]

ROLE_PURPOSES: dict[Role, tuple[Purpose, ...]] = {
    Role.social_worker: (Purpose.safeguarding,),
    Role.team_manager: (Purpose.safeguarding,),
    Role.service_manager: (Purpose.safeguarding,),
    Role.duty_officer: (Purpose.safeguarding,),
    Role.designated_safeguarding_lead: (Purpose.education_safeguarding, Purpose.safeguarding),
    Role.named_nurse: (Purpose.safeguarding, Purpose.unscheduled_care),
    Role.clinician: (Purpose.unscheduled_care, Purpose.safeguarding),
    Role.police_ppu: (Purpose.law_enforcement, Purpose.safeguarding),
    Role.ig_officer: (Purpose.audit,),
    Role.agency_system: (),
}
"""The purposes a role reads for when it names none (a read is decided per purpose).

``safeguarding`` is among every practitioner's purposes because the rule that shows an agency
its own records is written for it."""


@dataclass(frozen=True, slots=True)
class VisibleNarrative:
    """What one caller may see of a child's chronology, and the context it was decided in."""

    items: list[ChronologyItem]
    purposes: tuple[Purpose, ...]
    withheld_location: bool
    child_id: str = ""
    """The child whose story this is (the surviving child when the one asked for was merged)."""
    merged_from: tuple[str, ...] = ()
    """Children merged into it, whose entries are part of the story."""


def _item_view(item: ChronologyItem) -> dict[str, Any]:
    return {
        "event_id": item.event_id,
        "event_type": item.event_type,
        "agency_id": item.agency_id,
        "agency_kind": item.agency_kind,
        "sensitivity": list(item.sensitivity),
        "data": item.data,
    }


def _correction_of(item: ChronologyItem) -> dict[str, Any] | None:
    """A correction's payload (``corrected_type``, ``reason``, ``replacement``), else None."""
    data = item.data
    if item.corrects is not None and "replacement" in data and "corrected_type" in data:
        return data
    return None


async def read_visible_narrative(
    hub: Hub,
    caller: Caller,
    child_id: str,
    *,
    purpose: Purpose | None = None,
    present: Callable[[list[ChronologyItem]], Collection[str]] | None = None,
) -> VisibleNarrative:
    """Decide each of the child's entries for the caller, open, redact and strip what is
    shown, and audit every decision.

    The story is the identity group's: a merged child is read as the child it was merged
    into, with the entries of every child merged into that one (each opened with the key of
    the child it was linked to). Decisions need only the entries' clear columns, so with
    ``present`` (given the permitted items, unopened, it names the ones the caller will be
    shown, e.g. one page) only those, and the involvements and contacts the child's situation
    is read from, are opened; the other permitted items come back with no summary or data.
    """
    # The read's questions share one connection; it goes back to the pool before the
    # audit append takes its own (a read never holds two).
    async with shared_reads(hub.store.engine):
        keys = hub.security.keys
        entries: Sequence[StoredEntry]
        items: Sequence[ChronologyItem]
        destroyed: Destroyed | None = None
        columns: FactColumns | None = None  # the entries' half of the audit record, when kept
        if present is None:
            group = await hub.store.identity_group(child_id)
            entries = await hub.store.narrative(group.members)
            items = await open_items(keys, entries)
            facts_of: Sequence[EventFacts] = [EventFacts.of(i) for i in items]
            situation = situation_of(items)
        else:
            # Decide on clear columns (kept while the child's entries are unchanged); open
            # the shown page after deciding (payload only: summaries are described from it).
            kept = await cache_for(hub.store, keys).read(child_id)
            group, basis, destroyed = kept.group, kept.basis, kept.destroyed
            columns = basis.columns
            entries, items, facts_of = basis.entries, basis.items, basis.facts
            situation = basis.situation
        child_id = group.child_id
        gov = governance_of(hub)
        actor = Actor.of(caller)
        prepared = await prepare_read(gov, child_id=child_id, actor=actor, situation=situation)
        purposes = (purpose,) if purpose is not None else ROLE_PURPOSES.get(caller.role, ())
        now = datetime.now(UTC)
        permitted: dict[str, tuple[int, Decision]] = {}  # event id -> (purpose index, decision)
        per_purpose: list[tuple[AccessRequest, list[tuple[str, EventFacts, Decision]]]] = []
        for n, each in enumerate(purposes):
            request = AccessRequest(
                caller.agency.id, caller.agency.kind, caller.role, each, caller.team
            )
            answers = decide_all(request, facts_of, prepared.child, prepared.pack, now=now)
            decisions = []
            for item, facts, decision in zip(items, facts_of, answers, strict=True):
                decisions.append((item.event_id, facts, decision))
                if decision.permitted and item.event_id not in permitted:
                    permitted[item.event_id] = (n, decision)
            per_purpose.append((request, decisions))
        visible = [i for i in items if i.event_id in permitted]
        if present is not None:
            # Shown: the page, and the involvements the spans and leads are drawn from.
            wanted = set(present(visible)) | {
                i.event_id for i in visible if i.family == "involvement"
            }
            closed = [e for e in entries if e.event_id in wanted]
            opened = await open_items(
                keys,
                await with_texts(hub.store, closed, lambda _: True),
                summaries=False,
                destroyed=destroyed,
            )
            by_id = {i.event_id: i for i in opened}
            visible = [by_id.get(i.event_id, i) for i in visible]
        else:
            wanted = {i.event_id for i in visible}
        withheld: list[set[str]] = [set() for _ in purposes]
        shown: list[ChronologyItem] = []
        for item in visible:
            n, decision = permitted[item.event_id]
            if item.event_id not in wanted:
                closed_item = not item.summary and not item.data  # as the decision basis holds it
                shown.append(item if closed_item else item.shown("", {}))
                continue
            view, held = _presented(item, decision, prepared, gov, caller)
            if held:
                withheld[n].add(item.event_id)
            shown.append(view)
    for n, (request, decisions) in enumerate(per_purpose):
        await record_read(
            gov,
            prepared,
            actor=actor,
            request=request,
            child_id=child_id,
            decisions=decisions,
            withheld_event_ids=sorted(withheld[n]),
            columns=columns,
        )
    return VisibleNarrative(
        items=shown,
        purposes=purposes,
        withheld_location=any(withheld),
        child_id=child_id,
        merged_from=group.merged_from,
    )


def _presented(
    item: ChronologyItem,
    decision: Decision,
    prepared: PreparedRead,
    gov: Governance,
    caller: Caller,
) -> tuple[ChronologyItem, bool]:
    """The item as this caller sees it (obligations applied, protected locations held back),
    and whether a location was held back."""
    correction = _correction_of(item)
    duties = decision.obligations
    held = False
    if duties.remove_fields or duties.generalise or prepared.protected:
        view = _item_view(item)
        if correction is not None:  # the rules' paths are written for the replaced record
            view["data"] = dict(correction.get("replacement") or {})
        view = redact(view, duties)
        if prepared.protected:
            view, held = gov.location.for_pack(prepared.pack).apply(view, caller.role.value)
        data = dict(view.get("data") or {})
    else:  # nothing to take out: the item's data was opened for this read alone
        data = dict((correction.get("replacement") or {}) if correction is not None else item.data)
    summary = item.summary if item.erased_at is not None else describe_view(item.event_type, data)
    if correction is not None and item.erased_at is None:
        # The correction's own reason is free text: shown only when the rule lets the reader
        # see the record whole.
        whole = not duties.remove_fields and not duties.generalise
        reason = str(correction.get("reason") or "") if whole else ""
        summary += f" (Corrected: {reason})" if reason else " (Corrected.)"
        data = {
            "corrected_type": correction.get("corrected_type"),
            "replacement": data,
            **({"reason": reason} if reason else {}),
        }
    return item.shown(summary, data), bool(held)
