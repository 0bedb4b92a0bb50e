"""One connection for a request's reads: checked out once and shared by the stores it calls.

A narrative read asks a dozen questions of the store (the identity group, the child's
version, key records, break-glass, protections, consent, the rule pack in force, the page's
texts), each through its own repository. Checking a connection out of the pool for each one
costs a pool round trip and a reset (and on PostgreSQL a liveness ping) per question. Inside
``shared_reads(engine)``, the repositories' reads (``reads(engine)``) all use the one
connection the block checked out.

Only the task that opened the block shares it: tasks started inside copy the context, and
one connection must never serve two tasks at once, so they connect on their own. Writes
keep their own transactions (``engine.begin()``): a block must end before its task writes,
or the task holds two connections at once, and enough concurrent requests doing so would
take the whole pool and wait on each other (the narrative read ends its block before its
audit append). On PostgreSQL the block's reads run in one READ COMMITTED transaction, so
each still sees what is committed when it runs, and the block is kept to the read phase.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["reads", "shared_reads"]

_SHARED: ContextVar[tuple[AsyncConnection, asyncio.Task[object] | None] | None] = ContextVar(
    "hub_shared_reads", default=None
)


def _current() -> asyncio.Task[object] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop
        return None


def _of(conn: AsyncConnection, engine: AsyncEngine) -> bool:
    return conn.engine.sync_engine is engine.sync_engine


@asynccontextmanager
async def shared_reads(engine: AsyncEngine) -> AsyncIterator[None]:
    """Within this block, this task's ``reads(engine)`` share one connection (nested in a
    block of the same engine: the outer block's; of another engine: its own, until it ends)."""
    held = _SHARED.get()
    if held is not None and held[1] is _current() and _of(held[0], engine):
        yield
        return
    async with engine.connect() as conn:
        token = _SHARED.set((conn, _current()))
        try:
            yield
        finally:
            _SHARED.reset(token)


@asynccontextmanager
async def reads(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection to read with: the shared one inside ``shared_reads`` of this engine in
    this task, else one of its own (returned to the pool after)."""
    held = _SHARED.get()
    if held is not None and held[1] is _current() and _of(held[0], engine):
        yield held[0]
        return
    async with engine.connect() as conn:
        yield conn
