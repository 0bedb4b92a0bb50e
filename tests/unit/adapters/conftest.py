"""Fixtures for adapter tests: a frozen clock, the Northshire agencies and sample files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.common import AgencyRef
from contracts import AgencyKind

ADAPTERS = Path(__file__).resolve().parents[3] / "adapters"
NOW = datetime(2024, 4, 15, 9, 30, tzinfo=UTC)

AGENCIES = {
    "health": AgencyRef("northshire-health", AgencyKind.health),
    "schools": AgencyRef("northshire-primary", AgencyKind.schools),
    "police": AgencyRef("northshire-police", AgencyKind.police),
    "childrens_services": AgencyRef("northshire-cs", AgencyKind.childrens_services),
}


def sample(kind: str, name: str) -> bytes:
    """Return the bytes of one of an adapter's sample files."""
    return (ADAPTERS / kind / "samples" / name).read_bytes()


@pytest.fixture
def now() -> datetime:
    """The frozen time the adapter stamps as recorded_at."""
    return NOW
