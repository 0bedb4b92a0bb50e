"""Alert rule files: the shipped defaults, and errors that say where a file is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hub.alerts.rules import (
    AccumulatingConcernsRule,
    DataFileError,
    RecipientSelector,
    load_rules,
    parse_rules,
)

from .conftest import RULES_FILE

pytestmark = pytest.mark.unit


def with_rule(**changes: object) -> str:
    """The shipped file's text with the accumulating-concerns rule changed."""
    raw = yaml.safe_load(RULES_FILE.read_text())
    raw["rules"][2].update(changes)
    return yaml.safe_dump(raw, sort_keys=False)


class TestShippedRules:
    """deploy/alerts/northshire.yaml holds the four rules of the issue."""

    def test_the_four_rules_and_their_defaults(self, rules):
        """Ids, kinds, recipients and the accumulating-concerns defaults 3 / 2 / 30."""
        assert [(r.id, r.kind, r.recipients) for r in rules.enabled] == [
            (
                "unscheduled_care_with_plan",
                "unscheduled_care_with_plan",
                (RecipientSelector.lead_practitioner, RecipientSelector.duty_team),
            ),
            (
                "domestic_abuse_to_school",
                "domestic_abuse_to_school",
                (RecipientSelector.school_dsl,),
            ),
            ("accumulating_concerns", "accumulating_concerns", (RecipientSelector.front_door,)),
            (
                "missing_episodes",
                "missing_episodes",
                (RecipientSelector.lead_practitioner, RecipientSelector.duty_team),
            ),
        ]
        acc = rules.get("accumulating_concerns")
        assert isinstance(acc, AccumulatingConcernsRule)
        assert (acc.min_concerns, acc.min_agencies, acc.within_days) == (3, 2, 30)

    def test_a_disabled_rule_is_not_in_force(self):
        """``enabled: false`` keeps the rule in the file but out of evaluation."""
        rules = parse_rules(with_rule(enabled=False))
        assert "accumulating_concerns" not in [r.id for r in rules.enabled]


class TestRuleFileErrors:
    """Every problem names the file, the field path and the line."""

    def test_a_bad_threshold(self):
        """The path skips the union tag and points at the rule's line."""
        text = with_rule(min_agencies=0)
        line = text.splitlines().index("  min_agencies: 0") + 1
        with pytest.raises(DataFileError) as caught:
            parse_rules(text, "northshire.yaml")
        assert str(caught.value) == (
            f"northshire.yaml: rules[2].min_agencies (line {line}): "
            "Input should be greater than or equal to 1"
        )

    def test_more_agencies_than_concerns(self):
        """A rule that can never fire is refused."""
        with pytest.raises(DataFileError, match=r"rules\[2\] \(line \d+\): .*cannot exceed"):
            parse_rules(with_rule(min_agencies=4), "r.yaml")

    def test_an_unknown_kind(self):
        """The kinds the engine knows are listed."""
        with pytest.raises(DataFileError, match=r"rules\[2\] \(line \d+\): Input tag 'gut_feel"):
            parse_rules(with_rule(kind="gut_feeling"), "r.yaml")

    def test_an_unknown_field(self):
        """A misspelt parameter is not silently ignored."""
        with pytest.raises(DataFileError, match=r"rules\[2\]\.min_concern \(line \d+\): Extra"):
            parse_rules(with_rule(min_concern=4), "r.yaml")

    def test_a_duplicate_rule_id(self):
        """Rule ids are unique within a version."""
        with pytest.raises(DataFileError, match="rule id 'unscheduled_care_with_plan' is used"):
            parse_rules(with_rule(id="unscheduled_care_with_plan"), "r.yaml")

    def test_a_missing_file(self, tmp_path: Path):
        """The path and the reason."""
        with pytest.raises(DataFileError, match=r"cannot read .*nope\.yaml: No such file"):
            load_rules(tmp_path / "nope.yaml")

    def test_not_a_mapping(self):
        """A list at the top level is refused as such."""
        with pytest.raises(DataFileError, match=r"^r\.yaml: must be a mapping"):
            parse_rules("- 1\n", "r.yaml")
