"""Break-glass: a practitioner's recorded justification to see beyond the rules for a child at
risk of significant harm; time-limited, always audited, and reviewed by IG afterwards.

While a break-glass is active the read path builds the child's context with
``significant_harm=True`` (rules with ``required_unless_significant_harm`` then permit) and
names the break-glass in every audit record it writes. The justification text is kept here
only; audit records carry its id and SHA-256.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.governance.audit import Actor, AuditAction
from hub.governance.audit_store import AuditTrail
from hub.governance.tables import break_glass
from hub.observability import get_logger
from hub.sharing import Purpose
from hub.store.reading import reads
from hub.store.times import as_utc

__all__ = [
    "BreakGlass",
    "BreakGlassNotFound",
    "BreakGlassStore",
    "JustificationRejected",
    "ReviewRejected",
    "ReviewStatus",
]

log = get_logger(__name__)

MIN_JUSTIFICATION = 20
MAX_JUSTIFICATION = 4000


class ReviewStatus(StrEnum):
    """Where a break-glass stands in the IG review queue."""

    pending = "pending"
    upheld = "upheld"
    not_upheld = "not_upheld"


class JustificationRejected(ValueError):
    """A justification too short or too long to be reviewed."""


class BreakGlassNotFound(LookupError):
    """No break-glass with that id."""


class ReviewRejected(Exception):
    """A review that cannot be made: already reviewed, or by the practitioner who broke glass."""


@dataclass(frozen=True, slots=True)
class BreakGlass:
    """One break-glass: who, for which child, why, until when, and its review."""

    break_glass_id: str
    child_id: str
    sub: str
    agency_id: str
    role: str
    team: str | None
    purpose: Purpose
    justification: str
    started_at: datetime
    expires_at: datetime
    review_status: ReviewStatus
    reviewer: str | None = None
    reviewed_at: datetime | None = None
    review_note: str | None = None

    @property
    def justification_sha256(self) -> str:
        """The SHA-256 of the justification, which audit records carry instead of its text."""
        return hashlib.sha256(self.justification.encode("utf-8")).hexdigest()

    def active(self, now: datetime) -> bool:
        return self.started_at <= now < self.expires_at

    def as_dict(self) -> dict[str, Any]:
        return {
            "break_glass_id": self.break_glass_id,
            "child_id": self.child_id,
            "sub": self.sub,
            "agency_id": self.agency_id,
            "role": self.role,
            "team": self.team,
            "purpose": str(self.purpose),
            "justification": self.justification,
            "started_at": self.started_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "review_status": str(self.review_status),
            "reviewer": self.reviewer,
            "reviewed_at": None if self.reviewed_at is None else self.reviewed_at.isoformat(),
            "review_note": self.review_note,
        }


def _stored(row: Any) -> BreakGlass:
    return BreakGlass(
        break_glass_id=row.break_glass_id,
        child_id=row.child_id,
        sub=row.sub,
        agency_id=row.agency_id,
        role=row.role,
        team=row.team,
        purpose=Purpose(row.purpose),
        justification=row.justification,
        started_at=as_utc(row.started_at),  # type: ignore[arg-type]
        expires_at=as_utc(row.expires_at),  # type: ignore[arg-type]
        review_status=ReviewStatus(row.review_status),
        reviewer=row.reviewer,
        reviewed_at=as_utc(row.reviewed_at),
        review_note=row.review_note,
    )


class BreakGlassStore:
    """Break-glass records and the IG review queue over one async engine."""

    def __init__(
        self,
        engine: AsyncEngine,
        trail: AuditTrail,
        *,
        duration: timedelta = timedelta(hours=4),
        clock: Callable[[], datetime] | None = None,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self.engine = engine
        self._trail = trail
        self._duration = duration
        self._clock = clock or (lambda: datetime.now(UTC))
        self._new_id = new_id or (lambda: uuid.uuid4().hex)

    async def use(
        self,
        *,
        child_id: str,
        actor: Actor,
        justification: str,
        purpose: Purpose = Purpose.safeguarding,
    ) -> BreakGlass:
        """Record a justification; it is active from now for the configured time, and audited."""
        text = justification.strip()
        if len(text) < MIN_JUSTIFICATION:
            raise JustificationRejected(
                f"a justification needs at least {MIN_JUSTIFICATION} characters: say what harm "
                "the child is at risk of and why the rules are not enough"
            )
        if len(text) > MAX_JUSTIFICATION:
            raise JustificationRejected(
                f"a justification has at most {MAX_JUSTIFICATION} characters"
            )
        if actor.agency_id is None or actor.role is None:
            raise ValueError("break-glass needs a practitioner with an agency and a role")
        now = self._clock().astimezone(UTC)
        made = BreakGlass(
            break_glass_id=self._new_id(),
            child_id=child_id,
            sub=actor.sub,
            agency_id=actor.agency_id,
            role=actor.role,
            team=actor.team,
            purpose=Purpose(purpose),
            justification=text,
            started_at=now,
            expires_at=now + self._duration,
            review_status=ReviewStatus.pending,
        )
        async with self.engine.begin() as conn:
            await conn.execute(
                break_glass.insert().values(
                    break_glass_id=made.break_glass_id,
                    child_id=child_id,
                    sub=made.sub,
                    agency_id=made.agency_id,
                    role=made.role,
                    team=made.team,
                    purpose=str(made.purpose),
                    justification=text,
                    started_at=made.started_at,
                    expires_at=made.expires_at,
                    review_status=str(made.review_status),
                )
            )
            await self._trail.append_in(
                conn,
                [
                    actor.entry(
                        AuditAction.break_glass_used,
                        child_id=child_id,
                        purpose=str(made.purpose),
                        effect="permit",
                        break_glass_id=made.break_glass_id,
                        justification_sha256=made.justification_sha256,
                        extra={"expires_at": made.expires_at.isoformat()},
                    )
                ],
            )
        log.info(
            "break_glass.used",
            break_glass_id=made.break_glass_id,
            child_id=child_id,
            agency_id=made.agency_id,
            role=made.role,
        )
        return made

    async def get(self, break_glass_id: str) -> BreakGlass:
        """The break-glass with this id, or ``BreakGlassNotFound``."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(break_glass).where(break_glass.c.break_glass_id == break_glass_id)
                )
            ).one_or_none()
        if row is None:
            raise BreakGlassNotFound(break_glass_id)
        return _stored(row)

    async def active_break_glass(self, child_id: str, actor: Actor) -> BreakGlass | None:
        """The caller's break-glass for this child that is active now (latest first), if any."""
        c = break_glass.c
        now = self._clock().astimezone(UTC)
        stmt = (
            select(break_glass)
            .where(
                c.child_id == child_id,
                c.sub == actor.sub,
                c.agency_id == actor.agency_id,
                c.started_at <= now,
                c.expires_at > now,
            )
            .order_by(c.started_at.desc())
            .limit(1)
        )
        async with reads(self.engine) as conn:
            row = (await conn.execute(stmt)).one_or_none()
        return None if row is None else _stored(row)

    async def reviews(self, status: ReviewStatus | None = ReviewStatus.pending) -> list[BreakGlass]:
        """The review queue (oldest first): pending ones by default, or every one (None)."""
        c = break_glass.c
        stmt = select(break_glass).order_by(c.started_at, c.break_glass_id)
        if status is not None:
            stmt = stmt.where(c.review_status == str(status))
        async with self.engine.connect() as conn:
            return [_stored(r) for r in (await conn.execute(stmt)).all()]

    async def review(
        self, break_glass_id: str, *, reviewer: Actor, upheld: bool, note: str
    ) -> BreakGlass:
        """Record IG's review (upheld or not, with a note); audited. Reviewed once only."""
        if not note.strip():
            raise ReviewRejected("a review needs a note")
        found = await self.get(break_glass_id)
        if found.sub == reviewer.sub:
            raise ReviewRejected("nobody reviews their own break-glass")
        status = ReviewStatus.upheld if upheld else ReviewStatus.not_upheld
        now = self._clock().astimezone(UTC)
        c = break_glass.c
        async with self.engine.begin() as conn:
            done = await conn.execute(
                update(break_glass)
                .where(c.break_glass_id == break_glass_id, c.review_status == "pending")
                .values(
                    review_status=str(status),
                    reviewer=reviewer.sub,
                    reviewed_at=now,
                    review_note=note.strip(),
                )
            )
            if done.rowcount != 1:
                raise ReviewRejected(f"break-glass {break_glass_id} has already been reviewed")
            await self._trail.append_in(
                conn,
                [
                    reviewer.entry(
                        AuditAction.break_glass_reviewed,
                        child_id=found.child_id,
                        break_glass_id=break_glass_id,
                        extra={"review_status": str(status), "practitioner": found.sub},
                    )
                ],
            )
        log.info("break_glass.reviewed", break_glass_id=break_glass_id, status=str(status))
        return await self.get(break_glass_id)
