"""The webhook retry schedule: exponential back-off with jitter, capped.

The delay before attempt ``n + 1`` (after ``n`` failures) is drawn uniformly from
``[d / 2, d]`` where ``d = min(cap, base * 2 ** (n - 1))`` ("equal jitter"): retries spread
out so many failed deliveries do not hit a recovering partner at the same instant, yet never
come sooner than half the nominal delay. Retries are persisted (a table), not held in memory,
so a general in-process retry library does not fit; the arithmetic is all that is needed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts a delivery gets and how long to wait between them."""

    attempts: int = 8
    base_seconds: float = 2.0
    cap_seconds: float = 900.0
    rand: Callable[[], float] = random.random

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.base_seconds <= 0 or self.cap_seconds <= 0:
            raise ValueError("base and cap delays must be positive")

    def nominal(self, failures: int) -> float:
        """The un-jittered delay after ``failures`` failed attempts (``failures >= 1``)."""
        if failures < 1:
            raise ValueError("failures must be at least 1")
        exponent = min(failures - 1, 62)  # 2**62 seconds is beyond any cap
        return min(self.cap_seconds, self.base_seconds * 2.0**exponent)

    def delay(self, failures: int) -> timedelta:
        """The jittered delay before the next attempt, after ``failures`` failed attempts."""
        d = self.nominal(failures)
        return timedelta(seconds=d / 2 + self.rand() * d / 2)

    def exhausted(self, failures: int) -> bool:
        """Whether ``failures`` failed attempts use up the allowance (the delivery is dead)."""
        return failures >= self.attempts
