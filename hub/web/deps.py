"""What every page route needs: the signed-in session, the posted form with its CSRF check,
and the exceptions that turn into a redirect to sign in or a plain error page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Request

from hub.api.deps import HubDep
from hub.web.client import HubApi, hub_api
from hub.web.session import Session, csrf_matches, read_session

__all__ = [
    "MAX_FORM_BYTES",
    "ApiDep",
    "CsrfRejected",
    "Form",
    "FormTooLarge",
    "PageSession",
    "SignInRequired",
    "page_session",
    "posted_form",
]

MAX_FORM_BYTES = 2_100_000
"""The largest form a page accepts (a rule pack's text is the biggest thing posted)."""


class SignInRequired(Exception):
    """The request has no valid session; the user is sent to sign in."""


class CsrfRejected(Exception):
    """A form arrived without this session's CSRF token (stale page, or another site)."""


class FormTooLarge(Exception):
    """A posted form is bigger than any page sends."""


def page_session(request: Request, hub: HubDep) -> Session:
    """The signed-in user, or ``SignInRequired``."""
    session = read_session(request, hub)
    if session is None:
        raise SignInRequired
    return session


PageSession = Annotated[Session, Depends(page_session)]


async def _api(request: Request, session: PageSession) -> AsyncIterator[HubApi]:
    async with hub_api(request, session.token) as api:
        yield api


ApiDep = Annotated[HubApi, Depends(_api)]


@dataclass(frozen=True, slots=True)
class Form:
    """A URL-encoded form's fields (each name to its values)."""

    fields: dict[str, list[str]]

    def get(self, name: str, default: str = "") -> str:
        """The first value of a field, stripped, or ``default``."""
        values = self.fields.get(name)
        return values[0].strip() if values else default

    def raw(self, name: str) -> str:
        """The first value of a field exactly as sent (line breaks kept)."""
        values = self.fields.get(name)
        return values[0].replace("\r\n", "\n") if values else ""


async def read_form(request: Request) -> Form:
    """The request's URL-encoded form (the pages post nothing else)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormTooLarge
    return Form(parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))


async def posted_form(request: Request, session: PageSession) -> Form:
    """The posted form, once its CSRF token matches the session's; else ``CsrfRejected``."""
    form = await read_form(request)
    if not csrf_matches(session.csrf, form.get("csrf_token")):
        raise CsrfRejected
    return form
