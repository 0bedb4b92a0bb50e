"""What the narrative read path (and delivery) asks governance per read, in two calls.

1. ``prepare_read`` before deciding: the child context (consents in force now, significant
   harm from the caller's active break-glass), the pack in force, and whether the child or a
   named person is protected.
2. ``record_read`` after deciding: one audit record of every event's decision, and, when a
   protected location was withheld from the caller, a ``protected.view_attempt`` record; both
   in one transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from hub.domain.chronology import ChildSituation
from hub.governance import Governance
from hub.governance.audit import (
    Actor,
    AuditAction,
    AuditEntry,
    FactColumns,
    decisions_entry,
)
from hub.governance.break_glass import BreakGlass
from hub.governance.protected import view_attempt_entry
from hub.sharing import (
    AccessRequest,
    ChildContext,
    ChildStatus,
    Decision,
    EventFacts,
    Milestone,
    RulePack,
)

__all__ = ["PreparedRead", "prepare_read", "record_read"]


@dataclass(frozen=True, slots=True)
class PreparedRead:
    """Everything a read decides with."""

    child: ChildContext
    pack: RulePack
    break_glass: BreakGlass | None
    protected: bool


async def prepare_read(
    gov: Governance,
    *,
    child_id: str,
    actor: Actor,
    statuses: Iterable[ChildStatus] = (),
    involved_agencies: Iterable[str] = (),
    milestones: Mapping[Milestone, datetime] | None = None,
    significant_harm: bool = False,
    person_ids: Collection[str] = (),
    situation: ChildSituation | None = None,
) -> PreparedRead:
    """The context for deciding a read of ``child_id`` by ``actor`` now.

    ``situation`` (read from the child's chronology) stands for the four facts before it.
    """
    if situation is not None:
        statuses = [ChildStatus(s) for s in situation.statuses]
        involved_agencies = situation.involved_agencies
        milestones = {Milestone(k): v for k, v in situation.milestones.items()}
        significant_harm = situation.significant_harm
    glass = await gov.break_glass.active_break_glass(child_id, actor)
    protected = bool(await gov.protections.protected_among([child_id, *person_ids]))
    child = ChildContext.build(
        statuses=statuses,
        consents=await gov.consents.consent_records(child_id),
        significant_harm=significant_harm or glass is not None,
        involved_agencies=involved_agencies,
        milestones=milestones,
    )
    return PreparedRead(child, (await gov.rules.current()).pack, glass, protected)


async def record_read(
    gov: Governance,
    prepared: PreparedRead,
    *,
    actor: Actor,
    request: AccessRequest,
    child_id: str,
    decisions: Sequence[tuple[str, EventFacts, Decision]],
    withheld_event_ids: Collection[str] = (),
    action: AuditAction = AuditAction.narrative_read,
    columns: FactColumns | None = None,
) -> None:
    """Audit a read: every decision, and any protected location withheld from the caller
    (``columns``: the decided events' ``fact_columns``, when the caller keeps them)."""
    glass = prepared.break_glass
    entries: list[AuditEntry] = [
        decisions_entry(
            action=action,
            who=actor.sub,
            request=request,
            child_id=child_id,
            child=prepared.child,
            decisions=decisions,
            pack_version=prepared.pack.version,
            break_glass_id=None if glass is None else glass.break_glass_id,
            justification_sha256=None if glass is None else glass.justification_sha256,
            columns=columns,
        )
    ]
    if withheld_event_ids:
        entries.append(view_attempt_entry(actor, child_id, withheld_event_ids))
    await gov.trail.append(*entries)
