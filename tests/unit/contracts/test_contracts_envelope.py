"""Envelope contract: strictness, round trips, corrections, supersedes, and safe errors."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from pydantic import ValidationError

from contracts import (
    EVENT_FAMILIES,
    AgencyKind,
    ConcernRaised,
    ContactRecorded,
    ContractValidationError,
    Envelope,
    EventCorrected,
    EventType,
    FieldError,
    InvolvementEnded,
    family_of,
    parse_envelope,
)
from contracts.examples import example_data, example_envelope

pytestmark = pytest.mark.unit


def errors_of(raw: object) -> list[FieldError]:
    with pytest.raises(ContractValidationError) as caught:
        parse_envelope(raw)  # type: ignore[arg-type]
    return caught.value.errors


def locs(raw: object) -> set[str]:
    return {e.loc for e in errors_of(raw)}


class TestExample:
    """The shared example is valid and independent between calls."""

    def test_example_parses(self) -> None:
        """example_envelope() is a valid concern.raised envelope."""
        envelope = parse_envelope(example_envelope())
        assert envelope.type is EventType.concern_raised
        assert isinstance(envelope.data, ConcernRaised)
        assert envelope.agency_kind is AgencyKind.police

    def test_example_calls_do_not_share_state(self) -> None:
        """Mutating one example leaves the next untouched."""
        first = example_envelope()
        first["person"]["name"]["given"] = "Changed"
        assert example_envelope()["person"]["name"]["given"] == "Ruby"

    def test_repr_carries_no_personal_data(self) -> None:
        """An envelope's repr shows ids only, never names or dates of birth."""
        envelope = parse_envelope(example_envelope())
        assert repr(envelope) == (
            "Envelope(id='northshire-police:evt-0001', type='concern.raised', "
            "agency_id='northshire-police')"
        )


