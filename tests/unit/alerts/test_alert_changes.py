"""Alert-stream wake-ups: announced commits wake readers at once; other processes' by a watcher."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from hub.alerts.changes import AlertChanges, Doorbell, watch_alert_steps

pytestmark = pytest.mark.unit


class TestAlertChanges:
    """A reader waits from a mark taken before it reads; announcements wake every reader."""

    async def test_announcement_wakes_a_waiting_reader(self) -> None:
        """A reader waiting with a long timeout wakes as soon as a commit is announced."""
        changes = AlertChanges()
        mark = changes.mark()
        waiting = asyncio.create_task(changes.wait(mark, 30.0))
        await asyncio.sleep(0.01)
        assert changes.waiting == 1
        started = time.monotonic()
        changes.announce()
        assert await asyncio.wait_for(waiting, 5.0) is True
        assert time.monotonic() - started < 1.0
        assert changes.waiting == 0

    async def test_every_reader_wakes(self) -> None:
        """One announcement wakes all readers waiting on it."""
        changes = AlertChanges()
        mark = changes.mark()
        readers = [asyncio.create_task(changes.wait(mark, 30.0)) for _ in range(3)]
        await asyncio.sleep(0.01)
        changes.announce()
        assert await asyncio.wait_for(asyncio.gather(*readers), 5.0) == [True, True, True]

    async def test_announcement_between_read_and_wait_is_not_missed(self) -> None:
        """A commit announced after the mark but before the wait returns at once."""
        changes = AlertChanges()
        mark = changes.mark()
        changes.announce()  # while the reader was still reading the store
        started = time.monotonic()
        assert await changes.wait(mark, 30.0) is True
        assert time.monotonic() - started < 0.5

    async def test_times_out_without_announcement(self) -> None:
        """With nothing announced the wait ends after its timeout, saying so."""
        changes = AlertChanges()
        assert await changes.wait(changes.mark(), 0.05) is False
        assert changes.waiting == 0

    async def test_announced_from_another_thread(self) -> None:
        """A commit announced on another thread (another event loop) wakes the reader."""
        changes = AlertChanges()
        mark = changes.mark()
        waiting = asyncio.create_task(changes.wait(mark, 30.0))
        await asyncio.sleep(0.01)
        threading.Thread(target=changes.announce).start()
        assert await asyncio.wait_for(waiting, 5.0) is True

    async def test_reader_cancelled_leaves_no_waiter(self) -> None:
        """A reader that goes away (client disconnected) is no longer counted as waiting."""
        changes = AlertChanges()
        waiting = asyncio.create_task(changes.wait(changes.mark(), 30.0))
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert changes.waiting == 0
        changes.announce()  # nobody to wake; no error


class FakeLog:
    """The newest alert step's sequence number, as another process moves it."""

    def __init__(self) -> None:
        self.seq = 0
        self.reads = 0
        self.fail = False

    async def latest(self) -> int:
        self.reads += 1
        if self.fail:
            raise ConnectionError("database unavailable")
        return self.seq


class TestWatchAlertSteps:
    """Steps committed elsewhere are noticed by one cheap query per tick, while readers wait."""

    async def test_wakes_readers_when_another_process_commits(self) -> None:
        """A reader waits; another process's step moves the newest seq; the reader wakes."""
        changes, log = AlertChanges(), FakeLog()
        watcher = asyncio.create_task(watch_alert_steps(changes, log.latest, every_seconds=0.01))
        try:
            await asyncio.sleep(0.05)
            waiting = asyncio.create_task(changes.wait(changes.mark(), 30.0))
            await asyncio.sleep(0.05)
            assert not waiting.done()  # nothing new: no wake-up
            log.seq = 7
            assert await asyncio.wait_for(waiting, 5.0) is True
        finally:
            watcher.cancel()

    async def test_reads_nothing_while_nobody_waits(self) -> None:
        """Without a waiting reader the watcher does not query the store."""
        changes, log = AlertChanges(), FakeLog()
        watcher = asyncio.create_task(watch_alert_steps(changes, log.latest, every_seconds=0.01))
        try:
            await asyncio.sleep(0.1)
            assert log.reads == 1  # the first reading of where the log is
        finally:
            watcher.cancel()

    async def test_failed_read_is_logged_and_retried(self) -> None:
        """A failing query is logged by event name and the watcher keeps going."""
        changes, log = AlertChanges(), FakeLog()
        log.fail = True
        with capture_logs() as logs:
            watcher = asyncio.create_task(
                watch_alert_steps(changes, log.latest, every_seconds=0.01)
            )
            waiting = asyncio.create_task(changes.wait(changes.mark(), 30.0))
            try:
                await asyncio.sleep(0.05)
                log.fail = False
                await asyncio.sleep(0.05)
                log.seq = 3
                assert await asyncio.wait_for(waiting, 5.0) is True
            finally:
                watcher.cancel()
        assert "alerts.watch_failed" in {e["event"] for e in logs}


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait (5 s at most) until ``condition`` holds: a loaded box may be slow to get there."""
    deadline = time.monotonic() + 5.0
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        await asyncio.sleep(0.005)


def _private(directory: Path) -> Path:
    """A doorbell directory as ``listen`` makes it: this user's, mode 0700."""
    directory.mkdir(mode=0o700)
    directory.chmod(0o700)
    return directory


