"""Alerts pass the sharing rules: who sees which alert, what of it, and the audit record."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from contracts import AgencyKind, EventType
from hub.alerts.disclosure import (
    AlertGate,
    ChildBasis,
    alert_audit_entries,
    judge_alert,
    with_kept_facts,
)
from hub.alerts.model import AlertStatus, Recipient, RecipientKind
from hub.alerts.store import StoredAlert
from hub.api.narrative_access import ROLE_PURPOSES
from hub.domain.roles import Role
from hub.governance.audit import Actor
from hub.governance.protected import LocationPolicy
from hub.governance.read_path import PreparedRead
from hub.sharing import (
    AccessRequest,
    ChildContext,
    ChildStatus,
    ConsentRecord,
    ConsentState,
    EventFacts,
    Purpose,
    RulePack,
    read_pack,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 6, 2, 8, 0, tzinfo=UTC)
AT = NOW - timedelta(hours=9)
PACK = read_pack(Path(__file__).resolve().parents[3] / "deploy" / "rules" / "northshire.yaml")
CONFIG = LocationPolicy(roles=frozenset({"social_worker"}))
SCHOOL, CS, POLICE, HEALTH = (
    "northshire-primary",
    "northshire-cs",
    "northshire-police",
    "northshire-health",
)
KINDS = {
    SCHOOL: AgencyKind.schools,
    CS: AgencyKind.childrens_services,
    POLICE: AgencyKind.police,
    HEALTH: AgencyKind.health,
}
LEAD = Recipient(
    kind=RecipientKind.practitioner,
    id="sam.practitioner@northshire.example",
    name="Sam Practitioner",
    email="sam.practitioner@northshire.example",
    phone="01632 960000",
)
DUTY = Recipient(kind=RecipientKind.team, id="duty", agency_id=CS)
DSL = Recipient(kind=RecipientKind.agency, id=SCHOOL, role="designated_safeguarding_lead")


def caller(role: Role, agency: str) -> list[AccessRequest]:
    """A caller's requests, one per purpose their role reads for (as the API builds them)."""
    return [AccessRequest(agency, KINDS[agency], role, p) for p in ROLE_PURPOSES[role]]


def facts(event_type: EventType, agency: str, *tags: str) -> EventFacts:
    return EventFacts(event_type, agency, KINDS[agency], frozenset(tags), AT)


