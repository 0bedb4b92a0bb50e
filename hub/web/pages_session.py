"""Sign in and sign out.

In local development (the hub issues its own tokens: ``hub.issuer`` is set) the sign-in page
lists invented demo users and signing in issues that user a token. With an external issuer
(``HUB_JWT_PUBLIC_KEY_FILE``) the deployment's OIDC sign-in is expected in front of the hub;
the page then accepts a pasted bearer token, verified exactly as the API verifies it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from hub.api.deps import HubDep
from hub.auth import InvalidToken
from hub.observability import get_logger
from hub.web.deps import FormTooLarge, read_form
from hub.web.render import SECURITY_HEADERS, render
from hub.web.session import (
    DEMO_USERS,
    SESSION_TTL,
    SIGNIN_CSRF_COOKIE,
    clear_session,
    csrf_matches,
    demo_user,
    new_signin_csrf,
    read_session,
    remember_signin_csrf,
    set_session,
)

__all__ = ["router"]

log = get_logger(__name__)

router = APIRouter(include_in_schema=False)


def _redirect(to: str) -> RedirectResponse:
    response = RedirectResponse(to, status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response


def _safe_next(target: str) -> str:
    """Only a path on this site (never another site: no open redirect)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/alerts"


@router.get("/")
async def home(request: Request, hub: HubDep) -> Response:
    """Signed in: the alerts inbox; otherwise the sign-in page."""
    return _redirect("/alerts" if read_session(request, hub) else "/sign-in")


def _signin_page(
    request: Request,
    hub: HubDep,
    *,
    error: str = "",
    status_code: int = 200,
    next_path: str | None = None,
) -> Response:
    csrf = new_signin_csrf(request)
    response = render(
        request,
        "signin.html",
        None,
        {
            "local": hub.issuer is not None,
            "users": DEMO_USERS,
            "signin_csrf": csrf,
            "next": _safe_next(next_path or request.query_params.get("next", "/alerts")),
            "error": error,
        },
        status_code=status_code,
    )
    remember_signin_csrf(response, request, csrf)
    return response


@router.get("/sign-in")
async def sign_in_page(request: Request, hub: HubDep) -> Response:
    """Who to sign in as (local development) or where to paste a token (external issuer)."""
    return _signin_page(request, hub)


@router.post("/sign-in")
async def sign_in(request: Request, hub: HubDep) -> Response:
    """Start a session for a demo user, or for a pasted token once it verifies."""
    try:
        form = await read_form(request)
    except FormTooLarge:
        return _signin_page(request, hub, error="That was too long to be a token.", status_code=413)
    if not csrf_matches(request.cookies.get(SIGNIN_CSRF_COOKIE, ""), form.get("csrf_token")):
        return _signin_page(
            request, hub, error="The page had expired. Please try again.", status_code=400
        )
    target = _safe_next(form.get("next", "/alerts"))
    if hub.issuer is not None and form.get("user"):
        user = demo_user(form.get("user"))
        if user is None:
            return _signin_page(
                request, hub, error="Choose who to sign in as.", status_code=400, next_path=target
            )
        token = hub.issuer.issue(
            sub=user.sub,
            agency=user.agency,
            role=user.role,
            team=user.team,
            email=user.email,
            ttl=SESSION_TTL,
        )
    elif form.get("token"):
        token = form.get("token")
    else:
        message = "Choose who to sign in as." if hub.issuer else "Paste your access token."
        return _signin_page(request, hub, error=message, status_code=400, next_path=target)
    try:
        caller = hub.verifier.verify(token)
    except InvalidToken as exc:
        log.info("web.sign_in_refused", reason=str(exc))
        return _signin_page(
            request,
            hub,
            error=f"That token cannot be used: {exc}.",
            status_code=400,
            next_path=target,
        )
    log.info("web.signed_in", caller=caller.sub, agency_id=caller.agency.id, role=caller.role.value)
    response = _redirect(target)
    set_session(response, request, token)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, hub: HubDep) -> Response:
    """End the session (the form carries the session's CSRF token)."""
    session = read_session(request, hub)
    form = await read_form(request)
    if session is not None and csrf_matches(session.csrf, form.get("csrf_token")):
        log.info("web.signed_out", caller=session.caller.sub)
        response = _redirect("/sign-in")
        clear_session(response, request)
        return response
    return _redirect("/alerts" if session else "/sign-in")
