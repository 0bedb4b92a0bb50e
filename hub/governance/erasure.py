"""Erasing a child: the one path retention and an operator (``hub keys destroy-child``) share.

In one transaction it destroys the child's data keys (crypto-shredding: everything sealed under
them, on the log, in the store and in backups, becomes unreadable), deletes what identity
matching kept of the child (``identity_person_records``: name tokens, date of birth, postcode,
sealed under the hub's identity key, not the child's, so destroying the key alone leaves them
readable) and every household link naming the child at either end, and appends the audit
record the caller describes. There is never an erasure without its record, nor a record
without its erasure.

A child with no live key and nothing left in the person index or the household graph is
already erased: nothing is changed or recorded, so running an erasure twice does nothing.
A child whose keys are gone but whose matching data was left behind (an erasure by hand
before this path existed destroyed the keys only) has that data deleted, and recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.crypto.data_keys import ChildKeyStore
from hub.crypto.tables import child_data_keys
from hub.delivery.tables import deliveries
from hub.governance.audit import Actor, AuditAction, AuditEntry
from hub.governance.audit_store import AuditTrail
from hub.identity.tables import household_links, person_records
from hub.observability import get_logger

__all__ = [
    "ErasedChild",
    "ErasureRefused",
    "by_hand_entry",
    "erase_child",
    "leftover_children",
    "sweep_child",
]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ErasedChild:
    """What one erasure removed: the key versions destroyed and the rows deleted."""

    child_id: str
    key_versions: tuple[int, ...]
    person_records: int
    household_links: int
    audit_seq: int = 0
    """The sequence number of the erasure's audit record."""
    unsent_deliveries: int = 0
    """Partner deliveries not yet sent (held by a rule's delay, or pending), now withheld."""

    def counts(self) -> dict[str, Any]:
        """What went, as the erasure's audit record keeps it (ids and counts only)."""
        return {
            "key_versions": list(self.key_versions),
            "person_records": self.person_records,
            "household_links": self.household_links,
            "unsent_deliveries": self.unsent_deliveries,
        }


class ErasureRefused(ValueError):
    """An erasure by hand that cannot be recorded as asked (the message says why)."""


_CHILD_PREFIX = "ch-"
_WHO_MAX = 200  # the audit trail's ``who`` column


def by_hand_entry(actor: Actor, reason: str, child_id: str) -> Callable[[ErasedChild], AuditEntry]:
    """The audit record of an operator's erasure: who, their stated reason, what went.

    ErasureRefused when the reason is blank (information governance must see why), when the
    author is longer than the trail records, or when the id is not a child's (``ch-...``; the
    dead-letter months' keys live in the same table and are not erased this way).
    """
    if not reason.strip():
        raise ErasureRefused("erasing a child needs a reason (--reason)")
    if not actor.sub.strip() or len(actor.sub) > _WHO_MAX:
        raise ErasureRefused(f"the author must be 1-{_WHO_MAX} characters")
    if not child_id.startswith(_CHILD_PREFIX):
        raise ErasureRefused(f"{child_id!r} is not a child id (they start with {_CHILD_PREFIX!r})")

    def entry(erased: ErasedChild) -> AuditEntry:
        return actor.entry(
            AuditAction.operator_erased,
            child_id=erased.child_id,
            effect="erased",
            reason=reason.strip(),
            extra=erased.counts(),
        )

    return entry


async def _delete_matching_data(
    conn: AsyncConnection, child_id: str, *, written_by: datetime | None = None
) -> tuple[int, int]:
    """Delete the child's person records and every household link naming it (at either end:
    the household graph is undirected), only rows written by ``written_by`` when given;
    how many of each went."""
    p, h = person_records.c, household_links.c
    records: list[Any] = [p.child_id == child_id]
    links: list[Any] = [or_(h.a == child_id, h.b == child_id)]
    if written_by is not None:
        records.append(p.updated_at <= written_by)
        links.append(h.created_at <= written_by)
    deleted_records = await conn.execute(delete(person_records).where(*records))
    deleted_links = await conn.execute(delete(household_links).where(*links))
    return deleted_records.rowcount, deleted_links.rowcount


async def _withhold_unsent(conn: AsyncConnection, child_id: str) -> int:
    """Withhold for good the child's partner deliveries not yet sent, dropping the records
    kept with them (a held delivery keeps its event's sealed record); how many."""
    d = deliveries.c
    done = await conn.execute(
        update(deliveries)
        .where(d.child_id == child_id, d.status.in_(("held", "pending")))
        .values(status="withheld", body=None, next_attempt_at=None, last_error_class="Erased")
    )
    return int(done.rowcount)


