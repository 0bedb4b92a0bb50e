"""FastAPI dependencies: the hub's components and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hub.auth import Caller, InvalidToken
from hub.bootstrap import Hub
from hub.observability import get_logger

__all__ = ["SESSION_COOKIE", "CurrentCaller", "HubDep", "current_caller", "get_hub"]

log = get_logger(__name__)

_bearer = HTTPBearer(auto_error=False, description="JWT carrying sub, agency and role.")


def get_hub(request: Request) -> Hub:
    """The composed hub this app serves."""
    return request.app.state.hub  # type: ignore[no-any-return]


HubDep = Annotated[Hub, Depends(get_hub)]


SESSION_COOKIE = "hub_session"
"""The web pages keep the signed-in user's bearer token in this HttpOnly, SameSite cookie."""


def current_caller(
    request: Request,
    hub: HubDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The verified caller, or 401 with the reason (never the token itself).

    The token comes from the Authorization header, or for the hub's own web pages (and their
    server-sent-event stream, which cannot set headers) from the session cookie.
    """
    cookie = request.cookies.get(SESSION_COOKIE)
    if credentials is None and cookie:
        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=cookie)
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="a bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        return hub.verifier.verify(credentials.credentials)
    except InvalidToken as exc:
        log.info("auth.token_rejected", reason=str(exc))
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=str(exc),
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from exc


CurrentCaller = Annotated[Caller, Depends(current_caller)]
