"""The school calendar: which days are school days, and when the next school day starts.

Terms, half-terms, bank holidays and INSET days come from a YAML file
(``deploy/alerts/term-dates.yaml``). Outside the calendar's terms a weekday that is not a bank
holiday counts as a school day: a calendar that has run out makes a deadline earlier, never
later, so a school still hears in time (the gap is visible through ``covers``).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Literal, Self
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from hub.alerts._yaml import DataFileError, load_model, read_text

__all__ = [
    "DataFileError",
    "HalfTerm",
    "SchoolCalendar",
    "Term",
    "load_calendar",
    "next_school_day_start",
    "parse_calendar",
]

_SEARCH_DAYS = 400


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HalfTerm(_Data):
    """A holiday inside a term, first and last day inclusive."""

    start: date
    end: date

    @model_validator(mode="after")
    def _in_order(self) -> Self:
        if self.end < self.start:
            raise ValueError("end is before start")
        return self


class Term(_Data):
    """A school term, first and last day inclusive, with its half-term holidays."""

    name: str = Field(min_length=1, max_length=100)
    start: date
    end: date
    half_terms: tuple[HalfTerm, ...] = ()

    @model_validator(mode="after")
    def _in_order(self) -> Self:
        if self.end < self.start:
            raise ValueError("end is before start")
        for half in self.half_terms:
            if half.start < self.start or half.end > self.end:
                raise ValueError("a half-term lies outside its term")
        return self


class SchoolCalendar(_Data):
    """An authority's term dates; ``is_school_day`` and ``covers`` answer questions about days."""

    timezone: Literal["Europe/London"] = "Europe/London"
    school_day_starts: time = time(9, 0)
    terms: tuple[Term, ...] = ()
    bank_holidays: tuple[date, ...] = ()
    inset_days: tuple[date, ...] = ()

    @model_validator(mode="after")
    def _terms_apart(self) -> Self:
        if not self.terms:
            raise ValueError("at least one term is needed")
        ordered = sorted(self.terms, key=lambda t: t.start)
        for before, after in pairwise(ordered):
            if after.start <= before.end:
                raise ValueError(f"terms {before.name!r} and {after.name!r} overlap")
        if self.school_day_starts.tzinfo is not None:
            raise ValueError("school_day_starts is a local time without an offset")
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's time zone."""
        return ZoneInfo(self.timezone)

    def covers(self, day: date) -> bool:
        """Whether ``day`` falls between the first term's start and the last term's end."""
        return min(t.start for t in self.terms) <= day <= max(t.end for t in self.terms)

    def is_school_day(self, day: date) -> bool:
        """A weekday in a term, outside half-term, not a bank holiday or INSET day."""
        if day.weekday() >= 5 or day in self.bank_holidays or day in self.inset_days:
            return False
        if not self.covers(day):
            return True
        for term in self.terms:
            if term.start <= day <= term.end:
                return not any(h.start <= day <= h.end for h in term.half_terms)
        return False


def next_school_day_start(instant: AwareDatetime | datetime, calendar: SchoolCalendar) -> datetime:
    """When the next school day after ``instant`` starts (09:00 local), as an aware datetime.

    An instant before the start of a school day gives that same day's start. The result is in
    the calendar's zone (Europe/London), so it is right on either side of a clock change.
    """
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    zone = calendar.zone
    local = instant.astimezone(zone)
    day = local.date()
    for _ in range(_SEARCH_DAYS):
        if calendar.is_school_day(day):
            start = datetime.combine(day, calendar.school_day_starts, tzinfo=zone)
            if start > instant:
                return start
        day += timedelta(days=1)
    raise ValueError(f"no school day within {_SEARCH_DAYS} days of the instant")


def load_calendar(path: Path) -> SchoolCalendar:
    """Read a term-dates file; ``DataFileError`` names the file, field path and line."""
    return parse_calendar(read_text(path), str(path))


def parse_calendar(text: str, where: str = "term dates") -> SchoolCalendar:
    """Validate term-dates text."""
    return load_model(SchoolCalendar, text, where)
