"""The Northshire default pack answers the everyday cases the way English practice expects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts import AgencyKind, EventType, parse_envelope
from contracts.examples import example_envelope
from hub.domain.roles import Role
from hub.sharing import (
    AccessRequest,
    ChildStatus,
    ConsentState,
    EventFacts,
    Purpose,
    decide,
    read_pack,
    redact,
)
from tests.unit.sharing.conftest import (
    NOW,
    child,
    consent,
    health_event,
    police_event,
    school_dsl,
    social_worker,
)

pytestmark = pytest.mark.unit

PACK = read_pack(Path(__file__).resolve().parents[3] / "deploy" / "rules" / "northshire.yaml")
SCHOOL = ["northshire-primary"]
CLINICIAN = AccessRequest(
    "northshire-health", AgencyKind.health, Role.clinician, Purpose.unscheduled_care
)
IG = AccessRequest("northshire-cs", AgencyKind.childrens_services, Role.ig_officer, Purpose.audit)


class TestOperationEncompass:
    """A police domestic-abuse incident reaches the pupil's school DSL, generalised."""

    def test_school_sees_the_generalised_notice_only(self) -> None:
        """No incident detail, no family, no address; may not re-share."""
        envelope = parse_envelope(example_envelope())  # the police domestic-abuse concern
        got = decide(
            school_dsl(), EventFacts.of(envelope), child(involved_agencies=SCHOOL), PACK, now=NOW
        )
        assert (got.permitted, got.rule_id, got.obligations.may_reshare) == (
            True,
            "encompass-school-dsl",
            False,
        )
        view = redact(envelope.model_dump(mode="json"), got.obligations)
        text = json.dumps(view)
        assert "Officers attended" not in text and "Example Street" not in text and "Jo" not in text
        assert view["data"]["summary"].startswith("Operation Encompass: police attended")

    def test_another_school_sees_nothing(self) -> None:
        """A school that is not the child's is denied."""
        got = decide(
            school_dsl(),
            police_event(EventType.contact_recorded, "domestic_abuse"),
            child(),
            PACK,
            now=NOW,
        )
        assert not got.permitted


class TestStricterHandling:
    """Sexual-health information needs consent or significant harm, and loses its detail."""

    def test_withdrawn_consent_denies(self) -> None:
        """Withdrawn consent and no risk: the social worker does not see it."""
        ctx = child(consents=[consent(ConsentState.withdrawn)])
        assert not decide(
            social_worker(), health_event("sexual_health"), ctx, PACK, now=NOW
        ).permitted

    def test_significant_harm_shares_without_detail(self) -> None:
        """On risk of significant harm it is shared under Sch. 1 para 18, generalised."""
        got = decide(
            social_worker(),
            health_event("sexual_health"),
            child(significant_harm=True),
            PACK,
            now=NOW,
        )
        assert (
            got.rule_id,
            str(got.lawful_basis),
            "data.details" in got.obligations.remove_fields,
        ) == (
            "cs-sensitive-health",
            "safeguarding_sch1_para18",
            True,
        )


class TestOtherRules:
    """CP-IS, IG audit and own-agency records."""

    def test_cpis_clinician_sees_plan_status(self) -> None:
        """A clinician sees a CP plan starting, without the reason or the family."""
        event = EventFacts(
            EventType.involvement_started,
            "northshire-cs",
            AgencyKind.childrens_services,
            frozenset(),
            NOW,
        )
        got = decide(CLINICIAN, event, child(statuses=[ChildStatus.cp_plan]), PACK, now=NOW)
        assert (got.rule_id, got.obligations.remove_fields) == (
            "cpis-plan-status",
            ("data.reason", "person.address", "person.related"),
        )
        assert not decide(CLINICIAN, event, child(), PACK, now=NOW).permitted

    def test_ig_sees_everything_unredacted(self) -> None:
        """IG officers of the operator see a sexual-health event in full, for audit."""
        got = decide(IG, health_event("sexual_health", "third_party"), child(), PACK, now=NOW)
        assert (got.rule_id, got.obligations.remove_fields, got.obligations.generalise) == (
            "ig-audit",
            (),
            (),
        )
