"""Alert webhooks through the real hub: an alert raised on the real broker reaches a partner's
HTTP endpoint signed, once, after the partner's outage and a crash of the hub in between."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.domain.roles import Role
from tests.e2e.test_alert_stream import CS, HEALTH, envelope, submit
from tests.integration.test_delivery_webhook_http import Receiver, server  # noqa: F401 - fixture
from tests.support.hub_process import HubProcess, poll
from tests.unit.test_delivery_webhooks import SECRET

pytestmark = pytest.mark.e2e

HOOK = "northshire-cs-case-system"
SEED = 7301

SUBSCRIBERS = """\
version: 1
subscribers:
  - id: {hook}
    agency_id: northshire-cs
    role: social_worker
    purpose: safeguarding
    kind: webhook
    url: {url}
    secret: {{env: HUB_TEST_DELIVERY_SECRET}}
    alerts: {{rules: [unscheduled_care_with_plan], severities: [high, critical]}}
"""


async def deliveries(hub: HubProcess) -> list[dict[str, Any]]:
    """The delivery ledger as the IG officer sees it."""
    headers = hub.headers(sub="ig-1", agency="northshire-cs", role=Role.ig_officer)
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.get(f"{hub.url}/api/v1/deliveries", headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["deliveries"])


async def audited(hub: HubProcess, delivery_id: str) -> bool:
    """Whether the audit trail holds the delivery's ``alert.delivered`` record."""
    headers = hub.headers(sub="ig-1", agency="northshire-cs", role=Role.ig_officer)
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.get(
            f"{hub.url}/api/v1/audit", params={"action": "alert.delivered"}, headers=headers
        )
    assert r.status_code == 200, r.text
    return any(e["extra"].get("delivery_id") == delivery_id for e in r.json()["records"])


class TestAlertWebhook:
    async def test_delivered_once_signed_after_an_outage_and_a_crash(
        self,
        make_hub: Callable[..., HubProcess],
        server: tuple[Receiver, str],  # noqa: F811 - the fixture imported above
        tmp_path: Path,
    ) -> None:
        """The partner answers 503 while the alert is raised; the hub is killed with the
        delivery pending; restarted, it sends the same signed body again and the partner's 200
        marks it delivered: one alert, one delivery, one success, an audit record."""
        receiver, url = server
        receiver.codes[:] = [503]
        subscribers = tmp_path / "subscribers.yaml"
        subscribers.write_text(SUBSCRIBERS.format(hook=HOOK, url=url), "utf-8")
        env = {
            "HUB_SUBSCRIBERS_FILE": str(subscribers),
            "HUB_TEST_DELIVERY_SECRET": SECRET,
            "HUB_WEBHOOK_BASE_DELAY_SECONDS": "0.5",
            "HUB_WEBHOOK_MAX_DELAY_SECONDS": "1",
            "HUB_WEBHOOK_ATTEMPTS": "50",
        }
        hub = make_hub(**env)
        hub.start()
        submit(hub, envelope(SEED, "plan"))
        # The plan on hub.events before the attendance (two agencies' topics, read apart).
        await poll(lambda: hub.has_event(f"{CS}:stream-{SEED}-plan"))
        submit(hub, envelope(SEED, "ed"))

        async def refused_twice() -> bool:
            return len(receiver.received) >= 2

        await poll(refused_twice)
        (pending,) = await deliveries(hub)
        assert (pending["subscriber_id"], pending["status"]) == (HOOK, "pending")
        hub.kill()

        receiver.codes[:] = [200]
        before = len(receiver.received)
        again = make_hub(**env)
        again.start()

        async def delivered() -> dict[str, Any] | None:
            rows = await deliveries(again)
            return rows[0] if rows and rows[0]["status"] == "delivered" else None

        done = await poll(delivered)
        assert done["delivery_id"] == pending["delivery_id"]
        assert done["attempts"] >= 3 and done["last_status_code"] == 200
        assert len(receiver.received) == before + 1  # one success, never sent again after it
        bodies = {body for body, _, _ in receiver.received}
        assert len(bodies) == 1  # the same bytes at every attempt
        assert all(valid for _, _, valid in receiver.received)
        assert {h["x-hub-delivery"] for _, h, _ in receiver.received} == {done["delivery_id"]}
        (body,) = bodies
        alert = json.loads(body)["alert"]
        assert alert["rule_id"] == "unscheduled_care_with_plan"
        assert alert["trigger_event_ids"] == [
            f"{HEALTH}:stream-{SEED}-ed",
            f"{CS}:stream-{SEED}-plan",
        ]
        assert await poll(lambda: audited(again, done["delivery_id"]))
