"""Sign-in sessions of the web pages: the session cookie, CSRF tokens and the demo users.

The session cookie (``hub.api.deps.SESSION_COOKIE``) holds the user's bearer token itself, so
the pages and the browser's alert stream authenticate exactly as an API client does. Forms
carry a CSRF token derived from that token (an attacker who cannot read the HttpOnly cookie
cannot compute it); the sign-in form, which has no session yet, uses a double-submit cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request
from fastapi.responses import Response

from hub.api.deps import SESSION_COOKIE
from hub.auth import Caller, InvalidToken
from hub.bootstrap import Hub
from hub.domain.roles import Role

__all__ = [
    "DEMO_USERS",
    "SESSION_TTL",
    "SIGNIN_CSRF_COOKIE",
    "DemoUser",
    "Session",
    "clear_session",
    "csrf_matches",
    "csrf_token_for",
    "demo_user",
    "new_signin_csrf",
    "read_session",
    "remember_signin_csrf",
    "set_session",
]

SESSION_TTL = timedelta(hours=8)
SIGNIN_CSRF_COOKIE = "hub_signin_csrf"


@dataclass(frozen=True, slots=True)
class DemoUser:
    """An invented person the local development sign-in page offers."""

    key: str
    name: str
    sub: str
    agency: str
    role: Role
    team: str | None = None
    email: str | None = None

    @property
    def role_label(self) -> str:
        """The role in plain words."""
        return self.role.value.replace("_", " ").capitalize()


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser(
        "social-worker",
        "Sam Practitioner",
        "sam.practitioner",
        "northshire-cs",
        Role.social_worker,
        team="safeguarding-team-2",
        email="sam.practitioner@northshire.example",
    ),
    DemoUser(
        "team-manager",
        "Priya Okafor-Lund",
        "priya.okafor-lund",
        "northshire-cs",
        Role.team_manager,
        team="safeguarding-team-2",
        email="priya.okafor-lund@northshire.example",
    ),
    DemoUser(
        "school-dsl",
        "Morgan Teale",
        "morgan.teale",
        "northshire-primary",
        Role.designated_safeguarding_lead,
        email="dsl@northshire-primary.example",
    ),
    DemoUser(
        "named-nurse",
        "Jordan Ashby",
        "jordan.ashby",
        "northshire-health",
        Role.named_nurse,
        email="jordan.ashby@northshire-health.example",
    ),
    DemoUser(
        "police-ppu",
        "Casey Brannock",
        "casey.brannock",
        "northshire-police",
        Role.police_ppu,
        team="public-protection-unit",
        email="casey.brannock@northshire-police.example",
    ),
    DemoUser(
        "ig-officer",
        "Robin Hale",
        "robin.hale",
        "northshire-cs",
        Role.ig_officer,
        team="information-governance",
        email="robin.hale@northshire.example",
    ),
)
"""Invented demo users, one per kind of person the hub serves (local development only)."""


def demo_user(key: str) -> DemoUser | None:
    """The demo user with this key, if any."""
    return next((u for u in DEMO_USERS if u.key == key), None)


@dataclass(frozen=True, slots=True)
class Session:
    """The signed-in user: their verified identity, bearer token and form CSRF token."""

    caller: Caller
    token: str
    csrf: str


def csrf_token_for(token: str) -> str:
    """The CSRF token of a session: a digest of its bearer token (stateless, unguessable)."""
    digest = hashlib.sha256(b"hub-web-csrf\x00" + token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


def csrf_matches(expected: str, given: str | None) -> bool:
    """Whether a submitted CSRF token is the expected one (constant time)."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def read_session(request: Request, hub: Hub) -> Session | None:
    """The session the request's cookie carries, or None when absent, expired or forged."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        caller = hub.verifier.verify(token)
    except InvalidToken:
        return None
    return Session(caller=caller, token=token, csrf=csrf_token_for(token))


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session(response: Response, request: Request, token: str) -> None:
    """Keep a verified token in the session cookie (HttpOnly, SameSite=Strict)."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_TTL.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(SIGNIN_CSRF_COOKIE, path="/sign-in")


def clear_session(response: Response, request: Request) -> None:
    """Forget the session."""
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request)
    )


def new_signin_csrf(request: Request) -> str:
    """The sign-in form's double-submit token: the one the browser holds, else a fresh one."""
    return request.cookies.get(SIGNIN_CSRF_COOKIE) or secrets.token_urlsafe(24)


def remember_signin_csrf(response: Response, request: Request, value: str) -> None:
    """Set the sign-in form's double-submit cookie (SameSite=Strict: other sites cannot send it)."""
    response.set_cookie(
        SIGNIN_CSRF_COOKIE,
        value,
        max_age=3600,
        path="/sign-in",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
