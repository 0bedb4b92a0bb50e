"""Identifier rules: NHS number check digit, UPN check letter, identifier parsing."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError
from stdnum.gb import nhs as stdnum_nhs
from stdnum.gb import upn as stdnum_upn

from contracts.examples import valid_nhs_number, valid_upn
from contracts.identifiers import (
    FHIR_SYSTEMS,
    UPN_CHECK_ALPHABET,
    Identifier,
    IdentifierSystem,
    nhs_number_is_valid,
    normalise_nhs_number,
    normalise_upn,
    upn_is_valid,
)

pytestmark = pytest.mark.unit

STDNUM_LA_CODES = sorted(stdnum_upn._la_numbers)


def upn_rule(upn: str) -> bool:
    """The UPN rule written out independently from DESIGN.md section 9."""
    if len(upn) != 13 or upn[0] not in UPN_CHECK_ALPHABET or not upn[1:12].isdigit():
        return False
    last = upn[12]
    if not (last.isdigit() or last in UPN_CHECK_ALPHABET):
        return False
    values = [int(c) for c in upn[1:12]]
    values.append(int(last) if last.isdigit() else UPN_CHECK_ALPHABET.index(last))
    total = sum(v * pos for v, pos in zip(values, range(2, 14), strict=True))
    return UPN_CHECK_ALPHABET[total % 23] == upn[0]


def nhs_rule(number: str) -> bool:
    """The NHS number rule written out independently from DESIGN.md section 9."""
    if len(number) != 10 or not number.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 10:
        return False
    return (0 if check == 11 else check) == int(number[9])


def random_upn(rng: random.Random, *, la_codes: list[int] | None = None) -> str:
    la = rng.choice(la_codes) if la_codes else rng.randrange(1000)
    body = f"{la:03d}" + "".join(rng.choice("0123456789") for _ in range(8))
    last = rng.choice("0123456789" + UPN_CHECK_ALPHABET + "IOS")
    return rng.choice(UPN_CHECK_ALPHABET + "IOS") + body + last


class TestNhsNumber:
    """NHS numbers are 10 digits with a mod-11 check digit."""

    @pytest.mark.parametrize("number", ["9434765919", "4010232137", "943 476 5919", "9990000018"])
    def test_known_valid_numbers_pass(self, number: str) -> None:
        """Published and test-range numbers with the right check digit are valid."""
        assert nhs_number_is_valid(number)

    @pytest.mark.parametrize(
        "number",
        ["9434765918", "943476591", "94347659190", "943476591X", "", "943-476-5919", "9991234560"],
    )
    def test_known_invalid_numbers_fail(self, number: str) -> None:
        """Wrong check digit, wrong length, non-digits and check value 10 are invalid."""
        assert not nhs_number_is_valid(number)

    def test_check_value_ten_is_never_valid(self) -> None:
        """A stem whose check value is 10 has no valid number at all."""
        assert not any(nhs_number_is_valid(f"999123456{d}") for d in range(10))

    def test_normalise_removes_spaces(self) -> None:
        """Spaces in the input are dropped."""
        assert normalise_nhs_number(" 943 476 5919 ") == "9434765919"

    def test_error_masks_all_but_last_three_digits(self) -> None:
        """A check-digit failure names the number masked to its last three digits."""
        with pytest.raises(ValueError) as caught:
            normalise_nhs_number("9434765918")
        assert str(caught.value) == "NHS number *******918 fails the check-digit test"

    def test_length_error_names_the_problem(self) -> None:
        """A wrong length is reported as a count, not by echoing the value."""
        with pytest.raises(ValueError, match=r"^NHS number must be 10 digits, not 9$"):
            normalise_nhs_number("943476591")

    def test_agrees_with_rule_and_stdnum_on_random_numbers(self) -> None:
        """On 20,000 random numbers the validator, the written rule and stdnum agree."""
        rng = random.Random(5218)
        valid = 0
        for _ in range(20_000):
            number = f"{rng.randrange(10**10):010d}"
            ours = nhs_number_is_valid(number)
            assert ours == nhs_rule(number) == stdnum_nhs.is_valid(number), number
            valid += ours
        assert 1_500 < valid < 2_200  # about one in eleven

    def test_generated_test_numbers_are_valid_distinct_and_in_999_range(self) -> None:
        """valid_nhs_number gives distinct valid numbers from the never-issued 999 range."""
        numbers = [valid_nhs_number(seed) for seed in range(0, 900_000, 101)]
        assert all(n.startswith("999") and nhs_rule(n) for n in numbers)
        assert len(set(numbers)) == len(numbers)
        assert valid_nhs_number(899_999) != valid_nhs_number(899_998)


class TestUpn:
    """UPNs are a check letter and 12 characters, the last a letter if temporary."""

    def test_design_example_is_valid(self) -> None:
        """The worked example B801200005001 (sum 93, 93 mod 23 = 1, B) is valid."""
        assert upn_is_valid("B801200005001")
        assert normalise_upn(" b801 2000 05001 ") == "B801200005001"

    @pytest.mark.parametrize(
        "upn",
        ["A801200005001", "B80120000500", "X80120000A001", "B80120000500I", "", "B8012000050011"],
    )
    def test_invalid_forms_fail(self, upn: str) -> None:
        """Wrong check letter, length, letters in the middle or I/O/S at the end are invalid."""
        assert not upn_is_valid(upn)

    def test_error_masks_all_but_last_three(self) -> None:
        """A wrong check letter is reported with the UPN masked."""
        with pytest.raises(ValueError) as caught:
            normalise_upn("A801200005001")
        assert str(caught.value) == "UPN **********001 has the wrong check letter"

    def test_agrees_with_rule_and_stdnum_on_random_upns(self) -> None:
        """On 20,000 UPNs with known LA codes the validator, the rule and stdnum agree."""
        rng = random.Random(23)
        valid = temporary_valid = 0
        for _ in range(20_000):
            upn = random_upn(rng, la_codes=STDNUM_LA_CODES)
            ours = upn_is_valid(upn)
            assert ours == upn_rule(upn) == stdnum_upn.is_valid(upn), upn
            valid += ours
            temporary_valid += ours and upn[-1].isalpha()
        assert valid > 500 and temporary_valid > 200

    def test_agrees_with_stdnum_on_generated_valid_upns(self) -> None:
        """Every UPN whose check letter we compute, permanent or temporary, stdnum accepts."""
        rng = random.Random(1989)
        for _ in range(5_000):
            body = random_upn(rng, la_codes=STDNUM_LA_CODES)[1:].replace("I", "A")
            body = body.replace("O", "B").replace("S", "C")
            upn = stdnum_upn.calc_check_digit(body) + body
            assert upn_is_valid(upn) and upn_rule(upn), upn

    def test_unknown_la_code_is_accepted_unlike_stdnum(self) -> None:
        """LA codes are not checked against a list (stdnum's dates from 2011; codes change)."""
        upn = valid_upn(42).replace("938", "941", 1)
        upn = stdnum_upn.calc_check_digit(upn[1:]) + upn[1:]
        assert upn_is_valid(upn)
        assert not stdnum_upn.is_valid(upn)

    def test_generated_upns_are_valid(self) -> None:
        """valid_upn gives distinct valid permanent and temporary UPNs that stdnum accepts."""
        upns = [valid_upn(seed) for seed in range(0, 10**9, 10**6 + 7)]
        upns += [valid_upn(seed, temporary=True) for seed in range(200)]
        assert all(upn_rule(u) and stdnum_upn.is_valid(u) for u in upns)
        assert len(set(upns)) == len(upns)


class TestIdentifier:
    """The Identifier model normalises per system and parses 'system:value'."""

    def test_nhs_value_is_normalised(self) -> None:
        """An NHS number with spaces is stored as 10 digits."""
        identifier = Identifier(system=IdentifierSystem.nhs, value="943 476 5919")
        assert identifier.value == "9434765919"
        assert identifier.key == "nhs:9434765919"

    def test_upn_value_is_upper_cased(self) -> None:
        """A UPN is stored upper case."""
        assert Identifier(system="upn", value="b801200005001").key == "upn:B801200005001"

    @pytest.mark.parametrize("value", ["LA/2024_0001-a", "A" * 64])
    def test_local_ids_accept_safe_characters(self, value: str) -> None:
        """Local authority and police ids allow letters, digits, '/', '_' and '-'."""
        assert Identifier(system="la", value=value).value == value
        assert Identifier(system="police", value=value).value == value

    @pytest.mark.parametrize("value", ["has space", "semi;colon", "A" * 65, ""])
    def test_local_ids_reject_other_characters(self, value: str) -> None:
        """Other characters, empty values and more than 64 characters are rejected."""
        with pytest.raises(ValidationError):
            Identifier(system="la", value=value)

    def test_invalid_nhs_number_rejected_with_masked_message(self) -> None:
        """An invalid NHS number fails validation without the full number in the error."""
        with pytest.raises(ValidationError) as caught:
            Identifier(system="nhs", value="9434765918")
        assert "9434765918" not in str(caught.value.errors(include_input=False))

    def test_identifiers_are_immutable(self) -> None:
        """Identifiers are frozen."""
        identifier = Identifier(system="nhs", value="9434765919")
        with pytest.raises(ValidationError):
            identifier.value = "9990000018"  # type: ignore[misc]

    def test_parse_builds_identifier(self) -> None:
        """'nhs:9434765919' parses to the NHS identifier."""
        assert Identifier.parse("nhs:943 476 5919") == Identifier(system="nhs", value="9434765919")
        assert Identifier.parse("police:NP/123").key == "police:NP/123"

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("9434765919", "identifier must look like '<system>:<value>', e.g. 'nhs:...'"),
            ("passport:123", "identifier system must be one of: nhs, upn, la, police"),
            ("nhs:9434765918", "NHS number *******918 fails the check-digit test"),
            (
                "la:bad value",
                "la identifier must be 1-64 characters of letters, digits, '/', '_' or '-'",
            ),
        ],
    )
    def test_parse_rejects_bad_forms(self, text: str, message: str) -> None:
        """A missing separator, unknown system or invalid value raises ValueError."""
        with pytest.raises(ValueError) as caught:
            Identifier.parse(text)
        assert str(caught.value) == message

    def test_fhir_system_for_nhs_number(self) -> None:
        """The NHS number's FHIR system URI is NHS England's."""
        assert FHIR_SYSTEMS[IdentifierSystem.nhs] == "https://fhir.nhs.uk/Id/nhs-number"
