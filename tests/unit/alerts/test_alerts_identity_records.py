"""The alert consumer reads merges and un-merges from `hub.events` identity records."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from hub.alerts.processing import IdentityChange
from hub.identity.events import ChildrenMerged, MatchKeptApart, MergeUndone
from hub.identity.publish import identity_record
from hub.streams.alerting import _identity_change
from hub.streams.records import ConsumedRecord
from hub.streams.wire import IdentityHubEvent

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def consumed(value: bytes) -> ConsumedRecord:
    return ConsumedRecord("hub.events", 1, 7, b"ch-1", value)


def record_of(event: ChildrenMerged | MergeUndone | MatchKeptApart) -> ConsumedRecord:
    value = identity_record(event, now=NOW).model_dump_json().encode()
    assert IdentityHubEvent.is_one(value)
    return consumed(value)


class TestIdentityChanges:
    def test_a_merge_and_its_undoing(self) -> None:
        merged = ChildrenMerged("m-1", "ch-1", "ch-2", ("r-2",), "rv-1", "ig-1", "same child", NOW)
        undone = MergeUndone("m-1", "ch-2", "ch-1", ("r-2",), "ig-1", "not the same", NOW)
        assert _identity_change(record_of(merged)) == IdentityChange(
            "merged", "ch-1", "ch-2", "m-1"
        )
        assert _identity_change(record_of(undone)) == IdentityChange(
            "unmerged", "ch-1", "ch-2", "m-1"
        )

    def test_kept_apart_changes_nothing(self) -> None:
        apart = MatchKeptApart("rv-2", "ch-1", "ch-3", "ig-1", "different", NOW)
        assert _identity_change(record_of(apart)) is None

    def test_an_unreadable_record_is_skipped_by_position(self) -> None:
        value = b'{"record_kind":"identity","type":"identity.merged","child_id":"ch-1"}'
        with capture_logs() as logs:
            assert _identity_change(consumed(value)) is None
        assert [(e["event"], e["offset"], e["cause"]) for e in logs] == [
            ("alerts.record_skipped", 7, "invalid_identity_record")
        ]
