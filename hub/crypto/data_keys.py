"""Per-child data keys: created on first use, stored wrapped, cached unwrapped, destroyable.

``ChildKeyStore`` is the async repository over ``child_data_keys`` (SQLite or PostgreSQL).
Each child has numbered key versions; new data is sealed under the newest live version and
every older version stays readable until the child's keys are destroyed (crypto-shredding).
Unwrapped keys live only in process memory, in a bounded LRU cache with a time limit.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import and_, bindparam, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.crypto.keyring import KeyProvider, WrappedKey
from hub.crypto.tables import child_data_keys
from hub.observability import get_logger
from hub.store.reading import reads

__all__ = [
    "ChildKeyStore",
    "DataKey",
    "DataKeyRecord",
    "KeyDestroyed",
    "UnknownDataKey",
]

log = get_logger(__name__)

_T = child_data_keys


class KeyDestroyed(Exception):
    """The child's data key was destroyed: what it sealed is erased and cannot be read."""

    def __init__(self, child_id: str, version: int, destroyed_at: datetime) -> None:
        super().__init__(
            f"data key {version} of child {child_id} was destroyed at "
            f"{destroyed_at.isoformat()}; the fields it sealed are erased"
        )
        self.child_id = child_id
        self.version = version
        self.destroyed_at = destroyed_at


class UnknownDataKey(LookupError):
    """No data key of this version was ever stored for the child."""

    def __init__(self, child_id: str, version: int) -> None:
        super().__init__(f"child {child_id} has no data key version {version}")
        self.child_id = child_id
        self.version = version


@dataclass(frozen=True, slots=True)
class DataKey:
    """An unwrapped AES-256-GCM data key of one child (its repr shows ids only)."""

    child_id: str
    version: int
    aead: AESGCM = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class DataKeyRecord:
    """What the store holds about one key version, without key material."""

    child_id: str
    key_version: int
    kek_id: str
    created_at: datetime
    destroyed_at: datetime | None


class _Cache:
    """Bounded LRU of unwrapped keys, each kept at most ``ttl`` seconds."""

    def __init__(self, size: int, ttl: float, monotonic: Callable[[], float]) -> None:
        self._items: OrderedDict[tuple[str, int], tuple[float, DataKey]] = OrderedDict()
        self._size, self._ttl, self._now = size, ttl, monotonic

    def get(self, child_id: str, version: int) -> DataKey | None:
        item = self._items.get((child_id, version))
        if item is None:
            return None
        if item[0] <= self._now():
            del self._items[(child_id, version)]
            return None
        self._items.move_to_end((child_id, version))
        return item[1]

    def put(self, key: DataKey) -> None:
        if self._size <= 0:
            return
        self._items[(key.child_id, key.version)] = (self._now() + self._ttl, key)
        self._items.move_to_end((key.child_id, key.version))
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def evict_child(self, child_id: str) -> None:
        for item in [k for k in self._items if k[0] == child_id]:
            del self._items[item]

    def __len__(self) -> int:
        return len(self._items)


def _context(child_id: str, version: int) -> bytes:
    return f"child-data-key\x1f{child_id}\x1f{version}".encode()


