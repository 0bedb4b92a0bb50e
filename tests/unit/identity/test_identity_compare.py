"""Name normalisation, nicknames and the comparators' levels."""

from __future__ import annotations

from datetime import date

import pytest

from hub.identity.compare import compare, compare_dates
from hub.identity.names import alias_groups, name_tokens, normalise_name
from hub.identity.records import make_record

pytestmark = pytest.mark.unit


def rec(given: str = "Jayden", family: str = "Smith", **kw: object) -> object:
    fields = {"birth_date": date(2016, 5, 14), "sex": "male", "postcode": "NS1 4MB", **kw}
    return make_record("r", given=[given], family=[family], **fields)  # type: ignore[arg-type]


class TestNormalise:
    """Names are compared without case, accents, punctuation or hyphens."""

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("  JAYDEN ", "jayden"),
            ("Zoë", "zoe"),
            ("O'Brien", "obrien"),
            ("Smith-Jones", "smith jones"),
            ("Hughes\u2013Morgan", "hughes morgan"),
            ("St. John", "st john"),
            ("", ""),
            (None, ""),
        ],
    )
    def test_normalise_name(self, raw: str | None, expected: str) -> None:
        """Each spelling normalises to its plain form."""
        assert normalise_name(raw) == expected

    def test_tokens_split_double_barrelled_names(self) -> None:
        """A hyphenated surname gives one token per part."""
        assert name_tokens("Smith-Jones") == ("smith", "jones")


class TestNicknames:
    """The curated table maps short forms to the formal names they stand for."""

    def test_short_form_maps_to_every_formal_name(self) -> None:
        """Alex may be Alexander or Alexandra."""
        assert alias_groups("alex") == frozenset({"alexander", "alexandra"})

    def test_unknown_name_stands_for_itself(self) -> None:
        """A name outside the table is its own group."""
        assert alias_groups("zebedee") == frozenset({"zebedee"})


class TestComparators:
    """Every comparison level, from the pair that produces it."""

    @pytest.mark.parametrize(
        ("a", "b", "level"),
        [
            ("Jayden", "JAYDEN", "exact"),
            ("Jay", "Jayden", "alias"),
            ("Millie", "Amelia", "alias"),
            ("Jaiden", "Jayden", "close"),
            ("Jaydne", "Jayden", "close"),
            ("Rose", "Amelia Rose", "other_token"),
            ("Oliver", "Jayden", "different"),
            ("", "Jayden", "missing"),
        ],
    )
    def test_given(self, a: str, b: str, level: str) -> None:
        """Given names compare exactly, by nickname, by sound/spelling, by another token."""
        assert compare(rec(given=a), rec(given=b))["given"] == level

    @pytest.mark.parametrize(
        ("a", "b", "level"),
        [
            ("Smith-Jones", "smith jones", "exact"),
            ("Smith-Jones", "Jones", "partial"),
            ("Smyth", "Smith", "close"),
            ("Smith", "Okafor", "different"),
        ],
    )
    def test_family(self, a: str, b: str, level: str) -> None:
        """Hyphenated names agree exactly with their spaced form and partly with one part."""
        assert compare(rec(family=a), rec(family=b))["family"] == level

    @pytest.mark.parametrize(
        ("a", "b", "level"),
        [
            (date(2016, 5, 4), date(2016, 5, 4), "exact"),
            (date(2016, 5, 4), date(2016, 4, 5), "transposed"),
            (date(2016, 5, 4), date(2016, 5, 7), "partial"),
            (date(2016, 5, 4), date(2015, 3, 9), "different"),
            (None, date(2016, 5, 4), "missing"),
        ],
    )
    def test_birth_date(self, a: date | None, b: date | None, level: str) -> None:
        """A day/month swap is its own level, not a disagreement."""
        assert compare_dates(a, b) == level

    def test_postcode_and_sex(self) -> None:
        """Postcodes agree fully or on the outward code; unknown sex is missing."""
        base = rec(postcode="NS1 4MB", sex="male")
        assert compare(base, rec(postcode="ns14mb", sex="male")) == {
            "given": "exact",
            "family": "exact",
            "birth_date": "exact",
            "sex": "same",
            "postcode": "full",
            "nhs": "missing",
        }
        other = compare(base, rec(postcode="NS1 9ZZ", sex="unknown"))
        assert (other["postcode"], other["sex"]) == ("outward", "missing")
        assert compare(base, rec(postcode="NS7 1AB", sex="female"))["postcode"] == "different"

    def test_nhs(self) -> None:
        """Two NHS numbers agree or differ; one missing is missing."""
        a = rec(identifiers=[("nhs", "9990001138")])
        assert compare(a, rec(identifiers=[("nhs", "9990001138")]))["nhs"] == "same"
        assert compare(a, rec(identifiers=[("nhs", "9990001146")]))["nhs"] == "different"
        assert compare(a, rec())["nhs"] == "missing"
