"""The alert engine: each rule's scenarios, exactly one alert per occurrence, withdrawal."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.alerts.engine import _windows, evaluate, trigger_facts
from hub.alerts.facts import ContactFacts, HubEventFacts
from hub.alerts.model import (
    AlertRaised,
    AlertWithdrawn,
    EscalationStep,
    Recipient,
    RecipientKind,
    TriggerFacts,
    alert_id_for,
)
from hub.alerts.state import ChildAlertState, MarkStatus, Record, fold

from .conftest import (
    CHILD,
    LEAD,
    T0,
    at,
    attendance,
    concern,
    corrected,
    incident,
    missing,
    plan,
    retraction,
    run,
    school_contact,
)

pytestmark = pytest.mark.unit

SW = Recipient(
    kind=RecipientKind.practitioner,
    id=LEAD.email or "",
    name=LEAD.name,
    team=LEAD.team,
    email=LEAD.email,
    phone=LEAD.phone,
    role=LEAD.role,
)
DUTY = Recipient(kind=RecipientKind.team, id="duty", agency_id="northshire-cs")
FRONT_DOOR = Recipient(kind=RecipientKind.team, id="front-door", agency_id="northshire-cs")
DSL = Recipient(
    kind=RecipientKind.agency,
    id="northshire-primary",
    agency_id="northshire-primary",
    role="designated_safeguarding_lead",
)


def ladder(due: datetime, every: timedelta) -> tuple[EscalationStep, ...]:
    """The default escalation: team manager at the due time, then service manager."""
    return (
        EscalationStep(
            step=1,
            at=due,
            recipients=(
                Recipient(kind=RecipientKind.role, id="team_manager", agency_id="northshire-cs"),
            ),
        ),
        EscalationStep(
            step=2,
            at=due + every,
            recipients=(
                Recipient(kind=RecipientKind.role, id="service_manager", agency_id="northshire-cs"),
            ),
        ),
    )


def kept(*events: HubEventFacts) -> tuple[TriggerFacts, ...]:
    """The trigger facts an alert keeps for these events, written out by hand."""
    return tuple(
        TriggerFacts(
            event_id=e.event_id,
            event_type=e.kind,
            agency_id=e.agency_id,
            agency_kind=e.agency_kind,
            sensitivity=e.sensitivity,
            occurred_at=e.occurred_at,
        )
        for e in events
    )


def raised(outcomes: list) -> list[AlertRaised]:
    return [o for o in outcomes if isinstance(o, AlertRaised)]


class TestUnscheduledCareWithPlan:
    """An A&E attendance of a child on a plan or looked after alerts the social worker."""

    def test_attendance_on_a_plan_alerts_the_social_worker_and_duty_team(self, rules, calendar):
        """The whole alert: recipients from the data, due in 15 minutes, escalation ladder."""
        _, out = run([plan(), attendance()], rules, calendar)
        key = f"unscheduled_care_with_plan|{CHILD}|health:ed-1"
        raised_at = T0 + timedelta(minutes=6)
        due = raised_at + timedelta(minutes=15)
        assert out == [
            AlertRaised(
                alert_id=alert_id_for(key),
                occurrence_key=key,
                child_id=CHILD,
                rule_id="unscheduled_care_with_plan",
                rule_kind="unscheduled_care_with_plan",
                rule_version=1,
                severity="high",
                reason="child_protection_plan",
                recipients=(SW, DUTY),
                trigger_event_ids=("health:ed-1", "cs:plan-1"),
                occurred_at=T0,
                raised_at=raised_at,
                due_at=due,
                escalation=ladder(due, timedelta(minutes=30)),
                trigger_facts=kept(attendance(), plan()),
            )
        ]

    @pytest.mark.parametrize(
        ("history", "expected"),
        [
            pytest.param([], [], id="no-involvement"),
            pytest.param([plan()], ["child_protection_plan"], id="open-cp-plan"),
            pytest.param(
                [plan(involvement_type="looked_after")], ["looked_after"], id="looked-after"
            ),
            pytest.param([plan(involvement_type="child_in_need")], [], id="child-in-need-only"),
            pytest.param(
                [plan(), plan("cs:plan-end", at(-5), ended_on="2026-02-25")],
                [],
                id="plan-ended-before",
            ),
            pytest.param(
                [plan(), plan("cs:plan-end", at(1), ended_on="2026-03-02")],
                ["child_protection_plan"],
                id="plan-ends-that-day",
            ),
            pytest.param([plan(started_on="2026-03-10")], [], id="plan-starts-after"),
        ],
    )
    def test_scenarios(self, rules, calendar, history, expected):
        """Only an involvement of a listed type open on the day of the attendance counts."""
        _, out = run([*history, attendance()], rules, calendar)
        assert [o.reason for o in raised(out)] == expected

    def test_a_late_plan_record_raises_for_an_earlier_attendance(self, rules, calendar):
        """Evaluated by when things happened: the plan arriving second still matches."""
        _, out = run([attendance(), plan()], rules, calendar, now=T0 + timedelta(hours=1))
        assert [(o.rule_id, o.trigger_event_ids) for o in raised(out)] == [
            ("unscheduled_care_with_plan", ("health:ed-1", "cs:plan-1"))
        ]

    def test_an_occurrence_seen_too_late_is_marked_not_raised(self, rules, calendar):
        """A replay months later remembers the occurrence without raising it again."""
        state, out = run([plan(), attendance()], rules, calendar, now=T0 + timedelta(days=15))
        assert out == []
        key = f"unscheduled_care_with_plan|{CHILD}|health:ed-1"
        assert state.alerts[key].status is MarkStatus.suppressed


class TestExactlyOnce:
    """Redelivery, restart and replay raise one alert per occurrence."""

    def test_the_same_events_twice_raise_one_alert(self, rules, calendar):
        """Applying every event a second time adds nothing."""
        events = [plan(), attendance(), school_contact(), incident(when=at(0.5))]
        state, first = run(events, rules, calendar)
        _, second = run(events, rules, calendar, state=state)
        assert [o.rule_id for o in first] == [
            "unscheduled_care_with_plan",
            "domestic_abuse_to_school",
        ]
        assert second == []

    def test_state_restored_from_its_snapshot_behaves_the_same(self, rules, calendar):
        """A restart reads the JSON snapshot and carries on without duplicates."""
        state, _ = run([plan(), attendance()], rules, calendar)
        restored = ChildAlertState.model_validate_json(state.model_dump_json(exclude_defaults=True))
        assert restored == state
        _, again = run([attendance()], rules, calendar, state=restored)
        assert again == []

    def test_an_ignored_event_returns_the_same_state(self, rules, calendar):
        """Another child's event with no shared household leaves the state untouched."""
        state = ChildAlertState(child_id=CHILD)
        other = attendance(child_id="ch-0002")
        assert evaluate(state, other, rules, now=T0, calendar=calendar) == (state, [])


