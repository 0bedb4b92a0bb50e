"""The child data key store on SQLite and PostgreSQL: creation, caching, rotation, erasure."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text

from contracts.examples import example_envelope, valid_nhs_number
from hub.crypto.data_keys import (
    ChildKeyStore,
    DataKeyRecord,
    KeyDestroyed,
    UnknownDataKey,
)
from hub.crypto.encryption import FieldCipher, FieldDecryptionFailed, sealed_paths
from hub.crypto.keyring import LocalFileKeyProvider, WrappedKey
from hub.crypto.tables import child_data_keys
from hub.store.db import create_engine, migrate
from tests.support.databases import BACKENDS, fresh_database_url

pytestmark = pytest.mark.integration

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class SpyProvider(LocalFileKeyProvider):
    """The local provider, remembering every data key it unwrapped (to search storage for)."""

    def __init__(self, keys_dir: Path) -> None:
        super().__init__(keys_dir)
        self.seen: set[bytes] = set()
        self.unwraps = 0

    async def wrap(self, data_key: bytes, **kw: Any) -> WrappedKey:
        self.seen.add(data_key)
        return await super().wrap(data_key, **kw)

    async def unwrap(self, wrapped: WrappedKey, *, context: bytes) -> bytes:
        self.unwraps += 1
        return await super().unwrap(wrapped, context=context)


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=BACKENDS)
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    url = await fresh_database_url(request.param, tmp_path)
    engine = create_engine(url)
    await migrate(engine)
    provider = SpyProvider(tmp_path / "keys")
    ticker = Ticker()
    store = ChildKeyStore(
        engine, provider, clock=lambda: NOW, cache_size=3, cache_ttl_seconds=60, monotonic=ticker
    )
    try:
        yield {
            "engine": engine,
            "provider": provider,
            "store": store,
            "ticker": ticker,
            "tmp": tmp_path,
            "backend": request.param,
        }
    finally:
        await engine.dispose()


def fresh_store(env: dict[str, Any]) -> ChildKeyStore:
    """Another process's view: same database and key files, empty cache."""
    return ChildKeyStore(
        env["engine"], LocalFileKeyProvider(env["tmp"] / "keys"), clock=lambda: NOW
    )


async def raw_rows(env: dict[str, Any]) -> list[tuple[Any, ...]]:
    async with env["engine"].connect() as conn:
        rows = await conn.execute(select(child_data_keys).order_by("child_id", "key_version"))
        return [tuple(r) for r in rows]


class TestCreation:
    """A child's first key is created on first use and then found again."""

    async def test_first_use_creates_version_1(self, env: dict[str, Any]) -> None:
        """One wrapped row per child; the same key comes back to another process."""
        store: ChildKeyStore = env["store"]
        first = await store.current_keys(["ch-1", "ch-2", "ch-1"])
        assert sorted((k.child_id, k.version) for k in first.values()) == [("ch-1", 1), ("ch-2", 1)]
        assert await store.key_records("ch-1") == [DataKeyRecord("ch-1", 1, "kek-0001", NOW, None)]
        cipher = FieldCipher(store)
        sealed = await cipher.seal_envelope("ch-1", example_envelope())
        assert (
            await FieldCipher(fresh_store(env)).open_envelope("ch-1", sealed) == example_envelope()
        )

    async def test_concurrent_first_use_agrees_on_one_key(self, env: dict[str, Any]) -> None:
        """Two stores creating the same child's key at once end with one key both use."""
        if env["backend"] == "sqlite":
            pytest.skip("SQLite has one writer per file; the embedded hub has one process")
        a, b = fresh_store(env), fresh_store(env)
        ka, kb = await asyncio.gather(a.current_keys(["ch-9"]), b.current_keys(["ch-9"]))
        sealed = await FieldCipher(a).seal_envelope("ch-9", example_envelope())
        assert await FieldCipher(b).open_envelope("ch-9", sealed) == example_envelope()
        assert len(await raw_rows(env)) == 1
        assert ka["ch-9"].version == kb["ch-9"].version == 1

    async def test_a_batch_of_new_children_is_created_in_two_statements(
        self, env: dict[str, Any]
    ) -> None:
        """Fifty new children: one insert and one select for all of their keys (plus the
        lookup of existing keys), and each key opens what it sealed in another process."""
        store: ChildKeyStore = env["store"]
        ids = [f"ch-batch-{n:02d}" for n in range(50)]
        statements: list[str] = []
        engine = store.engine.sync_engine
        listener = lambda *a: statements.append(a[2].split()[0])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            keys = await store.current_keys(ids)
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        assert statements == ["SELECT", "INSERT", "SELECT"]
        assert sorted(keys) == ids and {k.version for k in keys.values()} == {1}
        assert len(await raw_rows(env)) == 50
        other = fresh_store(env)
        for child in (ids[0], ids[-1]):
            sealed = await FieldCipher(store).seal_envelope(child, example_envelope())
            assert await FieldCipher(other).open_envelope(child, sealed) == example_envelope()

    async def test_unknown_version(self, env: dict[str, Any]) -> None:
        """Asking for a version never stored is UnknownDataKey, not an erasure."""
        with pytest.raises(UnknownDataKey, match="child ch-1 has no data key version 4"):
            await env["store"].data_key("ch-1", 4)


