"""Redaction: removed fields are absent, generalised ones replaced, the input never changed."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from contracts import parse_envelope
from contracts.examples import example_envelope
from hub.sharing import Obligations, redact, redact_many

pytestmark = pytest.mark.unit


def envelope_view() -> dict[str, Any]:
    """The contract's example unscheduled-care envelope as a JSON-ready dict."""
    return parse_envelope(example_envelope(type="contact.recorded")).model_dump(mode="json")


class TestRedact:
    """What a recipient's copy of a view holds."""

    def test_removed_fields_are_absent_and_generalised_replaced(self) -> None:
        """A school's view of an emergency attendance: no clinical detail, no place, no family."""
        view = envelope_view()
        got = redact(
            view,
            Obligations(
                remove_fields=("data.details", "data.location", "person.related"),
                generalise=(("data.summary", "Attended emergency department."),),
            ),
        )
        assert got["data"] == {
            "contact_type": "unscheduled_care_attendance",
            "summary": "Attended emergency department.",
            "ended_at": "2024-03-04T23:55:00Z",
        }
        assert "related" not in got["person"]
        assert "head injury" not in json.dumps(got)
        assert {k: v for k, v in got.items() if k not in ("data", "person")} == {
            k: v for k, v in view.items() if k not in ("data", "person")
        }

    def test_input_is_never_changed(self) -> None:
        """The caller's view is left exactly as it was, nested parts included."""
        view = envelope_view()
        before = copy.deepcopy(view)
        got = redact(view, Obligations(remove_fields=("person.related.*.name",)))
        got["person"]["identifiers"].append({"system": "x"})
        assert view == before

    def test_wildcards_reach_every_list_item(self) -> None:
        """``*`` removes the field from every related person, and a trailing ``*`` empties."""
        view = {
            "person": {"related": [{"name": "A", "r": 1}, {"name": "B", "r": 2}]},
            "data": {"d": {"x": 1, "y": 2}},
        }
        got = redact(view, Obligations(remove_fields=("person.related.*.name", "data.d.*")))
        assert got == {"person": {"related": [{"r": 1}, {"r": 2}]}, "data": {"d": {}}}

    def test_missing_paths_are_ignored_and_never_added(self) -> None:
        """A generalised field the event lacks is not invented; removing nothing is harmless."""
        view = {"data": {"summary": "s"}}
        got = redact(
            view, Obligations(remove_fields=("data.details",), generalise=(("summary", "G"),))
        )
        assert got == {"data": {"summary": "s"}}

    def test_list_indices(self) -> None:
        """A numeric segment names one list item."""
        got = redact({"a": [1, 2, 3]}, Obligations(remove_fields=("a.0", "a.2")))
        assert got == {"a": [2]}

    def test_redact_many_pairs_views_and_obligations(self) -> None:
        """Each view gets the obligations at its position; lengths must agree."""
        views = [{"summary": "a"}, {"summary": "b"}]
        got = redact_many(views, [Obligations(), Obligations(remove_fields=("summary",))])
        assert got == [{"summary": "a"}, {}]
        with pytest.raises(ValueError):
            redact_many(views, [Obligations()])