async def erase_child(
    engine: AsyncEngine,
    keys: ChildKeyStore,
    trail: AuditTrail,
    child_id: str,
    *,
    audit: Callable[[ErasedChild], AuditEntry],
    now: datetime,
) -> ErasedChild | None:
    """Erase a child and append ``audit(erased)``, in one transaction; None if already erased.

    Afterwards this process's cached keys of the child are evicted; other processes drop
    theirs within the cache's time limit, and ingests drop the child from their person index
    at their next refresh (they read the erasure's audit record).
    """
    async with engine.begin() as conn:
        versions = tuple(await keys.destroy_child_key_in(conn, child_id, now=now))
        # What matching kept of the child (name tokens, date of birth, postcode) goes too.
        erased = ErasedChild(child_id, versions, *await _delete_matching_data(conn, child_id))
        if not (versions or erased.person_records or erased.household_links):
            return None  # already erased (by another run or by hand): nothing to record
        erased = replace(erased, unsent_deliveries=await _withhold_unsent(conn, child_id))
        [record] = await trail.append_in(conn, [audit(erased)])
    # This process's cached copies go too. Only the cache: destroying again in the store
    # would shred a key ingest may have made for a new event since the commit, unaudited.
    keys.forget_child(child_id)
    log.info(
        "erasure.child_erased",
        child_id=child_id,
        action=record.action,
        audit_seq=record.seq,
        **erased.counts(),
    )
    return replace(erased, audit_seq=record.seq)


def _erased_at() -> Any:
    """Each child with a destroyed key, and its latest destruction (its latest erasure)."""
    k = child_data_keys.c
    return (
        select(k.child_id.label("child_id"), func.max(k.destroyed_at).label("at"))
        .where(k.destroyed_at.is_not(None))
        .group_by(k.child_id)
        .subquery()
    )


async def leftover_children(engine: AsyncEngine) -> list[str]:
    """Children with matching data (person records, household links) written no later than
    their latest erasure: what an erasure left behind.

    On PostgreSQL an ingest batch that read the child's key before an erasure and commits
    after it writes rows the erasure's deletes could not see (SQLite serialises the two);
    keys destroyed alone (``hub keys destroy-child`` before it deleted the matching data) left
    such rows too. Rows written after the erasure (a new event about the child, under a new
    key) are new data and do not count. Times are the writers' clocks: rows are told apart
    by when ingest stamped them against when the erasure did.
    """
    erased = _erased_at()
    p, h = person_records.c, household_links.c

    def older(child: Any, written: Any) -> Any:
        return exists().where(and_(child == erased.c.child_id, written <= erased.c.at))

    query = (
        select(erased.c.child_id)
        .where(
            or_(
                older(p.child_id, p.updated_at),
                older(h.a, h.created_at),
                older(h.b, h.created_at),
            )
        )
        .order_by(erased.c.child_id)
    )
    async with engine.connect() as conn:
        return [r.child_id for r in await conn.execute(query)]


async def sweep_child(
    engine: AsyncEngine,
    trail: AuditTrail,
    child_id: str,
    *,
    audit: Callable[[ErasedChild], AuditEntry],
) -> ErasedChild | None:
    """Delete a child's matching data written no later than its latest erasure, and append
    ``audit(swept)``, in one transaction; None (nothing recorded) when there was none.

    Keys are not touched: a key made for a new event since the erasure stays live, and
    rows written since stay (each delete carries the time bound, so a row committed while
    this runs is judged by its own time).
    """
    k = child_data_keys.c
    async with engine.begin() as conn:
        at = (
            await conn.execute(
                select(func.max(k.destroyed_at)).where(
                    and_(k.child_id == child_id, k.destroyed_at.is_not(None))
                )
            )
        ).scalar_one_or_none()
        if at is None:
            return None
        swept = ErasedChild(
            child_id, (), *await _delete_matching_data(conn, child_id, written_by=at)
        )
        if not (swept.person_records or swept.household_links):
            return None
        [record] = await trail.append_in(conn, [audit(swept)])
    log.info("erasure.leftovers_deleted", child_id=child_id, audit_seq=record.seq, **swept.counts())
    return replace(swept, audit_seq=record.seq)
