"""The policy decision point: may this requester see this event about this child, and how?

``decide`` is a pure function of its inputs. Rules grant; anything no rule in force grants is
denied. When several rules permit, their obligations are merged (see ``merge_obligations``).
A compiled form of each pack indexes rules by (purpose, role) per span of time in which the set
of rules in force is constant, and caches the time-independent part of each decision by its
attribute tuple, so a long narrative costs a handful of evaluations.
"""

from __future__ import annotations

import weakref
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from hub.sharing.facts import (
    AccessRequest,
    ChildContext,
    Decision,
    EventFacts,
    Grant,
    GrantedVia,
    Obligations,
)
from hub.sharing.obligations import merge_obligations, obligations_of
from hub.sharing.rules import ConsentMode, Delay, Rule, RulePack

__all__ = ["CompiledPack", "compile_pack", "decide"]

_NONE_STATUS = frozenset({"none"})
_NEAREST = 3  # near-miss rules named in a denial
_BEGINNING = datetime.min.replace(tzinfo=UTC)


def _set(values: Sequence[Any] | None) -> frozenset[str] | None:
    """A condition as a set of plain strings (enum values), or None for "any"."""
    return None if values is None else frozenset(str(v) for v in values)


@dataclass(frozen=True, slots=True, eq=False)
class _Compiled:
    """A rule with its conditions as sets, for fast matching."""

    rule: Rule
    index: int
    source_kinds: frozenset[str] | None
    source_agencies: frozenset[str] | None
    event_types: frozenset[str] | None
    sens_any: frozenset[str] | None
    sens_all: frozenset[str] | None
    sens_none: frozenset[str] | None
    sens_only: frozenset[str] | None
    statuses: frozenset[str] | None
    agency_kinds: frozenset[str] | None
    agencies: frozenset[str] | None
    roles: frozenset[str] | None
    teams: frozenset[str] | None
    involved: bool
    own_agency: bool
    consent: ConsentMode
    delay: Delay | None
    obligations: Obligations
    active_from: datetime
    active_to: datetime | None

    @classmethod
    def of(cls, rule: Rule, index: int) -> _Compiled:
        m, r = rule.match, rule.recipients
        return cls(
            rule=rule,
            index=index,
            source_kinds=_set(m.source_agency_kinds),
            source_agencies=_set(m.source_agencies),
            event_types=_set(m.event_types),
            sens_any=_set(m.sensitivity_any),
            sens_all=_set(m.sensitivity_all),
            sens_none=_set(m.sensitivity_none),
            sens_only=_set(m.sensitivity_only),
            statuses=_set(m.child_status),
            agency_kinds=_set(r.agency_kinds),
            agencies=_set(r.agencies),
            roles=_set(r.roles),
            teams=_set(r.teams),
            involved=r.involved_with_child,
            own_agency=r.own_agency_only,
            consent=rule.consent,
            delay=rule.obligations.delay,
            obligations=obligations_of(rule.obligations),
            active_from=rule.active_from.astimezone(UTC),
            active_to=None if rule.active_to is None else rule.active_to.astimezone(UTC),
        )

    def in_force(self, now: datetime) -> bool:
        return self.active_from <= now and (self.active_to is None or now < self.active_to)

    def for_recipient(self, req: _Key) -> bool:
        """Agency kind, agency and team fit (purpose and role are fitted by the index)."""
        return (
            (self.agency_kinds is None or req.agency_kind in self.agency_kinds)
            and (self.agencies is None or req.agency_id in self.agencies)
            and (self.teams is None or req.team in self.teams)
        )

    def miss(self, key: _Key, now: datetime) -> int:
        """0 when every condition holds; else the number of the first that fails (higher is
        nearer to applying). ``explain`` turns the number into words."""
        if self.source_kinds is not None and key.source_kind not in self.source_kinds:
            return 1
        if self.source_agencies is not None and key.source_id not in self.source_agencies:
            return 2
        if self.own_agency and key.source_id != key.agency_id:
            return 3
        if self.event_types is not None and key.event_type not in self.event_types:
            return 4
        tags = key.sensitivity
        if self.sens_any is not None and not (tags & self.sens_any):
            return 5
        if self.sens_all is not None and not self.sens_all <= tags:
            return 6
        if self.sens_none is not None and tags & self.sens_none:
            return 7
        if self.sens_only is not None and not tags <= self.sens_only:
            return 8
        if self.statuses is not None and not (key.statuses or _NONE_STATUS) & self.statuses:
            return 9
        if self.involved and not key.involved:
            return 10
        if self.consent is ConsentMode.required and key.consent_state != "given":
            return 11
        if (
            self.consent is ConsentMode.required_unless_significant_harm
            and key.consent_state != "given"
            and not key.significant_harm
        ):
            return 12
        if self.active_from > now:
            return 13
        if self.active_to is not None and now >= self.active_to:
            return 14
        return 0

    def explain(self, stage: int, key: _Key) -> str:
        """The failed condition numbered ``stage`` by ``miss``, in words."""
        tags = key.sensitivity
        match stage:
            case 1:
                return f"covers events from {_words(self.source_kinds)} agencies only"
            case 2:
                return f"covers events from {_words(self.source_agencies)} only"
            case 3:
                return "covers only events the recipient's own agency sent"
            case 4:
                return f"covers {_words(self.event_types)} events only"
            case 5:
                return f"needs an event tagged {_words(self.sens_any, 'or')}"
            case 6:
                return f"needs an event tagged {_words(self.sens_all, 'and')}"
            case 7:
                return f"excludes events tagged {_words(tags & (self.sens_none or set()), 'or')}"
            case 8:
                return f"excludes events tagged {_words(tags - (self.sens_only or set()), 'or')}"
            case 9:
                return f"applies only to a child with status {_words(self.statuses, 'or')}"
            case 10:
                return "needs the recipient's agency to have an open involvement with the child"
            case 11:
                return f"needs consent: {_consent_words(key)}"
            case 12:
                return f"needs consent or a risk of significant harm: {_consent_words(key)}"
            case 13:
                return f"is not in force until {self.rule.active_from.isoformat()}"
            case _:
                return f"stopped being in force on {_iso(self.rule.active_to)}"

    def granted_via(self, key: _Key) -> GrantedVia:
        if self.consent is ConsentMode.not_required:
            return GrantedVia.not_required
        if key.consent_state == "given":
            return GrantedVia.consent
        return GrantedVia.significant_harm

    def grant(self, key: _Key) -> Grant:
        via = self.granted_via(key)
        basis = (
            self.rule.harm_basis if via is GrantedVia.significant_harm else self.rule.lawful_basis
        )
        return Grant(self.rule.id, basis, via)


