"""Wake-ups for alert streams: a process says when alert steps were committed, readers wake.

The alert store announces on its ``AlertChanges`` after a transaction that recorded alert steps
commits (raise, withdrawal, escalation, acknowledgement), so an SSE stream in the same process
reads the new step at once instead of on its next poll. Steps committed by another process
(``hub serve --role alerts`` beside ``--role api``) are noticed by ``watch_alert_steps``: one
indexed ``max(seq)`` query per process every few tens of milliseconds while a stream is waiting,
not one inbox query per stream.

Readers take a ``mark()`` *before* they query, then ``wait(mark, timeout)``: it returns at once
if anything was announced since the mark, so an announcement between the query and the wait is
never missed. Announcing is safe from any thread and event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable

from hub.observability import get_logger

__all__ = ["AlertChanges", "watch_alert_steps"]

log = get_logger(__name__)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class AlertChanges:
    """A broadcast of "alert steps were committed" to every waiting reader of this process."""

    def __init__(self) -> None:
        self._generation = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        """How many readers are waiting now."""
        with self._lock:
            return len(self._waiters)

    def mark(self) -> int:
        """A mark to pass to ``wait``: take it before reading the store."""
        with self._lock:
            return self._generation

    def announce(self) -> None:
        """Wake every waiting reader (call after the writing transaction has committed)."""
        with self._lock:
            self._generation += 1
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # that reader's loop has closed
                loop.call_soon_threadsafe(_wake, future)

    async def wait(self, mark: int, timeout: float) -> bool:  # noqa: ASYNC109 - a poll interval
        """Wait until something is announced after ``mark`` (True) or ``timeout`` passes."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._generation != mark:
                return True
            entry = (loop, loop.create_future())
            self._waiters.append(entry)
        try:
            await asyncio.wait_for(entry[1], timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove(entry)


async def watch_alert_steps(
    changes: AlertChanges,
    latest_seq: Callable[[], Awaitable[int]],
    *,
    every_seconds: float,
) -> None:
    """Announce steps committed by other processes (cancelled at shutdown).

    While a reader waits, ``latest_seq`` (the newest alert step's sequence number) is read
    every ``every_seconds``; when it has moved, readers are woken. A failed read is logged and
    tried again on the next tick.
    """
    seen: int | None = None
    while True:
        await asyncio.sleep(every_seconds)
        if seen is not None and not changes.waiting:
            continue
        try:
            latest = await latest_seq()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("alerts.watch_failed")
            continue
        if seen is not None and latest != seen:
            changes.announce()
        seen = latest
