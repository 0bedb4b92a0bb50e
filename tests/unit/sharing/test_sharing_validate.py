"""Validating rule packs: every problem with its place; the default pack and its schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts import AgencyKind
from hub.registry import AgencyRegistry
from hub.sharing import (
    RulePackInvalid,
    RuleProblem,
    load_pack,
    read_pack,
    rule_pack_json_schema,
    validate_pack,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_PACK = ROOT / "deploy" / "rules" / "northshire.yaml"
SCHEMA_FILE = ROOT / "deploy" / "rules" / "rule-pack.schema.json"
REGISTRY = {a.id: a.kind for a in AgencyRegistry.load().all()}

HEAD = 'version: "2025.2"\nauthor: Test IG\nreason: Testing.\n'
GOOD_RULE = """\
  - id: good-rule
    description: A rule.
    owner: Test IG
    reason: Testing.
    effective_from: 2025-04-01
    recipients: {agency_kinds: [childrens_services], roles: [social_worker]}
    purpose: safeguarding
    lawful_basis: public_task
    consent: not_required
"""

BROKEN = (
    HEAD
    + "colour: blue\n"
    + "rules:\n"
    + GOOD_RULE
    + """\
  - id: sexual-health
    description: Stricter sexual health.
    owner: Test IG
    reason: Testing.
    effective_from: 2025-04-01
    effective_to: 2025-03-01
    match:
      sensitivity_any: [sexual_health]
      sensitivity_none: [sexual_health, mental_helth]
      child_status: []
    recipients: {roles: [social_worker, head_teacher], agencies: [northshire-primary]}
    purpose: safeguarding
    lawful_basis: consent
    consent: required
    significant_harm_basis: safeguarding_sch1_para18
    obligations:
      remove_fields: [data.details, clinic.name]
      generalise: {data.details.code: Withheld.}
  - id: good-rule
    description: A second rule with the same id.
    owner: Test IG
    reason: Testing.
    effective_from: 2025-02-30
    recipients: {agency_kinds: [school]}
    purpose: safeguarding
    lawful_basis: public_task
    consent: not_required
    consent: required
    obligatons: {may_reshare: true}