def _iso(value: datetime | None) -> str:
    return "" if value is None else value.isoformat()


def _words(values: frozenset[Any] | set[Any] | None, joiner: str = "or") -> str:
    items = sorted(str(v) for v in values or ())
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {joiner} {items[-1]}"


def _consent_words(key: _Key) -> str:
    purpose, agency = key.purpose, key.agency_id
    if key.consent_state == "none" or key.consent_at is None:
        return f"none recorded for {purpose} with {agency}"
    return f"{key.consent_state} for {purpose} with {agency} on {key.consent_at.isoformat()}"


class _Key(NamedTuple):
    """Every attribute a decision depends on, apart from time: the cache key.

    Plain strings, not enums, so hashing it stays in C."""

    epoch: int
    agency_id: str
    agency_kind: str
    role: str
    team: str | None
    purpose: str
    event_type: str
    source_id: str
    source_kind: str
    sensitivity: frozenset[str]
    statuses: frozenset[str]
    consent_state: str
    consent_at: datetime | None
    significant_harm: bool
    involved: bool


@dataclass(frozen=True, slots=True)
class _Outcome:
    """The time-independent part of a decision: final, or candidates waiting on delays."""

    final: Decision | None
    candidates: tuple[tuple[_Compiled, Grant], ...]


class CompiledPack:
    """A rule pack indexed for matching, with its decision cache (holds no reference to the
    pack object, so a pack no longer used is freed with its compiled form)."""

    def __init__(self, pack: RulePack, *, cache_size: int = 65_536) -> None:
        self.version = pack.version
        self.rules = tuple(_Compiled.of(rule, i) for i, rule in enumerate(pack.rules))
        self._boundaries = sorted(
            {r.active_from for r in self.rules} | {r.active_to for r in self.rules if r.active_to}
        )
        self._stamps = [b.timestamp() for b in self._boundaries]
        self._all = self._slots(self.rules)
        self._for_slot: dict[tuple[str, str], tuple[_Compiled, ...]] = {}
        self._merged: dict[tuple[int, ...], Obligations] = {}
        self._cached = lru_cache(maxsize=cache_size)(self._evaluate)

    def cache_clear(self) -> None:
        """Forget cached decisions (for benchmarks; packs are immutable, so never needed)."""
        self._cached.cache_clear()

    @staticmethod
    def _slots(rules: Sequence[_Compiled]) -> dict[tuple[str, str], tuple[_Compiled, ...]]:
        """Rules by (purpose, role); a rule naming no role sits under role ``*``."""
        index: dict[tuple[str, str], tuple[_Compiled, ...]] = {}
        for rule in rules:
            for role in rule.roles if rule.roles is not None else {"*"}:
                slot = (str(rule.rule.purpose), str(role))
                index[slot] = (*index.get(slot, ()), rule)
        return index

    def _candidates(self, key: _Key) -> tuple[_Compiled, ...]:
        """Rules for the key's purpose and role (or naming no role), in pack order."""
        slot = (key.purpose, key.role)
        found = self._for_slot.get(slot)
        if found is None:
            named = self._all.get(slot, ())
            anyone = self._all.get((key.purpose, "*"), ())
            found = tuple(sorted((*named, *anyone), key=lambda r: r.index))
            self._for_slot[slot] = found
        return found

    def decide(
        self,
        request: AccessRequest,
        event: EventFacts,
        child: ChildContext,
        *,
        now: datetime,
        use_cache: bool = True,
    ) -> Decision:
        """The decision for one request, event and child at ``now``."""
        epoch, req, tail = self._key_parts(request, child, now)
        key = _Key(epoch, *req, *event.attributes, *tail)
        outcome = self._cached(key) if use_cache else self._evaluate(key)
        if outcome.final is not None:
            return outcome.final
        return self._after_delays(outcome.candidates, event, child, now)

    def _key_parts(
        self, request: AccessRequest, child: ChildContext, now: datetime
    ) -> tuple[int, tuple[Any, ...], tuple[Any, ...]]:
        """The key's parts that do not depend on the event: the rule epoch of ``now``, the
        request's attributes, and the child's (statuses, consent, harm, involvement)."""
        req = request.attributes
        state, at = child.consent_key(req[4], req[0])
        epoch = bisect_right(self._stamps, now.timestamp()) if self._stamps else 0
        tail = (
            child.status_key,
            state,
            at,
            child.significant_harm,
            req[0] in child.involved_agencies,
        )
        return epoch, req, tail

    def decide_all(
        self,
        request: AccessRequest,
        events: Sequence[EventFacts],
        child: ChildContext,
        *,
        now: datetime,
    ) -> list[Decision]:
        """``decide`` for each event of one child for one request, in order.

        The same answers as one ``decide`` per event; the request's and child's part of the
        key is built once, and events with the same attributes share one cache lookup.
        """
        epoch, req, tail = self._key_parts(request, child, now)
        seen: dict[tuple[Any, ...], _Outcome] = {}
        decided: list[Decision] = []
        for event in events:
            outcome = seen.get(event.attributes)
            if outcome is None:
                outcome = seen[event.attributes] = self._cached(
                    _Key(epoch, *req, *event.attributes, *tail)
                )
            if outcome.final is not None:
                decided.append(outcome.final)
            else:
                decided.append(self._after_delays(outcome.candidates, event, child, now))
        return decided

    def _evaluate(self, key: _Key) -> _Outcome:
        """Match the rules during the key's epoch (any instant in it answers alike)."""
        now = self._boundaries[key.epoch - 1] if key.epoch else _BEGINNING
        matching: list[_Compiled] = []
        misses: list[tuple[int, _Compiled]] = []
        for rule in self._candidates(key):
            if rule.for_recipient(key):
                stage = rule.miss(key, now)
                if stage:
                    misses.append((stage, rule))
                else:
                    matching.append(rule)
        if not matching:
            return _Outcome(self._denial(key, misses), ())
        candidates = tuple((r, r.grant(key)) for r in matching)
        if any(r.delay is not None for r in matching):
            return _Outcome(None, candidates)
        return _Outcome(self._permit(candidates), candidates)

    def _permit(self, candidates: Sequence[tuple[_Compiled, Grant]]) -> Decision:
        ids = tuple(r.index for r, _ in candidates)
        merged = self._merged.get(ids)
        if merged is None:
            merged = merge_obligations([r.obligations for r, _ in candidates])
            self._merged[ids] = merged
        grants = tuple(g for _, g in candidates)
        return Decision(
            permitted=True,
            pack_version=self.version,
            reason="permitted by " + "; ".join(_grant_words(g) for g in grants),
            obligations=merged,
            grants=grants,
        )

    def _denial(self, key: _Key, misses: list[tuple[int, _Compiled]]) -> Decision:
        nearest = sorted(misses, key=lambda m: (-min(m[0], 13), m[1].index))  # 13, 14: time
        near = [(r.rule.id, r.explain(stage, key)) for stage, r in nearest[:_NEAREST]]
        if not near:
            reason = (
                f"no rule in pack {self.version} shares {key.source_kind} {key.event_type} "
                f"events with a {key.role} at {key.agency_id} ({key.agency_kind}) "
                f"for {key.purpose}"
            )
        else:
            shown = "; ".join(f"rule {rule_id} {why}" for rule_id, why in near[:_NEAREST])
            more = f" (and {len(misses) - _NEAREST} more)" if len(misses) > _NEAREST else ""
            reason = f"no rule in pack {self.version} permits this: {shown}{more}"
        return Decision(permitted=False, pack_version=self.version, reason=reason)

    def _after_delays(
        self,
        candidates: tuple[tuple[_Compiled, Grant], ...],
        event: EventFacts,
        child: ChildContext,
        now: datetime,
    ) -> Decision:
        ready = [(r, g) for r, g in candidates if _delay_over(r.delay, event, child, now)]
        if ready:
            return self._permit(ready)
        held = [(r, _release(r.delay, event, child)) for r, _ in candidates]
        known = [at for _, at in held if at is not None]
        words = "; ".join(f"rule {r.rule.id} holds it {_hold_words(r.delay)}" for r, _ in held)
        return Decision(
            permitted=False,
            pack_version=self.version,
            reason=f"withheld for now: {words}",
            not_before=min(known) if known else None,
            held=True,
        )


