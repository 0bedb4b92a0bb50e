"""Narrative entries: the line a practitioner reads for each event, its family and its status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from contracts import EventType, parse_envelope
from contracts.examples import example_data, example_envelope
from hub.domain.narrative import EntryStatus, NarrativeEntry, describe, entry_for

pytestmark = pytest.mark.unit

CONCERN_LINE = (
    "Concern raised: domestic abuse, high risk. "
    "Officers attended a domestic incident at the home; the child was present."
)
LEAD = "Lead practitioner: Sam Practitioner (social worker)."


def entry(**overrides: Any) -> NarrativeEntry:
    return entry_for(parse_envelope(example_envelope(**overrides)), "ch-0001")


class TestSummaryAndFamily:
    """Every event type of the contract has a plain-language line and a family."""

    @pytest.mark.parametrize(
        ("event_type", "summary", "family", "shown_type"),
        [
            ("concern.raised", CONCERN_LINE, "concern", "concern.raised"),
            (
                "involvement.started",
                f"Child protection plan started. {LEAD}",
                "involvement",
                "involvement.started",
            ),
            (
                "involvement.changed",
                f"Child protection plan changed. {LEAD}",
                "involvement",
                "involvement.changed",
            ),
            (
                "involvement.ended",
                f"Child protection plan ended. {LEAD}",
                "involvement",
                "involvement.ended",
            ),
            (
                "contact.recorded",
                "Unscheduled care attendance: Attended the emergency department with a head "
                "injury.",
                "contact",
                "contact.recorded",
            ),
            (
                "event.corrected",
                "Concern raised: domestic abuse, medium risk. Officers attended a domestic "
                "incident at the home; the child was present. (Corrected: Risk level entered "
                "wrongly.)",
                "concern",
                "concern.raised",
            ),
            (
                "event.retracted",
                "Earlier record retracted: Recorded against the wrong child.",
                "correction",
                "event.retracted",
            ),
        ],
    )
    def test_example_of_each_type(
        self, event_type: str, summary: str, family: str, shown_type: str
    ) -> None:
        """The contract's example of each type gives this line, family and shown type."""
        made = entry(type=event_type)
        assert (made.summary, made.family, made.event_type) == (summary, family, shown_type)

    def test_every_event_type_is_covered(self) -> None:
        """The table above covers every event type the contract defines."""
        assert {t.value for t in EventType} == {
            "concern.raised",
            "involvement.started",
            "involvement.changed",
            "involvement.ended",
            "contact.recorded",
            "event.corrected",
            "event.retracted",
        }

    def test_lead_without_role(self) -> None:
        """A lead practitioner without a role is named without brackets."""
        data = example_data("involvement.started")
        data["lead_practitioner"] = {"name": "Sam Practitioner"}
        made = entry(type="involvement.started", data=data)
        assert made.summary == "Child protection plan started. Lead practitioner: Sam Practitioner."

    def test_no_lead(self) -> None:
        """An involvement without a lead practitioner is one short sentence."""
        data = example_data("involvement.ended")
        data["involvement_type"] = "section_47_enquiry"
        data["lead_practitioner"] = None
        assert entry(type="involvement.ended", data=data).summary == "Section 47 enquiry ended."

    def test_correction_takes_family_of_corrected_type(self) -> None:
        """A correction of a contact is a contact line, its family contact."""
        data = {
            "reason": "Wrong department.",
            "corrected_type": "contact.recorded",
            "replacement": {"contact_type": "home_visit", "summary": "Visited at home."},
        }
        made = entry(type="event.corrected", data=data)
        assert (made.summary, made.family, made.event_type) == (
            "Home visit: Visited at home. (Corrected: Wrong department.)",
            "contact",
            "contact.recorded",
        )

    def test_describe_rejects_unknown_type(self) -> None:
        """A type without a description is an error naming it."""
        with pytest.raises(ValueError) as caught:
            describe("no.such.type", object())  # type: ignore[arg-type]
        assert str(caught.value) == "no description for event type no.such.type"


class TestEntry:
    """The whole entry an envelope makes: ids, UTC times, status and payload."""

    def test_whole_entry_of_a_concern(self) -> None:
        """A concern becomes an active entry with its payload as sorted JSON."""
        assert entry() == NarrativeEntry(
            event_id="northshire-police:evt-0001",
            child_id="ch-0001",
            event_type="concern.raised",
            family="concern",
            occurred_at=datetime(2024, 3, 4, 21, 40, tzinfo=UTC),
            recorded_at=datetime(2024, 3, 4, 22, 5, tzinfo=UTC),
            agency_id="northshire-police",
            agency_kind="police",
            summary=CONCERN_LINE,
            sensitivity=("domestic_abuse",),
            supersedes=None,
            status=EntryStatus.ACTIVE,
            payload=(
                '{"category": "domestic_abuse", "raised_by_role": "attending officer", '
                '"risk_level": "high", "summary": "Officers attended a domestic incident at the '
                'home; the child was present."}'
            ),
        )

    def test_retraction_is_a_notice(self) -> None:
        """A retraction entry is an audit notice naming the record it withdraws."""
        made = entry(type="event.retracted", id="northshire-police:evt-0002")
        assert (made.status, made.supersedes) == (
            EntryStatus.NOTICE,
            "northshire-police:evt-0000",
        )
        assert EntryStatus.NOTICE not in EntryStatus.SHOWN

    def test_correction_is_active_and_names_its_target(self) -> None:
        """A correction is shown in place of the record it supersedes."""
        made = entry(type="event.corrected", id="northshire-police:evt-0002")
        assert (made.status, made.supersedes) == (
            EntryStatus.ACTIVE,
            "northshire-police:evt-0000",
        )

    def test_times_converted_to_utc(self) -> None:
        """Offsets are converted: 23:30+02:00 is 21:30Z, 07:00-05:00 is 12:00Z."""
        made = entry(time="2024-03-04T23:30:00+02:00", recorded_at="2024-03-05T07:00:00-05:00")
        assert made.occurred_at == datetime(2024, 3, 4, 21, 30, tzinfo=UTC)
        assert made.occurred_at.tzinfo is UTC
        assert made.recorded_at == datetime(2024, 3, 5, 12, 0, tzinfo=UTC)
        assert made.recorded_at.tzinfo is UTC
