"""Shared adapter pieces: stable ids, safe readers, record errors."""

from __future__ import annotations

import pytest

from adapters.common import (
    AgencyRef,
    RecordError,
    RecordProblem,
    ResultBuilder,
    Severity,
    UnreadableFile,
    parse_date,
    read_csv,
    read_xml,
    stable_id,
)
from contracts import AgencyKind

pytestmark = pytest.mark.unit

AGENCY = AgencyRef("northshire-police", AgencyKind.police)


class TestStableId:
    """Event ids derive from the source record ids only."""

    def test_plain_parts_are_kept_readable(self) -> None:
        """Short, safe parts are joined after the agency id."""
        assert stable_id(AGENCY, "NP-24-1", "contact") == "northshire-police:NP-24-1:contact"

    def test_long_or_unsafe_parts_are_hashed(self) -> None:
        """Parts too long or with spaces become a hash, the same on every call."""
        first = stable_id(AGENCY, "a b" * 100)
        assert first.startswith("northshire-police:h-") and len(first) <= 128
        assert first == stable_id(AGENCY, "a b" * 100)

    def test_opaque_parts_never_appear(self) -> None:
        """An identifier passed as opaque does not appear in the id."""
        assert "P938000001001" not in stable_id(AGENCY, "P938000001001", opaque=True)


class TestReaders:
    """Unreadable files raise UnreadableFile with a message naming the problem."""

    def test_external_entities_are_refused(self) -> None:
        """A DTD with an external entity is refused, not resolved."""
        body = (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            b"<CTfile>&e;</CTfile>"
        )
        with pytest.raises(UnreadableFile, match="DTD or entities"):
            read_xml(body, "CTF file", "CTfile")

    def test_wrong_root_is_named(self) -> None:
        """The expected and found root elements are both named."""
        with pytest.raises(UnreadableFile, match="must have root element <CTfile>, not <Other>"):
            read_xml(b"<Other/>", "CTF file", "CTfile")

    def test_missing_header_columns_are_listed(self) -> None:
        """A CSV without the required header names the missing columns."""
        with pytest.raises(UnreadableFile, match="missing: category, date"):
            list(read_csv(b"x,y\n1,2\n", "concerns CSV", {"date", "category"}))

    def test_binary_is_not_csv(self) -> None:
        """Bytes that are not UTF-8 are unreadable."""
        with pytest.raises(UnreadableFile, match="not UTF-8"):
            list(read_csv(b"\xff\xfe\x00\x01", "concerns CSV", {"date"}))


class TestResultBuilder:
    """A record's problem drops only that record."""

    def test_problem_becomes_error(self) -> None:
        """A RecordProblem inside a record is listed with its locator."""
        out = ResultBuilder()
        with out.record("row 3"):
            raise RecordProblem("date", "is missing")
        assert out.result.errors == [RecordError("row 3", "date", "is missing", Severity.error)]

    def test_date_error_does_not_echo_value(self) -> None:
        """A bad date's message never repeats the value."""
        with pytest.raises(RecordProblem) as caught:
            parse_date("31/02/2015", "dob")
        assert "2015" not in caught.value.reason