class TestRetractionAndCorrection:
    """A retraction of the triggering event withdraws the alert; corrections are re-judged."""

    def test_retracting_the_attendance_withdraws_the_alert(self, rules, calendar):
        """One withdrawal naming the retraction, at the time it was evaluated."""
        now = T0 + timedelta(hours=3)
        _, out = run(
            [plan(), attendance(), retraction("health:rtr-1", "health:ed-1")],
            rules,
            calendar,
            now=now,
        )
        key = f"unscheduled_care_with_plan|{CHILD}|health:ed-1"
        assert out[1:] == [
            AlertWithdrawn(
                alert_id=alert_id_for(key),
                occurrence_key=key,
                child_id=CHILD,
                rule_id="unscheduled_care_with_plan",
                cause_event_id="health:rtr-1",
                withdrawn_at=now,
            )
        ]

    def test_retracting_the_plan_withdraws_the_alert_it_rested_on(self, rules, calendar):
        """The plan is part of the basis too."""
        _, out = run([plan(), attendance(), retraction("cs:rtr-1", "cs:plan-1")], rules, calendar)
        assert [type(o).__name__ for o in out] == ["AlertRaised", "AlertWithdrawn"]

    def test_a_retraction_arriving_first_means_no_alert(self, rules, calendar):
        """The original, arriving after its retraction, is ignored."""
        _, out = run(
            [plan(), retraction("health:rtr-1", "health:ed-1"), attendance()], rules, calendar
        )
        assert out == []

    def test_retracting_something_unrelated_changes_nothing(self, rules, calendar):
        """Only a retraction of the basis withdraws."""
        _, out = run(
            [plan(), attendance(), school_contact(), retraction("x:rtr", "school:abs-1")],
            rules,
            calendar,
        )
        assert [type(o).__name__ for o in out] == ["AlertRaised"]

    def test_a_correction_that_still_matches_keeps_the_alert(self, rules, calendar):
        """Same occurrence key, so no new alert and no withdrawal."""
        original = attendance()
        _, out = run([plan(), original, corrected(original, "health:cor-1")], rules, calendar)
        assert len(out) == 1

    def test_a_correction_that_no_longer_matches_withdraws(self, rules, calendar):
        """An attendance corrected into a home visit is no unscheduled-care attendance."""
        original = attendance()
        fix = corrected(original, "health:cor-1", contact=ContactFacts(contact_type="home_visit"))
        _, out = run([plan(), original, fix], rules, calendar)
        assert [type(o).__name__ for o in out] == ["AlertRaised", "AlertWithdrawn"]

    def test_a_withdrawn_occurrence_is_raised_again_when_a_correction_restores_it(
        self, rules, calendar
    ):
        """The same alert id comes back; the store re-opens it."""
        original = attendance()
        wrong = corrected(original, "health:cor-1", contact=ContactFacts(contact_type="home_visit"))
        right = corrected(
            original, "health:cor-2", recorded_at=original.recorded_at + timedelta(hours=2)
        )
        _, out = run([plan(), original, wrong, right], rules, calendar)
        assert [type(o).__name__ for o in out] == ["AlertRaised", "AlertWithdrawn", "AlertRaised"]
        assert out[0].alert_id == out[2].alert_id
        assert (out[0].trigger_facts, out[2].trigger_facts) == (
            kept(original, plan()),
            kept(plan()),  # the corrected trigger's facts are its narrative entry's, not these
        )


