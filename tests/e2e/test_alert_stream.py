"""The live alert stream on a real ``hub serve``: woken by the alert's commit in its own process,
by the watcher's poll when another process wrote it, and resumable with ``Last-Event-ID``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from contracts.examples import example_data, example_envelope, valid_nhs_number
from hub.crypto.runtime import sign_as_dev
from hub.domain.roles import Role
from tests.support.hub_process import PATIENCE, HubProcess, start_all

pytestmark = pytest.mark.e2e

LEAD = "sam.practitioner@northshire.example"  # the lead practitioner on the example plan
CS, HEALTH = "northshire-cs", "northshire-health"


@dataclass(frozen=True)
class Received:
    """One server-sent event and the wall clock when its data line arrived."""

    id: int
    kind: str
    data: dict[str, Any]
    at: float


def envelope(seed: int, kind: str) -> dict[str, Any]:
    """A signed plan start (``plan``) or an ED attendance now (``ed``) of child ``seed``."""
    now = datetime.now(UTC)
    agency, event_type = (
        (CS, "involvement.started") if kind == "plan" else (HEALTH, "contact.recorded")
    )
    data = example_data(event_type)
    if kind == "plan":
        data["started_on"] = (now - timedelta(days=30)).date().isoformat()
    else:
        data["ended_at"] = (now + timedelta(hours=2)).isoformat()
    doc = example_envelope(
        id=f"{agency}:stream-{seed}-{kind}", source=f"urn:agency:{agency}", type=event_type,
        time=(now - timedelta(days=30) if kind == "plan" else now).isoformat(),
        recorded_at=now.isoformat(), subject=f"STREAM-{seed}", agency_id=agency,
        agency_kind="childrens_services" if kind == "plan" else "health",
        lawful_basis="public_task", sensitivity=[], data=data,
    )  # fmt: skip
    doc["person"]["identifiers"] = [{"system": "nhs", "value": valid_nhs_number(seed)}]
    return sign_as_dev(doc)  # type: ignore[no-any-return]


def submit(hub: HubProcess, doc: dict[str, Any]) -> None:
    agent = hub.headers(sub="adapter", agency=doc["agency_id"], role=Role.agency_system)
    sent = httpx.post(f"{hub.url}/api/v1/submissions", headers=agent, json=doc, timeout=30)
    assert sent.status_code == 202, sent.text


def lead_headers(hub: HubProcess, last_event_id: int | None = None) -> dict[str, str]:
    headers = hub.headers(sub=LEAD, agency=CS, role=Role.social_worker)
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    return headers


@contextlib.asynccontextmanager
async def stream(hub: HubProcess, headers: dict[str, str]) -> AsyncIterator[list[Received]]:
    """Follow the caller's alert stream; yields the list the events are appended to."""
    got: list[Received] = []
    opened = asyncio.Event()

    async def follow() -> None:
        fields: dict[str, str] = {}
        timeout = httpx.Timeout(10.0, read=None)
        async with (
            httpx.AsyncClient(timeout=timeout) as client,
            client.stream("GET", f"{hub.url}/api/v1/alerts/stream", headers=headers) as response,
        ):
            assert response.status_code == 200
            opened.set()
            async for line in response.aiter_lines():
                if line == "" and "data" in fields:
                    got.append(Received(int(fields["id"]), fields["event"],
                                        json.loads(fields["data"]), time.time()))  # fmt: skip
                    fields = {}
                elif line and not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    fields[name] = value

    task = asyncio.create_task(follow())
    await asyncio.wait_for(opened.wait(), 30)
    try:
        yield got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(check: Callable[[], bool], seconds: float = PATIENCE) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not received in time"
        await asyncio.sleep(0.02)


def delay(event: Received) -> float:
    """Seconds from the alert step's commit clock (``at``) to the event's arrival."""
    return event.at - datetime.fromisoformat(event.data["at"]).timestamp()


def triggered(got: list[Received], seed: int) -> list[Received]:
    """The events whose alert child ``seed``'s attendance triggered."""
    return [e for e in got if f"{HEALTH}:stream-{seed}-ed" in e.data["alert"]["trigger_event_ids"]]


async def raise_alerts(hub: HubProcess, seeds: list[int], got: list[Received]) -> list[Received]:
    """Plans, then one ED attendance per child: each raises an alert to the lead practitioner."""
    for seed in seeds:
        submit(hub, envelope(seed, "plan"))
    raised: list[Received] = []
    for seed in seeds:
        await asyncio.sleep(1.0)  # the plan is ahead of the attendance on hub.events
        submit(hub, envelope(seed, "ed"))
        await until(lambda: len(triggered(got, seed)) > 0)  # noqa: B023 - awaited here
        raised += triggered(got, seed)
    return raised


class TestWokenInProcess:
    """A process running the alert engine and the API streams an alert as it is committed."""

    async def test_streamed_well_before_the_poll(self, make_hub: Callable[..., HubProcess]):
        """With the cross-process poll at 30 s, alerts arrive within 2 s of their commit; the
        stream then resumes after Last-Event-ID and carries the acknowledgement."""
        hub = make_hub(HUB_ALERT_STREAM_POLL_SECONDS="30")
        hub.start()
        async with stream(hub, lead_headers(hub)) as got:
            raised = await raise_alerts(hub, [7101, 7102], got)
        assert [(e.kind, e.data["kind"]) for e in raised] == [("raised", "raised")] * 2
        assert [delay(e) < 2.0 for e in raised] == [True, True], [delay(e) for e in raised]
        first, second = raised
        assert first.id < second.id

        async with stream(hub, lead_headers(hub, first.id)) as again:
            await until(lambda: len(again) >= 1)
            await asyncio.sleep(0.5)
            assert [(e.id, e.data["alert"]["alert_id"]) for e in again] == [
                (second.id, second.data["alert"]["alert_id"])
            ]
            alert_id = second.data["alert"]["alert_id"]
            async with httpx.AsyncClient(timeout=30) as client:
                acked = await client.post(
                    f"{hub.url}/api/v1/alerts/{alert_id}/acknowledge", headers=lead_headers(hub)
                )
            assert acked.status_code == 200
            await until(lambda: len(again) == 2, seconds=2.0)
            assert (again[1].kind, again[1].data["alert"]["status"]) == (
                "acknowledged",
                "acknowledged",
            )
            assert again[1].id > second.id


class TestWatchedAcrossProcesses:
    """With a process per role, the API process's watcher finds the alerts process's steps."""

    async def test_streamed_by_the_fallback_poll(self, make_hub: Callable[..., HubProcess]):
        """An alert committed by `--role alerts` reaches the `--role api` stream within 3 s,
        far sooner than the 15 s heartbeat re-read."""
        hubs = {role: make_hub(role) for role in ("api", "alerts", "narrative", "ingest")}
        start_all(hubs.values())
        api = hubs["api"]
        async with stream(api, lead_headers(api)) as got:
            raised = await raise_alerts(api, [7201], got)
        assert [(e.kind, e.data["alert"]["trigger_event_ids"]) for e in raised] == [
            ("raised", [f"{HEALTH}:stream-7201-ed", f"{CS}:stream-7201-plan"])
        ]
        assert delay(raised[0]) < 3.0, delay(raised[0])
