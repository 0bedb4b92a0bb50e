"""Stored rule packs: every version applied, with its text, author, reason, time and SHA-256.

Versions are numbered 1, 2, ...; the highest is in force. ``apply`` validates the text with
``hub.sharing.validate_pack`` first (every problem with its place) and refuses a version string
already used. An empty store starts from ``deploy/rules/northshire.yaml``.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import AgencyKind
from hub.governance.audit import Actor, AuditAction
from hub.governance.audit_store import AuditTrail
from hub.governance.tables import rule_packs
from hub.observability import get_logger
from hub.sharing import RulePack, RuleProblem, load_pack, validate_pack
from hub.store.reading import reads

__all__ = ["PackVersionUsed", "RulesStore", "StoredPack"]

log = get_logger(__name__)

_PARSED: OrderedDict[str, RulePack] = OrderedDict()
_PARSED_MAX = 16


class PackVersionUsed(ValueError):
    """The pack's ``version`` was applied before; every change needs a new one."""


def _parsed(sha256: str, text: str, filename: str) -> RulePack:
    """The pack in ``text``, parsed once per content (the same object each time, so the
    decision point's compiled form and cache are reused across requests)."""
    found = _PARSED.get(sha256)
    if found is None:
        found = load_pack(text, filename)
        _PARSED[sha256] = found
        while len(_PARSED) > _PARSED_MAX:
            _PARSED.popitem(last=False)
    else:
        _PARSED.move_to_end(sha256)
    return found


@dataclass(frozen=True, slots=True)
class StoredPack:
    """A stored version: its number, the pack's own version, text and who applied it, why."""

    number: int
    version: str
    text: str
    filename: str
    sha256: str
    author: str
    reason: str
    applied_at: datetime

    @property
    def pack(self) -> RulePack:
        return _parsed(self.sha256, self.text, self.filename)

    def as_dict(self, *, with_text: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "number": self.number,
            "version": self.version,
            "filename": self.filename,
            "sha256": self.sha256,
            "author": self.author,
            "reason": self.reason,
            "applied_at": self.applied_at.isoformat(),
        }
        if with_text:
            out["text"] = self.text
        return out


def _stored(row: Any) -> StoredPack:
    at = row.applied_at
    return StoredPack(
        number=row.number,
        version=row.version,
        text=row.text,
        filename=row.filename,
        sha256=row.sha256,
        author=row.author,
        reason=row.reason,
        applied_at=at if at.tzinfo else at.replace(tzinfo=UTC),
    )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class RulesStore:
    """The rule packs applied over time, over one async engine."""

    def __init__(
        self,
        engine: AsyncEngine,
        trail: AuditTrail,
        *,
        bootstrap_file: Path,
        agencies: Mapping[str, AgencyKind] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self._trail = trail
        self._bootstrap = bootstrap_file
        self._agencies = agencies
        self._clock = clock or (lambda: datetime.now(UTC))

    def validate(self, text: str, filename: str) -> list[RuleProblem]:
        """Every problem in a pack's text, agencies checked against the registry."""
        return validate_pack(text, filename, agencies=self._agencies)

    def load(self, text: str, filename: str) -> RulePack:
        """The pack in ``text`` or ``RulePackInvalid`` with every problem."""
        return load_pack(text, filename, agencies=self._agencies)

    async def current(self) -> StoredPack:
        """The pack in force (the bootstrap pack is stored first when there is none)."""
        async with reads(self.engine) as conn:
            row = (
                await conn.execute(select(rule_packs).order_by(rule_packs.c.number.desc()).limit(1))
            ).one_or_none()
        if row is not None:
            return _stored(row)
        text = self._bootstrap.read_text("utf-8")
        pack = self.load(text, self._bootstrap.name)
        try:
            return await self._store(
                text,
                self._bootstrap.name,
                pack,
                Actor(sub=pack.author),
                f"bootstrapped from {self._bootstrap.name}",
                expect=0,
            )
        except (IntegrityError, PackVersionUsed):
            return await self.current()  # another process stored it first

    async def history(self) -> list[StoredPack]:
        """Every version applied, newest first (bootstrapping first if the store is empty)."""
        await self.current()
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(select(rule_packs).order_by(rule_packs.c.number.desc()))
            ).all()
        return [_stored(r) for r in rows]

    async def apply(self, text: str, filename: str, *, actor: Actor, reason: str) -> StoredPack:
        """Validate and store a new version (``RulePackInvalid``, ``PackVersionUsed``); audited."""
        if not reason.strip():
            raise ValueError("applying a rule pack needs a reason")
        pack = self.load(text, filename)
        current = await self.current()
        try:
            return await self._store(
                text, filename, pack, actor, reason.strip(), expect=current.number
            )
        except IntegrityError as exc:
            raise PackVersionUsed("another rule pack was applied meanwhile; try again") from exc

    async def _store(
        self, text: str, filename: str, pack: RulePack, actor: Actor, reason: str, *, expect: int
    ) -> StoredPack:
        now = self._clock().astimezone(UTC)
        async with self.engine.begin() as conn:
            used = (
                await conn.execute(
                    select(rule_packs.c.number).where(rule_packs.c.version == pack.version)
                )
            ).scalar_one_or_none()
            if used is not None:
                raise PackVersionUsed(
                    f"version {pack.version!r} was applied before (number {used}); "
                    "give the pack a new version"
                )
            top = (await conn.execute(select(func.max(rule_packs.c.number)))).scalar_one()
            if (top or 0) != expect:
                raise PackVersionUsed("another rule pack was applied meanwhile; try again")
            stored = StoredPack(
                number=expect + 1,
                version=pack.version,
                text=text,
                filename=filename[:200],
                sha256=_sha256(text),
                author=actor.sub,
                reason=reason,
                applied_at=now,
            )
            await conn.execute(
                rule_packs.insert().values(
                    number=stored.number,
                    version=stored.version,
                    text=text,
                    filename=stored.filename,
                    sha256=stored.sha256,
                    author=stored.author,
                    reason=reason,
                    applied_at=now,
                )
            )
            await self._trail.append_in(
                conn,
                [
                    actor.entry(
                        AuditAction.rules_applied,
                        pack_version=pack.version,
                        reason=reason,
                        extra={"number": stored.number, "sha256": stored.sha256},
                    )
                ],
            )
        log.info("rules.applied", number=stored.number, version=stored.version)
        return stored
