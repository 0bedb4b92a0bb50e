"""The synthetic population: deterministic, realistic, and readable by every adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.identity.names import alias_groups, normalise_name
from hub.synth import generate, record_key, write
from hub.synth.cli import synth_app
from hub.synth.load import parse_files
from hub.synth.noise import misspell, nickname_for, swap_day_month

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def synthetic():  # type: ignore[no-untyped-def]
    return generate(600, 11)


class TestDeterminism:
    """The same seed gives byte-identical files."""

    def test_same_seed_same_files(self, synthetic) -> None:  # type: ignore[no-untyped-def]
        """Generating again with the same arguments reproduces every file and the truth."""
        again = generate(600, 11)
        assert again.files == synthetic.files
        assert again.truth_json() == synthetic.truth_json()

    def test_other_seed_other_files(self, synthetic) -> None:  # type: ignore[no-untyped-def]
        """A different seed gives a different population."""
        assert generate(600, 12).files != synthetic.files

    def test_every_kind_is_written(self, synthetic) -> None:  # type: ignore[no-untyped-def]
        """Health, schools (CTF and concerns), police (CSV and JSON) and CIN files exist."""
        assert sorted(synthetic.files) == [
            "childrens_services/cin_census.xml",
            "health/attendances_0001.json",
            "police/ppn_notices.csv",
            "police/ppn_notices.json",
            "schools/ctf_0001.xml",
            "schools/safeguarding_concerns.csv",
        ]

    def test_cli_writes_files_and_truth(self, tmp_path: Path) -> None:
        """``hub synth`` writes the files and truth.json, and says how many."""
        result = CliRunner().invoke(
            synth_app, ["--children", "20", "--seed", "3", "--out", str(tmp_path)]
        )
        assert result.exit_code == 0, result.output
        assert (tmp_path / "truth.json").exists()
        assert (tmp_path / "health" / "attendances_0001.json").read_bytes() == generate(
            20, 3
        ).files["health/attendances_0001.json"]
        assert result.output.startswith("20 children, ")


class TestAdaptersReadEverything:
    """Every synthetic file parses through its real adapter without a record error."""

    def test_no_errors_and_truth_covers_every_record(self, synthetic) -> None:  # type: ignore[no-untyped-def]
        """No rejected record, no warning; each envelope's source record is in the truth."""
        keys = set()
        for path, result in parse_files(synthetic.files):
            assert result.errors == [], path
            assert result.envelopes, path
            keys |= {record_key(e) for e in result.envelopes}
        assert keys == set(synthetic.truth)


class TestRealism:
    """The data-quality problems matching has to survive are present."""

    def test_twins_have_distinct_names(self, synthetic) -> None:  # type: ignore[no-untyped-def]
        """Twins share birth date, surname and household but not first name or nickname."""
        people = synthetic.population.people
        twins = [(p, people[p.twin_of]) for p in people.values() if p.twin_of]
        assert twins
        for a, b in twins:
            assert (a.birth_date, a.family, a.household) == (b.birth_date, b.family, b.household)
            assert not alias_groups(normalise_name(a.given)) & alias_groups(normalise_name(b.given))

    def test_only_test_range_nhs_numbers(self, synthetic) -> None:  # type: ignore[no-untyped-def]
        """Every NHS number is in the 999 range."""
        numbers = [p.nhs for p in synthetic.population.people.values() if p.nhs]
        assert numbers and all(n.startswith("999") for n in numbers)

    def test_noise_helpers(self) -> None:
        """Day/month swap, nickname and misspelling behave as documented."""
        import random
        from datetime import date

        assert swap_day_month(date(2016, 5, 4)) == date(2016, 4, 5)
        assert swap_day_month(date(2016, 5, 14)) == date(2016, 5, 14)
        assert nickname_for("Zebedee", random.Random(1)) is None
        assert nickname_for("Amelia", random.Random(1)) in {"Millie", "Amy", "Mia"}
        assert misspell("Jayden", random.Random(1)) != "Jayden"

    def test_write_puts_files_under_out(self, tmp_path: Path) -> None:
        """``write`` returns every path it wrote, truth.json included."""
        paths = write(generate(5, 1), tmp_path)
        assert tmp_path / "truth.json" in paths
        assert all(p.exists() for p in paths)
