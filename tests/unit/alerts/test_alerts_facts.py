"""From a `hub.events` record to the facts the engine reads (and no personal details)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts import parse_envelope
from contracts.examples import example_envelope
from hub.alerts.engine import trigger_facts
from hub.alerts.facts import (
    ConcernFacts,
    ContactFacts,
    HubEventFacts,
    InvolvementFacts,
    PractitionerFacts,
    facts_from_envelope,
    facts_from_hub_event,
)
from hub.alerts.state import ChildAlertState, fold
from hub.domain.narrative import entry_for
from hub.sharing import EventFacts
from hub.streams.wire import HubEvent

pytestmark = pytest.mark.unit

NOW = datetime(2024, 3, 5, 9, 0, tzinfo=UTC)


def hub_event(**overrides: object) -> HubEvent:
    return HubEvent(
        child_id="ch-0001",
        ingested_at=NOW,
        linked_by="nhs",
        envelope=parse_envelope(example_envelope(**overrides)),
    )


def common(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "event_id": "northshire-police:evt-0001",
        "child_id": "ch-0001",
        "occurred_at": datetime(2024, 3, 4, 21, 40, tzinfo=UTC),
        "recorded_at": datetime(2024, 3, 4, 22, 5, tzinfo=UTC),
        "agency_id": "northshire-police",
        "agency_kind": "police",
        "sensitivity": ("domestic_abuse",),
        "supersedes": None,
    }
    base.update(changes)
    return base


class TestFactsFromHubEvent:
    """Each event family reduces to the few fields the rules read."""

    def test_a_concern(self):
        """Category and risk level; the summary is left behind."""
        facts = facts_from_hub_event(hub_event())
        assert facts == HubEventFacts(
            kind="concern.raised",
            household_keys=facts.household_keys,
            concern=ConcernFacts(category="domestic_abuse", risk_level="high"),
            **common(),  # type: ignore[arg-type]
        )
        (key,) = facts.household_keys
        assert key.startswith("addr:") and len(key) == 37
        assert "ZZ99" not in repr(facts) and "Example Street" not in repr(facts)

    def test_an_involvement(self):
        """The involvement and its lead practitioner (email lower-cased)."""
        facts = facts_from_hub_event(hub_event(type="involvement.started"))
        assert facts.involvement == InvolvementFacts(
            involvement_id="CPP-0001",
            involvement_type="child_protection_plan",
            ended=False,
            started_on="2024-01-10",
            ended_on=None,
            lead=PractitionerFacts(
                name="Sam Practitioner",
                role="social worker",
                team="Northshire Safeguarding Team 2",
                email="sam.practitioner@northshire.example",
                phone="01632 960001",
            ),
        )
        assert facts_from_hub_event(hub_event(type="involvement.ended")).involvement.ended

    def test_a_police_incident_contact(self):
        """Incident type and the child's role come from ``details``."""
        data = {
            "contact_type": "police_incident",
            "summary": "Domestic abuse incident; the child was present.",
            "details": {"incident_type": "domestic_abuse", "role": "child_present"},
        }
        facts = facts_from_hub_event(hub_event(type="contact.recorded", data=data))
        assert (facts.kind, facts.contact) == (
            "contact.recorded",
            ContactFacts(
                contact_type="police_incident", incident_type="domestic_abuse", role="child_present"
            ),
        )

    def test_a_correction_carries_the_replacement(self):
        """Kind is the corrected type; ``supersedes`` names the original."""
        facts = facts_from_hub_event(hub_event(type="event.corrected"))
        assert (facts.kind, facts.is_correction, facts.supersedes, facts.concern) == (
            "concern.raised",
            True,
            "northshire-police:evt-0000",
            ConcernFacts(category="domestic_abuse", risk_level="medium"),
        )

    def test_a_retraction(self):
        """Only what it withdraws."""
        facts = facts_from_hub_event(hub_event(type="event.retracted"))
        assert (facts.is_retraction, facts.supersedes, facts.concern, facts.contact) == (
            True,
            "northshire-police:evt-0000",
            None,
            None,
        )

    def test_no_address_no_household_key(self):
        """Without a postcode and a line there is no key."""
        envelope = example_envelope()
        envelope["person"]["address"] = {"postcode": "ZZ99 3ZZ"}
        event = HubEvent(child_id="ch-0001", ingested_at=NOW, envelope=parse_envelope(envelope))
        assert facts_from_hub_event(event).household_keys == ()


class TestTriggerFactsAreTheNarrativeEntrysFacts:
    """What an alert keeps of a trigger is what the narrative store gives the sharing rules."""

    @pytest.mark.parametrize(
        "event_type",
        ["concern.raised", "involvement.started", "involvement.ended", "contact.recorded"],
    )
    def test_an_event_as_sent(self, event_type):
        """Type, agency and kind, sensitivity and time equal those of the event's entry."""
        envelope = parse_envelope(example_envelope(type=event_type))
        state = fold(ChildAlertState(child_id="ch-0001"), facts_from_envelope(envelope, "ch-0001"))
        (kept,) = trigger_facts(state, [envelope.id])
        assert kept.event_facts() == EventFacts.of(entry_for(envelope, "ch-0001"))

    def test_a_correction(self):
        """The correction's entry and facts carry the corrected type; the event it corrects
        keeps its own entry, so an alert keeps nothing of it (the engine holds the new facts)."""
        envelope = parse_envelope(example_envelope(type="event.corrected"))
        facts = facts_from_envelope(envelope, "ch-0001")
        state = fold(ChildAlertState(child_id="ch-0001"), facts)
        assert (
            facts.kind,
            EventFacts.of(entry_for(envelope, "ch-0001")).event_type,
            trigger_facts(state, [envelope.supersedes, envelope.id]),
        ) == ("concern.raised", "concern.raised", ())
