"""The person record matching works on: normalised names, birth date, sex, postcode, identifiers.

A record is built once (names normalised, phonetic codes and nickname forms computed) so that
comparing two records does no text processing beyond the comparators themselves.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

import jellyfish

from contracts import Person
from hub.identity.households import address_key
from hub.identity.names import given_forms, name_tokens

__all__ = [
    "DETERMINISTIC_SYSTEMS",
    "PersonRecord",
    "make_record",
    "record_from_features",
    "record_from_person",
]

DETERMINISTIC_SYSTEMS = ("nhs", "upn", "la", "police")
"""Identifier systems that link on exact agreement, strongest first (as decision 0003)."""


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """One agency's view of a person, normalised for matching (no raw text kept)."""

    record_id: str
    given_first: tuple[str, ...]
    """First given-name token of each known given name (official first, then aliases)."""
    given_tokens: tuple[str, ...]
    given_forms: tuple[str, ...]
    """Every formal name a first given name may be short for, and the names themselves."""
    given_meta: tuple[str, ...]
    family_joined: tuple[str, ...]
    family_tokens: tuple[str, ...]
    family_meta: tuple[str, ...]
    birth_date: date | None
    sex: str | None
    postcode: str | None
    address_key: str | None
    identifiers: tuple[tuple[str, str], ...]

    def identifier(self, system: str) -> str | None:
        """Return this record's identifier in ``system``, if it has one."""
        for s, v in self.identifiers:  # a loop, not next(genexpr): once per candidate pair
            if s == system:
                return v
        return None

    def features(self) -> dict[str, list[str]]:
        """The normalised name parts the store persists (everything else is derived)."""
        return {
            "given_first": list(self.given_first),
            "given_tokens": list(self.given_tokens),
            "family_joined": list(self.family_joined),
            "family_tokens": list(self.family_tokens),
        }


def _meta(token: str) -> str:
    return sys.intern(jellyfish.metaphone(token) or token)


def _distinct(items: Iterable[str]) -> tuple[str, ...]:
    """Distinct items, first seen first, interned (records share their name strings)."""
    return tuple(sys.intern(i) for i in dict.fromkeys(items))


def make_record(
    record_id: str,
    *,
    given: Iterable[str] = (),
    family: Iterable[str] = (),
    birth_date: date | None = None,
    sex: str | None = None,
    postcode: str | None = None,
    address_lines: Iterable[str] = (),
    identifiers: Iterable[tuple[str, str]] = (),
) -> PersonRecord:
    """Build a record from raw name variants and fields; normalises everything it is given."""
    givens = [t for t in (name_tokens(g) for g in given) if t]
    families = [t for t in (name_tokens(f) for f in family) if t]
    first = _distinct(g[0] for g in givens)
    family_tokens = _distinct(t for f in families for t in f)
    compact = (postcode or "").replace(" ", "").upper()
    pc = f"{compact[:-3]} {compact[-3:]}" if len(compact) >= 5 else None
    return PersonRecord(
        record_id=record_id,
        given_first=first,
        given_tokens=_distinct(t for g in givens for t in g),
        given_forms=_distinct(f for token in first for f in sorted(given_forms(token))),
        given_meta=_distinct(_meta(t) for t in first),
        family_joined=_distinct("".join(f) for f in families),
        family_tokens=family_tokens,
        family_meta=_distinct(_meta(t) for t in family_tokens),
        birth_date=birth_date,
        sex=sex if sex in ("female", "male") else None,
        postcode=sys.intern(pc) if pc else None,
        address_key=address_key(tuple(address_lines), pc),
        identifiers=tuple(sorted(set(identifiers), key=_rank)),
    )


def record_from_features(
    record_id: str,
    features: dict[str, list[str]],
    *,
    birth_date: date | None,
    sex: str | None,
    postcode: str | None,
    address_key: str | None,
    identifiers: Iterable[tuple[str, str]],
) -> PersonRecord:
    """Rebuild a record from what the store persisted (``PersonRecord.features``)."""
    first = _distinct(features.get("given_first", ()))
    family_tokens = _distinct(features.get("family_tokens", ()))
    return PersonRecord(
        record_id=record_id,
        given_first=first,
        given_tokens=_distinct(features.get("given_tokens", ())),
        given_forms=_distinct(f for token in first for f in sorted(given_forms(token))),
        given_meta=_distinct(_meta(t) for t in first),
        family_joined=_distinct(features.get("family_joined", ())),
        family_tokens=family_tokens,
        family_meta=_distinct(_meta(t) for t in family_tokens),
        birth_date=birth_date,
        sex=sex,
        postcode=postcode,
        address_key=address_key,
        identifiers=tuple(sorted(set(identifiers), key=_rank)),
    )


def _rank(key: tuple[str, str]) -> tuple[int, str, str]:
    system = key[0]
    rank = DETERMINISTIC_SYSTEMS.index(system) if system in DETERMINISTIC_SYSTEMS else 99
    return rank, system, key[1]


def record_from_person(
    person: Person, record_id: str, *, digest: Callable[[str, str], str] | None = None
) -> PersonRecord:
    """Build a record from a contract ``Person`` (the person of an incoming envelope).

    With ``digest`` the identifiers are kept as keyed digests (what the hub stores), which
    still agree exactly when the identifiers do.
    """
    given: list[str] = []
    family: list[str] = []
    if person.name is not None:
        given.append(person.name.given)
        family.append(person.name.family)
        for alias in person.name.aliases:
            *alias_given, alias_family = alias.split() or [""]
            if alias_given:
                given.append(" ".join(alias_given))
            family.append(alias_family)
    address = person.address
    return make_record(
        record_id,
        given=given,
        family=family,
        birth_date=person.birth_date,
        sex=person.sex.value,
        postcode=address.postcode if address else None,
        address_lines=address.lines if address else (),
        identifiers=[
            (i.system.value, digest(i.system.value, i.value) if digest else i.value)
            for i in person.identifiers
        ],
    )
