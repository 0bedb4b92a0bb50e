"""The operator's view of partner deliveries: list the ledger, re-drive a dead webhook.

IG officers only (the hub's operator role for information flows): every other role gets 403.
Responses carry ids, statuses, attempt counts, times and the last error class or HTTP status
code: never a body, an event's content or anything about a child beyond its delivery's ids.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from hub.api.deps import CurrentCaller, HubDep
from hub.auth import Caller
from hub.bootstrap import Hub
from hub.delivery.store import DeliveryNotDead, DeliveryNotFound, DeliveryStatus, DeliveryStore
from hub.domain.roles import Role
from hub.observability import get_logger

__all__ = ["OPERATOR_ROLES", "deliveries_router", "delivery_store_of"]

log = get_logger(__name__)

OPERATOR_ROLES: frozenset[Role] = frozenset({Role.ig_officer})
"""Who may see and re-drive deliveries."""

deliveries_router = APIRouter(prefix="/api/v1/deliveries", tags=["deliveries"])


def delivery_store_of(hub: Hub) -> DeliveryStore:
    """The delivery ledger over this hub's store engine (cheap: per request is fine)."""
    return DeliveryStore(hub.store.engine)


def _require_operator(caller: Caller) -> None:
    if caller.role not in OPERATOR_ROLES:
        names = " or ".join(sorted(r.value for r in OPERATOR_ROLES))
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"only {names} may do this")


@deliveries_router.get("", summary="List partner deliveries")
async def list_deliveries(
    hub: HubDep,
    caller: CurrentCaller,
    subscriber: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")] = None,
    delivery_status: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Deliveries, most recently changed first, by subscriber and status if given."""
    _require_operator(caller)
    rows = await delivery_store_of(hub).listing(
        subscriber_id=subscriber, status=delivery_status, limit=limit
    )
    return {"deliveries": [r.public() for r in rows]}


@deliveries_router.post(
    "/{delivery_id}/retry",
    summary="Retry a dead delivery",
    status_code=status.HTTP_202_ACCEPTED,
)
async def retry_delivery(delivery_id: str, hub: HubDep, caller: CurrentCaller) -> dict[str, Any]:
    """Give a dead webhook delivery a fresh allowance of attempts, the first one due now."""
    _require_operator(caller)
    try:
        row = await delivery_store_of(hub).retry(delivery_id)
    except DeliveryNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such delivery") from exc
    except DeliveryNotDead as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "only a dead delivery can be retried"
        ) from exc
    log.info("delivery.retry_requested", delivery_id=delivery_id, by=caller.sub)
    return row.public()
