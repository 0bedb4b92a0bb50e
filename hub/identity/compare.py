"""Comparators: how two person records agree on each field, as a named comparison level.

Each comparator returns one level, best first; ``missing`` means one side does not know, which
scoring treats as no evidence either way. String similarity and phonetic codes come from
``jellyfish`` (Jaro-Winkler, Damerau-Levenshtein, Metaphone).
"""

from __future__ import annotations

from datetime import date

import jellyfish

from hub.identity.records import PersonRecord

__all__ = [
    "COMPARISONS",
    "compare",
    "compare_birth_date",
    "compare_family",
    "compare_given",
    "compare_nhs",
    "compare_postcode",
    "compare_sex",
]

MISSING = "missing"
_CLOSE_JW = 0.88


def _share(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    # A plain loop: this runs for every candidate pair, and a generator costs more than the
    # one- or two-item tuples it searches.
    for x in a:  # noqa: SIM110
        if x in b:
            return True
    return False


def _close(a: str, b: str) -> bool:
    if jellyfish.jaro_winkler_similarity(a, b) >= _CLOSE_JW:
        return True
    return min(len(a), len(b)) >= 4 and jellyfish.damerau_levenshtein_distance(a, b) <= 1


def compare_given(a: PersonRecord, b: PersonRecord) -> str:
    """exact / alias (nickname) / close (phonetic or spelling) / other_token / different."""
    if not a.given_first or not b.given_first:
        return MISSING
    if _share(a.given_first, b.given_first):
        return "exact"
    if _share(a.given_forms, b.given_forms):
        return "alias"
    if _share(a.given_meta, b.given_meta) or any(
        _close(x, y) for x in a.given_first for y in b.given_first
    ):
        return "close"
    if _share(a.given_tokens, b.given_tokens):
        return "other_token"
    return "different"


def compare_family(a: PersonRecord, b: PersonRecord) -> str:
    """exact / partial (one part of a double-barrelled name) / close / different."""
    if not a.family_joined or not b.family_joined:
        return MISSING
    if _share(a.family_joined, b.family_joined):
        return "exact"
    if _share(a.family_tokens, b.family_tokens):
        return "partial"
    if _share(a.family_meta, b.family_meta) or any(
        _close(x, y) for x in a.family_tokens for y in b.family_tokens
    ):
        return "close"
    return "different"


def compare_dates(a: date | None, b: date | None) -> str:
    """exact / transposed (day and month swapped) / partial (two of three parts) / different."""
    if a is None or b is None:
        return MISSING
    if a == b:
        return "exact"
    if a.year == b.year and a.day == b.month and a.month == b.day:
        return "transposed"
    agree = (a.year == b.year) + (a.month == b.month) + (a.day == b.day)
    return "partial" if agree == 2 else "different"


def compare_birth_date(a: PersonRecord, b: PersonRecord) -> str:
    """Compare birth dates (see ``compare_dates``)."""
    return compare_dates(a.birth_date, b.birth_date)


def compare_sex(a: PersonRecord, b: PersonRecord) -> str:
    """same / different; unknown or not specified is missing."""
    if a.sex is None or b.sex is None:
        return MISSING
    return "same" if a.sex == b.sex else "different"


def compare_postcode(a: PersonRecord, b: PersonRecord) -> str:
    """full / outward (same outward code, e.g. ``NS1``) / different."""
    if a.postcode is None or b.postcode is None:
        return MISSING
    if a.postcode == b.postcode:
        return "full"
    if a.postcode.split(" ", 1)[0] == b.postcode.split(" ", 1)[0]:
        return "outward"
    return "different"


def compare_nhs(a: PersonRecord, b: PersonRecord) -> str:
    """same / different NHS number (validated numbers only reach a record)."""
    x, y = a.identifier("nhs"), b.identifier("nhs")
    if x is None or y is None:
        return MISSING
    return "same" if x == y else "different"


COMPARISONS = {
    "given": compare_given,
    "family": compare_family,
    "birth_date": compare_birth_date,
    "sex": compare_sex,
    "postcode": compare_postcode,
    "nhs": compare_nhs,
}
"""Every comparison scoring uses, by name, in the order a score breakdown lists them."""


def compare(a: PersonRecord, b: PersonRecord) -> dict[str, str]:
    """Return the level of every comparison for a pair of records."""
    return {name: fn(a, b) for name, fn in COMPARISONS.items()}
