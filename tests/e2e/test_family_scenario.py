"""One family's records from police, health, a school and children's services through a real
``hub serve`` and broker: exactly the expected alerts reach exactly the expected people, each
viewer reads the expected narrative, and a crash, redelivery, a late record, a correction and
a retraction in the middle change nothing they should not.

The next-school-day rule itself (Friday nights, bank holidays, half-terms, INSET days, clock
changes) is specified in ``tests/unit/alerts/test_alerts_calendar.py::TestNextSchoolDayStart``;
here the police incident is on the Friday night before the autumn half-term of 2026.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.auth import TokenIssuer
from hub.crypto.token_keys import load_or_create_signing_key
from hub.domain.roles import Role
from tests.support.hub_process import HubProcess, poll
from tests.support.scenario import MIA_NHS, THEO_NHS, envelope, mia, theo

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "alerts" / "northshire.yaml"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# --- The family's records, in the order they reach the hub --------------------------------
PLAN = "northshire-cs:fenwick-cpp"
SCHOOL_1 = "northshire-primary:fenwick-concern-1"
INCIDENT = "northshire-police:fenwick-incident"
POLICE_CONCERN = "northshire-police:fenwick-concern"
THEO_ED = "northshire-health:fenwick-theo-ed"
ED = "northshire-health:fenwick-mia-ed"
SCHOOL_2 = "northshire-primary:fenwick-concern-2"
LATE = "northshire-primary:fenwick-concern-0"
CORRECTION = "northshire-police:fenwick-concern-corrected"
RETRACTION = "northshire-health:fenwick-mia-ed-retracted"

LEAD_EMAIL = "priya.sandhu@northshire-cs.example"
FRIDAY_NIGHT = utc(2026, 10, 23, 21, 30)  # 22:30 BST; half-term is 26-30 October
AFTER_HALF_TERM = utc(2026, 11, 2, 9, 0)  # Monday 09:00 GMT, the notice's deadline


def concern(category: str, risk: str, summary: str) -> dict[str, Any]:
    return {"category": category, "risk_level": risk, "summary": summary,
            "raised_by_role": "designated safeguarding lead"}  # fmt: skip


def contact(contact_type: str, summary: str, details: dict[str, Any]) -> dict[str, Any]:
    return {"contact_type": contact_type, "summary": summary, "location": "Northtown",
            "details": details}  # fmt: skip


DA = ("domestic_abuse",)
RECORDS: dict[str, dict[str, Any]] = {
    PLAN: envelope(PLAN, "involvement.started", {
        "involvement_type": "child_protection_plan", "involvement_id": "CPP-FEN-1",
        "started_on": "2026-10-05", "reason": "Initial child protection conference decision.",
        "lead_practitioner": {"name": "Priya Sandhu", "role": "social worker",
                              "team": "Safeguarding Team 2", "email": LEAD_EMAIL}},
        occurred=utc(2026, 10, 5, 14, 0), person=mia()),
    SCHOOL_1: envelope(SCHOOL_1, "concern.raised",
        concern("neglect", "medium", "Arrives hungry most mornings."),
        occurred=utc(2026, 10, 12, 10, 0), person=mia(with_upn=True)),
    INCIDENT: envelope(INCIDENT, "contact.recorded",
        contact("police_incident", "Domestic incident at the home; Mia present.",
                {"incident_type": "domestic_abuse", "role": "child_present", "dash_risk": "high"}),
        occurred=FRIDAY_NIGHT, person=mia(), sensitivity=DA),
    POLICE_CONCERN: envelope(POLICE_CONCERN, "concern.raised",
        concern("domestic_abuse", "high", "DASH high; mother's partner arrested."),
        occurred=FRIDAY_NIGHT + timedelta(minutes=15), person=mia(), sensitivity=DA),
    THEO_ED: envelope(THEO_ED, "contact.recorded",
        contact("unscheduled_care_attendance", "Croup; discharged home.", {"admitted": False}),
        occurred=utc(2026, 10, 20, 16, 0), person=theo()),
    ED: envelope(ED, "contact.recorded",
        contact("unscheduled_care_attendance", "Cut to the forearm.", {"admitted": False}),
        occurred=utc(2026, 10, 24, 10, 0), person=mia()),
    SCHOOL_2: envelope(SCHOOL_2, "concern.raised",
        concern("physical_abuse", "medium", "Bruising on the upper arm."),
        occurred=utc(2026, 11, 2, 9, 30), person=mia(with_upn=True)),
    LATE: envelope(LATE, "concern.raised",
        concern("emotional_abuse", "low", "Withdrawn in class."),
        occurred=utc(2026, 10, 14, 12, 0), recorded_after=timedelta(days=22),
        person=mia(with_upn=True)),
    CORRECTION: envelope(CORRECTION, "event.corrected", {
        "reason": "Risk level entered wrongly.", "corrected_type": "concern.raised",
        "replacement": concern("domestic_abuse", "medium", "DASH medium on review.")},
        occurred=FRIDAY_NIGHT + timedelta(minutes=15), recorded_after=timedelta(days=11),
        person=mia(), sensitivity=DA, supersedes=POLICE_CONCERN),
    RETRACTION: envelope(RETRACTION, "event.retracted",
        {"reason": "Recorded against the wrong child."},
        occurred=utc(2026, 11, 4, 11, 0), person=mia(), supersedes=ED),
}  # fmt: skip

# --- Who reads: each recipient as their token addresses them -------------------------------
VIEWERS: dict[str, dict[str, Any]] = {
    "lead": {"sub": "psandhu", "agency": "northshire-cs", "role": Role.social_worker,
             "team": "safeguarding-2", "email": LEAD_EMAIL},
    "duty": {"sub": "duty-7", "agency": "northshire-cs", "role": Role.duty_officer,
             "team": "duty"},
    "front_door": {"sub": "mash-3", "agency": "northshire-cs", "role": Role.duty_officer,
                   "team": "front-door"},
    "dsl": {"sub": "dsl-fenwick", "agency": "northshire-primary",
            "role": Role.designated_safeguarding_lead},
    "other_worker": {"sub": "sw-9", "agency": "northshire-cs", "role": Role.social_worker,
                     "team": "safeguarding-2", "email": "sam.other@northshire-cs.example"},
    "team_manager": {"sub": "tm-2", "agency": "northshire-cs", "role": Role.team_manager,
                     "team": "safeguarding-2"},
    "nurse": {"sub": "nn-1", "agency": "northshire-health", "role": Role.named_nurse},
    "ppu": {"sub": "ppu-1", "agency": "northshire-police", "role": Role.police_ppu},
}  # fmt: skip

ENCOMPASS = {
    "rule_id": "domestic_abuse_to_school", "severity": "high", "status": "raised",
    "trigger_event_ids": [INCIDENT], "occurred_at": "2026-10-23T21:30:00Z",
    "due_at": "2026-11-02T09:00:00Z",
    # The reason (child_present) comes from data.details, which Encompass does not share.
    "reason": "domestic_abuse_to_school",
    "recipients": [{"kind": "agency", "id": "northshire-primary",
                    "agency_id": "northshire-primary", "role": "designated_safeguarding_lead"}],
}  # fmt: skip
UNSCHEDULED_CARE = {
    "rule_id": "unscheduled_care_with_plan", "severity": "high", "status": "raised",
    "trigger_event_ids": [ED, PLAN], "occurred_at": "2026-10-24T10:00:00Z",
    "due_at": "+15min", "reason": "child_protection_plan",
    "recipients": [
        {"kind": "practitioner", "id": LEAD_EMAIL, "name": "Priya Sandhu",
         "team": "Safeguarding Team 2", "email": LEAD_EMAIL, "role": "social worker"},
        {"kind": "team", "id": "duty", "agency_id": "northshire-cs"},
    ],
}  # fmt: skip
ACCUMULATING = {
    "rule_id": "accumulating_concerns", "severity": "medium", "status": "raised",
    "trigger_event_ids": [SCHOOL_1, POLICE_CONCERN, SCHOOL_2],
    "occurred_at": "2026-11-02T09:30:00Z", "due_at": "+1440min",
    "reason": "3_concerns_2_agencies",
    "recipients": [{"kind": "team", "id": "front-door", "agency_id": "northshire-cs"}],
}  # fmt: skip


def scenario_rules(tmp_path: Path) -> Path:
    """Northshire's alert rules, fit for records dated autumn 2026 whatever today is.

    The records are weeks (or, on a later run, years) old, so nothing is stale; and the
    Encompass notice's deadline has passed in real time, so it does not escalate (escalation
    is specified in tests/unit/alerts/test_alerts_escalation.py).
    """
    text = ALERTS.read_text()
    changed = text.replace("stale_after_days: 14", "stale_after_days: 3650").replace(
        "stale_after_days: 30", "stale_after_days: 3650"
    )
    changed = changed.replace(
        "recipients: [school_dsl]\n", "recipients: [school_dsl]\n    escalation: {roles: []}\n"
    ).replace("    escalation: {roles: [team_manager, service_manager], every_minutes: 60}\n", "")
    assert changed.count("3650") == 4 and "escalation: {roles: []}" in changed
    path = tmp_path / "alerts.yaml"
    path.write_text(changed)
    return path


def token_headers(hub: HubProcess, who: str) -> dict[str, str]:
    issuer = TokenIssuer(load_or_create_signing_key(hub.data_dir / "keys"),
                         issuer="hub-local", audience="safeguarding-hub")  # fmt: skip
    return {"Authorization": f"Bearer {issuer.issue(**VIEWERS[who])}"}


def submit(hub: HubProcess, *event_ids: str) -> None:
    for event_id in event_ids:
        doc = RECORDS[event_id]
        agent = hub.headers(sub="adapter", agency=doc["agency_id"], role=Role.agency_system)
        sent = httpx.post(f"{hub.url}/api/v1/submissions", json=doc, headers=agent, timeout=30)
        assert sent.status_code == 202, sent.text


def inbox(hub: HubProcess, who: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{hub.url}/api/v1/alerts", headers=token_headers(hub, who), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["alerts"]  # type: ignore[no-any-return]


def shape(alert: dict[str, Any]) -> dict[str, Any]:
    """An alert as the expectations above write it (acknowledgement due as minutes after
    raising for rules that count from the raise)."""
    keys = ("rule_id", "severity", "status", "trigger_event_ids", "occurred_at", "reason",
            "recipients")  # fmt: skip
    found = {k: alert[k] for k in keys}
    raised = datetime.fromisoformat(alert["raised_at"])
    due = datetime.fromisoformat(alert["due_at"])
    found["due_at"] = (
        due.strftime("%Y-%m-%dT%H:%M:%SZ")
        if alert["rule_id"] == "domestic_abuse_to_school"
        else f"+{int((due - raised).total_seconds() // 60)}min"
    )
    found["occurred_at"] = datetime.fromisoformat(alert["occurred_at"]).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    return found


def everyone(hub: HubProcess) -> dict[str, list[dict[str, Any]]]:
    return {who: inbox(hub, who) for who in VIEWERS}


def expected_inboxes(**shown: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {who: shown.get(who, []) for who in VIEWERS}


async def settled(hub: HubProcess, want: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Every viewer's inbox once it matches ``want`` (fails with the last one seen)."""

    async def check() -> dict[str, Any] | None:
        seen = everyone(hub)
        return seen if {w: [shape(a) for a in v] for w, v in seen.items()} == want else None

    try:
        return await poll(check, timeout=60)
    except AssertionError:
        last = {w: [shape(a) for a in v] for w, v in everyone(hub).items()}
        assert last == want  # shows the difference
        raise