class TestStrictness:
    """Unknown fields, naive datetimes and mismatched data are rejected."""

    def test_unknown_top_level_field_rejected(self) -> None:
        """An extra envelope attribute is an error at its own location."""
        assert locs(example_envelope(colour="blue")) == {"colour"}

    def test_unknown_data_field_rejected(self) -> None:
        """An extra payload field is an error under data."""
        data = {**example_data("concern.raised"), "urgent": True}
        assert locs(example_envelope(data=data)) == {"data.urgent"}

    @pytest.mark.parametrize("field", ["time", "recorded_at"])
    def test_naive_datetime_rejected(self, field: str) -> None:
        """Datetimes without an offset are rejected."""
        errors = errors_of(example_envelope(**{field: "2024-03-04T21:40:00"}))
        assert [(e.loc, e.type) for e in errors] == [(field, "timezone_aware")]

    def test_data_for_another_type_rejected_with_dotted_loc(self) -> None:
        """Involvement data under concern.raised fails as a concern, field by field."""
        errors = errors_of(example_envelope(data=example_data("involvement.started")))
        assert {e.loc for e in errors} >= {"data.category", "data.risk_level", "data.summary"}
        assert {e.loc for e in errors} >= {"data.involvement_type", "data.involvement_id"}

    def test_payload_instance_of_wrong_model_rejected(self) -> None:
        """Building an envelope in code with the wrong payload model fails."""
        raw = example_envelope(type="contact.recorded")
        raw["data"] = ConcernRaised.model_validate(example_data("concern.raised"))
        assert [(e.loc, e.msg) for e in errors_of(raw)] == [
            ("data", "data must be a ContactRecorded for contact.recorded")
        ]

    def test_nested_loc_is_dotted_with_indexes(self) -> None:
        """Errors inside lists give their index in the dotted path."""
        raw = example_envelope()
        raw["person"]["identifiers"].append({"system": "nhs", "value": "9434765918"})
        assert locs(raw) == {"person.identifiers.1.value"}

    def test_unknown_type_reports_type_and_not_data(self) -> None:
        """An unknown event type is reported once, and data is left unchecked."""
        errors = errors_of(example_envelope(type="concern.ignored", data={}))
        assert [(e.loc, e.type) for e in errors] == [
            ("type", "enum"),
            ("data", "data_unchecked"),
        ]

    @pytest.mark.parametrize(
        ("overrides", "loc"),
        [
            ({"specversion": "0.3"}, "specversion"),
            ({"id": "has space"}, "id"),
            ({"id": "x" * 129}, "id"),
            ({"source": "not a uri"}, "source"),
            ({"agency_id": "Northshire_Police"}, "agency_id"),
            ({"agency_kind": "probation"}, "agency_kind"),
            ({"subject": ""}, "subject"),
            ({"datacontenttype": "text/xml"}, "datacontenttype"),
            ({"sensitivity": ["health", "health"]}, "sensitivity"),
            ({"sensitivity": ["gossip"]}, "sensitivity.0"),
            ({"classification": "secret"}, "classification"),
            ({"lawful_basis": "consent"}, "consent_ref"),
            ({"signature": "c2ln"}, "key_id"),
            ({"schemaversion": True}, "schemaversion"),
        ],
    )
    def test_envelope_attribute_rules(self, overrides: dict, loc: str) -> None:
        """Each envelope attribute enforces its form."""
        assert locs(example_envelope(**overrides)) == {loc}

    def test_birth_date_after_recording_rejected(self) -> None:
        """A birth date later than recorded_at (anywhere on earth) is rejected."""
        raw = example_envelope()
        raw["person"]["birth_date"] = "2024-03-06"
        assert locs(raw) == {"person"}
        raw["person"]["birth_date"] = "2024-03-05"  # already 5 March in Kiribati at 22:05 UTC
        parse_envelope(raw)

    def test_contact_ending_before_it_started_rejected(self) -> None:
        """A contact's ended_at may not precede the envelope time."""
        data = {**example_data("contact.recorded"), "ended_at": "2024-03-04T20:00:00+00:00"}
        errors = errors_of(example_envelope(type="contact.recorded", data=data))
        assert [(e.loc, e.msg) for e in errors] == [("data", "ended_at is before time")]

    def test_contact_details_are_flat_and_bounded(self) -> None:
        """Details hold at most 50 scalar values."""
        nested = {**example_data("contact.recorded"), "details": {"a": {"b": 1}}}
        errors = errors_of(example_envelope(type="contact.recorded", data=nested))
        assert [(e.loc, e.msg) for e in errors] == [
            ("data.details.a", "must be a string, number, boolean or null")
        ]
        many = {**example_data("contact.recorded"), "details": {f"k{i}": i for i in range(51)}}
        assert locs(example_envelope(type="contact.recorded", data=many)) == {"data.details"}

    def test_involvement_dates_in_order(self) -> None:
        """An involvement may not end before it started; Ended needs ended_on."""
        data = {**example_data("involvement.ended"), "ended_on": "2023-12-31"}
        errors = errors_of(example_envelope(type="involvement.ended", data=data))
        assert [e.msg for e in errors] == ["Value error, ended_on must not be before started_on"]
        data = {k: v for k, v in example_data("involvement.ended").items() if k != "ended_on"}
        assert locs(example_envelope(type="involvement.ended", data=data)) == {"data.ended_on"}

    def test_envelope_is_immutable(self) -> None:
        """Envelopes are frozen."""
        envelope = parse_envelope(example_envelope())
        with pytest.raises(ValidationError):
            envelope.id = "other"  # type: ignore[misc]


