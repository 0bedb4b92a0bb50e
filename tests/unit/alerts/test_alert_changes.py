"""Alert-stream wake-ups: announced commits wake readers at once; other processes' by a watcher."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from structlog.testing import capture_logs

from hub.alerts.changes import AlertChanges, watch_alert_steps

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
