"""Operational endpoints: liveness, readiness, Prometheus metrics and the AsyncAPI document."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hub.api.deps import HubDep
from hub.observability import get_logger

__all__ = ["router"]

log = get_logger(__name__)

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive.")
async def healthz() -> dict[str, str]:
    """Always ok while the process can answer."""
    return {"status": "ok"}


@router.get("/readyz", summary="Kafka and the store are reachable.")
async def readyz(hub: HubDep) -> JSONResponse:
    """200 when both Kafka and the store answer; 503 naming what does not."""
    checks: dict[str, str] = {}
    try:
        ok = await hub.streams.broker.ping(timeout=3.0)
        checks["kafka"] = "ok" if ok else "unreachable"
    except Exception:
        checks["kafka"] = "unreachable"
    try:
        await asyncio.wait_for(hub.store.ping(), timeout=3.0)
        checks["store"] = "ok"
    except Exception:
        checks["store"] = "unreachable"
    ready = all(v == "ok" for v in checks.values())
    if not ready:
        log.warning("readiness.failed", **checks)
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", summary="Prometheus metrics.", response_class=Response)
async def metrics(hub: HubDep) -> Response:
    """Counters, histograms and gauges in the Prometheus text format."""
    return Response(generate_latest(hub.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/asyncapi.json", summary="AsyncAPI document of every topic.")
async def asyncapi_json(hub: HubDep) -> Response:
    """The AsyncAPI 3.0 document FastStream generates from the hub's publishers and subscribers."""
    return Response(hub.asyncapi_json(), media_type="application/json")


@router.get("/asyncapi", summary="AsyncAPI document, rendered.", response_class=HTMLResponse)
async def asyncapi_html(hub: HubDep) -> HTMLResponse:
    """A readable page listing every topic, its direction and message schema."""
    return HTMLResponse(hub.asyncapi_html())
