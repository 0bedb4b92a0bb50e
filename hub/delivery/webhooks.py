"""Alert webhooks: raised alerts POSTed, signed, to the partner subscribers that want them.

``queue_in`` puts one ledger row per (alert, wanting subscriber), holding the exact body to send,
in the transaction that records the alert (the alert processor's ``outbox``), so an alert
committed always has its webhooks queued.
``run_due`` attempts every due row: the rules in force are asked whether the subscriber may see
*every* event that triggered the alert (else nothing is sent and the row is ``withheld``); the
body is signed (``hub.delivery.signing``) and POSTed with timeouts; a 2xx marks it delivered
and writes an ``alert.delivered`` audit record in the same transaction; anything else is retried
with exponential back-off and jitter until the allowance is spent, then the row is ``dead``
with its last error class and status code. Rows live in the store, so a restart resumes them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.alerts.model import AlertRaised
from hub.delivery.backoff import RetryPolicy
from hub.delivery.config import SecretUnavailable, SubscriberKind, Subscribers
from hub.delivery.context import ChildSnapshot
from hub.delivery.signing import signature_headers
from hub.delivery.store import DeliveryStore, NewDelivery, StoredDelivery, delivery_id_for
from hub.delivery.topics import actor_of, delivery_entry
from hub.governance import Governance
from hub.governance.audit import AuditAction
from hub.governance.read_path import prepare_read
from hub.observability import get_logger
from hub.periodic import run_every
from hub.sharing import decide

__all__ = ["AlertDispatcher", "alert_body", "run_webhooks"]

log = get_logger(__name__)

SnapshotSource = Callable[[str], Awaitable[ChildSnapshot]]


def alert_body(alert: AlertRaised, subscriber_id: str) -> str:
    """The JSON body sent for an alert (ids and codes only; the bytes signed are these)."""
    body = {
        "type": "alert.raised",
        "delivery_id": delivery_id_for(subscriber_id, alert.alert_id),
        "subscriber_id": subscriber_id,
        "alert": {
            "alert_id": alert.alert_id,
            "child_id": alert.child_id,
            "rule_id": alert.rule_id,
            "rule_version": alert.rule_version,
            "severity": alert.severity,
            "reason": alert.reason,
            "trigger_event_ids": list(alert.trigger_event_ids),
            "occurred_at": alert.occurred_at.astimezone(UTC).isoformat(),
            "raised_at": alert.raised_at.astimezone(UTC).isoformat(),
            "due_at": alert.due_at.astimezone(UTC).isoformat(),
        },
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


class AlertDispatcher:
    """Queues raised alerts for webhook subscribers and attempts the due deliveries."""

    def __init__(
        self,
        *,
        subscribers: Subscribers,
        store: DeliveryStore,
        governance: Governance,
        snapshots: SnapshotSource,
        policy: RetryPolicy,
        timeout_seconds: float = 10.0,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        lease_seconds: float = 120.0,
        concurrency: int = 8,
    ) -> None:
        self._subscribers = subscribers
        self._webhooks = subscribers.of_kind(SubscriberKind.webhook)
        self._store = store
        self._gov = governance
        self._snapshots = snapshots
        self._policy = policy
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds), follow_redirects=False
        )
        self._clock = clock
        self._lease = timedelta(seconds=max(lease_seconds, timeout_seconds * 2))
        self._limit = asyncio.Semaphore(concurrency)

    async def aclose(self) -> None:
        """Close the HTTP client if this dispatcher made it."""
        if self._owns_client:
            await self._client.aclose()

    def wanted(self, outcomes: Iterable[object]) -> list[NewDelivery]:
        """A delivery for each raised alert and each webhook subscriber that wants it, with
        the body it will send (other outcomes want none)."""
        return [
            NewDelivery(
                subscriber_id=sub.id,
                kind=SubscriberKind.webhook.value,
                subject_id=outcome.alert_id,
                child_id=outcome.child_id,
                body=alert_body(outcome, sub.id),
            )
            for outcome in outcomes
            if isinstance(outcome, AlertRaised)
            for sub in self._webhooks
            if sub.wants_alert(outcome.rule_id, outcome.severity)
        ]

    async def queue_in(self, conn: AsyncConnection, outcomes: Sequence[object]) -> None:
        """Queue the webhooks of these outcomes in the caller's transaction: the alert
        processor's, so an alert and its webhooks commit together (the outbox) and no crash
        can fall between them. An alert already queued keeps its row."""
        queued = self.wanted(outcomes)
        await self._store.queue_in(conn, queued, due_at=self._clock())
        for item in queued:
            log.info(
                "delivery.queued",
                delivery_id=item.delivery_id,
                subscriber_id=item.subscriber_id,
                alert_id=item.subject_id,
            )

    async def run_due(self, *, limit: int = 100) -> int:
        """Attempt every webhook delivery due now (each once); returns how many were tried."""
        rows = await self._store.due(self._clock(), kind=SubscriberKind.webhook.value, limit=limit)

        async def one(row: StoredDelivery) -> bool:
            # Leased only when its turn comes: leased up front, a row waiting behind slow
            # partners could outlive its lease and be sent by another process as well.
            async with self._limit:
                now = self._clock()
                if not await self._store.lease(row, now, now + self._lease):
                    return False
                await self.attempt(row)
                return True

        return sum(await asyncio.gather(*(one(r) for r in rows)))

    async def attempt(self, row: StoredDelivery) -> None:
        """One attempt at one delivery: decide, sign, POST, and record the outcome."""
        attempts = row.attempts + 1
        sub = self._subscribers.get(row.subscriber_id)
        if sub is None or sub.kind is not SubscriberKind.webhook or row.body is None:
            await self._failed(row, attempts, "SubscriberNotConfigured", None, final=True)
            return
        body = row.body.encode("utf-8")
        alert = json.loads(body)["alert"]
        snapshot = await self._snapshots(row.child_id)
        trigger_ids = [str(i) for i in alert["trigger_event_ids"]]
        if not trigger_ids or any(i not in snapshot.events for i in trigger_ids):
            await self._failed(row, attempts, "TriggerEventNotProjected", None)
            return
        prepared = await prepare_read(
            self._gov,
            child_id=row.child_id,
            actor=actor_of(sub),
            statuses=snapshot.statuses,
            involved_agencies=snapshot.involved_agencies,
            milestones=snapshot.milestones,
            significant_harm=snapshot.significant_harm,
        )
        now = self._clock()
        decisions = []
        for event_id in trigger_ids:
            facts = snapshot.events[event_id]
            decision = decide(sub.request, facts, prepared.child, prepared.pack, now=now)
            decisions.append((event_id, facts, decision))
        if not all(d.permitted for _, _, d in decisions):
            await self._store.mark_withheld(row.delivery_id, attempts=row.attempts)
            log.info(
                "delivery.not_permitted",
                delivery_id=row.delivery_id,
                subscriber_id=sub.id,
                alert_id=row.subject_id,
                child_id=row.child_id,
                pack_version=prepared.pack.version,
            )
            return
        try:
            if sub.secret is None:
                raise SecretUnavailable(f"subscriber {sub.id} has no secret reference")
            secret = sub.secret.read()
        except SecretUnavailable:
            await self._failed(row, attempts, "SecretUnavailable", None)
            return
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Delivery": row.delivery_id,
            "X-Hub-Event": "alert.raised",
            **signature_headers(body, secret, int(now.timestamp())),
        }
        try:
            response = await self._client.post(str(sub.url), content=body, headers=headers)
        except httpx.HTTPError as exc:
            await self._failed(row, attempts, type(exc).__name__, None)
            return
        if not 200 <= response.status_code < 300:
            await self._failed(row, attempts, "HTTPStatusError", response.status_code)
            return
        entry = delivery_entry(
            action=AuditAction.alert_delivered,
            subscriber=sub,
            child_id=row.child_id,
            prepared=prepared,
            decisions=decisions,
            extra={
                "subscriber_id": sub.id,
                "delivery_id": row.delivery_id,
                "alert_id": row.subject_id,
                "alert_rule_id": str(alert["rule_id"]),
                "alert_rule_version": int(alert["rule_version"]),
            },
        )
        async with self._store.engine.begin() as conn:
            await self._store.mark_delivered(
                conn, row.delivery_id, attempts=attempts, status_code=response.status_code
            )
            await self._gov.trail.append_in(conn, [entry])
        log.info(
            "delivery.webhook_delivered",
            delivery_id=row.delivery_id,
            subscriber_id=sub.id,
            alert_id=row.subject_id,
            attempts=attempts,
            status_code=response.status_code,
        )

    async def _failed(
        self,
        row: StoredDelivery,
        attempts: int,
        error_class: str,
        status_code: int | None,
        *,
        final: bool = False,
    ) -> None:
        dead = final or self._policy.exhausted(attempts)
        retry_at = None if dead else self._clock() + self._policy.delay(attempts)
        await self._store.record_failure(
            row.delivery_id,
            attempts=attempts,
            error_class=error_class,
            status_code=status_code,
            retry_at=retry_at,
        )
        log.warning(
            "delivery.dead" if dead else "delivery.retry_scheduled",
            delivery_id=row.delivery_id,
            subscriber_id=row.subscriber_id,
            attempts=attempts,
            error_class=error_class,
            status_code=status_code,
            retry_at=None if retry_at is None else retry_at.isoformat(),
        )


async def run_webhooks(dispatcher: AlertDispatcher, *, every_seconds: float = 1.0) -> None:
    """Attempt due webhook deliveries for ever (cancelled at shutdown); failures are logged."""
    await run_every(dispatcher.run_due, every_seconds=every_seconds, failed="delivery.run_failed")
