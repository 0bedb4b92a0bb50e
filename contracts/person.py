"""The person an event is about: identifiers, name, birth date, sex, address and related people."""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, field_validator, model_validator

from contracts._base import ContractModel, Name
from contracts.identifiers import Identifier

__all__ = [
    "Address",
    "Person",
    "PersonName",
    "RelatedPerson",
    "Relationship",
    "Sex",
    "normalise_postcode",
]

# Outward code (A9, A99, AA9, AA99, A9A, AA9A) + inward code (9AA); plus the Girobank oddity.
_POSTCODE = re.compile(r"^(?:[A-Z]{1,2}[0-9][A-Z0-9]?|GIR) [0-9][A-Z]{2}$")

AddressLine = Annotated[str, Field(min_length=1, max_length=200)]


def normalise_postcode(value: str) -> str:
    """Return a UK postcode upper-cased with one space before the inward code, or raise."""
    compact = "".join(value.split()).upper()
    formatted = f"{compact[:-3]} {compact[-3:]}"
    if len(compact) < 5 or len(compact) > 7 or not _POSTCODE.match(formatted):
        raise ValueError("postcode is not a valid UK postcode")
    return formatted


class PersonName(ContractModel):
    """A person's name as an agency holds it, with any known aliases."""

    given: Name
    family: Name
    aliases: tuple[Name, ...] = Field(default=(), max_length=20)


class Sex(StrEnum):
    """Recorded sex, after ISO/IEC 5218 (0 not known, 1 male, 2 female, 9 not applicable)."""

    female = "female"
    male = "male"
    unknown = "unknown"
    not_specified = "not_specified"


class Address(ContractModel):
    """A postal address: free lines and a normalised UK postcode; at least one of the two."""

    lines: tuple[AddressLine, ...] = Field(default=(), max_length=8)
    postcode: str | None = Field(default=None, max_length=16)

    @field_validator("postcode")
    @classmethod
    def _check_postcode(cls, value: str | None) -> str | None:
        return None if value is None else normalise_postcode(value)

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.lines and self.postcode is None:
            raise ValueError("address needs at least one line or a postcode")
        return self


class Relationship(StrEnum):
    """How a related person stands to the child."""

    mother = "mother"
    father = "father"
    carer = "carer"
    sibling = "sibling"
    household_member = "household_member"
    alleged_perpetrator = "alleged_perpetrator"
    other = "other"


def _no_duplicate_identifiers(identifiers: tuple[Identifier, ...]) -> tuple[Identifier, ...]:
    keys = [i.key for i in identifiers]
    if len(set(keys)) != len(keys):
        raise ValueError("the same identifier is listed twice")
    return identifiers


class RelatedPerson(ContractModel):
    """Someone connected to the child (parent, carer, sibling, alleged perpetrator...)."""

    relationship: Relationship
    name: PersonName | None = None
    identifiers: tuple[Identifier, ...] = Field(default=(), max_length=10)
    birth_date: date | None = None

    @field_validator("identifiers")
    @classmethod
    def _check_identifiers(cls, value: tuple[Identifier, ...]) -> tuple[Identifier, ...]:
        return _no_duplicate_identifiers(value)


class Person(ContractModel):
    """The child an event is about, as the sending agency knows them.

    Needs at least one identifier, or a name and a birth date, so the hub can match it.
    Whether a birth date lies in the future is checked by the envelope against ``recorded_at``
    (models carry no clock).
    """

    identifiers: tuple[Identifier, ...] = Field(default=(), max_length=10)
    name: PersonName | None = None
    birth_date: date | None = None
    sex: Sex = Sex.unknown
    address: Address | None = None
    related: tuple[RelatedPerson, ...] = Field(default=(), max_length=50)

    @field_validator("identifiers")
    @classmethod
    def _check_identifiers(cls, value: tuple[Identifier, ...]) -> tuple[Identifier, ...]:
        return _no_duplicate_identifiers(value)

    @model_validator(mode="after")
    def _matchable(self) -> Self:
        if not self.identifiers and (self.name is None or self.birth_date is None):
            raise ValueError("a person needs at least one identifier, or a name and a birth date")
        return self
