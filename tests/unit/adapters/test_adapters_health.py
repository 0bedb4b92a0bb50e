"""Health adapter: FHIR R4 Bundles to contact, concern and involvement envelopes."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from adapters import health
from adapters.common import RecordError, Severity, UnreadableFile
from contracts import Envelope
from tests.unit.adapters.conftest import AGENCIES, NOW, sample

pytestmark = pytest.mark.unit

AGENCY = AGENCIES["health"]
ED = "ed_attendances_bundle.json"
COMMUNITY = "community_episodes_bundle.json"


def _parse(body: bytes) -> Any:
    return health.parse(body, "application/fhir+json", AGENCY, now=NOW)


def _bundle(*resources: dict[str, Any]) -> bytes:
    base = json.loads(sample("health", ED))
    base["entry"] += [{"resource": r} for r in resources]
    return json.dumps(base).encode()


class TestEdBundle:
    """The A&E sample gives two attendances and a safeguarding concern."""

    def test_emergency_attendance_envelope(self) -> None:
        """An EMER encounter becomes a whole unscheduled-care contact."""
        result = _parse(sample("health", ED))
        assert result.errors == []
        expected = Envelope.model_validate(
            {
                "specversion": "1.0",
                "id": "northshire-health:encounter:ed-2024-000871",
                "source": "urn:agency:northshire-health",
                "type": "contact.recorded",
                "time": "2024-03-04T21:40:00+00:00",
                "subject": "Patient/pt-jayden",
                "agency_id": "northshire-health",
                "agency_kind": "health",
                "recorded_at": NOW,
                "sensitivity": ["health"],
                "lawful_basis": "safeguarding_sch1_para18",
                "person": {
                    "identifiers": [{"system": "nhs", "value": "9990001138"}],
                    "name": {"given": "Jayden", "family": "Smith", "aliases": ["Jay Smith"]},
                    "birth_date": "2016-05-14",
                    "sex": "male",
                    "address": {"lines": ["3 Mill Lane", "Northtown"], "postcode": "NS1 4MB"},
                    "related": [
                        {"relationship": "mother", "name": {"given": "Kelly", "family": "Smith"}}
                    ],
                },
                "data": {
                    "contact_type": "unscheduled_care_attendance",
                    "summary": "Emergency department attendance: Head injury",
                    "location": "Northshire General Hospital NHS Trust",
                    "ended_at": "2024-03-04T23:55:00+00:00",
                    "details": {
                        "encounter_class": "EMER",
                        "encounter_status": "finished",
                        "fhir_id": "Encounter/ed-2024-000871",
                        "discharge": "Discharged home with mother",
                    },
                },
            }
        )
        assert result.envelopes[0] == expected

    def test_mental_health_label_adds_tag(self) -> None:
        """A v3 MH security label on an AMB encounter tags it mental_health."""
        env = _parse(sample("health", ED)).envelopes[1]
        assert env.sensitivity == ("health", "mental_health")
        assert env.data.summary == "Urgent care attendance: Self-harm, superficial cuts to forearm"
        assert env.person.identifiers[0].value == "9990001146"

    def test_safeguarding_flag_is_a_concern(self) -> None:
        """A Flag coded in the hub's concern system becomes concern.raised."""
        env = _parse(sample("health", ED)).envelopes[2]
        assert env.id == "northshire-health:flag:sg-flag-5521"
        assert env.data.model_dump(mode="json") == {
            "category": "physical_abuse",
            "risk_level": "high",
            "summary": "Bruising to both upper arms not consistent with the account of a fall; "
            "referred to children's social care.",
            "raised_by_role": "Paediatric emergency consultant",
        }
        assert env.time == datetime(2024, 3, 4, 23, 30, tzinfo=UTC)

    def test_resending_gives_same_ids(self) -> None:
        """Parsing the same file twice gives identical event ids."""
        first = [e.id for e in _parse(sample("health", ED)).envelopes]
        assert first == [e.id for e in _parse(sample("health", ED)).envelopes]


