"""The SQLite engine queues its own writers on a lock instead of SQLite's busy sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store.db import create_engine

pytestmark = pytest.mark.unit

WAIT = 5.0  # seconds before a test calls a writer stuck


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A fresh SQLite file with one table, SQLite's own busy wait turned off: a writer that
    meets the file locked fails at once, so only the queue can make it wait."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")

    @event.listens_for(engine.sync_engine, "connect")
    def _no_busy_wait(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.close()

    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (n INTEGER PRIMARY KEY)"))
    try:
        yield engine
    finally:
        await engine.dispose()


async def insert(engine: AsyncEngine, n: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO t (n) VALUES (:n)"), {"n": n})


async def rows(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return list((await conn.execute(text("SELECT n FROM t ORDER BY n"))).scalars())


class TestWriteQueue:
    async def test_second_writer_waits_for_the_first_to_commit(self, engine: AsyncEngine) -> None:
        """A writer that starts while another transaction has written goes on once that one
        commits, and both writes are kept; a read meanwhile is not held up."""
        order: list[str] = []
        written, finish = asyncio.Event(), asyncio.Event()

        async def first() -> None:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (n) VALUES (1)"))
                written.set()
                await finish.wait()
                order.append("first commits")

        async def second() -> None:
            await written.wait()
            await insert(engine, 2)
            order.append("second wrote")

        tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
        await written.wait()
        assert await asyncio.wait_for(rows(engine), WAIT) == []  # reads go on meanwhile
        await asyncio.sleep(0.05)
        assert order == []  # the second writer is waiting
        finish.set()
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
        assert order == ["first commits", "second wrote"]
        assert await rows(engine) == [1, 2]

    async def test_a_failed_transaction_frees_the_lock(self, engine: AsyncEngine) -> None:
        """A transaction that wrote and then failed is rolled back and the next writer goes on."""
        with pytest.raises(RuntimeError, match="batch failed"):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (n) VALUES (1)"))
                raise RuntimeError("batch failed")
        await asyncio.wait_for(insert(engine, 2), WAIT)
        assert await rows(engine) == [2]

    async def test_a_closed_connection_frees_the_lock(self, engine: AsyncEngine) -> None:
        """A connection closed with its write uncommitted, or a write that fails, frees it."""
        async with engine.connect() as conn:
            await conn.execute(text("INSERT INTO t (n) VALUES (1)"))
        with pytest.raises(Exception, match="UNIQUE"):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (n) VALUES (2)"))
                await conn.execute(text("INSERT INTO t (n) VALUES (2)"))
        await asyncio.wait_for(insert(engine, 3), WAIT)
        assert await rows(engine) == [3]

    async def test_many_writers_all_land(self, engine: AsyncEngine) -> None:
        """Twenty writers at once all commit, none meets SQLite's lock."""
        await asyncio.wait_for(asyncio.gather(*(insert(engine, n) for n in range(20))), WAIT)
        assert await rows(engine) == list(range(20))
