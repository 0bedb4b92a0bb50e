"""Chronology views: involvement spans, statuses, summary header, filters and Markdown export."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.domain.chronology import (
    ChronologyItem,
    ChronologyQuery,
    InvolvementSpan,
    child_statuses,
    filter_items,
    involvement_spans,
    milestones,
    summarise,
    to_markdown,
)
from hub.store.repository import StoredEntry

pytestmark = pytest.mark.unit

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
LEAD = {"name": "Sam Practitioner", "role": "social worker", "phone": "01632 960001"}


def item(
    event_id: str,
    event_type: str,
    when: str,
    *,
    agency: str = "northshire-cs",
    kind: str = "childrens_services",
    data: dict[str, Any] | None = None,
    sensitivity: tuple[str, ...] = (),
    summary: str = "",
) -> ChronologyItem:
    at = datetime.fromisoformat(when).replace(tzinfo=UTC)
    return ChronologyItem(
        event_id=event_id,
        event_type=event_type,
        family=event_type.split(".")[0],
        occurred_at=at,
        recorded_at=at,
        agency_id=agency,
        agency_kind=kind,
        summary=summary or event_id,
        sensitivity=sensitivity,
        corrects=None,
        data=data or {},
    )


PLAN_START = item(
    "cs-1",
    "involvement.started",
    "2024-01-10T10:00",
    data={
        "involvement_type": "child_protection_plan",
        "involvement_id": "CPP-1",
        "started_on": "2024-01-10",
        "lead_practitioner": LEAD,
    },
)
CIN_START = item(
    "cs-2",
    "involvement.started",
    "2023-05-01T10:00",
    data={
        "involvement_type": "child_in_need",
        "involvement_id": "CIN-1",
        "started_on": "2023-05-01",
    },
)
CIN_END = item(
    "cs-3",
    "involvement.ended",
    "2024-01-09T10:00",
    data={
        "involvement_type": "child_in_need",
        "involvement_id": "CIN-1",
        "started_on": "2023-05-01",
        "ended_on": "2024-01-09",
    },
)
POLICE_CONCERN = item(
    "p-1",
    "concern.raised",
    "2024-05-20T21:00",
    agency="northshire-police",
    kind="police",
    sensitivity=("domestic_abuse",),
    summary="Incident | at home",
)
SCHOOL_CONCERN = item(
    "s-1", "concern.raised", "2024-01-15T09:00", agency="northshire-primary", kind="schools"
)
STRATEGY = item(
    "cs-4", "contact.recorded", "2024-05-21T14:00", data={"contact_type": "strategy_meeting"}
)
ITEMS = [CIN_START, CIN_END, PLAN_START, SCHOOL_CONCERN, POLICE_CONCERN, STRATEGY]


class TestSpans:
    """Involvement events fold into spans with their lead practitioner."""

    def test_spans_open_and_closed(self) -> None:
        """A started-and-ended involvement is closed; a started one is open with its lead."""
        assert involvement_spans(ITEMS) == [
            InvolvementSpan(
                "CIN-1",
                "child_in_need",
                "northshire-cs",
                "childrens_services",
                date(2023, 5, 1),
                date(2024, 1, 9),
                None,
                ("cs-2", "cs-3"),
            ),
            InvolvementSpan(
                "CPP-1",
                "child_protection_plan",
                "northshire-cs",
                "childrens_services",
                date(2024, 1, 10),
                None,
                LEAD,
                ("cs-1",),
            ),
        ]

    def test_statuses_come_from_open_spans_only(self) -> None:
        """An open CP plan gives cp_plan; the ended child-in-need plan gives nothing."""
        assert child_statuses(involvement_spans(ITEMS)) == {"cp_plan"}

    def test_latest_strategy_meeting_is_a_milestone(self) -> None:
        """A strategy-meeting contact is the strategy_meeting milestone."""
        assert milestones(ITEMS) == {"strategy_meeting": STRATEGY.occurred_at}


class TestSummary:
    """The summary header counts concerns per agency over 30/90/365 days."""

    def test_summary(self) -> None:
        """Open plans, windowed concern counts and the last contact of each agency."""
        summary = summarise(ITEMS, involvement_spans(ITEMS), now=NOW)
        assert summary.open_plans == ("child_protection_plan",)
        assert summary.concerns_by_agency == {
            "northshire-police": {"30": 1, "90": 1, "365": 1},
            "northshire-primary": {"30": 0, "90": 0, "365": 1},
        }
        assert summary.last_contact_by_agency == {
            "northshire-cs": STRATEGY.occurred_at,
            "northshire-police": POLICE_CONCERN.occurred_at,
            "northshire-primary": SCHOOL_CONCERN.occurred_at,
        }

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["concern.raised", "contact.recorded", "involvement.started"]),
                st.sampled_from(["northshire-police", "northshire-primary", "northshire-cs"]),
                st.integers(min_value=-400 * 24, max_value=48),  # hours from now
            ),
            max_size=40,
        )
    )
    def test_counts_and_last_contacts_by_definition(
        self, events: list[tuple[str, str, int]]
    ) -> None:
        """Each agency's concerns in each window, and its latest entry, none in the future."""
        items = [
            dataclasses.replace(
                item(f"ev-{n}", kind, "2024-06-01T12:00:00", agency=agency),
                occurred_at=NOW + timedelta(hours=hours),
            )
            for n, (kind, agency, hours) in enumerate(events)
        ]
        past = [i for i in items if i.occurred_at <= NOW]
        expected_counts = {}
        for agency in sorted({i.agency_id for i in past if i.family == "concern"}):
            ages = [
                NOW - i.occurred_at for i in past if i.agency_id == agency and i.family == "concern"
            ]
            counts = {
                w: sum(a <= timedelta(days=int(w)) for a in ages) for w in ("30", "90", "365")
            }
            if counts["365"]:
                expected_counts[agency] = counts
        expected_last = {
            agency: max(i.occurred_at for i in past if i.agency_id == agency)
            for agency in sorted({i.agency_id for i in past})
        }
        summary = summarise(items, [], now=NOW)
        assert (summary.concerns_by_agency, summary.last_contact_by_agency) == (
            expected_counts,
            expected_last,
        )


