"""The narrative read's decision basis is kept while the child's stored entries are unchanged,
read afresh the moment they change or a key is destroyed, holds nothing sealed, and is bounded."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts import parse_envelope
from contracts.examples import example_envelope
from hub.crypto.narrative import seal_entry
from hub.crypto.runtime import HubSecurity
from hub.domain.narrative import entry_for
from hub.narrative_cache import NarrativeCache
from hub.store.repository import IdentityGroup, MergeChange, PositionedEntry, SqlStore

from .conftest import NOW

pytestmark = pytest.mark.unit

CHILD, OTHER = "ch-cache-1", "ch-cache-2"
_offsets = iter(range(1_000_000))


async def store_event(
    store: SqlStore, security: HubSecurity, child: str, event_id: str, **overrides: object
) -> None:
    """Project one example event for ``child``, sealed as the projector seals it."""
    envelope = parse_envelope(example_envelope(id=event_id, **overrides))
    key = (await security.keys.current_keys([child]))[child]
    entry = seal_entry(key, entry_for(envelope, child))
    async with store.engine.begin() as conn:
        await store.apply_entries(
            conn, "narrative", [PositionedEntry(entry, "t.hub.events", 0, next(_offsets))], now=NOW
        )


@pytest.fixture
async def cache(store: SqlStore, security: HubSecurity) -> NarrativeCache:
    await store_event(store, security, CHILD, "northshire-police:c-1")
    await store_event(store, security, CHILD, "northshire-cs:plan-1", type="involvement.started")
    await store_event(store, security, OTHER, "northshire-police:o-1")
    return NarrativeCache(store, security.keys)


class TestKept:
    """An unchanged child is read once."""

    async def test_second_read_is_the_kept_basis(self, cache: NarrativeCache) -> None:
        first = await cache.basis([CHILD])
        again = await cache.basis([CHILD])
        assert (again is first, cache.hits, cache.misses) == (True, 1, 1)
        assert [e.event_id for e in first.entries] == [
            "northshire-cs:plan-1",
            "northshire-police:c-1",
        ]
        assert first.situation.statuses == frozenset({"cp_plan"})

    async def test_nothing_sealed_or_opened_is_kept(self, cache: NarrativeCache) -> None:
        basis = await cache.basis([CHILD])
        assert {(e.summary, str(e.payload)) for e in basis.entries} == {("", "{}")}
        assert {(i.summary, str(i.data)) for i in basis.items} == {("", "{}")}

    async def test_another_childs_write_keeps_it(
        self, cache: NarrativeCache, store: SqlStore, security: HubSecurity
    ) -> None:
        first = await cache.basis([CHILD])
        await store_event(store, security, OTHER, "northshire-police:o-2")
        assert await cache.basis([CHILD]) is first


class TestReadAfresh:
    """Any change to what is stored for the child, or to what opens, is seen at once."""

    async def test_a_new_entry(
        self, cache: NarrativeCache, store: SqlStore, security: HubSecurity
    ) -> None:
        await cache.basis([CHILD])
        await store_event(store, security, CHILD, "northshire-police:c-2")
        basis = await cache.basis([CHILD])
        assert (len(basis.entries), cache.misses) == (3, 2)

    async def test_a_retraction_of_an_entry(
        self, cache: NarrativeCache, store: SqlStore, security: HubSecurity
    ) -> None:
        """The retracted entry leaves the basis (a retraction is not an entry of its own)."""
        await cache.basis([CHILD])
        await store_event(
            store,
            security,
            CHILD,
            "northshire-police:r-1",
            type="event.retracted",
            supersedes="northshire-police:c-1",
        )
        ids = {e.event_id for e in (await cache.basis([CHILD])).entries}
        assert ids == {"northshire-cs:plan-1"}

    async def test_a_destroyed_key(self, cache: NarrativeCache, security: HubSecurity) -> None:
        """After erasure the situation is no longer read from the plan that cannot open."""
        assert (await cache.basis([CHILD])).situation.statuses == frozenset({"cp_plan"})
        await security.keys.destroy_child_key(CHILD)
        basis = await cache.basis([CHILD])
        assert (basis.situation.statuses, cache.misses) == (frozenset(), 2)

    async def test_a_merged_group_is_its_own_basis(self, cache: NarrativeCache) -> None:
        alone = await cache.basis([CHILD])
        merged = await cache.basis([CHILD, OTHER])
        assert (merged is alone, len(merged.entries)) == (False, 3)


class Counting:
    """Counts how often the store resolves an identity group."""

    def __init__(self, store: SqlStore) -> None:
        self.calls = 0
        self._resolve = store.identity_group
        store.identity_group = self  # type: ignore[method-assign]

    async def __call__(self, child_id: str) -> IdentityGroup:
        self.calls += 1
        return await self._resolve(child_id)


async def merge(
    store: SqlStore, merge_id: str, into: str, merged: str, *, undo: bool = False
) -> None:
    async with store.engine.begin() as conn:
        await store.apply_merges(conn, [MergeChange(merge_id, into, merged, NOW, undone=undo)])


class TestKeptGroup:
    """A read's identity group is kept while its members are unchanged, and a merge or
    un-merge touching it is seen at once."""

    async def test_kept_while_nothing_changes(self, cache: NarrativeCache, store: SqlStore) -> None:
        counting = Counting(store)
        first = await cache.read(CHILD)
        again = await cache.read(CHILD)
        assert (again.group, again.basis is first.basis) == (IdentityGroup(CHILD, (CHILD,)), True)
        assert counting.calls == 2  # resolved, then again to confirm; not on the second read

    async def test_a_merge_into_the_child_is_seen(
        self, cache: NarrativeCache, store: SqlStore
    ) -> None:
        await cache.read(CHILD)
        await merge(store, "m-1", CHILD, OTHER)
        read = await cache.read(CHILD)
        assert read.group == IdentityGroup(CHILD, (CHILD, OTHER))
        assert len(read.basis.entries) == 3

    async def test_the_child_merged_away_reads_as_the_survivor(
        self, cache: NarrativeCache, store: SqlStore
    ) -> None:
        await cache.read(OTHER)
        await merge(store, "m-1", CHILD, OTHER)
        assert (await cache.read(OTHER)).group == IdentityGroup(CHILD, (CHILD, OTHER))

    async def test_an_unmerge_is_seen(self, cache: NarrativeCache, store: SqlStore) -> None:
        await merge(store, "m-1", CHILD, OTHER)
        assert (await cache.read(OTHER)).group.child_id == CHILD
        await merge(store, "m-1", CHILD, OTHER, undo=True)
        assert (await cache.read(OTHER)).group == IdentityGroup(OTHER, (OTHER,))
        assert (await cache.read(CHILD)).group == IdentityGroup(CHILD, (CHILD,))

    async def test_a_merge_of_the_survivor_into_a_third_child_is_seen(
        self, cache: NarrativeCache, store: SqlStore, security: HubSecurity
    ) -> None:
        await store_event(store, security, "ch-cache-3", "northshire-police:t-1")
        await merge(store, "m-1", CHILD, OTHER)
        assert (await cache.read(OTHER)).group.child_id == CHILD
        await merge(store, "m-2", "ch-cache-3", CHILD)
        read = await cache.read(OTHER)
        assert read.group == IdentityGroup("ch-cache-3", ("ch-cache-3", CHILD, OTHER))

    async def test_destroyed_key_versions_come_with_the_read(
        self, cache: NarrativeCache, security: HubSecurity
    ) -> None:
        assert (await cache.read(CHILD)).destroyed == {CHILD: {}}
        await security.keys.destroy_child_key(CHILD)
        destroyed = (await cache.read(CHILD)).destroyed[CHILD]
        assert list(destroyed) == [1]


class TestBounded:
    """Least recently read children go first once the entries held pass the bound."""

    async def test_evicts_the_least_recently_read(
        self, store: SqlStore, security: HubSecurity
    ) -> None:
        for n in range(3):
            await store_event(store, security, f"ch-b{n}", f"northshire-police:b-{n}")
        cache = NarrativeCache(store, security.keys, max_entries=2)
        first = await cache.basis(["ch-b0"])
        await cache.basis(["ch-b1"])
        assert await cache.basis(["ch-b0"]) is first  # read again: now most recent
        await cache.basis(["ch-b2"])  # evicts ch-b1
        assert await cache.basis(["ch-b0"]) is first
        misses = cache.misses
        await cache.basis(["ch-b1"])
        assert cache.misses == misses + 1

    async def test_a_child_larger_than_the_bound_is_not_kept(
        self, store: SqlStore, security: HubSecurity
    ) -> None:
        for n in range(3):
            await store_event(
                store,
                security,
                "ch-big",
                f"northshire-police:g-{n}",
                time=(NOW - timedelta(days=n)).isoformat(),
            )
        cache = NarrativeCache(store, security.keys, max_entries=2)
        first = await cache.basis(["ch-big"])
        assert (await cache.basis(["ch-big"]) is first, len(first.entries)) == (False, 3)
