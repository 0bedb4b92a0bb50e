"""The decision point: a table of requester x event x consent x child status x rule set, and the
merging, delay, time and cache behaviour around it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts import AgencyKind, EventType, LawfulBasis
from hub.domain.roles import Role
from hub.sharing import (
    AccessRequest,
    ChildContext,
    ChildStatus,
    ConsentState,
    Decision,
    EventFacts,
    Grant,
    GrantedVia,
    Milestone,
    Obligations,
    Purpose,
    RulePack,
    compile_pack,
    decide,
    decide_all,
)
from tests.unit.sharing.conftest import (
    INCIDENT_AT,
    NOW,
    child,
    consent,
    health_event,
    pack,
    police_event,
    rule,
    school_dsl,
    social_worker,
)

pytestmark = pytest.mark.unit

CS_SW = {"agency_kinds": ["childrens_services"], "roles": ["social_worker"]}
SCHOOL_DSL = {"agency_kinds": ["schools"], "roles": ["designated_safeguarding_lead"]}

POLICE_TO_CS = rule(
    id="police-to-cs",
    match={"source_agency_kinds": ["police"], "sensitivity_none": ["sexual_health"]},
    recipients={**CS_SW, "involved_with_child": True},
    obligations={"remove_fields": ["data.details"], "may_reshare": True},
)
SEXUAL_HEALTH_WITH_CONSENT = rule(
    id="sexual-health-consent",
    match={"source_agency_kinds": ["health"], "sensitivity_any": ["sexual_health"]},
    recipients=CS_SW,
    lawful_basis="consent",
    consent="required",
    obligations={"remove_fields": ["data.details"], "generalise": {"summary": "Health contact."}},
)
MENTAL_HEALTH_UNLESS_HARM = rule(
    id="mental-health-unless-harm",
    match={"source_agency_kinds": ["health"], "sensitivity_any": ["mental_health"]},
    recipients=CS_SW,
    lawful_basis="consent",
    consent="required_unless_significant_harm",
    obligations={"remove_fields": ["data"]},
)
PLAN_TO_SCHOOL = rule(
    id="plan-to-school",
    match={"source_agency_kinds": ["police"], "child_status": ["cp_plan", "looked_after"]},
    recipients=SCHOOL_DSL,
    purpose="education_safeguarding",
    lawful_basis="legal_obligation",
)
NO_STATUS_TO_SCHOOL = rule(
    id="no-status-to-school",
    match={"source_agency_kinds": ["health"], "child_status": ["none"]},
    recipients=SCHOOL_DSL,
    purpose="education_safeguarding",
    obligations={"generalise": {"summary": "Attended emergency department."}},
)
NOT_YET = rule(
    id="not-yet",
    effective_from="2025-07-01",
    match={"source_agency_kinds": ["schools"]},
    recipients=CS_SW,
)
EXPIRED = rule(
    id="expired",
    effective_from="2025-01-01",
    effective_to="2025-06-01",
    match={"source_agency_kinds": ["schools"]},
    recipients={**CS_SW, "teams": ["Team 2"]},
)

PACKS = {
    "empty": pack(),
    "table": pack(
        POLICE_TO_CS,
        SEXUAL_HEALTH_WITH_CONSENT,
        MENTAL_HEALTH_UNLESS_HARM,
        PLAN_TO_SCHOOL,
        NO_STATUS_TO_SCHOOL,
        NOT_YET,
        EXPIRED,
    ),
}
SCHOOL_EVENT = EventFacts(
    EventType.concern_raised, "northshire-primary", AgencyKind.schools, frozenset(), INCIDENT_AT
)
MAY_1 = "2025-05-01T12:00:00+00:00"


def permit(rule_id: str, basis: str, via: GrantedVia, **obligations: Any) -> Decision:
    """The expected permit of one rule in the table pack."""
    how = {
        GrantedVia.not_required: "consent not required",
        GrantedVia.consent: "with consent",
        GrantedVia.significant_harm: "without consent, on risk of significant harm",
    }[via]
    return Decision(
        permitted=True,
        pack_version="test.1",
        reason=f"permitted by rule {rule_id} ({basis}; {how})",
        obligations=Obligations(**obligations),
        grants=(Grant(rule_id, LawfulBasis(basis), via),),
    )


def deny(reason: str) -> Decision:
    """The expected denial with this reason."""
    return Decision(permitted=False, pack_version="test.1", reason=reason)


TABLE: list[tuple[str, str, AccessRequest, EventFacts, ChildContext, Decision]] = [
    (
        "default deny: no rules at all",
        "empty",
        school_dsl(),
        police_event(EventType.concern_raised, "domestic_abuse"),
        child(),
        deny(
            "no rule in pack test.1 shares police concern.raised events with a "
            "designated_safeguarding_lead at northshire-primary (schools) for "
            "education_safeguarding"
        ),
    ),
    (
        "default deny: no rule for this purpose",
        "table",
        social_worker(Purpose.law_enforcement),
        police_event(),
        child(),
        deny(
            "no rule in pack test.1 shares police contact.recorded events with a social_worker "
            "at northshire-cs (childrens_services) for law_enforcement"
        ),
    ),
    (
        "not_required: permits whatever the consent state",
        "table",
        social_worker(),
        police_event(EventType.contact_recorded, "domestic_abuse"),
        child(consents=[consent(ConsentState.refused)]),
        permit(
            "police-to-cs",
            "public_task",
            GrantedVia.not_required,
            remove_fields=("data.details",),
            may_reshare=True,
        ),
    ),
    (
        "not_required: still needs the recipient to work with the child",
        "table",
        social_worker(),
        police_event(),
        child(involved_agencies=[]),
        deny(
            "no rule in pack test.1 permits this: rule police-to-cs needs the recipient's "
            "agency to have an open involvement with the child; rule sexual-health-consent "
            "covers events from health agencies only; rule mental-health-unless-harm covers "
            "events from health agencies only (and 1 more)"
        ),
    ),
    (
        "sensitivity_none keeps sexual health out of the general rule",
        "table",
        social_worker(),
        police_event(EventType.contact_recorded, "sexual_health"),
        child(),
        deny(
            "no rule in pack test.1 permits this: rule police-to-cs excludes events tagged "
            "sexual_health; rule sexual-health-consent covers events from health agencies "
            "only; rule mental-health-unless-harm covers events from health agencies only "
            "(and 1 more)"
        ),
    ),
    (
        "required: consent given permits, on consent",
        "table",
        social_worker(),
        health_event("sexual_health"),
        child(consents=[consent(ConsentState.given)]),
        permit(
            "sexual-health-consent",
            "consent",
            GrantedVia.consent,
            remove_fields=("data.details",),
            generalise=(("summary", "Health contact."),),
        ),
    ),
    (
        "required: no consent recorded denies",
        "table",
        social_worker(),
        health_event("sexual_health"),
        child(),
        deny(
            "no rule in pack test.1 permits this: rule sexual-health-consent needs consent: "
            "none recorded for safeguarding with northshire-cs; rule "
            "mental-health-unless-harm needs an event tagged mental_health; rule police-to-cs "
            "covers events from police agencies only (and 1 more)"
        ),
    ),
    (
        "required: withdrawn consent denies, with the date",
        "table",
        social_worker(),
        health_event("sexual_health"),
        child(consents=[consent(ConsentState.withdrawn)]),
        deny(
            "no rule in pack test.1 permits this: rule sexual-health-consent needs consent: "
            f"withdrawn for safeguarding with northshire-cs on {MAY_1}; rule "
            "mental-health-unless-harm needs an event tagged mental_health; rule police-to-cs "
            "covers events from police agencies only (and 1 more)"
        ),
    ),
    (
        "required: significant harm does not override a rule that requires consent",
        "table",
        social_worker(),
        health_event("sexual_health"),
        child(consents=[consent(ConsentState.refused)], significant_harm=True),
        deny(
            "no rule in pack test.1 permits this: rule sexual-health-consent needs consent: "
            f"refused for safeguarding with northshire-cs on {MAY_1}; rule "
            "mental-health-unless-harm needs an event tagged mental_health; rule police-to-cs "
            "covers events from police agencies only (and 1 more)"
        ),
    ),
    (
        "required: consent given to another agency does not count",
        "table",
        social_worker(),
        health_event("sexual_health"),
        child(consents=[consent(ConsentState.given, agency_id="northshire-police")]),
        deny(
            "no rule in pack test.1 permits this: rule sexual-health-consent needs consent: "
            "none recorded for safeguarding with northshire-cs; rule "
            "mental-health-unless-harm needs an event tagged mental_health; rule police-to-cs "
            "covers events from police agencies only (and 1 more)"
        ),
    ),
    (
        "required_unless_significant_harm: consent given permits on consent",
        "table",
        social_worker(),
        health_event("mental_health"),
        child(consents=[consent(ConsentState.given)]),
        permit("mental-health-unless-harm", "consent", GrantedVia.consent, remove_fields=("data",)),
    ),
    (
        "required_unless_significant_harm: refused but at risk permits on Sch. 1 para 18",
        "table",
        social_worker(),
        health_event("mental_health"),
        child(consents=[consent(ConsentState.refused)], significant_harm=True),
        permit(
            "mental-health-unless-harm",
            "safeguarding_sch1_para18",
            GrantedVia.significant_harm,
            remove_fields=("data",),
        ),
    ),
    (
        "required_unless_significant_harm: withdrawn and no risk denies",
        "table",
        social_worker(),
        health_event("mental_health"),
        child(consents=[consent(ConsentState.withdrawn)]),
        deny(
            "no rule in pack test.1 permits this: rule mental-health-unless-harm needs consent "
            f"or a risk of significant harm: withdrawn for safeguarding with northshire-cs on "
            f"{MAY_1}; rule sexual-health-consent needs an event tagged sexual_health; rule "
            "police-to-cs covers events from police agencies only (and 1 more)"
        ),
    ),
    (
        "child status: a plan rule permits for a child on a plan",
        "table",
        school_dsl(),
        police_event(),
        child(statuses=[ChildStatus.cp_plan]),
        permit("plan-to-school", "legal_obligation", GrantedVia.not_required),
    ),
    (
        "child status: a plan rule denies for a child with no status",
        "table",
        school_dsl(),
        police_event(),
        child(),
        deny(
            "no rule in pack test.1 permits this: rule plan-to-school applies only to a child "
            "with status cp_plan or looked_after; rule no-status-to-school covers events from "
            "health agencies only"
        ),
    ),
    (
        "child status none: matches a child with no open status",
        "table",
        school_dsl(),
        health_event(),
        child(),
        permit(
            "no-status-to-school",
            "public_task",
            GrantedVia.not_required,
            generalise=(("summary", "Attended emergency department."),),
        ),
    ),
    (
        "child status none: does not match a child in need",
        "table",
        school_dsl(),
        health_event(),
        child(statuses=[ChildStatus.child_in_need]),
        deny(
            "no rule in pack test.1 permits this: rule no-status-to-school applies only to a "
            "child with status none; rule plan-to-school covers events from police agencies "
            "only"
        ),
    ),
    (
        "effective dates: a rule not yet in force denies and says from when",
        "table",
        social_worker(),
        SCHOOL_EVENT,
        child(),
        deny(
            "no rule in pack test.1 permits this: rule not-yet is not in force until "
            "2025-07-01T00:00:00+01:00; rule police-to-cs covers events from police agencies "
            "only; rule sexual-health-consent covers events from health agencies only "
            "(and 1 more)"
        ),
    ),
    (
        "effective dates and teams: an expired rule for the team denies and says since when",
        "table",
        social_worker(team="Team 2"),
        SCHOOL_EVENT,
        child(),
        deny(
            "no rule in pack test.1 permits this: rule not-yet is not in force until "
            "2025-07-01T00:00:00+01:00; rule expired stopped being in force on "
            "2025-06-01T00:00:00+01:00; rule police-to-cs covers events from police agencies "
            "only (and 2 more)"
        ),
    ),
]


class TestDecisionTable:
    """Every consent mode, child status, time window and the default deny, as whole decisions."""

    @pytest.mark.parametrize(
        ("pack_name", "request_", "event", "child_", "expected"),
        [row[1:] for row in TABLE],
        ids=[row[0] for row in TABLE],
    )
    def test_row(
        self,
        pack_name: str,
        request_: AccessRequest,
        event: EventFacts,
        child_: ChildContext,
        expected: Decision,
    ) -> None:
        """The decision is exactly the expected one, with and without the cache."""
        rules = PACKS[pack_name]
        assert decide(request_, event, child_, rules, now=NOW) == expected
        assert decide(request_, event, child_, rules, now=NOW, use_cache=False) == expected


class TestMerging:
    """Several permitting rules: any grant shows a field; re-sharing needs every rule's leave."""

    def test_union_of_permits_intersection_of_removals(self) -> None:
        """A field is removed only when every permitting rule removes it."""
        rules = pack(
            rule(id="rule-a", obligations={"remove_fields": ["data.details", "person.address"]}),
            rule(
                id="rule-b",
                lawful_basis="safeguarding_sch1_para18",
                obligations={
                    "remove_fields": ["data", "person.related"],
                    "may_reshare": True,
                },
            ),
        )
        got = decide(social_worker(), police_event(), child(), rules, now=NOW)
        assert got == Decision(
            permitted=True,
            pack_version="test.1",
            reason="permitted by rule rule-a (public_task; consent not required); "
            "rule rule-b (safeguarding_sch1_para18; consent not required)",
            obligations=Obligations(remove_fields=("data.details",), may_reshare=False),
            grants=(
                Grant("rule-a", LawfulBasis.public_task, GrantedVia.not_required),
                Grant("rule-b", LawfulBasis.safeguarding_sch1_para18, GrantedVia.not_required),
            ),
        )
        assert (got.rule_id, got.lawful_basis) == ("rule-a", LawfulBasis.public_task)

    def test_generalised_beats_removed_and_shown_beats_generalised(self) -> None:
        """Per field the most open treatment wins; equal treatments keep the first rule's text."""
        rules = pack(
            rule(id="rule-a", obligations={"remove_fields": ["summary", "data.summary"]}),
            rule(id="rule-b", obligations={"generalise": {"summary": "B", "data.summary": "B"}}),
            rule(id="rule-c", obligations={"generalise": {"summary": "C"}}),
        )
        got = decide(social_worker(), police_event(), child(), rules, now=NOW)
        assert got.obligations == Obligations(generalise=(("summary", "B"),))


