"""Merges and un-merges in the alert engine: two records of one child judged as one story.

Each agency's record of a child may first be linked to a child of its own; a reviewed merge
then says they are the same child. What only the joined story shows (concerns from several
agencies that together reach the threshold, a plan on one record and an emergency attendance
on the other) alerts the surviving child's recipients then, and an un-merge withdraws what
rested on the records it gives back.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from hub.alerts.calendar import SchoolCalendar
from hub.alerts.engine import EngineOutcome, evaluate_merge, evaluate_unmerge
from hub.alerts.facts import HubEventFacts
from hub.alerts.model import AlertRaised, AlertWithdrawn
from hub.alerts.rules import AlertRules
from hub.alerts.state import ChildAlertState, MarkStatus

from .conftest import CHILD, T0, at, attendance, concern, incident, plan, run, school_contact

pytestmark = pytest.mark.unit

OTHER = "ch-0002"


def of(child_id: str, *facts: HubEventFacts) -> list[HubEventFacts]:
    """The facts as they were linked to ``child_id``."""
    return [replace(f, child_id=child_id) for f in facts]


def raised(outcomes: list[EngineOutcome]) -> list[AlertRaised]:
    return [o for o in outcomes if isinstance(o, AlertRaised)]


def states(
    rules: AlertRules,
    calendar: SchoolCalendar,
    mine: list,
    theirs: list,  # type: ignore[type-arg]
) -> tuple[ChildAlertState, ChildAlertState]:
    """The survivor's (``CHILD``) and the merged child's (``OTHER``) states after their events."""
    survivor, _ = run(mine, rules, calendar)
    merged, _ = run(theirs, rules, calendar, state=ChildAlertState(child_id=OTHER))
    return survivor, merged


def apart(rules: AlertRules, calendar: SchoolCalendar) -> tuple[ChildAlertState, ChildAlertState]:
    """Two police concerns linked to the survivor, a health concern to the other child."""
    police, health = "northshire-police", "northshire-health"
    return states(
        rules,
        calendar,
        of(CHILD, concern("c-1", at(0), police), concern("c-2", at(2), police)),
        of(OTHER, concern("c-3", at(4), health)),
    )


class TestMerge:
    def test_concerns_that_only_together_reach_the_threshold_alert(self, rules, calendar):
        """Two concerns on one record, one on the other: no alert apart; merged, the front
        door hears of three concerns from two agencies, for the surviving child."""
        survivor, merged = apart(rules, calendar)
        assert survivor.alerts == merged.alerts == {}
        joined, out = evaluate_merge(survivor, merged, rules, now=at(5), calendar=calendar)
        [alert] = raised(out)
        assert (alert.child_id, alert.rule_id, alert.trigger_event_ids) == (
            CHILD,
            "accumulating_concerns",
            ("c-1", "c-2", "c-3"),
        )
        assert set(joined.records) == {"c-1", "c-2", "c-3"}
        assert joined.absorbed[OTHER].records == ("c-3",)

    def test_a_plan_on_one_record_and_an_attendance_on_the_other_alert(self, rules, calendar):
        """The plan was linked to one child, the emergency attendance to another: merged,
        the social worker hears of the attendance."""
        survivor, merged = states(rules, calendar, of(CHILD, plan()), of(OTHER, attendance()))
        _, out = evaluate_merge(
            survivor, merged, rules, now=T0 + timedelta(minutes=10), calendar=calendar
        )
        assert [a.rule_id for a in raised(out)] == ["unscheduled_care_with_plan"]

    def test_what_either_child_was_alerted_of_is_not_alerted_again(self, rules, calendar):
        """An alert already raised for the merged child keeps its id under the survivor and
        is not raised again; merging twice changes nothing."""
        survivor, merged = states(rules, calendar, of(CHILD, school_contact()),
                                  of(OTHER, plan(), attendance()))  # fmt: skip
        [before] = [m for m in merged.alerts.values() if m.status is MarkStatus.raised]
        joined, out = evaluate_merge(
            survivor, merged, rules, now=T0 + timedelta(minutes=10), calendar=calendar
        )
        assert raised(out) == []
        [kept] = joined.alerts.values()
        assert (kept.alert_id, kept.occurrence_key.split("|")[1]) == (before.alert_id, CHILD)
        again, more = evaluate_merge(joined, merged, rules, now=at(1), calendar=calendar)
        assert (again, more) == (joined, [])

    def test_what_is_too_old_by_the_merge_is_marked_not_raised(self, rules, calendar):
        """Concerns that together crossed the threshold months ago do not alert now."""
        survivor, merged = apart(rules, calendar)
        joined, out = evaluate_merge(survivor, merged, rules, now=at(120), calendar=calendar)
        assert out == []
        assert [m.status for m in joined.alerts.values()] == [MarkStatus.suppressed]


class TestUnmerge:
    def test_an_alert_resting_on_the_other_childs_records_is_withdrawn(self, rules, calendar):
        """Undone, the merge gives back the records it brought; the alert that needed them
        is withdrawn, naming the un-merge; the survivor's own records stay."""
        survivor, merged = apart(rules, calendar)
        joined, out = evaluate_merge(survivor, merged, rules, now=at(5), calendar=calendar)
        [alert] = raised(out)
        parted, gone = evaluate_unmerge(
            joined, OTHER, rules, now=at(6), calendar=calendar, cause="identity.unmerged:m-1"
        )
        assert gone == [
            AlertWithdrawn(
                alert_id=alert.alert_id,
                occurrence_key=alert.occurrence_key,
                child_id=CHILD,
                rule_id="accumulating_concerns",
                cause_event_id="identity.unmerged:m-1",
                withdrawn_at=at(6),
            )
        ]
        assert set(parted.records) == {"c-1", "c-2"}
        assert parted.absorbed == {}

    def test_the_other_childs_school_and_address_go_back_with_it(self, rules, calendar):
        """The merged child's school and household keys served the survivor while merged;
        undone, a domestic-abuse incident at the other child's address no longer reaches the
        survivor's state, and the survivor's school is its own again."""
        home = incident("p-1", T0, household_keys=("hh:other",))
        survivor, merged = states(rules, calendar, of(CHILD, plan()),
                                  of(OTHER, school_contact(), home))  # fmt: skip
        joined, _ = evaluate_merge(survivor, merged, rules, now=at(1), calendar=calendar)
        assert (joined.school, "hh:other" in joined.household_keys) == ("northshire-primary", True)
        parted, _ = evaluate_unmerge(
            joined, OTHER, rules, now=at(2), calendar=calendar, cause="identity.unmerged:m-1"
        )
        assert (parted.school, parted.household_keys) == (survivor.school, survivor.household_keys)
        assert parted.records == survivor.records

    def test_undoing_a_merge_never_applied_changes_nothing(self, rules, calendar):
        survivor, _ = states(rules, calendar, of(CHILD, plan()), [])
        assert evaluate_unmerge(
            survivor, OTHER, rules, now=at(1), calendar=calendar, cause="identity.unmerged:m-9"
        ) == (survivor, [])


