"""Validate and normalise the identifiers agencies hold for a child (NHS number, UPN, local ids).

Error messages never repeat a whole identifier: at most its last three characters.
"""

from __future__ import annotations

import re
from enum import StrEnum
from types import MappingProxyType
from typing import Self

from pydantic import Field, ValidationError, ValidationInfo, field_validator

from contracts._base import ContractModel

__all__ = [
    "FHIR_SYSTEMS",
    "UPN_CHECK_ALPHABET",
    "Identifier",
    "IdentifierSystem",
    "nhs_check_digit",
    "nhs_number_is_valid",
    "normalise_nhs_number",
    "normalise_upn",
    "upn_check_letter",
    "upn_is_valid",
]

_NHS_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)
UPN_CHECK_ALPHABET = "ABCDEFGHJKLMNPQRTUVWXYZ"
"""The 23 UPN check letters (no I, O or S), in value order."""
_UPN_FORM = re.compile(rf"^[{UPN_CHECK_ALPHABET}][0-9]{{11}}[0-9{UPN_CHECK_ALPHABET}]$")
_LOCAL_ID_FORM = re.compile(r"^[A-Za-z0-9/_-]{1,64}$")


def _mask(value: str) -> str:
    """Hide all but the last three characters of an identifier."""
    if len(value) <= 3:
        return "*" * len(value)
    return "*" * (len(value) - 3) + value[-3:]


def nhs_check_digit(first_nine: str) -> int | None:
    """Return the NHS number check digit for nine digits, or None if no digit can be valid."""
    remainder = sum(int(d) * w for d, w in zip(first_nine, _NHS_WEIGHTS, strict=True)) % 11
    check = 11 - remainder
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def normalise_nhs_number(value: str) -> str:
    """Return the NHS number as 10 digits, or raise ValueError saying what is wrong.

    Spaces are allowed in the input (``943 476 5919``); nothing else is.
    """
    if not isinstance(value, str):
        raise ValueError("NHS number must be a string of 10 digits")
    digits = "".join(value.split())
    if not digits.isascii() or not digits.isdigit():
        raise ValueError("NHS number must contain only digits and spaces")
    if len(digits) != 10:
        raise ValueError(f"NHS number must be 10 digits, not {len(digits)}")
    check = nhs_check_digit(digits[:9])
    if check is None or check != int(digits[9]):
        raise ValueError(f"NHS number {_mask(digits)} fails the check-digit test")
    return digits


def nhs_number_is_valid(value: str) -> bool:
    """Say whether ``value`` is a valid NHS number (spaces allowed)."""
    try:
        normalise_nhs_number(value)
    except ValueError:
        return False
    return True


def upn_check_letter(last_twelve: str) -> str:
    """Return the UPN check letter for characters 2-13 (weights 2..13, mod 23)."""
    total = 0
    for position, char in enumerate(last_twelve, start=2):
        value = int(char) if char.isdigit() else UPN_CHECK_ALPHABET.index(char)
        total += value * position
    return UPN_CHECK_ALPHABET[total % 23]


def normalise_upn(value: str) -> str:
    """Return the Unique Pupil Number in upper case without spaces, or raise ValueError.

    The form is a check letter, eleven digits, then a digit (permanent UPN) or a letter
    (temporary UPN). The local-authority code is not checked against a list: codes change.
    """
    if not isinstance(value, str):
        raise ValueError("UPN must be a string of 13 characters")
    upn = "".join(value.split()).upper()
    if len(upn) != 13:
        raise ValueError(f"UPN must be 13 characters, not {len(upn)}")
    if not _UPN_FORM.match(upn):
        raise ValueError(
            "UPN must be a check letter, 11 digits, then a digit or letter (not I, O or S)"
        )
    if upn_check_letter(upn[1:]) != upn[0]:
        raise ValueError(f"UPN {_mask(upn)} has the wrong check letter")
    return upn


def upn_is_valid(value: str) -> bool:
    """Say whether ``value`` is a valid Unique Pupil Number (case and spaces ignored)."""
    try:
        normalise_upn(value)
    except ValueError:
        return False
    return True


class IdentifierSystem(StrEnum):
    """Which agency's numbering an identifier belongs to."""

    nhs = "nhs"
    """NHS number (England, Wales, Isle of Man)."""
    upn = "upn"
    """Unique Pupil Number (English state schools)."""
    la = "la"
    """A local authority's own child id (e.g. the CIN census ``LAchildID``)."""
    police = "police"
    """A police force's person id."""


FHIR_SYSTEMS: MappingProxyType[IdentifierSystem, str] = MappingProxyType(
    {IdentifierSystem.nhs: "https://fhir.nhs.uk/Id/nhs-number"}
)
"""FHIR ``Identifier.system`` URIs for the systems that have an official one."""


def _normalise(system: IdentifierSystem, value: str) -> str:
    if system is IdentifierSystem.nhs:
        return normalise_nhs_number(value)
    if system is IdentifierSystem.upn:
        return normalise_upn(value)
    if not _LOCAL_ID_FORM.match(value):
        raise ValueError(
            f"{system} identifier must be 1-64 characters of letters, digits, '/', '_' or '-'"
        )
    return value


class Identifier(ContractModel):
    """One identifier for a person in one agency's system, validated and normalised."""

    system: IdentifierSystem
    value: str = Field(min_length=1, max_length=64)

    @field_validator("value")
    @classmethod
    def _check_value(cls, value: str, info: ValidationInfo) -> str:
        system = info.data.get("system")
        if system is None:  # the system itself was invalid; that error is reported
            return value
        return _normalise(system, value)

    @property
    def key(self) -> str:
        """Return ``"<system>:<value>"``, the form used in indexes and API queries."""
        return f"{self.system}:{self.value}"

    @classmethod
    def parse(cls, text: str) -> Self:
        """Build an identifier from ``"<system>:<value>"`` (e.g. ``nhs:9434765919``).

        Raises ValueError naming the problem without repeating the value.
        """
        system, sep, value = text.partition(":") if isinstance(text, str) else ("", "", "")
        if not sep:
            raise ValueError("identifier must look like '<system>:<value>', e.g. 'nhs:...'")
        allowed = ", ".join(s.value for s in IdentifierSystem)
        if system.strip() not in IdentifierSystem.__members__:
            raise ValueError(f"identifier system must be one of: {allowed}")
        try:
            return cls(system=IdentifierSystem(system.strip()), value=value)
        except ValidationError as exc:
            reasons = "; ".join(
                str(err["msg"]).removeprefix("Value error, ") for err in exc.errors()
            )
            raise ValueError(reasons) from None