class TestRoundTrip:
    """Every event type survives model -> JSON -> parse_envelope unchanged."""

    @pytest.mark.parametrize("event_type", list(EventType))
    def test_round_trip(self, event_type: EventType) -> None:
        """Serialising and parsing again gives an equal envelope with the same JSON."""
        envelope = parse_envelope(example_envelope(type=event_type))
        text = envelope.model_dump_json()
        again = parse_envelope(text)
        assert again == envelope
        assert again.model_dump_json() == text
        assert parse_envelope(text.encode()) == envelope
        assert type(again.data) is EVENT_FAMILIES[event_type]

    @pytest.mark.parametrize("event_type", list(EventType))
    def test_data_serialises_as_plain_payload(self, event_type: EventType) -> None:
        """The data JSON is the payload's own fields, with no discriminator added."""
        envelope = parse_envelope(example_envelope(type=event_type))
        dumped = json.loads(envelope.model_dump_json())["data"]
        assert set(dumped) == set(EVENT_FAMILIES[event_type].model_fields)
        assert json.loads(envelope.payload_json()) == dumped

    def test_built_in_code_equals_parsed(self) -> None:
        """An envelope built from models equals the one parsed from the example dict."""
        raw = example_envelope()
        built = Envelope(**{**raw, "data": ConcernRaised(**raw["data"])})
        assert built == parse_envelope(raw)

    def test_family_of_each_type(self) -> None:
        """Each event type belongs to its family."""
        assert {t.value: family_of(t) for t in EventType} == {
            "concern.raised": "concern",
            "involvement.started": "involvement",
            "involvement.changed": "involvement",
            "involvement.ended": "involvement",
            "contact.recorded": "contact",
            "event.corrected": "correction",
            "event.retracted": "correction",
        }
        assert parse_envelope(example_envelope(type="event.retracted")).family == "correction"

    def test_datetimes_keep_their_offset(self) -> None:
        """Aware datetimes are kept with their offset."""
        envelope = parse_envelope(example_envelope(time="2024-06-01T09:00:00+01:00"))
        assert envelope.time == datetime.fromisoformat("2024-06-01T08:00:00+00:00")
        assert envelope.time.utcoffset().total_seconds() == 3600  # type: ignore[union-attr]


class TestCorrection:
    """A correction's replacement is validated as the corrected type's payload."""

    def test_replacement_is_the_corrected_model(self) -> None:
        """The replacement is parsed into the corrected type's model."""
        raw = example_envelope(type="event.corrected")
        raw["data"] = {
            "reason": "Wrong end date.",
            "corrected_type": "involvement.ended",
            "replacement": example_data("involvement.ended"),
        }
        data = parse_envelope(raw).data
        assert isinstance(data, EventCorrected)
        assert isinstance(data.replacement, InvolvementEnded)

    def test_replacement_invalid_for_corrected_type_rejected(self) -> None:
        """A concern replacement under corrected_type contact.recorded is rejected."""
        raw = example_envelope(type="event.corrected")
        raw["data"]["corrected_type"] = "contact.recorded"
        assert locs(raw) == {
            "data.replacement.contact_type",
            "data.replacement.category",
            "data.replacement.risk_level",
            "data.replacement.raised_by_role",
        }

    @pytest.mark.parametrize("corrected", ["event.corrected", "event.retracted"])
    def test_cannot_correct_a_correction(self, corrected: str) -> None:
        """corrected_type may not be a correction or retraction."""
        raw = example_envelope(type="event.corrected")
        raw["data"]["corrected_type"] = corrected
        errors = errors_of(raw)
        assert [(e.loc, e.msg) for e in errors] == [
            (
                "data.corrected_type",
                "Value error, corrected_type must not be a correction or retraction",
            ),
            ("data.replacement", "cannot be checked until corrected_type is valid"),
        ]

    def test_replacement_model_instance_checked(self) -> None:
        """A replacement built as the wrong model is rejected."""
        with pytest.raises(ValidationError, match="replacement must be a ContactRecorded"):
            EventCorrected(
                reason="r",
                corrected_type="contact.recorded",
                replacement=ConcernRaised(**example_data("concern.raised")),
            )

    def test_replacement_round_trips_as_plain_json(self) -> None:
        """The replacement serialises as the payload's plain JSON."""
        envelope = parse_envelope(example_envelope(type="event.corrected"))
        dumped = json.loads(envelope.payload_json())
        assert dumped["replacement"] == {
            **example_data("concern.raised"),
            "risk_level": "medium",
        }

    def test_contact_replacement_round_trips(self) -> None:
        """A contact replacement with details keeps its value types."""
        replacement = ContactRecorded(**example_data("contact.recorded"))
        correction = EventCorrected(
            reason="r", corrected_type="contact.recorded", replacement=replacement
        )
        again = EventCorrected.model_validate_json(correction.model_dump_json())
        assert again == correction
        assert again.replacement.details == {  # type: ignore[union-attr]
            "encounter_class": "EMER",
            "admitted": False,
            "waiting_minutes": 95,
        }


