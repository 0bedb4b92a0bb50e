"""Protected people: a flag that keeps a child's or person's whereabouts out of every view.

``strip_location`` is pure: it removes every location-bearing key anywhere in a view (address,
postcode, location, coordinates, ...) and any configured extra path. ``LocationPolicy`` says
which roles still see them: those the rule pack in force names (``for_pack``), or else the
configured fallback. The read path strips a view whenever its child, or a person it names, is
protected, and audits the attempt (``protected.view_attempt``) for everyone else.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import AgencyKind
from hub.governance.audit import Actor, AuditAction, AuditEntry
from hub.governance.audit_store import AuditTrail
from hub.governance.tables import protections
from hub.observability import get_logger
from hub.sharing import Obligations, RulePack, redact
from hub.store.reading import reads
from hub.store.times import as_utc

__all__ = [
    "LOCATION_KEYS",
    "PROTECTING_AGENCY_KINDS",
    "LocationPolicy",
    "NotProtected",
    "Protection",
    "ProtectionRefused",
    "ProtectionStore",
    "SubjectKind",
    "strip_location",
    "view_attempt_entry",
]

log = get_logger(__name__)

LOCATION_KEYS = frozenset(
    {
        "address",
        "addresses",
        "address_lines",
        "current_address",
        "home_address",
        "placement_address",
        "postcode",
        "post_code",
        "postal_code",
        "location",
        "locations",
        "geo",
        "geolocation",
        "coordinates",
        "latitude",
        "longitude",
        "lat",
        "lon",
        "lng",
        "uprn",
        "grid_reference",
    }
)
"""Keys (any depth, any case) whose values say where someone is or lives."""

PROTECTING_AGENCY_KINDS = frozenset({AgencyKind.childrens_services, AgencyKind.police})
"""Agency kinds whose staff may set or lift a protection."""


def _without_location(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: _without_location(v)
            for k, v in value.items()
            if not (isinstance(k, str) and k.lower() in LOCATION_KEYS)
        }
    if isinstance(value, list | tuple):
        return [_without_location(v) for v in value]
    return value


def strip_location(view: Mapping[str, Any], extra_paths: Iterable[str] = ()) -> dict[str, Any]:
    """A copy of ``view`` with no location-bearing key at any depth and no ``extra_paths``
    (dotted, ``*`` for every item); ``view`` itself is never changed."""
    stripped: dict[str, Any] = _without_location(view)
    paths = tuple(extra_paths)
    return redact(stripped, Obligations(remove_fields=paths)) if paths else stripped


@dataclass(frozen=True, slots=True)
class LocationPolicy:
    """Which roles still see a protected person's location, and extra paths to remove.

    The rule pack in force names the roles (``protected_location_roles``); the configured
    roles are only the fallback for a pack that names none (see ``for_pack``).
    """

    roles: frozenset[str]
    extra_paths: tuple[str, ...] = ()

    def for_pack(self, pack: RulePack) -> LocationPolicy:
        """The policy under ``pack``: its roles when it names them (``[]``: nobody), else
        this (configured) policy's; the extra paths stay."""
        named = pack.protected_location_roles
        if named is None:
            return self
        return LocationPolicy(roles=frozenset(str(r) for r in named), extra_paths=self.extra_paths)

    def sees_location(self, role: str) -> bool:
        """Whether this role still sees a protected person's location."""
        return str(role) in self.roles

    def apply(self, view: Mapping[str, Any], role: str) -> tuple[dict[str, Any], bool]:
        """The view this role may see of a protected subject, and whether anything was held
        back by the protection (only then is the attempt audited)."""
        if self.sees_location(role):
            return dict(view), False
        stripped = strip_location(view, self.extra_paths)
        return stripped, stripped != view


class SubjectKind(StrEnum):
    """What a protection flag is on."""

    child = "child"
    person = "person"


class ProtectionRefused(PermissionError):
    """The caller's agency may not set or lift protections."""


class NotProtected(LookupError):
    """No protection is in force for that subject."""


@dataclass(frozen=True, slots=True)
class Protection:
    """A protection flag: on whom, why, until when it is reviewed, who set and lifted it."""

    protection_id: str
    subject_id: str
    subject_kind: SubjectKind
    reason: str
    review_on: date
    set_by: str
    set_by_agency: str
    set_at: datetime
    lifted_by: str | None = None
    lifted_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.lifted_at is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "protection_id": self.protection_id,
            "subject_id": self.subject_id,
            "subject_kind": str(self.subject_kind),
            "reason": self.reason,
            "review_on": self.review_on.isoformat(),
            "set_by": self.set_by,
            "set_by_agency": self.set_by_agency,
            "set_at": self.set_at.isoformat(),
            "lifted_by": self.lifted_by,
            "lifted_at": None if self.lifted_at is None else self.lifted_at.isoformat(),
        }


