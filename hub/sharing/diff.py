"""Comparing two rule packs: which rules changed and how, and which past disclosures would
change if the new pack had been in force (the dry-run that comes before ``rules apply``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.sharing.decide import compile_pack
from hub.sharing.facts import AccessRequest, ChildContext, Decision, EventFacts, Obligations
from hub.sharing.rules import RulePack

__all__ = [
    "DisclosureChange",
    "DryRunResult",
    "FieldChange",
    "PackDiff",
    "PastRequest",
    "Recipient",
    "RuleChange",
    "diff_packs",
    "dry_run",
]


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field whose value differs: its dotted path, old and new value (JSON-ready)."""

    path: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class RuleChange:
    """A rule present in both packs whose fields differ."""

    rule_id: str
    changes: tuple[FieldChange, ...]


@dataclass(frozen=True, slots=True)
class PackDiff:
    """What differs between two packs: header fields, rules added, removed and changed."""

    old_version: str
    new_version: str
    header: tuple[FieldChange, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[RuleChange, ...]
    reordered: bool

    @property
    def rules_unchanged(self) -> bool:
        """True when no rule was added, removed, changed or moved."""
        return not (self.added or self.removed or self.changed or self.reordered)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form for the CLI and API."""
        return {
            "old_version": self.old_version,
            "new_version": self.new_version,
            "header": [_change_dict(c) for c in self.header],
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": [
                {"rule_id": c.rule_id, "changes": [_change_dict(f) for f in c.changes]}
                for c in self.changed
            ],
            "reordered": self.reordered,
        }


def _change_dict(change: FieldChange) -> dict[str, Any]:
    return {"path": change.path, "old": change.old, "new": change.new}


def _segment(key: str, first: bool) -> str:
    if "." in key or "*" in key:
        return f"[{key!r}]"
    return key if first else f".{key}"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted paths to leaf values; lists are leaves (compared whole), empty maps vanish."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out |= _flatten(item, prefix + _segment(str(key), not prefix))
        return out
    return {prefix: value}


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    flat_old, flat_new = _flatten(old), _flatten(new)
    return tuple(
        FieldChange(path, flat_old.get(path), flat_new.get(path))
        for path in sorted(flat_old.keys() | flat_new.keys())
        if flat_old.get(path) != flat_new.get(path)
    )


def diff_packs(old: RulePack, new: RulePack) -> PackDiff:
    """Rules added, removed and changed (field by field) from ``old`` to ``new``."""
    old_rules = {r.id: r.model_dump(mode="json") for r in old.rules}
    new_rules = {r.id: r.model_dump(mode="json") for r in new.rules}
    header_keys = ("version", "author", "reason")
    common_old = [r.id for r in old.rules if r.id in new_rules]
    common_new = [r.id for r in new.rules if r.id in old_rules]
    changed = []
    for rule_id in common_new:
        fields = _changes(old_rules[rule_id], new_rules[rule_id])
        if fields:
            changed.append(RuleChange(rule_id, fields))
    return PackDiff(
        old_version=old.version,
        new_version=new.version,
        header=_changes(
            {k: getattr(old, k) for k in header_keys}, {k: getattr(new, k) for k in header_keys}
        ),
        added=tuple(r.id for r in new.rules if r.id not in old_rules),
        removed=tuple(r.id for r in old.rules if r.id not in new_rules),
        changed=tuple(changed),
        reordered=common_old != common_new,
    )


@dataclass(frozen=True, slots=True)
class PastRequest:
    """A disclosure asked for in the past (from the audit trail): who, what, about whom, when."""

    request: AccessRequest
    event: EventFacts
    child: ChildContext
    event_id: str
    child_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who a disclosure went (or would go) to."""

    agency_id: str
    role: str
    team: str | None


@dataclass(frozen=True, slots=True)
class DisclosureChange:
    """One past request whose answer differs between the packs."""

    event_id: str
    child_id: str
    purpose: str
    at: datetime
    old_rule_ids: tuple[str, ...]
    new_rule_ids: tuple[str, ...]
    old_obligations: Obligations | None
    new_obligations: Obligations | None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form (ids and rule ids only; no content of the event)."""
        return {
            "event_id": self.event_id,
            "child_id": self.child_id,
            "purpose": self.purpose,
            "at": self.at.isoformat(),
            "old_rule_ids": list(self.old_rule_ids),
            "new_rule_ids": list(self.new_rule_ids),
            "old_obligations": None
            if self.old_obligations is None
            else self.old_obligations.as_dict(),
            "new_obligations": None
            if self.new_obligations is None
            else self.new_obligations.as_dict(),
        }


@dataclass(frozen=True, slots=True)
class DryRunResult:
    """Per recipient, the disclosures the new pack would add, remove, or change in content."""

    old_version: str
    new_version: str
    examined: int
    added: Mapping[Recipient, tuple[DisclosureChange, ...]]
    removed: Mapping[Recipient, tuple[DisclosureChange, ...]]
    changed: Mapping[Recipient, tuple[DisclosureChange, ...]]

    @property
    def unchanged(self) -> int:
        """Past requests answered alike by both packs."""
        moved = sum(len(v) for d in (self.added, self.removed, self.changed) for v in d.values())
        return self.examined - moved

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form for the CLI and API, recipients in a stable order."""

        def group(changes: Mapping[Recipient, tuple[DisclosureChange, ...]]) -> list[Any]:
            return [
                {
                    "agency_id": r.agency_id,
                    "role": r.role,
                    "team": r.team,
                    "disclosures": [c.as_dict() for c in changes[r]],
                }
                for r in sorted(changes, key=lambda r: (r.agency_id, r.role, r.team or ""))
            ]

        return {
            "old_version": self.old_version,
            "new_version": self.new_version,
            "examined": self.examined,
            "unchanged": self.unchanged,
            "added": group(self.added),
            "removed": group(self.removed),
            "changed": group(self.changed),
        }


def _change(past: PastRequest, old: Decision, new: Decision) -> DisclosureChange:
    return DisclosureChange(
        event_id=past.event_id,
        child_id=past.child_id,
        purpose=str(past.request.purpose),
        at=past.at,
        old_rule_ids=tuple(g.rule_id for g in old.grants),
        new_rule_ids=tuple(g.rule_id for g in new.grants),
        old_obligations=old.obligations if old.permitted else None,
        new_obligations=new.obligations if new.permitted else None,
    )


def dry_run(
    disclosures: Iterable[PastRequest],
    old_pack: RulePack,
    new_pack: RulePack,
    *,
    when: datetime | None = None,
) -> DryRunResult:
    """Replay past requests against both packs and list every answer that would differ.

    Each request is decided under both packs at ``when`` if given (e.g. the day the new pack
    takes effect), else at the time it was made. The child context is today's (a withdrawn
    consent counts for the past). ``changed`` holds requests permitted by both packs whose
    obligations or permitting rules differ.
    """
    old_c, new_c = compile_pack(old_pack), compile_pack(new_pack)
    added: dict[Recipient, list[DisclosureChange]] = {}
    removed: dict[Recipient, list[DisclosureChange]] = {}
    changed: dict[Recipient, list[DisclosureChange]] = {}
    examined = 0
    for past in disclosures:
        examined += 1
        at = when or past.at
        before = old_c.decide(past.request, past.event, past.child, now=at)
        after = new_c.decide(past.request, past.event, past.child, now=at)
        if before.permitted == after.permitted and (
            not before.permitted
            or (before.obligations == after.obligations and before.grants == after.grants)
        ):
            continue
        bucket = (
            added
            if after.permitted and not before.permitted
            else removed
            if before.permitted and not after.permitted
            else changed
        )
        r = past.request
        recipient = Recipient(r.agency_id, str(r.role), r.team)
        bucket.setdefault(recipient, []).append(_change(past, before, after))

    def freeze(
        d: dict[Recipient, list[DisclosureChange]],
    ) -> dict[Recipient, tuple[DisclosureChange, ...]]:
        ordered = sorted(d.items(), key=lambda kv: (kv[0].agency_id, kv[0].role, kv[0].team or ""))
        return {k: tuple(v) for k, v in ordered}

    return DryRunResult(
        old_version=old_pack.version,
        new_version=new_pack.version,
        examined=examined,
        added=freeze(added),
        removed=freeze(removed),
        changed=freeze(changed),
    )
