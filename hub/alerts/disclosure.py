"""Which of a caller's alerts the sharing rules let them see, what of each, and the audit.

An alert discloses its triggering events about a child, so it passes the decision point like
a narrative read: the caller sees an alert only when, for one of their purposes, the rules in
force permit them its primary trigger (the contact of a per-event alert; any event of a window
alert). What the alert says beyond its ids is checked against the same decisions:

- its ``reason`` code derives from fields of trigger events (the police role ``child_present``
  from ``data.details``, ``household`` from the child's address, involvement types from
  ``data.involvement_type``, counts from every event of a window); when the caller's
  obligations remove or generalise such a field, when a source event is not permitted, or
  when a protected location is withheld, the reason becomes the alert rule's kind;
- ``trigger_event_ids`` lists only the permitted ones;
- practitioners' contact details (from ``data.lead_practitioner``) stay only when a permitted
  involvement trigger keeps that field for the caller; the caller's own entry always stays.

An alert the caller may not see is absent, and logged by id only. ``judge_alert`` is pure;
``AlertGate`` loads each child's context once per request (or SSE poll) and writes one
``alert.delivered`` audit record per alert shown. A trigger's facts come from the narrative
store, or, while the projector has not stored it yet, from the facts the alert kept when it was
raised (``StoredAlert.trigger_facts``), so an alert is decided as soon as it is raised.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from contracts import AgencyKind, EventType
from hub.alerts.model import RecipientKind
from hub.alerts.store import StoredAlert
from hub.crypto.data_keys import ChildKeyStore
from hub.governance import Governance
from hub.governance.audit import Actor, AuditAction, AuditEntry, decisions_entry
from hub.governance.protected import LocationPolicy, view_attempt_entry
from hub.governance.read_path import PreparedRead, prepare_read
from hub.narrative_cache import cache_for
from hub.observability import get_logger
from hub.sharing import (
    AccessRequest,
    Decision,
    EventFacts,
    Purpose,
    decide,
    redact,
)
from hub.store.repository import SqlStore
from hub.store.schema import narrative_entries
from hub.store.times import as_utc

__all__ = [
    "AlertDisclosure",
    "AlertGate",
    "ChildBasis",
    "alert_audit_entries",
    "judge_alert",
    "requests_for",
    "with_kept_facts",
]

log = get_logger(__name__)

_NOTES = frozenset({"no_school_known", "no_recipient_found", "kept"})
"""Reason codes the engine writes from its own routing, not from any event's content."""
_MARK = "\x00disclosed\x00"


@dataclass(frozen=True, slots=True)
class ChildBasis:
    """What deciding a child's alerts needs: the read context and the facts of the events."""

    prepared: PreparedRead
    facts: Mapping[str, EventFacts]


@dataclass(frozen=True, slots=True)
class AlertDisclosure:
    """One alert as a caller may see it, and the decisions that let them (or not)."""

    alert: StoredAlert
    request: AccessRequest | None
    decisions: tuple[tuple[str, EventFacts, Decision], ...] = ()
    withheld_location: bool = False

    @property
    def shown(self) -> bool:
        """Whether the caller sees the alert at all."""
        return self.request is not None


def _primary(alert: StoredAlert) -> tuple[str, ...]:
    ids = alert.trigger_event_ids
    return ids if alert.window_start is not None else ids[:1]


def _sources(alert: StoredAlert) -> list[tuple[str, str]]:
    """(event id, field path) pairs the alert's reason code was derived from."""
    ids, reason = alert.trigger_event_ids, alert.reason
    if reason in _NOTES or not ids:
        return []
    if alert.rule_kind == "domestic_abuse_to_school":
        path = "person.address" if reason == "household" else "data.details.role"
        return [(ids[0], path)]
    if alert.window_start is None:  # per-event: the types of the involvements it rests on
        return [(i, "data.involvement_type") for i in ids[1:]]
    return []  # a window's counts rest on every event in it (checked by the caller)


def _put(view: dict[str, Any], path: str) -> None:
    *parents, last = path.split(".")
    for part in parents:
        view = view.setdefault(part, {})
    view[last] = _MARK


def _kept(view: Mapping[str, Any], path: str) -> bool:
    value: Any = view
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False
        value = value[part]
    return value == _MARK


def _survives(
    path: str, decision: Decision, location: LocationPolicy | None, role: str
) -> tuple[bool, bool]:
    """Whether a field at ``path`` reaches the caller unchanged, and whether it was held back
    only by a protected person's location."""
    view: dict[str, Any] = {}
    _put(view, path)
    view = redact(view, decision.obligations)
    if not _kept(view, path):
        return False, False
    if location is not None:
        stripped, held = location.apply(view, role)
        if held and not _kept(stripped, path):
            return False, True
    return True, False