def _sockets(directory: Path) -> set[str]:
    """The names of the doorbell sockets (or look-alikes) in ``directory``."""
    return {p.name for p in directory.glob("*.sock")}


async def _stopped(watcher: asyncio.Task[None]) -> None:
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher


async def _wakes_by_polling(changes: AlertChanges, log: FakeLog) -> asyncio.Task[None]:
    """A watcher ticking every 10 ms: once it has polled, a step committed by another
    connection wakes a waiting reader. The watcher is left running."""
    watcher = asyncio.create_task(watch_alert_steps(changes, log.latest, every_seconds=0.01))
    try:
        waiting = asyncio.create_task(changes.wait(changes.mark(), 30.0))
        await _until(lambda: log.reads >= 2, "polling")
        log.seq += 1  # no ring reaches this watcher
        assert await asyncio.wait_for(waiting, 5.0) is True
    except BaseException:
        await _stopped(watcher)
        raise
    return watcher


class TestDoorbell:
    """A commit announced in one process rings the watchers of the others at once."""

    async def test_a_ring_wakes_another_process_s_reader_before_its_tick(self, tmp_path) -> None:
        """The committing side announces; the watcher (a 60 s tick) reads and wakes its
        reader at once, and only because the newest seq moved."""
        bell_dir = tmp_path / "bell"
        committer, watched, log = (
            AlertChanges(Doorbell(bell_dir)),
            AlertChanges(Doorbell(bell_dir)),
            FakeLog(),
        )
        watcher = asyncio.create_task(watch_alert_steps(watched, log.latest, every_seconds=60.0))
        try:
            await _until(lambda: bool(_sockets(bell_dir)), "its socket")
            waiting = asyncio.create_task(watched.wait(watched.mark(), 30.0))
            await _until(lambda: watched.waiting == 1, "the reader")
            committer.announce()  # a ring, but the seq has not moved: nobody is woken
            await _until(lambda: log.reads == 1, "the read at the ring")  # not the 60 s tick
            await asyncio.sleep(0.02)
            assert (waiting.done(), log.reads) == (False, 1)
            log.seq = 4
            started = time.monotonic()
            committer.announce()
            assert await asyncio.wait_for(waiting, 5.0) is True
            assert time.monotonic() - started < 1.0
        finally:
            await _stopped(watcher)
        assert list(bell_dir.iterdir()) == []  # the watcher took its socket away

    async def test_listening_makes_a_private_directory(self, tmp_path) -> None:
        """The directory a first watcher makes is this user's alone (mode 0700)."""
        bell = Doorbell(tmp_path / "bell")
        sock = bell.listen()
        assert sock is not None
        try:
            assert stat.S_IMODE((tmp_path / "bell").lstat().st_mode) == 0o700
        finally:
            bell.close(sock)

    @pytest.mark.parametrize("fault", ["symlink", "mode", "owner"])
    async def test_an_unsafe_directory_leaves_the_watcher_polling(
        self, tmp_path, monkeypatch, fault
    ) -> None:
        """A directory that is a symlink, open to others or another user's gets no socket:
        the watcher says why and polls on its tick."""
        elsewhere = _private(tmp_path / "elsewhere")
        bell_dir = tmp_path / "bell"
        if fault == "symlink":
            bell_dir.symlink_to(elsewhere, target_is_directory=True)
        elif fault == "mode":
            _private(bell_dir).chmod(0o755)
        else:
            _private(bell_dir)
            uid = os.getuid()
            monkeypatch.setattr(os, "getuid", lambda: uid + 1)
        changes, log = AlertChanges(Doorbell(bell_dir)), FakeLog()
        with capture_logs() as logs:
            await _stopped(await _wakes_by_polling(changes, log))
        unavailable = [e for e in logs if e["event"] == "alerts.doorbell_unavailable"]
        assert len(unavailable) == 1
        assert unavailable[0]["reason"]
        assert _sockets(elsewhere) == set()
        assert _sockets(bell_dir) == set()

    async def test_a_socket_nobody_holds_is_removed(self, tmp_path) -> None:
        """A watcher's socket left behind by a killed process is dropped at the next ring."""
        bell_dir = _private(tmp_path / "bell")
        stale = bell_dir / "999-dead.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as gone:
            gone.bind(str(stale))
        Doorbell(bell_dir).ring()
        assert not stale.exists()

    async def test_a_ring_removes_only_sockets(self, tmp_path) -> None:
        """A file or a link named like a socket refuses the datagram too, but a ring never
        deletes it: it removes only a socket nobody holds."""
        bell_dir = _private(tmp_path / "bell")
        (bell_dir / "x.sock").write_text("not a socket")
        (bell_dir / "y.sock").symlink_to(tmp_path / "nowhere")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as gone:
            gone.bind(str(bell_dir / "z.sock"))
        Doorbell(bell_dir).ring()
        assert _sockets(bell_dir) == {"x.sock", "y.sock"}
        assert (bell_dir / "x.sock").read_text() == "not a socket"

    async def test_a_refused_ring_is_logged_once(self, tmp_path, monkeypatch) -> None:
        """A socket that denies this process is said once, not on every ring, and kept."""
        bell_dir = _private(tmp_path / "bell")
        bell = Doorbell(bell_dir)

        def denied(self: socket.socket, data: bytes, address: str) -> int:
            raise PermissionError(errno.EACCES, "Permission denied")

        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as held:
            held.bind(str(bell_dir / "1-other.sock"))
            monkeypatch.setattr(socket.socket, "sendto", denied)  # root is never refused
            with capture_logs() as logs:
                for _ in range(3):
                    bell.ring()
            assert [e["event"] for e in logs] == ["alerts.doorbell_denied"]
            assert _sockets(bell_dir) == {"1-other.sock"}

    async def test_a_failing_socket_leaves_the_watcher_polling(self, tmp_path, monkeypatch):
        """Where reading the doorbell fails, the watcher says so, drops its socket and polls:
        a step committed by another connection still wakes the reader; cancelling still
        cancels."""
        bell_dir = tmp_path / "bell"
        changes, log = AlertChanges(Doorbell(bell_dir)), FakeLog()

        async def broken(sock: socket.socket, size: int) -> bytes:
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(asyncio.get_running_loop(), "sock_recv", broken)
        with capture_logs() as logs:
            watcher = await _wakes_by_polling(changes, log)
            assert _sockets(bell_dir) == set()  # its socket closed and removed
            watcher.cancel()
            with pytest.raises(asyncio.CancelledError):
                await watcher
        assert watcher.cancelled()
        failed = [e for e in logs if e["event"] == "alerts.doorbell_failed"]
        assert len(failed) == 1
        assert failed[0]["error"] == "OSError"

    async def test_two_watchers_each_close_only_their_own_socket(self, tmp_path) -> None:
        """Two watchers on one AlertChanges each hold a socket; stopping one leaves the
        other's, which is still rung."""
        bell_dir = tmp_path / "bell"
        committer = AlertChanges(Doorbell(bell_dir))
        changes, log = AlertChanges(Doorbell(bell_dir)), FakeLog()
        first = asyncio.create_task(watch_alert_steps(changes, log.latest, every_seconds=60.0))
        second: asyncio.Task[None] | None = None
        try:
            await _until(lambda: len(_sockets(bell_dir)) == 1, "the first's socket")
            firsts = _sockets(bell_dir)
            second = asyncio.create_task(watch_alert_steps(changes, log.latest, every_seconds=60.0))
            await _until(lambda: len(_sockets(bell_dir)) == 2, "the second's socket")
            seconds = _sockets(bell_dir) - firsts
            await _stopped(first)
            assert _sockets(bell_dir) == seconds
            committer.announce()  # the second still hears rings: its first read
            await _until(lambda: log.reads == 1, "the second's read at the ring")
            waiting = asyncio.create_task(changes.wait(changes.mark(), 30.0))
            await _until(lambda: changes.waiting == 1, "the reader")
            log.seq = 9
            committer.announce()
            assert await asyncio.wait_for(waiting, 5.0) is True
            await _stopped(second)
            assert _sockets(bell_dir) == set()
        finally:
            await _stopped(first)
            if second is not None:
                await _stopped(second)

    async def test_without_a_socket_the_watcher_polls(self, tmp_path) -> None:
        """A directory where no socket can be made leaves the watcher polling on its tick."""
        blocked = tmp_path / "file"
        blocked.write_text("")
        changes, log = AlertChanges(Doorbell(blocked / "bell")), FakeLog()
        with capture_logs() as logs:
            watcher = asyncio.create_task(
                watch_alert_steps(changes, log.latest, every_seconds=0.01)
            )
            try:
                waiting = asyncio.create_task(changes.wait(changes.mark(), 30.0))
                await asyncio.sleep(0.05)
                log.seq = 2
                assert await asyncio.wait_for(waiting, 5.0) is True
            finally:
                watcher.cancel()
        assert "alerts.doorbell_unavailable" in {e["event"] for e in logs}
