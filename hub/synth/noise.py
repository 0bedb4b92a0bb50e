"""Data-quality problems real agency feeds have, applied deterministically from a seeded RNG."""

from __future__ import annotations

import random
from datetime import date

from hub.identity.names import load_aliases

__all__ = ["misspell", "nickname_for", "swap_day_month"]

_VOWELS = "aeiou"
_SOUNDS = (("ph", "f"), ("y", "i"), ("th", "t"), ("ie", "y"), ("ck", "k"), ("ay", "ai"))


def misspell(name: str, rng: random.Random) -> str:
    """Return ``name`` with one plausible typing or hearing error."""
    if len(name) < 4:
        return name + name[-1]
    lower = name.lower()
    for a, b in rng.sample(_SOUNDS, len(_SOUNDS)):
        if a in lower[1:] and rng.random() < 0.5:
            i = lower.index(a, 1)
            return name[:i] + b + name[i + len(a) :]
    i = rng.randrange(1, len(name) - 1)
    kind = rng.randrange(4)
    if kind == 0:  # dropped letter
        return name[:i] + name[i + 1 :]
    if kind == 1:  # doubled letter
        return name[:i] + name[i] + name[i:]
    if kind == 2:  # adjacent letters swapped
        return name[:i] + name[i + 1] + name[i] + name[i + 2 :]
    vowel = rng.choice([v for v in _VOWELS if v != name[i].lower()])
    return name[:i] + (vowel if name[i].lower() in _VOWELS else name[i]) + name[i + 1 :]


def nickname_for(given: str, rng: random.Random) -> str | None:
    """A nickname from the curated table for a formal given name, or None if it has none."""
    formal = given.lower()
    options = sorted(n for n, groups in load_aliases().items() if formal in groups and n != formal)
    return rng.choice(options).capitalize() if options else None


def swap_day_month(day: date) -> date:
    """The date with day and month swapped (unchanged when the swap is not a date)."""
    if day.day > 12 or day.day == day.month:
        return day
    return date(day.year, day.day, day.month)
