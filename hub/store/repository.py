"""The SQL store behind the processors and the API: person index, ingest ledger, narrative.

It stores what it is given: the person index holds keyed identifier digests and narrative
text arrives sealed (``hub.crypto``); the store itself never sees a key.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import Select, and_, bindparam, delete, func, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.domain.identity import LinkDecision, LinkKey
from hub.domain.narrative import EntryStatus, NarrativeEntry
from hub.store.reading import reads
from hub.store.schema import (
    child_identifiers,
    children,
    dlq_redrives,
    ingested_events,
    narrative_entries,
    narrative_merges,
    narrative_versions,
    projection_positions,
)
from hub.store.times import as_utc

__all__ = ["IdentityGroup", "MergeChange", "PositionedEntry", "SqlStore", "StoredEntry"]

_T = TypeVar("_T")
_CHUNK = 400  # rows per IN (...) list; stays under SQLite's bound-parameter limit
_TEXT_COLUMNS = frozenset({"summary", "payload"})


@dataclass(frozen=True, slots=True)
class PositionedEntry:
    """A narrative entry with the log position it came from (``erased_at``: its key was gone)."""

    entry: NarrativeEntry
    topic: str
    partition: int
    offset: int
    erased_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MergeChange:
    """A merge (``undone=False``) or its reversal, as the narrative follows it from the log."""

    merge_id: str
    surviving_child_id: str
    merged_child_id: str
    at: datetime
    undone: bool = False


@dataclass(frozen=True, slots=True)
class IdentityGroup:
    """The child a story is told for and every child merged into it (itself first)."""

    child_id: str
    members: tuple[str, ...]

    @property
    def merged_from(self) -> tuple[str, ...]:
        """The children merged into this one."""
        return self.members[1:]


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """A narrative entry as read back from the store (``summary``/``payload`` as stored)."""

    event_id: str
    child_id: str
    event_type: str
    family: str
    occurred_at: datetime
    recorded_at: datetime
    agency_id: str
    agency_kind: str
    summary: str
    sensitivity: tuple[str, ...]
    supersedes: str | None
    status: str
    superseded_by: str | None
    payload: dict[str, object]
    erased_at: datetime | None = None

    def with_text(self, summary: str, payload: dict[str, object]) -> StoredEntry:
        """This entry with its stored texts read in (``dataclasses.replace`` without its
        per-field checks: a read makes hundreds)."""
        return StoredEntry(
            self.event_id,
            self.child_id,
            self.event_type,
            self.family,
            self.occurred_at,
            self.recorded_at,
            self.agency_id,
            self.agency_kind,
            summary,
            self.sensitivity,
            self.supersedes,
            self.status,
            self.superseded_by,
            payload,
            self.erased_at,
        )


_TEXTS_OF = select(
    narrative_entries.c.event_id, narrative_entries.c.summary, narrative_entries.c.payload
).where(narrative_entries.c.event_id.in_(bindparam("ids", expanding=True)))
"""Stored texts of entries by id (built once: a read runs it for every page)."""

_STORY_ORDER = (
    narrative_entries.c.occurred_at,
    narrative_entries.c.recorded_at,
    narrative_entries.c.event_id,
)
"""The order a story is told in: when things happened, then when recorded, then id."""

_OF_KINDS = (
    select(narrative_entries)
    .where(
        narrative_entries.c.child_id.in_(bindparam("ids", expanding=True)),
        narrative_entries.c.status.in_(sorted(EntryStatus.SHOWN)),
        or_(
            narrative_entries.c.family.in_(bindparam("families", expanding=True)),
            narrative_entries.c.agency_kind.in_(bindparam("kinds", expanding=True)),
        ),
    )
    .order_by(*_STORY_ORDER)
)
"""Children's shown entries of some families or agency kinds (``narrative_of_kinds``)."""

_POSITIONS = select(
    projection_positions.c.topic,
    projection_positions.c.partition,
    projection_positions.c.next_offset,
).where(projection_positions.c.projection == bindparam("projection"))

_SUPERSEDING = select(
    narrative_entries.c.event_id, narrative_entries.c.supersedes, narrative_entries.c.status
).where(narrative_entries.c.supersedes.in_(bindparam("ids", expanding=True)))
"""Stored entries that supersede any of these ids (corrections that arrived first)."""


_KNOWN_CHILDREN = 100_000
"""Children ``SqlStore.child_exists`` remembers having seen (about 10 MB at most)."""