class TestCommunityBundle:
    """Episodes of care become involvement events with their lead practitioner."""

    def test_involvements(self) -> None:
        """Health visiting starts; school nursing starts and ends."""
        result = _parse(sample("health", COMMUNITY))
        assert result.errors == []
        assert [
            (e.id, e.type.value, e.data.involvement_type.value, e.data.ended_on)
            for e in result.envelopes
        ] == [
            (
                "northshire-health:episodeofcare:eoc-hv-3301:started",
                "involvement.started",
                "health_visiting",
                None,
            ),
            (
                "northshire-health:episodeofcare:eoc-sn-1188:started",
                "involvement.started",
                "school_nursing",
                None,
            ),
            (
                "northshire-health:episodeofcare:eoc-sn-1188:ended",
                "involvement.ended",
                "school_nursing",
                date(2024, 2, 16),
            ),
        ]
        lead = result.envelopes[0].data.lead_practitioner
        assert lead.model_dump() == {
            "name": "Hannah Visitor",
            "role": "Health visiting (universal plus)",
            "team": "Northshire Community Health 0-19 Service",
            "phone": "01632 960123",
            "email": "hannah.visitor@northshire-health.example",
        }


class TestBadResources:
    """Each bad resource gives its error and the rest still parse."""

    def test_encounter_for_unknown_patient(self) -> None:
        """An encounter whose subject is not in the bundle is dropped."""
        result = _parse(
            _bundle(
                {
                    "resourceType": "Encounter",
                    "id": "ed-x",
                    "status": "finished",
                    "class": {"code": "EMER"},
                    "subject": {"reference": "Patient/nobody"},
                    "period": {"start": "2024-03-04T10:00:00Z"},
                }
            )
        )
        assert len(result.envelopes) == 3
        assert result.errors == [
            RecordError(
                "entry[7] Encounter/ed-x", "subject", "does not refer to a Patient in this Bundle"
            )
        ]

    def test_encounter_without_start(self) -> None:
        """An encounter without period.start is dropped."""
        result = _parse(
            _bundle(
                {
                    "resourceType": "Encounter",
                    "id": "ed-y",
                    "status": "finished",
                    "class": {"code": "EMER"},
                    "subject": {"reference": "Patient/pt-jayden"},
                }
            )
        )
        assert result.errors == [
            RecordError("entry[7] Encounter/ed-y", "period.start", "is missing")
        ]

    def test_invalid_fhir(self) -> None:
        """A resource that breaks FHIR R4 is reported with its field."""
        result = _parse(_bundle({"resourceType": "Encounter", "id": "ed-z", "status": "done"}))
        [error] = result.errors
        assert error.record == "entry[7] Encounter/ed-z"
        assert error.reason.startswith("not valid FHIR R4")

    def test_inpatient_encounter_skipped_with_warning(self) -> None:
        """Encounters other than EMER/AMB are not shared and are noted as warnings."""
        result = _parse(
            _bundle(
                {
                    "resourceType": "Encounter",
                    "id": "ip-1",
                    "status": "finished",
                    "class": {"code": "IMP"},
                    "subject": {"reference": "Patient/pt-jayden"},
                    "period": {"start": "2024-03-04T10:00:00Z"},
                }
            )
        )
        assert [e.severity for e in result.errors] == [Severity.warning]
        assert len(result.envelopes) == 3

    def test_bad_nhs_number_warned_not_echoed(self) -> None:
        """A failing NHS number is left out with a warning that does not repeat it."""
        result = _parse(
            _bundle(
                {
                    "resourceType": "Patient",
                    "id": "pt-bad",
                    "identifier": [
                        {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990001139"}
                    ],
                    "name": [{"family": "Zed", "given": ["Zara"]}],
                }
            )
        )
        [warning] = result.errors
        assert warning.severity is Severity.warning
        assert "9990001139" not in warning.reason and "Zara" not in warning.reason


class TestUnreadable:
    """Files that are not FHIR JSON Bundles are refused whole."""

    @pytest.mark.parametrize(
        ("body", "content_type", "message"),
        [
            (b"<xml/>", "application/fhir+json", "not valid JSON"),
            (b'{"resourceType": "Patient"}', "application/fhir+json", "must be a Bundle"),
            (b"{}", "text/csv", "reads FHIR R4 JSON"),
        ],
    )
    def test_refused(self, body: bytes, content_type: str, message: str) -> None:
        """The message names what is wrong with the file."""
        with pytest.raises(UnreadableFile, match=message):
            health.parse(body, content_type, AGENCY, now=NOW)