def _merge_sorted(a: tuple[_Compiled, ...], b: tuple[_Compiled, ...]) -> Sequence[_Compiled]:
    """Two index slots as one list in pack order."""
    if not b:
        return a
    if not a:
        return b
    return sorted((*a, *b), key=lambda r: r.index)


def _grant_words(grant: Grant) -> str:
    how = {
        GrantedVia.not_required: "consent not required",
        GrantedVia.consent: "with consent",
        GrantedVia.significant_harm: "without consent, on risk of significant harm",
    }[grant.via]
    return f"rule {grant.rule_id} ({grant.lawful_basis}; {how})"


def _delay_over(delay: Delay | None, event: EventFacts, child: ChildContext, now: datetime) -> bool:
    if delay is None:
        return True
    if delay.hours_after_event is not None and now < event.occurred_at + timedelta(
        hours=delay.hours_after_event
    ):
        return False
    if delay.until_milestone is not None:
        at = child.milestones.get(delay.until_milestone)
        return at is not None and event.occurred_at <= at <= now
    return True


def _release(delay: Delay | None, event: EventFacts, child: ChildContext) -> datetime | None:
    """When a held event becomes visible, if that is known now."""
    if delay is None:
        return None
    if delay.until_milestone is not None:
        at = child.milestones.get(delay.until_milestone)
        if at is None or at < event.occurred_at:
            return None
        if delay.hours_after_event is None:
            return at
        return max(at, event.occurred_at + timedelta(hours=delay.hours_after_event))
    assert delay.hours_after_event is not None  # Delay requires one of the two
    return event.occurred_at + timedelta(hours=delay.hours_after_event)


