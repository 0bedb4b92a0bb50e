"""Fellegi-Sunter weights, bands and estimation."""

from __future__ import annotations

import math

import pytest

from hub.identity.scoring import (
    Band,
    LevelWeight,
    MatchModel,
    Score,
    Thresholds,
    band_for,
    default_model,
    estimate,
    score_levels,
)

pytestmark = pytest.mark.unit

MODEL = MatchModel(
    {
        "given": {"exact": (0.9, 0.01), "different": (0.01, 0.9)},
        "family": {"exact": (0.9, 0.01), "different": (0.01, 0.9)},
        "birth_date": {"exact": (0.9, 0.001), "different": (0.01, 0.9)},
    },
    Thresholds(link=20.0, review=5.0),
)


def levels(given: str, family: str, birth_date: str) -> dict[str, str]:
    return {"given": given, "family": family, "birth_date": birth_date}


class TestWeights:
    """The match weight is the sum of log2(m/u); missing is no evidence."""

    def test_sum_of_log_ratios(self) -> None:
        """Each level contributes log2(m/u) and the breakdown lists them in order."""
        score = score_levels(levels("exact", "missing", "exact"), MODEL)
        assert score == Score(
            weight=math.log2(90) + math.log2(900),
            breakdown=(
                LevelWeight("given", "exact", math.log2(90)),
                LevelWeight("family", "missing", 0.0),
                LevelWeight("birth_date", "exact", math.log2(900)),
            ),
        )

    def test_probabilities_must_be_probabilities(self) -> None:
        """An m or u outside (0, 1] is refused with the level named."""
        with pytest.raises(ValueError, match=r"given\.exact: m and u must be in \(0, 1\]"):
            MatchModel({"given": {"exact": (0.0, 0.1)}})

    def test_thresholds_in_order(self) -> None:
        """A review threshold above the link threshold is refused."""
        with pytest.raises(ValueError, match="must not be above"):
            Thresholds(link=5, review=10)

    def test_default_model_round_trips_json(self) -> None:
        """The shipped model reads and writes the same JSON shape."""
        model = default_model()
        assert MatchModel.from_json(model.to_json()) == model


class TestBands:
    """Three bands by threshold, with the sibling guard and NHS veto."""

    @pytest.mark.parametrize(
        ("lv", "band"),
        [
            (levels("exact", "exact", "exact"), Band.link),
            (levels("exact", "missing", "exact"), Band.possible_match),
            (levels("missing", "missing", "exact"), Band.possible_match),
            (levels("exact", "exact", "different"), Band.possible_match),
            (levels("exact", "missing", "missing"), Band.possible_match),
            (levels("missing", "exact", "missing"), Band.possible_match),
            (levels("different", "different", "exact"), Band.no_match),
            (levels("missing", "missing", "missing"), Band.no_match),
        ],
    )
    def test_band_table(self, lv: dict[str, str], band: Band) -> None:
        """Weights at or above 20 link, at or above 5 are queued, the rest do not match."""
        assert band_for(score_levels(lv, MODEL), MODEL.thresholds) is band

    def test_sibling_guard(self) -> None:
        """Different given names with family and birth date agreeing never link (twins)."""
        twin = Score(
            99.0,
            (
                LevelWeight("given", "different", -5),
                LevelWeight("family", "exact", 9),
                LevelWeight("birth_date", "exact", 9),
            ),
        )
        assert band_for(twin, Thresholds()) is Band.no_match
        assert band_for(twin, Thresholds(sibling_guard=False)) is Band.link

    def test_different_nhs_numbers_never_match(self) -> None:
        """Two different valid NHS numbers are two people, whatever else agrees."""
        score = Score(99.0, (LevelWeight("nhs", "different", -16),))
        assert band_for(score, Thresholds()) is Band.no_match


class TestEstimate:
    """m and u are estimated from labelled pairs with smoothing."""

    def test_estimate_counts_levels(self) -> None:
        """m from true pairs and u from non-matches; missing is not counted."""
        model = estimate(
            [{"given": "exact"}, {"given": "exact"}, {"given": "missing"}],
            [{"given": "different"}, {"given": "exact"}],
            smoothing=1.0,
        )
        assert model.probabilities == {
            "given": {"different": (1 / 4, 2 / 4), "exact": (3 / 4, 2 / 4)}
        }