"""
)


class TestProblemsWithPlaces:
    """Every problem is reported at once, each with file, line, rule and field path."""

    def test_every_problem_in_a_broken_pack(self) -> None:
        """Schema errors, duplicate keys and semantic problems, in file order."""
        got = validate_pack(BROKEN, "broken.yaml", agencies=REGISTRY)
        assert got == [
            RuleProblem(
                "broken.yaml:4 colour", "unknown key 'colour' (misspelt, or not allowed here)", 4
            ),
            RuleProblem(
                "broken.yaml:20 rules[1] (sexual-health).effective_to",
                "effective_to must be after effective_from",
                20,
            ),
            RuleProblem(
                "broken.yaml:23 rules[1] (sexual-health).match.sensitivity_none[1]",
                "unknown sensitivity tag 'mental_helth'; expected 'health', 'mental_health', "
                "'sexual_health', 'criminal_intelligence', 'domestic_abuse' or 'third_party'",
                23,
            ),
            RuleProblem(
                "broken.yaml:24 rules[1] (sexual-health).match.child_status",
                "an empty list matches nothing; leave the key out to match any",
                24,
            ),
            RuleProblem(
                "broken.yaml:25 rules[1] (sexual-health).recipients.roles[1]",
                "unknown role 'head_teacher'; expected 'social_worker', 'team_manager', "
                "'service_manager', 'duty_officer', 'designated_safeguarding_lead', "
                "'named_nurse', 'clinician', 'police_ppu', 'ig_officer' or 'agency_system'",
                25,
            ),
            RuleProblem(
                "broken.yaml:29 rules[1] (sexual-health).significant_harm_basis",
                "only a rule with consent required_unless_significant_harm shares on "
                "significant harm",
                29,
            ),
            RuleProblem(
                "broken.yaml:31 rules[1] (sexual-health).obligations.remove_fields[1]",
                "'clinic.name' is not a field of an event view; paths start with consent_ref, "
                "data, person, sensitivity, subject, summary",
                31,
            ),
            RuleProblem(
                "broken.yaml:32 rules[1] (sexual-health).obligations.generalise"
                "['data.details.code']",
                "'data.details.code' is also removed; a field is either removed or generalised",
                32,
            ),
            RuleProblem(
                "broken.yaml:33 rules[2] (good-rule).id",
                "rule id 'good-rule' is already used by rules[0]",
                33,
            ),
            RuleProblem(
                "broken.yaml:37 rules[2] (good-rule).effective_from",
                "Input should be a valid datetime or date, day value is outside expected range",
                37,
            ),
            RuleProblem(
                "broken.yaml:38 rules[2] (good-rule).recipients.agency_kinds[0]",
                "unknown agency kind 'school'; expected 'police', 'health', 'schools' or "
                "'childrens_services'",
                38,
            ),
            RuleProblem(
                "broken.yaml:42 rules[2] (good-rule).consent",
                "key 'consent' is given twice (the later one would win silently)",
                42,
            ),
            RuleProblem(
                "broken.yaml:43 rules[2] (good-rule).obligatons",
                "unknown key 'obligatons' (misspelt, or not allowed here)",
                43,
            ),
        ]

    def test_semantic_checks_on_a_part_that_is_valid(self) -> None:
        """Contradictory tags are found when the match block itself is valid."""
        text = (
            HEAD
            + "rules:\n"
            + GOOD_RULE
            + "    match: {sensitivity_any: [sexual_health], sensitivity_none: [sexual_health]}\n"
        )
        assert validate_pack(text, "pack.yaml") == [
            RuleProblem(
                "pack.yaml:14 rules[0] (good-rule).match",
                "sensitivity_any and sensitivity_none share tags: never matches",
                14,
            )
        ]

    def test_generalised_field_inside_another(self) -> None:
        """Generalising a field inside a generalised field is a contradiction."""
        text = (
            HEAD
            + "rules:\n"
            + GOOD_RULE
            + "    obligations: {generalise: {data: Withheld., data.summary: Seen.}}\n"
        )
        assert validate_pack(text, "pack.yaml") == [
            RuleProblem(
                "pack.yaml:14 rules[0] (good-rule).obligations.generalise['data.summary']",
                "'data.summary' lies inside another generalised field",
                14,
            )
        ]

    def test_missing_fields_and_unregistered_agencies(self) -> None:
        """A missing required field and an agency outside the registry or its kind."""
        text = (
            HEAD
            + "rules:\n"
            + GOOD_RULE.replace("    purpose: safeguarding\n", "").replace(
                "{agency_kinds: [childrens_services], roles: [social_worker]}",
                "{agency_kinds: [childrens_services], agencies: [northshire-primary, nowhere]}",
            )
        )
        assert validate_pack(text, "pack.yaml", agencies=REGISTRY) == [
            RuleProblem("pack.yaml:5 rules[0] (good-rule).purpose", "purpose is required", 5),
            RuleProblem(
                "pack.yaml:10 rules[0] (good-rule).recipients.agencies[0]",
                "agency 'northshire-primary' is a schools agency, outside the agency kinds this "
                "rule names, so it can never match",
                10,
            ),
            RuleProblem(
                "pack.yaml:10 rules[0] (good-rule).recipients.agencies[1]",
                "agency 'nowhere' is not in the agency registry",
                10,
            ),
        ]

    def test_json_pack(self) -> None:
        """A JSON pack is checked alike, with line numbers."""
        data = {
            "version": "2025.2",
            "author": "Test IG",
            "reason": "Testing.",
            "rules": [{"id": "x"}],
        }
        got = validate_pack(json.dumps(data, indent=1), "pack.json")
        required = ("description", "owner", "reason", "effective_from", "recipients")
        required += ("purpose", "lawful_basis", "consent")
        assert [(p.location, p.message) for p in got] == [
            *((f"pack.json:6 rules[0] (x).{f}", f"{f} is required") for f in required),
            (
                "pack.json:7 rules[0] (x).id",
                "a rule id is 2-64 lower-case letters, digits and hyphens",
            ),
        ]

    @pytest.mark.parametrize(
        ("text", "filename", "expected"),
        [
            (
                "rules: [",
                "bad.yaml",
                RuleProblem(
                    "bad.yaml:1",
                    "not valid YAML: expected the node content, but found '<stream end>'",
                    1,
                ),
            ),
            (
                '{"rules": ',
                "bad.json",
                RuleProblem("bad.json:1", "not valid JSON: Expecting value", 1),
            ),
            (
                "- a list\n",
                "list.yaml",
                RuleProblem(
                    "list.yaml:1",
                    "a rule pack is a mapping with version, author, reason and rules",
                    1,
                ),
            ),
        ],
    )
    def test_unreadable(self, text: str, filename: str, expected: RuleProblem) -> None:
        """Text that is not a mapping at all gives one problem with its line."""
        assert validate_pack(text, filename) == [expected]

    def test_load_raises_with_every_problem(self) -> None:
        """load_pack refuses a broken pack and carries the same problems."""
        with pytest.raises(RulePackInvalid) as caught:
            load_pack(BROKEN, "broken.yaml", agencies=REGISTRY)
        assert caught.value.problems == validate_pack(BROKEN, "broken.yaml", agencies=REGISTRY)
        assert str(caught.value).startswith("13 problem(s) in rule pack: broken.yaml:4 colour: ")

    def test_unreadable_file(self, tmp_path: Path) -> None:
        """A missing file is a problem with the file's place, not a traceback."""
        with pytest.raises(RulePackInvalid) as caught:
            read_pack(tmp_path / "absent.yaml")
        [problem] = caught.value.problems
        assert (problem.location, problem.message.split(":")[0]) == (
            str(tmp_path / "absent.yaml"),
            "cannot be read",
        )


class TestDefaultPack:
    """The Northshire pack in deploy/rules validates and its schema file is current."""

    def test_validates_against_the_registry(self) -> None:
        """No problem, thirteen rules, each citing a lawful basis."""
        text = DEFAULT_PACK.read_text("utf-8")
        assert validate_pack(text, DEFAULT_PACK.name, agencies=REGISTRY) == []
        rules = read_pack(DEFAULT_PACK, agencies=REGISTRY)
        assert (rules.version, len(rules.rules)) == ("2025.1", 13)
        assert all(r.lawful_basis for r in rules.rules)
        assert {k for r in rules.rules for k in (r.recipients.agency_kinds or ())} == set(
            AgencyKind
        )

    def test_schema_file_is_current(self) -> None:
        """deploy/rules/rule-pack.schema.json equals the exported schema (re-export if not)."""
        exported = json.loads(SCHEMA_FILE.read_text("utf-8"))
        assert exported == rule_pack_json_schema()
        assert exported["$id"] == "urn:safeguarding-hub:schema:rule-pack:v1"
