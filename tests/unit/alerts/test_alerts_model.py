"""Recipients' inbox addresses and alert ids: the keys the store and the API agree on."""

from __future__ import annotations

import pytest

from hub.alerts.model import Recipient, RecipientKind, alert_id_for

pytestmark = pytest.mark.unit


class TestAddresses:
    """Each recipient kind has one inbox key."""

    def test_addresses(self):
        """Role and team within an agency, an agency (optionally a role in it), a practitioner."""
        assert [
            Recipient(kind=RecipientKind.role, id="team_manager", agency_id="la").address,
            Recipient(
                kind=RecipientKind.agency, id="school", role="designated_safeguarding_lead"
            ).address,
            Recipient(kind=RecipientKind.agency, id="school").address,
            Recipient(kind=RecipientKind.team, id="duty", agency_id="la").address,
            Recipient(kind=RecipientKind.practitioner, id="a@b.example").address,
        ] == [
            "role:la:team_manager",
            "agency:school:designated_safeguarding_lead",
            "agency:school",
            "team:la:duty",
            "practitioner:a@b.example",
        ]


class TestAlertIds:
    """An occurrence key always gives the same alert id, and different keys different ids."""

    def test_deterministic(self):
        """Fixed value, so a restart or another process agrees."""
        assert alert_id_for("r|ch-0001|e-1") == alert_id_for("r|ch-0001|e-1")
        assert alert_id_for("r|ch-0001|e-1") != alert_id_for("r|ch-0001|e-2")
        assert len(alert_id_for("x")) == 35 and alert_id_for("x").startswith("al-")
