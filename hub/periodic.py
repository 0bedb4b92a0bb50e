"""Background work repeated on a timer inside a hub process (cancelled at shutdown)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from hub.observability import get_logger

__all__ = ["run_every"]

log = get_logger(__name__)


async def run_every(
    step: Callable[[], Awaitable[object]], *, every_seconds: float, failed: str
) -> None:
    """Run ``step`` now and then every ``every_seconds``, for ever (until cancelled); a step
    that fails is logged as the event ``failed`` and tried again at the next tick."""
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(failed)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.sleep(every_seconds)