class TestNothingInClear:
    """No plaintext key or sensitive value is ever written to the store."""

    async def test_stored_bytes_hold_no_key_and_no_plaintext(self, env: dict[str, Any]) -> None:
        """The raw table (and, on SQLite, the database files) hold neither keys nor values."""
        store: ChildKeyStore = env["store"]
        sealed = await FieldCipher(store).seal_envelope("ch-1", example_envelope())
        await store.rotate_child_key("ch-1")
        keys = env["provider"].seen
        assert len(keys) == 2
        dump = repr(await raw_rows(env)).encode()
        if env["backend"] == "sqlite":
            dump += b"".join(p.read_bytes() for p in env["tmp"].glob("hub.db*"))
        assert [k for k in keys if k in dump] == []
        sealed_text = json.dumps(sealed).encode()
        for plain in (b"Ruby", b"Example Street", valid_nhs_number(0).encode(), b"Officers"):
            assert plain not in sealed_text and plain not in dump


class TestCache:
    """Unwrapped keys are cached, bounded and for a limited time."""

    async def test_lru_bound_and_time_limit(self, env: dict[str, Any]) -> None:
        """At most 3 keys; a cached key is not unwrapped again until its time is up."""
        store: ChildKeyStore = env["store"]
        await store.current_keys(["a", "b", "c", "d"])
        assert store.cached == 3
        provider: SpyProvider = env["provider"]
        before = provider.unwraps
        await store.data_key("d", 1)
        assert provider.unwraps == before
        await store.data_key("a", 1)  # evicted as least recently used
        assert provider.unwraps == before + 1
        env["ticker"].now = 61.0
        await store.data_key("a", 1)
        assert provider.unwraps == before + 2

    async def test_keys_met_in_a_callers_transaction_are_not_cached(
        self, env: dict[str, Any]
    ) -> None:
        """A rolled-back creation leaves no key behind, in the store or the cache."""
        store: ChildKeyStore = env["store"]
        async with env["engine"].connect() as conn:
            trans = await conn.begin()
            lost = (await store.current_keys(["ch-1"], conn=conn))["ch-1"]
            sealed = await FieldCipher(store).seal_envelope("ch-1", example_envelope(), conn=conn)
            await trans.rollback()
        assert (store.cached, await raw_rows(env)) == (0, [])
        kept = (await store.current_keys(["ch-1"]))["ch-1"]
        assert (lost.version, kept.version) == (1, 1)
        with pytest.raises(FieldDecryptionFailed):
            await FieldCipher(store).open_envelope("ch-1", sealed)


class TestRotationAndErasure:
    """Child key versions, KEK rotation with re-wrap, and crypto-shredding."""

    async def test_versions_1_and_2_readable(self, env: dict[str, Any]) -> None:
        """Events sealed before and after a child key rotation both open in a new process."""
        store: ChildKeyStore = env["store"]
        cipher = FieldCipher(store)
        old = await cipher.seal_envelope("ch-1", example_envelope(id="e-1"))
        assert await store.rotate_child_key("ch-1") == 2
        new = await cipher.seal_envelope("ch-1", example_envelope(id="e-2"))
        assert {s["kv"] for _, s in sealed_paths(new)} == {2}
        other = FieldCipher(fresh_store(env))
        assert (await other.open_envelope("ch-1", old))["id"] == "e-1"
        assert (await other.open_envelope("ch-1", new))["id"] == "e-2"

    async def test_kek_rotation_and_rewrap_keep_everything_readable(
        self, env: dict[str, Any]
    ) -> None:
        """After rotate + rewrap_all the old KEK can be destroyed and all still opens."""
        store: ChildKeyStore = env["store"]
        provider: SpyProvider = env["provider"]
        sealed = {
            c: await FieldCipher(store).seal_envelope(c, example_envelope(id=f"e-{c}"))
            for c in ("ch-1", "ch-2", "ch-3")
        }
        await store.rotate_child_key("ch-1")
        await store.destroy_child_key("ch-3")
        assert await provider.rotate() == "kek-0002"
        assert await store.rewrap_all(batch_size=2) == 3
        assert await store.rewrap_all() == 0
        assert (await store.keys_under("kek-0001"), await store.keys_under("kek-0002")) == (0, 3)
        provider.destroy_kek("kek-0001")
        other = FieldCipher(fresh_store(env))
        for child in ("ch-1", "ch-2"):
            assert (await other.open_envelope(child, sealed[child]))["id"] == f"e-{child}"
        rows = {(r[0], r[1]): r for r in await raw_rows(env)}
        assert rows[("ch-3", 1)][2:4] == ("kek-0001", None)  # a tombstone is never re-wrapped

    async def test_destroy_erases_every_version(self, env: dict[str, Any]) -> None:
        """KeyDestroyed for all versions; tombstones keep when; later events get a new key."""
        store: ChildKeyStore = env["store"]
        cipher = FieldCipher(store)
        sealed = await cipher.seal_envelope("ch-1", example_envelope())
        await store.rotate_child_key("ch-1")
        assert await store.destroy_child_key("ch-1") == [1, 2]
        assert await store.destroy_child_key("ch-1") == []
        assert await store.destroy_child_key("ch-never") == []
        for reader in (cipher, FieldCipher(fresh_store(env))):
            with pytest.raises(KeyDestroyed) as caught:
                await reader.open_envelope("ch-1", sealed)
            assert (caught.value.child_id, caught.value.version) == ("ch-1", 1)
            assert caught.value.destroyed_at == NOW
        assert [(r.key_version, r.destroyed_at) for r in await store.key_records("ch-1")] == [
            (1, NOW),
            (2, NOW),
        ]
        async with env["engine"].connect() as conn:
            left = (
                await conn.execute(
                    text("SELECT count(*) FROM child_data_keys WHERE wrapped_key IS NOT NULL")
                )
            ).scalar_one()
        assert left == 0
        assert (await store.current_keys(["ch-1"]))["ch-1"].version == 3
