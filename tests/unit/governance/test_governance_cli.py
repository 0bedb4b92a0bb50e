"""``hub rules`` and ``hub audit`` commands against a SQLite store under HUB_DATA_DIR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hub.governance.cli import audit_app, rules_app

pytestmark = pytest.mark.unit

NORTHSHIRE = Path(__file__).resolve().parents[3] / "deploy" / "rules" / "northshire.yaml"

app = typer.Typer()
app.add_typer(rules_app, name="rules")
app.add_typer(audit_app, name="audit")


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    monkeypatch.setenv("HUB_LOG_LEVEL", "WARNING")
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    return invoke


@pytest.fixture
def packs(tmp_path: Path) -> dict[str, Path]:
    text = NORTHSHIRE.read_text()
    made = {
        "new": text.replace('version: "2025.1"', 'version: "2025.2"'),
        "bad": text.replace("purpose: safeguarding", "purpose: gossip", 1),
    }
    for name, body in made.items():
        (tmp_path / f"{name}.yaml").write_text(body)
    return {name: tmp_path / f"{name}.yaml" for name in made}


class TestRulesCommands:
    """validate, diff, dry-run, apply and history as IG staff use them."""

    def test_validate(self, run, packs):
        assert run("rules", "validate", str(NORTHSHIRE)).stdout == "northshire.yaml: valid\n"
        bad = run("rules", "validate", str(packs["bad"]))
        assert bad.exit_code == 1
        assert bad.stdout.startswith("bad.yaml:25 rules[0] (own-agency-records).purpose: ")

    def test_apply_history_diff_dry_run_and_the_audit(self, run, packs):
        applied = run(
            "rules", "apply", str(packs["new"]), "--author", "ivy.ig", "--reason", "Review."
        )
        assert applied.exit_code == 0, applied.output
        assert json.loads(applied.stdout)["number"] == 2
        history = json.loads(run("rules", "history").stdout)
        assert [(v["number"], v["version"], v["author"]) for v in history] == [
            (2, "2025.2", "ivy.ig"),
            (1, "2025.1", "Northshire Information Governance Team"),
        ]
        diff = json.loads(run("rules", "diff", str(NORTHSHIRE)).stdout)
        assert (diff["old_version"], diff["new_version"]) == ("2025.2", "2025.1")
        dry = json.loads(run("rules", "dry-run", str(NORTHSHIRE), "--days", "7").stdout)
        assert (dry["examined"], dry["added"], dry["removed"]) == (0, [], [])
        again = run("rules", "apply", str(packs["new"]), "--author", "x", "--reason", "y")
        assert again.exit_code == 2
        verify = run("audit", "verify")
        assert (verify.exit_code, json.loads(verify.stdout)["records"]) == (0, 2)
        found = json.loads(run("audit", "search", "--who", "ivy.ig").stdout)
        assert [r["action"] for r in found["records"]] == ["rules.applied"]

    def test_an_unreadable_file(self, run, tmp_path):
        result = run("rules", "validate", str(tmp_path / "missing.yaml"))
        assert result.exit_code == 2
