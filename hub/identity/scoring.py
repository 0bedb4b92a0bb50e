"""Fellegi-Sunter scoring: match weight = sum of log2(m/u) over comparison levels, then a band.

``m`` is the chance a level is seen when two records are the same person, ``u`` when they are
not. The probabilities are data (``hub/identity/data/model.json``, estimated from ``hub synth``
truth with ``estimate``), so they can be re-estimated from reviewed local data without a
release. A ``missing`` level is no evidence (weight 0). Pure functions.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from typing import Any

__all__ = [
    "Band",
    "LevelWeight",
    "MatchModel",
    "Score",
    "Thresholds",
    "band_for",
    "default_model",
    "estimate",
    "score_levels",
]


_FAMILY_AGREES = frozenset({"exact", "partial", "close"})
_DATE_AGREES = frozenset({"exact", "transposed"})


class Band(StrEnum):
    """What to do with a candidate: link it, queue it for a person to decide, or leave it."""

    link = "link"
    possible_match = "possible_match"
    no_match = "no_match"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Match weights at or above ``link`` link automatically; at or above ``review`` are queued.

    ``sibling_guard``: when given names are ``different`` while family name (exact, partial or
    close) and birth date (exact or day/month swapped) agree, the pair is the signature of
    twins, not of one person: it is never linked and not queued (no match).
    """

    link: float = 16.0
    review: float = 6.0
    sibling_guard: bool = True

    def __post_init__(self) -> None:
        if self.review > self.link:
            raise ValueError("the review threshold must not be above the link threshold")


@dataclass(frozen=True, slots=True)
class LevelWeight:
    """One comparison's level and the weight it contributed."""

    comparison: str
    level: str
    weight: float


@dataclass(frozen=True, slots=True)
class Score:
    """A pair's match weight and its breakdown by comparison."""

    weight: float
    breakdown: tuple[LevelWeight, ...]

    def level(self, comparison: str) -> str | None:
        """The level of one comparison in this score."""
        for b in self.breakdown:  # a loop, not next(genexpr): band_for asks four times a pair
            if b.comparison == comparison:
                return b.level
        return None


@dataclass(frozen=True, slots=True)
class MatchModel:
    """m and u per comparison level, and the banding thresholds."""

    probabilities: Mapping[str, Mapping[str, tuple[float, float]]]
    thresholds: Thresholds = field(default_factory=Thresholds)
    _weights: dict[str, dict[str, float]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for comparison, levels in self.probabilities.items():
            for level, (m, u) in levels.items():
                if not (0 < m <= 1 and 0 < u <= 1):
                    raise ValueError(f"{comparison}.{level}: m and u must be in (0, 1]")
        weights = {
            c: {lvl: math.log2(m / u) for lvl, (m, u) in levels.items()}
            for c, levels in self.probabilities.items()
        }
        object.__setattr__(self, "_weights", weights)

    def weight(self, comparison: str, level: str) -> float:
        """log2(m/u) of a level; 0 for ``missing`` or a level the model does not know."""
        return self._weights.get(comparison, {}).get(level, 0.0)

    def to_json(self) -> dict[str, Any]:
        """The model as the JSON shape of ``data/model.json``."""
        return {
            "comparisons": {
                c: {lvl: {"m": m, "u": u} for lvl, (m, u) in levels.items()}
                for c, levels in self.probabilities.items()
            },
            "thresholds": {
                "link": self.thresholds.link,
                "review": self.thresholds.review,
                "sibling_guard": self.thresholds.sibling_guard,
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MatchModel:
        """Read a model from the JSON shape of ``data/model.json``."""
        probabilities = {
            c: {lvl: (float(v["m"]), float(v["u"])) for lvl, v in levels.items()}
            for c, levels in data["comparisons"].items()
        }
        return cls(probabilities, Thresholds(**data.get("thresholds", {})))


def default_model() -> MatchModel:
    """The shipped model (``hub/identity/data/model.json``)."""
    text = resources.files("hub.identity").joinpath("data/model.json").read_text("utf-8")
    return MatchModel.from_json(json.loads(text))


def score_levels(levels: Mapping[str, str], model: MatchModel) -> Score:
    """Sum the weights of a pair's comparison levels."""
    breakdown = tuple(LevelWeight(c, lvl, model.weight(c, lvl)) for c, lvl in levels.items())
    return Score(sum(b.weight for b in breakdown), breakdown)


def band_for(score: Score, thresholds: Thresholds) -> Band:
    """The band of a score; the sibling guard and a differing NHS number never link."""
    if score.level("nhs") == "different":
        return Band.no_match
    if (
        thresholds.sibling_guard
        and score.level("given") == "different"
        and score.level("family") in _FAMILY_AGREES
        and score.level("birth_date") in _DATE_AGREES
    ):
        return Band.no_match
    if score.weight >= thresholds.link:
        return Band.link
    if score.weight >= thresholds.review:
        return Band.possible_match
    return Band.no_match


def estimate(
    matches: Iterable[Mapping[str, str]],
    non_matches: Iterable[Mapping[str, str]],
    *,
    thresholds: Thresholds | None = None,
    smoothing: float = 1.0,
) -> MatchModel:
    """Estimate m from labelled true pairs and u from random non-matching pairs.

    Counts each comparison's levels (``missing`` excluded) with additive smoothing, so a level
    never seen on one side still gets a finite weight.
    """
    m_counts: dict[str, Counter[str]] = {}
    u_counts: dict[str, Counter[str]] = {}
    for pairs, counts in ((matches, m_counts), (non_matches, u_counts)):
        for levels in pairs:
            for comparison, level in levels.items():
                if level != "missing":
                    counts.setdefault(comparison, Counter())[level] += 1
    probabilities: dict[str, dict[str, tuple[float, float]]] = {}
    for comparison in sorted(set(m_counts) | set(u_counts)):
        m_c, u_c = m_counts.get(comparison, Counter()), u_counts.get(comparison, Counter())
        levels = sorted(set(m_c) | set(u_c))
        m_total = sum(m_c.values()) + smoothing * len(levels)
        u_total = sum(u_c.values()) + smoothing * len(levels)
        probabilities[comparison] = {
            lvl: ((m_c[lvl] + smoothing) / m_total, (u_c[lvl] + smoothing) / u_total)
            for lvl in levels
        }
    return MatchModel(probabilities, thresholds or Thresholds())
