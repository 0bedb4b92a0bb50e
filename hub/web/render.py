"""Rendering the pages: the Jinja2 environment, the navigation each role sees, and the
headers every page carries (a strict content security policy, no caching of personal data)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from hub.domain.roles import NARRATIVE_READER_ROLES, Role
from hub.web.session import Session

__all__ = ["SECURITY_HEADERS", "nav_for", "render", "templates"]

_HERE = Path(__file__).parent

templates = Jinja2Templates(directory=str(_HERE / "templates"))

SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; form-action 'self'; "
        "base-uri 'none'; object-src 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
"""Headers on every page: scripts and styles only from the hub, no framing, nothing cached."""

_SOCIAL_CARE = frozenset(
    {Role.social_worker, Role.team_manager, Role.service_manager, Role.duty_officer}
)


def nav_for(role: Role) -> list[tuple[str, str]]:
    """The pages a role has a use for, as (path, label), in the order shown."""
    items = [("/alerts", "Alerts"), ("/children", "Find a child")]
    if role in _SOCIAL_CARE or role in NARRATIVE_READER_ROLES:
        items.append(("/identity", "Possible matches"))
    if role is Role.ig_officer:
        items += [
            ("/rules", "Sharing rules"),
            ("/audit", "Audit"),
            ("/consent", "Break-glass reviews"),
        ]
    else:
        items.append(("/consent", "Consent and break-glass"))
    return items


_LONDON = ZoneInfo("Europe/London")


def _when(value: Any, fmt: str = "%-d %b %Y, %H:%M") -> str:
    """A timestamp (ISO text or datetime) in UK time, as '4 Mar 2024, 21:40'."""
    if not value:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime) and value.tzinfo is not None:
        value = value.astimezone(_LONDON)
    return value.strftime(fmt)


def _day(value: Any) -> str:
    return _when(value, "%-d %B %Y")


def _words(value: Any) -> str:
    """An identifier like ``child_protection_plan`` as 'Child protection plan'."""
    text = str(value or "").replace("_", " ").replace(".", " ").strip()
    return text[:1].upper() + text[1:]


templates.env.filters["when"] = _when
templates.env.filters["day"] = _day
templates.env.filters["words"] = _words


def render(
    request: Request,
    name: str,
    session: Session | None,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """A page from template ``name`` with the shared context, carrying the security headers."""
    ctx: dict[str, Any] = {
        "session": session,
        "caller": session.caller if session else None,
        "csrf": session.csrf if session else "",
        "nav": nav_for(session.caller.role) if session else [],
        "path": request.url.path,
        **(context or {}),
    }
    response = templates.TemplateResponse(request, name, ctx, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response
