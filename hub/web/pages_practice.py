"""Pages for practitioners: the alerts inbox, finding a child, a child's timeline, and
possible-match reviews. Every figure comes from the hub's own API as the signed-in user."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from hub.web.client import ApiError
from hub.web.deps import ApiDep, Form, PageSession, posted_form
from hub.web.family_view import build_family
from hub.web.render import SECURITY_HEADERS, render
from hub.web.timeline import AGENCY_KIND_LABELS, FAMILY_LABELS, Filters, build_timeline

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

PostedForm = Annotated[Form, Depends(posted_form)]


def _redirect(to: str) -> RedirectResponse:
    response = RedirectResponse(to, status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


# --- alerts ---------------------------------------------------------------------------------


@router.get("/alerts")
async def alerts_page(request: Request, session: PageSession, api: ApiDep) -> Response:
    """Open alerts for the user, most severe then newest first; live through the alert stream."""
    try:
        alerts = (await api.get("/api/v1/alerts"))["alerts"]
        available = True
    except ApiError as exc:
        if exc.status != 404:
            raise
        alerts, available = [], False
    done = request.query_params.get("acknowledged")
    return render(
        request,
        "alerts.html",
        session,
        {"alerts": alerts, "available": available, "acknowledged": done},
    )


@router.post("/alerts/{alert_id}/acknowledge")
async def acknowledge(
    alert_id: str, request: Request, form: PostedForm, session: PageSession, api: ApiDep
) -> Response:
    """Acknowledge an alert; answers JSON to the inbox script, else back to the inbox."""
    del form, session
    alert = await api.post(f"/api/v1/alerts/{alert_id}/acknowledge")
    if _wants_json(request):
        return JSONResponse({"alert_id": alert["alert_id"], "status": alert["status"]})
    return _redirect("/alerts?acknowledged=1")


# --- children -------------------------------------------------------------------------------


@router.get("/children")
async def find_child(
    request: Request,
    session: PageSession,
    api: ApiDep,
    identifier: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    """Find a child by an agency identifier (NHS number, UPN, local or police id)."""
    found: list[dict[str, Any]] | None = None
    error = ""
    if identifier:
        try:
            found = (await api.get("/api/v1/children", identifier=identifier))["children"]
        except ApiError as exc:
            if exc.status != 422:
                raise
            error = "Enter an identifier like nhs:9990000018 or upn:A938000000001"
    if found is not None and len(found) == 1:
        return _redirect(f"/children/{found[0]['child_id']}")
    return render(
        request,
        "find_child.html",
        session,
        {"identifier": identifier, "found": found, "error": error},
        status_code=422 if error else 200,
    )


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


@router.get("/children/{child_id}")
async def child_page(
    child_id: str,
    request: Request,
    session: PageSession,
    api: ApiDep,
    agency: Annotated[list[str] | None, Query()] = None,
    family: Annotated[list[str] | None, Query()] = None,
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    """The child's cross-agency timeline and the family around them, as the user may see it."""
    narrative = await api.get(f"/api/v1/children/{child_id}/narrative")
    household = await api.get(f"/api/v1/children/{narrative['child_id']}/family")
    filters = Filters(
        agency_kinds=frozenset(agency or ()),
        families=frozenset(family or ()),
        since=_day(since),
        until=_day(until),
    )
    return render(
        request,
        "child.html",
        session,
        {
            "child_id": narrative["child_id"],
            "timeline": build_timeline(narrative, filters),
            "household": build_family(household),
            "merged_from": list(narrative.get("merged_from") or []),
            "filters": filters,
            "since": since,
            "until": until,
            "kind_labels": AGENCY_KIND_LABELS,
            "family_labels": FAMILY_LABELS,
        },
    )


@router.get("/children/{child_id}/export")
async def child_export(child_id: str, session: PageSession, api: ApiDep) -> Response:
    """The narrative exactly as the user may see it, as a JSON download."""
    del session
    narrative = await api.get(f"/api/v1/children/{child_id}/narrative")
    body = json.dumps(narrative, indent=2, sort_keys=True)
    return Response(
        body,
        media_type="application/json",
        headers={
            **SECURITY_HEADERS,
            "Content-Disposition": f'attachment; filename="narrative-{narrative["child_id"]}.json"',
        },
    )


# --- identity reviews -----------------------------------------------------------------------

_AGREE = ("exact", "agree", "same", "match")


@router.get("/identity")
async def identity_page(request: Request, session: PageSession, api: ApiDep) -> Response:
    """Possible matches waiting for a person to decide, side by side."""
    reviews = (await api.get("/api/v1/identity/reviews"))["reviews"]
    decided = request.query_params.get("decided", "")
    return render(
        request,
        "identity.html",
        session,
        {"reviews": reviews, "agree_levels": _AGREE, "decided": decided, "errors": {}},
    )


@router.post("/identity/{review_id}")
async def decide(
    review_id: str, request: Request, form: PostedForm, session: PageSession, api: ApiDep
) -> Response:
    """Link the pair or keep them apart, with the reviewer's reason."""
    decision, reason = form.get("decision"), form.get("reason")
    errors: dict[str, str] = {}
    if decision not in ("link", "keep_apart"):
        errors["decision"] = "Choose whether these are the same child"
    if len(reason) < 5:
        errors["reason"] = "Give a reason of at least 5 characters"
    if not errors:
        body = {"decision": decision, "reason": reason}
        await api.post(f"/api/v1/identity/reviews/{review_id}", body)
        return _redirect(f"/identity?decided={decision}")
    reviews = (await api.get("/api/v1/identity/reviews"))["reviews"]
    return render(
        request,
        "identity.html",
        session,
        {
            "reviews": reviews,
            "agree_levels": _AGREE,
            "decided": "",
            "errors": errors,
            "error_review": review_id,
            "form": {"decision": decision, "reason": reason},
        },
        status_code=422,
    )
