"""Schools adapter: CTF XML and safeguarding-concern CSV to envelopes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters import schools
from adapters.common import UnreadableFile
from tests.unit.adapters.conftest import AGENCIES, NOW, sample

pytestmark = pytest.mark.unit

AGENCY = AGENCIES["schools"]
FLAT = sample("schools", "ctf_flat_bs7666.xml")
NESTED = sample("schools", "ctf_basic_details_lines.xml")
CONCERNS = sample("schools", "safeguarding_concerns.csv")


class TestCtf:
    """Absences and exclusions become contacts carrying the pupil's demographics."""

    def test_flat_layout(self) -> None:
        """Flat names and a BS7666 address; a pupil with no absences sends nothing."""
        result = schools.parse(FLAT, "application/xml", AGENCY, now=NOW)
        assert result.errors == []
        absence, exclusion = result.envelopes
        assert absence.data.contact_type == "school_absence"
        assert absence.data.details == {
            "year": 2023,
            "sessions_possible": 224,
            "sessions_authorised_absence": 12,
            "sessions_unauthorised_absence": 21,
        }
        assert absence.person.model_dump(mode="json") == {
            "identifiers": [{"system": "upn", "value": "P938000001001"}],
            "name": {"given": "Jayden", "family": "Smith", "aliases": []},
            "birth_date": "2016-05-14",
            "sex": "male",
            "address": {"lines": ["3 Mill Lane", "Northtown"], "postcode": "NS1 4MB"},
            "related": [
                {
                    "relationship": "mother",
                    "name": {"given": "Kelly", "family": "Smith", "aliases": []},
                    "identifiers": [],
                    "birth_date": None,
                }
            ],
        }
        assert exclusion.data.summary == "School suspension (reason code PP)."
        assert exclusion.data.location == "Northtown Primary School"
        assert "P938000001001" not in absence.id + exclusion.id

    def test_basic_details_layout(self) -> None:
        """Names inside BasicDetails, address lines and a preferred name alias."""
        [env] = schools.parse(NESTED, "text/xml", AGENCY, now=NOW).envelopes
        assert env.person.name.model_dump() == {
            "given": "Amelia",
            "family": "Smith",
            "aliases": ("Millie Smith",),
        }
        assert env.person.sex == "female" and env.data.details["sessions"] == 4

    def test_bad_upn_rejects_pupil(self) -> None:
        """A pupil with a bad UPN check letter is dropped; the other pupil is unaffected."""
        body = FLAT.replace(b"P938000001001", b"A938000001001")
        result = schools.parse(body, "application/xml", AGENCY, now=NOW)
        [error] = result.errors
        assert (error.record, error.field) == ("Pupil[0]", "UPN")
        assert "Jayden" not in error.reason and result.envelopes == []

    def test_resending_gives_same_ids(self) -> None:
        """Parsing the same file twice gives identical event ids."""
        ids = [e.id for e in schools.parse(FLAT, "application/xml", AGENCY, now=NOW).envelopes]
        again = schools.parse(FLAT, "application/xml", AGENCY, now=NOW).envelopes
        assert ids == [e.id for e in again]

    def test_wrong_root(self) -> None:
        """An XML file that is not a CTF is refused."""
        with pytest.raises(UnreadableFile, match="root element <CTfile>"):
            schools.parse(b"<Message/>", "application/xml", AGENCY, now=NOW)


class TestConcernsCsv:
    """Each concern row becomes concern.raised."""

    def test_rows(self) -> None:
        """Categories, risks, times and tags are mapped."""
        result = schools.parse(CONCERNS, "text/csv", AGENCY, now=NOW)
        assert result.errors == []
        assert [
            (e.id, e.data.category.value, e.data.risk_level.value, e.sensitivity)
            for e in result.envelopes
        ] == [
            (
                "northshire-primary:concern:SC-2024-0117",
                "domestic_abuse",
                "high",
                ("domestic_abuse",),
            ),
            ("northshire-primary:concern:SC-2024-0118", "self_harm", "medium", ("mental_health",)),
            ("northshire-primary:concern:SC-2024-0121", "neglect", "medium", ()),
        ]
        first = result.envelopes[0]
        assert first.time == datetime(2024, 3, 5, 8, 50, tzinfo=UTC)
        assert first.data.raised_by_role == "Designated safeguarding lead"
        assert result.envelopes[2].person.name.given == "Ruby"

    def test_bad_rows(self) -> None:
        """Unknown category, bad date and unmatchable pupil each give their error."""
        body = (
            CONCERNS.replace(b"Operation Encompass,", b"Weather,")
            .replace(b"2024-03-05,D938", b"yesterday,D938")
            .replace(b"Ruby Example,2015-06-01", b"Ruby Example,")
        )
        result = schools.parse(body, "text/csv", AGENCY, now=NOW)
        assert [(e.record, e.field) for e in result.errors] == [
            ("row 2 concern SC-2024-0117", "category"),
            ("row 3 concern SC-2024-0118", "date"),
            ("row 4 concern SC-2024-0121", "person"),
        ]
        assert not any(n in str(result.errors) for n in ("Ruby", "Millie", "Jayden"))

    def test_missing_header(self) -> None:
        """A CSV without the required header is refused naming the columns."""
        with pytest.raises(UnreadableFile, match="missing: category, date, summary"):
            schools.parse(b"2024-01-01,neglect\n", "text/csv", AGENCY, now=NOW)