class TestSupersedes:
    """supersedes is required on corrections and retractions, and only there."""

    @pytest.mark.parametrize("event_type", ["event.corrected", "event.retracted"])
    def test_required_for_corrections(self, event_type: str) -> None:
        """A correction or retraction without supersedes is rejected."""
        errors = errors_of(example_envelope(type=event_type, supersedes=None))
        assert [(e.loc, e.msg) for e in errors] == [
            ("supersedes", f"Value error, supersedes is required for {event_type}")
        ]

    def test_cannot_supersede_itself(self) -> None:
        """An event naming its own id in supersedes is rejected."""
        raw = example_envelope(type="event.retracted")
        raw["supersedes"] = raw["id"]
        assert [e.msg for e in errors_of(raw)] == ["Value error, an event cannot supersede itself"]

    def test_forbidden_on_other_types(self) -> None:
        """A concern carrying supersedes is rejected: corrections say what they replace."""
        errors = errors_of(example_envelope(supersedes="northshire-police:evt-0000"))
        assert [e.msg for e in errors] == [
            "Value error, supersedes is only allowed on event.corrected and event.retracted"
        ]


class TestErrors:
    """Parse errors are contract errors that never carry submitted values."""

    @pytest.mark.parametrize("body", [b"{not json", "", b"\xff\xfe", "[1, 2"])
    def test_non_json_is_body_json_invalid(self, body: bytes | str) -> None:
        """Text that is not JSON fails at loc body with type json_invalid."""
        assert errors_of(body) == [FieldError("body", "body is not valid JSON", "json_invalid")]

    def test_json_that_is_not_an_object(self) -> None:
        """A JSON array is not an envelope."""
        assert errors_of("[]") == [FieldError("body", "body must be a JSON object", "model_type")]

    def test_errors_never_contain_input_values(self) -> None:
        """Sentinel values in bad fields appear in no error message, loc or summary."""
        sentinel = "SENTINEL-Ruby-Example-1234"
        raw = example_envelope(
            id=f"{sentinel} ",
            source=f"{sentinel} x",
            subject="",
            agency_id=sentinel,
            time=sentinel,
            unexpected=sentinel,
            sensitivity=[sentinel],
        )
        raw["person"]["name"]["given"] = sentinel * 10
        raw["person"]["identifiers"] = [
            {"system": "nhs", "value": "9434765918"},
            {"system": "upn", "value": "A801200005001"},
            {"system": "la", "value": sentinel + " !"},
        ]
        raw["person"]["address"]["postcode"] = "SENT 1NEL"
        raw["data"] = {**raw["data"], "summary": 7, "risk_level": sentinel, "extra": sentinel}
        with pytest.raises(ContractValidationError) as caught:
            parse_envelope(json.dumps(raw))
        error = caught.value
        assert len(error.errors) >= 12
        text = str(error) + repr(error.errors)
        for secret in (sentinel, "9434765918", "A801200005001", "SENT 1NEL", "SENT1NEL"):
            assert secret not in text
        assert error.__cause__ is None and error.__suppress_context__

    def test_summary_message(self) -> None:
        """The exception message counts errors and lists where they are."""
        with pytest.raises(ContractValidationError) as caught:
            parse_envelope(example_envelope(colour="blue"))
        assert str(caught.value) == "1 contract error: colour: Extra inputs are not permitted"
