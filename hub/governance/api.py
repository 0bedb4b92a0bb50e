"""HTTP routes for information governance: consents, break-glass, protection, audit, rules,
subject access. One ``APIRouter`` per area; the app mounts them (see ``routers``).

Stores are built per request from ``hub.store.engine`` (cheap). Role checks are explicit:
IG-only routes answer 403 to everyone else; a redacted or free-text field never appears in an
error or a log line.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from hub.api.deps import CurrentCaller, HubDep
from hub.auth import Caller
from hub.bootstrap import Hub
from hub.domain.roles import Role
from hub.governance import Governance
from hub.governance.audit import Actor, AuditAction
from hub.governance.audit_store import AuditQuery
from hub.governance.break_glass import (
    BreakGlassNotFound,
    JustificationRejected,
    ReviewRejected,
    ReviewStatus,
)
from hub.governance.config import load_governance_settings
from hub.governance.consent import ConsentDecision, GivenBy
from hub.governance.disclosures import replay_dry_run, subject_access
from hub.governance.protected import NotProtected, ProtectionRefused, SubjectKind
from hub.governance.rules_store import PackVersionUsed
from hub.observability import get_logger
from hub.sharing import Purpose, RulePackInvalid, RuleProblem, diff_packs

__all__ = [
    "audit_router",
    "break_glass_router",
    "consents_router",
    "governance_of",
    "protection_router",
    "routers",
    "rules_router",
    "subject_access_router",
]

log = get_logger(__name__)

ChildId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
AgencyId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{2,64}$")]

consents_router = APIRouter(prefix="/api/v1/consents", tags=["consents"])
break_glass_router = APIRouter(prefix="/api/v1/break-glass", tags=["break-glass"])
protection_router = APIRouter(prefix="/api/v1/children", tags=["protected people"])
audit_router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
rules_router = APIRouter(prefix="/api/v1/rules", tags=["rules"])
subject_access_router = APIRouter(prefix="/api/v1/children", tags=["subject access"])


def governance_of(hub: Hub) -> Governance:
    """The governance stores over this hub's store engine (built on first use, with the
    governance settings the process was started with, like the hub's own settings)."""
    if hub.governance is None:
        registry = {a.id: a.kind for a in hub.registry.all()}
        hub.governance = Governance.over(
            hub.store.engine,
            load_governance_settings(),
            keys_dir=hub.settings.data_dir / "keys",
            agencies=registry,
        )
    governance: Governance = hub.governance
    return governance


def _require(caller: Caller, *roles: Role) -> None:
    if caller.role not in roles:
        names = " or ".join(r.value for r in roles)
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"only {names} may do this")


def _person(caller: Caller) -> None:
    if caller.role is Role.agency_system:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "agency systems may not do this")


def _problems(problems: list[RuleProblem]) -> list[dict[str, Any]]:
    return [{"location": p.location, "line": p.line, "message": p.message} for p in problems]


def _invalid(exc: RulePackInvalid) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail={"message": "the rule pack has problems", "problems": _problems(exc.problems)},
    )


# --- consents -------------------------------------------------------------------------------


class ConsentIn(BaseModel):
    """A consent decision to record."""

    child_id: ChildId
    purpose: Purpose
    agency_id: AgencyId = Field(description="The recipient agency the decision is about.")
    state: ConsentDecision
    given_by: GivenBy
    decided_at: AwareDatetime | None = Field(default=None, description="Default: now.")


@consents_router.post("", status_code=status.HTTP_201_CREATED, summary="Record a consent.")
async def record_consent(body: ConsentIn, hub: HubDep, caller: CurrentCaller) -> dict[str, Any]:
    """Record consent given, refused or withdrawn; it decides the next read at once."""
    _person(caller)
    if body.agency_id not in hub.registry:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "agency_id is not registered")
    try:
        stored = await governance_of(hub).consents.record(
            child_id=body.child_id,
            purpose=body.purpose,
            agency_id=body.agency_id,
            state=body.state,
            given_by=body.given_by,
            actor=Actor.of(caller),
            decided_at=body.decided_at,
        )
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return stored.as_dict()


@consents_router.get("", summary="A child's consents: in force and history.")
async def list_consents(
    hub: HubDep, caller: CurrentCaller, child_id: Annotated[ChildId, Query()]
) -> dict[str, Any]:
    """The decision in force per purpose and agency, and every decision recorded."""
    _person(caller)
    consents = governance_of(hub).consents
    history = await consents.history(child_id)
    in_force = await consents.consent_records(child_id)
    return {
        "child_id": child_id,
        "in_force": [
            {
                "purpose": str(c.purpose),
                "agency_id": c.agency_id,
                "state": str(c.state),
                "decided_at": None if c.recorded_at is None else c.recorded_at.isoformat(),
            }
            for c in in_force
        ],
        "history": [h.as_dict() for h in history],
    }


# --- break-glass ----------------------------------------------------------------------------


class BreakGlassIn(BaseModel):
    """A justification to see beyond the rules for a child at risk of significant harm."""

    child_id: ChildId
    justification: str = Field(max_length=4000)
    purpose: Purpose = Purpose.safeguarding


