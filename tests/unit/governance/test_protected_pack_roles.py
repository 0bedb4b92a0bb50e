"""The rule pack names who still sees a protected person's location; config is the fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.domain.roles import Role
from hub.governance.protected import LocationPolicy
from hub.sharing import RuleProblem, load_pack, read_pack, validate_pack

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
HEAD = 'version: "t.1"\nauthor: Test IG\nreason: Testing.\n'
CONFIG = LocationPolicy(roles=frozenset({"named_nurse"}), extra_paths=("data.where",))


def pack_text(roles: str | None) -> str:
    return HEAD + ("" if roles is None else f"protected_location_roles: {roles}\n") + "rules: []\n"


class TestParsing:
    """protected_location_roles is checked with a place IG staff can find."""

    def test_northshire_names_three_roles(self) -> None:
        """The default pack: the social worker, their team manager, the police PPU."""
        pack = read_pack(ROOT / "deploy" / "rules" / "northshire.yaml")
        assert pack.protected_location_roles == (
            Role.social_worker, Role.team_manager, Role.police_ppu,
        )  # fmt: skip

    @pytest.mark.parametrize(
        ("roles", "problem"),
        [
            ("[social_worker, police_pu]", RuleProblem(
                "p.yaml:4 protected_location_roles[1]",
                "unknown role 'police_pu'; expected one of social_worker, team_manager, "
                "service_manager, duty_officer, designated_safeguarding_lead, named_nurse, "
                "clinician, police_ppu, ig_officer", 4)),
            ("[agency_system]", RuleProblem(
                "p.yaml:4 protected_location_roles[0]",
                "agency_system is a partner system, not a person: a protected location is "
                "never released to a system", 4)),
            ("[team_manager, team_manager]", RuleProblem(
                "p.yaml:4 protected_location_roles", "team_manager is named more than once", 4)),
            ("social_worker", RuleProblem(
                "p.yaml:4 protected_location_roles", "Input should be a valid tuple", 4)),
        ],
    )  # fmt: skip
    def test_bad_roles_are_reported_with_their_place(self, roles: str, problem) -> None:
        """An unknown role, a system, a repeat or a bare word: one problem, file:line and path."""
        assert validate_pack(pack_text(roles), "p.yaml") == [problem]

    @pytest.mark.parametrize("roles", [None, "[]", "[police_ppu]"])
    def test_valid_forms(self, roles: str | None) -> None:
        """Omitted, empty and named are all valid."""
        assert validate_pack(pack_text(roles), "p.yaml") == []

    def test_published_schema_lists_people_only(self) -> None:
        """The JSON Schema editors use offers every person's role and not agency_system."""
        schema = json.loads((ROOT / "deploy" / "rules" / "rule-pack.schema.json").read_text())
        [array, _null] = schema["properties"]["protected_location_roles"]["anyOf"]
        assert array["items"]["enum"] == [r.value for r in Role if r is not Role.agency_system]


class TestPolicyForPack:
    """The pack's roles win; the configured roles apply only when the pack names none."""

    def _policy(self, roles: str | None) -> LocationPolicy:
        return CONFIG.for_pack(load_pack(pack_text(roles), "p.yaml"))

    def test_pack_naming_none_falls_back_to_config(self) -> None:
        """No protected_location_roles key: the configured policy, unchanged."""
        assert self._policy(None) is CONFIG

    def test_pack_roles_replace_config_roles(self) -> None:
        """Named roles replace the configured ones; the extra paths stay."""
        assert self._policy("[police_ppu]") == LocationPolicy(
            roles=frozenset({"police_ppu"}), extra_paths=("data.where",)
        )

    def test_empty_list_means_nobody(self) -> None:
        """[]: every role gets views without location."""
        policy = self._policy("[]")
        view = {"data": {"address": "1 Example Street", "where": "x", "kept": 1}}
        assert policy.apply(view, "social_worker") == ({"data": {"kept": 1}}, True)
