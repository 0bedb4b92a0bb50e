"""Rate limits for the API: token buckets per agency (submissions) and per caller (the rest).

A bucket holds at most ``burst`` tokens and refills at ``per_minute / 60`` tokens a second; a
request takes one token or is refused with ``429 Too Many Requests``, a ``Retry-After`` header
(whole seconds until a token is back) and an RFC 9457 problem body that names the limit and
nothing about the caller or a child. Every refusal is counted in the Prometheus counter
``hub_rate_limited_total{scope, agency_id}``.

Wiring (in ``hub.api.app.create_app``)::

    limits = install_rate_limits(app, RateLimitConfig.from_settings(hub.settings),
                                 hub.metrics.registry)
    app.include_router(submissions.router, dependencies=[Depends(limit_agency_submissions)],
                       responses=RATE_LIMIT_RESPONSES)

The dependencies look the limiter up on ``app.state``; an app without one is not limited.
Buckets live in the process: with several API processes each enforces its own share.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter

from hub.api.deps import CurrentCaller
from hub.observability import get_logger
from hub.settings import Settings

__all__ = [
    "PROBLEM_TYPE",
    "RATE_LIMIT_RESPONSES",
    "Clock",
    "Decision",
    "Limit",
    "RateLimitConfig",
    "RateLimited",
    "RateLimits",
    "TokenBucketLimiter",
    "install_rate_limits",
    "limit_agency_submissions",
    "limit_caller",
]

log = get_logger(__name__)

Clock = Callable[[], float]
"""Monotonic seconds (``time.monotonic``); tests inject a fake."""

PROBLEM_TYPE: Final = "urn:safeguarding-hub:problem:rate-limited"
"""The ``type`` of the problem body of a 429."""

AGENCY_SUBMISSIONS: Final = "agency_submissions"
CALLER_REQUESTS: Final = "caller_requests"


@dataclass(frozen=True, slots=True)
class Limit:
    """A sustained rate (tokens a minute) and the burst a full bucket allows."""

    per_minute: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_minute <= 0 or self.burst < 1:
            raise ValueError("a limit needs per_minute > 0 and burst >= 1")

    @property
    def per_second(self) -> float:
        """Tokens added to the bucket each second."""
        return self.per_minute / 60.0

    def describe(self) -> str:
        """The limit in words, e.g. ``600 requests a minute, bursts of 100``."""
        return f"{self.per_minute:g} requests a minute, bursts of {self.burst}"


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a request may go ahead, tokens left, and seconds until one is back if not."""

    allowed: bool
    remaining: int
    retry_after: float


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    """Token buckets for one limit, one bucket per key, refilled lazily from the clock."""

    def __init__(self, limit: Limit, *, clock: Clock = time.monotonic, max_keys: int = 10_000):
        self.limit = limit
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> Decision:
        """Take one token from ``key``'s bucket if there is one; say how long to wait if not."""
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                self._make_room(now)
                bucket = self._buckets[key] = _Bucket(float(self.limit.burst), now)
            else:
                elapsed = max(0.0, now - bucket.updated)
                bucket.tokens = min(
                    float(self.limit.burst), bucket.tokens + elapsed * self.limit.per_second
                )
                bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return Decision(True, int(bucket.tokens), 0.0)
            wait = (1.0 - bucket.tokens) / self.limit.per_second
            return Decision(False, 0, wait)

    def __len__(self) -> int:
        return len(self._buckets)

    def _make_room(self, now: float) -> None:
        """Forget buckets that have refilled (they equal a new one); keeps memory bounded."""
        if len(self._buckets) < self._max_keys:
            return
        full_after = self.limit.burst / self.limit.per_second
        for key in [k for k, b in self._buckets.items() if now - b.updated >= full_after]:
            del self._buckets[key]
        if len(self._buckets) >= self._max_keys:  # all busy: drop the least recently used
            oldest = min(self._buckets, key=lambda k: self._buckets[k].updated)
            del self._buckets[oldest]


