"""Rule diffs field by field, and the dry-run that lists exactly which disclosures would change."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts import AgencyKind, EventType
from hub.domain.roles import Role
from hub.sharing import (
    AccessRequest,
    ConsentState,
    DisclosureChange,
    FieldChange,
    Obligations,
    PastRequest,
    Purpose,
    Recipient,
    RuleChange,
    diff_packs,
    dry_run,
)
from tests.unit.sharing.conftest import (
    INCIDENT_AT,
    NOW,
    child,
    consent,
    health_event,
    pack,
    police_event,
    rule,
    school_dsl,
    social_worker,
)

pytestmark = pytest.mark.unit

KEEP = rule(id="keep", match={"source_agency_kinds": ["police"]})
DROP = rule(
    id="drop", match={"source_agency_kinds": ["health"]}, consent="required", lawful_basis="consent"
)
TIGHTEN = rule(
    id="tighten",
    match={"source_agency_kinds": ["police"]},
    recipients={"agency_kinds": ["schools"], "roles": ["designated_safeguarding_lead"]},
    purpose="education_safeguarding",
)
OLD = pack(KEEP, DROP, TIGHTEN, version="2025.1")
NEW = pack(
    KEEP,
    {
        **TIGHTEN,
        "obligations": {"remove_fields": ["data.details"], "generalise": {"summary": "Incident."}},
    },
    rule(
        id="add-health-to-school",
        match={"source_agency_kinds": ["health"]},
        recipients={"agency_kinds": ["schools"], "roles": ["designated_safeguarding_lead"]},
        purpose="education_safeguarding",
    ),
    version="2025.2",
)


class TestDiffPacks:
    """Rules added, removed and changed, with the changed fields' old and new values."""

    def test_field_level_diff(self) -> None:
        """Exactly the header, the added and removed ids, and each changed field."""
        got = diff_packs(OLD, NEW)
        assert (got.old_version, got.new_version, got.added, got.removed, got.reordered) == (
            "2025.1",
            "2025.2",
            ("add-health-to-school",),
            ("drop",),
            False,
        )
        assert got.header == (FieldChange("version", "2025.1", "2025.2"),)
        assert got.changed == (
            RuleChange(
                "tighten",
                (
                    FieldChange("obligations.generalise.summary", None, "Incident."),
                    FieldChange("obligations.remove_fields", [], ["data.details"]),
                ),
            ),
        )
        assert not got.rules_unchanged

    def test_same_pack_has_no_changes(self) -> None:
        """A pack compared with itself differs in nothing."""
        got = diff_packs(OLD, OLD)
        assert (got.header, got.added, got.removed, got.changed, got.rules_unchanged) == (
            (),
            (),
            (),
            (),
            True,
        )

    def test_reordering_is_reported(self) -> None:
        """Order matters (it picks generalised wording), so moving rules is a change."""
        assert diff_packs(OLD, pack(DROP, KEEP, TIGHTEN, version="2025.1")).reordered


SW = social_worker()
DSL = school_dsl()
PAST = [
    PastRequest(SW, police_event(), child(), "evt-1", "ch-0001", NOW - timedelta(days=1)),
    PastRequest(
        SW,
        health_event(),
        child(consents=[consent(ConsentState.given)]),
        "evt-2",
        "ch-0001",
        NOW - timedelta(days=2),
    ),
    PastRequest(SW, health_event(), child(), "evt-3", "ch-0002", NOW - timedelta(days=2)),
    PastRequest(DSL, police_event(), child(), "evt-1", "ch-0001", NOW - timedelta(days=1)),
    PastRequest(DSL, health_event(), child(), "evt-4", "ch-0001", NOW - timedelta(days=3)),
    PastRequest(
        AccessRequest(
            "northshire-police", AgencyKind.police, Role.police_ppu, Purpose.law_enforcement
        ),
        police_event(EventType.concern_raised),
        child(),
        "evt-5",
        "ch-0003",
        NOW,
    ),
]


class TestDryRun:
    """Past requests replayed against both packs, grouped by recipient."""

    def test_exact_changes_per_recipient(self) -> None:
        """One added (school sees health), one removed (consented health to social worker),
        one changed (school's police view now redacted), three unchanged."""
        got = dry_run(PAST, OLD, NEW)
        school = Recipient("northshire-primary", "designated_safeguarding_lead", None)
        worker = Recipient("northshire-cs", "social_worker", None)
        assert got.added == {
            school: (
                DisclosureChange(
                    "evt-4",
                    "ch-0001",
                    "education_safeguarding",
                    NOW - timedelta(days=3),
                    (),
                    ("add-health-to-school",),
                    None,
                    Obligations(),
                ),
            )
        }
        assert got.removed == {
            worker: (
                DisclosureChange(
                    "evt-2",
                    "ch-0001",
                    "safeguarding",
                    NOW - timedelta(days=2),
                    ("drop",),
                    (),
                    Obligations(),
                    None,
                ),
            )
        }
        assert got.changed == {
            school: (
                DisclosureChange(
                    "evt-1",
                    "ch-0001",
                    "education_safeguarding",
                    NOW - timedelta(days=1),
                    ("tighten",),
                    ("tighten",),
                    Obligations(),
                    Obligations(
                        remove_fields=("data.details",), generalise=(("summary", "Incident."),)
                    ),
                ),
            )
        }
        assert (got.examined, got.unchanged) == (6, 3)

    def test_as_dict_names_ids_only(self) -> None:
        """The JSON form lists recipients in order with ids, rule ids and obligations."""
        got = dry_run(PAST, OLD, NEW).as_dict()
        assert got["removed"] == [
            {
                "agency_id": "northshire-cs",
                "role": "social_worker",
                "team": None,
                "disclosures": [
                    {
                        "event_id": "evt-2",
                        "child_id": "ch-0001",
                        "purpose": "safeguarding",
                        "at": "2025-05-31T09:00:00+00:00",
                        "old_rule_ids": ["drop"],
                        "new_rule_ids": [],
                        "old_obligations": {
                            "remove_fields": [],
                            "generalise": {},
                            "may_reshare": False,
                        },
                        "new_obligations": None,
                    }
                ],
            }
        ]
        assert (got["old_version"], got["new_version"], got["examined"], got["unchanged"]) == (
            "2025.1",
            "2025.2",
            6,
            3,
        )

    def test_evaluated_when_the_new_pack_starts(self) -> None:
        """With ``when``, both packs decide as of that instant."""
        later = pack(
            KEEP, {**DROP, "id": "drop", "effective_from": "2025-08-01"}, TIGHTEN, version="2025.3"
        )
        assert dry_run(PAST, OLD, later, when=NOW).removed.keys() == {
            Recipient("northshire-cs", "social_worker", None)
        }
        assert dry_run(PAST, OLD, later, when=INCIDENT_AT.replace(month=8, day=2)).removed == {}
