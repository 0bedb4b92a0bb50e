"""The `hub demo` scenario: five invented Northshire households loaded through the adapters."""

from hub.demo.loader import LoadReport, load_scenario, run_demo
from hub.demo.scenario import CHILDREN, EXPECTED_ALERTS, FILES

__all__ = ["CHILDREN", "EXPECTED_ALERTS", "FILES", "LoadReport", "load_scenario", "run_demo"]
