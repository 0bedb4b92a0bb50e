"""``run_every``: the timer loop behind the hub's background work."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from hub.periodic import run_every

pytestmark = pytest.mark.unit


async def test_a_failed_step_is_logged_and_tried_again_until_cancelled() -> None:
    """The first step fails (logged under the given event), the next ones run on; cancelling
    stops the loop."""
    calls: list[int] = []
    again = asyncio.Event()

    async def step() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("store unavailable")
        if len(calls) == 3:
            again.set()

    with capture_logs() as logs:
        task = asyncio.create_task(run_every(step, every_seconds=0.001, failed="test.failed"))
        await asyncio.wait_for(again.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(calls) >= 3
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["test.failed"]
