"""Escalation: an unacknowledged alert goes to the team manager, then the service manager."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.alerts.escalation import EscalationView, escalations_due, next_escalation_at
from hub.alerts.model import AlertEscalated, AlertStatus, EscalationStep, Recipient, RecipientKind

pytestmark = pytest.mark.unit

DUE = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
TM = Recipient(kind=RecipientKind.role, id="team_manager", agency_id="northshire-cs")
SM = Recipient(kind=RecipientKind.role, id="service_manager", agency_id="northshire-cs")
PLAN = (
    EscalationStep(step=1, at=DUE, recipients=(TM,)),
    EscalationStep(step=2, at=DUE + timedelta(minutes=30), recipients=(SM,)),
)


def view(status: AlertStatus = AlertStatus.raised, step: int = 0) -> EscalationView:
    return EscalationView(alert_id="al-1", status=status, escalation_step=step, plan=PLAN)


class TestEscalationsDue:
    """Steps fall due in order; each is recorded with when it was due and when taken."""

    @pytest.mark.parametrize(
        ("status", "taken", "minutes_after_due", "steps"),
        [
            (AlertStatus.raised, 0, -1, []),
            (AlertStatus.raised, 0, 0, [1]),
            (AlertStatus.raised, 0, 29, [1]),
            (AlertStatus.escalated, 1, 29, []),
            (AlertStatus.escalated, 1, 30, [2]),
            (AlertStatus.raised, 0, 45, [1, 2]),
            (AlertStatus.escalated, 2, 600, []),
            (AlertStatus.acknowledged, 0, 45, []),
            (AlertStatus.withdrawn, 1, 45, []),
        ],
    )
    def test_table(self, status, taken, minutes_after_due, steps):
        """Which steps are taken for an alert in each state."""
        now = DUE + timedelta(minutes=minutes_after_due)
        assert [e.step for e in escalations_due(view(status, taken), now=now)] == steps

    def test_the_whole_step(self):
        """The service manager's step after the hub was down past both."""
        now = DUE + timedelta(hours=2)
        assert escalations_due(view(AlertStatus.escalated, 1), now=now) == [
            AlertEscalated(
                alert_id="al-1",
                step=2,
                recipients=(SM,),
                due_at=DUE + timedelta(minutes=30),
                escalated_at=now,
            )
        ]

    def test_next_escalation_time(self):
        """The next step's time, then nothing."""
        assert [next_escalation_at(PLAN, n) for n in (0, 1, 2)] == [
            DUE,
            DUE + timedelta(minutes=30),
            None,
        ]