def child_of(hub: HubProcess, nhs: str) -> str:
    r = httpx.get(f"{hub.url}/api/v1/children", params={"identifier": f"nhs:{nhs}"},
                  headers=hub.headers(), timeout=30)  # fmt: skip
    found = r.json()["children"]
    assert len(found) <= 1, found
    return found[0]["child_id"] if found else ""


def narrative(hub: HubProcess, child_id: str, who: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{hub.url}/api/v1/children/{child_id}/narrative",
                  headers=token_headers(hub, who), timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text
    return r.json()["entries"]  # type: ignore[no-any-return]


class TestFenwickFamily:
    """Four agencies' records about one family, a crash and redelivery in the middle."""

    async def test_alerts_narratives_restart_late_correction_retraction(
        self, make_hub: Callable[..., HubProcess], tmp_path: Path
    ) -> None:
        """Each person gets exactly their alerts, once, and reads exactly their entries."""
        rules = str(scenario_rules(tmp_path))
        first = make_hub(HUB_ALERT_RULES_FILE=rules)
        first.start()
        submit(first, PLAN, SCHOOL_1)
        # The school must be known when the incident is judged (docs/alerts.md: judged once,
        # when it arrives). The agencies' topics are read independently, so two submissions
        # in a row can reach hub.events in either order; once both are stored, anything
        # about Mia sent later comes after them on her partition.
        await poll(lambda: _mia_stored(first, at_least=2))
        submit(first, INCIDENT, POLICE_CONCERN, THEO_ED)
        await settled(first, expected_inboxes(dsl=[ENCOMPASS]))
        submit(first, ED)
        first.kill()  # a crash: the attendance may or may not have been processed

        second = make_hub(HUB_ALERT_RULES_FILE=rules)
        second.start()
        submit(second, PLAN, INCIDENT, POLICE_CONCERN, ED)  # adapters resend after the outage
        submit(second, SCHOOL_2)
        after_restart = await settled(second, expected_inboxes(
            dsl=[ENCOMPASS], lead=[UNSCHEDULED_CARE], duty=[UNSCHEDULED_CARE],
            front_door=[ACCUMULATING]))  # fmt: skip
        ids = {w: [a["alert_id"] for a in v] for w, v in after_restart.items()}
        assert ids["lead"] == ids["duty"]  # one alert, addressed to two inboxes

        mia_id, theo_id = child_of(second, MIA_NHS), child_of(second, THEO_NHS)
        assert {a["child_id"] for v in after_restart.values() for a in v} == {mia_id}
        assert theo_id not in ("", mia_id)

        await poll(lambda: _stored(second, mia_id, 6))
        assert [e["event_id"] for e in narrative(second, mia_id, "lead")] == [
            PLAN, SCHOOL_1, INCIDENT, POLICE_CONCERN, ED, SCHOOL_2]  # fmt: skip
        assert [e["event_id"] for e in narrative(second, mia_id, "dsl")] == [
            PLAN, SCHOOL_1, INCIDENT, POLICE_CONCERN, ED, SCHOOL_2]  # fmt: skip

        submit(second, LATE, CORRECTION, RETRACTION)
        final = await settled(second, expected_inboxes(dsl=[ENCOMPASS],
                                                       front_door=[ACCUMULATING]))  # fmt: skip
        assert {w: [a["alert_id"] for a in v] for w, v in final.items()} == {
            **{w: [] for w in VIEWERS},
            "dsl": ids["dsl"],
            "front_door": ids["front_door"],
        }

        await poll(lambda: _stored(second, mia_id, 9))
        assert [e["event_id"] for e in narrative(second, mia_id, "lead")] == [
            PLAN, SCHOOL_1, LATE, INCIDENT, CORRECTION, SCHOOL_2]  # fmt: skip
        assert [e["event_id"] for e in narrative(second, mia_id, "dsl")] == [
            PLAN, SCHOOL_1, LATE, INCIDENT, CORRECTION, SCHOOL_2]  # fmt: skip
        assert [e["event_id"] for e in narrative(second, mia_id, "nurse")] == [
            PLAN, SCHOOL_1, LATE, CORRECTION, SCHOOL_2]  # fmt: skip
        # Police hold no involvement with Mia, so the PPU rule (involved_with_child) does not
        # show them the plan: they read their own records only.
        assert [e["event_id"] for e in narrative(second, mia_id, "ppu")] == [INCIDENT, CORRECTION]

        assert [e["event_id"] for e in narrative(second, theo_id, "lead")] == []

        corrected = next(e for e in narrative(second, mia_id, "lead") if e["corrects"])
        assert {k: corrected[k] for k in ("event_id", "event_type", "corrects", "occurred_at")} == {
            "event_id": CORRECTION, "event_type": "concern.raised", "corrects": POLICE_CONCERN,
            "occurred_at": "2026-10-23T21:45:00Z"}  # fmt: skip
        # Encompass shares no police wording with the school, corrected or not.
        told_school = next(e for e in narrative(second, mia_id, "dsl") if e["corrects"])
        assert "DASH" not in json.dumps(told_school), told_school
        # The line says what the record now says, and that it was corrected.
        assert corrected["summary"] == (
            "Concern raised: domestic abuse, medium risk. DASH medium on review."
            " (Corrected: Risk level entered wrongly.)"
        )


async def _mia_stored(hub: HubProcess, *, at_least: int) -> bool | None:
    mia_id = child_of(hub, MIA_NHS)
    return await _stored(hub, mia_id, at_least) if mia_id else None


async def _stored(hub: HubProcess, child_id: str, at_least: int) -> bool | None:
    return True if await hub.stored_entries(child_id) >= at_least else None
