"""The PII log scan: known synthetic values are found by kind, clean logs pass, nothing echoes.

The planted values are taken from the registry's own sources (``contracts.examples`` and the
synthetic population), so the tests fail if harvesting stops finding them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from contracts.examples import example_envelope, valid_nhs_number, valid_upn
from hub.synth.population import people
from tests.support.pii_scan import (
    Finding,
    Kind,
    Registry,
    harvest_registry,
    scan_lines,
    scan_text,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = example_envelope()["person"]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return harvest_registry()


def _line(event: str, **fields: object) -> str:
    return json.dumps({"event": event, "level": "info", **fields})


class TestHarvest:
    """The registry holds the people of the examples, the samples and the synthetic seeds."""

    def test_example_person_is_known(self, registry: Registry) -> None:
        """Ruby Example's name, date of birth, address, postcode and NHS number."""
        found = scan_text("Ruby Example 2015-06-01 1 Example Street ZZ99 3ZZ", registry)
        assert sorted(found) == sorted([Kind.name, Kind.address, Kind.postcode, Kind.birth_date])
        assert scan_text(EXAMPLE["identifiers"][0]["value"], registry) == [Kind.nhs_number]

    def test_synthetic_population_is_known(self, registry: Registry) -> None:
        """A child of the seed-11 population is found by name, birth date and address."""
        population = people(600, 11)
        child = population.children[7]
        home = next(h for h in population.households if child.pid in h.children).address
        text = f"{child.given} {child.family} born {child.birth_date:%d/%m/%Y} at {home.lines[0]}"
        assert sorted(scan_text(text, registry)) == sorted(
            [Kind.name, Kind.address, Kind.birth_date]
        )

    def test_adapter_samples_are_known(self, registry: Registry) -> None:
        """People read from the adapters' sample files are in the registry (a few hundred)."""
        assert len(registry.phrases) > 1000
        assert len(registry.dates) > 500


class TestScan:
    """One finding per line and kind; the value never appears in a finding."""

    def test_planted_values_found_by_kind(self, registry: Registry) -> None:
        """Each kind planted in a JSON log line is reported with the line's event."""
        lines = [
            _line("submission.accepted", agency_id="northshire-police", count=1),
            _line("ingest.rejected", detail=f"bad record for {valid_nhs_number(4242)}"),
            _line("identity.matched", candidate="Ruby Example"),
            _line("intake.native_parsed", note=f"pupil {valid_upn(77)}"),
            "plain text line: 1 Example Street",
        ]
        assert scan_lines("hub-1.log", lines, registry) == [
            Finding("hub-1.log", 2, "ingest.rejected", Kind.nhs_number),
            Finding("hub-1.log", 3, "identity.matched", Kind.name),
            Finding("hub-1.log", 4, "intake.native_parsed", Kind.upn),
            Finding("hub-1.log", 5, "<text line>", Kind.address),
        ]

    def test_spaced_and_escaped_values_are_found(self, registry: Registry) -> None:
        """A spaced NHS number and a JSON-escaped name are still found."""
        nhs = valid_nhs_number(0)
        spaced = f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}"
        assert scan_text(f"number {spaced}", registry) == [Kind.nhs_number]
        escaped = json.dumps({"event": "x", "who": "RUBY   example"})
        assert [f.kind for f in scan_lines("s", [escaped], registry)] == [Kind.name]

    def test_clean_log_passes(self, registry: Registry) -> None:
        """Ids, counts, timestamps, hashes and reasons are not personal data."""
        lines = [
            _line(
                "ingest.dead_lettered",
                event_id="northshire-police:evt-0001",
                child_id="c-9f1b2c",
                reason="signature_invalid",
                timestamp="2024-03-04T22:05:00.123456Z",
                body_sha256="9990000018" + "ab" * 27,
                offset=9990000018123,
            ),
            "INFO: Started server process [41234]",
            "",
        ]
        assert scan_lines("hub-2.log", lines, registry) == []

    def test_lone_common_names_are_not_accused(self, registry: Registry) -> None:
        """A given name alone (``Ruby``) is not a finding; only full names are."""
        assert scan_text("ruby gem installed; example given", registry) == []

    def test_finding_never_carries_the_value(self, registry: Registry) -> None:
        """The report names event and kind; free-text events are cut before the value."""
        nhs = valid_nhs_number(31)
        message = f"HTTP Request: GET http://hub/api/v1/children?identifier=nhs%3A{nhs}"
        [finding] = scan_lines("hub-3.log", [_line(message)], registry)
        assert finding == Finding("hub-3.log", 1, "HTTP Request\u2026", Kind.nhs_number)
        assert nhs not in finding.describe()
        assert finding.describe() == "hub-3.log:1 event=HTTP Request\u2026: nhs_number"


def _run_pytest(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    """Run pytest on one test file with the plugin loaded, as a separate session."""
    (tmp_path / "test_planted.py").write_text(textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.support.pii_plugin", "-q",
         "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "-c", os.devnull,
         str(tmp_path / "test_planted.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


class TestPlugin:
    """The plugin turns a passing session with a leak into a failing one."""

    def test_leak_fails_the_session_without_printing_the_value(self, tmp_path: Path) -> None:
        """A test printing a synthetic NHS number in a log line passes, the session fails."""
        nhs = valid_nhs_number(5150)
        done = _run_pytest(
            tmp_path,
            f"""
            import json

            def test_logs_a_number():
                print(json.dumps({{"event": "ingest.rejected", "detail": "{nhs}"}}))
            """,
        )
        assert done.returncode == 1, done.stdout[-2000:]
        assert "1 passed" in done.stdout
        assert (
            "test_planted.py::test_logs_a_number [stdout call]:1 event=ingest.rejected: "
            "nhs_number" in done.stdout
        )
        assert nhs not in done.stdout + done.stderr

    def test_clean_session_passes(self, tmp_path: Path) -> None:
        """Ids only in the logs: exit status 0 and a one-line all-clear."""
        done = _run_pytest(
            tmp_path,
            """
            def test_logs_ids():
                print('{"event": "submission.accepted", "agency_id": "northshire-police"}')
            """,
        )
        assert done.returncode == 0, done.stdout[-2000:]
        assert "pii log scan: 1 captured log lines clean" in done.stdout
