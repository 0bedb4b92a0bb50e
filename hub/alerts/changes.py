"""Wake-ups for alert streams: a process says when alert steps were committed, readers wake.

The alert store announces on its ``AlertChanges`` after a transaction that recorded alert steps
commits (raise, withdrawal, escalation, acknowledgement), so an SSE stream in the same process
reads the new step at once instead of on its next poll. Steps committed by another process
(``hub serve --role alerts`` beside ``--role api``) are noticed by ``watch_alert_steps``: one
indexed ``max(seq)`` query per process every few tens of milliseconds while a stream is waiting,
not one inbox query per stream. On SQLite (every process on one machine) an announcement also
rings a ``Doorbell``: a datagram to each watcher listening beside the database file, which
then reads at once instead of on its next tick. The doorbell is only a hint: a watcher reads
the newest seq before it wakes anyone, and keeps its tick, so a datagram lost costs one tick;
a watcher whose socket fails, or whose directory is not safe, just polls.

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
import stat
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
    machine, each listening on a Unix socket in one directory (beside the SQLite file).

    The directory must be a real directory (not a symlink) of this user with mode 0700, so no
    other user can listen, ring, or plant entries there; otherwise nothing is bound or rung
    and the watchers only poll. A ring removes only sockets (never another kind of file).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._own: dict[socket.socket, Path] = {}  # each listening watcher's socket, its file
        self._lock = threading.Lock()
        self._denied_logged = False

    def listen(self) -> socket.socket | None:
        """A non-blocking socket that receives the rings (None where one cannot be bound: an
        unsafe directory, or a path too long for a Unix socket; the watcher then only polls)."""
        with contextlib.suppress(OSError):  # one that exists, or cannot be made: see below
            self.directory.mkdir(mode=0o700)
        fault = _unsafe(self.directory)
        if fault is not None:
            log.warning("alerts.doorbell_unavailable", reason=fault, directory=str(self.directory))
            return None
        path = self.directory / f"{os.getpid()}-{secrets.token_hex(4)}{_SUFFIX}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(str(path))
        except OSError as exc:
            sock.close()
            log.info("alerts.doorbell_unavailable", reason="bind", error=type(exc).__name__)
            return None
        sock.setblocking(False)
        with self._lock:
            self._own[sock] = path
        return sock

    def close(self, sock: socket.socket) -> None:
        """Stop listening on ``sock``: close it and remove its file (once; no other's)."""
        with self._lock:
            path = self._own.pop(sock, None)
        sock.close()
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()

    def ring(self) -> None:
        """Tell every other listening watcher (a socket nobody holds any more is removed)."""
        if _unsafe(self.directory) is not None:
            return  # nobody has listened here yet, or none of ours could (listen said why)
        try:
            names = [n for n in os.listdir(self.directory) if n.endswith(_SUFFIX)]
        except OSError:
            return
        with self._lock:
            own = {path.name for path in self._own.values()}
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.setblocking(False)
            for name in names:
                if name in own:
                    continue  # this process's readers were woken already
                path = self.directory / name
                try:
                    sender.sendto(b"1", str(path))
                except BlockingIOError:
                    pass  # its queue is full: it has been rung already
                except PermissionError:
                    self._denied()
                except (ConnectionRefusedError, FileNotFoundError):
                    _remove_socket(path)  # its process has gone
                except OSError:
                    pass  # only a hint: that watcher still polls

    def _denied(self) -> None:
        """Say once (not on every ring) that a socket here refuses this process."""
        if not self._denied_logged:
            self._denied_logged = True
            log.warning("alerts.doorbell_denied", directory=str(self.directory))


def _unsafe(directory: Path) -> str | None:
    """Why ``directory`` may not hold this process's doorbell sockets (None: it may)."""
    try:
        info = directory.lstat()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({type(exc).__name__})"
    if stat.S_ISLNK(info.st_mode):
        return "symlink"
    if not stat.S_ISDIR(info.st_mode):
        return "not a directory"
    if info.st_uid != os.getuid():
        return "owned by another user"
    if info.st_mode & 0o777 != 0o700:
        return f"mode {info.st_mode & 0o777:o}, not 700"
    return None


def _remove_socket(path: Path) -> None:
    """Remove ``path`` if it is a socket (not a file or link of the same name)."""
    with contextlib.suppress(OSError):  # gone already, or not ours to remove
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()


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
    doorbell = changes.doorbell
    bell = doorbell.listen() if doorbell is not None else None
    try:
        await _watch(changes, latest_seq, doorbell, bell, every_seconds)
    finally:
        if doorbell is not None and bell is not None:
            doorbell.close(bell)


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
    doorbell: Doorbell | None,
    bell: socket.socket | None,
    every_seconds: float,
) -> None:
    seen: int | None = None
    while True:
        try:
            await _tick(bell, every_seconds)
        except OSError as exc:
            # Only the doorbell's socket can fail here: drop it and poll from now on.
            log.warning("alerts.doorbell_failed", error=type(exc).__name__, errno=exc.errno)
            if doorbell is not None and bell is not None:
                doorbell.close(bell)
            bell = None
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
