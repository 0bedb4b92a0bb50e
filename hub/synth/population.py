"""The synthetic population itself: households of invented children and adults, deterministic.

No I/O. ``people(children, seed)`` always makes the same population for the same arguments.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

import jellyfish

from contracts.examples import valid_nhs_number, valid_upn
from hub.identity.names import alias_groups, normalise_name
from hub.synth.names import FAMILY, GIVEN_FEMALE, GIVEN_MALE, STREETS, TOWNS

__all__ = ["REFERENCE_DATE", "Household", "Place", "Population", "SynthPerson", "people"]

REFERENCE_DATE = date(2024, 3, 31)
"""The census day the population's ages are counted to."""

_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
_NHS_SEEDS = 900_000


@dataclass(frozen=True, slots=True)
class Place:
    """An invented address: house number, street, town and postcode."""

    number: int
    street: str
    town: str
    postcode: str

    @property
    def lines(self) -> tuple[str, str]:
        """The address lines (``"3 Mill Lane"``, town)."""
        return (f"{self.number} {self.street}", self.town)


@dataclass(slots=True)
class SynthPerson:
    """One invented person: the truth every agency's record of them is a noisy view of."""

    pid: str
    given: str
    family: str
    birth_date: date
    sex: str
    household: str
    is_child: bool
    nhs: str | None = None
    upn: str | None = None
    twin_of: str | None = None


@dataclass(slots=True)
class Household:
    """Children, their mother and perhaps her partner, at one address (perhaps recently moved)."""

    hid: str
    address: Place
    previous: Place | None
    mother: str
    partner: str | None
    partner_lives_in: bool
    children: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Population:
    """Everyone ``hub synth`` invented, by id, and their households."""

    seed: int
    people: dict[str, SynthPerson]
    households: list[Household]

    @property
    def children(self) -> list[SynthPerson]:
        """The children, in id order."""
        return [p for p in self.people.values() if p.is_child]


def _age_days(rng: random.Random, low: int, high: int) -> int:
    return rng.randrange(low * 365, high * 365 + 364)


def _different_first_name(rng: random.Random, names: list[str], taken: str) -> str:
    """A twin's name: not the same, not a nickname of, and not spelt or sounding like ``taken``.

    Twins named alike (Thomas and Tomasz) cannot be told apart without an identifier; the
    population leaves them out so that the twin figures measure the sibling guard.
    """
    groups = alias_groups(normalise_name(taken))
    sound = jellyfish.metaphone(taken)
    while True:
        name = rng.choice(names)
        if (
            name != taken
            and not (alias_groups(normalise_name(name)) & groups)
            and jellyfish.metaphone(name) != sound
            and jellyfish.jaro_winkler_similarity(name.lower(), taken.lower()) < 0.88
        ):
            return name


class _Places:
    def __init__(self, rng: random.Random, households: int) -> None:
        self._rng = rng
        pool = max(10, households // 8)
        seen: set[str] = set()
        self._codes: list[tuple[str, str, str]] = []
        while len(self._codes) < pool:
            outward = f"NS{rng.randint(1, 19)}"
            inward = (
                f"{rng.randint(0, 9)}{rng.choice(_INWARD_LETTERS)}{rng.choice(_INWARD_LETTERS)}"
            )
            code = f"{outward} {inward}"
            if code not in seen:
                seen.add(code)
                self._codes.append((code, rng.choice(STREETS), rng.choice(TOWNS)))
        self._used: dict[str, set[int]] = {}

    def new(self) -> Place:
        code, street, town = self._rng.choice(self._codes)
        used = self._used.setdefault(code, set())
        number = self._rng.randint(1, 400)
        while number in used:
            number = self._rng.randint(1, 400)
        used.add(number)
        return Place(number, street, town, code)


def people(children: int, seed: int) -> Population:
    """Invent ``children`` children in households with mothers and partners; deterministic."""
    if children < 1:
        raise ValueError("children must be at least 1")
    rng = random.Random(seed)
    places = _Places(rng, children // 2 + 1)
    everyone: dict[str, SynthPerson] = {}
    households: list[Household] = []
    child_count = adult_count = 0
    while child_count < children:
        hid = f"H{len(households) + 1:07d}"
        size = min(rng.choices((1, 2, 3, 4), (35, 35, 20, 10))[0], children - child_count)
        family = rng.choice(FAMILY)
        adult_count += 1
        mother = SynthPerson(
            pid=f"A{adult_count:07d}",
            given=rng.choice(GIVEN_FEMALE),
            family=family,
            birth_date=REFERENCE_DATE - timedelta(days=_age_days(rng, 22, 48)),
            sex="female",
            household=hid,
            is_child=False,
        )
        everyone[mother.pid] = mother
        partner: SynthPerson | None = None
        if rng.random() < 0.6:
            adult_count += 1
            partner = SynthPerson(
                pid=f"A{adult_count:07d}",
                given=rng.choice(GIVEN_MALE),
                family=family if rng.random() < 0.5 else rng.choice(FAMILY),
                birth_date=REFERENCE_DATE - timedelta(days=_age_days(rng, 22, 55)),
                sex="male",
                household=hid,
                is_child=False,
            )
            everyone[partner.pid] = partner
        surname = family
        if partner and partner.family != family and "-" not in family and rng.random() < 0.25:
            surname = f"{family}-{partner.family}"
        home = Household(
            hid,
            places.new(),
            places.new() if rng.random() < 0.12 else None,
            mother.pid,
            partner.pid if partner else None,
            rng.random() < 0.7,
        )
        twins = size >= 2 and rng.random() < 0.06
        mother_age = (REFERENCE_DATE - mother.birth_date).days
        for n in range(size):
            child_count += 1
            sex = rng.choice(("female", "male"))
            names = GIVEN_FEMALE if sex == "female" else GIVEN_MALE
            twin = everyone[home.children[0]] if twins and n == 1 else None
            if twin is not None:
                born, given = twin.birth_date, _different_first_name(rng, names, twin.given)
            else:
                oldest = max(0, min(17 * 365, mother_age - 17 * 365))
                born = REFERENCE_DATE - timedelta(days=rng.randrange(0, oldest + 1))
                given = rng.choice(names)
                while any(everyone[c].given == given for c in home.children):
                    given = rng.choice(names)
            age = (REFERENCE_DATE - born).days // 365
            index = child_count - 1
            child = SynthPerson(
                pid=f"P{child_count:07d}",
                given=given,
                family=surname,
                birth_date=born,
                sex=sex,
                household=hid,
                is_child=True,
                nhs=valid_nhs_number(index) if index < _NHS_SEEDS else None,
                upn=valid_upn(index) if 4 <= age <= 16 else None,
                twin_of=twin.pid if twin else None,
            )
            if twin is not None:
                twin.twin_of = child.pid
            everyone[child.pid] = child
            home.children.append(child.pid)
        households.append(home)
    return Population(seed, everyone, households)
