"""Fuzzing the submission parsers: nothing an agency sends raises more than the documented errors.

``contracts.parse_envelope`` may only raise ``ContractValidationError``; an adapter's ``parse``
may only raise ``UnreadableFile`` (and reports per-record problems in the result). Inputs are
arbitrary bytes, arbitrary JSON, and the valid examples and sample files with values replaced,
removed or (for XML) element text swapped for arbitrary text. Bounded: each property runs at
most ``MAX_EXAMPLES`` examples, derandomised, without the example database.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import childrens_services, health, police, schools
from adapters.common import AdapterResult, AgencyRef, UnreadableFile
from contracts import AgencyKind, ContractValidationError, Envelope, parse_envelope
from contracts.events import EventType
from contracts.examples import example_envelope
from tests.fuzz.strategies import json_values, mutated_json

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2024, 4, 1, 9, 0, tzinfo=UTC)
MAX_EXAMPLES = 80

fuzz = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Parse = Callable[..., AdapterResult]
ADAPTERS: dict[str, tuple[AgencyKind, Parse, tuple[str, ...]]] = {
    "health": (AgencyKind.health, health.parse, health.CONTENT_TYPES),
    "schools": (AgencyKind.schools, schools.parse, schools.CONTENT_TYPES),
    "police": (AgencyKind.police, police.parse, police.CONTENT_TYPES),
    "childrens_services": (
        AgencyKind.childrens_services,
        childrens_services.parse,
        childrens_services.CONTENT_TYPES,
    ),
}
SAMPLES = sorted((REPO / "adapters").glob("*/samples/*"))
_MEDIA = {".json": "application/json", ".xml": "application/xml", ".csv": "text/csv"}


def _sample_id(sample: Path) -> str:
    return f"{sample.parent.parent.name}/{sample.name}"


def _sample_param(sample: Path) -> Any:
    """A sample as a parameter, named by its adapter and file."""
    return pytest.param(sample, id=_sample_id(sample))


def _parse_envelope_or_contract_error(raw: Any) -> None:
    try:
        envelope = parse_envelope(raw)
    except ContractValidationError as exc:
        assert exc.errors, "a ContractValidationError must list at least one field error"
        return
    assert isinstance(envelope, Envelope)


def _adapt_or_unreadable(adapter: str, body: bytes, content_type: str) -> None:
    kind, parse, _ = ADAPTERS[adapter]
    try:
        result = parse(body, content_type, AgencyRef(f"fuzz-{adapter}", kind), now=NOW)
    except UnreadableFile as exc:
        assert str(exc), "an UnreadableFile must say why"
        return
    assert all(isinstance(e, Envelope) for e in result.envelopes)
    assert all(e.reason and e.field for e in result.errors)


class TestEnvelopeParsing:
    """parse_envelope raises ContractValidationError and nothing else."""

    @fuzz
    @given(st.binary(max_size=2000))
    def test_arbitrary_bytes(self, body: bytes) -> None:
        """Any bytes: not JSON, wrong encoding, truncated."""
        _parse_envelope_or_contract_error(body)

    @fuzz
    @given(json_values)
    def test_arbitrary_json(self, value: Any) -> None:
        """Any JSON value, as text and as the decoded object."""
        _parse_envelope_or_contract_error(json.dumps(value))
        _parse_envelope_or_contract_error(value)

    @fuzz
    @given(
        st.sampled_from(sorted(EventType)).flatmap(
            lambda t: mutated_json(example_envelope(type=t.value))
        )
    )
    def test_mutated_valid_envelopes(self, raw: dict[str, Any]) -> None:
        """A valid envelope of every event type with values replaced or removed."""
        _parse_envelope_or_contract_error(raw)

    @fuzz
    @given(st.integers(1, 5000), st.sampled_from(["[", "{", '{"a":']))
    def test_deep_nesting(self, depth: int, opener: str) -> None:
        """Deeply nested or unterminated JSON is a contract error, not a RecursionError."""
        _parse_envelope_or_contract_error(opener * depth)


class TestAdapterParsing:
    """Each adapter's parse raises UnreadableFile and nothing else."""

    @fuzz
    @given(
        st.sampled_from(sorted(ADAPTERS)).flatmap(
            lambda a: st.tuples(st.just(a), st.sampled_from(ADAPTERS[a][2]))
        ),
        st.binary(max_size=2000),
    )
    def test_arbitrary_bytes(self, adapter_and_type: tuple[str, str], body: bytes) -> None:
        """Any bytes under every content type an adapter reads."""
        adapter, content_type = adapter_and_type
        _adapt_or_unreadable(adapter, body, content_type)

    @fuzz
    @given(st.sampled_from(sorted(ADAPTERS)), json_values)
    def test_arbitrary_json(self, adapter: str, value: Any) -> None:
        """Any JSON document sent as application/json."""
        _adapt_or_unreadable(adapter, json.dumps(value).encode(), "application/json")

    @pytest.mark.parametrize("sample", [_sample_param(s) for s in SAMPLES if s.suffix == ".json"])
    def test_mutated_json_samples(self, sample: Path) -> None:
        """The JSON sample files with values replaced or removed."""
        adapter = sample.parent.parent.name
        document = json.loads(sample.read_bytes())

        @fuzz
        @given(mutated_json(document, max_changes=4))
        def run(mutated: Any) -> None:
            _adapt_or_unreadable(adapter, json.dumps(mutated).encode(), _MEDIA[".json"])

        run()

    @pytest.mark.parametrize("sample", [s for s in SAMPLES if s.suffix == ".csv"], ids=_sample_id)
    def test_mutated_csv_samples(self, sample: Path) -> None:
        """The CSV sample files with cells replaced by arbitrary text."""
        adapter = sample.parent.parent.name
        rows = list(csv.reader(io.StringIO(sample.read_text(encoding="utf-8-sig"))))
        cells = [(r, c) for r in range(len(rows)) for c in range(len(rows[r]))]

        @fuzz
        @given(st.lists(st.tuples(st.sampled_from(cells), st.text(max_size=30)), max_size=6))
        def run(changes: list[tuple[tuple[int, int], str]]) -> None:
            mutated = [list(row) for row in rows]
            for (r, c), text in changes:
                mutated[r][c] = text
            out = io.StringIO()
            csv.writer(out).writerows(mutated)
            _adapt_or_unreadable(adapter, out.getvalue().encode(), _MEDIA[".csv"])

        run()

    @pytest.mark.parametrize("sample", [s for s in SAMPLES if s.suffix == ".xml"], ids=_sample_id)
    def test_mutated_xml_samples(self, sample: Path) -> None:
        """The XML sample files with element text replaced by arbitrary text, or elements cut."""
        adapter = sample.parent.parent.name
        original = sample.read_bytes()
        count = sum(1 for _ in ElementTree.fromstring(original).iter())
        printable = st.text(
            st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
            max_size=30,
        )

        @fuzz
        @given(st.lists(st.tuples(st.integers(0, count - 1), st.none() | printable), max_size=6))
        def run(changes: list[tuple[int, str | None]]) -> None:
            root = ElementTree.fromstring(original)
            for index, text in changes:
                nodes = list(root.iter())
                if index >= len(nodes):
                    continue
                node = nodes[index]
                if text is None:
                    for parent in root.iter():
                        if node in list(parent):
                            parent.remove(node)
                            break
                else:
                    node.text = text
            _adapt_or_unreadable(adapter, ElementTree.tostring(root), _MEDIA[".xml"])

        run()
