"""Partner delivery through the real hub: a subscriber's `deliver.<subscriber>` topic gets the
events its rules permit, redacted and keyed by child, each delivery audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from contracts.examples import example_envelope, valid_nhs_number
from hub.crypto.runtime import sign_as_dev
from hub.domain.roles import Role
from hub.streams.log_reader import read_topic
from tests.support.hub_process import HubProcess, poll
from tests.support.scenario import envelope as scenario_envelope
from tests.support.scenario import mia

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


async def delivered(
    hub: HubProcess, subscriber: str = SUBSCRIBER
) -> list[tuple[bytes | None, dict[str, Any]]]:
    topic = f"{hub.env['HUB_TOPIC_PREFIX']}deliver.{subscriber}"
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


DSL = "northshire-primary-dsl"
MIA_CONCERN = "northshire-cs:held-concern"
MEETING = "northshire-cs:held-strategy-meeting"
SCHOOL_CONCERN = "northshire-primary:held-school-concern"


def mias_records() -> dict[str, dict[str, Any]]:
    """The school's concern about Mia (so the school is involved with her), children's
    services' concern about her, and the strategy meeting held on it two days later."""
    at = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    summary = {"raised_by_role": "social worker", "risk_level": "high", "category": "neglect"}
    return {
        SCHOOL_CONCERN: scenario_envelope(
            SCHOOL_CONCERN, "concern.raised",
            {**summary, "summary": "Arrives hungry most mornings.",
             "raised_by_role": "designated safeguarding lead"},
            occurred=at - timedelta(days=3), person=mia(with_upn=True)),
        MIA_CONCERN: scenario_envelope(
            MIA_CONCERN, "concern.raised", {**summary, "summary": "Referral accepted."},
            occurred=at, person=mia()),
        MEETING: scenario_envelope(
            MEETING, "contact.recorded",
            {"contact_type": "strategy_meeting", "summary": "Strategy meeting held.",
             "location": "Northtown", "details": {}},
            occurred=at + timedelta(days=2), person=mia()),
    }  # fmt: skip


class TestHeldDelivery:
    """A rule's delay holds a delivery until the milestone it waits for is recorded."""

    async def test_the_dsl_gets_the_concern_once_the_strategy_meeting_is_recorded(
        self, running_hub: HubProcess
    ) -> None:
        """Children's services' concern reaches the school's DSL only after the strategy
        meeting (rule school-dsl-cs-concerns-after-strategy): held in the ledger meanwhile,
        then published once, redacted, and audited."""
        hub = running_hub
        records = mias_records()
        ig = hub.headers(sub="ig-1", agency="northshire-cs", role=Role.ig_officer)
        async with httpx.AsyncClient(timeout=30) as client:

            async def submit(event_id: str) -> None:
                agency = event_id.split(":", 1)[0]
                headers = hub.headers(sub="adapter", agency=agency, role=Role.agency_system)
                r = await client.post(
                    f"{hub.url}/api/v1/submissions", json=records[event_id], headers=headers
                )
                assert r.status_code == 202, r.text

            async def ledger(status: str) -> list[dict[str, Any]]:
                r = await client.get(
                    f"{hub.url}/api/v1/deliveries",
                    params={"subscriber": DSL, "status": status},
                    headers=ig,
                )
                assert r.status_code == 200, r.text
                return list(r.json()["deliveries"])

            await submit(SCHOOL_CONCERN)
            await poll(lambda: hub.has_event(SCHOOL_CONCERN))
            await submit(MIA_CONCERN)

            async def held() -> list[dict[str, Any]]:
                return [d for d in await ledger("held") if d["subject_id"] == MIA_CONCERN]

            [waiting] = await poll(held)
            assert waiting["next_attempt_at"] is None  # a meeting has no time until recorded
            assert MIA_CONCERN not in await dsl_event_ids(hub)

            await submit(MEETING)

            async def sent() -> list[dict[str, Any]] | None:
                copies = [v for _, v in await delivered(hub, DSL) if v["id"] == MIA_CONCERN]
                return copies or None

            [copy] = await poll(sent)
            assert "related" not in copy["person"] and "address" not in copy["person"]

            async def recorded() -> list[dict[str, Any]] | None:
                # The copy reaches the topic just before the ledger and audit commit.
                rows = [d for d in await ledger("delivered") if d["subject_id"] == MIA_CONCERN]
                return rows or None

            [done] = await poll(recorded)
            assert done["delivery_id"] == waiting["delivery_id"]
            r = await client.get(
                f"{hub.url}/api/v1/audit", params={"action": "delivery.pushed"}, headers=ig
            )
            pushed = [x for x in r.json()["records"]
                      if x["extra"].get("delivery_id") == done["delivery_id"]]  # fmt: skip
            assert len(pushed) == 1
        assert (await dsl_event_ids(hub)).count(MIA_CONCERN) == 1


async def dsl_event_ids(hub: HubProcess) -> list[str]:
    return [str(v["id"]) for _, v in await delivered(hub, DSL)]
