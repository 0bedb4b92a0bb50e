"""Alerts for the caller: the inbox, a live server-sent-event stream, and acknowledgement.

Every alert passes the sharing rules before it is shown (``hub.alerts.disclosure``): one the
caller may not see is absent from the inbox and the stream, and acknowledging it answers 404
like an alert addressed to someone else. Each alert shown is audited (``alert.delivered``):
in one batch per inbox request, once per alert sent on the stream.

The stream reads new steps when this process announces a commit (``hub.alerts.changes``), or
when the process's watcher sees another process's (``HUB_ALERT_STREAM_POLL_SECONDS``); it reads
again at least every heartbeat whatever it hears. Its event ids are the steps' ``seq``, in
order, so ``Last-Event-ID`` resumes exactly; a step whose alert names a trigger event whose
facts neither the narrative store nor the alert holds (one raised before alerts kept them, or
resting on a corrected event) is held (and the steps after it) until the narrative has it, for
up to two minutes, since until then the rules cannot decide it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from hub.alerts.disclosure import AlertGate, requests_for
from hub.alerts.store import AlertNotFound, AlertNotOpen, InboxItem, StoredAlert
from hub.api.deps import CurrentCaller, HubDep
from hub.api.narrative_access import ROLE_PURPOSES
from hub.auth import Caller
from hub.bootstrap import Hub
from hub.governance.api import governance_of
from hub.governance.audit import Actor
from hub.observability import get_logger

__all__ = ["alert_gate", "alert_view", "inbox_addresses", "router"]

log = get_logger(__name__)

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

_HEARTBEAT_SECONDS = 15.0
_FACTS_GRACE = timedelta(seconds=120)
"""How long after a step the stream waits for the narrative to store its alert's triggers."""
_FACTS_RETRY_SECONDS = (0.05, 0.1, 0.2, 0.5, 1.0)
_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}
_OVERFETCH = 4
"""The inbox reads this many times ``limit`` open alerts, so alerts the caller may not see
cannot crowd out those they may (up to ``_MAX_READ``)."""
_MAX_READ = 2000


def alert_gate(hub: Hub, caller: Caller) -> AlertGate:
    """A gate deciding this caller's alerts now (build one per request or per SSE read)."""
    return AlertGate(
        store=hub.store,
        keys=hub.security.keys,
        gov=governance_of(hub),
        actor=Actor.of(caller),
        requests=requests_for(caller, ROLE_PURPOSES.get(caller.role, ())),
        addresses=inbox_addresses(caller),
        now=datetime.now(UTC),
    )


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
    """Alerts not yet acknowledged or withdrawn that reach the caller's inboxes and that the
    sharing rules let the caller see (each one shown is audited)."""
    read = min(limit * _OVERFETCH, _MAX_READ)
    candidates = await hub.alerts.open_alerts(inbox_addresses(caller), limit=read)
    gate = alert_gate(hub, caller)
    shown = (await gate.visible(candidates))[:limit]
    await gate.record(shown, step="listed")
    found = [s.alert for s in shown]
    found.sort(key=lambda a: (_SEVERITY_ORDER.get(a.severity, 9), -a.raised_at.timestamp()))
    log.info("alerts.listed", caller=caller.sub, agency_id=caller.agency.id, count=len(found))
    return Inbox(alerts=[alert_view(a) for a in found])


def _sse(item: InboxItem, alert: StoredAlert) -> str:
    data = json.dumps(
        {
            "kind": item.kind,
            "at": item.at.isoformat(),
            "alert": alert_view(alert).model_dump(mode="json"),
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
        cursor, held = after, 0
        changes = hub.alerts.changes
        yield "retry: 2000\n\n"
        while not await request.is_disconnected():
            mark = changes.mark()  # before the read, so a commit during it is not missed
            items = await hub.alerts.inbox(addresses, since_id=cursor)
            gate = alert_gate(hub, caller) if items else None
            waiting = False
            for item in items:
                assert gate is not None
                shown = await gate.visible([item.alert])
                if gate.awaits_facts(item.alert) and datetime.now(UTC) - item.at < _FACTS_GRACE:
                    waiting = True  # no facts of its trigger yet: decide it when stored
                    break
                cursor, held = item.seq, 0
                if shown:
                    await gate.record(shown, step=item.kind)
                    yield _sse(item, shown[0].alert)
            if waiting:
                await asyncio.sleep(_FACTS_RETRY_SECONDS[min(held, len(_FACTS_RETRY_SECONDS) - 1)])
                held += 1
                continue
            if items:
                continue
            if not await changes.wait(mark, _HEARTBEAT_SECONDS):
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
    """Record who acknowledged the alert and when; idempotent. An alert the rules do not let
    the caller see is "not found", exactly as one addressed to someone else."""
    gate = alert_gate(hub, caller)
    found = await hub.alerts.get(alert_id)
    before = [] if found is None else await gate.visible([found])
    if not before:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such alert for you")
    try:
        alert = await hub.alerts.acknowledge(
            alert_id, caller.sub, now=datetime.now(UTC), addresses=inbox_addresses(caller)
        )
    except AlertNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such alert for you") from exc
    except AlertNotOpen as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, "the alert was withdrawn") from exc
    shown = await gate.visible([alert]) or before  # decided on the same cached context
    await gate.record(shown, step="acknowledged")
    log.info("alert.acknowledged", alert_id=alert_id, caller=caller.sub, agency_id=caller.agency.id)
    return alert_view(shown[0].alert)