class TestDomesticAbuseToSchool:
    """Operation Encompass: the school's DSL hears before 09:00 on the next school day."""

    def test_friday_night_incident_is_due_monday_morning(self, rules, calendar):
        """Friday 6 March 2026, 22:30 -> Monday 9 March, 09:00 (GMT)."""
        friday = datetime(2026, 3, 6, 22, 30, tzinfo=UTC)
        _, out = run([school_contact(), incident(when=friday)], rules, calendar)
        (alert,) = raised(out)
        assert (alert.recipients, alert.reason, alert.due_at) == (
            (DSL,),
            "child_present",
            datetime(2026, 3, 9, 9, 0, tzinfo=UTC),
        )
        assert alert.escalation == ladder(alert.due_at, timedelta(minutes=60))

    def test_no_school_known_goes_to_the_duty_team(self, rules, calendar):
        """A home-educated child: children's social care hears instead."""
        _, out = run([incident()], rules, calendar)
        assert [(o.recipients, o.reason) for o in raised(out)] == [((DUTY,), "no_school_known")]

    def test_the_latest_school_is_the_pupil_s_school(self, rules, calendar):
        """After a move, only the school that last sent events about the child hears."""
        old = school_contact("old:abs", at(-30))
        old = replace(old, agency_id="old-school")
        _, out = run([old, school_contact(), incident()], rules, calendar)
        assert [o.recipients for o in raised(out)] == [(DSL,)]

    @pytest.mark.parametrize(
        ("incident_type", "sensitivity", "alerts"),
        [
            ("domestic_abuse", ("domestic_abuse",), 1),
            ("domestic_abuse", (), 1),
            ("other", ("domestic_abuse",), 1),
            ("other", (), 0),
            ("exploitation", ("criminal_intelligence",), 0),
        ],
    )
    def test_which_incidents_count(self, rules, calendar, incident_type, sensitivity, alerts):
        """A domestic-abuse incident type or sensitivity tag on a police incident."""
        _, out = run(
            [school_contact(), incident(incident_type=incident_type, sensitivity=sensitivity)],
            rules,
            calendar,
        )
        assert len(raised(out)) == alerts

    def test_an_incident_at_the_child_s_household_reaches_them(self, rules, calendar):
        """Another child's incident at the same address alerts this child's school too."""
        home = ("addr:abc",)
        own = school_contact()
        own = replace(own, household_keys=home)
        sibling = incident(child_id="ch-0002", household_keys=home, role="child_in_household")
        _, out = run([own, sibling], rules, calendar)
        assert [(o.child_id, o.reason, o.recipients) for o in raised(out)] == [
            (CHILD, "household", (DSL,))
        ]


