"""Escalation of unacknowledged alerts (pure): which steps are due, and when the next one is.

An alert carries its escalation plan from the moment it is raised (``AlertRaised.escalation``:
step 1 at the due time, each later step after the rule's interval), so a later rule change
does not move the goalposts of an alert already out. Acknowledging or withdrawing an alert
stops its escalation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from hub.alerts.model import AlertEscalated, AlertStatus, EscalationStep

__all__ = ["EscalationView", "escalations_due", "next_escalation_at"]


@dataclass(frozen=True, slots=True)
class EscalationView:
    """What escalation needs to know of a stored alert."""

    alert_id: str
    status: AlertStatus
    escalation_step: int
    """The last step taken (0: none yet)."""
    plan: Sequence[EscalationStep]


def next_escalation_at(plan: Sequence[EscalationStep], taken: int) -> datetime | None:
    """When the step after ``taken`` is due, or None when the plan is used up."""
    later = [s.at for s in plan if s.step > taken]
    return min(later) if later else None


def escalations_due(alert: EscalationView, *, now: datetime) -> list[AlertEscalated]:
    """Every step of the plan due by ``now`` and not yet taken, in order (none if closed).

    A hub that was down past several steps takes them all at once, each recorded with the
    time it was due and the time it was taken.
    """
    if alert.status not in (AlertStatus.raised, AlertStatus.escalated):
        return []
    return [
        AlertEscalated(
            alert_id=alert.alert_id,
            step=step.step,
            recipients=step.recipients,
            due_at=step.at,
            escalated_at=now,
        )
        for step in sorted(alert.plan, key=lambda s: s.step)
        if step.step > alert.escalation_step and step.at <= now
    ]
