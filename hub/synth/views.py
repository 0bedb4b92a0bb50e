"""How one agency records an invented person: the truth with that agency's data-quality problems."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date

from hub.synth.noise import misspell, nickname_for, swap_day_month
from hub.synth.population import REFERENCE_DATE, Household, Place, SynthPerson

__all__ = ["NOISE", "Noise", "View", "view_of"]


@dataclass(frozen=True, slots=True)
class Noise:
    """How often an agency gets each thing wrong (probabilities per record)."""

    typo: float = 0.0
    nickname: float = 0.0
    swap: float = 0.0
    one_surname: float = 0.0
    old_address: float = 0.0
    no_nhs: float = 0.0
    no_upn: float = 0.0
    no_address: float = 0.0


NOISE: dict[str, Noise] = {
    "health": Noise(
        typo=0.02, nickname=0.03, swap=0.01, one_surname=0.05, old_address=0.5, no_nhs=0.05
    ),
    "ctf": Noise(typo=0.01, swap=0.01, one_surname=0.02, old_address=0.2),
    "concerns": Noise(typo=0.04, nickname=0.2, swap=0.03, one_surname=0.2, no_upn=0.3),
    "police": Noise(
        typo=0.15, nickname=0.1, swap=0.05, one_surname=0.5, old_address=0.3, no_address=0.15
    ),
    "cin": Noise(swap=0.01, no_upn=0.08),
}
"""Per-agency noise: police type names from what they hear; schools copy from forms."""


@dataclass(frozen=True, slots=True)
class View:
    """What one agency holds for a person."""

    given: str
    family: str
    preferred: str | None
    birth_date: date
    sex: str
    nhs: str | None
    upn: str | None
    place: Place | None


def _family(name: str, noise: Noise, rng: random.Random) -> str:
    if "-" in name and rng.random() < noise.one_surname:
        parts = name.split("-")
        return rng.choice([parts[0], parts[1], " ".join(parts)])
    if rng.random() < noise.typo:
        return misspell(name, rng)
    return name


def view_of(person: SynthPerson, home: Household, noise: Noise, rng: random.Random) -> View:
    """Render ``person`` as an agency with ``noise`` would record them (deterministic per rng)."""
    given = person.given
    preferred = None
    if rng.random() < noise.nickname and (nick := nickname_for(given, rng)):
        preferred = nick
    if rng.random() < noise.typo:
        given = misspell(given, rng)
    born = person.birth_date
    if rng.random() < noise.swap and swap_day_month(born) <= REFERENCE_DATE:
        born = swap_day_month(born)  # a swap into the future is refused by the contract
    place: Place | None = home.address
    if home.previous is not None and rng.random() < noise.old_address:
        place = home.previous
    if rng.random() < noise.no_address:
        place = None
    return View(
        given=given,
        family=_family(person.family, noise, rng),
        preferred=preferred,
        birth_date=born,
        sex=person.sex,
        nhs=None if rng.random() < noise.no_nhs else person.nhs,
        upn=None if rng.random() < noise.no_upn else person.upn,
        place=place,
    )
