"""Alerts for the caller: the inbox, a live server-sent-event stream, and acknowledgement."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from hub.alerts.store import AlertNotFound, AlertNotOpen, InboxItem, StoredAlert
from hub.api.deps import CurrentCaller, HubDep
from hub.auth import Caller
from hub.observability import get_logger

__all__ = ["alert_view", "inbox_addresses", "router"]

log = get_logger(__name__)

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

_POLL_SECONDS = 0.2
_HEARTBEAT_SECONDS = 15.0
_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def inbox_addresses(caller: Caller) -> list[str]:
    """Every inbox key an alert may be addressed to that reaches this caller."""
    agency = caller.agency.id
    addresses = [
        f"agency:{agency}",
        f"agency:{agency}:{caller.role.value}",
        f"role:{agency}:{caller.role.value}",
        f"practitioner:{caller.sub.lower()}",
    ]
    if caller.team:
        addresses.append(f"team:{agency}:{caller.team}")
    if caller.email:
        addresses.append(f"practitioner:{caller.email.lower()}")
    return addresses


class AlertView(BaseModel):
    """An alert as a recipient sees it."""

    alert_id: str
    child_id: str
    rule_id: str
    severity: str
    reason: str
    status: str
    occurred_at: datetime
    raised_at: datetime
    due_at: datetime
    escalation_step: int
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    trigger_event_ids: list[str]
    recipients: list[dict[str, Any]]


def alert_view(alert: StoredAlert) -> AlertView:
    """The API form of a stored alert."""
    return AlertView(
        alert_id=alert.alert_id,
        child_id=alert.child_id,
        rule_id=alert.rule_id,
        severity=alert.severity,
        reason=alert.reason,
        status=alert.status.value,
        occurred_at=alert.occurred_at,
        raised_at=alert.raised_at,
        due_at=alert.due_at,
        escalation_step=alert.escalation_step,
        acknowledged_by=alert.acknowledged_by,
        acknowledged_at=alert.acknowledged_at,
        trigger_event_ids=list(alert.trigger_event_ids),
        recipients=[r.model_dump(mode="json", exclude_none=True) for r in alert.recipients],
    )


class Inbox(BaseModel):
    """Open alerts for the caller, most severe first, then newest."""

    alerts: list[AlertView]


@router.get("", response_model=Inbox, summary="Open alerts addressed to you.")
async def list_alerts(
    hub: HubDep,
    caller: CurrentCaller,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Inbox:
    """Alerts not yet acknowledged or withdrawn that reach the caller's inboxes."""
    found = await hub.alerts.open_alerts(inbox_addresses(caller), limit=limit)
    found.sort(key=lambda a: (_SEVERITY_ORDER.get(a.severity, 9), -a.raised_at.timestamp()))
    log.info("alerts.listed", caller=caller.sub, agency_id=caller.agency.id, count=len(found))
    return Inbox(alerts=[alert_view(a) for a in found])


def _sse(item: InboxItem) -> str:
    data = json.dumps(
        {
            "kind": item.kind,
            "at": item.at.isoformat(),
            "alert": alert_view(item.alert).model_dump(mode="json"),
        }
    )
    return f"id: {item.seq}\nevent: {item.kind}\ndata: {data}\n\n"


@router.get(
    "/stream",
    summary="Live alert changes as server-sent events; resumable with Last-Event-ID.",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_alerts(
    request: Request,
    hub: HubDep,
    caller: CurrentCaller,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    since: Annotated[int | None, Query(ge=0, description="Resume after this event id.")] = None,
) -> StreamingResponse:
    """Every raise, escalation, acknowledgement and withdrawal of the caller's alerts."""
    try:
        after = since if since is not None else int(last_event_id or 0)
    except ValueError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "Last-Event-ID must be a number"
        ) from exc
    addresses = inbox_addresses(caller)

    async def events() -> AsyncIterator[str]:
        cursor = after
        quiet = 0.0
        yield "retry: 2000\n\n"
        while not await request.is_disconnected():
            items = await hub.alerts.inbox(addresses, since_id=cursor)
            for item in items:
                cursor = item.seq
                yield _sse(item)
            if items:
                quiet = 0.0
                continue
            await asyncio.sleep(_POLL_SECONDS)
            quiet += _POLL_SECONDS
            if quiet >= _HEARTBEAT_SECONDS:
                quiet = 0.0
                yield ": keep-alive\n\n"

    log.info("alerts.stream_opened", caller=caller.sub, agency_id=caller.agency.id, since=after)
    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.post(
    "/{alert_id}/acknowledge",
    response_model=AlertView,
    summary="Acknowledge an alert addressed to you (stops its escalation).",
    responses={
        404: {"description": "No such alert for you."},
        409: {"description": "The alert was withdrawn."},
    },
)
async def acknowledge_alert(alert_id: str, hub: HubDep, caller: CurrentCaller) -> AlertView:
    """Record who acknowledged the alert and when; idempotent."""
    try:
        alert = await hub.alerts.acknowledge(
            alert_id, caller.sub, now=datetime.now(UTC), addresses=inbox_addresses(caller)
        )
    except AlertNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such alert for you") from exc
    except AlertNotOpen as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, "the alert was withdrawn") from exc
    log.info("alert.acknowledged", alert_id=alert_id, caller=caller.sub, agency_id=caller.agency.id)
    return alert_view(alert)