class ReviewIn(BaseModel):
    """IG's review of a break-glass."""

    upheld: bool
    note: str = Field(min_length=1, max_length=4000)


@break_glass_router.post("", status_code=status.HTTP_201_CREATED, summary="Break glass.")
async def use_break_glass(body: BreakGlassIn, hub: HubDep, caller: CurrentCaller) -> dict[str, Any]:
    """Record the justification; reads of this child by the caller count as significant harm
    until it expires. Always audited; queued for IG review."""
    _person(caller)
    if caller.role is Role.ig_officer:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "IG officers review break-glass; they do not use it"
        )
    if not await hub.store.child_exists(body.child_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such child")
    try:
        made = await governance_of(hub).break_glass.use(
            child_id=body.child_id,
            actor=Actor.of(caller),
            justification=body.justification,
            purpose=body.purpose,
        )
    except JustificationRejected as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return made.as_dict()


@break_glass_router.get("/reviews", summary="The IG review queue.")
async def review_queue(
    hub: HubDep,
    caller: CurrentCaller,
    review_status: Annotated[
        str, Query(alias="status", pattern="^(pending|upheld|not_upheld|all)$")
    ] = "pending",
) -> dict[str, Any]:
    """Break-glass records by review status, oldest first (IG only)."""
    _require(caller, Role.ig_officer)
    wanted = None if review_status == "all" else ReviewStatus(review_status)
    items = await governance_of(hub).break_glass.reviews(wanted)
    return {"items": [i.as_dict() for i in items]}


@break_glass_router.post("/{break_glass_id}/review", summary="Review a break-glass.")
async def review_break_glass(
    break_glass_id: str, body: ReviewIn, hub: HubDep, caller: CurrentCaller
) -> dict[str, Any]:
    """Uphold or not, with a note (IG only; once)."""
    _require(caller, Role.ig_officer)
    try:
        done = await governance_of(hub).break_glass.review(
            break_glass_id, reviewer=Actor.of(caller), upheld=body.upheld, note=body.note
        )
    except BreakGlassNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such break-glass") from exc
    except ReviewRejected as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return done.as_dict()


# --- protected people -----------------------------------------------------------------------


class ProtectionIn(BaseModel):
    """A protection flag on the child, or on a person linked to the child."""

    reason: str = Field(min_length=1, max_length=2000)
    review_on: date
    subject_id: ChildId | None = Field(default=None, description="Default: the child.")
    subject_kind: SubjectKind = SubjectKind.child


@protection_router.post(
    "/{child_id}/protection", status_code=status.HTTP_201_CREATED, summary="Protect a person."
)
async def protect(
    child_id: ChildId, body: ProtectionIn, hub: HubDep, caller: CurrentCaller
) -> dict[str, Any]:
    """Withhold the subject's address and location from everyone outside the named roles."""
    try:
        made = await governance_of(hub).protections.protect(
            body.subject_id or child_id,
            kind=body.subject_kind,
            reason=body.reason,
            review_on=body.review_on,
            actor=Actor.of(caller),
            child_id=child_id,
        )
    except ProtectionRefused as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    out = made.as_dict()
    out.pop("reason")  # held for IG; never echoed
    return out


@protection_router.delete("/{child_id}/protection", summary="Lift a protection.")
async def lift_protection(
    child_id: ChildId,
    hub: HubDep,
    caller: CurrentCaller,
    subject_id: Annotated[ChildId | None, Query()] = None,
) -> dict[str, Any]:
    """Lift the protection in force on the child (or on ``subject_id``)."""
    try:
        lifted = await governance_of(hub).protections.lift(
            subject_id or child_id, actor=Actor.of(caller), child_id=child_id
        )
    except ProtectionRefused as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
    except NotProtected as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no protection in force") from exc
    out = lifted.as_dict()
    out.pop("reason")
    return out


# --- audit ----------------------------------------------------------------------------------


@audit_router.get("", summary="Search the audit trail (IG only).")
async def search_audit(
    hub: HubDep,
    caller: CurrentCaller,
    child_id: Annotated[ChildId | None, Query()] = None,
    who: Annotated[str | None, Query(max_length=200)] = None,
    agency_id: Annotated[AgencyId | None, Query()] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[AwareDatetime | None, Query()] = None,
    until: Annotated[AwareDatetime | None, Query()] = None,
    before_seq: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Records newest first; pass ``next_before_seq`` back as ``before_seq`` for the next page."""
    _require(caller, Role.ig_officer)
    page = await governance_of(hub).trail.search(
        AuditQuery(child_id, who, agency_id, action, since, until, before_seq, limit)
    )
    return {
        "records": [r.as_dict() for r in page.records],
        "next_before_seq": page.next_before_seq,
    }


@audit_router.get("/verify", summary="Verify the audit trail's hash chain (IG only).")
async def verify_audit(hub: HubDep, caller: CurrentCaller) -> dict[str, Any]:
    """Every changed, deleted, inserted or reordered record, with its seq."""
    _require(caller, Role.ig_officer)
    return (await governance_of(hub).trail.verify()).as_dict()


# --- rules ----------------------------------------------------------------------------------


class PackIn(BaseModel):
    """A rule pack's text (YAML, or JSON when the filename ends in .json)."""

    text: str = Field(min_length=1, max_length=2_000_000)
    filename: str = Field(default="rules.yaml", pattern=r"^[A-Za-z0-9._-]{1,200}$")


class DiffIn(PackIn):
    """A proposed pack, compared with ``old_text`` or else the pack in force."""

    old_text: str | None = Field(default=None, max_length=2_000_000)
    old_filename: str = Field(default="old.yaml", pattern=r"^[A-Za-z0-9._-]{1,200}$")


class ApplyIn(PackIn):
    """A pack to put in force, and why."""

    reason: str = Field(min_length=1, max_length=2000)


@rules_router.get("", summary="The rule pack in force.")
async def current_rules(hub: HubDep, caller: CurrentCaller) -> dict[str, Any]:
    """The pack in force: its number, version, who applied it and why, and its text."""
    del caller  # any authenticated caller may read the rules (transparency)
    current = await governance_of(hub).rules.current()
    return current.as_dict()


@rules_router.get("/history", summary="Every rule pack applied.")
async def rules_history(hub: HubDep, caller: CurrentCaller) -> dict[str, Any]:
    """Every version, newest first (without texts)."""
    del caller
    history = await governance_of(hub).rules.history()
    return {"versions": [p.as_dict(with_text=False) for p in history]}


@rules_router.post("/validate", summary="Check a rule pack.")
async def validate_rules(body: PackIn, hub: HubDep, caller: CurrentCaller) -> dict[str, Any]:
    """Every problem in the pack, each with its place (file:line, rule, field)."""
    del caller
    problems = governance_of(hub).rules.validate(body.text, body.filename)
    return {"valid": not problems, "problems": _problems(problems)}


@rules_router.post("/diff", summary="Compare a rule pack with the one in force.")
async def diff_rules(body: DiffIn, hub: HubDep, caller: CurrentCaller) -> dict[str, Any]:
    """Rules added, removed and changed field by field."""
    del caller
    rules = governance_of(hub).rules
    try:
        new = rules.load(body.text, body.filename)
        old = (
            (await rules.current()).pack
            if body.old_text is None
            else rules.load(body.old_text, body.old_filename)
        )
    except RulePackInvalid as exc:
        raise _invalid(exc) from exc
    return diff_packs(old, new).as_dict()


@rules_router.post("/dry-run", summary="Replay recent disclosures against a proposed pack.")
async def dry_run_rules(
    body: PackIn,
    hub: HubDep,
    caller: CurrentCaller,
    days: Annotated[int, Query(ge=1, le=3650)] = 30,
    as_of: Annotated[AwareDatetime | None, Query(description="Decide all at this instant.")] = None,
) -> dict[str, Any]:
    """Per recipient, the disclosures the proposed pack would add, remove or change (IG only)."""
    _require(caller, Role.ig_officer)
    gov = governance_of(hub)
    try:
        proposed = gov.rules.load(body.text, body.filename)
    except RulePackInvalid as exc:
        raise _invalid(exc) from exc
    current = await gov.rules.current()
    result = await replay_dry_run(
        gov.trail, current.pack, proposed, days=days, now=datetime.now(UTC), when=as_of
    )
    return result.as_dict()


@rules_router.post("/apply", status_code=status.HTTP_201_CREATED, summary="Apply a rule pack.")
async def apply_rules(body: ApplyIn, hub: HubDep, caller: CurrentCaller) -> dict[str, Any]:
    """Validate and put a new version in force, the caller as author (IG only)."""
    _require(caller, Role.ig_officer)
    try:
        stored = await governance_of(hub).rules.apply(
            body.text, body.filename, actor=Actor.of(caller), reason=body.reason
        )
    except RulePackInvalid as exc:
        raise _invalid(exc) from exc
    except PackVersionUsed as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return stored.as_dict(with_text=False)


# --- subject access -------------------------------------------------------------------------


@subject_access_router.get("/{child_id}/subject-access", summary="Subject-access export.")
async def export_subject_access(
    child_id: ChildId, hub: HubDep, caller: CurrentCaller
) -> dict[str, Any]:
    """What is held on the child and every disclosure of it (IG only; audited)."""
    _require(caller, Role.ig_officer)
    if not await hub.store.child_exists(child_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such child")
    gov = governance_of(hub)
    export = await subject_access(hub.store.engine, gov.trail, child_id, gov.retention)
    await gov.trail.append(
        Actor.of(caller).entry(
            AuditAction.subject_access_exported,
            child_id=child_id,
            purpose=str(Purpose.audit),
            event_ids=tuple(h["event_id"] for h in export.held),
            extra={"disclosures": len(export.disclosures)},
        )
    )
    return export.as_dict()


routers = (
    consents_router,
    break_glass_router,
    protection_router,
    audit_router,
    rules_router,
    subject_access_router,
)
"""Every router, in the order the app should mount them."""
