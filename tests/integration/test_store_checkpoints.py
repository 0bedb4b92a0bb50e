"""SQLite checkpoints off the request path: a commit no longer copies the log into the
database file at 1,000 pages; the checkpoint task does, and a hub process runs it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store.checkpoints import checkpoint, defer_checkpoints, run_checkpoints
from hub.store.db import create_engine

pytestmark = pytest.mark.integration

_PAGE = 4096
_BLOB = "x" * 100_000  # about 25 pages per row


async def engine_at(path: Path, *, deferred: bool) -> AsyncEngine:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    if deferred:
        defer_checkpoints(engine)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE records (n INTEGER PRIMARY KEY, body TEXT)"))
    return engine


async def write_rows(engine: AsyncEngine, count: int) -> None:
    """One commit per row, as reads append their audit records."""
    for n in range(count):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO records VALUES (:n, :b)"), {"n": n, "b": _BLOB})


@pytest.fixture
async def deferred(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = await engine_at(tmp_path / "deferred.db", deferred=True)
    try:
        yield engine
    finally:
        await engine.dispose()


class TestDeferred:
    """Commits leave the log alone; the task copies it."""

    async def test_commits_past_1000_pages_do_not_checkpoint(
        self, deferred: AsyncEngine, tmp_path: Path
    ) -> None:
        await write_rows(deferred, 60)  # about 1,500 pages of log
        assert (tmp_path / "deferred.db").stat().st_size < 100 * _PAGE
        logged, copied = await checkpoint(deferred)
        assert logged > 1000 and copied == logged
        assert (tmp_path / "deferred.db").stat().st_size > 500 * _PAGE

    async def test_without_deferral_a_commit_checkpoints(self, tmp_path: Path) -> None:
        """The behaviour the deferral removes (so the test above can fail)."""
        engine = await engine_at(tmp_path / "default.db", deferred=False)
        try:
            await write_rows(engine, 60)
            assert (tmp_path / "default.db").stat().st_size > 500 * _PAGE
        finally:
            await engine.dispose()

    async def test_the_task_checkpoints_until_cancelled(
        self, deferred: AsyncEngine, tmp_path: Path
    ) -> None:
        await write_rows(deferred, 60)
        task = asyncio.create_task(run_checkpoints(deferred, every_seconds=0.05))
        try:
            for _ in range(100):
                await asyncio.sleep(0.05)
                if (tmp_path / "deferred.db").stat().st_size > 500 * _PAGE:
                    break
            assert (tmp_path / "deferred.db").stat().st_size > 500 * _PAGE
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    async def test_the_data_reads_back_before_and_after(self, deferred: AsyncEngine) -> None:
        await write_rows(deferred, 3)
        async with deferred.connect() as conn:
            before = (await conn.execute(text("SELECT count(*) FROM records"))).scalar()
        await checkpoint(deferred)
        async with deferred.connect() as conn:
            after = await conn.execute(text("SELECT count(*), max(length(body)) FROM records"))
            assert (before, tuple(after.one())) == (3, (3, len(_BLOB)))


class TestOtherDatabases:
    """PostgreSQL has nothing to defer: the task returns at once."""

    async def test_returns_for_postgresql(self) -> None:
        engine = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
        try:
            defer_checkpoints(engine)  # registers nothing, connects nowhere
            await asyncio.wait_for(run_checkpoints(engine, every_seconds=0.01), timeout=1)
        finally:
            await engine.dispose()
