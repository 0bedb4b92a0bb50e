"""Engine creation for the store (SQLite or PostgreSQL) and running its Alembic migrations.

SQLite lets one connection write at a time, and a connection that finds the file locked
sleeps in SQLite's busy handler (1, 2, 5 ... up to 100 ms a try, whether or not the lock has
been freed meanwhile). The hub's consumers and API in one process each hold write
transactions, so under load most of a write's wait was that sleeping. An SQLite engine
therefore also queues its own writers on an asyncio lock, taken at a transaction's first
write statement and given back when it commits or rolls back: the next writer of this process
goes on at once; other processes still meet the busy handler.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_only

__all__ = ["create_engine", "migrate", "migrate_sync"]

_MIGRATIONS = Path(__file__).parent / "migrations"
_WRITING = "hub_writing"
"""Key in a DBAPI connection's ``info``: set while it holds its engine's write lock."""
_READS = ("select", "pragma", "begin", "savepoint", "release")


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout and foreign keys for shared use."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        _queue_writers(engine)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def _queue_writers(engine: AsyncEngine) -> None:
    """Take the engine's write lock at a transaction's first write; give it back once the
    transaction has committed or rolled back (or its connection is discarded)."""
    lock = asyncio.Lock()
    sync = engine.sync_engine
    dialect = sync.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def release(holder: Any) -> None:
        try:
            info = holder.info
        except NotImplementedError:  # the dialect's first-connect check: never a writer
            return
        if info.pop(_WRITING, False):
            lock.release()

    def do_commit(dbapi_connection: Any) -> None:
        try:
            commit(dbapi_connection)
        finally:
            release(dbapi_connection)

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            rollback(dbapi_connection)
        finally:
            release(dbapi_connection)

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]

    @event.listens_for(sync, "before_cursor_execute")
    def _take(conn: Connection, _c: Any, statement: str, *_: Any) -> None:
        if _WRITING in conn.info or statement.lstrip()[:9].lower().startswith(_READS):
            return
        await_only(lock.acquire())
        conn.info[_WRITING] = True

    @event.listens_for(sync.pool, "checkin")
    @event.listens_for(sync.pool, "invalidate")
    @event.listens_for(sync.pool, "close")
    def _discarded(_dbapi: Any, record: ConnectionPoolEntry, *_: Any) -> None:
        release(record)


def _alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def _upgrade(connection: Connection, url: str) -> None:
    cfg = _alembic_config(url)
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "heads")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the store's schema up to the newest migration (idempotent)."""
    url = engine.url.render_as_string(hide_password=False)
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade, url)


def migrate_sync(url: str) -> None:
    """Run the migrations from synchronous code (the CLI)."""

    async def _go() -> None:
        engine = create_engine(url)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    asyncio.run(_go())
