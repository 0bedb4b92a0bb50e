"""The school calendar: the next school day's 09:00, in England's local time."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from hub.alerts.calendar import DataFileError, next_school_day_start, parse_calendar

pytestmark = pytest.mark.unit


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


class TestNextSchoolDayStart:
    """Weekends, bank holidays, half-terms, INSET days and clock changes are respected."""

    @pytest.mark.parametrize(
        ("incident", "expected"),
        [
            pytest.param(utc(2026, 3, 6, 22, 30), utc(2026, 3, 9, 9, 0), id="friday-night-monday"),
            pytest.param(utc(2026, 5, 1, 20, 0), utc(2026, 5, 5, 8, 0), id="bank-holiday-monday"),
            pytest.param(utc(2026, 2, 17, 12, 0), utc(2026, 2, 23, 9, 0), id="in-half-term"),
            pytest.param(utc(2026, 2, 13, 19, 0), utc(2026, 2, 23, 9, 0), id="before-half-term"),
            pytest.param(utc(2026, 3, 4, 7, 30), utc(2026, 3, 4, 9, 0), id="0730-same-day"),
            pytest.param(utc(2026, 6, 3, 6, 30), utc(2026, 6, 3, 8, 0), id="0730-bst-same-day"),
            pytest.param(utc(2026, 3, 4, 9, 0), utc(2026, 3, 5, 9, 0), id="at-0900-next-day"),
            pytest.param(utc(2026, 3, 4, 10, 15), utc(2026, 3, 5, 9, 0), id="school-hours"),
            pytest.param(utc(2025, 3, 28, 23, 0), utc(2025, 3, 31, 8, 0), id="into-bst"),
            pytest.param(utc(2024, 10, 25, 20, 0), utc(2024, 11, 4, 9, 0), id="out-of-bst"),
            pytest.param(utc(2025, 12, 19, 18, 0), utc(2026, 1, 6, 9, 0), id="christmas-inset"),
            pytest.param(utc(2027, 7, 23, 18, 0), utc(2027, 7, 26, 8, 0), id="past-the-calendar"),
        ],
    )
    def test_cases(self, calendar, incident, expected):
        """The deadline as an instant (and in London's time zone)."""
        result = next_school_day_start(incident, calendar)
        assert result == expected
        assert (result.tzinfo, result.astimezone(calendar.zone).hour) == (calendar.zone, 9)

    def test_a_naive_instant_is_refused(self, calendar):
        """Times without a zone are ambiguous around clock changes."""
        with pytest.raises(ValueError, match="timezone-aware"):
            next_school_day_start(datetime(2026, 3, 4, 7, 30), calendar)

    def test_covers_says_when_the_calendar_runs_out(self, calendar):
        """Past the last term, weekdays count; ``covers`` lets an operator notice."""
        assert (calendar.covers(date(2027, 7, 21)), calendar.covers(date(2027, 7, 22))) == (
            True,
            False,
        )


class TestCalendarFile:
    """A broken term-dates file is refused with its place named."""

    def test_a_half_term_outside_its_term(self):
        """The term is named by its position and line."""
        text = (
            "terms:\n"
            "  - name: Autumn\n"
            "    start: 2026-09-01\n"
            "    end: 2026-12-18\n"
            "    half_terms: [{start: 2026-12-21, end: 2026-12-24}]\n"
        )
        with pytest.raises(DataFileError) as caught:
            parse_calendar(text, "term-dates.yaml")
        assert str(caught.value) == (
            "term-dates.yaml: terms[0] (line 2): Value error, a half-term lies outside its term"
        )

    def test_overlapping_terms(self):
        """Two terms sharing days are refused."""
        text = (
            "terms:\n"
            "  - {name: A, start: 2026-09-01, end: 2026-12-18}\n"
            "  - {name: B, start: 2026-12-01, end: 2027-03-01}\n"
        )
        with pytest.raises(DataFileError, match="terms 'A' and 'B' overlap"):
            parse_calendar(text, "t.yaml")

    def test_a_bad_date(self):
        """The field path and line of a value that is not a date."""
        text = (
            "terms:\n  - {name: A, start: 2026-09-01, end: 2026-12-18}\nbank_holidays:\n  - soon\n"
        )
        with pytest.raises(DataFileError, match=r"^t.yaml: bank_holidays\[0\] \(line 4\): "):
            parse_calendar(text, "t.yaml")

    def test_not_yaml(self):
        """A YAML syntax error gives line and column."""
        with pytest.raises(DataFileError) as caught:
            parse_calendar("terms: [\n", "t.yaml")
        assert str(caught.value) == (
            "t.yaml: line 2, column 1 is not valid YAML: "
            "expected the node content, but found '<stream end>'"
        )