class TestFilters:
    """Filters narrow by agency kind, family, period and sensitivity."""

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            (ChronologyQuery(), [i.event_id for i in ITEMS]),
            (ChronologyQuery(agency_kinds=frozenset({"police"})), ["p-1"]),
            (ChronologyQuery(families=frozenset({"concern"})), ["s-1", "p-1"]),
            (ChronologyQuery(since=datetime(2024, 5, 1, tzinfo=UTC)), ["p-1", "cs-4"]),
            (ChronologyQuery(until=datetime(2023, 12, 31, tzinfo=UTC)), ["cs-2"]),
            (ChronologyQuery(sensitivity=frozenset({"domestic_abuse"})), ["p-1"]),
        ],
    )
    def test_filter(self, query: ChronologyQuery, expected: list[str]) -> None:
        """Each filter keeps exactly the matching items, in order."""
        assert [i.event_id for i in filter_items(ITEMS, query)] == expected


class TestMarkdown:
    """The export is a table practitioners can paste."""

    def test_markdown_export(self) -> None:
        """Involved-now list, then one table row per item with pipes escaped."""
        text = to_markdown(
            "ch-1",
            [POLICE_CONCERN],
            involvement_spans(ITEMS),
            {
                "northshire-police": "Northshire Police",
                "northshire-cs": "Northshire Council Children's Services",
            },
            generated_at=NOW,
        )
        assert text == (
            "# Chronology for child ch-1\n\nGenerated 01 June 2024 12:00 UTC.\n\n"
            "## Involved now\n\n"
            "- Child protection plan (Northshire Council Children's Services) since 10/01/2024"
            " — Sam Practitioner, social worker, 01632 960001\n\n"
            "## Chronology\n\n| Date | Agency | What happened |\n|---|---|---|\n"
            "| 20/05/2024 21:00 | Northshire Police | Incident \\| at home |\n"
        )


class TestShown:
    """An item as shown keeps every field but the summary and data it is given."""

    def test_same_as_replacing_summary_and_data(self) -> None:
        erased = dataclasses.replace(POLICE_CONCERN, erased_at=NOW, corrects="ev-old")
        for original in (PLAN_START, erased):
            shown = original.shown("Shown.", {"k": 1})
            assert shown == dataclasses.replace(original, summary="Shown.", data={"k": 1})


class TestStoredEntryWithText:
    """A stored entry with its texts read in keeps every other column."""

    def test_same_as_replacing_summary_and_payload(self) -> None:
        entry = StoredEntry(
            "ev-1", "ch-1", "concern.raised", "concern", NOW, NOW, "ag", "police", "",
            ("dv",), "ev-0", "active", "ev-2", {}, NOW,
        )  # fmt: skip
        read = entry.with_text("sealed summary", {"kv": 1})
        assert read == dataclasses.replace(entry, summary="sealed summary", payload={"kv": 1})
