"""Answers built from the audit trail: a rule change's dry-run over recent disclosures, and a
subject-access export of what the hub holds on a child and to whom it was disclosed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.governance.audit import DISCLOSURE_ACTIONS
from hub.governance.audit_store import AuditTrail
from hub.governance.config import RetentionSchedule
from hub.sharing import DryRunResult, PastRequest, RulePack, dry_run
from hub.store.schema import narrative_entries
from hub.store.times import as_utc

__all__ = ["SubjectAccess", "past_requests", "replay_dry_run", "subject_access"]


async def past_requests(trail: AuditTrail, *, since: datetime) -> list[PastRequest]:
    """Every decision recorded by reads and deliveries since ``since``, oldest first."""
    found: list[PastRequest] = []
    async for record in trail.records(actions=sorted(DISCLOSURE_ACTIONS), since=since):
        found.extend(record.past_requests())
    return found


async def replay_dry_run(
    trail: AuditTrail,
    current: RulePack,
    proposed: RulePack,
    *,
    days: int,
    now: datetime,
    when: datetime | None = None,
) -> DryRunResult:
    """Which of the last ``days`` days' disclosures ``proposed`` would add, remove or change,
    compared with ``current``, per recipient (each decided at its own time unless ``when``)."""
    if days < 1:
        raise ValueError("days must be at least 1")
    pasts = await past_requests(trail, since=now - timedelta(days=days))
    return dry_run(pasts, current, proposed, when=when)


@dataclass(frozen=True, slots=True)
class SubjectAccess:
    """What is held on a child and every disclosure of it (ids, types, agencies, dates)."""

    child_id: str
    held: tuple[dict[str, Any], ...]
    disclosures: tuple[dict[str, Any], ...]
    withheld: int
    retention: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "child_id": self.child_id,
            "held": list(self.held),
            "disclosures": list(self.disclosures),
            "decisions_not_to_share": self.withheld,
            "retention": self.retention,
        }


async def subject_access(
    engine: AsyncEngine,
    trail: AuditTrail,
    child_id: str,
    retention: RetentionSchedule,
    *,
    statuses: tuple[str, ...] | None = None,
) -> SubjectAccess:
    """The subject-access export for a child (contents are added by the read path later).

    ``statuses`` (the child's statuses, when the caller knows them) picks the retention
    periods that apply; without them the whole schedule is listed and ``applies`` is null."""
    n = narrative_entries.c
    columns = [
        n.event_id,
        n.event_type,
        n.family,
        n.agency_id,
        n.agency_kind,
        n.occurred_at,
        n.recorded_at,
        n.status,
    ]
    stmt = select(*columns).where(n.child_id == child_id).order_by(n.occurred_at, n.event_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    held = tuple(
        {
            "event_id": r.event_id,
            "event_type": r.event_type,
            "family": r.family,
            "source_agency_id": r.agency_id,
            "source_agency_kind": r.agency_kind,
            "occurred_at": as_utc(r.occurred_at).isoformat(),
            "recorded_at": as_utc(r.recorded_at).isoformat(),
            "status": r.status,
        }
        for r in rows
    )
    disclosures: list[dict[str, Any]] = []
    withheld = 0
    async for record in trail.records(child_id=child_id, actions=sorted(DISCLOSURE_ACTIONS)):
        b = record.body
        for item in record.disclosure_items():
            if item["effect"] != "permit":
                withheld += 1
                continue
            disclosures.append(
                {
                    "audit_seq": record.seq,
                    "at": b["at"],
                    "how": b["action"],
                    "event_id": item["event_id"],
                    "event_type": item["event_type"],
                    "source_agency_id": item["source_agency_id"],
                    "recipient": {
                        "who": b["who"],
                        "agency_id": b["agency_id"],
                        "agency_kind": b["agency_kind"],
                        "role": b["role"],
                        "team": b["team"],
                    },
                    "purpose": b["purpose"],
                    "lawful_bases": item["lawful_bases"],
                    "rule_ids": item["rule_ids"],
                    "pack_version": b["pack_version"],
                    "break_glass_id": b["break_glass_id"],
                }
            )
    return SubjectAccess(
        child_id=child_id,
        held=held,
        disclosures=tuple(disclosures),
        withheld=withheld,
        retention={
            "source": retention.source,
            "applies": None
            if statuses is None
            else [p.model_dump(mode="json") for p in retention.for_statuses(statuses)],
            "schedule": [p.model_dump(mode="json") for p in retention.periods],
        },
    )