class TestAccumulatingConcerns:
    """N concerns from M agencies within D days alert the front door once per window."""

    @pytest.mark.parametrize(
        ("concerns", "alerts"),
        [
            pytest.param(
                [(0, "northshire-police"), (5, "northshire-primary"), (20, "northshire-health")],
                1,
                id="three-from-three-in-20-days",
            ),
            pytest.param(
                [(0, "northshire-police"), (5, "northshire-police"), (20, "northshire-health")],
                1,
                id="three-from-two",
            ),
            pytest.param(
                [(0, "northshire-police"), (5, "northshire-police"), (20, "northshire-police")],
                0,
                id="three-from-one-agency",
            ),
            pytest.param(
                [(0, "northshire-police"), (20, "northshire-primary"), (31, "northshire-health")],
                0,
                id="spread-over-31-days",
            ),
            pytest.param(
                [(0, "northshire-police"), (30, "northshire-primary"), (30, "northshire-health")],
                1,
                id="exactly-30-days",
            ),
            pytest.param([(0, "northshire-police"), (1, "northshire-primary")], 0, id="two-only"),
        ],
    )
    def test_thresholds(self, rules, calendar, concerns, alerts):
        """Defaults 3 concerns, 2 agencies, 30 days."""
        events = [concern(f"c-{i}", at(d), a) for i, (d, a) in enumerate(concerns)]
        _, out = run(events, rules, calendar)
        assert len(raised(out)) == alerts

    def test_once_per_window_not_once_per_event(self, rules, calendar):
        """A fourth and fifth concern in the window add nothing; the whole alert is right."""
        agencies = ["northshire-police", "northshire-primary", "northshire-health"] * 2
        events = [concern(f"c-{i}", at(i * 2), a) for i, a in enumerate(agencies[:5])]
        _, out = run(events, rules, calendar)
        key = f"accumulating_concerns|{CHILD}|window:{T0.isoformat()}"
        raised_at = at(4) + timedelta(minutes=6)
        due = raised_at + timedelta(minutes=1440)
        assert out == [
            AlertRaised(
                alert_id=alert_id_for(key),
                occurrence_key=key,
                child_id=CHILD,
                rule_id="accumulating_concerns",
                rule_kind="accumulating_concerns",
                rule_version=1,
                severity="medium",
                reason="3_concerns_3_agencies",
                recipients=(FRONT_DOOR,),
                trigger_event_ids=("c-0", "c-1", "c-2"),
                occurred_at=at(4),
                raised_at=raised_at,
                due_at=due,
                escalation=ladder(due, timedelta(minutes=240)),
                window_start=T0,
                trigger_facts=kept(*events[:3]),
            )
        ]

    def test_a_new_set_of_concerns_after_the_window_alerts_again(self, rules, calendar):
        """Concerns counted once are not counted again; three fresh ones make a new window."""
        a, b = "northshire-police", "northshire-health"
        events = [concern(f"c-{i}", at(i), [a, b][i % 2]) for i in range(3)]
        events += [concern(f"d-{i}", at(40 + i), [a, b][i % 2]) for i in range(3)]
        _, out = run(events, rules, calendar)
        assert [o.window_start for o in raised(out)] == [T0, at(40)]

    def test_a_late_concern_completes_a_window_in_its_place(self, rules, calendar):
        """Arriving last but dated first, it opens the window."""
        late = concern("c-late", at(-3), "northshire-health")
        events = [
            concern("c-1", at(0), "northshire-police"),
            concern("c-2", at(2), "northshire-police"),
            late,
        ]
        _, out = run(events, rules, calendar, now=at(3))
        assert [(o.window_start, o.trigger_event_ids) for o in raised(out)] == [
            (at(-3), ("c-late", "c-1", "c-2"))
        ]

    def test_retracting_a_counted_concern_withdraws_the_window(self, rules, calendar):
        """Below the threshold without it: withdrawn."""
        events = [
            concern("c-0", at(0), "northshire-police"),
            concern("c-1", at(1), "northshire-health"),
            concern("c-2", at(2), "northshire-primary"),
            retraction("r-1", "c-1", at(3)),
        ]
        _, out = run(events, rules, calendar)
        assert [type(o).__name__ for o in out] == ["AlertRaised", "AlertWithdrawn"]

    def test_a_window_that_still_holds_after_a_retraction_stays(self, rules, calendar):
        """Four concerns, one retracted: still three from two agencies, nothing changes."""
        events = [
            concern("c-0", at(0), "northshire-police"),
            concern("c-1", at(1), "northshire-health"),
            concern("c-2", at(2), "northshire-primary"),
            concern("c-3", at(3), "northshire-health"),
            retraction("r-1", "c-1", at(4)),
        ]
        _, out = run(events, rules, calendar)
        assert [type(o).__name__ for o in out] == ["AlertRaised"]


