"""Name normalisation for matching: case, accents, punctuation, hyphens and known nicknames."""

from __future__ import annotations

import csv
import re
import unicodedata
from functools import cache
from importlib import resources

__all__ = ["alias_groups", "given_forms", "load_aliases", "name_tokens", "normalise_name"]

_NON_LETTERS = re.compile(r"[^a-z]+")
_JOINERS = str.maketrans("", "", "'\u2019`.")  # apostrophes and full stops join


def normalise_name(text: str | None) -> str:
    """Return a name lower-cased, without accents or punctuation; hyphens become spaces.

    ``"O'Brien-Ñúñez"`` -> ``"obrien nunez"``. Apostrophes and full stops join (O'Brien,
    St. John); every other non-letter separates tokens.
    """
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    folded = plain.casefold().translate(_JOINERS)
    return " ".join(_NON_LETTERS.sub(" ", folded).split())


def name_tokens(text: str | None) -> tuple[str, ...]:
    """Return the normalised tokens of a name (``"Smith-Jones"`` -> ``("smith", "jones")``)."""
    return tuple(normalise_name(text).split())


@cache
def load_aliases() -> dict[str, frozenset[str]]:
    """Read the curated nickname table: each name to the formal names it can stand for.

    A formal name stands for itself; the file is ``hub/identity/data/nicknames.csv``.
    """
    table: dict[str, set[str]] = {}
    text = resources.files("hub.identity").joinpath("data/nicknames.csv").read_text("utf-8")
    rows = csv.reader(line for line in text.splitlines() if not line.startswith("#"))
    for row in rows:
        if len(row) != 2 or row[0] == "formal":
            continue
        formal = normalise_name(row[0])
        table.setdefault(formal, set()).add(formal)
        for alias in row[1].split():
            table.setdefault(normalise_name(alias), set()).add(formal)
    return {name: frozenset(groups) for name, groups in table.items()}


def alias_groups(token: str) -> frozenset[str]:
    """Return the formal names a given-name token can stand for (itself when not in the table)."""
    return load_aliases().get(token, frozenset({token}))


def given_forms(token: str) -> frozenset[str]:
    """Return the token and every formal name it may be short for (``jay`` -> jay, jayden)."""
    return alias_groups(token) | {token}
