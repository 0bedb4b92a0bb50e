"""The audit trail's records: what is written for each disclosure, and how it is hashed.

An ``AuditEntry`` is what a caller appends; the trail turns it into an ``AuditRecord`` with a
place in one hash chain: ``hash = SHA-256(canonical JSON of the record with prev_hash)``. The
record holds ids, codes and the facts a rule can match on (event type, source agency, tags,
times, the child's statuses and consent state), never event content, names or addresses, so
past requests can be replayed against a proposed rule pack (``hub rules dry-run``).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from contracts import AgencyKind, EventType
from hub.crypto.signing import canonical_json as signing_canonical_json
from hub.domain.roles import Role
from hub.sharing import (
    AccessRequest,
    ChildContext,
    ChildStatus,
    ConsentRecord,
    ConsentState,
    Decision,
    EventFacts,
    Milestone,
    PastRequest,
    Purpose,
)

__all__ = [
    "DISCLOSURE_ACTIONS",
    "GENESIS",
    "Actor",
    "AuditAction",
    "AuditEntry",
    "AuditRecord",
    "ChildFacts",
    "FactColumns",
    "canonical_json",
    "decisions_entry",
    "fact_columns",
    "record_hash",
]

GENESIS = "0" * 64
"""The ``prev_hash`` of the first record."""


class AuditAction(StrEnum):
    """What an audit record is about."""

    narrative_read = "narrative.read"
    alert_delivered = "alert.delivered"
    delivery_pushed = "delivery.pushed"
    delivery_withheld = "delivery.withheld"
    rules_applied = "rules.applied"
    consent_recorded = "consent.recorded"
    break_glass_used = "break_glass.used"
    break_glass_reviewed = "break_glass.reviewed"
    protection_set = "protection.set"
    protection_lifted = "protection.lifted"
    protected_view_attempt = "protected.view_attempt"
    subject_access_exported = "subject_access.exported"
    audit_searched = "audit.searched"
    retention_erased = "retention.erased"
    operator_erased = "operator.erased"


ERASURE_ACTIONS = (AuditAction.retention_erased.value, AuditAction.operator_erased.value)
"""The records an erasure of a child appends (ingest's person index reads them)."""

DISCLOSURE_ACTIONS = frozenset(
    {
        AuditAction.narrative_read,
        AuditAction.alert_delivered,
        AuditAction.delivery_pushed,
        AuditAction.delivery_withheld,
    }
)
"""Actions whose records carry per-event decisions (replayed by dry-run, listed by SAR)."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: subject, agency (and its kind), role and team; from a token or the CLI."""

    sub: str
    agency_id: str | None = None
    agency_kind: str | None = None
    role: str | None = None
    team: str | None = None

    @classmethod
    def of(cls, caller: Any) -> Actor:
        """The actor of a verified ``hub.auth.Caller``."""
        return cls(
            sub=caller.sub,
            agency_id=caller.agency.id,
            agency_kind=str(caller.agency.kind),
            role=str(caller.role),
            team=caller.team,
        )

    def entry(self, action: AuditAction, **fields: Any) -> AuditEntry:
        """An audit entry of this actor doing ``action``."""
        return AuditEntry(
            action=action,
            who=self.sub,
            role=self.role,
            agency_id=self.agency_id,
            agency_kind=self.agency_kind,
            team=self.team,
            **fields,
        )


@functools.lru_cache(maxsize=65_536)
def _iso(value: datetime) -> str:
    """An instant as ISO 8601 in UTC with microseconds (one spelling per instant).

    Cached: a child's reads spell the same entries' times again and again, and formatting
    is most of what writing a read's record costs. Equal instants spell the same."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_json(value: Mapping[str, Any]) -> str:
    """Canonical JSON (RFC 8785: sorted keys, no whitespace, UTF-8): equal values, equal text.

    The signing module's canonicaliser: float-free records (all of them today) take its
    orjson path, which gives RFC 8785's exact bytes; others use ``rfc8785``.
    """
    return signing_canonical_json(value, exclude=frozenset()).decode("utf-8")


def record_hash(text: str) -> str:
    """SHA-256 (hex) of a record's canonical JSON text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ChildFacts:
    """The child context a decision saw, as far as the requester's agency and purpose go."""

    statuses: tuple[str, ...] = ()
    consent_state: str = ConsentState.none.value
    consent_at: datetime | None = None
    significant_harm: bool = False
    involved: bool = False
    milestones: tuple[tuple[str, datetime], ...] = ()

    @classmethod
    def of(cls, child: ChildContext, request: AccessRequest) -> ChildFacts:
        """What ``child`` tells the decision point about this requester."""
        consent = child.consent_for(request.purpose, request.agency_id)
        return cls(
            statuses=tuple(sorted(str(s) for s in child.statuses)),
            consent_state=str(consent.state),
            consent_at=consent.recorded_at,
            significant_harm=child.significant_harm,
            involved=request.agency_id in child.involved_agencies,
            milestones=tuple(sorted((str(k), v) for k, v in child.milestones.items())),
        )

    def context(self, request: AccessRequest) -> ChildContext:
        """A child context that answers this requester as the recorded one did."""
        consents = (
            ()
            if self.consent_state == ConsentState.none.value
            else (
                ConsentRecord(
                    request.purpose,
                    request.agency_id,
                    ConsentState(self.consent_state),
                    self.consent_at,
                ),
            )
        )
        return ChildContext.build(
            statuses=(ChildStatus(s) for s in self.statuses),
            consents=consents,
            significant_harm=self.significant_harm,
            involved_agencies=(request.agency_id,) if self.involved else (),
            milestones={Milestone(k): v for k, v in self.milestones},
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "statuses": list(self.statuses),
            "consent_state": self.consent_state,
            "consent_at": None if self.consent_at is None else _iso(self.consent_at),
            "significant_harm": self.significant_harm,
            "involved": self.involved,
            "milestones": {k: _iso(v) for k, v in self.milestones},
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ChildFacts:
        return cls(
            statuses=tuple(raw["statuses"]),
            consent_state=raw["consent_state"],
            consent_at=None if raw["consent_at"] is None else _parse(raw["consent_at"]),
            significant_harm=raw["significant_harm"],
            involved=raw["involved"],
            milestones=tuple((k, _parse(v)) for k, v in sorted(raw["milestones"].items())),
        )


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class FactColumns:
    """The event half of a record's compact decisions, for a fixed list of events: their
    ids, the distinct facts, and per event its fact's index and ``occurred_at``.

    It depends only on the events, so a reader that decides the same events again and again
    (a kept narrative basis) builds it once (``fact_columns``) and hands it to each entry.
    """

    event_ids: tuple[str, ...]
    facts: tuple[tuple[Any, ...], ...]
    fact_of: tuple[int, ...]
    times: tuple[str, ...]


def _fact_row(f: EventFacts) -> tuple[Any, ...]:
    return (
        str(f.event_type),
        f.source_agency_id,
        str(f.source_agency_kind),
        tuple(sorted(str(t) for t in f.sensitivity)),
    )


def fact_columns(events: Sequence[tuple[str, EventFacts]]) -> FactColumns:
    """The fact columns of these (event id, facts) pairs, in order."""
    facts: list[tuple[Any, ...]] = []
    fact_index: dict[tuple[Any, ...], int] = {}
    fact_of: list[int] = []
    for _, f in events:
        fact = fact_index.get(f.attributes)
        if fact is None:
            fact = fact_index[f.attributes] = len(facts)
            facts.append(_fact_row(f))
        fact_of.append(fact)
    return FactColumns(
        event_ids=tuple(e for e, _ in events),
        facts=tuple(facts),
        fact_of=tuple(fact_of),
        times=tuple(_iso(f.occurred_at) for _, f in events),
    )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What a caller appends: who did what, about which child and events, and why.

    ``extra`` carries ids and codes only (a consent id, a rule-pack number); free text about a
    child never goes here. ``justification_sha256`` binds a break-glass justification (held in
    the break-glass store) to the record without copying its text.
    """

    action: AuditAction
    who: str
    role: str | None = None
    agency_id: str | None = None
    agency_kind: str | None = None
    team: str | None = None
    purpose: str | None = None
    child_id: str | None = None
    effect: str | None = None
    pack_version: str | None = None
    reason: str = ""
    decisions: Sequence[tuple[str, EventFacts, Decision]] = ()
    """Each decided event: its id, the facts the rules matched on, and the decision."""
    columns: FactColumns | None = None
    """``fact_columns`` of the decisions' events, when the caller keeps them (else built)."""
    child_facts: ChildFacts | None = None
    break_glass_id: str | None = None
    justification_sha256: str | None = None
    event_ids: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def body(self, at: datetime) -> dict[str, Any]:
        """The JSON-ready record (without its chain fields).

        Decisions are kept compactly, because a read of a child with thousands of entries
        decides each one: ``event_ids`` lists the events in order, and ``decisions`` holds
        the distinct event facts and outcomes once each, and per event (aligned with
        ``event_ids``) its ``occurred_at``, ``fact`` and ``outcome`` (indexes into those
        lists). ``AuditRecord.disclosure_items`` expands them.
        """
        decided = self.decisions
        ids = [e for e, _, _ in decided]
        if decided and self.event_ids and list(self.event_ids) != ids:
            raise ValueError("an entry's event_ids must be its decisions' events")
        columns = self.columns
        if columns is None or list(columns.event_ids) != ids:
            columns = fact_columns([(e, f) for e, f, _ in decided])
        reasons: list[str] = []
        reason_index: dict[str, int] = {}
        outcomes: list[list[Any]] = []
        outcome_index: dict[tuple[Any, ...], int] = {}
        by_decision: dict[int, int] = {}  # a read's decisions are mostly the same few objects
        outcome_of: list[int] = []
        for _, _, d in decided:
            outcome = by_decision.get(id(d))
            if outcome is None:
                rule_ids = [g.rule_id for g in d.grants]
                bases = [str(g.lawful_basis) for g in d.grants]
                said = (d.effect, tuple(rule_ids), tuple(bases), d.reason)
                outcome = outcome_index.get(said)
                if outcome is None:
                    if d.reason not in reason_index:
                        reason_index[d.reason] = len(reasons)
                        reasons.append(d.reason)
                    outcome = outcome_index[said] = len(outcomes)
                    outcomes.append([d.effect, rule_ids, bases, reason_index[d.reason]])
                by_decision[id(d)] = outcome
            outcome_of.append(outcome)
        event_ids = ids or list(self.event_ids)
        effect = self.effect
        if effect is None and outcomes:
            effect = "permit" if any(o[0] == "permit" for o in outcomes) else "deny"
        return {
            "at": _iso(at),
            "action": str(self.action),
            "who": self.who,
            "role": self.role,
            "agency_id": self.agency_id,
            "agency_kind": self.agency_kind,
            "team": self.team,
            "purpose": self.purpose,
            "child_id": self.child_id,
            "event_ids": event_ids,
            "effect": effect,
            "pack_version": self.pack_version,
            "rule_ids": _ordered(r for o in outcomes for r in o[1]),
            "lawful_bases": _ordered(b for o in outcomes for b in o[2]),
            "reason": self.reason or (reasons[0] if len(reasons) == 1 else ""),
            "break_glass_id": self.break_glass_id,
            "justification_sha256": self.justification_sha256,
            "child": None if self.child_facts is None else self.child_facts.as_dict(),
            "decisions": {
                "facts": [[t, a, k, list(tags)] for t, a, k, tags in columns.facts],
                "outcomes": outcomes,
                "occurred_at": list(columns.times),
                "fact": list(columns.fact_of),
                "outcome": outcome_of,
            },
            "reasons": reasons,
            "extra": dict(self.extra),
        }


def _ordered(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """A stored record: its place in the chain and its body."""

    seq: int
    hash: str
    prev_hash: str
    body: Mapping[str, Any]

    @property
    def at(self) -> datetime:
        return _parse(self.body["at"])

    @property
    def action(self) -> str:
        return str(self.body["action"])

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form for the API and CLI."""
        return {"seq": self.seq, "hash": self.hash, "prev_hash": self.prev_hash, **self.body}

    def disclosure_items(self) -> list[dict[str, Any]]:
        """One dict per decided event, in order: ``event_id``, ``event_type``,
        ``source_agency_id``, ``source_agency_kind``, ``sensitivity``, ``occurred_at``,
        ``effect``, ``rule_ids``, ``lawful_bases`` and ``reason`` (its text).

        Reads both the compact ``decisions`` of current records and the per-event
        ``disclosures`` list of records written before it.
        """
        b = self.body
        reasons = b.get("reasons") or []
        if "disclosures" in b:  # records before the compact form
            return [
                {
                    **d,
                    "reason": reasons[d["reason"]] if isinstance(d["reason"], int) else d["reason"],
                }
                for d in b["disclosures"]
            ]
        decided = b.get("decisions") or {}
        facts, outcomes = decided.get("facts"), decided.get("outcomes")
        if not decided.get("fact"):  # an entry about events without decisions (a view attempt)
            return []
        rows = zip(decided["occurred_at"], decided["fact"], decided["outcome"], strict=True)
        items = []
        for event_id, (occurred_at, f, o) in zip(b["event_ids"], rows, strict=True):
            event_type, agency_id, agency_kind, sensitivity = facts[f]
            effect, rule_ids, lawful_bases, reason = outcomes[o]
            items.append(
                {
                    "event_id": event_id,
                    "event_type": event_type,
                    "source_agency_id": agency_id,
                    "source_agency_kind": agency_kind,
                    "sensitivity": list(sensitivity),
                    "occurred_at": occurred_at,
                    "effect": effect,
                    "rule_ids": list(rule_ids),
                    "lawful_bases": list(lawful_bases),
                    "reason": reasons[reason],
                }
            )
        return items

    def past_requests(self) -> list[PastRequest]:
        """This record's decisions as past requests (none for non-disclosure actions)."""
        b = self.body
        if b["action"] not in DISCLOSURE_ACTIONS or b["child"] is None or b["role"] is None:
            return []
        request = AccessRequest(
            agency_id=b["agency_id"],
            agency_kind=AgencyKind(b["agency_kind"]),
            role=Role(b["role"]),
            purpose=Purpose(b["purpose"]),
            team=b["team"],
        )
        child = ChildFacts.from_dict(b["child"]).context(request)
        at = self.at
        return [
            PastRequest(
                request=request,
                event=EventFacts(
                    event_type=EventType(d["event_type"]),
                    source_agency_id=d["source_agency_id"],
                    source_agency_kind=AgencyKind(d["source_agency_kind"]),
                    sensitivity=frozenset(d["sensitivity"]),
                    occurred_at=_parse(d["occurred_at"]),
                ),
                child=child,
                event_id=d["event_id"],
                child_id=b["child_id"],
                at=at,
            )
            for d in self.disclosure_items()
        ]


def decisions_entry(
    *,
    action: AuditAction,
    who: str,
    request: AccessRequest,
    child_id: str,
    child: ChildContext,
    decisions: Sequence[tuple[str, EventFacts, Decision]],
    pack_version: str,
    break_glass_id: str | None = None,
    justification_sha256: str | None = None,
    columns: FactColumns | None = None,
    extra: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """The entry for one read or delivery: every event's decision, permitted or not
    (``columns``: the events' ``fact_columns``, when the caller keeps them; ``extra``: the
    record's ids and codes)."""
    return AuditEntry(
        action=action,
        who=who,
        role=str(request.role),
        agency_id=request.agency_id,
        agency_kind=str(request.agency_kind),
        team=request.team,
        purpose=str(request.purpose),
        child_id=child_id,
        effect=None if decisions else "deny",
        pack_version=pack_version,
        decisions=tuple(decisions),
        columns=columns,
        child_facts=ChildFacts.of(child, request),
        break_glass_id=break_glass_id,
        justification_sha256=justification_sha256,
        extra={} if extra is None else dict(extra),
    )
