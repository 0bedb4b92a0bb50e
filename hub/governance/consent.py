"""Consent given, refused or withdrawn, per child, purpose and recipient agency, with history.

Every decision is kept; the latest for each (purpose, agency) is the one in force, and
``consent_records`` hands exactly those to ``hub.sharing.ChildContext.build``, so a withdrawal
recorded now decides the next read, also of events shared before it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.governance.audit import Actor, AuditAction
from hub.governance.audit_store import AuditTrail
from hub.governance.tables import consents
from hub.observability import get_logger
from hub.sharing import ConsentRecord, ConsentState, Purpose
from hub.store.reading import reads
from hub.store.times import as_utc

__all__ = ["ConsentDecision", "ConsentStore", "GivenBy", "StoredConsent"]

log = get_logger(__name__)


class ConsentDecision(StrEnum):
    """What the person decided (``hub.sharing.ConsentState`` without ``none``)."""

    given = "given"
    refused = "refused"
    withdrawn = "withdrawn"


class GivenBy(StrEnum):
    """Who decided: the child, or a person or body with parental responsibility."""

    child = "child"
    parent = "parent"
    carer = "carer"
    guardian = "guardian"
    local_authority = "local_authority"
    """The local authority sharing parental responsibility under a care order."""


@dataclass(frozen=True, slots=True)
class StoredConsent:
    """One recorded consent decision."""

    consent_id: str
    child_id: str
    purpose: Purpose
    agency_id: str
    state: ConsentDecision
    given_by: GivenBy
    decided_at: datetime
    recorded_at: datetime
    recorded_by: str
    recorded_by_agency: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "consent_id": self.consent_id,
            "child_id": self.child_id,
            "purpose": str(self.purpose),
            "agency_id": self.agency_id,
            "state": str(self.state),
            "given_by": str(self.given_by),
            "decided_at": self.decided_at.isoformat(),
            "recorded_at": self.recorded_at.isoformat(),
            "recorded_by": self.recorded_by,
            "recorded_by_agency": self.recorded_by_agency,
        }


def _stored(row: Any) -> StoredConsent:
    return StoredConsent(
        consent_id=row.consent_id,
        child_id=row.child_id,
        purpose=Purpose(row.purpose),
        agency_id=row.agency_id,
        state=ConsentDecision(row.state),
        given_by=GivenBy(row.given_by),
        decided_at=as_utc(row.decided_at),
        recorded_at=as_utc(row.recorded_at),
        recorded_by=row.recorded_by,
        recorded_by_agency=row.recorded_by_agency,
    )


class ConsentStore:
    """Consent decisions over one async engine; each one is audited in its own transaction."""

    def __init__(
        self,
        engine: AsyncEngine,
        trail: AuditTrail,
        *,
        clock: Callable[[], datetime] | None = None,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self.engine = engine
        self._trail = trail
        self._clock = clock or (lambda: datetime.now(UTC))
        self._new_id = new_id or (lambda: uuid.uuid4().hex)

    async def record(
        self,
        *,
        child_id: str,
        purpose: Purpose,
        agency_id: str,
        state: ConsentDecision,
        given_by: GivenBy,
        actor: Actor,
        decided_at: datetime | None = None,
    ) -> StoredConsent:
        """Record a decision (``decided_at`` defaults to now) and audit it."""
        now = self._clock()
        decided = now if decided_at is None else decided_at
        if decided.tzinfo is None:
            raise ValueError("decided_at needs a time zone")
        if decided > now:
            raise ValueError("decided_at lies in the future")
        stored = StoredConsent(
            consent_id=self._new_id(),
            child_id=child_id,
            purpose=Purpose(purpose),
            agency_id=agency_id,
            state=ConsentDecision(state),
            given_by=GivenBy(given_by),
            decided_at=decided.astimezone(UTC),
            recorded_at=now.astimezone(UTC),
            recorded_by=actor.sub,
            recorded_by_agency=actor.agency_id or "",
        )
        async with self.engine.begin() as conn:
            await conn.execute(
                consents.insert().values(
                    consent_id=stored.consent_id,
                    child_id=child_id,
                    purpose=str(stored.purpose),
                    agency_id=agency_id,
                    state=str(stored.state),
                    given_by=str(stored.given_by),
                    decided_at=stored.decided_at,
                    recorded_at=stored.recorded_at,
                    recorded_by=stored.recorded_by,
                    recorded_by_agency=stored.recorded_by_agency,
                )
            )
            await self._trail.append_in(
                conn,
                [
                    actor.entry(
                        AuditAction.consent_recorded,
                        child_id=child_id,
                        purpose=str(stored.purpose),
                        extra={
                            "consent_id": stored.consent_id,
                            "state": str(stored.state),
                            "given_by": str(stored.given_by),
                            "for_agency_id": agency_id,
                        },
                    )
                ],
            )
        log.info(
            "consent.recorded",
            consent_id=stored.consent_id,
            child_id=child_id,
            purpose=str(stored.purpose),
            agency_id=agency_id,
            state=str(stored.state),
        )
        return stored

    async def history(self, child_id: str) -> list[StoredConsent]:
        """Every decision recorded for the child, oldest first."""
        c = consents.c
        stmt = (
            select(consents)
            .where(c.child_id == child_id)
            .order_by(c.decided_at, c.recorded_at, c.consent_id)
        )
        async with reads(self.engine) as conn:
            return [_stored(r) for r in (await conn.execute(stmt)).all()]

    async def consent_records(self, child_id: str) -> list[ConsentRecord]:
        """The decision in force per (purpose, agency), oldest first, for ``ChildContext.build``."""
        latest: dict[tuple[str, str], StoredConsent] = {}
        for item in await self.history(child_id):
            latest[(str(item.purpose), item.agency_id)] = item
        ordered = sorted(latest.values(), key=lambda s: (s.decided_at, s.recorded_at))
        return [
            ConsentRecord(s.purpose, s.agency_id, ConsentState(str(s.state)), s.decided_at)
            for s in ordered
        ]