class TestMissingEpisodes:
    """Repeated missing episodes, or any episode of a looked-after child."""

    def test_any_episode_of_a_looked_after_child_alerts(self, rules, calendar):
        """Lead practitioner of the looked-after involvement and the duty team."""
        lac = plan(involvement_type="looked_after", involvement_id="LAC-1")
        _, out = run([lac, missing("m-1", at(0)), missing("m-2", at(1))], rules, calendar)
        assert [(o.occurrence_key, o.reason, o.recipients) for o in out] == [
            (f"missing_episodes|{CHILD}|m-1", "looked_after", (SW, DUTY)),
            (f"missing_episodes|{CHILD}|m-2", "looked_after", (SW, DUTY)),
        ]

    @pytest.mark.parametrize(
        ("days", "alerts"),
        [([0, 10, 20], 1), ([0, 10], 0), ([0, 50, 91], 0), ([0, 1, 2, 3, 4], 1)],
    )
    def test_repeated_episodes(self, rules, calendar, days, alerts):
        """Three episodes within 90 days, once per window; no recipient found: duty team."""
        _, out = run([missing(f"m-{d}", at(d)) for d in days], rules, calendar)
        assert [(o.recipients, o.reason) for o in raised(out)] == [((DUTY,), "3_episodes")] * alerts


class TestTriggerFacts:
    """An alert keeps the sharing facts of the triggers the engine holds from the event itself."""

    def test_each_trigger_in_order(self):
        """Type, agency and kind, sensitivity and time (UTC) of each event held."""
        police = incident()
        state = ChildAlertState(child_id=CHILD)
        for event in (plan(), police):
            state = fold(state, event)
        assert trigger_facts(state, [police.event_id, "cs:plan-1"]) == kept(police, plan())

    def test_a_time_with_an_offset_is_kept_in_utc(self):
        """The same instant, written in UTC."""
        local = attendance(when=T0.astimezone(timezone(timedelta(hours=1))))
        (facts,) = trigger_facts(fold(ChildAlertState(child_id=CHILD), local), [local.event_id])
        assert (facts.occurred_at, facts.occurred_at.utcoffset()) == (T0, timedelta(0))

    def test_unknown_corrected_and_retracted_triggers_are_left_out(self):
        """Nothing for an event the state does not hold, or holds only from a correction."""
        original = attendance()
        fix = corrected(original, "health:cor-1", sensitivity=("mental_health",))
        state = ChildAlertState(child_id=CHILD)
        for event in (plan(), original, fix, school_contact(), retraction("r-1", "school:abs-1")):
            state = fold(state, event)
        ids = [original.event_id, "school:abs-1", "nowhere:1", "cs:plan-1"]
        assert trigger_facts(state, ids) == kept(plan())


def _windows_by_rescanning(
    items: list[Record], min_count: int, min_agencies: int, within: timedelta
) -> list[tuple[datetime, tuple[str, ...]]]:
    """The windows as a fresh scan at each record finds them (what the one pass must match)."""
    found, first = [], 0
    for j, item in enumerate(items):
        window = [i for i in items[first : j + 1] if i.occurred_at >= item.occurred_at - within]
        if len(window) >= min_count and len({i.agency_id for i in window}) >= min_agencies:
            found.append((window[0].occurred_at, tuple(i.event_id for i in window)))
            first = j + 1
    return found


class TestWindowScan:
    """The sticky-window scan finds, in one pass, the windows a scan per record finds."""

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(st.tuples(st.integers(0, 120), st.sampled_from("abc")), min_size=0, max_size=25),
        st.integers(1, 4),
        st.integers(1, 3),
        st.sampled_from([0, 1, 7, 30, 90]),
    )
    def test_matches_a_rescan(self, raw, min_count, min_agencies, days) -> None:
        """Same windows, same records in each, for any records, counts and spans."""
        items = sorted(
            (
                Record(
                    event_id=f"e{n:02d}",
                    kind="concern.raised",
                    occurred_at=T0 + timedelta(days=day),
                    recorded_at=T0,
                    agency_id=agency,
                    agency_kind="police",
                )
                for n, (day, agency) in enumerate(raw)
            ),
            key=lambda r: (r.occurred_at, r.event_id),
        )
        within = timedelta(days=days)
        rule = SimpleNamespace(id="accumulating")
        found = _windows(
            rule,  # type: ignore[arg-type]
            ChildAlertState(child_id="c"),
            items,
            min_count=min_count,
            min_agencies=min_agencies,
            within=within,
            cause=None,
        )
        assert [(start, tuple(r.event_id for r in w)) for _, w, start in found] == (
            _windows_by_rescanning(items, min_count, min_agencies, within)
        )
