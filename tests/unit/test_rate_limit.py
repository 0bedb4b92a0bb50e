"""Rate limits: token buckets on an injected clock, and the 429 problem answer over HTTP."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from contracts import AgencyKind
from hub.api.deps import current_caller
from hub.api.rate_limit import (
    PROBLEM_TYPE,
    RATE_LIMIT_RESPONSES,
    Decision,
    Limit,
    RateLimitConfig,
    RateLimited,
    RateLimits,
    TokenBucketLimiter,
    install_rate_limits,
    limit_agency_submissions,
    limit_caller,
)
from hub.auth import Caller
from hub.domain.roles import Role
from hub.registry import Agency
from hub.settings import Settings

pytestmark = pytest.mark.unit

POLICE = Agency("northshire-police", AgencyKind.police, "Northshire Police")
SCHOOL = Agency("northshire-school-1", AgencyKind.schools, "Northshire Academy")


class FakeClock:
    """Monotonic seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class TestLimit:
    """A limit is a positive rate and a burst of at least one."""

    def test_rejects_nonsense(self) -> None:
        """Zero rate or zero burst is refused at construction."""
        with pytest.raises(ValueError, match="per_minute > 0"):
            Limit(0, 5)
        with pytest.raises(ValueError, match="burst >= 1"):
            Limit(60, 0)

    def test_describes_itself(self) -> None:
        """The description is the sentence the 429 body carries."""
        assert Limit(600, 100).describe() == "600 requests a minute, bursts of 100"


class TestTokenBucket:
    """A bucket allows a burst, then one request per refill interval, per key."""

    def test_burst_then_refusal_with_wait(self, clock: FakeClock) -> None:
        """Three tokens at 60/min: three pass, the fourth waits exactly one second."""
        limiter = TokenBucketLimiter(Limit(60, 3), clock=clock)
        assert [limiter.take("a") for _ in range(4)] == [
            Decision(True, 2, 0.0),
            Decision(True, 1, 0.0),
            Decision(True, 0, 0.0),
            Decision(False, 0, 1.0),
        ]

    def test_refills_with_time_up_to_the_burst(self, clock: FakeClock) -> None:
        """Tokens come back at the rate and never beyond the burst."""
        limiter = TokenBucketLimiter(Limit(60, 3), clock=clock)
        for _ in range(3):
            limiter.take("a")
        clock.advance(0.5)
        assert limiter.take("a") == Decision(False, 0, 0.5)
        clock.advance(0.5)
        assert limiter.take("a") == Decision(True, 0, 0.0)
        clock.advance(3600)
        assert [limiter.take("a").allowed for _ in range(4)] == [True, True, True, False]

    def test_keys_have_their_own_buckets(self, clock: FakeClock) -> None:
        """One agency using its burst does not slow another."""
        limiter = TokenBucketLimiter(Limit(60, 1), clock=clock)
        assert limiter.take("police").allowed
        assert not limiter.take("police").allowed
        assert limiter.take("school").allowed

    def test_clock_going_backwards_adds_nothing(self, clock: FakeClock) -> None:
        """A clock stepping back never mints tokens."""
        limiter = TokenBucketLimiter(Limit(60, 1), clock=clock)
        limiter.take("a")
        clock.advance(-10)
        assert limiter.take("a") == Decision(False, 0, 1.0)

    def test_memory_stays_bounded(self, clock: FakeClock) -> None:
        """Past max_keys, refilled buckets are forgotten first, then the least recent."""
        limiter = TokenBucketLimiter(Limit(60, 1), clock=clock, max_keys=2)
        limiter.take("a")
        clock.advance(5)
        limiter.take("b")
        limiter.take("c")  # "a" refilled long ago: forgotten
        assert len(limiter) == 2
        limiter.take("d")  # none refilled: the oldest ("b") goes
        assert len(limiter) == 2
        assert not limiter.take("c").allowed


class TestConfig:
    """Limits are read from the hub's settings."""

    def test_reads_settings_fields(self) -> None:
        """Every rate_limit_* field is taken from the hub's settings."""
        settings = Settings(
            rate_limit_enabled=False,
            rate_limit_agency_per_minute=30.0,
            rate_limit_agency_burst=5,
            rate_limit_caller_per_minute=90.0,
            rate_limit_caller_burst=9,
        )
        assert RateLimitConfig.from_settings(settings) == RateLimitConfig(False, 30.0, 5, 90.0, 9)


def _rejections(registry: CollectorRegistry, scope: str, agency_id: str) -> float | None:
    return registry.get_sample_value(
        "hub_rate_limited_total", {"scope": scope, "agency_id": agency_id}
    )