class RateLimited(Exception):
    """A request was refused by a limit; the handler turns it into a 429 problem response."""

    def __init__(self, scope: str, limit: Limit, retry_after: float) -> None:
        super().__init__(f"{scope}: {limit.describe()}")
        self.scope = scope
        self.limit = limit
        self.retry_after_seconds = max(1, math.ceil(retry_after))

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 problem body: the limit that was hit, never who hit it."""
        return {
            "type": PROBLEM_TYPE,
            "title": "Too many requests",
            "status": status.HTTP_429_TOO_MANY_REQUESTS,
            "detail": f"Limit for {self.scope.replace('_', ' ')} is {self.limit.describe()}; "
            f"retry after {self.retry_after_seconds} s.",
            "limit": {
                "scope": self.scope,
                "per_minute": self.limit.per_minute,
                "burst": self.limit.burst,
            },
            "retry_after": self.retry_after_seconds,
        }


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """The limits in force; read from ``Settings`` fields ``rate_limit_*`` (see module doc)."""

    enabled: bool = True
    agency_per_minute: float = 600.0
    agency_burst: int = 100
    caller_per_minute: float = 1200.0
    caller_burst: int = 200

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimitConfig:
        """The limits named by the hub's ``rate_limit_*`` settings."""
        return cls(
            enabled=settings.rate_limit_enabled,
            agency_per_minute=settings.rate_limit_agency_per_minute,
            agency_burst=settings.rate_limit_agency_burst,
            caller_per_minute=settings.rate_limit_caller_per_minute,
            caller_burst=settings.rate_limit_caller_burst,
        )


class RateLimits:
    """The hub's limiters and their refusal counter: per agency for submissions, per caller."""

    def __init__(
        self, config: RateLimitConfig, registry: CollectorRegistry, *, clock: Clock = time.monotonic
    ) -> None:
        self.config = config
        self.agencies = TokenBucketLimiter(
            Limit(config.agency_per_minute, config.agency_burst), clock=clock
        )
        self.callers = TokenBucketLimiter(
            Limit(config.caller_per_minute, config.caller_burst), clock=clock
        )
        self.rejected = Counter(
            "hub_rate_limited_total",
            "Requests refused with 429 by a rate limit, by limit and agency id.",
            ["scope", "agency_id"],
            registry=registry,
        )

    def check_agency(self, agency_id: str) -> None:
        """Take a token of the agency's submission bucket or raise RateLimited."""
        self._check(self.agencies, AGENCY_SUBMISSIONS, agency_id, agency_id)

    def check_caller(self, agency_id: str, sub: str) -> None:
        """Take a token of the caller's own bucket or raise RateLimited."""
        self._check(self.callers, CALLER_REQUESTS, f"{agency_id}\x00{sub}", agency_id)

    def _check(self, limiter: TokenBucketLimiter, scope: str, key: str, agency_id: str) -> None:
        if not self.config.enabled:
            return
        decision = limiter.take(key)
        if decision.allowed:
            return
        self.rejected.labels(scope, agency_id).inc()
        log.info(
            "api.rate_limited",
            scope=scope,
            agency_id=agency_id,
            retry_after=round(decision.retry_after, 3),
        )
        raise RateLimited(scope, limiter.limit, decision.retry_after)


async def _rate_limited_response(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimited)
    return JSONResponse(
        exc.problem(),
        status_code=status.HTTP_429_TOO_MANY_REQUESTS,
        headers={"Retry-After": str(exc.retry_after_seconds)},
        media_type="application/problem+json",
    )


def install_rate_limits(
    app: FastAPI,
    config: RateLimitConfig,
    registry: CollectorRegistry,
    *,
    clock: Clock = time.monotonic,
) -> RateLimits:
    """Put the limiters on ``app.state.rate_limits`` and answer RateLimited with a 429."""
    limits = RateLimits(config, registry, clock=clock)
    app.state.rate_limits = limits
    app.add_exception_handler(RateLimited, _rate_limited_response)
    return limits


def _limits(request: Request) -> RateLimits | None:
    return getattr(request.app.state, "rate_limits", None)


async def limit_agency_submissions(request: Request, caller: CurrentCaller) -> None:
    """Dependency: one token of the caller's agency's submission bucket (the token's agency,
    which the submission routes require to be the submitting agency)."""
    if (limits := _limits(request)) is not None:
        limits.check_agency(caller.agency.id)


async def limit_caller(request: Request, caller: CurrentCaller) -> None:
    """Dependency: one token of this caller's (agency, sub) bucket."""
    if (limits := _limits(request)) is not None:
        limits.check_caller(caller.agency.id, caller.sub)


RATE_LIMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "A rate limit was hit; wait `Retry-After` seconds.",
        "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
        "content": {
            "application/problem+json": {
                "schema": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail", "limit", "retry_after"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "limit": {
                            "type": "object",
                            "properties": {
                                "scope": {"type": "string"},
                                "per_minute": {"type": "number"},
                                "burst": {"type": "integer"},
                            },
                        },
                        "retry_after": {"type": "integer"},
                    },
                }
            }
        },
    }
}
"""OpenAPI ``responses`` for routers that carry a limit (``include_router(responses=...)``)."""
