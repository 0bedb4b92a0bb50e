"""What the decision point is asked about and what it answers: plain frozen values.

A decision depends only on these attributes, never on an event's id, so equal attributes give
equal decisions and the decision point can cache them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from contracts import AgencyKind, EventType, LawfulBasis
from hub.domain.roles import Role
from hub.sharing.rules import ChildStatus, Milestone, Purpose

__all__ = [
    "AccessRequest",
    "ChildContext",
    "ConsentRecord",
    "ConsentState",
    "Decision",
    "EventFacts",
    "Grant",
    "GrantedVia",
    "Obligations",
]


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """Who asks and why: the requester's agency, its kind, their role and team, the purpose."""

    agency_id: str
    agency_kind: AgencyKind
    role: Role
    purpose: Purpose
    team: str | None = None
    attributes: tuple[Any, ...] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Plain strings in key order, computed once: the decision cache hashes them per call.
        attributes = (
            self.agency_id,
            str(self.agency_kind),
            str(self.role),
            self.team,
            str(self.purpose),
        )
        object.__setattr__(self, "attributes", attributes)


@dataclass(frozen=True, slots=True)
class EventFacts:
    """The attributes of an event a rule can match on (no id, no content)."""

    event_type: EventType
    source_agency_id: str
    source_agency_kind: AgencyKind
    sensitivity: frozenset[str]
    occurred_at: datetime
    attributes: tuple[Any, ...] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        attributes = (
            str(self.event_type),
            self.source_agency_id,
            str(self.source_agency_kind),
            frozenset(str(t) for t in self.sensitivity),
        )
        object.__setattr__(self, "attributes", attributes)

    @classmethod
    def of(cls, item: Any) -> EventFacts:
        """Facts of a narrative entry (``StoredEntry``/``NarrativeEntry``) or an ``Envelope``."""
        if hasattr(item, "event_type"):
            return cls(
                event_type=EventType(item.event_type),
                source_agency_id=item.agency_id,
                source_agency_kind=AgencyKind(item.agency_kind),
                sensitivity=frozenset(str(t) for t in item.sensitivity),
                occurred_at=item.occurred_at,
            )
        return cls(
            event_type=EventType(item.type),
            source_agency_id=item.agency_id,
            source_agency_kind=AgencyKind(item.agency_kind),
            sensitivity=frozenset(str(t) for t in item.sensitivity),
            occurred_at=item.time,
        )


class ConsentState(StrEnum):
    """The latest recorded consent for a purpose and recipient agency."""

    given = "given"
    refused = "refused"
    withdrawn = "withdrawn"
    none = "none"


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """The latest consent decision for one purpose and one recipient agency, and when."""

    purpose: Purpose
    agency_id: str
    state: ConsentState
    recorded_at: datetime | None = None


@dataclass(frozen=True)
class ChildContext:
    """What the rules need to know about the child: open statuses, consents, risk, milestones.

    ``significant_harm`` is true when a risk of significant harm is recorded or a practitioner
    has broken glass with a justification. ``involved_agencies`` are the agencies with an open
    involvement with the child. ``milestones`` maps each milestone to its latest occurrence.
    """

    statuses: frozenset[ChildStatus] = frozenset()
    consents: tuple[ConsentRecord, ...] = ()
    significant_harm: bool = False
    involved_agencies: frozenset[str] = frozenset()
    milestones: Mapping[Milestone, datetime] = field(default_factory=dict, hash=False)
    _by_key: dict[tuple[str, str], ConsentRecord] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    _consent_keys: dict[tuple[str, str], tuple[str, datetime | None]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    status_key: frozenset[str] = field(
        default=frozenset(), init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        by_key = {(str(c.purpose), c.agency_id): c for c in self.consents}
        object.__setattr__(self, "_by_key", by_key)
        keys = {
            k: (str(c.state), None if c.state is ConsentState.none else c.recorded_at)
            for k, c in by_key.items()
        }
        object.__setattr__(self, "_consent_keys", keys)
        object.__setattr__(self, "status_key", frozenset(str(s) for s in self.statuses))

    def consent_key(self, purpose: str, agency_id: str) -> tuple[str, datetime | None]:
        """The consent state and its date for a purpose and agency, as plain values."""
        return self._consent_keys.get((purpose, agency_id), _NO_CONSENT)

    @classmethod
    def build(
        cls,
        *,
        statuses: Iterable[ChildStatus] = (),
        consents: Iterable[ConsentRecord] = (),
        significant_harm: bool = False,
        involved_agencies: Iterable[str] = (),
        milestones: Mapping[Milestone, datetime] | None = None,
    ) -> ChildContext:
        """A context from any iterables (later consents for the same key win)."""
        return cls(
            statuses=frozenset(statuses),
            consents=tuple(consents),
            significant_harm=significant_harm,
            involved_agencies=frozenset(involved_agencies),
            milestones=dict(milestones or {}),
        )

    def consent_for(self, purpose: Purpose, agency_id: str) -> ConsentRecord:
        """The consent recorded for this purpose and agency (state ``none`` when nothing is)."""
        found = self._by_key.get((str(purpose), agency_id))
        return found or ConsentRecord(purpose, agency_id, ConsentState.none)


_NO_CONSENT: tuple[str, None] = ("none", None)


@dataclass(frozen=True, slots=True)
class Obligations:
    """What a permitted recipient sees: removed paths, generalised paths, re-sharing."""

    remove_fields: tuple[str, ...] = ()
    generalise: tuple[tuple[str, str], ...] = ()
    may_reshare: bool = False

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form for the audit record."""
        return {
            "remove_fields": list(self.remove_fields),
            "generalise": dict(self.generalise),
            "may_reshare": self.may_reshare,
        }


class GrantedVia(StrEnum):
    """How a rule's consent condition was met."""

    not_required = "not_required"
    consent = "consent"
    significant_harm = "significant_harm"


@dataclass(frozen=True, slots=True)
class Grant:
    """One rule that permitted the disclosure, the basis it relied on and how consent was met."""

    rule_id: str
    lawful_basis: LawfulBasis
    via: GrantedVia


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer: permit or deny, obligations, the rules and pack version, and why.

    ``reason`` is written for the audit trail and IG; it may name sensitivity tags and consent
    dates, so show a requester only that something is not shared with them.
    ``held`` is set when a delay is all that stands in the way (a rule would permit it once
    its delay ends), and ``not_before`` too when that end is known (a milestone's is not until
    it is recorded).
    """

    permitted: bool
    pack_version: str
    reason: str
    obligations: Obligations = Obligations()
    grants: tuple[Grant, ...] = ()
    not_before: datetime | None = None
    held: bool = False

    @property
    def rule_id(self) -> str | None:
        """The first permitting rule in pack order (None when denied)."""
        return self.grants[0].rule_id if self.grants else None

    @property
    def lawful_basis(self) -> LawfulBasis | None:
        """The lawful basis of the first permitting rule (None when denied)."""
        return self.grants[0].lawful_basis if self.grants else None

    @property
    def effect(self) -> str:
        """``permit`` or ``deny``."""
        return "permit" if self.permitted else "deny"

    def audit_fields(self) -> dict[str, Any]:
        """What an audit record of this decision needs, JSON-ready."""
        return {
            "effect": self.effect,
            "pack_version": self.pack_version,
            "rule_ids": [g.rule_id for g in self.grants],
            "lawful_bases": [str(g.lawful_basis) for g in self.grants],
            "granted_via": [str(g.via) for g in self.grants],
            "obligations": self.obligations.as_dict(),
            "reason": self.reason,
            "not_before": None if self.not_before is None else self.not_before.isoformat(),
        }
