"""Household incidents: a police notice about one child reaches a sibling at the same address."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from hub.alerts.engine import evaluate
from hub.alerts.facts import ContactFacts
from hub.alerts.model import (
    AlertRaised,
    AlertWithdrawn,
    Recipient,
    RecipientKind,
    alert_id_for,
)
from hub.alerts.state import ChildAlertState, MarkStatus, Record, fold

from .conftest import CHILD, T0, at, attendance, corrected, incident, plan, retraction, run
from .conftest import school_contact as _school_contact

pytestmark = pytest.mark.unit

SIBLING = "ch-0002"
HOME = ("addr:home",)
ELSEWHERE = ("addr:elsewhere",)
NOTICE = "police:inc-9"
FRIDAY_NIGHT = datetime(2026, 3, 6, 22, 30, tzinfo=UTC)
MONDAY_9AM = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
DSL = Recipient(
    kind=RecipientKind.agency,
    id="northshire-primary",
    agency_id="northshire-primary",
    role="designated_safeguarding_lead",
)
KEY = f"domestic_abuse_to_school|{CHILD}|{NOTICE}"


def school_contact(event_id: str = "school:abs-1", when: datetime = T0 - timedelta(days=5)):
    """The pupil's school record, which also puts them at the family home."""
    return replace(_school_contact(event_id, when), household_keys=HOME)


def named_incident(**kw: object):
    """The police notice about the sibling (a victim's child, present), at the family home."""
    fields: dict[str, object] = {"child_id": SIBLING, "household_keys": HOME, "when": FRIDAY_NIGHT}
    fields.update(kw)
    return incident(NOTICE, **fields)  # type: ignore[arg-type]


def pupil(rules, calendar) -> ChildAlertState:
    """This child, a pupil at the family home, not named in the notice."""
    state, out = run([school_contact()], rules, calendar)
    assert out == []
    return state


class TestNoticeToTheSiblingSchool:
    """A child at the address who is not in the notice gets their own school's notice."""

    def test_the_sibling_s_school_hears_before_the_next_school_day(self, rules, calendar):
        """One alert for this child, reason 'household', due Monday 09:00, to their DSL."""
        now = FRIDAY_NIGHT + timedelta(minutes=20)
        state, out = evaluate(
            pupil(rules, calendar), named_incident(), rules, now=now, calendar=calendar
        )
        (alert,) = out
        assert isinstance(alert, AlertRaised)
        assert alert.model_dump(exclude={"escalation"}) == {
            "alert_id": alert_id_for(KEY),
            "occurrence_key": KEY,
            "child_id": CHILD,
            "rule_id": "domestic_abuse_to_school",
            "rule_kind": "domestic_abuse_to_school",
            "rule_version": rules.version,
            "severity": "high",
            "reason": "household",
            "recipients": (DSL.model_dump(),),
            "trigger_event_ids": (NOTICE,),
            "occurred_at": FRIDAY_NIGHT,
            "raised_at": now,
            "due_at": MONDAY_9AM,
            "window_start": None,
            "trigger_facts": (  # the sibling's notice, as its narrative entry has it
                {
                    "event_id": NOTICE,
                    "event_type": "contact.recorded",
                    "agency_id": "northshire-police",
                    "agency_kind": "police",
                    "sensitivity": ("domestic_abuse",),
                    "occurred_at": FRIDAY_NIGHT,
                },
            ),
        }
        assert state.records[NOTICE].via_household is True
        assert state.alerts[KEY].status is MarkStatus.raised

    def test_redelivery_and_a_restored_snapshot_raise_nothing_more(self, rules, calendar):
        """The same notice again, before or after a restart, is the same occurrence."""
        state, first = run([named_incident()], rules, calendar, state=pupil(rules, calendar))
        _, again = run([named_incident()], rules, calendar, state=state)
        restored = ChildAlertState.model_validate_json(state.model_dump_json(exclude_defaults=True))
        _, after_restart = run([named_incident()], rules, calendar, state=restored)
        assert (len(first), again, after_restart) == (1, [], [])

    def test_a_child_with_no_known_school_gets_no_notice(self, rules, calendar):
        """A pre-school brother (known only to health) is not a pupil: no notice, no duty alert."""
        baby = replace(attendance(when=at(-5)), household_keys=HOME)
        state, out = run([baby, named_incident()], rules, calendar)
        assert out == []
        assert NOTICE in state.records and state.alerts == {}

    def test_a_school_learned_of_later_sends_no_late_notice(self, rules, calendar):
        """The notice is judged when it reaches the child; a later full evaluation keeps it so."""
        baby = replace(attendance(when=at(-5)), household_keys=HOME)
        later = [
            named_incident(),
            school_contact("school:abs-2", FRIDAY_NIGHT + timedelta(days=1)),
            # an involvement makes the engine judge every record again
            plan(when=FRIDAY_NIGHT + timedelta(days=1, hours=1), involvement_type="child_in_need"),
        ]
        _, out = run([baby, *later], rules, calendar)
        assert out == []

    def test_another_address_or_another_kind_of_contact_is_ignored(self, rules, calendar):
        """Only a police incident at an address the child shares counts."""
        state = pupil(rules, calendar)
        away = named_incident(household_keys=ELSEWHERE)
        no_address = named_incident(household_keys=())
        assert evaluate(state, away, rules, now=FRIDAY_NIGHT, calendar=calendar) == (state, [])
        assert evaluate(state, no_address, rules, now=FRIDAY_NIGHT, calendar=calendar) == (
            state,
            [],
        )
        _, out = run([replace(attendance(), child_id=SIBLING, household_keys=HOME)], rules,
                     calendar, state=state)  # fmt: skip
        assert out == []

    def test_a_stale_notice_is_remembered_not_raised(self, rules, calendar):
        """Replayed weeks later, the household notice is past the rule's staleness."""
        late = FRIDAY_NIGHT + timedelta(days=15)
        state, out = run(
            [named_incident()], rules, calendar, state=pupil(rules, calendar), now=late
        )
        assert out == [] and state.alerts[KEY].status is MarkStatus.suppressed


