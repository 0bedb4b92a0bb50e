"""How ``configure_logging`` sets structlog up for a long-running process or a command."""

from __future__ import annotations

import json

import pytest
import structlog

from hub.observability import configure_logging, get_logger

pytestmark = pytest.mark.unit


def test_a_command_does_not_cache_loggers() -> None:
    """By default a module logger is rebuilt on each call, so a later reconfiguration (the
    test suite's, after a CLI test) reaches every module."""
    configure_logging("INFO")
    assert structlog.get_config()["cache_logger_on_first_use"] is False


def test_a_process_caches_its_loggers_and_keeps_the_level(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``hub serve`` caches each module logger; the level filter and the JSON lines hold."""
    configure_logging("INFO", cache=True)
    assert structlog.get_config()["cache_logger_on_first_use"] is True
    log = get_logger("hub.test_observability")
    log.debug("observability.dropped", n=1)
    log.info("observability.kept", n=2)
    log.info("observability.kept_again", n=3)
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(e["event"], e["n"], e["level"]) for e in events] == [
        ("observability.kept", 2, "info"),
        ("observability.kept_again", 3, "info"),
    ]