def with_kept_facts(alert: StoredAlert, basis: ChildBasis) -> ChildBasis:
    """The child's basis with the facts the alert kept for those of its triggers the basis
    lacks (the narrative store's facts win; ``basis`` itself is left as it is)."""
    kept = {
        i: f
        for i, f in alert.trigger_facts.items()
        if i in alert.trigger_event_ids and i not in basis.facts
    }
    return ChildBasis(basis.prepared, {**basis.facts, **kept}) if kept else basis


def judge_alert(
    alert: StoredAlert,
    basis: ChildBasis,
    requests: Sequence[AccessRequest],
    *,
    location: LocationPolicy,
    caller_addresses: Sequence[str] = (),
    now: datetime,
    memo: dict[tuple[str, str, str], Decision] | None = None,
) -> AlertDisclosure:
    """The alert as the caller may see it under the first of their requests (purposes) that
    permits its primary trigger; not shown when none does. ``memo`` caches decisions by
    (child, purpose, event) for one request."""
    memo = {} if memo is None else memo
    prepared = basis.prepared
    policy = location.for_pack(prepared.pack) if prepared.protected else None
    for request in requests:
        decisions: list[tuple[str, EventFacts, Decision]] = []
        permitted: dict[str, Decision] = {}
        for event_id in alert.trigger_event_ids:
            facts = basis.facts.get(event_id)
            if facts is None:
                continue  # unknown to the store: nothing can permit it (default deny)
            key = (alert.child_id, str(request.purpose), event_id)
            decision = memo.get(key)
            if decision is None:
                decision = decide(request, facts, prepared.child, prepared.pack, now=now)
                memo[key] = decision
            decisions.append((event_id, facts, decision))
            if decision.permitted:
                permitted[event_id] = decision
        if not any(i in permitted for i in _primary(alert)):
            continue
        return _shown(alert, request, decisions, permitted, policy, caller_addresses)
    return AlertDisclosure(alert=alert, request=None)


def _shown(
    alert: StoredAlert,
    request: AccessRequest,
    decisions: list[tuple[str, EventFacts, Decision]],
    permitted: Mapping[str, Decision],
    policy: LocationPolicy | None,
    caller_addresses: Sequence[str],
) -> AlertDisclosure:
    role = str(request.role)
    reason_ok, location_held = True, False
    if alert.window_start is not None and len(permitted) < len(alert.trigger_event_ids):
        reason_ok = alert.reason in _NOTES
    for event_id, path in _sources(alert):
        decision = permitted.get(event_id)
        if decision is None:
            reason_ok = False
            continue
        ok, held = _survives(path, decision, policy, role)
        reason_ok = reason_ok and ok
        location_held = location_held or held
    leads_ok = any(
        _survives("data.lead_practitioner", d, policy, role)[0]
        for i, d in permitted.items()
        if i in alert.trigger_event_ids[1:] or alert.window_start is not None
    )
    mine = set(caller_addresses)
    recipients = tuple(
        r
        for r in alert.recipients
        if r.kind is not RecipientKind.practitioner or leads_ok or r.address in mine
    )
    seen = dataclasses.replace(
        alert,
        reason=alert.reason if reason_ok else alert.rule_kind,
        trigger_event_ids=tuple(i for i in alert.trigger_event_ids if i in permitted),
        recipients=recipients,
        trigger_facts={i: f for i, f in alert.trigger_facts.items() if i in permitted},
    )
    return AlertDisclosure(seen, request, tuple(decisions), withheld_location=location_held)


def alert_audit_entries(
    shown: AlertDisclosure, *, who: str, actor: Actor, prepared: PreparedRead, step: str
) -> list[AuditEntry]:
    """The audit entries of one alert shown: its trigger decisions (``alert.delivered``), and
    a ``protected.view_attempt`` when a protected location was held back."""
    assert shown.request is not None, "only an alert shown is audited as delivered"
    glass = prepared.break_glass
    entry = decisions_entry(
        action=AuditAction.alert_delivered,
        who=who,
        request=shown.request,
        child_id=shown.alert.child_id,
        child=prepared.child,
        decisions=shown.decisions,
        pack_version=prepared.pack.version,
        break_glass_id=None if glass is None else glass.break_glass_id,
        justification_sha256=None if glass is None else glass.justification_sha256,
    )
    entry = dataclasses.replace(
        entry,
        extra={
            "alert_id": shown.alert.alert_id,
            "alert_rule_id": shown.alert.rule_id,
            "alert_rule_version": shown.alert.rule_version,
            "alert_step": step,
        },
    )
    entries = [entry]
    if shown.withheld_location:
        ids = shown.alert.trigger_event_ids
        entries.append(view_attempt_entry(actor, shown.alert.child_id, ids))
    return entries