def alert(kind: str, reason: str, triggers: tuple[str, ...], **kw: object) -> StoredAlert:
    base = StoredAlert(
        alert_id=f"al-{kind}",
        child_id="child-1",
        rule_id=kind,
        rule_kind=kind,
        rule_version=1,
        severity="high",
        reason=reason,
        status=AlertStatus.raised,
        recipients=(DSL,),
        trigger_event_ids=triggers,
        occurred_at=AT,
        raised_at=NOW,
        due_at=NOW + timedelta(hours=1),
        window_start=None,
        escalation_plan=(),
        escalation_step=0,
        next_escalation_at=None,
        acknowledged_by=None,
        acknowledged_at=None,
        withdrawn_at=None,
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def basis(
    events: dict[str, EventFacts],
    *,
    statuses: tuple[ChildStatus, ...] = (),
    consent: ConsentState | None = None,
    protected: bool = False,
    pack: RulePack = PACK,
) -> ChildBasis:
    consents = (
        ()
        if consent is None
        else (ConsentRecord(Purpose.safeguarding, CS, consent, AT - timedelta(days=1)),)
    )
    child = ChildContext.build(
        statuses=statuses,
        consents=consents,
        significant_harm=ChildStatus.cp_plan in statuses,
        involved_agencies={SCHOOL, CS},
    )
    return ChildBasis(PreparedRead(child, pack, None, protected), events)


def judge(a: StoredAlert, b: ChildBasis, role: Role, agency: str, **kw: object):
    return judge_alert(a, b, caller(role, agency), location=CONFIG, now=NOW, **kw)  # type: ignore[arg-type]


DA_EVENTS = {"ev-police": facts(EventType.contact_recorded, POLICE, "domestic_abuse")}
DA = alert("domestic_abuse_to_school", "child_present", ("ev-police",))
HIDDEN_DA = {"ev-police": facts(EventType.contact_recorded, POLICE, "domestic_abuse",
                                "criminal_intelligence")}  # fmt: skip


class TestDomesticAbuseToSchool:
    """Operation Encompass: the DSL sees that it happened, not how the child was involved."""

    @pytest.mark.parametrize(
        ("role", "agency", "events", "expected"),
        [
            (Role.designated_safeguarding_lead, SCHOOL, DA_EVENTS,
             ("education_safeguarding", "domestic_abuse_to_school", ["encompass-school-dsl"])),
            (Role.social_worker, CS, DA_EVENTS,
             ("safeguarding", "child_present", ["cs-partner-information"])),
            (Role.named_nurse, HEALTH, DA_EVENTS, None),
            (Role.designated_safeguarding_lead, SCHOOL, HIDDEN_DA, None),
            (Role.social_worker, CS, HIDDEN_DA, None),
            (Role.police_ppu, POLICE, HIDDEN_DA,
             ("safeguarding", "child_present", ["own-agency-records"])),
        ],
    )  # fmt: skip
    def test_decision_table(self, role, agency, events, expected) -> None:
        """Role x trigger tags -> hidden, or shown under a purpose with a reason and rules."""
        got = judge(DA, basis(events), role, agency)
        if expected is None:
            assert (got.shown, got.request, got.decisions, got.alert) == (False, None, (), DA)
            return
        purpose, reason, rules = expected
        assert got.shown
        assert (str(got.request.purpose), got.alert.reason) == (purpose, reason)
        assert [d.audit_fields()["rule_ids"] for _, _, d in got.decisions] == [rules]
        assert got.alert.trigger_event_ids == ("ev-police",)

    def test_household_reason_is_withheld_for_a_protected_child(self) -> None:
        """'household' says where the child lives: outside the pack's roles it is generalised
        and the attempt is audited; the pack's roles beat the configured ones."""
        a = dataclasses.replace(DA, reason="household", recipients=(DUTY,))
        protected = basis(DA_EVENTS, protected=True)
        duty = judge(a, protected, Role.duty_officer, CS)
        assert (duty.shown, duty.alert.reason, duty.withheld_location) == (
            True, "domestic_abuse_to_school", True,
        )  # fmt: skip
        worker = judge(a, protected, Role.social_worker, CS)
        assert (worker.alert.reason, worker.withheld_location) == ("household", False)
        duty_pack = PACK.model_copy(update={"protected_location_roles": (Role.duty_officer,)})
        opened = basis(DA_EVENTS, protected=True, pack=duty_pack)
        assert judge(a, opened, Role.duty_officer, CS).alert.reason == "household"
        assert judge(a, opened, Role.social_worker, CS).alert.reason == "domestic_abuse_to_school"
        assert judge(a, basis(DA_EVENTS), Role.duty_officer, CS).alert.reason == "household"

    def test_unknown_trigger_is_denied(self) -> None:
        """A trigger the store does not hold yet permits nothing: the alert is hidden."""
        assert not judge(DA, basis({}), Role.social_worker, CS).shown


AE = {
    "ev-ae": facts(EventType.contact_recorded, HEALTH, "mental_health"),
    "ev-plan": facts(EventType.involvement_started, CS),
}
CARE = alert(
    "unscheduled_care_with_plan", "looked_after", ("ev-ae", "ev-plan"), recipients=(LEAD, DUTY)
)


class TestUnscheduledCareConsent:
    """A mental-health attendance of a looked-after child: consent decides the social worker."""

    @pytest.mark.parametrize(
        ("role", "agency", "consent", "shown"),
        [
            (Role.social_worker, CS, ConsentState.given, True),
            (Role.social_worker, CS, ConsentState.withdrawn, False),
            (Role.social_worker, CS, ConsentState.refused, False),
            (Role.social_worker, CS, None, False),
            (Role.designated_safeguarding_lead, SCHOOL, ConsentState.given, False),
            (Role.duty_officer, CS, ConsentState.given, False),
        ],
    )
    def test_decision_table(self, role, agency, consent, shown) -> None:
        """Role x consent state -> shown or hidden (no significant harm recorded)."""
        b = basis(AE, statuses=(ChildStatus.looked_after,), consent=consent)
        assert judge(CARE, b, role, agency).shown is shown

    def test_significant_harm_overrides_withdrawn_consent(self) -> None:
        """On a CP plan the rule shares without consent (Sch. 1 para 18), recorded as such."""
        b = basis(AE, statuses=(ChildStatus.cp_plan,), consent=ConsentState.withdrawn)
        got = judge(CARE, b, Role.social_worker, CS)
        assert got.shown and got.alert.reason == "looked_after"
        assert [d.audit_fields()["lawful_bases"] for _, _, d in got.decisions] == [
            ["safeguarding_sch1_para18"],
            ["public_task"],
        ]

    def test_practitioner_details_need_a_permitted_involvement(self) -> None:
        """The lead's contact details come from the plan: without it they are not shown,
        except to the lead themself."""
        b = basis({"ev-ae": AE["ev-ae"]}, statuses=(ChildStatus.cp_plan,))
        got = judge(CARE, b, Role.social_worker, CS)
        assert (got.alert.recipients, got.alert.reason) == ((DUTY,), "unscheduled_care_with_plan")
        own = judge(CARE, b, Role.social_worker, CS, caller_addresses=[LEAD.address])
        assert own.alert.recipients == (LEAD, DUTY)


class TestWindow:
    """An accumulating-concerns window shown in part loses its counts."""

    def test_partly_visible_window(self) -> None:
        """The duty officer may not see the criminal-intelligence concern: two ids, no counts."""
        events = {
            "c1": facts(EventType.concern_raised, POLICE),
            "c2": facts(EventType.concern_raised, SCHOOL),
            "c3": facts(EventType.concern_raised, POLICE, "criminal_intelligence"),
        }
        a = alert("accumulating_concerns", "3_concerns_2_agencies", ("c1", "c2", "c3"),
                  window_start=AT, recipients=(DUTY,))  # fmt: skip
        got = judge(a, basis(events), Role.duty_officer, CS)
        assert (got.alert.trigger_event_ids, got.alert.reason) == (
            ("c1", "c2"), "accumulating_concerns",
        )  # fmt: skip
        whole = {k: v for k, v in events.items() if k != "c3"}
        a2 = dataclasses.replace(a, trigger_event_ids=("c1", "c2"), reason="2_concerns_2_agencies")
        assert (
            judge(a2, basis(whole), Role.duty_officer, CS).alert.reason == "2_concerns_2_agencies"
        )


class TestAuditRecord:
    """One alert.delivered record per alert shown, with every trigger decision."""

    def test_record_is_exact(self) -> None:
        """Who, role, agency, purpose, child, events, rule ids, pack version, bases, alert id."""
        b = basis(DA_EVENTS)
        got = judge(DA, b, Role.designated_safeguarding_lead, SCHOOL)
        actor = Actor("dsl-1", SCHOOL, "schools", "designated_safeguarding_lead")
        [entry] = alert_audit_entries(got, who="dsl-1", actor=actor, prepared=b.prepared,
                                      step="listed")  # fmt: skip
        body = entry.body(NOW)
        reason = body["reasons"][0]
        assert reason.startswith("permitted by rule encompass-school-dsl")
        assert body == {
            "at": "2026-06-02T08:00:00.000000+00:00",
            "action": "alert.delivered",
            "who": "dsl-1",
            "role": "designated_safeguarding_lead",
            "agency_id": SCHOOL,
            "agency_kind": "schools",
            "team": None,
            "purpose": "education_safeguarding",
            "child_id": "child-1",
            "event_ids": ["ev-police"],
            "effect": "permit",
            "pack_version": "2025.1",
            "rule_ids": ["encompass-school-dsl"],
            "lawful_bases": ["legal_obligation"],
            "reason": reason,
            "break_glass_id": None,
            "justification_sha256": None,
            "child": {
                "statuses": [],
                "consent_state": "none",
                "consent_at": None,
                "significant_harm": False,
                "involved": True,
                "milestones": {},
            },
            "decisions": {
                "facts": [["contact.recorded", POLICE, "police", ["domestic_abuse"]]],
                "outcomes": [["permit", ["encompass-school-dsl"], ["legal_obligation"], 0]],
                "occurred_at": ["2026-06-01T23:00:00.000000+00:00"],
                "fact": [0],
                "outcome": [0],
            },
            "reasons": [reason],
            "extra": {
                "alert_id": "al-domestic_abuse_to_school",
                "alert_rule_id": "domestic_abuse_to_school",
                "alert_rule_version": 1,
                "alert_step": "listed",
            },
        }

    def test_withheld_location_adds_a_view_attempt(self) -> None:
        """A generalised household reason for a protected child is also a view attempt."""
        a = dataclasses.replace(DA, reason="household")
        b = basis(DA_EVENTS, protected=True)
        got = judge(a, b, Role.duty_officer, CS)
        actor = Actor("duty-1", CS, "childrens_services", "duty_officer")
        entries = alert_audit_entries(got, who="duty-1", actor=actor, prepared=b.prepared,
                                      step="raised")  # fmt: skip
        assert [(str(e.action), e.event_ids) for e in entries] == [
            ("alert.delivered", ()),
            ("protected.view_attempt", ("ev-police",)),
        ]

    def test_a_hidden_alert_is_never_audited_as_delivered(self) -> None:
        """Only shown alerts have a delivery record."""
        got = judge(DA, basis(HIDDEN_DA), Role.social_worker, CS)
        with pytest.raises(AssertionError):
            alert_audit_entries(got, who="x", actor=Actor("x"), prepared=basis({}).prepared,
                                step="listed")  # fmt: skip


class Trail:
    """An audit trail that keeps what is appended."""

    def __init__(self) -> None:
        self.entries: list[Any] = []

    async def append(self, *entries: Any) -> None:
        self.entries += entries


class NarrativeGate(AlertGate):
    """The gate over a narrative store that holds ``held`` (and no other child's events)."""

    def __init__(self, held: ChildBasis, role: Role, agency: str) -> None:
        self.trail = Trail()
        actor = Actor(f"{role}-1", agency, str(KINDS[agency]), str(role))
        super().__init__(
            store=None,  # type: ignore[arg-type]
            keys=None,  # type: ignore[arg-type]
            gov=SimpleNamespace(location=CONFIG, trail=self.trail),  # type: ignore[arg-type]
            actor=actor,
            requests=caller(role, agency),
            addresses=(),
            now=NOW,
        )
        self._held = held

    async def _load(self, child_id: str) -> ChildBasis:
        return self._held

    async def _facts_of(self, event_ids: set[str]) -> dict[str, EventFacts]:
        return {}


async def delivered(alert: StoredAlert, held: ChildBasis, role: Role, agency: str):
    """(shown, awaits facts, audit bodies) of one alert through a gate, as the stream asks."""
    gate = NarrativeGate(held, role, agency)
    shown = await gate.visible([alert])
    await gate.record(shown, step="raised")
    return bool(shown), gate.awaits_facts(alert), [e.body(NOW) for e in gate.trail.entries]


KEPT_DA = dataclasses.replace(DA, trigger_facts=DA_EVENTS)


class TestKeptTriggerFacts:
    """An alert whose trigger the narrative has not stored yet is decided on the facts it kept."""

    async def test_shown_at_once_to_a_permitted_recipient_with_the_same_audit(self) -> None:
        """The DSL sees it now, audited exactly as once the narrative holds the trigger."""
        now = await delivered(KEPT_DA, basis({}), Role.designated_safeguarding_lead, SCHOOL)
        later = await delivered(DA, basis(DA_EVENTS), Role.designated_safeguarding_lead, SCHOOL)
        assert now == later
        assert (now[0], now[1], len(now[2])) == (True, False, 1)

    @pytest.mark.parametrize(
        ("kept", "role", "agency"),
        [
            (DA_EVENTS, Role.named_nurse, HEALTH),
            (HIDDEN_DA, Role.designated_safeguarding_lead, SCHOOL),
            (HIDDEN_DA, Role.social_worker, CS),
        ],
    )
    async def test_not_shown_to_one_the_rules_deny(self, kept, role, agency) -> None:
        """Hidden at once, not waited on, and never audited as delivered."""
        a = dataclasses.replace(DA, trigger_facts=kept)
        assert await delivered(a, basis({}), role, agency) == (False, False, [])

    async def test_an_alert_without_kept_facts_still_waits(self) -> None:
        """Raised before facts were kept: hidden and waited on until the narrative has it."""
        assert await delivered(DA, basis({}), Role.designated_safeguarding_lead, SCHOOL) == (
            False,
            True,
            [],
        )

    async def test_the_narrative_s_facts_win(self) -> None:
        """Facts the narrative store holds decide, whatever the alert kept."""
        held = basis(HIDDEN_DA)
        assert await delivered(KEPT_DA, held, Role.designated_safeguarding_lead, SCHOOL) == (
            False,
            False,
            [],
        )

    def test_only_missing_triggers_are_filled_in(self) -> None:
        """Kept facts of events the basis holds, or the alert does not name, are not used."""
        extra = facts(EventType.concern_raised, HEALTH)
        plan_kept = facts(EventType.involvement_started, CS, "mental_health")
        a = dataclasses.replace(
            CARE, trigger_facts={"ev-ae": AE["ev-ae"], "ev-plan": plan_kept, "ev-other": extra}
        )
        held = basis({"ev-plan": AE["ev-plan"]})
        assert with_kept_facts(a, held) == basis(AE)
        assert with_kept_facts(CARE, held) is held
