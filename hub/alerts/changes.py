"""Wake-ups for alert streams: a process says when alert steps were committed, readers wake.

The alert store announces on its ``AlertChanges`` after a transaction that recorded alert steps
commits (raise, withdrawal, escalation, acknowledgement), so an SSE stream in the same process
reads the new step at once instead of on its next poll. Steps committed by another process
(``hub serve --role alerts`` beside ``--role api``) are noticed by ``watch_alert_steps``: one
indexed ``max(seq)`` query per process every few tens of milliseconds while a stream is waiting,
not one inbox query per stream. On SQLite (every process on one machine) an announcement also
rings a ``Doorbell``: a datagram to each watcher listening beside the database file, which
then reads at once instead of on its next tick. The doorbell is only a hint: a watcher reads
the newest seq before it wakes anyone, and keeps its tick, so a datagram lost costs one tick.

Readers take a ``mark()`` *before* they query, then ``wait(mark, timeout)``: it returns at once
if anything was announced since the mark, so an announcement between the query and the wait is
never missed. Announcing is safe from any thread and event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

from hub.observability import get_logger

__all__ = ["AlertChanges", "Doorbell", "watch_alert_steps"]

log = get_logger(__name__)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_SUFFIX = ".sock"


class Doorbell:
    """Datagrams saying "alert steps were committed" to the watchers of other processes on this
    machine, each listening on a Unix socket in one directory (beside the SQLite file)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._own: Path | None = None

    def listen(self) -> socket.socket | None:
        """A non-blocking socket that receives the rings (None where one cannot be bound, for
        example a path too long for a Unix socket: the watcher then only polls)."""
        path = self.directory / f"{os.getpid()}-{secrets.token_hex(4)}{_SUFFIX}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.directory.mkdir(mode=0o700, exist_ok=True)
            sock.bind(str(path))
        except OSError as exc:
            sock.close()
            log.info("alerts.doorbell_unavailable", error=type(exc).__name__)
            return None
        sock.setblocking(False)
        self._own = path
        return sock

    def close(self, sock: socket.socket) -> None:
        """Stop listening: close the socket and remove its file."""
        sock.close()
        if self._own is not None:
            with contextlib.suppress(OSError):
                self._own.unlink()
            self._own = None

    def ring(self) -> None:
        """Tell every other listening watcher (a socket nobody holds any more is removed)."""
        try:
            names = [n for n in os.listdir(self.directory) if n.endswith(_SUFFIX)]
        except OSError:
            return  # nobody has listened here yet
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.setblocking(False)
            for name in names:
                path = self.directory / name
                if path == self._own:
                    continue
                try:
                    sender.sendto(b"1", str(path))
                except BlockingIOError:
                    pass  # its queue is full: it has been rung already
                except (ConnectionRefusedError, FileNotFoundError):
                    with contextlib.suppress(OSError):
                        path.unlink()  # its process has gone
                except OSError:
                    pass  # only a hint: that watcher still polls


class AlertChanges:
    """A broadcast of "alert steps were committed" to every waiting reader of this process
    (and, with a doorbell, to the watchers of other processes)."""

    def __init__(self, doorbell: Doorbell | None = None) -> None:
        self.doorbell = doorbell
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
        """Wake every waiting reader, and ring the doorbell for other processes (call after
        the writing transaction has committed)."""
        self.wake()
        if self.doorbell is not None:
            self.doorbell.ring()

    def wake(self) -> None:
        """Wake every waiting reader of this process."""
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
    every ``every_seconds``, and at once when the doorbell rings; when it has moved, readers
    are woken. A failed read is logged and tried again on the next tick.
    """
    bell = changes.doorbell.listen() if changes.doorbell is not None else None
    try:
        await _watch(changes, latest_seq, bell, every_seconds)
    finally:
        if bell is not None and changes.doorbell is not None:
            changes.doorbell.close(bell)


async def _tick(bell: socket.socket | None, seconds: float) -> None:
    """Wait ``seconds``, or less if the doorbell rings (the rings waiting are all taken)."""
    if bell is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.get_running_loop().sock_recv(bell, 16), seconds)
    with contextlib.suppress(BlockingIOError, InterruptedError):
        while bell.recv(16):
            pass


async def _watch(
    changes: AlertChanges,
    latest_seq: Callable[[], Awaitable[int]],
    bell: socket.socket | None,
    every_seconds: float,
) -> None:
    seen: int | None = None
    while True:
        await _tick(bell, every_seconds)
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
            changes.wake()  # this process's readers only: the committer rang the others
        seen = latest