def _stored(row: Any) -> Protection:
    return Protection(
        protection_id=row.protection_id,
        subject_id=row.subject_id,
        subject_kind=SubjectKind(row.subject_kind),
        reason=row.reason,
        review_on=row.review_on,
        set_by=row.set_by,
        set_by_agency=row.set_by_agency,
        set_at=as_utc(row.set_at),  # type: ignore[arg-type]
        lifted_by=row.lifted_by,
        lifted_at=as_utc(row.lifted_at),
    )


def _may_protect(actor: Actor) -> None:
    if actor.agency_kind not in {str(k) for k in PROTECTING_AGENCY_KINDS} or actor.role in (
        None,
        "agency_system",
    ):
        raise ProtectionRefused(
            "only children's services or police staff may set or lift a protection"
        )


def view_attempt_entry(actor: Actor, child_id: str, event_ids: Collection[str]) -> AuditEntry:
    """The audit entry for someone outside the named roles reading a protected child's events."""
    return actor.entry(
        AuditAction.protected_view_attempt,
        child_id=child_id,
        effect="deny",
        event_ids=tuple(event_ids),
        reason="location of a protected person withheld",
    )


class ProtectionStore:
    """Protection flags over one async engine; setting and lifting are audited."""

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

    async def protect(
        self,
        subject_id: str,
        *,
        kind: SubjectKind,
        reason: str,
        review_on: date,
        actor: Actor,
        child_id: str | None = None,
    ) -> Protection:
        """Flag a subject (again: the old flag is lifted and the new one recorded)."""
        _may_protect(actor)
        if not reason.strip():
            raise ValueError("a protection needs a reason")
        now = self._clock().astimezone(UTC)
        if review_on <= now.date():
            raise ValueError("the review date must lie in the future")
        made = Protection(
            protection_id=self._new_id(),
            subject_id=subject_id,
            subject_kind=SubjectKind(kind),
            reason=reason.strip(),
            review_on=review_on,
            set_by=actor.sub,
            set_by_agency=actor.agency_id or "",
            set_at=now,
        )
        c = protections.c
        async with self.engine.begin() as conn:
            await conn.execute(
                update(protections)
                .where(c.subject_id == subject_id, c.lifted_at.is_(None))
                .values(lifted_by=actor.sub, lifted_at=now)
            )
            await conn.execute(
                protections.insert().values(
                    protection_id=made.protection_id,
                    subject_id=subject_id,
                    subject_kind=str(made.subject_kind),
                    reason=made.reason,
                    review_on=review_on,
                    set_by=made.set_by,
                    set_by_agency=made.set_by_agency,
                    set_at=now,
                )
            )
            await self._trail.append_in(
                conn,
                [
                    actor.entry(
                        AuditAction.protection_set,
                        child_id=child_id if child_id is not None else subject_id,
                        extra={
                            "protection_id": made.protection_id,
                            "subject_kind": str(made.subject_kind),
                            "review_on": review_on.isoformat(),
                        },
                    )
                ],
            )
        log.info("protection.set", protection_id=made.protection_id, subject_id=subject_id)
        return made

    async def lift(
        self, subject_id: str, *, actor: Actor, child_id: str | None = None
    ) -> Protection:
        """Lift the protection in force (``NotProtected`` if none); the row is kept."""
        _may_protect(actor)
        found = await self.active(subject_id)
        if found is None:
            raise NotProtected(subject_id)
        now = self._clock().astimezone(UTC)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(protections)
                .where(protections.c.protection_id == found.protection_id)
                .values(lifted_by=actor.sub, lifted_at=now)
            )
            await self._trail.append_in(
                conn,
                [
                    actor.entry(
                        AuditAction.protection_lifted,
                        child_id=child_id if child_id is not None else subject_id,
                        extra={"protection_id": found.protection_id},
                    )
                ],
            )
        log.info("protection.lifted", protection_id=found.protection_id, subject_id=subject_id)
        return dataclasses.replace(found, lifted_by=actor.sub, lifted_at=now)

    async def active(self, subject_id: str) -> Protection | None:
        """The protection in force for this subject, if any."""
        c = protections.c
        stmt = select(protections).where(c.subject_id == subject_id, c.lifted_at.is_(None))
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt.limit(1))).one_or_none()
        return None if row is None else _stored(row)

    async def protected_among(self, subject_ids: Iterable[str]) -> set[str]:
        """Which of these subjects (a child and the people its views name) are protected."""
        wanted = sorted(set(subject_ids))
        if not wanted:
            return set()
        c = protections.c
        stmt = select(c.subject_id).where(c.subject_id.in_(wanted), c.lifted_at.is_(None))
        async with reads(self.engine) as conn:
            return {r.subject_id for r in (await conn.execute(stmt)).all()}

    async def history(self, subject_id: str) -> list[Protection]:
        """Every protection ever set on the subject, oldest first."""
        c = protections.c
        stmt = select(protections).where(c.subject_id == subject_id).order_by(c.set_at)
        async with self.engine.connect() as conn:
            return [_stored(r) for r in (await conn.execute(stmt)).all()]
