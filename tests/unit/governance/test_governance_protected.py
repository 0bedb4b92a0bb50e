"""Protected people: no location-bearing key survives a strip, for any view, at any depth."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from contracts.examples import example_envelope
from hub.governance.protected import LOCATION_KEYS, LocationPolicy, strip_location

pytestmark = pytest.mark.unit

SEED = 20250602
CASES = 500
HARMLESS = ["summary", "event_id", "data", "person", "name", "items", "risk_level", "related"]


def _keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [k for k, v in value.items() for k in [k, *_keys(v)]]
    if isinstance(value, list):
        return [k for v in value for k in _keys(v)]
    return []


def _random_view(rng: random.Random, depth: int = 0) -> Any:
    if depth > 3 or rng.random() < 0.3:
        return rng.choice(["text", 1, None, True])
    if rng.random() < 0.3:
        return [_random_view(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    keys = rng.sample(HARMLESS, 3) + rng.sample(sorted(LOCATION_KEYS), 2)
    return {(k.upper() if rng.random() < 0.2 else k): _random_view(rng, depth + 1) for k in keys}


class TestStripLocation:
    """Every location-bearing key goes, at any depth and in any case; the rest stays."""

    def test_an_envelope_loses_address_postcode_and_location(self):
        view = example_envelope(type="contact.recorded")
        stripped = strip_location(view)
        assert "address" not in stripped["person"]
        assert "location" not in stripped["data"]
        assert stripped["person"]["name"] == view["person"]["name"]
        assert stripped["data"]["summary"] == view["data"]["summary"]
        assert view["person"]["address"]["postcode"] == "ZZ99 3ZZ"  # input untouched

    def test_extra_configured_paths(self):
        view = {"data": {"placement": {"setting": "Refuge B", "kind": "refuge"}}}
        assert strip_location(view, ["data.placement.setting"]) == {
            "data": {"placement": {"kind": "refuge"}}
        }

    def test_property_no_location_key_survives(self):
        """500 seeded random views: no location key is kept; every other key at the first level
        stays, and nothing that was not there appears."""
        rng = random.Random(SEED)
        for _ in range(CASES):
            view = {"person": _random_view(rng), "data": _random_view(rng)}
            stripped = strip_location(view)
            kept = _keys(stripped)
            assert not [k for k in kept if k.lower() in LOCATION_KEYS]
            expected = [k for k in _keys(view) if k.lower() not in LOCATION_KEYS]
            assert not Counter(kept) - Counter(expected)
            for part in ("person", "data"):
                if isinstance(view[part], dict):
                    assert set(stripped[part]) == {
                        k for k in view[part] if k.lower() not in LOCATION_KEYS
                    }


class TestLocationPolicy:
    """Named roles see everything; anyone else gets the stripped view, flagged for audit."""

    POLICY = LocationPolicy(roles=frozenset({"police_ppu"}))

    def test_a_named_role_sees_the_address(self):
        view = example_envelope()
        assert self.POLICY.apply(view, "police_ppu") == (view, False)

    def test_another_role_is_stripped_and_flagged(self):
        view = example_envelope()
        shown, withheld = self.POLICY.apply(view, "designated_safeguarding_lead")
        assert (shown, withheld) == (strip_location(view), True)

    def test_nothing_to_withhold_is_not_flagged(self):
        view = {"summary": "Attended school."}
        assert self.POLICY.apply(view, "clinician") == (view, False)
