"""Partner delivery through the real hub: a subscriber's `deliver.<subscriber>` topic gets the
events its rules permit, redacted and keyed by child, each delivery audited."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from contracts.examples import example_envelope, valid_nhs_number
from hub.crypto.runtime import sign_as_dev
from hub.domain.roles import Role
from hub.streams.log_reader import read_topic
from tests.support.hub_process import HubProcess, poll

pytestmark = pytest.mark.e2e

SUBSCRIBER = "northshire-health-named-nurse"


def health_concern(n: int) -> dict[str, Any]:
    env = example_envelope(
        id=f"northshire-health:dlv-{n:04d}",
        source="urn:agency:northshire-health",
        agency_id="northshire-health",
        agency_kind="health",
        subject=f"NH-DLV-{n:04d}",
        lawful_basis="public_task",
    )
    env["person"]["identifiers"] = [{"system": "nhs", "value": valid_nhs_number(900 + n)}]
    return env


async def delivered(hub: HubProcess) -> list[tuple[bytes | None, dict[str, Any]]]:
    topic = f"{hub.env['HUB_TOPIC_PREFIX']}deliver.{SUBSCRIBER}"
    out: list[tuple[bytes | None, dict[str, Any]]] = []
    async for batch in read_topic(hub.env["HUB_KAFKA_BOOTSTRAP"], topic):
        out.extend((r.key, json.loads(r.value)) for r in batch)
    return out


class TestTopicDelivery:
    """The named nurse's system receives its trust's own concern, once, and it is audited."""

    async def test_permitted_event_delivered_once_and_audited(
        self, running_hub: HubProcess
    ) -> None:
        hub = running_hub
        envelope = health_concern(1)
        headers = hub.headers(sub="adapter", agency="northshire-health", role=Role.agency_system)
        async with httpx.AsyncClient(timeout=30) as client:
            for _ in range(2):  # sent twice: delivered once
                r = await client.post(
                    f"{hub.url}/api/v1/submissions", json=sign_as_dev(envelope), headers=headers
                )
                assert r.status_code == 202, r.text

            async def arrived() -> list[tuple[bytes | None, dict[str, Any]]] | None:
                found = await delivered(hub)
                return found or None

            [(key, value)] = await poll(arrived)
            text = json.dumps(value)
            assert envelope["id"] in text
            assert "signature" not in value and "key_id" not in value
            assert key is not None and key.startswith(b"ch-")
            ig = hub.headers(sub="ig-1", agency="northshire-cs", role=Role.ig_officer)

            async def audited() -> list[dict[str, Any]] | None:
                r = await client.get(
                    f"{hub.url}/api/v1/audit",
                    params={"action": "delivery.pushed"},
                    headers=ig,
                )
                r.raise_for_status()
                records = r.json()["records"]
                return records or None

            [record] = await poll(audited)
            assert record["child_id"] == key.decode()
            listed = await client.get(f"{hub.url}/api/v1/deliveries", headers=ig)
            assert listed.status_code == 200, listed.text
        assert len(await delivered(hub)) == 1
