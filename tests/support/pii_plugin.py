"""Pytest plugin: fails the session if any captured hub log holds synthetic personal data.

What it reads, for the whole session:
- every test's captured stdout, stderr and log records (the in-process structlog and standard
  library output; pytest hands them over in each report's sections, passed or failed);
- the log file of every ``HubProcess`` the tests start (``<data_dir>/hub-<port>.log``, which
  holds the subprocess's stdout and stderr), read at the end of the session;
- the stdout and stderr of every ``HubProcess.run_cli`` call (``hub dlq list`` and friends).

At the end it scans them against ``pii_scan.harvest_registry()`` and, if anything is found,
prints one line per finding (source, line, log event, kind of value; never the value) and
sets the exit status to "tests failed". ``--no-pii-scan`` turns it off; with ``-s`` (no
capture) only the subprocess logs are scanned.

Registered from ``tests/conftest.py``: ``pytest_plugins = ["tests.support.pii_plugin"]``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.pii_scan import Finding, Registry, harvest_registry, scan_lines

__all__ = ["PiiLogScan", "scan_of"]

_STASH = pytest.StashKey["PiiLogScan"]()


def scan_of(config: pytest.Config) -> PiiLogScan | None:
    """The session's scan (None with ``--no-pii-scan``)."""
    return config.stash.get(_STASH, None)


@dataclass(slots=True)
class PiiLogScan:
    """The session's collected log text (as lines per source) and what the scan found."""

    captured: list[tuple[str, list[str]]] = field(default_factory=list)
    log_files: dict[Path, str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    lines_scanned: int = 0
    registry: Registry | None = None

    def add_text(self, source: str, text: str) -> None:
        """Keep some captured text for the end-of-session scan."""
        if text.strip():
            self.captured.append((source, text.splitlines()))

    def add_log_file(self, path: Path, label: str) -> None:
        """Remember a subprocess log file to read at the end."""
        self.log_files.setdefault(path, label)

    def scan(self) -> list[Finding]:
        """Scan everything collected (building the registry once); returns the findings."""
        sources = list(self.captured)
        for path, label in self.log_files.items():
            if path.exists():
                sources.append(
                    (label, path.read_text(encoding="utf-8", errors="replace").split("\n"))
                )
        if not sources:
            return []
        self.registry = self.registry or harvest_registry()
        for label, lines in sources:
            self.lines_scanned += len(lines)
            self.findings.extend(scan_lines(label, lines, self.registry))
        return self.findings


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-pii-scan",
        action="store_true",
        default=False,
        help="Do not scan captured hub logs for synthetic personal data at session end.",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--no-pii-scan", default=False):
        return
    scan = PiiLogScan()
    config.stash[_STASH] = scan
    _watch_hub_processes(scan)
    config.pluginmanager.register(_Plugin(scan), "pii-log-scan")


def _watch_hub_processes(scan: PiiLogScan) -> None:
    """Wrap ``HubProcess.start`` and ``run_cli`` so their output reaches the scan."""
    from tests.support.hub_process import HubProcess

    if getattr(HubProcess, "_pii_watched", False):
        return
    start, run_cli = HubProcess.start, HubProcess.run_cli

    @functools.wraps(start)
    def watched_start(self: HubProcess, *args: Any, **kwargs: Any) -> None:
        scan.add_log_file(self.log_path, f"{self.data_dir.parent.name}/{self.log_path.name}")
        return start(self, *args, **kwargs)

    @functools.wraps(run_cli)
    def watched_run_cli(self: HubProcess, *args: str, **kwargs: Any) -> Any:
        done = run_cli(self, *args, **kwargs)
        label = f"hub {' '.join(args[:2])} ({self.data_dir.parent.name})"
        scan.add_text(f"{label} stdout", done.stdout or "")
        scan.add_text(f"{label} stderr", done.stderr or "")
        return done

    HubProcess.start = watched_start  # type: ignore[method-assign]
    HubProcess.run_cli = watched_run_cli  # type: ignore[method-assign]
    HubProcess._pii_watched = True  # type: ignore[attr-defined]


class _Plugin:
    """The hooks that feed and report one session's PiiLogScan."""

    def __init__(self, scan: PiiLogScan) -> None:
        self.scan = scan

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # a report carries the sections of earlier phases too: take only this phase's
        for title, content in report.sections:
            if title.startswith("Captured") and title.endswith(f" {report.when}"):
                where = title.removeprefix("Captured ")
                self.scan.add_text(f"{report.nodeid} [{where}]", content)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        clean_so_far = exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
        if self.scan.scan() and clean_so_far:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        _summarise(self.scan, terminalreporter)


def _summarise(scan: PiiLogScan, terminalreporter: Any) -> None:
    if not scan.findings and not scan.lines_scanned:
        return
    if not scan.findings:
        terminalreporter.write_line(
            f"pii log scan: {scan.lines_scanned} captured log lines clean", green=True
        )
        return
    terminalreporter.section("synthetic personal data in logs", sep="=", red=True, bold=True)
    for finding in scan.findings[:200]:
        terminalreporter.write_line(finding.describe())
    if len(scan.findings) > 200:
        terminalreporter.write_line(f"... and {len(scan.findings) - 200} more")
    terminalreporter.write_line(
        f"pii log scan: {len(scan.findings)} finding(s) in {scan.lines_scanned} lines; "
        "the session fails (values are never printed; see the named log line)",
        red=True,
    )
