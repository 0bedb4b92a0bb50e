"""The identity repository: person records, the review queue, merges and household links.

Built from the hub's engine (``IdentityStore(hub.store.engine)``); each method is one
transaction. Reviews are decided once: a second decision is refused, not overwritten.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Text,
    bindparam,
    cast,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.governance.audit import ERASURE_ACTIONS
from hub.governance.tables import audit_head, audit_records
from hub.identity.events import ChildrenMerged, MatchKeptApart, MergeUndone
from hub.identity.households import Households, Link, LinkKind
from hub.identity.index import Candidate, PersonIndex, blocking_keys
from hub.identity.records import PersonRecord, record_from_features
from hub.identity.scoring import MatchModel
from hub.identity.sealing import RecordSealer, SealedRecordInvalid, is_sealed_record
from hub.identity.tables import change_head, household_links, merges, person_records, reviews
from hub.store.times import as_utc

__all__ = [
    "Decision",
    "IdentityStore",
    "MergeNotFound",
    "OpenedRecords",
    "Review",
    "ReviewAlreadyDecided",
    "ReviewNotFound",
    "ReviewStatus",
    "pending_review",
]


class ReviewStatus(StrEnum):
    """Where a possible match stands."""

    pending = "pending"
    linked = "linked"
    kept_apart = "kept_apart"


class Decision(StrEnum):
    """A reviewer's decision on a possible match."""

    link = "link"
    keep_apart = "keep_apart"


class ReviewNotFound(LookupError):
    """No review has that id."""


class ReviewAlreadyDecided(Exception):
    """The review was decided before; decisions are not overwritten."""


class MergeNotFound(LookupError):
    """No merge has that id, or it was already undone."""


@dataclass(frozen=True, slots=True)
class Review:
    """A possible match: a record provisionally given its own child, and the candidate child."""

    review_id: str
    record_id: str
    provisional_child_id: str
    candidate_child_id: str
    weight: float
    breakdown: tuple[dict[str, Any], ...]
    status: ReviewStatus
    created_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    reason: str | None = None


def _review(row: Any) -> Review:
    return Review(
        review_id=row.review_id,
        record_id=row.record_id,
        provisional_child_id=row.provisional_child_id,
        candidate_child_id=row.candidate_child_id,
        weight=row.weight,
        breakdown=tuple(json.loads(row.breakdown)),
        status=ReviewStatus(row.status),
        created_at=as_utc(row.created_at),  # type: ignore[arg-type]
        decided_at=as_utc(row.decided_at),
        decided_by=row.decided_by,
        reason=row.reason,
    )


def pending_review(
    record_id: str, provisional_child_id: str, candidate: Candidate, *, now: datetime
) -> Review:
    """A new pending review of a possible match (the evidence rounded for reading)."""
    return Review(
        review_id=f"rv-{uuid.uuid4().hex}",
        record_id=record_id,
        provisional_child_id=provisional_child_id,
        candidate_child_id=candidate.child_id,
        weight=round(candidate.score.weight, 3),
        breakdown=tuple(
            {"comparison": b.comparison, "level": b.level, "weight": round(b.weight, 3)}
            for b in candidate.score.breakdown
        ),
        status=ReviewStatus.pending,
        created_at=now,
    )


def _matching_data(record: PersonRecord) -> dict[str, Any]:
    """What a sealed row holds: everything ``record_from_features`` needs."""
    return {
        "features": record.features(),
        "birth_date": record.birth_date.isoformat() if record.birth_date else None,
        "sex": record.sex,
        "postcode": record.postcode,
        "address_key": record.address_key,
        "identifiers": [list(i) for i in record.identifiers],
    }


OpenedRecords = dict[str, tuple[str, PersonRecord, int]]
"""Record id -> (sealed ``features`` text, the record it opens to, the row's version)."""