class TestDelay:
    """A delay holds an event back until hours have passed or a milestone is recorded."""

    HOURS = pack(rule(id="held", obligations={"delay": {"hours_after_event": 12}}))
    MEETING = pack(
        rule(id="after-meeting", obligations={"delay": {"until_milestone": "strategy_meeting"}})
    )

    def test_held_until_hours_pass(self) -> None:
        """Before the hours pass it is denied with the release time; after, permitted."""
        event = police_event()
        early = decide(social_worker(), event, child(), self.HOURS, now=INCIDENT_AT)
        assert early == Decision(
            permitted=False,
            pack_version="test.1",
            reason="withheld for now: rule held holds it until 12 hours after the event",
            not_before=INCIDENT_AT + timedelta(hours=12),
            held=True,
        )
        later = decide(
            social_worker(), event, child(), self.HOURS, now=INCIDENT_AT + timedelta(hours=12)
        )
        assert later == permit("held", "public_task", GrantedVia.not_required)

    def test_held_until_a_strategy_meeting_after_the_event(self) -> None:
        """A meeting before the event does not release it; one after it does."""
        event = police_event()
        before = child(milestones={Milestone.strategy_meeting: INCIDENT_AT - timedelta(days=3)})
        after = child(milestones={Milestone.strategy_meeting: INCIDENT_AT + timedelta(hours=9)})
        held = decide(social_worker(), event, before, self.MEETING, now=NOW)
        assert held == Decision(
            permitted=False,
            pack_version="test.1",
            reason="withheld for now: rule after-meeting holds it until a strategy_meeting is "
            "recorded after the event",
            held=True,
        )
        released = decide(social_worker(), event, after, self.MEETING, now=NOW)
        assert released == permit("after-meeting", "public_task", GrantedVia.not_required)

    def test_a_rule_without_delay_is_not_held_by_one_with(self) -> None:
        """An undelayed permit applies at once; the delayed rule joins once its delay is over."""
        rules = pack(
            rule(id="now", obligations={"remove_fields": ["data"]}),
            rule(id="later", obligations={"delay": {"hours_after_event": 48}}),
        )
        got = decide(social_worker(), police_event(), child(), rules, now=NOW)
        assert (got.permitted, got.rule_id, got.obligations.remove_fields) == (
            True,
            "now",
            ("data",),
        )
        then = decide(social_worker(), police_event(), child(), rules, now=NOW + timedelta(days=2))
        assert ([g.rule_id for g in then.grants], then.obligations.remove_fields) == (
            ["now", "later"],
            (),
        )

    def test_deciding_together_holds_each_event_by_its_own_time(self) -> None:
        """Events with the same attributes at different times are held or released apart."""
        old, new = police_event(), police_event(at=INCIDENT_AT + timedelta(hours=10))
        now = INCIDENT_AT + timedelta(hours=13)
        together = decide_all(social_worker(), [old, new, old], child(), self.HOURS, now=now)
        assert together == [
            decide(social_worker(), e, child(), self.HOURS, now=now) for e in (old, new, old)
        ]
        assert [d.permitted for d in together] == [True, False, True]