class AlertGate:
    """Decides a caller's alerts for one request (or one SSE poll) and audits those shown.

    Each child's context (consents, break-glass, protection, statuses, the pack in force) is
    loaded once per gate, and each decision is made once per child, purpose and event.
    """

    def __init__(
        self,
        *,
        store: SqlStore,
        keys: ChildKeyStore,
        gov: Governance,
        actor: Actor,
        requests: Sequence[AccessRequest],
        addresses: Sequence[str],
        now: datetime,
    ) -> None:
        self._store, self._keys, self._gov = store, keys, gov
        self._actor, self._requests, self._addresses = actor, tuple(requests), tuple(addresses)
        self._now = now
        self._bases: dict[str, ChildBasis] = {}
        self._memo: dict[tuple[str, str, str], Decision] = {}

    async def visible(self, alerts: Sequence[StoredAlert]) -> list[AlertDisclosure]:
        """The alerts the caller may see, as they may see them, in the given order."""
        shown: list[AlertDisclosure] = []
        hidden: list[str] = []
        for alert in alerts:
            basis = with_kept_facts(alert, await self._basis(alert))
            judged = judge_alert(
                alert,
                basis,
                self._requests,
                location=self._gov.location,
                caller_addresses=self._addresses,
                now=self._now,
                memo=self._memo,
            )
            if judged.shown:
                shown.append(judged)
            else:
                hidden.append(alert.alert_id)
        if hidden:
            log.info("alerts.withheld", caller=self._actor.sub, count=len(hidden), alert_ids=hidden)
        return shown

    def awaits_facts(self, alert: StoredAlert) -> bool:
        """Whether an alert this gate judged names trigger events whose facts neither the store
        holds (yet) nor the alert kept: the alert engine can raise it before the narrative
        projector stores its trigger, and until then the rules cannot permit it, nor show all
        of its reason."""
        basis = self._bases.get(alert.child_id)
        return basis is not None and any(
            i not in basis.facts and i not in alert.trigger_facts for i in alert.trigger_event_ids
        )

    async def record(self, shown: Sequence[AlertDisclosure], *, step: str = "listed") -> None:
        """Append the audit entries of the alerts shown, in one batch."""
        entries: list[AuditEntry] = []
        for each in shown:
            prepared = self._bases[each.alert.child_id].prepared
            entries += alert_audit_entries(
                each, who=self._actor.sub, actor=self._actor, prepared=prepared, step=step
            )
        if entries:
            await self._gov.trail.append(*entries)

    async def _basis(self, alert: StoredAlert) -> ChildBasis:
        basis = self._bases.get(alert.child_id)
        missing = set(alert.trigger_event_ids) - set(basis.facts) if basis else set()
        if basis is None:
            basis = await self._load(alert.child_id)
            missing = set(alert.trigger_event_ids) - set(basis.facts)
        if missing:  # a household member's event, recorded on another child
            found = await self._facts_of(missing)
            basis = ChildBasis(basis.prepared, {**basis.facts, **found})
        self._bases[alert.child_id] = basis
        return basis

    async def _load(self, child_id: str) -> ChildBasis:
        basis = await cache_for(self._store, self._keys).basis([child_id])
        prepared = await prepare_read(
            self._gov, child_id=child_id, actor=self._actor, situation=basis.situation
        )
        facts = {i.event_id: f for i, f in zip(basis.items, basis.facts, strict=True)}
        return ChildBasis(prepared, facts)

    async def _facts_of(self, event_ids: set[str]) -> dict[str, EventFacts]:
        n = narrative_entries.c
        query = select(
            n.event_id, n.event_type, n.agency_id, n.agency_kind, n.sensitivity, n.occurred_at
        ).where(n.event_id.in_(sorted(event_ids)))
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {
            r.event_id: EventFacts(
                event_type=EventType(r.event_type),
                source_agency_id=r.agency_id,
                source_agency_kind=AgencyKind(r.agency_kind),
                sensitivity=frozenset(json.loads(r.sensitivity)),
                occurred_at=as_utc(r.occurred_at),  # type: ignore[arg-type]
            )
            for r in rows
        }


def requests_for(caller: Any, purposes: Sequence[Purpose]) -> list[AccessRequest]:
    """One access request per purpose of a ``hub.auth.Caller``, in the order given."""
    agency = caller.agency
    return [AccessRequest(agency.id, agency.kind, caller.role, p, caller.team) for p in purposes]
