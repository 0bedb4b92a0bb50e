"""Police adapter: public protection notices to contact and concern envelopes per child."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from adapters import police
from adapters.common import UnreadableFile
from tests.unit.adapters.conftest import AGENCIES, NOW, sample

pytestmark = pytest.mark.unit

AGENCY = AGENCIES["police"]
CSV = sample("police", "ppn_notices.csv")
JSON = sample("police", "ppn_notices.json")


class TestCsvNotices:
    """Each child in a CSV notice gets a contact, and a concern for domestic abuse."""

    def test_events_per_child(self) -> None:
        """Two children at a DA incident and one missing child give five events."""
        result = police.parse(CSV, "text/csv", AGENCY, now=NOW)
        assert result.errors == []
        assert [(e.id, e.type.value) for e in result.envelopes] == [
            ("northshire-police:NP-24-003187:NPP-300912:contact", "contact.recorded"),
            ("northshire-police:NP-24-003187:NPP-300912:concern", "concern.raised"),
            ("northshire-police:NP-24-003187:NPP-300913:contact", "contact.recorded"),
            ("northshire-police:NP-24-003187:NPP-300913:concern", "concern.raised"),
            ("northshire-police:NP-24-003205:NPP-300977:contact", "contact.recorded"),
        ]

    def test_domestic_abuse_contact(self) -> None:
        """The DA contact carries DASH-derived risk, adults as related people and tags."""
        env = police.parse(CSV, "text/csv", AGENCY, now=NOW).envelopes[0]
        assert env.time == datetime(2024, 3, 4, 21, 40, tzinfo=UTC)
        assert env.sensitivity == ("domestic_abuse", "third_party")
        assert env.lawful_basis == "law_enforcement_sch8"
        assert [(r.relationship.value, r.name.given) for r in env.person.related] == [
            ("household_member", "Kelly"),
            ("alleged_perpetrator", "Dean"),
        ]
        assert env.data.details == {
            "incident_ref": "NP-24-003187",
            "incident_type": "domestic_abuse",
            "role": "child_present",
            "police_risk_grade": "high",
            "dash_ticks": 15,
        }

    def test_missing_child_is_missing_episode(self) -> None:
        """A missing-child notice is a missing_episode with no concern."""
        env = police.parse(CSV, "text/csv", AGENCY, now=NOW).envelopes[-1]
        assert env.data.contact_type == "missing_episode"
        assert env.sensitivity == ()

    def test_bad_person_row_dropped_alone(self) -> None:
        """A row with an unknown role is listed and the incident's other children still go."""
        body = CSV.replace(b"Child present,Jaden", b"Bystander,Jaden")
        result = police.parse(body, "text/csv", AGENCY, now=NOW)
        assert [(e.record, e.field) for e in result.errors] == [("row 4", "role")]
        assert len(result.envelopes) == 3

    def test_bad_incident_dropped_alone(self) -> None:
        """An incident with an unknown type is listed; the other incident still goes."""
        body = CSV.replace(b"Missing child,", b"Parking,")
        result = police.parse(body, "text/csv", AGENCY, now=NOW)
        assert [(e.record, e.field) for e in result.errors] == [
            ("incident NP-24-003205 (row 6)", "incident_type")
        ]
        assert len(result.envelopes) == 4

    def test_errors_never_name_people(self) -> None:
        """A bad date of birth is reported without names or the date."""
        body = CSV.replace(b"14/05/2016", b"31/02/2016")
        result = police.parse(body, "text/csv", AGENCY, now=NOW)
        [error] = result.errors
        assert error.record == "row 4" and error.field == "date_of_birth"
        assert not any(w in f"{error}" for w in ("Jaden", "Smyth", "2016"))

    def test_missing_header_unreadable(self) -> None:
        """A CSV without the header row is refused."""
        with pytest.raises(UnreadableFile, match="missing: incident_ref"):
            police.parse(b"NP-1,domestic\n", "text/csv", AGENCY, now=NOW)


class TestJsonNotices:
    """JSON notices map like CSV ones."""

    def test_exploitation_and_standard_da(self) -> None:
        """An exploited child and a child at a standard-risk DA incident."""
        result = police.parse(JSON, "application/json", AGENCY, now=NOW)
        assert result.errors == []
        concerns = [e for e in result.envelopes if e.type == "concern.raised"]
        assert [(c.data.category.value, c.data.risk_level.value) for c in concerns] == [
            ("exploitation", "high"),
            ("domestic_abuse", "low"),
        ]
        assert concerns[0].sensitivity == ("criminal_intelligence", "third_party")
        assert concerns[0].data.raised_by_role == "Public protection unit detective"

    def test_resending_gives_same_ids(self) -> None:
        """Parsing the same file twice gives identical event ids."""
        ids = [e.id for e in police.parse(JSON, "application/json", AGENCY, now=NOW).envelopes]
        again = police.parse(JSON, "application/json", AGENCY, now=NOW).envelopes
        assert ids == [e.id for e in again]

    def test_notice_without_risk(self) -> None:
        """A notice with neither risk level nor DASH ticks is rejected."""
        raw = json.loads(JSON)
        del raw["notices"][0]["risk_level"]
        result = police.parse(json.dumps(raw).encode(), "application/json", AGENCY, now=NOW)
        assert [(e.record, e.field) for e in result.errors] == [
            ("notices[0] incident NP-24-003240", "risk_level")
        ]

    def test_not_a_notice_list(self) -> None:
        """A JSON file without a notices list is refused."""
        with pytest.raises(UnreadableFile, match="list under 'notices'"):
            police.parse(b'{"x": 1}', "application/json", AGENCY, now=NOW)
