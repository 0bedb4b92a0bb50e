"""The hub's web pages: server-rendered GOV.UK Frontend pages over the hub's own JSON API.

``install(app)`` adds the page routes, the static assets under ``/static`` and the handlers
that turn a missing session into a redirect to sign in and an API refusal into a plain page.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from hub.observability import get_logger
from hub.web import pages_governance, pages_practice, pages_session
from hub.web.client import ApiError
from hub.web.deps import CsrfRejected, FormTooLarge, SignInRequired
from hub.web.render import SECURITY_HEADERS, render
from hub.web.session import clear_session, read_session

__all__ = ["STATIC_DIR", "install"]

log = get_logger(__name__)

STATIC_DIR = Path(__file__).parent / "static"

_PROBLEMS = {
    400: ("This form has expired", "Go back, reload the page and try again."),
    403: ("You cannot see this", "Your role does not allow it under the sharing rules in force."),
    404: ("Page not found", "There is nothing here. Check the address, or find the child again."),
    409: ("This has already changed", "Someone else acted on it first. Reload to see it now."),
    413: ("That was too large", "Shorten what you sent and try again."),
}


def _sign_in_redirect(request: Request) -> Response:
    target = request.url.path if request.method == "GET" else "/alerts"
    response = RedirectResponse(f"/sign-in?next={quote(target)}", status_code=303)
    response.headers.update(SECURITY_HEADERS)
    clear_session(response, request)
    return response


def _problem(request: Request, status_code: int, detail: str = "") -> Response:
    title, advice = _PROBLEMS.get(
        status_code, ("Sorry, there is a problem", "Try again later. The problem was logged.")
    )
    session = read_session(request, request.app.state.hub)
    context = {"title": title, "advice": advice, "detail": detail, "status": status_code}
    return render(request, "problem.html", session, context, status_code=status_code)


async def _on_sign_in_required(request: Request, _: Exception) -> Response:
    return _sign_in_redirect(request)


async def _on_csrf(request: Request, _: Exception) -> Response:
    log.info("web.csrf_rejected", path=request.url.path)
    return _problem(request, 400)


async def _on_too_large(request: Request, _: Exception) -> Response:
    return _problem(request, 413)


async def _on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if exc.status == 401:
        return _sign_in_redirect(request)
    log.info("web.api_refused", path=request.url.path, status=exc.status)
    detail = exc.message if exc.status in (403, 409, 422) else ""
    return _problem(request, exc.status if exc.status in _PROBLEMS else 500, detail)


def install(app: FastAPI) -> None:
    """Serve the web pages and their assets from ``app`` (call once, after the API routers)."""
    app.include_router(pages_session.router)
    app.include_router(pages_practice.router)
    app.include_router(pages_governance.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(SignInRequired, _on_sign_in_required)
    app.add_exception_handler(CsrfRejected, _on_csrf)
    app.add_exception_handler(FormTooLarge, _on_too_large)
    app.add_exception_handler(ApiError, _on_api_error)
