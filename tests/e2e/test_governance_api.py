"""The governance API over HTTP: a real ``hub serve`` process on the real broker and store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from contracts import AgencyKind, EventType
from hub.domain.roles import Role
from hub.governance import Governance, GovernanceSettings
from hub.governance.audit import AuditAction, decisions_entry
from hub.sharing import AccessRequest, ChildContext, EventFacts, Purpose, decide
from hub.store.db import create_engine, migrate
from hub.store.schema import children
from tests.support.hub_process import HubProcess

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
NORTHSHIRE = REPO / "deploy" / "rules" / "northshire.yaml"
CHILD = "child-gov-0001"


@pytest.fixture
def hub(hub_env: dict[str, str], tmp_path: Path) -> Iterator[HubProcess]:
    made = HubProcess(env=hub_env, data_dir=tmp_path / "data")
    made.start()
    yield made
    made.stop()


@pytest.fixture
def as_role(hub: HubProcess) -> Callable[..., dict[str, str]]:
    """Headers for a caller of a role (and agency)."""

    def headers(role: Role, agency: str = "northshire-cs", sub: str | None = None):
        return hub.headers(sub=sub or f"{role.value}-1", agency=agency, role=role)

    return headers


async def add_child(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            await conn.execute(
                insert(children).values(child_id=CHILD, created_at=datetime.now(UTC))
            )
    finally:
        await engine.dispose()


def call(method: str, hub: HubProcess, path: str, headers: dict[str, str], **kw: Any):
    return httpx.request(method, f"{hub.url}{path}", headers=headers, timeout=30, **kw)


class TestRulesApi:
    """Read, validate, diff, apply and list rule packs; only IG applies."""

    def test_rules_lifecycle(self, hub, as_role):
        sw, ig = as_role(Role.social_worker), as_role(Role.ig_officer)
        current = call("GET", hub, "/api/v1/rules", sw).json()
        assert (current["number"], current["version"]) == (1, "2025.1")
        bad = NORTHSHIRE.read_text().replace("purpose: safeguarding", "purpose: gossip", 1)
        checked = call("POST", hub, "/api/v1/rules/validate", sw, json={"text": bad})
        assert checked.status_code == 200
        assert checked.json()["valid"] is False
        assert [p["location"] for p in checked.json()["problems"]] == [
            "rules.yaml:25 rules[0] (own-agency-records).purpose"
        ]
        new = NORTHSHIRE.read_text().replace('version: "2025.1"', 'version: "2025.2"')
        diff = call("POST", hub, "/api/v1/rules/diff", sw, json={"text": new}).json()
        assert (diff["added"], diff["removed"], diff["changed"]) == ([], [], [])
        body = {"text": new, "filename": "northshire.yaml", "reason": "Annual review."}
        assert call("POST", hub, "/api/v1/rules/apply", sw, json=body).status_code == 403
        applied = call("POST", hub, "/api/v1/rules/apply", ig, json=body)
        assert applied.status_code == 201
        assert (applied.json()["number"], applied.json()["author"]) == (2, "ig_officer-1")
        assert call("POST", hub, "/api/v1/rules/apply", ig, json=body).status_code == 409
        history = call("GET", hub, "/api/v1/rules/history", sw).json()["versions"]
        assert [(v["number"], v["version"]) for v in history] == [(2, "2025.2"), (1, "2025.1")]
        invalid = call("POST", hub, "/api/v1/rules/apply", ig, json={**body, "text": bad})
        assert invalid.status_code == 422
        assert invalid.json()["detail"]["problems"][0]["line"] == 25

    async def test_dry_run_lists_the_disclosures_a_change_removes(self, hub, as_role, hub_env):
        """A read recorded in the trail, replayed without the rule that permitted it."""
        engine = create_engine(hub_env["HUB_DATABASE_URL"])
        try:
            gov = Governance.over(engine, GovernanceSettings(rules_bootstrap_file=NORTHSHIRE))
            pack = (await gov.rules.current()).pack
            worker = AccessRequest(
                "northshire-cs", AgencyKind.childrens_services, Role.social_worker,
                Purpose.safeguarding,
            )  # fmt: skip
            child = ChildContext.build(involved_agencies=["northshire-cs"])
            facts = EventFacts(
                EventType.concern_raised, "northshire-police", AgencyKind.police, frozenset(),
                datetime.now(UTC) - timedelta(days=1),
            )  # fmt: skip
            now = datetime.now(UTC)
            await gov.trail.append(
                decisions_entry(
                    action=AuditAction.narrative_read, who="sam.sw", request=worker,
                    child_id=CHILD, child=child,
                    decisions=[("ev-1", facts, decide(worker, facts, child, pack, now=now))],
                    pack_version=pack.version,
                )
            )  # fmt: skip
        finally:
            await engine.dispose()
        text = NORTHSHIRE.read_text().replace('version: "2025.1"', 'version: "2025.2"')
        start = text.index("  - id: cs-partner-information")
        end = text.index("  - id: cs-duty-partner-concerns")
        proposed = text[:start] + text[end:]
        sw, ig = as_role(Role.social_worker), as_role(Role.ig_officer)
        path = "/api/v1/rules/dry-run?days=30"
        assert call("POST", hub, path, sw, json={"text": proposed}).status_code == 403
        result = call("POST", hub, path, ig, json={"text": proposed}).json()
        assert (result["examined"], result["unchanged"], result["added"]) == (1, 0, [])
        [recipient] = result["removed"]
        assert (recipient["agency_id"], recipient["role"]) == ("northshire-cs", "social_worker")
        assert [(d["event_id"], d["old_rule_ids"]) for d in recipient["disclosures"]] == [
            ("ev-1", ["cs-partner-information"])
        ]


class TestConsentBreakGlassProtectionAudit:
    """Record a consent, break glass and review it, protect a child; all in the verified trail."""

    async def test_the_governance_round(self, hub, as_role, hub_env):
        await add_child(hub_env["HUB_DATABASE_URL"])
        sw, ig = as_role(Role.social_worker), as_role(Role.ig_officer)
        police = as_role(Role.police_ppu, agency="northshire-police")
        nurse = as_role(Role.named_nurse, agency="northshire-health")
        consent = {
            "child_id": CHILD, "purpose": "safeguarding", "agency_id": "northshire-cs",
            "state": "withdrawn", "given_by": "parent",
        }  # fmt: skip
        assert call("POST", hub, "/api/v1/consents", sw, json=consent).status_code == 201
        listed = call("GET", hub, f"/api/v1/consents?child_id={CHILD}", sw).json()
        assert [(c["agency_id"], c["state"]) for c in listed["in_force"]] == [
            ("northshire-cs", "withdrawn")
        ]
        glass = {"child_id": CHILD, "justification": "Bruising seen at school; plan needed now."}
        made = call("POST", hub, "/api/v1/break-glass", sw, json=glass)
        assert made.status_code == 201
        glass_id = made.json()["break_glass_id"]
        missing = call("POST", hub, "/api/v1/break-glass", sw, json={**glass, "child_id": "nope"})
        assert missing.status_code == 404
        assert call("GET", hub, "/api/v1/break-glass/reviews", sw).status_code == 403
        queue = call("GET", hub, "/api/v1/break-glass/reviews", ig).json()["items"]
        assert [i["break_glass_id"] for i in queue] == [glass_id]
        review = {"upheld": True, "note": "Risk of significant harm was clear."}
        done = call("POST", hub, f"/api/v1/break-glass/{glass_id}/review", ig, json=review)
        assert done.json()["review_status"] == "upheld"
        again = call("POST", hub, f"/api/v1/break-glass/{glass_id}/review", ig, json=review)
        assert again.status_code == 409
        later = (date.today() + timedelta(days=90)).isoformat()
        protection = {"reason": "Mother and child in a refuge.", "review_on": later}
        path = f"/api/v1/children/{CHILD}/protection"
        assert call("POST", hub, path, nurse, json=protection).status_code == 403
        set_ = call("POST", hub, path, police, json=protection)
        assert set_.status_code == 201
        assert "reason" not in set_.json()
        assert call("DELETE", hub, path, sw).status_code == 200
        assert call("DELETE", hub, path, sw).status_code == 404
        assert call("GET", hub, "/api/v1/audit", sw).status_code == 403
        page = call("GET", hub, f"/api/v1/audit?child_id={CHILD}&limit=3", ig).json()
        assert [r["action"] for r in page["records"]] == [
            "protection.lifted", "protection.set", "break_glass.reviewed",
        ]  # fmt: skip
        assert page["next_before_seq"] == page["records"][-1]["seq"]
        rest = call(
            "GET", hub, f"/api/v1/audit?child_id={CHILD}&before_seq={page['next_before_seq']}", ig
        ).json()
        assert [r["action"] for r in rest["records"]] == ["break_glass.used", "consent.recorded"]
        assert "Bruising" not in str(page) + str(rest)
        export = call("GET", hub, f"/api/v1/children/{CHILD}/subject-access", ig).json()
        assert (export["held"], export["disclosures"]) == ([], [])
        verified = call("GET", hub, "/api/v1/audit/verify", ig).json()
        # The five above, the audit search itself, and the rule pack stored at start.
        assert (verified["ok"], verified["records"]) == (True, 7)
        first = call("GET", hub, "/api/v1/audit?limit=100", ig).json()["records"][-1]
        assert (first["seq"], first["action"]) == (1, "rules.applied")