class TestAttributesOnly:
    """A decision depends on attributes alone, so caching it is safe."""

    def test_cache_answers_like_a_fresh_evaluation_across_time_boundaries(self) -> None:
        """Crossing a rule's start or end gives a new answer, cached or not."""
        rules = PACKS["table"]
        request, event = social_worker(team="Team 2"), SCHOOL_EVENT
        for now in (
            datetime(2024, 12, 31, 23, 0, tzinfo=UTC),
            datetime(2025, 3, 1, tzinfo=UTC),
            datetime(2025, 5, 31, 22, 59, tzinfo=UTC),
            datetime(2025, 5, 31, 23, 0, tzinfo=UTC),
            datetime(2025, 7, 1, tzinfo=UTC),
        ):
            cached = decide(request, event, child(), rules, now=now)
            fresh = decide(request, event, child(), rules, now=now, use_cache=False)
            assert cached == fresh
        assert decide(
            request, event, child(), rules, now=datetime(2025, 3, 1, tzinfo=UTC)
        ).permitted
        assert not decide(request, event, child(), rules, now=NOW).permitted

    def test_many_events_with_equal_attributes_cost_one_evaluation(self) -> None:
        """A narrative of 500 alike events is evaluated once."""
        rules = pack(rule(id="any-police", match={"source_agency_kinds": ["police"]}))
        compiled = compile_pack(rules)
        compiled.cache_clear()
        for minute in range(500):
            event = police_event(at=INCIDENT_AT - timedelta(minutes=minute))
            assert decide(social_worker(), event, child(), rules, now=NOW).permitted
        info = compiled._cached.cache_info()
        assert (info.misses, info.hits) == (1, 499)

    def test_compiled_once_per_pack_object(self) -> None:
        """The same pack object compiles once; an equal new object compiles afresh."""
        first = pack(rule())
        assert compile_pack(first) is compile_pack(first)
        assert compile_pack(pack(rule())) is not compile_pack(first)


