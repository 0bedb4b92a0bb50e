"""Information governance: the audit trail, consent, break-glass, protected people, rule packs.

``Governance.over(engine, ...)`` builds every store over one engine (cheap: per request is
fine). The narrative read path asks ``consents.consent_records``, ``break_glass.active_break_glass``
and ``protections.protected_among`` per read, and appends one ``decisions_entry`` per read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import AgencyKind
from hub.governance.audit import (
    Actor,
    AuditAction,
    AuditEntry,
    AuditRecord,
    ChildFacts,
    decisions_entry,
)
from hub.governance.audit_store import (
    AuditPage,
    AuditQuery,
    AuditTrail,
    CheckpointSigner,
    Problem,
    VerifyReport,
    load_checkpoint_signer,
)
from hub.governance.break_glass import BreakGlass, BreakGlassStore, ReviewStatus
from hub.governance.config import GovernanceSettings, RetentionSchedule, load_retention
from hub.governance.consent import ConsentDecision, ConsentStore, GivenBy, StoredConsent
from hub.governance.protected import (
    LocationPolicy,
    Protection,
    ProtectionStore,
    SubjectKind,
    strip_location,
    view_attempt_entry,
)
from hub.governance.rules_store import PackVersionUsed, RulesStore, StoredPack

__all__ = [
    "Actor",
    "AuditAction",
    "AuditEntry",
    "AuditPage",
    "AuditQuery",
    "AuditRecord",
    "AuditTrail",
    "BreakGlass",
    "BreakGlassStore",
    "CheckpointSigner",
    "ChildFacts",
    "ConsentDecision",
    "ConsentStore",
    "GivenBy",
    "Governance",
    "GovernanceSettings",
    "LocationPolicy",
    "PackVersionUsed",
    "Problem",
    "Protection",
    "ProtectionStore",
    "RetentionSchedule",
    "ReviewStatus",
    "RulesStore",
    "StoredConsent",
    "StoredPack",
    "SubjectKind",
    "VerifyReport",
    "decisions_entry",
    "load_checkpoint_signer",
    "strip_location",
    "view_attempt_entry",
]


@lru_cache(maxsize=8)
def _signer(keys_dir: Path) -> CheckpointSigner:
    return load_checkpoint_signer(keys_dir)


@lru_cache(maxsize=8)
def _retention(path: Path | None) -> RetentionSchedule:
    return load_retention(path)


@dataclass(frozen=True, slots=True)
class Governance:
    """Every governance store over one engine, with the configuration they share."""

    trail: AuditTrail
    consents: ConsentStore
    break_glass: BreakGlassStore
    protections: ProtectionStore
    rules: RulesStore
    location: LocationPolicy
    retention: RetentionSchedule

    @classmethod
    def over(
        cls,
        engine: AsyncEngine,
        settings: GovernanceSettings,
        *,
        keys_dir: Path | None = None,
        agencies: Mapping[str, AgencyKind] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> Governance:
        """The stores over ``engine``; checkpoints are signed with the key in ``keys_dir``."""
        signer = None if keys_dir is None else _signer(keys_dir)
        trail = AuditTrail(
            engine, clock=clock, checkpoint_every=settings.audit_checkpoint_every, signer=signer
        )
        return cls(
            trail=trail,
            consents=ConsentStore(engine, trail, clock=clock),
            break_glass=BreakGlassStore(
                engine, trail, duration=timedelta(hours=settings.break_glass_hours), clock=clock
            ),
            protections=ProtectionStore(engine, trail, clock=clock),
            rules=RulesStore(
                engine,
                trail,
                bootstrap_file=settings.rules_bootstrap_file,
                agencies=agencies,
                clock=clock,
            ),
            location=LocationPolicy(
                roles=frozenset(str(r) for r in settings.protected_location_roles),
                extra_paths=settings.protected_location_fields,
            ),
            retention=_retention(settings.retention_file),
        )
