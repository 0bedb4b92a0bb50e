"""Upcasting: old envelopes are lifted one version at a time, newer ones refused."""

from __future__ import annotations

from typing import Any

import pytest

from contracts import CURRENT_SCHEMA_VERSION, ContractValidationError, parse_envelope, upcast
from contracts.examples import example_envelope
from contracts.versions import UPCASTERS, UnsupportedSchemaVersion

pytestmark = pytest.mark.unit


def rename_summary(raw: dict[str, Any]) -> dict[str, Any]:
    """v1 -> v2 in a pretend history: data.text became data.summary."""
    raw["data"]["summary"] = raw["data"].pop("text")
    return raw


def add_basis(raw: dict[str, Any]) -> dict[str, Any]:
    """v2 -> v3 in a pretend history: lawful_basis became required."""
    raw.setdefault("lawful_basis", "public_task")
    return raw


FAKE = {1: rename_summary, 2: add_basis}


class TestUpcast:
    """upcast applies each step in order and refuses what it cannot lift."""

    def test_ships_with_no_upcasters_at_version_one(self) -> None:
        """Only version 1 exists, so the registry is empty."""
        assert CURRENT_SCHEMA_VERSION == 1
        assert UPCASTERS == {}

    def test_current_version_passes_through_as_a_copy(self) -> None:
        """A current envelope comes back equal, in a new dict."""
        raw = example_envelope()
        result = upcast(raw)
        assert result == raw and result is not raw

    def test_applies_steps_in_order(self) -> None:
        """A v1 envelope is lifted through v2 to v3 and stamped with each version."""
        raw = {"schemaversion": 1, "data": {"text": "worry"}}
        assert upcast(raw, upcasters=FAKE, current=3) == {
            "schemaversion": 3,
            "data": {"summary": "worry"},
            "lawful_basis": "public_task",
        }
        assert raw == {"schemaversion": 1, "data": {"text": "worry"}}  # input untouched

    def test_starts_from_the_envelope_version(self) -> None:
        """A v2 envelope only runs the v2 -> v3 step."""
        raw = {"schemaversion": 2, "data": {"summary": "worry"}}
        assert upcast(raw, upcasters=FAKE, current=3)["lawful_basis"] == "public_task"

    def test_missing_version_means_version_one(self) -> None:
        """An envelope without schemaversion is treated as version 1."""
        assert upcast({"data": {"text": "x"}}, upcasters=FAKE, current=2) == {
            "schemaversion": 2,
            "data": {"summary": "x"},
        }

    def test_newer_version_refused(self) -> None:
        """A version newer than this hub is refused with a field error on schemaversion."""
        with pytest.raises(UnsupportedSchemaVersion) as caught:
            upcast({"schemaversion": 4}, upcasters=FAKE, current=3)
        assert [(e.loc, e.msg, e.type) for e in caught.value.errors] == [
            (
                "schemaversion",
                "schema version 4 is newer than this hub supports (3)",
                "schema_version",
            )
        ]

    def test_missing_step_refused(self) -> None:
        """A gap in the registry is refused, naming the missing step."""
        with pytest.raises(
            UnsupportedSchemaVersion, match="no upcaster from schema version 2 to 3"
        ):
            upcast(
                {"schemaversion": 1, "data": {"text": "x"}},
                upcasters={1: rename_summary},
                current=3,
            )

    @pytest.mark.parametrize("version", [0, -1, "1", 1.0, True, None])
    def test_bad_version_values_refused(self, version: object) -> None:
        """Versions must be positive integers."""
        with pytest.raises(UnsupportedSchemaVersion, match="positive integer"):
            upcast({"schemaversion": version})

    def test_parse_envelope_upcasts_first(self) -> None:
        """parse_envelope refuses a future version as a contract validation error."""
        with pytest.raises(ContractValidationError) as caught:
            parse_envelope(example_envelope(schemaversion=2))
        assert caught.value.errors[0].loc == "schemaversion"

    def test_parse_envelope_accepts_missing_version(self) -> None:
        """A producer that omits schemaversion is read as version 1."""
        raw = example_envelope()
        del raw["schemaversion"]
        assert parse_envelope(raw).schemaversion == 1
