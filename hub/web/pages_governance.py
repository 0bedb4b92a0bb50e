"""Pages for information governance and for recording consent: sharing rules (edit, dry-run,
apply, history), the audit trail and subject access, consent decisions and break-glass."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from hub.domain.roles import Role
from hub.web.client import ApiError, HubApi
from hub.web.deps import ApiDep, Form, PageSession, posted_form
from hub.web.render import SECURITY_HEADERS, render
from hub.web.session import Session

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

PostedForm = Annotated[Form, Depends(posted_form)]

PURPOSES = (
    "safeguarding",
    "unscheduled_care",
    "education_safeguarding",
    "law_enforcement",
    "direct_care",
)
CONSENT_STATES = ("given", "refused", "withdrawn")
GIVEN_BY = ("child", "parent", "carer", "guardian", "local_authority")


def _redirect(to: str) -> RedirectResponse:
    response = RedirectResponse(to, status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response


# --- sharing rules --------------------------------------------------------------------------


async def _rules_page(
    request: Request,
    session: Session,
    api: HubApi,
    *,
    text: str | None = None,
    extra: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    current = await api.get("/api/v1/rules")
    history = (await api.get("/api/v1/rules/history"))["versions"]
    return render(
        request,
        "rules.html",
        session,
        {
            "current": current,
            "history": history,
            "text": current["text"] if text is None else text,
            "applied": request.query_params.get("applied", ""),
            "days": 30,
            "errors": {},
            **(extra or {}),
        },
        status_code=status_code,
    )


@router.get("/rules")
async def rules_page(request: Request, session: PageSession, api: ApiDep) -> Response:
    """The rules in force, an editor, and every version applied."""
    return await _rules_page(request, session, api)


@router.post("/rules")
async def rules_action(
    request: Request, form: PostedForm, session: PageSession, api: ApiDep
) -> Response:
    """Dry-run a proposed pack against recent disclosures, or apply it with a reason."""
    text, action, reason = form.raw("text"), form.get("action"), form.get("reason")
    try:
        days = max(1, min(3650, int(form.get("days", "30") or 30)))
    except ValueError:
        days = 30
    body = {"text": text, "filename": "rules.yaml"}
    extra: dict[str, Any] = {"days": days, "reason": reason}
    try:
        if action == "apply":
            if not reason:
                extra["errors"] = {"reason": "Say why this change is being made"}
                return await _rules_page(
                    request, session, api, text=text, extra=extra, status_code=422
                )
            stored = await api.post("/api/v1/rules/apply", {**body, "reason": reason})
            return _redirect(f"/rules?applied={stored['version']}")
        extra["diff"] = await api.post("/api/v1/rules/diff", body)
        extra["dry_run"] = await api.post("/api/v1/rules/dry-run", body, days=days)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        problems = exc.detail.get("problems", []) if isinstance(exc.detail, dict) else []
        extra["problems"] = problems
        extra["errors"] = {"text": exc.message or "The rule pack has problems"}
        return await _rules_page(request, session, api, text=text, extra=extra, status_code=422)
    return await _rules_page(request, session, api, text=text, extra=extra)


# --- audit and subject access ---------------------------------------------------------------


@router.get("/audit")
async def audit_page(
    request: Request,
    session: PageSession,
    api: ApiDep,
    child_id: Annotated[str, Query(max_length=64)] = "",
    who: Annotated[str, Query(max_length=200)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    verify: Annotated[str, Query(max_length=1)] = "",
    before_seq: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """Search the audit trail, verify its hash chain, start a subject-access export."""
    page = await api.get(
        "/api/v1/audit", child_id=child_id, who=who, action=action, before_seq=before_seq, limit=50
    )
    verified = await api.get("/api/v1/audit/verify") if verify else None
    return render(
        request,
        "audit.html",
        session,
        {
            "records": page["records"],
            "next_before_seq": page.get("next_before_seq"),
            "query": {"child_id": child_id, "who": who, "action": action},
            "verified": verified,
        },
    )


@router.get("/audit/subject-access")
async def subject_access_page(
    request: Request,
    session: PageSession,
    api: ApiDep,
    child_id: Annotated[str, Query(max_length=64)] = "",
    download: Annotated[str, Query(max_length=1)] = "",
) -> Response:
    """What is held on a child and to whom it was disclosed; downloadable as JSON."""
    export = await api.get(f"/api/v1/children/{child_id}/subject-access") if child_id else None
    if export is not None and download:
        return Response(
            json.dumps(export, indent=2, sort_keys=True),
            media_type="application/json",
            headers={
                **SECURITY_HEADERS,
                "Content-Disposition": f'attachment; filename="subject-access-{child_id}.json"',
            },
        )
    return render(request, "subject_access.html", session, {"child_id": child_id, "export": export})


# --- consent and break-glass ----------------------------------------------------------------


async def _consent_page(
    request: Request,
    session: Session,
    api: HubApi,
    *,
    child_id: str,
    extra: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    consents = await api.get("/api/v1/consents", child_id=child_id) if child_id else None
    reviews = None
    if session.caller.role is Role.ig_officer:
        reviews = (await api.get("/api/v1/break-glass/reviews"))["items"]
    agencies = [a.id for a in request.app.state.hub.registry.all()]
    return render(
        request,
        "consent.html",
        session,
        {
            "child_id": child_id,
            "consents": consents,
            "reviews": reviews,
            "agencies": agencies,
            "purposes": PURPOSES,
            "states": CONSENT_STATES,
            "given_by": GIVEN_BY,
            "done": request.query_params.get("done", ""),
            "errors": {},
            "form": {},
            **(extra or {}),
        },
        status_code=status_code,
    )


@router.get("/consent")
async def consent_page(
    request: Request,
    session: PageSession,
    api: ApiDep,
    child_id: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """A child's consent decisions and forms to record one or to break glass; IG's review queue."""
    return await _consent_page(request, session, api, child_id=child_id)


@router.post("/consent")
async def record_consent(
    request: Request, form: PostedForm, session: PageSession, api: ApiDep
) -> Response:
    """Record consent given, refused or withdrawn for a child, purpose and agency."""
    fields = {k: form.get(k) for k in ("child_id", "purpose", "agency_id", "state", "given_by")}
    errors = {k: f"Choose the {k.replace('_', ' ')}" for k, v in fields.items() if not v}
    if not errors:
        try:
            await api.post("/api/v1/consents", fields)
        except ApiError as exc:
            if exc.status != 422:
                raise
            errors["child_id"] = exc.message or "Check the details"
    if errors:
        extra = {"errors": errors, "form": fields}
        return await _consent_page(
            request, session, api, child_id=fields["child_id"], extra=extra, status_code=422
        )
    return _redirect(f"/consent?child_id={fields['child_id']}&done=consent")


@router.post("/break-glass")
async def break_glass(
    request: Request, form: PostedForm, session: PageSession, api: ApiDep
) -> Response:
    """Record a justification to see beyond the rules for a child at risk of significant harm."""
    child_id, justification = form.get("child_id"), form.get("justification")
    body = {"child_id": child_id, "justification": justification, "purpose": "safeguarding"}
    try:
        await api.post("/api/v1/break-glass", body)
    except ApiError as exc:
        if exc.status not in (404, 422):
            raise
        message = "No child has that id" if exc.status == 404 else exc.message
        extra = {"errors": {"justification": message}, "form": body}
        return await _consent_page(
            request, session, api, child_id=child_id, extra=extra, status_code=422
        )
    return _redirect(f"/children/{child_id}?break_glass=1")


@router.post("/break-glass/{break_glass_id}/review")
async def review_break_glass(
    break_glass_id: str, request: Request, form: PostedForm, session: PageSession, api: ApiDep
) -> Response:
    """IG upholds a break-glass or not, with a note."""
    upheld, note = form.get("upheld"), form.get("note")
    if upheld not in ("yes", "no") or not note:
        extra = {"errors": {f"review-{break_glass_id}": "Choose an outcome and write a note"}}
        return await _consent_page(request, session, api, child_id="", extra=extra, status_code=422)
    body = {"upheld": upheld == "yes", "note": note}
    await api.post(f"/api/v1/break-glass/{break_glass_id}/review", body)
    return _redirect("/consent?done=review")
