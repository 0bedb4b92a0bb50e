"""The pages' way to the hub's own JSON API: in-process calls with the signed-in user's token.

Pages never read the store: every figure on a page came through the same route, sharing-rule
enforcement and audit as an API client's request would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Request

__all__ = ["ApiError", "HubApi", "hub_api"]


class ApiError(Exception):
    """The hub's API answered with an error; ``status`` and its ``detail`` say which."""

    def __init__(self, status: int, detail: Any) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"hub API answered {status}")

    @property
    def message(self) -> str:
        """The error's detail as one plain sentence."""
        detail = self.detail
        if isinstance(detail, dict):
            detail = detail.get("message") or detail.get("detail") or ""
        if isinstance(detail, list):
            return "; ".join(
                str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail
            )
        return str(detail)


@dataclass
class HubApi:
    """A client of this app's ``/api/v1`` as one user."""

    client: httpx.AsyncClient

    async def get(self, path: str, **params: Any) -> Any:
        """GET a path; the JSON answer, or ``ApiError``."""
        clean = {k: v for k, v in params.items() if v not in (None, "")}
        return self._answer(await self.client.get(path, params=clean))

    async def post(self, path: str, body: Any = None, **params: Any) -> Any:
        """POST a JSON body; the JSON answer, or ``ApiError``."""
        clean = {k: v for k, v in params.items() if v not in (None, "")}
        return self._answer(await self.client.post(path, json=body, params=clean))

    @staticmethod
    def _answer(response: httpx.Response) -> Any:
        try:
            data = response.json()
        except ValueError:
            data = {"detail": response.text[:200]}
        if response.status_code >= 400:
            detail = data.get("detail", data) if isinstance(data, dict) else data
            raise ApiError(response.status_code, detail)
        return data


@asynccontextmanager
async def hub_api(request: Request, token: str) -> AsyncIterator[HubApi]:
    """A client that calls this very app in-process with ``token`` as the bearer."""
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://hub",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30.0,
    ) as client:
        yield HubApi(client)
