"""Alerts pass the sharing rules on a real ``hub serve``: absent for a caller the rules do not
permit, shown and audited for one they do, and decided as soon as they are raised, before the
narrative projector has stored their trigger."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.examples import example_data, example_envelope, valid_nhs_number
from hub.auth import TokenIssuer
from hub.crypto.runtime import sign_as_dev
from hub.crypto.token_keys import load_or_create_signing_key
from hub.domain.roles import Role
from tests.e2e.test_alert_stream import stream, until
from tests.support.hub_process import HubProcess, poll, start_all

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
NORTHSHIRE = REPO / "deploy" / "rules" / "northshire.yaml"
ALERTS = REPO / "deploy" / "alerts" / "northshire.yaml"
KINDS = {"northshire-cs": "childrens_services", "northshire-police": "police",
         "northshire-primary": "schools"}  # fmt: skip
SEED = 5501
POLICE_EVENT = f"northshire-police:da-{SEED}"


def duty_rules(tmp_path: Path) -> str:
    """Alert rules whose domestic-abuse alert also reaches the duty team (besides the DSL)."""
    rules = tmp_path / "alerts.yaml"
    text = ALERTS.read_text()
    rules.write_text(
        text.replace("recipients: [school_dsl]", "recipients: [school_dsl, duty_team]")
    )
    assert rules.read_text() != text
    return str(rules)


@pytest.fixture
def hub(hub_env: dict[str, str], tmp_path: Path) -> Iterator[HubProcess]:
    """A hub whose domestic-abuse alert also reaches the duty team (besides the school DSL)."""
    made = HubProcess(env={**hub_env, "HUB_ALERT_RULES_FILE": duty_rules(tmp_path)},
                      data_dir=tmp_path / "data")  # fmt: skip
    made.start()
    yield made
    made.stop()


def headers(hub: HubProcess, role: Role, agency: str, sub: str, team: str | None = None):
    issuer = TokenIssuer(load_or_create_signing_key(hub.data_dir / "keys"),
                         issuer="hub-local", audience="safeguarding-hub")  # fmt: skip
    token = issuer.issue(sub=sub, agency=agency, role=role, team=team)
    return {"Authorization": f"Bearer {token}"}


def envelope(agency: str, n: int, event_type: str, **data: Any) -> dict[str, Any]:
    when = datetime.now(UTC) - timedelta(hours=10 - n)
    env = example_envelope(
        id=POLICE_EVENT if agency == "northshire-police" else f"{agency}:ad-{SEED}-{n}",
        source=f"urn:agency:{agency}", type=event_type, agency_id=agency,
        agency_kind=KINDS[agency], subject=f"AD-{agency}-{SEED}",
        time=when.isoformat(), recorded_at=when.isoformat(),
        lawful_basis="law_enforcement_sch8" if agency == "northshire-police" else "public_task",
        sensitivity=["domestic_abuse"] if agency == "northshire-police" else [],
    )  # fmt: skip
    env["data"] = {**example_data(event_type), **data}
    env["data"].pop("ended_at", None)
    env["person"]["identifiers"] = [{"system": "nhs", "value": valid_nhs_number(SEED)}]
    return sign_as_dev(env)  # type: ignore[no-any-return]


def call(method: str, hub: HubProcess, path: str, h: dict[str, str], **kw: Any) -> httpx.Response:
    return httpx.request(method, f"{hub.url}{path}", headers=h, timeout=30, **kw)


def suspend_encompass() -> str:
    """The default pack with the Operation Encompass share ended (IG suspends it)."""
    text = NORTHSHIRE.read_text().replace('version: "2025.1"', 'version: "2025.2"')
    at = text.index("  - id: encompass-school-dsl")
    start = text.index("effective_from: 2025-04-01\n", at) + len("effective_from: 2025-04-01\n")
    return text[:start] + "    effective_to: 2025-05-01\n" + text[start:]


def submit_all(hub: HubProcess, docs: list[dict[str, Any]]) -> None:
    agent = {a: hub.headers(sub="adapter", agency=a, role=Role.agency_system) for a in KINDS}
    for doc in docs:
        sent = call("POST", hub, "/api/v1/submissions", agent[doc["agency_id"]], json=doc)
        assert sent.status_code == 202, sent.text


def suspend(hub: HubProcess) -> dict[str, str]:
    """Apply the pack with Encompass suspended; the IG officer's headers."""
    ig = headers(hub, Role.ig_officer, "northshire-cs", "ig-1")
    body = {"text": suspend_encompass(), "filename": "northshire.yaml",
            "reason": "Encompass suspended pending review."}  # fmt: skip
    assert call("POST", hub, "/api/v1/rules/apply", ig, json=body).status_code == 201
    return ig


def context_docs() -> list[dict[str, Any]]:
    """The child's involvement with children's services and their school's absence record."""
    return [
        envelope("northshire-cs", 1, "involvement.started"),
        envelope("northshire-primary", 2, "contact.recorded", contact_type="school_absence",
                 summary="Absent without explanation.", location="School", details={}),
    ]  # fmt: skip