def _hold_words(delay: Delay | None) -> str:
    parts = []
    if delay is not None and delay.hours_after_event is not None:
        parts.append(f"until {delay.hours_after_event} hours after the event")
    if delay is not None and delay.until_milestone is not None:
        parts.append(f"until a {delay.until_milestone} is recorded after the event")
    return " and ".join(parts)


_COMPILED: dict[int, tuple[weakref.ref[RulePack], CompiledPack]] = {}


def compile_pack(pack: RulePack) -> CompiledPack:
    """The compiled form of a pack, built once per pack object and kept while it lives."""
    found = _COMPILED.get(id(pack))
    if found is not None and found[0]() is pack:
        return found[1]
    compiled = CompiledPack(pack)
    key = id(pack)
    _COMPILED[key] = (weakref.ref(pack, lambda _ref: _COMPILED.pop(key, None)), compiled)
    return compiled


def decide(
    request: AccessRequest,
    event: EventFacts,
    child: ChildContext,
    pack: RulePack,
    *,
    now: datetime,
    use_cache: bool = True,
) -> Decision:
    """Permit or deny ``request`` to see ``event`` about ``child`` under ``pack`` at ``now``.

    Default deny: only a rule in force whose every condition holds permits. ``use_cache=False``
    evaluates from scratch (benchmarks; the answer is the same).
    """
    return compile_pack(pack).decide(request, event, child, now=now, use_cache=use_cache)


def decide_all(
    request: AccessRequest,
    events: Sequence[EventFacts],
    child: ChildContext,
    pack: RulePack,
    *,
    now: datetime,
) -> list[Decision]:
    """``decide`` for every event of one child (a narrative read): same answers, cheaper."""
    return compile_pack(pack).decide_all(request, events, child, now=now)