class TestWithdrawal:
    """What withdraws the named child's notice withdraws the sibling's."""

    def raised_state(self, rules, calendar) -> ChildAlertState:
        state, out = run([named_incident()], rules, calendar, state=pupil(rules, calendar))
        assert [o.child_id for o in out] == [CHILD]
        return state

    def test_a_retraction_without_an_address_withdraws_it(self, rules, calendar):
        """Police retract the notice; the retraction names the child but no address."""
        state = self.raised_state(rules, calendar)
        gone = replace(
            retraction("police:rtr-1", NOTICE, at(6)),
            child_id=SIBLING,
            agency_id="northshire-police",
        )
        state, out = run([gone], rules, calendar, state=state, now=at(6, 1))
        assert out == [
            AlertWithdrawn(
                alert_id=alert_id_for(KEY),
                occurrence_key=KEY,
                child_id=CHILD,
                rule_id="domestic_abuse_to_school",
                cause_event_id="police:rtr-1",
                withdrawn_at=at(6, 1),
            )
        ]
        assert NOTICE not in state.records
        _, again = run([named_incident()], rules, calendar, state=state)
        assert again == []  # the original redelivered after its retraction stays out

    def test_a_correction_to_another_address_withdraws_it(self, rules, calendar):
        """The incident was not at this household after all."""
        state = self.raised_state(rules, calendar)
        moved = corrected(named_incident(), "police:cor-1", household_keys=ELSEWHERE)
        state, out = run([moved], rules, calendar, state=state)
        assert [(type(o), o.occurrence_key) for o in out] == [(AlertWithdrawn, KEY)]
        assert NOTICE not in state.records

    def test_a_correction_that_still_holds_keeps_it(self, rules, calendar):
        """A corrected role at the same address, or with no address, changes nothing sent."""
        state = self.raised_state(rules, calendar)
        for n, keys in enumerate((HOME, ())):
            fixed = corrected(named_incident(role="victim"), f"police:cor-{n}", household_keys=keys)
            fixed = replace(fixed, recorded_at=fixed.recorded_at + timedelta(hours=n))
            state, out = run([fixed], rules, calendar, state=state)
            assert out == []
            assert state.records[NOTICE].role == "victim"

    def test_a_correction_that_is_no_longer_domestic_abuse_withdraws_it(self, rules, calendar):
        """Re-graded as another kind of incident: the school is no longer told."""
        state = self.raised_state(rules, calendar)
        other = corrected(named_incident(incident_type="other", sensitivity=()), "police:cor-1")
        _, out = run([other], rules, calendar, state=state)
        assert [(type(o), o.child_id) for o in out] == [(AlertWithdrawn, CHILD)]


class TestFoldForAnotherChild:
    """What another child's facts change in this child's state."""

    def test_a_household_contact_is_kept_under_its_event_id(self):
        """Kept as a via-household record; the child's own keys and schools are unchanged."""
        state = ChildAlertState(child_id=CHILD, household_keys=HOME)
        after = fold(state, named_incident())
        assert after.records == {
            NOTICE: Record(
                event_id=NOTICE,
                kind="contact.recorded",
                occurred_at=FRIDAY_NIGHT,
                recorded_at=FRIDAY_NIGHT + timedelta(minutes=5),
                agency_id="northshire-police",
                agency_kind="police",
                sensitivity=("domestic_abuse",),
                via_household=True,
                contact_type="police_incident",
                incident_type="domestic_abuse",
                role="child_present",
            )
        }
        assert (after.household_keys, after.schools) == (HOME, {})

    def test_a_correction_of_an_event_not_held_is_ignored(self):
        """Another child's correction, no shared address, nothing of it held: no change."""
        state = ChildAlertState(child_id=CHILD, household_keys=HOME)
        other = corrected(named_incident(household_keys=ELSEWHERE), "police:cor-1")
        assert fold(state, other) is state

    def test_another_child_s_concern_is_ignored_even_at_the_address(self):
        """Only contacts count for a household."""
        state = ChildAlertState(child_id=CHILD, household_keys=HOME)
        worry = replace(named_incident(), contact=None, kind="concern.raised", household_keys=HOME)
        assert fold(state, worry) is state

    def test_own_contact_never_looks_like_a_household_one(self):
        """The named child's own notice keeps its role as the reason."""
        own = replace(named_incident(), child_id=CHILD, contact=ContactFacts("police_incident",
                      "domestic_abuse", "child_present"))  # fmt: skip
        after = fold(ChildAlertState(child_id=CHILD), own)
        assert after.records[NOTICE].via_household is False
        assert after.household_keys == HOME
