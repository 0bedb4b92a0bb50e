"""Audit entries: the body of a read, the facts kept for dry-run, and the replayed decisions."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contracts import AgencyKind, EventType
from hub.domain.roles import Role
from hub.governance.audit import (
    AuditAction,
    AuditRecord,
    ChildFacts,
    decisions_entry,
    fact_columns,
)
from hub.governance.config import GovernanceConfigError, load_retention
from hub.sharing import (
    AccessRequest,
    ChildContext,
    ChildStatus,
    ConsentRecord,
    ConsentState,
    EventFacts,
    Milestone,
    Purpose,
    decide,
    read_pack,
)

pytestmark = pytest.mark.unit

NOW = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
PACK = read_pack(Path(__file__).resolve().parents[3] / "deploy" / "rules" / "northshire.yaml")
WORKER = AccessRequest(
    "northshire-cs", AgencyKind.childrens_services, Role.social_worker, Purpose.safeguarding
)
CHILD = ChildContext.build(
    statuses=[ChildStatus.cp_plan],
    consents=[
        ConsentRecord(Purpose.safeguarding, "northshire-cs", ConsentState.withdrawn, NOW),
        ConsentRecord(Purpose.safeguarding, "northshire-police", ConsentState.given, NOW),
    ],
    involved_agencies=["northshire-cs"],
    milestones={Milestone.strategy_meeting: NOW - timedelta(days=1)},
)
EVENTS = [
    (
        "ev-1",
        EventFacts(
            EventType.concern_raised, "northshire-police", AgencyKind.police,
            frozenset({"domestic_abuse"}), NOW - timedelta(days=2),
        ),
    ),
    (
        "ev-2",
        EventFacts(
            EventType.contact_recorded, "northshire-health", AgencyKind.health,
            frozenset({"mental_health"}), NOW - timedelta(days=3),
        ),
    ),
]  # fmt: skip


def entry(events=EVENTS):
    return decisions_entry(
        action=AuditAction.narrative_read,
        who="sam.sw",
        request=WORKER,
        child_id="child-1",
        child=CHILD,
        decisions=[(i, f, decide(WORKER, f, CHILD, PACK, now=NOW)) for i, f in events],
        pack_version=PACK.version,
    )


class TestDecisionsEntry:
    """One read: every event's answer, the requester and the child facts that decided it."""

    def test_body(self):
        body = entry().body(NOW)
        assert {k: body[k] for k in ("effect", "event_ids", "rule_ids", "lawful_bases")} == {
            "effect": "permit",
            "event_ids": ["ev-1", "ev-2"],
            "rule_ids": ["cs-partner-information"],
            "lawful_bases": ["public_task"],
        }
        assert body["child"] == {
            "statuses": ["cp_plan"],
            "consent_state": "withdrawn",
            "consent_at": "2025-06-02T09:00:00.000000+00:00",
            "significant_harm": False,
            "involved": True,
            "milestones": {"strategy_meeting": "2025-06-01T09:00:00.000000+00:00"},
        }
        assert body["decisions"] == {
            "facts": [
                ["concern.raised", "northshire-police", "police", ["domestic_abuse"]],
                ["contact.recorded", "northshire-health", "health", ["mental_health"]],
            ],
            "outcomes": [
                ["permit", ["cs-partner-information"], ["public_task"], 0],
                ["deny", [], [], 1],
            ],
            "occurred_at": ["2025-05-31T09:00:00.000000+00:00", "2025-05-30T09:00:00.000000+00:00"],
            "fact": [0, 1],
            "outcome": [0, 1],
        }
        assert body["reasons"][1].startswith("no rule in pack 2025.1 permits this")
        assert "withdrawn for safeguarding with northshire-cs" in body["reasons"][1]
        assert "disclosures" not in body

    def test_repeated_facts_and_outcomes_are_kept_once(self):
        """A thousand events with one kind of fact and one answer make one fact, one outcome."""
        many = [(f"ev-{n}", EVENTS[0][1]) for n in range(1000)]
        body = entry(many).body(NOW)
        decided = body["decisions"]
        assert (decided["facts"], decided["outcomes"]) == (
            decided["facts"][:1],
            decided["outcomes"][:1],
        )
        assert (decided["fact"], decided["outcome"]) == ([0] * 1000, [0] * 1000)
        assert body["event_ids"] == [i for i, _ in many]

    def test_kept_fact_columns_give_the_same_record(self):
        """A reader's kept columns of its events change nothing in the record."""
        events = [*EVENTS, ("ev-3", EVENTS[0][1]), ("ev-4", EVENTS[1][1])]
        built = entry(events)
        kept = dataclasses.replace(built, columns=fact_columns(events))
        assert kept.body(NOW) == built.body(NOW)

    def test_columns_of_other_events_are_not_used(self):
        """Columns that do not list the entry's events are ignored, not trusted."""
        other = fact_columns([("ev-9", EVENTS[1][1]), ("ev-8", EVENTS[0][1])])
        built = entry()
        assert dataclasses.replace(built, columns=other).body(NOW) == built.body(NOW)