class ChildKeyStore:
    """Creates, finds, rotates, re-wraps and destroys children's data keys.

    Methods that write take an optional ``conn`` to join the caller's transaction (SQLite
    allows one writer: a second connection would wait on the caller's own lock). Keys met
    through a caller's connection are not cached, because that transaction may still roll back.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        provider: KeyProvider,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        cache_size: int = 10_000,
        cache_ttl_seconds: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self._provider = provider
        self._clock = clock
        self._cache = _Cache(cache_size, cache_ttl_seconds, monotonic)
        # Built once: constructing the statement cost more than running it, every batch.
        self._select_keys = (
            select(_T)
            .where(_T.c.child_id.in_(bindparam("ids", expanding=True)))
            .order_by(_T.c.child_id, _T.c.key_version)
        )

    @property
    def cached(self) -> int:
        """How many unwrapped keys the cache holds."""
        return len(self._cache)

    async def current_keys(
        self, child_ids: Iterable[str], *, conn: AsyncConnection | None = None
    ) -> dict[str, DataKey]:
        """The newest live data key of each child, creating version 1 (or the next) if none."""
        ids = sorted(set(child_ids))
        if not ids:
            return {}
        if conn is None:
            async with self.engine.begin() as own:
                return await self._current_keys(own, ids, cache=True)
        return await self._current_keys(conn, ids, cache=False)

    async def _current_keys(
        self, conn: AsyncConnection, ids: list[str], *, cache: bool
    ) -> dict[str, DataKey]:
        rows = (await conn.execute(self._select_keys, {"ids": ids})).all()
        newest: dict[str, Any] = {}
        for row in rows:
            newest[row.child_id] = row
        wanted = {
            child_id: 1 if row is None else row.key_version + 1
            for child_id in ids
            if (row := newest.get(child_id)) is None or row.destroyed_at is not None
        }
        made = await self._create_many(conn, wanted) if wanted else {}
        out: dict[str, DataKey] = {}
        for child_id in ids:
            if child_id in made:
                out[child_id] = made[child_id]
                if cache:
                    self._cache.put(made[child_id])
            else:
                out[child_id] = await self._unwrap(newest[child_id], cache=cache)
        return out

    async def data_key(self, child_id: str, version: int) -> DataKey:
        """The key that sealed data under ``version``; KeyDestroyed or UnknownDataKey if none."""
        cached = self._cache.get(child_id, version)
        if cached is not None:
            return cached
        async with reads(self.engine) as conn:
            row = (
                await conn.execute(
                    select(_T).where(and_(_T.c.child_id == child_id, _T.c.key_version == version))
                )
            ).first()
        if row is None:
            raise UnknownDataKey(child_id, version)
        return await self._unwrap(row, cache=True)

    async def rotate_child_key(self, child_id: str) -> int:
        """Start a new key version for a child (older versions stay readable); returns it."""
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(select(_T.c.key_version).where(_T.c.child_id == child_id))
            ).all()
            version = max((r.key_version for r in rows), default=0) + 1
            await self._create_many(conn, {child_id: version})
        log.info("crypto.child_key_rotated", child_id=child_id, key_version=version)
        return version

    async def destroy_child_key(self, child_id: str) -> list[int]:
        """Crypto-shred a child: delete every wrapped key, keep tombstones; returns versions.

        Everything sealed under those keys, in Kafka, backups or the store, is then unreadable.
        Other processes may hold an unwrapped copy in their cache for up to its time limit.
        """
        async with self.engine.begin() as conn:
            versions = await self.destroy_child_key_in(conn, child_id, now=self._clock())
        self._cache.evict_child(child_id)
        log.info("crypto.child_key_destroyed", child_id=child_id, key_versions=versions)
        return versions

    @staticmethod
    async def destroy_child_key_in(
        conn: AsyncConnection, child_id: str, *, now: datetime
    ) -> list[int]:
        """``destroy_child_key``'s store change, in the caller's transaction (no cache change:
        the caller evicts after its commit, ``forget_child``); the versions destroyed."""
        result = await conn.execute(
            update(_T)
            .where(and_(_T.c.child_id == child_id, _T.c.destroyed_at.is_(None)))
            .values(wrapped_key=None, destroyed_at=now)
            .returning(_T.c.key_version)
        )
        return sorted(r.key_version for r in result)

    def forget_child(self, child_id: str) -> None:
        """Drop this process's cached keys of a child (whose keys another path destroyed);
        the store is not touched."""
        self._cache.evict_child(child_id)

    async def rewrap_all(self, kek_id: str | None = None, *, batch_size: int = 500) -> int:
        """Re-wrap every live data key not under ``kek_id`` (default: the current KEK).

        Run after ``KeyProvider.rotate()``; returns how many keys were re-wrapped. A key
        destroyed meanwhile is never written back.
        """
        target = kek_id or await self._provider.current_kek_id()
        done = 0
        while True:
            async with self.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        select(_T)
                        .where(and_(_T.c.kek_id != target, _T.c.destroyed_at.is_(None)))
                        .order_by(_T.c.child_id, _T.c.key_version)
                        .limit(batch_size)
                    )
                ).all()
            if not rows:
                break
            async with self.engine.begin() as conn:
                for row in rows:
                    context = _context(row.child_id, row.key_version)
                    plain = await self._provider.unwrap(
                        WrappedKey(row.kek_id, bytes(row.wrapped_key)), context=context
                    )
                    wrapped = await self._provider.wrap(plain, context=context, kek_id=target)
                    result = await conn.execute(
                        update(_T)
                        .where(
                            and_(
                                _T.c.child_id == row.child_id,
                                _T.c.key_version == row.key_version,
                                _T.c.kek_id == row.kek_id,
                                _T.c.destroyed_at.is_(None),
                            )
                        )
                        .values(kek_id=wrapped.kek_id, wrapped_key=wrapped.blob)
                    )
                    done += result.rowcount
        log.info("crypto.keys_rewrapped", kek_id=target, count=done)
        return done

    async def keys_under(self, kek_id: str) -> int:
        """How many live data keys are still wrapped under a KEK."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(_T.c.child_id).where(
                        and_(_T.c.kek_id == kek_id, _T.c.destroyed_at.is_(None))
                    )
                )
            ).all()
        return len(rows)

    async def key_records(self, child_id: str) -> list[DataKeyRecord]:
        """Every key version of a child, oldest first (no key material)."""
        async with reads(self.engine) as conn:
            rows = (
                await conn.execute(
                    select(_T).where(_T.c.child_id == child_id).order_by(_T.c.key_version)
                )
            ).all()
        return [
            DataKeyRecord(
                r.child_id,
                r.key_version,
                r.kek_id,
                _aware(r.created_at),
                None if r.destroyed_at is None else _aware(r.destroyed_at),
            )
            for r in rows
        ]

    async def _create_many(
        self, conn: AsyncConnection, versions: dict[str, int]
    ) -> dict[str, DataKey]:
        """Create these children's keys (child -> version) in one insert and one select.

        A concurrent writer may have stored a child's key first: its stored row wins and is
        unwrapped; otherwise the key just made is used as it is (no unwrap of our own wrap).
        """
        made: dict[tuple[str, int], tuple[bytes, bytes]] = {}
        rows = []
        now = self._clock()
        for child_id, version in versions.items():
            plain = AESGCM.generate_key(256)
            wrapped = await self._provider.wrap(plain, context=_context(child_id, version))
            made[(child_id, version)] = (plain, wrapped.blob)
            rows.append(
                {
                    "child_id": child_id,
                    "key_version": version,
                    "kek_id": wrapped.kek_id,
                    "wrapped_key": wrapped.blob,
                    "created_at": now,
                }
            )
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        await conn.execute(dialect.insert(_T).on_conflict_do_nothing(), rows)
        pairs = list(made)
        stored = (
            await conn.execute(select(_T).where(tuple_(_T.c.child_id, _T.c.key_version).in_(pairs)))
        ).all()
        keys: dict[str, DataKey] = {}
        for row in stored:
            plain, blob = made[(row.child_id, row.key_version)]
            if row.wrapped_key is not None and bytes(row.wrapped_key) == blob:
                keys[row.child_id] = DataKey(row.child_id, row.key_version, AESGCM(plain))
                log.info(
                    "crypto.child_key_created", child_id=row.child_id, key_version=row.key_version
                )
            else:  # another writer's key for this version
                keys[row.child_id] = await self._unwrap(row, cache=False)
        return keys

    async def _unwrap(self, row: Any, *, cache: bool) -> DataKey:
        if row.destroyed_at is not None or row.wrapped_key is None:
            raise KeyDestroyed(row.child_id, row.key_version, _aware(row.destroyed_at))
        cached = self._cache.get(row.child_id, row.key_version)
        if cached is not None:
            return cached
        plain = await self._provider.unwrap(
            WrappedKey(row.kek_id, bytes(row.wrapped_key)),
            context=_context(row.child_id, row.key_version),
        )
        key = DataKey(row.child_id, row.key_version, AESGCM(plain))
        if cache:
            self._cache.put(key)
        return key


def _aware(value: datetime | None) -> datetime:
    """SQLite returns naive datetimes for timezone columns: they were stored as UTC."""
    if value is None:
        return datetime.fromtimestamp(0, UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