class IdentityStore:
    """Identity tables over one async engine."""

    def __init__(self, engine: AsyncEngine, sealer: RecordSealer | None = None) -> None:
        self.engine = engine
        self._sealer = sealer
        self._pg = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if self._pg else sqlite.insert
        # Ingest's per-batch statements, built once (building them cost more than running).
        upsert = self._insert(person_records)
        self._upsert_records = upsert.on_conflict_do_update(
            index_elements=["record_id"],
            set_={
                c.name: upsert.excluded[c.name]
                for c in person_records.c
                if c.name not in ("record_id", "child_id")
            },
        )
        by_update = select(person_records).order_by(person_records.c.updated_at)
        self._records_all = by_update
        self._records_since = by_update.where(person_records.c.version >= bindparam("since"))
        # A person-record write's version, and the mark below which every write has ended
        # (ADR 0022). PostgreSQL: the writing transaction's id, and the xmin of the reader's
        # snapshot (the oldest transaction still running). SQLite: the change head's seq,
        # taken under the database's write lock, and the head's seq + 1.
        if self._pg:
            xid = cast(cast(func.pg_current_xact_id(), Text), BigInteger)
            self._take_version = select(xid)
            snapshot_xmin = func.pg_snapshot_xmin(func.pg_current_snapshot())
            self._change_mark = select(cast(cast(snapshot_xmin, Text), BigInteger))
        else:
            head = change_head.c
            self._take_version = (
                update(change_head).where(head.id == 1).values(seq=head.seq + 1).returning(head.seq)
            )
            self._change_mark = select(head.seq + literal(1)).where(head.id == 1)
        self._add_links = self._insert(household_links).on_conflict_do_nothing()
        # Erasures in commit order: every erasure appends its audit record in its own
        # transaction, under the trail's head lock, so a larger seq committed later.
        trail = audit_records.c
        self._erasures_after = (
            select(trail.seq, trail.child_id)
            .where(trail.action.in_(ERASURE_ACTIONS), trail.seq > bindparam("seq"))
            .order_by(trail.seq)
        )
        self._trail_head = select(audit_head.c.seq).where(audit_head.c.id == 1)

    # -- person records --------------------------------------------------------------------
    async def _rows(
        self,
        conn: AsyncConnection,
        items: Sequence[tuple[PersonRecord, str]],
        now: datetime,
        version: int,
    ) -> list[dict[str, Any]]:
        """Table rows for records; with a sealer, the matching data is sealed, no column
        holds it in clear."""
        unique = list(dict((r.record_id, (r, c)) for r, c in items).values())
        sealed = (
            await self._sealer.seal_all(conn, [(r.record_id, _matching_data(r)) for r, _ in unique])
            if self._sealer is not None
            else {}
        )
        rows = []
        for record, child_id in unique:
            if record.record_id in sealed:
                clear: dict[str, Any] = {
                    "features": sealed[record.record_id],
                    "birth_date": None,
                    "sex": None,
                    "postcode": None,
                    "address_key": None,
                    "identifiers": "[]",
                    "blocking_keys": "[]",
                }
            else:
                clear = {
                    "features": json.dumps(record.features()),
                    "birth_date": record.birth_date,
                    "sex": record.sex,
                    "postcode": record.postcode,
                    "address_key": record.address_key,
                    "identifiers": json.dumps([list(i) for i in record.identifiers]),
                    "blocking_keys": json.dumps(sorted(blocking_keys(record))),
                }
            rows.append(
                {
                    "record_id": record.record_id,
                    "child_id": child_id,
                    **clear,
                    "updated_at": now,
                    "version": version,
                }
            )
        return rows

    async def _record(self, row: Any) -> PersonRecord:
        """A stored row as a record (opened first when sealed)."""
        if is_sealed_record(row.features):
            if self._sealer is None:
                raise SealedRecordInvalid(row.record_id)
            data = await self._sealer.open(row.features, row.record_id)
            return record_from_features(
                row.record_id,
                data["features"],
                birth_date=date.fromisoformat(data["birth_date"]) if data["birth_date"] else None,
                sex=data["sex"],
                postcode=data["postcode"],
                address_key=data["address_key"],
                identifiers=[tuple(i) for i in data["identifiers"]],
            )
        return record_from_features(
            row.record_id,
            json.loads(row.features),
            birth_date=row.birth_date,
            sex=row.sex,
            postcode=row.postcode,
            address_key=row.address_key,
            identifiers=[tuple(i) for i in json.loads(row.identifiers)],
        )

    async def save_record(self, record: PersonRecord, child_id: str, *, now: datetime) -> None:
        """Insert or replace a person record as belonging to ``child_id``."""
        async with self.engine.begin() as conn:
            [values] = await self._rows(
                conn, [(record, child_id)], now, await self.take_version(conn)
            )
            stmt = self._insert(person_records).values(**values)
            stmt = stmt.on_conflict_do_update(
                index_elements=["record_id"],
                set_={k: stmt.excluded[k] for k in values if k != "record_id"},
            )
            await conn.execute(stmt)

    async def save_records_in(
        self,
        conn: AsyncConnection,
        items: Sequence[tuple[PersonRecord, str]],
        *,
        now: datetime,
    ) -> tuple[dict[str, str], int]:
        """Upsert records seen by ingest, in the caller's transaction.

        A record already held keeps its child (a reviewed merge or un-merge decides that,
        not the next event); its features are refreshed. Returns each sealed record's stored
        ``features`` text (unique to this write), for ``records_since(opened=...)``, and the
        rows' version; rows kept in clear (no sealer) are not returned, so no clear matching
        data is kept beside them.
        """
        if not items:
            return {}, 0
        version = await self.take_version(conn)
        rows = await self._rows(conn, items, now, version)
        await conn.execute(self._upsert_records, rows)
        sealed = {
            row["record_id"]: row["features"] for row in rows if is_sealed_record(row["features"])
        }
        return sealed, version

    async def take_version(self, conn: AsyncConnection) -> int:
        """The version of this transaction's person-record writes (ADR 0022): later in commit
        order than every version taken by a transaction that committed before it."""
        return int((await conn.execute(self._take_version)).scalar_one())

    async def change_mark(self, conn: AsyncConnection) -> int:
        """A version below which every person-record write has committed or rolled back by
        now: rows read at or after it later include every write this read could miss."""
        return int((await conn.execute(self._change_mark)).scalar_one())

    async def records_since(
        self,
        conn: AsyncConnection,
        since: int | None,
        *,
        opened: OpenedRecords | None = None,
    ) -> list[tuple[PersonRecord, str, int]]:
        """Records (with their child and version) written at or after version ``since`` (all
        of them for None; rows written before migration 0016 have version 0 here).

        ``opened`` maps record ids to (sealed ``features`` text, the record it holds, update
        time): a sealed row still holding exactly that text is not opened again, and each
        sealed row read is entered in it (unsealed rows are always read). Every seal has a
        fresh random nonce, so equal text means the very write the record came from; any
        other write (another process, a re-seal) differs and is opened. The child is always
        the row's, never the map's.
        """
        if since is None:
            rows = (await conn.execute(self._records_all)).all()
        else:
            rows = (await conn.execute(self._records_since, {"since": since})).all()
        out: list[tuple[PersonRecord, str, int]] = []
        for row in rows:
            version = int(row.version or 0)
            sealed = is_sealed_record(row.features)
            hit = opened.get(row.record_id) if opened is not None and sealed else None
            if hit is not None and hit[0] == row.features:
                record = hit[1]
            else:
                record = await self._record(row)
            if opened is not None and sealed:
                opened[row.record_id] = (row.features, record, version)
            out.append((record, row.child_id, version))
        return out

    async def erasures_after(self, conn: AsyncConnection, seq: int) -> tuple[list[str], int]:
        """The children erased by audit records after ``seq`` (in commit order), and the
        last such record's seq (``seq`` itself when there is none).

        Read from the audit trail, not from the keys' destruction times: every erasure
        (retention's or by hand, keys destroyed or only leftovers deleted) appends its record
        in the transaction that erases, and the trail's seq follows commit order whatever the
        erasing processes' clocks say.
        """
        rows = (await conn.execute(self._erasures_after, {"seq": seq})).all()
        return [r.child_id for r in rows if r.child_id], (int(rows[-1].seq) if rows else seq)

    async def erasure_mark(self, conn: AsyncConnection) -> int:
        """The audit trail's head seq now: erasures recorded after it are new."""
        return int((await conn.execute(self._trail_head)).scalar_one_or_none() or 0)

    async def load_index(self, model: MatchModel | None = None) -> PersonIndex:
        """Build the in-memory index from every persisted record."""
        index = PersonIndex(model)
        async with self.engine.connect() as conn:
            result = await conn.stream(select(person_records).order_by(person_records.c.record_id))
            async for row in result:
                index.add(await self._record(row), row.child_id)
        return index

    async def birth_dates(self, child_id: str) -> list[date]:
        """The birth dates the child's records give (retention counts from the earliest)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(person_records).where(person_records.c.child_id == child_id)
                )
            ).all()
        found = [(await self._record(row)).birth_date for row in rows]
        return sorted(d for d in found if d is not None)

    async def records_of(self, child_id: str) -> list[str]:
        """The record ids linked to a child."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(person_records.c.record_id)
                .where(person_records.c.child_id == child_id)
                .order_by(person_records.c.record_id)
            )
            return list(rows.scalars())

    # -- reviews ---------------------------------------------------------------------------
    async def queue_review(
        self, record_id: str, provisional_child_id: str, candidate: Candidate, *, now: datetime
    ) -> Review:
        """Queue a possible match for a person to decide; returns the pending review."""
        review = pending_review(record_id, provisional_child_id, candidate, now=now)
        async with self.engine.begin() as conn:
            await self.queue_review_in(conn, review)
        return review

    async def queue_review_in(self, conn: AsyncConnection, review: Review) -> None:
        """Insert a pending review in the caller's transaction."""
        await conn.execute(
            reviews.insert().values(
                review_id=review.review_id,
                record_id=review.record_id,
                provisional_child_id=review.provisional_child_id,
                candidate_child_id=review.candidate_child_id,
                weight=review.weight,
                breakdown=json.dumps(list(review.breakdown)),
                status=review.status.value,
                created_at=review.created_at,
            )
        )

    async def list_reviews(
        self, status: ReviewStatus | None = ReviewStatus.pending, *, limit: int = 100
    ) -> list[Review]:
        """Reviews, oldest first, optionally of one status."""
        query = select(reviews).order_by(reviews.c.created_at, reviews.c.review_id).limit(limit)
        if status is not None:
            query = query.where(reviews.c.status == status.value)
        async with self.engine.connect() as conn:
            return [_review(row) for row in await conn.execute(query)]

    async def get_review(self, review_id: str) -> Review:
        """One review, or ReviewNotFound."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(reviews).where(reviews.c.review_id == review_id))
            ).first()
        if row is None:
            raise ReviewNotFound(review_id)
        return _review(row)

    async def decide_review(
        self, review_id: str, decision: Decision, *, decided_by: str, reason: str, now: datetime
    ) -> tuple[Review, ChildrenMerged | MatchKeptApart]:
        """Record a decision; ``link`` merges the provisional child into the candidate.

        Returns the decided review and the event to publish. Raises ReviewNotFound, or
        ReviewAlreadyDecided when it is not pending (checked in the same transaction).
        """
        status = ReviewStatus.linked if decision is Decision.link else ReviewStatus.kept_apart
        async with self.engine.begin() as conn:
            done = await conn.execute(
                update(reviews)
                .where(reviews.c.review_id == review_id, reviews.c.status == "pending")
                .values(status=status.value, decided_at=now, decided_by=decided_by, reason=reason)
            )
            row = (
                await conn.execute(select(reviews).where(reviews.c.review_id == review_id))
            ).first()
            if row is None:
                raise ReviewNotFound(review_id)
            if done.rowcount != 1:
                raise ReviewAlreadyDecided(review_id)
            review = _review(row)
            if decision is Decision.keep_apart:
                return review, MatchKeptApart(
                    review_id,
                    review.provisional_child_id,
                    review.candidate_child_id,
                    decided_by,
                    reason,
                    now,
                )
            moved = await self._move(
                conn, review.provisional_child_id, review.candidate_child_id, now
            )
            merge = ChildrenMerged(
                merge_id=f"mg-{uuid.uuid4().hex}",
                surviving_child_id=review.candidate_child_id,
                merged_child_id=review.provisional_child_id,
                record_ids=moved,
                review_id=review_id,
                decided_by=decided_by,
                reason=reason,
                merged_at=now,
            )
            await conn.execute(
                merges.insert().values(
                    merge_id=merge.merge_id,
                    surviving_child_id=merge.surviving_child_id,
                    merged_child_id=merge.merged_child_id,
                    record_ids=json.dumps(list(moved)),
                    review_id=review_id,
                    decided_by=decided_by,
                    reason=reason,
                    merged_at=now,
                )
            )
            return review, merge

    async def _move(
        self, conn: Any, from_child: str, to_child: str, now: datetime
    ) -> tuple[str, ...]:
        ids = tuple(
            (
                await conn.execute(
                    select(person_records.c.record_id)
                    .where(person_records.c.child_id == from_child)
                    .order_by(person_records.c.record_id)
                )
            ).scalars()
        )
        await conn.execute(
            update(person_records)
            .where(person_records.c.child_id == from_child)
            .values(child_id=to_child, updated_at=now, version=await self.take_version(conn))
        )
        return ids

    async def undo_merge(
        self, merge_id: str, *, undone_by: str, reason: str, now: datetime
    ) -> MergeUndone:
        """Move a merge's records back to the child they came from; MergeNotFound if none."""
        async with self.engine.begin() as conn:
            done = await conn.execute(
                update(merges)
                .where(merges.c.merge_id == merge_id, merges.c.undone_at.is_(None))
                .values(undone_at=now, undone_by=undone_by, undo_reason=reason)
            )
            if done.rowcount != 1:
                raise MergeNotFound(merge_id)
            row = (await conn.execute(select(merges).where(merges.c.merge_id == merge_id))).one()
            record_ids = tuple(json.loads(row.record_ids))
            if record_ids:
                await conn.execute(
                    update(person_records)
                    .where(person_records.c.record_id.in_(record_ids))
                    .values(
                        child_id=row.merged_child_id,
                        updated_at=now,
                        version=await self.take_version(conn),
                    )
                )
            return MergeUndone(
                merge_id=merge_id,
                restored_child_id=row.merged_child_id,
                from_child_id=row.surviving_child_id,
                record_ids=record_ids,
                undone_by=undone_by,
                reason=reason,
                undone_at=now,
            )

    # -- households ------------------------------------------------------------------------
    async def add_household_links(
        self, links: list[Link], *, source_event_id: str | None, now: datetime
    ) -> None:
        """Persist household links (a link already held is left as it is)."""
        async with self.engine.begin() as conn:
            await self.add_household_links_in(conn, [(x, source_event_id) for x in links], now=now)

    async def add_household_links_in(
        self, conn: AsyncConnection, links: Sequence[tuple[Link, str | None]], *, now: datetime
    ) -> None:
        """Persist household links, each with the event it came from, in the caller's
        transaction (a link already held is left as it is)."""
        if not links:
            return
        first: dict[Link, str | None] = {}
        for link, event_id in links:
            first.setdefault(link, event_id)
        rows = [
            {
                "a": x.a,
                "b": x.b,
                "kind": x.kind.value,
                "source_event_id": event_id,
                "created_at": now,
            }
            for x, event_id in first.items()
        ]
        await conn.execute(self._add_links, rows)

    async def household_around(self, nodes: Iterable[str], *, limit: int = 400) -> list[Link]:
        """Every household link reachable from ``nodes`` through joining links (bounded).

        Address and relationship links are followed; a ``connected`` adult is reported but
        not followed, as ``Households`` treats them. ``limit`` caps the nodes visited so an
        address shared by many (a hostel, a children's home) cannot make a read unbounded.
        """
        seen = set(nodes)
        frontier = sorted(seen)
        found: dict[Link, None] = {}
        async with self.engine.connect() as conn:
            while frontier and len(seen) < limit:
                rows = await conn.execute(
                    select(household_links).where(
                        or_(household_links.c.a.in_(frontier), household_links.c.b.in_(frontier))
                    )
                )
                step: set[str] = set()
                for row in rows:
                    link = Link(row.a, row.b, LinkKind(row.kind))
                    found[link] = None
                    if link.kind is LinkKind.connected:
                        continue
                    step.update(n for n in (link.a, link.b) if n not in seen)
                frontier = sorted(step)[: max(limit - len(seen), 0)]
                seen.update(frontier)
        return list(found)

    async def load_households(self) -> Households:
        """The household graph from every persisted link."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(household_links).order_by(household_links.c.a))
            return Households(Link(r.a, r.b, LinkKind(r.kind)) for r in rows)

    async def forget_record(self, record_id: str) -> None:
        """Delete a person record (erasure of the record it came from)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(person_records).where(person_records.c.record_id == record_id)
            )