class TestRecipients:
    """Recipient conditions: agencies, own-agency events, agency systems."""

    def test_own_agency_only(self) -> None:
        """An own-agency rule shares a police event with police, not with anyone else's."""
        rules = pack(
            rule(
                id="own",
                recipients={"roles": ["police_ppu", "social_worker"], "own_agency_only": True},
            )
        )
        ppu = AccessRequest(
            "northshire-police", AgencyKind.police, Role.police_ppu, Purpose.safeguarding
        )
        assert decide(ppu, police_event(), child(), rules, now=NOW).permitted
        assert not decide(social_worker(), police_event(), child(), rules, now=NOW).permitted

    def test_named_agencies(self) -> None:
        """A rule naming agencies does not share with another agency of the same kind."""
        rules = pack(rule(id="named", recipients={"agencies": ["southshire-cs"]}))
        assert not decide(social_worker(), police_event(), child(), rules, now=NOW).permitted

    def test_agency_system_is_a_role_like_any_other(self) -> None:
        """A partner system gets nothing unless a rule names agency_system."""
        system = AccessRequest(
            "northshire-cs", AgencyKind.childrens_services, Role.agency_system, Purpose.safeguarding
        )
        assert not decide(system, police_event(), child(), PACKS["table"], now=NOW).permitted


def test_pack_version_is_reported() -> None:
    """The decision names the version of the pack it was made under."""
    rules: RulePack = pack(rule(), version="2025.7")
    assert decide(social_worker(), police_event(), child(), rules, now=NOW).pack_version == "2025.7"
