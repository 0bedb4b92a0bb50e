"""What a narrative read decides with, kept per process while the child's entries are unchanged.

Deciding a read needs every entry's clear columns (type, agency, times, sensitivity) and the
child's situation (statuses, involved agencies, milestones), which is read from the opened
involvements and contacts. For a child with thousands of entries that is most of a read's
cost, and it changes only when the projector writes one of the child's entries. So the basis
is kept, per identity group, with the stamp it was read under: the store's narrative version
of each member (bumped in the transaction that changes an entry) and the member's destroyed
key versions (an erasure changes what opens). A read whose stamp differs reads afresh.

Nothing sealed is kept: the entries are held without their texts, the items unopened, and the
situation is the handful of facts the sharing rules match on. The cache is bounded by entries
held, least recently read evicted first.

A read by child id (``read``) also keeps the child's identity group, valid while its members'
versions are unchanged: a merge or un-merge moves the versions of both children it joins.
The destroyed key versions read with the stamp open the page, so an erasure committed while
a read is in flight shows from the next read (ADR 0017).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from weakref import WeakKeyDictionary

from hub.crypto.data_keys import ChildKeyStore
from hub.crypto.narrative import CONTEXT_FAMILIES, destroyed_versions, open_items, with_texts
from hub.domain.chronology import ChildSituation, ChronologyItem, situation_of
from hub.governance.audit import FactColumns, fact_columns
from hub.sharing import EventFacts
from hub.store.repository import IdentityGroup, SqlStore, StoredEntry

__all__ = ["DEFAULT_MAX_ENTRIES", "DecisionBasis", "KeptRead", "NarrativeCache", "cache_for"]

DEFAULT_MAX_ENTRIES = 50_000
"""Entries held across all children (a few hundred bytes each)."""

Stamp = tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]
Destroyed = dict[str, dict[int, datetime]]
"""Per member: destroyed key version -> when it was destroyed."""


@dataclass(frozen=True, slots=True)
class DecisionBasis:
    """A child group's entries without their texts, as unopened items with their facts, and
    the situation read from the opened involvements and contacts."""

    entries: tuple[StoredEntry, ...]
    items: tuple[ChronologyItem, ...]
    facts: tuple[EventFacts, ...]
    situation: ChildSituation
    columns: FactColumns
    """The entries' half of a read's audit record (``fact_columns``), built once."""


@dataclass(frozen=True, slots=True)
class KeptRead:
    """What a narrative read starts from: the identity group, the basis of deciding it, and
    each member's destroyed key versions (with when), read in this read."""

    group: IdentityGroup
    basis: DecisionBasis
    destroyed: Destroyed


def _is_context(entry: StoredEntry) -> bool:
    return entry.family in CONTEXT_FAMILIES


class NarrativeCache:
    """Decision bases by identity group, valid while their stamp is unchanged."""

    def __init__(
        self, store: SqlStore, keys: ChildKeyStore, *, max_entries: int = DEFAULT_MAX_ENTRIES
    ):
        self._store = store
        self._keys = keys
        self._max = max_entries
        self._held: OrderedDict[tuple[str, ...], tuple[Stamp, DecisionBasis]] = OrderedDict()
        self._groups: OrderedDict[str, tuple[IdentityGroup, tuple[int, ...]]] = OrderedDict()
        self._size = 0
        self.hits = 0
        self.misses = 0

    async def _stamp(self, members: tuple[str, ...]) -> tuple[Stamp, Destroyed]:
        versions = await self._store.narrative_stamp(members)
        destroyed = {m: await destroyed_versions(self._keys, m) for m in members}
        return (versions, tuple(tuple(destroyed[m]) for m in members)), destroyed

    async def basis(self, members: Sequence[str]) -> DecisionBasis:
        """The basis of deciding a read of this identity group (the surviving child first)."""
        group = tuple(members)
        stamp, _ = await self._stamp(group)  # before reading: a write after it moves the stamp
        return await self._basis(group, stamp)

    async def read(self, child_id: str) -> KeptRead:
        """The identity group a read of ``child_id`` tells, its basis, and its members'
        destroyed key versions (read with the stamp, for opening the page).

        The group is kept too, valid while its members' versions are unchanged: a merge or
        un-merge moves the versions of both children it joins (``SqlStore.apply_merges``),
        and any merge that changes a group joins one of the group's members.
        """
        held = self._groups.get(child_id)
        if held is not None:
            group, versions = held
            stamp, destroyed = await self._stamp(group.members)
            if stamp[0] == versions:
                self._groups.move_to_end(child_id)
                return KeptRead(group, await self._basis(group.members, stamp), destroyed)
        group = await self._store.identity_group(child_id)
        stamp, destroyed = await self._stamp(group.members)
        # Kept only when resolving again after the stamp gives the same group: a merge
        # committed before the stamp was read is then reflected in it.
        if await self._store.identity_group(child_id) == group:
            self._groups[child_id] = (group, stamp[0])
            self._groups.move_to_end(child_id)
            while len(self._groups) > self._max:
                self._groups.popitem(last=False)
        return KeptRead(group, await self._basis(group.members, stamp), destroyed)

    async def _basis(self, group: tuple[str, ...], stamp: Stamp) -> DecisionBasis:
        held = self._held.get(group)
        if held is not None and held[0] == stamp:
            self._held.move_to_end(group)
            self.hits += 1
            return held[1]
        self.misses += 1
        entries = await self._store.narrative(group, texts=False)
        unopened = await open_items(self._keys, entries, only=lambda _: False)
        # The situation is read from the opened involvements and contacts (clear columns of
        # the rest): only those are fetched and opened, and they are not kept.
        context = [e for e in entries if _is_context(e)]
        opened = await open_items(
            self._keys, await with_texts(self._store, context, lambda _: True), summaries=False
        )
        by_id = {i.event_id: i for i in opened}
        facts = tuple(EventFacts.of(i) for i in unopened)
        basis = DecisionBasis(
            entries=tuple(entries),
            items=tuple(unopened),
            facts=facts,
            situation=situation_of([by_id.get(i.event_id, i) for i in unopened]),
            columns=fact_columns([(i.event_id, f) for i, f in zip(unopened, facts, strict=True)]),
        )
        self._keep(group, stamp, basis)
        return basis

    def clear(self) -> None:
        """Forget every basis and group held (the next read of each child is a cold read)."""
        self._held.clear()
        self._groups.clear()
        self._size = 0

    def _keep(self, group: tuple[str, ...], stamp: Stamp, basis: DecisionBasis) -> None:
        old = self._held.pop(group, None)
        if old is not None:
            self._size -= len(old[1].entries)
        if len(basis.entries) > self._max:
            return
        self._held[group] = (stamp, basis)
        self._size += len(basis.entries)
        while self._size > self._max:
            _, (_, evicted) = self._held.popitem(last=False)
            self._size -= len(evicted.entries)


_CACHES: WeakKeyDictionary[SqlStore, NarrativeCache] = WeakKeyDictionary()


def cache_for(store: SqlStore, keys: ChildKeyStore) -> NarrativeCache:
    """The process's narrative cache over this store (one per store object)."""
    cache = _CACHES.get(store)
    if cache is None:
        cache = _CACHES[store] = NarrativeCache(store, keys)
    return cache