def _chunks(items: Sequence[_T], size: int = _CHUNK) -> Iterable[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqlStore:
    """Repositories over one async engine; every write method runs in the caller's transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._known: OrderedDict[str, None] = OrderedDict()  # children seen to exist
        # The projector's per-batch statements, built once (their values are parameters):
        # a statement object reused keeps its compiled form's cache key.
        self._store_entries = (
            self._insert(narrative_entries)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(narrative_entries.c.event_id)
        )
        versions = self._insert(narrative_versions)
        self._bump = versions.on_conflict_do_update(
            index_elements=["child_id"], set_={"version": narrative_versions.c.version + 1}
        )
        positions = self._insert(projection_positions)
        self._save = positions.on_conflict_do_update(
            index_elements=["projection", "topic", "partition"],
            set_={"next_offset": positions.excluded.next_offset},
        )

    # -- health ---------------------------------------------------------------------------
    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        async with self.engine.connect() as conn:
            await conn.execute(select(1))

    # -- person index ---------------------------------------------------------------------
    async def known_links(
        self, conn: AsyncConnection, keys: Iterable[LinkKey]
    ) -> dict[LinkKey, str]:
        """Which of these keys already link to a child, and to which."""
        wanted = sorted(set(keys))
        found: dict[LinkKey, str] = {}
        for chunk in _chunks(wanted):
            rows = await conn.execute(
                select(
                    child_identifiers.c.system,
                    child_identifiers.c.value,
                    child_identifiers.c.child_id,
                ).where(
                    tuple_(child_identifiers.c.system, child_identifiers.c.value).in_(
                        [(k.system, k.value) for k in chunk]
                    )
                )
            )
            found.update({LinkKey(r.system, r.value): r.child_id for r in rows})
        return found

    async def apply_links(
        self, conn: AsyncConnection, decisions: Sequence[LinkDecision], now: datetime
    ) -> None:
        """Create the new children and attach every decision's keys, in two statements."""
        new_children = [
            {"child_id": d.child_id, "created_at": now} for d in decisions if d.is_new_child
        ]
        rows = [
            {"system": k.system, "value": k.value, "child_id": d.child_id, "linked_at": now}
            for d in decisions
            for k in d.attach
        ]
        if new_children:
            await conn.execute(children.insert(), new_children)
        if rows:
            await conn.execute(child_identifiers.insert(), rows)

    async def children_by_identifier(self, system: str, value: str) -> list[str]:
        """Canonical child ids a stored key (system, digest) links to (a list for merges)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(child_identifiers.c.child_id).where(
                    and_(child_identifiers.c.system == system, child_identifiers.c.value == value)
                )
            )
            return sorted({r.child_id for r in rows})

    async def child_exists(self, child_id: str) -> bool:
        """Whether the person index knows this child.

        A child once known stays known (children rows are never deleted: erasure destroys
        keys), so the children seen are remembered (the most recent ``_KNOWN_CHILDREN``)."""
        if child_id in self._known:
            self._known.move_to_end(child_id)
            return True
        async with reads(self.engine) as conn:
            row = await conn.execute(
                select(children.c.child_id).where(children.c.child_id == child_id)
            )
            found = row.first() is not None
        if found:
            self._known[child_id] = None
            if len(self._known) > _KNOWN_CHILDREN:
                self._known.popitem(last=False)
        return found

    # -- ingest ledger --------------------------------------------------------------------
    async def ingested_hashes(
        self, conn: AsyncConnection, event_ids: Iterable[str]
    ) -> dict[str, str]:
        """Content hashes of the event ids already published to hub.events."""
        ids = sorted(set(event_ids))
        found: dict[str, str] = {}
        for chunk in _chunks(ids):
            rows = await conn.execute(
                select(ingested_events.c.event_id, ingested_events.c.content_hash).where(
                    ingested_events.c.event_id.in_(chunk)
                )
            )
            found.update({r.event_id: r.content_hash for r in rows})
        return found

    async def record_ingested(
        self, conn: AsyncConnection, rows: Sequence[tuple[str, str, str]], now: datetime
    ) -> None:
        """Remember (event id, content hash, child id) for events now on hub.events."""
        if not rows:
            return
        stmt = self._insert(ingested_events).on_conflict_do_nothing(index_elements=["event_id"])
        await conn.execute(
            stmt,
            [
                {"event_id": e, "content_hash": h, "child_id": c, "ingested_at": now}
                for e, h, c in rows
            ],
        )

    # -- narrative projection -------------------------------------------------------------
    async def positions(self, conn: AsyncConnection, projection: str) -> dict[tuple[str, int], int]:
        """Next offset to apply per (topic, partition) for a projection."""
        rows = await conn.execute(_POSITIONS, {"projection": projection})
        return {(r.topic, r.partition): r.next_offset for r in rows}

    async def apply_entries(
        self,
        conn: AsyncConnection,
        projection: str,
        items: Sequence[PositionedEntry],
        *,
        now: datetime,
        consumed: Sequence[tuple[str, int, int]] = (),
    ) -> int:
        """Store entries not yet applied, apply corrections/retractions, advance positions.

        ``consumed`` lists (topic, partition, offset) of records handled without an entry
        (dead-lettered), so positions move past them too. Returns how many entries were newly
        stored. Safe to call again with the same items.
        """
        done = await self.positions(conn, projection)
        fresh = [i for i in items if i.offset >= done.get((i.topic, i.partition), 0)]
        new_positions: dict[tuple[str, int], int] = {}
        for topic, partition, offset in [
            *consumed,
            *((i.topic, i.partition, i.offset) for i in fresh),
        ]:
            key = (topic, partition)
            if offset >= done.get(key, 0):
                new_positions[key] = max(new_positions.get(key, 0), offset + 1)
        if new_positions:
            await self._save_positions(conn, projection, new_positions)
        if not fresh:
            return 0
        rows = [
            {
                "event_id": i.entry.event_id,
                "child_id": i.entry.child_id,
                "event_type": i.entry.event_type,
                "family": i.entry.family,
                "occurred_at": i.entry.occurred_at,
                "recorded_at": i.entry.recorded_at,
                "agency_id": i.entry.agency_id,
                "agency_kind": i.entry.agency_kind,
                "summary": i.entry.summary,
                "sensitivity": json.dumps(list(i.entry.sensitivity)),
                "supersedes": i.entry.supersedes,
                "status": i.entry.status,
                "superseded_by": None,
                "payload": i.entry.payload,
                "log_partition": i.partition,
                "log_offset": i.offset,
                "stored_at": now,
                "erased_at": i.erased_at,
            }
            for i in fresh
        ]
        # RETURNING, not rowcount: a batch insert's rowcount is not reliable on asyncpg.
        result = await conn.execute(self._store_entries, rows)
        stored = len(result.all())
        touched = {i.entry.child_id for i in fresh}
        touched |= await self._apply_supersessions(conn, [i.entry for i in fresh])
        await self._bump_versions(conn, touched)
        return stored

    async def _bump_versions(self, conn: AsyncConnection, child_ids: Iterable[str]) -> None:
        """Move the narrative version of each child whose entries this transaction changed."""
        ids = sorted(set(child_ids))
        if not ids:
            return
        await conn.execute(self._bump, [{"child_id": c, "version": 1} for c in ids])

    async def narrative_stamp(self, child_ids: Sequence[str]) -> tuple[int, ...]:
        """The narrative version of each child, in order (0 for a child never written):
        equal stamps mean the children's stored entries are unchanged."""
        async with reads(self.engine) as conn:
            rows = await conn.execute(
                select(narrative_versions.c.child_id, narrative_versions.c.version).where(
                    narrative_versions.c.child_id.in_(list(child_ids))
                )
            )
            found = {r.child_id: int(r.version) for r in rows}
        return tuple(found.get(c, 0) for c in child_ids)

    async def _save_positions(
        self, conn: AsyncConnection, projection: str, positions: dict[tuple[str, int], int]
    ) -> None:
        await conn.execute(
            self._save,
            [
                {"projection": projection, "topic": t, "partition": p, "next_offset": o}
                for (t, p), o in sorted(positions.items())
            ],
        )

    async def _apply_supersessions(
        self, conn: AsyncConnection, entries: Sequence[NarrativeEntry]
    ) -> set[str]:
        """Mark what corrections and retractions replace, in whichever order they arrived;
        returns the children whose entries were marked."""
        touched: set[str] = set()
        for entry in entries:
            if entry.supersedes:
                touched |= await self._supersede(
                    conn, entry.supersedes, entry.event_id, entry.status
                )
        # A correction or retraction stored before the record it supersedes (a late record).
        ids = [e.event_id for e in entries]
        for chunk in _chunks(ids):
            earlier = await conn.execute(_SUPERSEDING, {"ids": list(chunk)})
            for row in earlier.all():
                touched |= await self._supersede(conn, row.supersedes, row.event_id, row.status)
        return touched

    @staticmethod
    async def _supersede(conn: AsyncConnection, target: str, by: str, by_status: str) -> set[str]:
        status = EntryStatus.RETRACTED if by_status == EntryStatus.NOTICE else EntryStatus.CORRECTED
        marked = await conn.execute(
            update(narrative_entries)
            .where(narrative_entries.c.event_id == target)
            .values(status=status, superseded_by=by)
            .returning(narrative_entries.c.child_id)
        )
        return set(marked.scalars())

    async def narrative(
        self,
        child_id: str | Sequence[str],
        *,
        include_superseded: bool = False,
        texts: bool = True,
    ) -> list[StoredEntry]:
        """A child's entries in the order things happened (ties by when recorded, then id).

        Given several ids (an identity group), their entries are read as one story; each
        entry keeps the child id it was linked to (and sealed under). With ``texts=False``
        the sealed ``summary`` and ``payload`` are not read (``""`` and ``{}``): the clear
        columns are all a decision needs, and ``entry_texts`` fetches the texts of the
        entries a reader will be shown.
        """
        ids = [child_id] if isinstance(child_id, str) else list(child_id)
        columns = [c for c in narrative_entries.c if texts or c.name not in _TEXT_COLUMNS]
        query = select(*columns).where(narrative_entries.c.child_id.in_(ids))
        if not include_superseded:
            query = query.where(narrative_entries.c.status.in_(sorted(EntryStatus.SHOWN)))
        return await self._entries(query.order_by(*_STORY_ORDER), {}, texts=texts)

    async def shown_events(self, event_ids: Sequence[str]) -> set[str]:
        """Those of these events stored and still shown (not corrected, retracted or a
        retraction notice)."""
        if not event_ids:
            return set()
        c = narrative_entries.c
        query = select(c.event_id).where(
            c.event_id.in_(sorted(set(event_ids))), c.status.in_(sorted(EntryStatus.SHOWN))
        )
        async with self.engine.connect() as conn:
            return set((await conn.execute(query)).scalars())

    async def narrative_of_kinds(
        self,
        child_ids: Sequence[str],
        *,
        families: Iterable[str],
        agency_kinds: Iterable[str],
    ) -> list[StoredEntry]:
        """The shown entries of these children that are of one of ``families`` or come from
        an agency of one of ``agency_kinds``, with their texts, in story order.

        The few entries a child's situation is read from, without the many others: a
        caller that needs only the situation reads these instead of the whole narrative.
        """
        params = {"ids": list(child_ids), "families": list(families), "kinds": list(agency_kinds)}
        return await self._entries(_OF_KINDS, params, texts=True)

    async def _entries(
        self, query: Select[Any], params: dict[str, Any], *, texts: bool
    ) -> list[StoredEntry]:
        """The rows of a ``narrative_entries`` query as stored entries (texts: read too)."""
        tags: dict[str, tuple[str, ...]] = {}  # a child's entries share few sensitivity sets
        async with reads(self.engine) as conn:
            rows = await conn.execute(query, params)
            return [
                StoredEntry(
                    event_id=r.event_id,
                    child_id=r.child_id,
                    event_type=r.event_type,
                    family=r.family,
                    occurred_at=as_utc(r.occurred_at),
                    recorded_at=as_utc(r.recorded_at),
                    agency_id=r.agency_id,
                    agency_kind=r.agency_kind,
                    summary=r.summary if texts else "",
                    sensitivity=tags.get(r.sensitivity)
                    or tags.setdefault(r.sensitivity, tuple(json.loads(r.sensitivity))),
                    supersedes=r.supersedes,
                    status=r.status,
                    superseded_by=r.superseded_by,
                    payload=json.loads(r.payload) if texts else {},
                    erased_at=None if r.erased_at is None else as_utc(r.erased_at),
                )
                for r in rows
            ]

    async def entry_texts(
        self, event_ids: Iterable[str]
    ) -> dict[str, tuple[str, dict[str, object]]]:
        """The stored (sealed) ``summary`` and ``payload`` of these entries, by event id."""
        found: dict[str, tuple[str, dict[str, object]]] = {}
        async with reads(self.engine) as conn:
            for chunk in _chunks(sorted(set(event_ids))):
                rows = await conn.execute(_TEXTS_OF, {"ids": list(chunk)})
                for event_id, summary, payload in rows:
                    found[event_id] = (summary, orjson.loads(payload))
        return found

    # -- merges the narrative follows -------------------------------------------------------
    async def apply_merges(self, conn: AsyncConnection, changes: Sequence[MergeChange]) -> None:
        """Record merges and un-merges from the log, in order (replaying one is harmless).

        Both children's narrative versions move: whoever holds an identity group validated
        by its members' versions sees that the group may have changed."""
        await self._bump_versions(
            conn, [c for m in changes for c in (m.surviving_child_id, m.merged_child_id)]
        )
        for change in changes:
            if change.undone:
                done = await conn.execute(
                    update(narrative_merges)
                    .where(narrative_merges.c.merge_id == change.merge_id)
                    .values(undone_at=func.coalesce(narrative_merges.c.undone_at, change.at))
                )
                if done.rowcount:
                    continue
            # An un-merge seen before its merge is stored as already undone, so the merge
            # arriving later changes nothing.
            await conn.execute(
                self._insert(narrative_merges)
                .values(
                    merge_id=change.merge_id,
                    surviving_child_id=change.surviving_child_id,
                    merged_child_id=change.merged_child_id,
                    merged_at=change.at,
                    undone_at=change.at if change.undone else None,
                )
                .on_conflict_do_nothing(index_elements=["merge_id"])
            )

    async def identity_group(self, child_id: str) -> IdentityGroup:
        """The child whose story includes ``child_id``, and every child merged into that one.

        Follows active merges up to the surviving child, then down to everything merged into
        it (merges of merges included). Bounded, so a cycle written by mistake cannot hang.
        """
        active = narrative_merges.c.undone_at.is_(None)
        async with reads(self.engine) as conn:
            top = child_id
            for _ in range(32):
                above = (
                    await conn.execute(
                        select(narrative_merges.c.surviving_child_id)
                        .where(active, narrative_merges.c.merged_child_id == top)
                        .order_by(narrative_merges.c.merged_at)
                        .limit(1)
                    )
                ).scalar()
                if above is None or above == child_id:
                    break
                top = above
            members = [top]
            frontier = [top]
            while frontier and len(members) < 256:
                rows = await conn.execute(
                    select(narrative_merges.c.merged_child_id)
                    .where(active, narrative_merges.c.surviving_child_id.in_(frontier))
                    .order_by(narrative_merges.c.merged_at, narrative_merges.c.merge_id)
                )
                frontier = [c for c in rows.scalars() if c not in members]
                members.extend(frontier)
        return IdentityGroup(top, tuple(members))

    async def reset_projection(self, projection: str) -> None:
        """Forget a projection's rows and positions so it can be rebuilt from the log."""
        async with self.engine.begin() as conn:
            await conn.execute(delete(narrative_entries))
            await conn.execute(delete(narrative_merges))
            # Not deleted: a reader's "unchanged" must never match a rebuilt narrative.
            await conn.execute(
                update(narrative_versions).values(version=narrative_versions.c.version + 1)
            )
            await conn.execute(
                delete(projection_positions).where(projection_positions.c.projection == projection)
            )

    async def count_entries(self) -> int:
        """How many narrative entries are stored (any status)."""
        async with self.engine.connect() as conn:
            return int(
                (
                    await conn.execute(select(func.count()).select_from(narrative_entries))
                ).scalar_one()
            )

    # -- dead-letter redrives ---------------------------------------------------------------
    async def redriven(self, dlq_ids: Iterable[str]) -> set[str]:
        """Which of these dead letters were already sent back through ingest."""
        ids = sorted(set(dlq_ids))
        found: set[str] = set()
        async with self.engine.connect() as conn:
            for chunk in _chunks(ids):
                rows = await conn.execute(
                    select(dlq_redrives.c.dlq_id).where(dlq_redrives.c.dlq_id.in_(chunk))
                )
                found.update(r.dlq_id for r in rows)
        return found

    async def record_redrive(self, dlq_id: str, target_topic: str, now: datetime) -> None:
        """Remember that a dead letter was sent back through ingest."""
        async with self.engine.begin() as conn:
            stmt = self._insert(dlq_redrives).on_conflict_do_nothing(index_elements=["dlq_id"])
            await conn.execute(
                stmt, [{"dlq_id": dlq_id, "redriven_at": now, "target_topic": target_topic}]
            )