EMPTY_DECISIONS = {"facts": [], "outcomes": [], "occurred_at": [], "fact": [], "outcome": []}


class TestDisclosureItems:
    """A record's decisions read back one per event, from either form of record."""

    def test_compact_record_expands(self):
        body = {**entry().body(NOW), "prev_hash": "0" * 64}
        items = AuditRecord(seq=1, hash="h", prev_hash="0" * 64, body=body).disclosure_items()
        assert [{k: v for k, v in d.items() if k != "reason"} for d in items] == [
            {
                "event_id": "ev-1",
                "event_type": "concern.raised",
                "source_agency_id": "northshire-police",
                "source_agency_kind": "police",
                "sensitivity": ["domestic_abuse"],
                "occurred_at": "2025-05-31T09:00:00.000000+00:00",
                "effect": "permit",
                "rule_ids": ["cs-partner-information"],
                "lawful_bases": ["public_task"],
            },
            {
                "event_id": "ev-2",
                "event_type": "contact.recorded",
                "source_agency_id": "northshire-health",
                "source_agency_kind": "health",
                "sensitivity": ["mental_health"],
                "occurred_at": "2025-05-30T09:00:00.000000+00:00",
                "effect": "deny",
                "rule_ids": [],
                "lawful_bases": [],
            },
        ]
        assert [d["reason"] for d in items] == body["reasons"]

    def test_record_written_before_the_compact_form(self):
        """Records of the per-event form (reason by index) still read back, and replay."""
        compact = entry().body(NOW)
        items = AuditRecord(1, "h", "p", compact).disclosure_items()
        reasons = compact["reasons"]
        old = {k: v for k, v in compact.items() if k != "decisions"}
        old["disclosures"] = [{**d, "reason": reasons.index(d["reason"])} for d in items]
        record = AuditRecord(1, "h", "p", old)
        assert record.disclosure_items() == items
        assert record.past_requests() == AuditRecord(1, "h", "p", compact).past_requests()

    def test_entry_about_events_without_decisions(self):
        body = {**entry().body(NOW), "decisions": EMPTY_DECISIONS}
        assert AuditRecord(1, "h", "p", body).disclosure_items() == []

    def test_replayed_requests_decide_as_recorded(self):
        """The child facts kept rebuild a context that gives every recorded answer again."""
        body = {**entry().body(NOW), "prev_hash": "0" * 64}
        record = AuditRecord(seq=1, hash="h", prev_hash="0" * 64, body=body)
        pasts = record.past_requests()
        assert [p.event_id for p in pasts] == ["ev-1", "ev-2"]
        for past, (_, facts) in zip(pasts, EVENTS, strict=True):
            assert past.event == facts
            assert past.request == WORKER
            assert decide(past.request, past.event, past.child, PACK, now=past.at) == decide(
                WORKER, facts, CHILD, PACK, now=NOW
            )

    def test_other_actions_replay_nothing(self):
        body = {**entry().body(NOW), "action": "consent.recorded"}
        assert AuditRecord(1, "h", "p", body).past_requests() == []

    def test_child_facts_round_trip(self):
        facts = ChildFacts.of(CHILD, WORKER)
        assert ChildFacts.from_dict(facts.as_dict()) == facts


class TestRetention:
    """The retention schedule is data; statuses pick the periods that apply."""

    def test_packaged_schedule(self):
        schedule = load_retention()
        assert [p.category for p in schedule.for_statuses(["looked_after", "cp_plan"])] == [
            "looked_after",
            "child_protection",
        ]
        assert [p.category for p in schedule.for_statuses([])] == ["partner_information"]

    def test_a_bad_file_says_so(self, tmp_path):
        bad = tmp_path / "retention.yaml"
        bad.write_text("source: x\nperiods: []\n")
        with pytest.raises(GovernanceConfigError, match="retention schedule"):
            load_retention(bad)
