"""Person contract: matchable people, postcodes, related people."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from contracts.person import Address, Person, PersonName, RelatedPerson, Relationship, Sex

pytestmark = pytest.mark.unit


class TestPerson:
    """A person needs an identifier, or a name and a birth date."""

    def test_identifier_alone_is_enough(self) -> None:
        """One identifier makes a person matchable."""
        person = Person(identifiers=[{"system": "la", "value": "LA-1"}])
        assert person.sex is Sex.unknown

    def test_name_and_birth_date_are_enough(self) -> None:
        """A name with a birth date makes a person matchable."""
        Person(name=PersonName(given="Ruby", family="Example"), birth_date=date(2015, 6, 1))

    @pytest.mark.parametrize(
        "fields",
        [{}, {"name": {"given": "Ruby", "family": "Example"}}, {"birth_date": "2015-06-01"}],
    )
    def test_unmatchable_person_is_rejected(self, fields: dict) -> None:
        """Without an identifier, a name alone or a birth date alone is rejected."""
        with pytest.raises(ValidationError) as caught:
            Person(**fields)
        assert caught.value.errors()[0]["msg"] == (
            "Value error, a person needs at least one identifier, or a name and a birth date"
        )

    def test_duplicate_identifiers_rejected(self) -> None:
        """The same identifier twice is an error."""
        with pytest.raises(ValidationError, match="the same identifier is listed twice"):
            Person(
                identifiers=[{"system": "nhs", "value": v} for v in ("9434765919", "943 476 5919")]
            )

    def test_names_are_stripped_and_bounded(self) -> None:
        """Name parts are stripped; empty or over-long parts are rejected."""
        assert PersonName(given="  Ruby ", family="Example").given == "Ruby"
        with pytest.raises(ValidationError):
            PersonName(given="  ", family="Example")
        with pytest.raises(ValidationError):
            PersonName(given="R" * 101, family="Example")

    def test_related_person_carries_relationship(self) -> None:
        """A related person has a relationship and optional details."""
        related = RelatedPerson(relationship="alleged_perpetrator")
        assert related.relationship is Relationship.alleged_perpetrator
        assert related.identifiers == ()


class TestAddress:
    """Addresses carry lines and a normalised UK postcode."""

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("zz99 3zz", "ZZ99 3ZZ"),
            ("SW1A1AA", "SW1A 1AA"),
            (" m1   1ae ", "M1 1AE"),
            ("b338th", "B33 8TH"),
            ("GIR0AA", "GIR 0AA"),
        ],
    )
    def test_postcode_normalised(self, raw: str, expected: str) -> None:
        """Postcodes are upper-cased with one space before the inward code."""
        assert Address(postcode=raw).postcode == expected

    @pytest.mark.parametrize("raw", ["ZZ99", "12345", "SW1A 1A", "Q1 1AA 1", "AAA1 1AA", "M1 1A€"])
    def test_bad_postcode_rejected(self, raw: str) -> None:
        """Strings that are not UK postcodes are rejected."""
        with pytest.raises(ValidationError, match="postcode is not a valid UK postcode"):
            Address(postcode=raw)

    def test_empty_address_rejected(self) -> None:
        """An address needs a line or a postcode."""
        with pytest.raises(ValidationError, match="at least one line or a postcode"):
            Address()
