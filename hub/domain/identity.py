"""Deterministic linking of an incoming person to a canonical child on validated identifiers."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["LinkDecision", "LinkKey", "decide_link", "link_keys_for", "new_child_id"]

# Strongest first: a national identifier outranks a pupil number, which outranks local ids.
_PRECEDENCE = ("nhs", "upn", "la", "police")


@dataclass(frozen=True, slots=True, order=True)
class LinkKey:
    """One identifier that can link a record to a child: a validated identifier or a local ref."""

    system: str
    value: str

    @property
    def rank(self) -> int:
        """Lower is stronger; an agency's own subject reference ranks last."""
        try:
            return _PRECEDENCE.index(self.system)
        except ValueError:
            return len(_PRECEDENCE)


@dataclass(frozen=True, slots=True)
class LinkDecision:
    """Which child a record belongs to, which keys to attach, and which keys disagree."""

    child_id: str
    is_new_child: bool
    attach: tuple[LinkKey, ...]
    conflicts: tuple[LinkKey, ...] = field(default=())
    linked_by: LinkKey | None = None


def link_keys_for(
    identifiers: Iterable[tuple[str, str]], *, agency_id: str, subject: str | None
) -> list[LinkKey]:
    """The keys a record offers, strongest first: its identifiers, then the agency's own ref."""
    keys = {LinkKey(system, value) for system, value in identifiers}
    if subject:
        keys.add(LinkKey(f"ref:{agency_id}", subject))
    return sorted(keys, key=lambda k: (k.rank, k.system, k.value))


_CHILD_NAMESPACE = uuid.UUID("6f1d7c8e-2b7a-4c1e-9a53-8d0c6a1f2e41")


def new_child_id(seed: str | None = None) -> str:
    """A canonical child id (opaque, no personal data); the same seed always gives the same id.

    Ingest seeds it with the id of the event that first names the child, so a batch retried
    after a half-confirmed publish mints the same child again rather than a second one.
    """
    if seed is None:
        return f"ch-{uuid.uuid4().hex}"
    return f"ch-{uuid.uuid5(_CHILD_NAMESPACE, seed).hex}"


def decide_link(
    keys: list[LinkKey],
    known: Mapping[LinkKey, str],
    *,
    mint: str | None = None,
    seed: str | None = None,
) -> LinkDecision:
    """Link to the child of the strongest known key; never merge two children silently.

    A new child gets ``mint`` if given, else an id derived from ``seed`` (the event id), so
    the same record always mints the same child. Keys that already point to a *different*
    child are reported as conflicts and left alone: merging people is a reviewed decision,
    not a side effect of ingest.
    """
    if not keys:
        raise ValueError("a record needs at least one link key to be linked")
    strongest_known = next((k for k in keys if k in known), None)
    if strongest_known is None:
        child_id = mint or new_child_id(seed)
        return LinkDecision(child_id=child_id, is_new_child=True, attach=tuple(keys))
    child_id = known[strongest_known]
    attach = tuple(k for k in keys if k not in known)
    conflicts = tuple(k for k in keys if k in known and known[k] != child_id)
    return LinkDecision(
        child_id=child_id,
        is_new_child=False,
        attach=attach,
        conflicts=conflicts,
        linked_by=strongest_known,
    )
