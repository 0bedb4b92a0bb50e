"""Alert webhooks against a real local HTTP server (uvicorn), and the operator router.

A receiver that fails twice then succeeds gets the alert on the third attempt with a valid
signature; one that always fails leaves the delivery dead after the limit, which an IG
officer sees through ``GET /api/v1/deliveries`` and re-drives with ``POST .../retry``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from contracts import AgencyKind
from hub.api.deps import current_caller
from hub.auth import Caller
from hub.delivery.api import deliveries_router
from hub.delivery.backoff import RetryPolicy
from hub.delivery.signing import SignatureInvalid, verify
from hub.delivery.store import DeliveryStatus, DeliveryStore, StoredDelivery, delivery_id_for
from hub.delivery.webhooks import AlertDispatcher, alert_body
from hub.domain.roles import Role
from hub.registry import Agency
from hub.store.db import create_engine, migrate
from tests.support.databases import BACKENDS, fresh_database_url
from tests.unit.test_delivery_topics import CHILD, governance, write_config
from tests.unit.test_delivery_webhooks import SECRET, SUBSCRIBERS, alert, queue, snapshot

pytestmark = pytest.mark.integration

HOOK = "school-hook"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Receiver:
    """A partner endpoint (ASGI) answering scripted status codes; checks each signature."""

    codes: list[int]
    received: list[tuple[bytes, dict[str, str], bool]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        try:
            verify(body, headers, SECRET.encode(), now=int(time.time()))
            valid = True
        except SignatureInvalid:
            valid = False
        self.received.append((body, headers, valid))
        code = self.codes.pop(0) if len(self.codes) > 1 else self.codes[0]
        await send({"type": "http.response.start", "status": code, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
async def server() -> AsyncIterator[tuple[Receiver, str]]:
    """A real HTTP server on a free local port, serving a Receiver."""
    receiver = Receiver([200])
    port = free_port()
    config = uvicorn.Config(receiver, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    while not srv.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await asyncio.sleep(0.01)
    try:
        yield receiver, f"http://127.0.0.1:{port}/hub/alerts"
    finally:
        srv.should_exit = True
        await task


@dataclass
class World:
    dispatcher: AlertDispatcher
    store: DeliveryStore
    engine: Any


@pytest.fixture(params=BACKENDS)
async def world(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    server: tuple[Receiver, str],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[World]:
    """A dispatcher (real clock, 3 attempts, 50 ms base delay) aimed at the local server."""
    monkeypatch.setenv("HUB_TEST_DELIVERY_SECRET", SECRET)
    engine = create_engine(await fresh_database_url(request.param, tmp_path))
    await migrate(engine)
    _, url = server
    rules, subs = write_config(tmp_path, SUBSCRIBERS.replace("https://dsl.example/hub", url))
    store = DeliveryStore(engine)
    dispatcher = AlertDispatcher(
        subscribers=subs,
        store=store,
        governance=governance(engine, rules),
        snapshots=snapshot,
        policy=RetryPolicy(attempts=3, base_seconds=0.05, cap_seconds=0.2),
        timeout_seconds=5.0,
    )
    try:
        yield World(dispatcher, store, engine)
    finally:
        await dispatcher.aclose()
        await engine.dispose()


async def settle(world: World, delivery_id: str, *, within: float = 15.0) -> StoredDelivery:
    """Run due deliveries until this one is no longer pending."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        await world.dispatcher.run_due()
        row = await world.store.get(delivery_id)
        assert row is not None
        if row.status is not DeliveryStatus.pending:
            return row
        await asyncio.sleep(0.02)
    raise AssertionError(f"delivery {delivery_id} still pending after {within}s")


def operator_app(world: World, role: Role) -> FastAPI:
    """The deliveries router over the test engine, the caller fixed to one role."""
    app = FastAPI()
    app.include_router(deliveries_router)
    app.state.hub = SimpleNamespace(store=SimpleNamespace(engine=world.engine))
    agency = Agency("northshire-cs", AgencyKind.childrens_services, "Northshire CS")
    app.dependency_overrides[current_caller] = lambda: Caller("ig-1", agency, role)
    return app


class TestWebhookOverHttp:
    async def test_third_attempt_delivers(self, world: World, server: tuple[Receiver, str]) -> None:
        """503, 503, 200: delivered on the 3rd attempt, the same signed body each time."""
        receiver, _ = server
        receiver.codes[:] = [503, 503, 200]
        (row,) = await queue(world.dispatcher, world.store, [alert(1)])
        done = await settle(world, row.delivery_id)
        assert (done.status, done.attempts, done.last_status_code) == (
            DeliveryStatus.delivered,
            3,
            200,
        )
        body = alert_body(alert(1), HOOK).encode()
        assert [(b, valid) for b, _, valid in receiver.received] == [(body, True)] * 3
        assert {h["x-hub-delivery"] for _, h, _ in receiver.received} == {row.delivery_id}

    async def test_dead_after_limit_visible_and_retried(
        self, world: World, server: tuple[Receiver, str]
    ) -> None:
        """Always 500: dead after 3 attempts; the IG officer lists it and re-drives it."""
        receiver, _ = server
        receiver.codes[:] = [500]
        (row,) = await queue(world.dispatcher, world.store, [alert(1)])
        dead = await settle(world, row.delivery_id)
        assert (dead.status, dead.attempts, dead.last_error_class, dead.last_status_code) == (
            DeliveryStatus.dead,
            3,
            "HTTPStatusError",
            500,
        )
        assert len(receiver.received) == 3
        transport = httpx.ASGITransport(app=operator_app(world, Role.ig_officer))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as api:
            listed = await api.get("/api/v1/deliveries", params={"status": "dead"})
            assert listed.status_code == 200
            assert listed.json() == {"deliveries": [dead.public()]}
            assert set(dead.public()) == {
                "delivery_id",
                "subscriber_id",
                "kind",
                "subject_id",
                "status",
                "attempts",
                "next_attempt_at",
                "last_error_class",
                "last_status_code",
                "created_at",
                "updated_at",
                "delivered_at",
            }  # no body, no child id, no content
            by_other = await api.get("/api/v1/deliveries", params={"subscriber": "other"})
            assert by_other.json() == {"deliveries": []}
            receiver.codes[:] = [200]
            retried = await api.post(f"/api/v1/deliveries/{row.delivery_id}/retry")
            assert retried.status_code == 202
            assert (retried.json()["status"], retried.json()["attempts"]) == ("pending", 0)
            again = await api.post(f"/api/v1/deliveries/{row.delivery_id}/retry")
            assert (again.status_code, again.json()) == (
                409,
                {"detail": "only a dead delivery can be retried"},
            )
            missing = await api.post(f"/api/v1/deliveries/{delivery_id_for('x', 'y')}/retry")
            assert missing.status_code == 404
        delivered = await settle(world, row.delivery_id)
        assert (delivered.status, delivered.attempts) == (DeliveryStatus.delivered, 1)

    async def test_router_refuses_other_roles(self, world: World) -> None:
        """Anyone but an IG officer gets 403 from both routes."""
        transport = httpx.ASGITransport(app=operator_app(world, Role.social_worker))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as api:
            listed = await api.get("/api/v1/deliveries")
            retried = await api.post(f"/api/v1/deliveries/{delivery_id_for('a', 'b')}/retry")
        assert (listed.status_code, listed.json()) == (
            403,
            {"detail": "only ig_officer may do this"},
        )
        assert retried.status_code == 403
        assert CHILD not in listed.text