class TestRateLimits:
    """Refusals raise RateLimited and are counted by agency id."""

    def test_counts_refusals_by_agency(self, clock: FakeClock) -> None:
        """The counter carries the agency id and the limit's scope; nothing about a person."""
        registry = CollectorRegistry()
        limits = RateLimits(RateLimitConfig(agency_per_minute=60, agency_burst=1), registry,
                            clock=clock)  # fmt: skip
        limits.check_agency("northshire-police")
        with pytest.raises(RateLimited) as refused:
            limits.check_agency("northshire-police")
        assert refused.value.retry_after_seconds == 1
        assert _rejections(registry, "agency_submissions", "northshire-police") == 1.0
        assert _rejections(registry, "agency_submissions", "northshire-school-1") is None

    def test_caller_buckets_are_per_subject(self, clock: FakeClock) -> None:
        """Two people of one agency have a bucket each; refusals count against the agency."""
        registry = CollectorRegistry()
        limits = RateLimits(RateLimitConfig(caller_per_minute=60, caller_burst=1), registry,
                            clock=clock)  # fmt: skip
        limits.check_caller("northshire-cs", "sw-1")
        limits.check_caller("northshire-cs", "sw-2")
        with pytest.raises(RateLimited):
            limits.check_caller("northshire-cs", "sw-1")
        assert _rejections(registry, "caller_requests", "northshire-cs") == 1.0

    def test_disabled_never_refuses(self, clock: FakeClock) -> None:
        """With enabled=False every request passes."""
        limits = RateLimits(
            RateLimitConfig(enabled=False, agency_burst=1), CollectorRegistry(), clock=clock
        )
        for _ in range(10):
            limits.check_agency("northshire-police")

    def test_retry_after_rounds_up_to_whole_seconds(self) -> None:
        """A wait of 0.2 s is announced as 1 s, 2.01 s as 3 s."""
        assert RateLimited("x", Limit(60, 1), 0.2).retry_after_seconds == 1
        assert RateLimited("x", Limit(60, 1), 2.01).retry_after_seconds == 3


def _app(clock: FakeClock, config: RateLimitConfig) -> tuple[FastAPI, dict[str, Caller]]:
    """An app with one limited submission route and one limited read route."""
    app = FastAPI()
    who: dict[str, Caller] = {"caller": Caller("pc-1", POLICE, Role.agency_system)}

    def caller() -> Caller:
        return who["caller"]

    app.dependency_overrides[current_caller] = caller
    submit = APIRouter(prefix="/api/v1")

    @submit.post("/submissions", status_code=202)
    async def accept(request: Request) -> dict[str, int]:
        return {"accepted": 1}

    reads = APIRouter(prefix="/api/v1")

    @reads.get("/alerts")
    async def alerts() -> dict[str, list[str]]:
        return {"alerts": []}

    install_rate_limits(app, config, CollectorRegistry(), clock=clock)
    app.include_router(
        submit, dependencies=[Depends(limit_agency_submissions)], responses=RATE_LIMIT_RESPONSES
    )
    app.include_router(reads, dependencies=[Depends(limit_caller)], responses=RATE_LIMIT_RESPONSES)
    return app, who


class TestOverHttp:
    """Wired as router dependencies, a refusal is a 429 problem with Retry-After."""

    def test_agency_submissions_limited_with_problem_body(self, clock: FakeClock) -> None:
        """The second submission within a second gets the whole problem body below."""
        app, _ = _app(clock, RateLimitConfig(agency_per_minute=60, agency_burst=1))
        with TestClient(app) as client:
            assert client.post("/api/v1/submissions").status_code == 202
            refused = client.post("/api/v1/submissions")
            clock.advance(1)
            again = client.post("/api/v1/submissions")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json() == {
            "type": PROBLEM_TYPE,
            "title": "Too many requests",
            "status": 429,
            "detail": "Limit for agency submissions is 60 requests a minute, bursts of 1; "
            "retry after 1 s.",
            "limit": {"scope": "agency_submissions", "per_minute": 60.0, "burst": 1},
            "retry_after": 1,
        }
        assert again.status_code == 202

    def test_agencies_do_not_share_a_bucket(self, clock: FakeClock) -> None:
        """A school still submits while the police bucket is empty."""
        app, who = _app(clock, RateLimitConfig(agency_per_minute=60, agency_burst=1))
        with TestClient(app) as client:
            client.post("/api/v1/submissions")
            assert client.post("/api/v1/submissions").status_code == 429
            who["caller"] = Caller("dsl-1", SCHOOL, Role.agency_system)
            assert client.post("/api/v1/submissions").status_code == 202

    def test_reads_limited_per_caller(self, clock: FakeClock) -> None:
        """Reads take from the caller's bucket, not the agency's submission bucket."""
        app, _ = _app(clock, RateLimitConfig(caller_per_minute=120, caller_burst=2))
        with TestClient(app) as client:
            statuses = [client.get("/api/v1/alerts").status_code for _ in range(3)]
            assert client.post("/api/v1/submissions").status_code == 202
        assert statuses == [200, 200, 429]

    def test_openapi_documents_the_429(self, clock: FakeClock) -> None:
        """Limited routes declare the 429 and its Retry-After header."""
        app, _ = _app(clock, RateLimitConfig())
        doc = app.openapi()
        documented = doc["paths"]["/api/v1/submissions"]["post"]["responses"]["429"]
        assert set(documented["headers"]) == {"Retry-After"}

    def test_app_without_limiter_is_not_limited(self) -> None:
        """The dependencies are inert on an app that never installed limits."""
        app = FastAPI()
        app.dependency_overrides[current_caller] = lambda: Caller("pc-1", POLICE, Role.police_ppu)

        @app.get("/x", dependencies=[Depends(limit_caller), Depends(limit_agency_submissions)])
        async def x() -> dict[str, bool]:
            return {"ok": True}

        with TestClient(app) as client:
            assert [client.get("/x").status_code for _ in range(5)] == [200] * 5
