"""The governance context of many children's deliveries, read in a few queries per batch.

``prepare_read`` asks governance four things per child (the pack in force, protection, the
actor's active break-glass, the consents in force), each its own query. A consumer batch of a
trickle touches nearly one child per event, so that was a few hundred queries per batch.
``prepare_many`` runs the very same ``prepare_read`` per child over a view of governance
whose answers were fetched for the whole batch: the pack once, protection for every child in
one query, and break-glass and consents in one query each that finds the children holding
any; only those children are then asked the stores' own per-child questions (a partner
system holds no break-glass, and few children have consent decisions). So every decision is
made from exactly what ``prepare_read`` would have read.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, cast

from sqlalchemy import bindparam, literal, select, union

from hub.governance import Governance
from hub.governance.audit import Actor
from hub.governance.break_glass import BreakGlass
from hub.governance.read_path import PreparedRead, prepare_read
from hub.governance.rules_store import StoredPack
from hub.governance.tables import break_glass, consents
from hub.sharing import ChildStatus, ConsentRecord, Milestone
from hub.store.reading import reads

__all__ = ["ChildFacts", "prepare_many"]


_GLASS, _CONSENT = "break_glass", "consent"
_HOLDERS = union(
    select(literal(_GLASS).label("held"), break_glass.c.child_id).where(
        break_glass.c.child_id.in_(bindparam("ids", expanding=True)),
        break_glass.c.sub == bindparam("sub"),
    ),
    select(literal(_CONSENT).label("held"), consents.c.child_id).where(
        consents.c.child_id.in_(bindparam("ids", expanding=True))
    ),
)
"""Which children hold any break-glass of an actor, and which any consent decision (the
children's ids and the actor's ``sub`` as parameters, so the statement is built once)."""


class ChildFacts(Protocol):
    """What the narrative says of a child, as ``prepare_read`` takes it (a delivery event or
    a child snapshot)."""

    @property
    def statuses(self) -> frozenset[ChildStatus]: ...
    @property
    def involved_agencies(self) -> frozenset[str]: ...
    @property
    def milestones(self) -> Mapping[Milestone, datetime]: ...
    @property
    def significant_harm(self) -> bool: ...


class _Pack:
    def __init__(self, pack: StoredPack) -> None:
        self._pack = pack

    async def current(self) -> StoredPack:
        return self._pack


class _Protections:
    def __init__(self, protected: set[str]) -> None:
        self._protected = protected

    async def protected_among(self, subject_ids: Iterable[str]) -> set[str]:
        return self._protected & set(subject_ids)


class _BreakGlass:
    def __init__(self, gov: Governance, holders: set[str]) -> None:
        self._gov = gov
        self._holders = holders

    async def active_break_glass(self, child_id: str, actor: Actor) -> BreakGlass | None:
        if child_id not in self._holders:
            return None
        return await self._gov.break_glass.active_break_glass(child_id, actor)


class _Consents:
    def __init__(self, gov: Governance, holders: set[str]) -> None:
        self._gov = gov
        self._holders = holders

    async def consent_records(self, child_id: str) -> list[ConsentRecord]:
        if child_id not in self._holders:
            return []
        return await self._gov.consents.consent_records(child_id)


@dataclass(frozen=True, slots=True)
class _Fetched:
    """The part of ``Governance`` that ``prepare_read`` reads, answered from the batch."""

    rules: _Pack
    protections: _Protections
    break_glass: _BreakGlass
    consents: _Consents


async def _holders(
    gov: Governance, child_ids: Collection[str], actor: Actor
) -> tuple[set[str], set[str]]:
    """The children with any break-glass of ``actor``, and those with any consent decision
    (one statement for both)."""
    found: dict[str, set[str]] = {_GLASS: set(), _CONSENT: set()}
    async with reads(gov.consents.engine) as conn:
        for row in await conn.execute(_HOLDERS, {"ids": list(child_ids), "sub": actor.sub}):
            found[row.held].add(row.child_id)
    return found[_GLASS], found[_CONSENT]


async def prepare_many(
    gov: Governance, facts: Mapping[str, ChildFacts], *, actor: Actor
) -> dict[str, PreparedRead]:
    """``prepare_read`` of each child for ``actor``, with governance asked once per batch."""
    if not facts:
        return {}
    ids = sorted(facts)
    glass_ids, consent_ids = await _holders(gov, ids, actor)
    view = _Fetched(
        rules=_Pack(await gov.rules.current()),
        protections=_Protections(await gov.protections.protected_among(ids)),
        break_glass=_BreakGlass(gov, glass_ids),
        consents=_Consents(gov, consent_ids),
    )
    return {
        child_id: await prepare_read(
            cast(Governance, view),
            child_id=child_id,
            actor=actor,
            statuses=f.statuses,
            involved_agencies=f.involved_agencies,
            milestones=f.milestones,
            significant_harm=f.significant_harm,
        )
        for child_id, f in ((c, facts[c]) for c in ids)
    }