def incident_doc() -> dict[str, Any]:
    """The police notice of a domestic incident the child was present at."""
    details = {"incident_type": "domestic_abuse", "role": "child_present"}
    return envelope("northshire-police", 3, "contact.recorded", contact_type="police_incident",
                    summary="Domestic incident.", location="Home", details=details)  # fmt: skip


class TestAlertDisclosure:
    """A DSL addressed by an alert it may not see gets an inbox without it; a social worker
    on the duty team gets it, with an alert.delivered audit record."""

    async def test_inbox_is_decided_by_the_rules(self, hub: HubProcess) -> None:
        ig = suspend(hub)
        submit_all(hub, [*context_docs(), incident_doc()])
        worker = headers(hub, Role.social_worker, "northshire-cs", "sw-1", team="duty")
        dsl = headers(hub, Role.designated_safeguarding_lead, "northshire-primary", "dsl-1")

        async def worker_alerts() -> list[dict[str, Any]]:
            found = call("GET", hub, "/api/v1/alerts", worker).json()["alerts"]
            return [a for a in found if a["rule_id"] == "domestic_abuse_to_school"]

        [seen] = await poll(worker_alerts)
        assert (seen["reason"], seen["trigger_event_ids"]) == ("child_present", [POLICE_EVENT])
        assert {(r["kind"], r["id"]) for r in seen["recipients"]} == {
            ("agency", "northshire-primary"),
            ("team", "duty"),
        }  # fmt: skip — the DSL is addressed
        assert call("GET", hub, "/api/v1/alerts", dsl).json() == {"alerts": []}
        ack = call("POST", hub, f"/api/v1/alerts/{seen['alert_id']}/acknowledge", dsl)
        assert (ack.status_code, ack.json()) == (404, {"detail": "no such alert for you"})

        assert delivered(hub, ig, seen["child_id"]) == [worker_record(seen, "listed")]
        assert call("GET", hub, "/api/v1/audit/verify", ig).json()["ok"] is True


def worker_record(alert: dict[str, Any], step: str) -> dict[str, Any]:
    """The audit record of the duty social worker shown ``alert`` at ``step``."""
    return {
        "who": "sw-1", "role": "social_worker", "agency_id": "northshire-cs",
        "purpose": "safeguarding", "child_id": alert["child_id"], "event_ids": [POLICE_EVENT],
        "effect": "permit", "pack_version": "2025.2", "rule_ids": ["cs-partner-information"],
        "lawful_bases": ["public_task"],
        "extra": {"alert_id": alert["alert_id"], "alert_rule_id": "domestic_abuse_to_school",
                  "alert_rule_version": 1, "alert_step": step},
    }  # fmt: skip


def delivered(hub: HubProcess, ig: dict[str, str], child_id: str) -> list[dict[str, Any]]:
    """The child's alert.delivered records, the fields that say who saw what and why."""
    page = call("GET", hub, f"/api/v1/audit?action=alert.delivered&child_id={child_id}",
                ig).json()  # fmt: skip
    fields = ("who", "role", "agency_id", "purpose", "child_id", "event_ids", "effect",
              "pack_version", "rule_ids", "lawful_bases", "extra")  # fmt: skip
    return [{k: r[k] for k in fields} for r in page["records"]]


class TestDecidedBeforeTheNarrative:
    """With the narrative projector stopped, a raised alert is decided on the facts it kept:
    streamed at once to the social worker the rules permit, never to the DSL they deny."""

    async def test_streamed_and_withheld_at_once(
        self, make_hub: Callable[..., HubProcess], tmp_path: Path
    ) -> None:
        rules = duty_rules(tmp_path)
        hubs = {r: make_hub(r, HUB_ALERT_RULES_FILE=rules)
                for r in ("api", "alerts", "narrative", "ingest")}  # fmt: skip
        start_all(hubs.values())
        api = hubs["api"]
        ig = suspend(api)
        docs = context_docs()
        submit_all(api, docs)

        async def context_stored() -> bool:
            return all([await api.has_event(d["id"]) for d in docs])

        await poll(context_stored)
        hubs["narrative"].stop()

        worker = headers(api, Role.social_worker, "northshire-cs", "sw-1", team="duty")
        dsl = headers(api, Role.designated_safeguarding_lead, "northshire-primary", "dsl-1")
        async with stream(api, worker) as seen, stream(api, dsl) as withheld:
            submit_all(api, [incident_doc()])
            await until(lambda: len(seen) > 0)
            await asyncio.sleep(1.0)  # time enough for the DSL's stream to have shown it
        assert not await api.has_event(POLICE_EVENT)  # decided before the narrative had it
        [event] = seen
        alert = event.data["alert"]
        assert (event.kind, alert["reason"], alert["trigger_event_ids"]) == (
            "raised", "child_present", [POLICE_EVENT],
        )  # fmt: skip
        assert withheld == []
        assert delivered(api, ig, alert["child_id"]) == [worker_record(alert, "raised")]
