"""The webhook retry schedule: doubling delays, equal jitter, a cap, a fixed allowance."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hub.delivery.backoff import RetryPolicy

pytestmark = pytest.mark.unit


class TestRetryPolicy:
    def test_nominal_delays_double_up_to_the_cap(self) -> None:
        """Delays are base, 2x base, 4x base ... never beyond the cap."""
        policy = RetryPolicy(attempts=8, base_seconds=2.0, cap_seconds=30.0)
        assert [policy.nominal(n) for n in range(1, 8)] == [2, 4, 8, 16, 30, 30, 30]

    def test_jitter_spans_half_to_whole_delay(self) -> None:
        """The jittered delay lies between half the nominal delay and all of it."""
        low = RetryPolicy(base_seconds=2.0, rand=lambda: 0.0)
        high = RetryPolicy(base_seconds=2.0, rand=lambda: 1.0)
        mid = RetryPolicy(base_seconds=2.0, rand=lambda: 0.5)
        assert [low.delay(n) for n in (1, 2, 3)] == [timedelta(seconds=s) for s in (1, 2, 4)]
        assert [high.delay(n) for n in (1, 2, 3)] == [timedelta(seconds=s) for s in (2, 4, 8)]
        assert mid.delay(3) == timedelta(seconds=6)

    def test_huge_failure_counts_stay_capped(self) -> None:
        """A very long run of failures does not overflow; it waits the cap."""
        assert RetryPolicy(cap_seconds=900.0).nominal(10_000) == 900.0

    def test_exhausted_after_the_allowance(self) -> None:
        """With 3 attempts, the third failure makes the delivery dead."""
        policy = RetryPolicy(attempts=3)
        assert [policy.exhausted(n) for n in (1, 2, 3, 4)] == [False, False, True, True]

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"attempts": 0}, "attempts must be at least 1"),
            ({"base_seconds": 0}, "base and cap delays must be positive"),
            ({"cap_seconds": -1}, "base and cap delays must be positive"),
        ],
    )
    def test_rejects_nonsense(self, kwargs: dict[str, float], message: str) -> None:
        """A policy with no attempts or a non-positive delay is refused."""
        with pytest.raises(ValueError) as caught:
            RetryPolicy(**kwargs)  # type: ignore[arg-type]
        assert str(caught.value) == message

    def test_nominal_needs_a_failure(self) -> None:
        """There is no delay before the first attempt."""
        with pytest.raises(ValueError, match="failures must be at least 1"):
            RetryPolicy().nominal(0)
