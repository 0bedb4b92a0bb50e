"""The demo scenario's native files: each parses cleanly with its agency's adapter, the events
they make are exactly the ones the scenario tells, and moving the dates keeps ids and ages."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from adapters.common import AgencyRef
from contracts import Envelope
from contracts.examples import valid_nhs_number, valid_upn
from hub.demo.loader import anchor_shift
from hub.demo.scenario import (
    CHILDREN,
    EXPECTED_ALERTS,
    FILES,
    REFERENCE_DAY,
    DemoFile,
    file_bytes,
    render,
    shift_for,
)
from hub.intake import ADAPTERS, content_type_for
from hub.settings import Settings

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def parse(demo: DemoFile, shift: int = 0) -> tuple[list[Envelope], list[object]]:
    body = render(file_bytes(demo.name), shift)
    result = ADAPTERS[demo.kind](
        body, content_type_for(Path(demo.name)), AgencyRef(demo.agency_id, demo.kind), now=NOW
    )
    return result.envelopes, result.errors


def every_envelope(shift: int = 0) -> list[Envelope]:
    return [e for demo in FILES for e in parse(demo, shift)[0]]


class TestFiles:
    """Every demo file is a clean native file of its agency."""

    @pytest.mark.parametrize("demo", FILES, ids=lambda d: d.name)
    def test_parses_without_record_errors(self, demo: DemoFile) -> None:
        """The adapter keeps every record and notes no problem."""
        envelopes, errors = parse(demo)
        assert errors == []
        assert envelopes

    def test_identifiers_are_test_range_only(self) -> None:
        """NHS numbers are from the 999 range and UPNs are the contract's valid examples."""
        nhs = {i.value for e in every_envelope() for i in e.person.identifiers if i.system == "nhs"}
        upns = {
            i.value for e in every_envelope() for i in e.person.identifiers if i.system == "upn"
        }
        assert nhs == {valid_nhs_number(8101), valid_nhs_number(8106)}
        assert upns == {valid_upn(s) for s in range(8101, 8107)}


class TestStory:
    """The events the adapters make are exactly the ones each child's story lists."""

    def test_every_event_belongs_to_one_child(self) -> None:
        """The children's event lists partition what the files produce."""
        produced = [e.id for e in every_envelope()]
        told = [i for child in CHILDREN for i in child.event_ids]
        assert sorted(produced) == sorted(told)
        assert len(set(told)) == len(told)

    def test_each_childs_events_are_about_that_child(self) -> None:
        """All events of one child carry the same birth date (names differ by design)."""
        by_id = {e.id: e for e in every_envelope()}
        for child in CHILDREN:
            born = {by_id[i].person.birth_date for i in child.event_ids}
            assert len(born) == 1, child.key

    def test_data_quality_is_as_told(self) -> None:
        """Police misspell Ruby's surname; health knows Thomas as Tommy, with no NHS number."""
        by_id = {e.id: e for e in every_envelope()}
        police = by_id["northshire-police:NP-26-011842:NPP-410977:contact"].person
        assert (police.name.given, police.name.family) == ("Ruby", "Brenan")
        assert [i.system for i in police.identifiers] == ["police"]
        tommy = by_id["northshire-health:flag:sg-flag-7730"].person
        assert (tommy.name.given, tommy.identifiers) == ("Tommy", ())

    def test_expected_alerts_name_told_events(self) -> None:
        """Every expected alert rests on an event of its own child or its household."""
        events = {c.key: set(c.event_ids) for c in CHILDREN}
        ruby = events["ruby"]
        for alert in EXPECTED_ALERTS:
            assert alert.trigger_event_id in events[alert.child_key] | ruby, alert


class TestDates:
    """Dates move by whole weeks; ids and ages do not change with them."""

    @pytest.mark.parametrize(
        ("today", "shift"),
        [
            (REFERENCE_DAY, 0),
            (date(2026, 12, 3), 0),
            (date(2026, 12, 4), 7),
            (date(2027, 3, 1), 91),
            (date(2026, 11, 26), -7),
        ],
    )
    def test_shift_is_whole_weeks_not_after_today(self, today: date, shift: int) -> None:
        """The reference day lands on the latest same weekday not after today."""
        assert shift_for(today) == shift

    def test_render_moves_every_date(self) -> None:
        """Dates and date-times move; other numbers stay."""
        body = b"2026-11-25T22:10:00+00:00,2019-03-11,NP-26-011842,9990090017,2026-13-45"
        assert render(body, 7) == (
            b"2026-12-02T22:10:00+00:00,2019-03-18,NP-26-011842,9990090017,2026-13-45"
        )

    def test_shifted_files_still_parse_with_the_same_police_and_health_ids(self) -> None:
        """A later week gives clean files; record-id based events keep their ids."""
        for demo in FILES:
            assert parse(demo, 14)[1] == []
        moving = (":cin:", ":h-", ":ssda903:")  # ids built from dates (CIN, CTF, SSDA903)
        same = {i for c in CHILDREN for i in c.event_ids if not any(m in i for m in moving)}
        assert same <= {e.id for e in every_envelope(14)}

    def test_anchor_is_kept_once_chosen(self, tmp_path: Path) -> None:
        """The first load fixes the shift for the hub; later loads reuse it."""
        settings = Settings(data_dir=tmp_path)
        assert anchor_shift(settings, date(2026, 12, 4)) == 7
        assert anchor_shift(settings, date(2027, 3, 1)) == 7
