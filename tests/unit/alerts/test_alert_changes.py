"""Alert-stream wake-ups: announced commits wake readers at once; other processes' by a watcher."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

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
            await asyncio.sleep(0.05)
            waiting = asyncio.create_task(watched.wait(watched.mark(), 30.0))
            await asyncio.sleep(0.05)
            committer.announce()  # a ring, but the seq has not moved: nobody is woken
            await asyncio.sleep(0.1)
            assert (waiting.done(), log.reads) == (False, 1)  # read at the ring, not the tick
            log.seq = 4
            started = time.monotonic()
            committer.announce()
            assert await asyncio.wait_for(waiting, 5.0) is True
            assert time.monotonic() - started < 1.0
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        assert list(bell_dir.iterdir()) == []  # the watcher took its socket away

    async def test_a_socket_nobody_holds_is_removed(self, tmp_path) -> None:
        """A watcher's socket left behind by a killed process is dropped at the next ring."""
        bell = Doorbell(tmp_path)
        stale = tmp_path / "999-dead.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as gone:
            gone.bind(str(stale))
        bell.ring()
        assert not stale.exists()

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