class TestNestedAndLearned:
    def test_undoing_an_earlier_merge_gives_back_only_that_childs_part(self, rules, calendar):
        """A third child was merged into the other before the other was merged into the
        survivor: undoing that first merge takes back only the third child's records; undoing
        the second takes back the other's and, through it, the third's."""
        police, health, school = "northshire-police", "northshire-health", "northshire-primary"
        third = "ch-0003"
        survivor, merged = states(
            rules, calendar, of(CHILD, concern("c-1", at(0), police)),
            of(OTHER, concern("c-2", at(1), health)),
        )  # fmt: skip
        youngest, _ = run(of(third, concern("c-3", at(2), school)), rules, calendar,
                          state=ChildAlertState(child_id=third))  # fmt: skip
        middle, _ = evaluate_merge(merged, youngest, rules, now=at(3), calendar=calendar)
        top, _ = evaluate_merge(survivor, middle, rules, now=at(3), calendar=calendar)
        assert set(top.records) == {"c-1", "c-2", "c-3"}
        assert (top.absorbed[third].via, top.absorbed[OTHER].via) == (OTHER, None)

        without_third, _ = evaluate_unmerge(
            top, third, rules, now=at(4), calendar=calendar, cause="identity.unmerged:m-1"
        )
        assert set(without_third.records) == {"c-1", "c-2"}
        assert set(without_third.absorbed) == {OTHER}
        # The third child's school came with it, and goes with it: no notice goes there now.
        assert (top.school, without_third.school) == (school, None)
        alone, _ = evaluate_unmerge(
            top, OTHER, rules, now=at(4), calendar=calendar, cause="identity.unmerged:m-2"
        )
        assert (set(alone.records), alone.absorbed) == ({"c-1"}, {})

    def test_what_the_survivor_says_itself_after_the_merge_stays(self, rules, calendar):
        """The other child brought a school and an address; then the survivor's own school
        and household report them too. Undone, the survivor keeps both as its own."""
        home = incident("p-1", T0, household_keys=("hh:mill",))
        survivor, merged = states(rules, calendar, of(CHILD, plan()),
                                  of(OTHER, school_contact(), home))  # fmt: skip
        joined, _ = evaluate_merge(survivor, merged, rules, now=at(1), calendar=calendar)
        own_school = school_contact("school:abs-9", at(2))
        own_home = incident("p-9", at(3), household_keys=("hh:mill",))
        learned, _ = run(of(CHILD, own_school, own_home), rules, calendar, state=joined)
        parted, _ = evaluate_unmerge(
            learned, OTHER, rules, now=at(4), calendar=calendar, cause="identity.unmerged:m-1"
        )
        assert (parted.school, parted.schools["northshire-primary"]) == (
            "northshire-primary",
            at(2),
        )
        assert parted.household_keys == ("hh:mill",)

    def test_a_nested_childs_own_alert_goes_back_with_it_not_withdrawn(self, rules, calendar):
        """The third child was alerted of its own attendance before any merge; taken back out
        of the top survivor, its alert goes with it (still its own), nothing is withdrawn."""
        third = "ch-0003"
        health = concern("c-2", at(1), "northshire-health")
        survivor, merged = states(rules, calendar, of(CHILD, school_contact()), of(OTHER, health))
        youngest, out = run(of(third, plan(), attendance()), rules, calendar,
                            state=ChildAlertState(child_id=third))  # fmt: skip
        [own] = raised(out)
        middle, _ = evaluate_merge(merged, youngest, rules, now=at(1), calendar=calendar)
        top, _ = evaluate_merge(survivor, middle, rules, now=at(1), calendar=calendar)
        assert [m.alert_id for m in top.alerts.values()] == [own.alert_id]
        parted, outcomes = evaluate_unmerge(
            top, third, rules, now=at(2), calendar=calendar, cause="identity.unmerged:m-1"
        )
        assert (outcomes, parted.alerts) == ([], {})
