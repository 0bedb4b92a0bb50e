"""SQLite's WAL checkpoints, moved off the request path into a task of their own.

In WAL mode a commit appends pages to the write-ahead log; a *checkpoint* copies them back into
the database file and syncs it to disk. By default SQLite checkpoints inside whichever commit
takes the log past 1,000 pages, so that one request pays for copying about 4 MB and an fsync.
A narrative read appends its audit record (about 150 KB for a child with 2,000 entries), so
every twenty-odd reads one read waited tens of milliseconds on the disk: most of the read
path's p99.

Each hub process with an SQLite store instead raises the automatic threshold to
``AUTOCHECKPOINT_PAGES`` (a safety net for processes without the task, such as the CLI) and
runs a PASSIVE checkpoint every ``EVERY_SECONDS`` on its own connection: it copies what no
reader still needs, never waits for readers or writers, and its fsync blocks no request.
PostgreSQL needs none of this.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.observability import get_logger

__all__ = [
    "AUTOCHECKPOINT_PAGES",
    "EVERY_SECONDS",
    "checkpoint",
    "defer_checkpoints",
    "run_checkpoints",
]

log = get_logger(__name__)

AUTOCHECKPOINT_PAGES = 16_000
"""Pages (4 KiB) the log may reach before a commit checkpoints anyway (about 64 MB)."""

EVERY_SECONDS = 1.0
"""How often a hub process checkpoints its SQLite store."""


def defer_checkpoints(engine: AsyncEngine) -> None:
    """Let this engine's commits leave checkpoints to ``run_checkpoints`` (SQLite only; a
    no-op for other databases). Call before the engine's first connection."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine.sync_engine, "connect")
    def _defer(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
        cursor.close()


async def checkpoint(engine: AsyncEngine) -> tuple[int, int]:
    """One PASSIVE checkpoint: (pages in the log, pages copied into the database file)."""
    async with engine.connect() as conn:
        _busy, logged, copied = (await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")).one()
    return int(logged), int(copied)


async def run_checkpoints(engine: AsyncEngine, *, every_seconds: float = EVERY_SECONDS) -> None:
    """Checkpoint the SQLite store every ``every_seconds`` until cancelled (returns at once
    for other databases). A failed checkpoint is logged and tried again next time."""
    if engine.dialect.name != "sqlite":
        return
    while True:
        await asyncio.sleep(every_seconds)
        try:
            logged, copied = await checkpoint(engine)
        except Exception as exc:  # a locked or vanished file: the next round tries again
            log.warning("store.checkpoint_failed", error=type(exc).__name__)
            continue
        if logged:
            log.debug("store.checkpointed", logged=logged, copied=copied)
