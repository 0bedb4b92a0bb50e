"""Topic deliveries: each permitted hub event, redacted, to ``deliver.<subscriber>``, once.

Per event and topic subscriber the decision point is asked with the subscriber as requester.
On permit a redacted copy (the decision's obligations applied, then a protected person's
location stripped) is published keyed by child id, and once the broker has it the ledger row
is marked delivered and a ``delivery.pushed`` audit record written in one transaction. On deny
nothing is published and only ids are logged. A redelivered event finds its ledger row
delivered and is skipped; a row left pending by a crash is published again (at-least-once:
partners de-duplicate on the ``x-event-id`` header).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from contracts import Envelope
from hub.delivery.config import Subscriber, SubscriberKind, Subscribers
from hub.delivery.prepared import prepare_many
from hub.delivery.store import (
    DeliveryStatus,
    DeliveryStore,
    HeldDelivery,
    StoredDelivery,
    delivery_id_for,
)
from hub.governance import Governance
from hub.governance.audit import Actor, AuditAction, AuditEntry, decisions_entry
from hub.governance.read_path import PreparedRead
from hub.observability import get_logger
from hub.settings import Settings
from hub.sharing import (
    AccessRequest,
    ChildStatus,
    Decision,
    EventFacts,
    Milestone,
    decide,
    redact,
)
from hub.store.reading import shared_reads
from hub.streams.records import Publish
from hub.streams.topics import TopicSpec

__all__ = [
    "DELIVERY_ACTOR",
    "DELIVER_PREFIX",
    "DeliveryCounts",
    "DeliveryEvent",
    "TopicDeliveryProcessor",
    "actor_of",
    "deliver_topic",
    "deliver_topic_specs",
    "delivery_entry",
]

log = get_logger(__name__)

DELIVER_PREFIX = "deliver."
DELIVERY_ACTOR = Actor(sub="hub:delivery", role="agency_system")
"""Who the child context is prepared for: the same for every subscriber, since a partner
system never holds a break-glass justification (a person's), so one read serves them all."""

_TRANSPORT = frozenset({"signature", "key_id"})
"""Left out of the copy: the agency's signature covers the whole record, not a redacted one."""


def deliver_topic(settings: Settings, subscriber_id: str) -> str:
    """The full name of a subscriber's topic (``deliver.<id>``, prefix applied)."""
    return settings.topic(f"{DELIVER_PREFIX}{subscriber_id}")


def deliver_topic_specs(
    settings: Settings,
    subscribers: Subscribers,
    *,
    partitions: int = 3,
    retention_days: int = 14,
) -> list[TopicSpec]:
    """The topics to create, one per topic subscriber (add them to ``Topics.specs()``)."""
    config = {"retention.ms": str(retention_days * 86_400_000), "cleanup.policy": "delete"}
    return [
        TopicSpec(deliver_topic(settings, s.id), partitions, dict(config))
        for s in subscribers.of_kind(SubscriberKind.topic)
    ]


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """An opened hub event: the envelope, its canonical child, and what the rules need to know
    of the child (as the narrative read path computes them)."""

    child_id: str
    envelope: Envelope
    statuses: frozenset[ChildStatus] = frozenset()
    involved_agencies: frozenset[str] = frozenset()
    milestones: Mapping[Milestone, datetime] = field(default_factory=dict)
    significant_harm: bool = False
    sealed_record: str | None = None
    """The event's record as it came on ``hub.events`` (sealed): kept with a held delivery."""


@dataclass(frozen=True, slots=True)
class DeliveryCounts:
    """What one batch did: published, denied (nothing sent; ``held`` of them by a rule's
    delay, to be decided again), already delivered before."""

    published: int = 0
    denied: int = 0
    duplicates: int = 0
    held: int = 0


@dataclass(frozen=True, slots=True)
class _Sent:
    row: StoredDelivery
    subscriber: Subscriber
    event_id: str
    child_id: str
    facts: EventFacts
    decision: Decision
    prepared: PreparedRead
    topic: str
    future: Any


def actor_of(subscriber: Subscriber) -> Actor:
    """The audit actor a subscriber is."""
    request = subscriber.request
    return Actor(
        sub=subscriber.who,
        agency_id=request.agency_id,
        agency_kind=str(request.agency_kind),
        role=str(request.role),
        team=request.team,
    )


def delivery_entry(
    *,
    action: AuditAction,
    subscriber: Subscriber,
    child_id: str,
    prepared: PreparedRead,
    decisions: Sequence[tuple[str, EventFacts, Decision]],
    extra: Mapping[str, Any],
    request: AccessRequest | None = None,
) -> AuditEntry:
    """The audit record of one delivery: who, agency, purpose, child, events, rules, bases
    (``request``: the subscriber's, when the caller holds it already)."""
    glass = prepared.break_glass
    return decisions_entry(
        action=action,
        who=subscriber.who,
        request=subscriber.request if request is None else request,
        child_id=child_id,
        child=prepared.child,
        decisions=decisions,
        pack_version=prepared.pack.version,
        break_glass_id=None if glass is None else glass.break_glass_id,
        justification_sha256=None if glass is None else glass.justification_sha256,
        extra=extra,
    )


class TopicDeliveryProcessor:
    """Delivers batches of hub events to every topic subscriber the rules permit."""

    def __init__(
        self,
        *,
        settings: Settings,
        subscribers: Subscribers,
        store: DeliveryStore,
        governance: Governance,
        publish: Publish,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._subscribers = subscribers.of_kind(SubscriberKind.topic)
        self._store = store
        self._gov = governance
        self._publish = publish
        self._clock = clock

    @property
    def subscriber_ids(self) -> frozenset[str]:
        """The topic subscribers configured now."""
        return frozenset(s.id for s in self._subscribers)

    def reading(self) -> AbstractAsyncContextManager[None]:
        """A block in which this task's reads share one connection (``shared_reads``): a
        caller reading the children's snapshots runs ``prepare`` in the same block."""
        return shared_reads(self._store.engine)

    async def handle_batch(self, events: Sequence[DeliveryEvent]) -> DeliveryCounts:
        """Deliver one batch; returns after the broker has every copy and the ledger and audit
        trail record them (the caller commits its Kafka offsets only then)."""
        async with self.reading():
            prepared = await self.prepare(events)
        return await self.deliver(events, prepared)

    async def prepare(self, events: Sequence[DeliveryEvent]) -> dict[str, PreparedRead]:
        """The governance context of each child of the batch (from its first event), read
        for every subscriber at once; nothing when there is no topic subscriber."""
        if not self._subscribers:
            return {}
        first: dict[str, DeliveryEvent] = {}
        for event in events:
            first.setdefault(event.child_id, event)
        return await prepare_many(self._gov, first, actor=DELIVERY_ACTOR)

    async def deliver(
        self,
        events: Sequence[DeliveryEvent],
        prepared: Mapping[str, PreparedRead],
        *,
        only: Mapping[tuple[str, str], StoredDelivery] | None = None,
    ) -> DeliveryCounts:
        """``handle_batch`` with the children's contexts already ``prepare``d (outside any
        shared reads' block: this writes).

        ``only`` decides held deliveries again (``release``): (event id, subscriber id) -> the
        ledger row as read before this process took it. Each is decided for that subscriber
        only and sent, held again (audited again only if its time changed) or withheld for
        good. Without it every subscriber is decided; a new delivery a delay holds is recorded
        held, and a row already held is left to ``release``.
        """
        now = self._clock()
        permitted: list[tuple[Subscriber, DeliveryEvent, EventFacts, Decision, PreparedRead]] = []
        denied = duplicates = 0
        # Decisions not to share are audited too (one record per subscriber and child), so a
        # rules dry-run can show the deliveries a change would add.
        withheld: dict[tuple[str, str], list[tuple[str, EventFacts, Decision]]] = {}
        held: list[HeldDelivery] = []
        again: list[tuple[str, datetime | None]] = []  # taken, still held
        refused: list[str] = []  # taken, no longer permitted at all
        say = log.bind()  # resolved once a batch: the lazy module logger binds on every call
        # Each subscriber's requester built once a batch (``Subscriber.request`` makes one).
        requests = {s.id: s.request for s in self._subscribers} if events else {}
        for event in events:
            facts = EventFacts.of(event.envelope)
            for sub in self._subscribers:
                taken = None if only is None else only.get((event.envelope.id, sub.id))
                if only is not None and taken is None:
                    continue
                ready = prepared[event.child_id]
                decision = decide(requests[sub.id], facts, ready.child, ready.pack, now=now)
                if decision.permitted:
                    permitted.append((sub, event, facts, decision, ready))
                    continue
                denied += 1
                audit = True
                if taken is not None and decision.held:
                    again.append((taken.delivery_id, decision.not_before))
                    audit = decision.not_before != taken.next_attempt_at  # aware: instants
                elif taken is not None:
                    refused.append(taken.delivery_id)
                elif decision.held and event.sealed_record is not None:
                    held.append(
                        HeldDelivery(
                            sub.id,
                            event.envelope.id,
                            event.child_id,
                            event.sealed_record,
                            decision.not_before,
                        )
                    )
                if audit:
                    withheld.setdefault((sub.id, event.child_id), []).append(
                        (event.envelope.id, facts, decision)
                    )
                say.debug(
                    "delivery.not_permitted",
                    subscriber_id=sub.id,
                    event_id=event.envelope.id,
                    child_id=event.child_id,
                    pack_version=decision.pack_version,
                    held_until=None
                    if decision.not_before is None
                    else decision.not_before.isoformat(),
                )
        if only is None:
            rows = await self._store.claim_many(
                [
                    (sub.id, SubscriberKind.topic.value, event.envelope.id, event.child_id)
                    for sub, event, _, _, _ in permitted
                ]
            )
        else:
            rows = {r.delivery_id: r for r in only.values()}
        sent: list[_Sent] = []
        seen: set[str] = set()  # an event twice in one batch is sent once
        for sub, event, facts, decision, ready in permitted:
            row = rows[delivery_id_for(sub.id, event.envelope.id)]
            # Sent here: a row just claimed (or left pending by a crash), or one this process
            # took to decide again. A held row found by a replayed event is release's to send.
            mine = only is not None or (row.status is DeliveryStatus.pending and row.body is None)
            if not mine or row.delivery_id in seen:
                duplicates += 1
                continue
            seen.add(row.delivery_id)
            sent.append(await self._send(sub, event, facts, decision, ready, row))
        await asyncio.gather(*(s.future for s in sent))  # the broker has every copy
        if sent or withheld or again or refused:
            entries = self._withheld_entries(withheld, prepared, requests)
            await self._record(sent, entries, requests, held=held, again=again, refused=refused)
        for s in sent:
            say.info(
                "delivery.pushed",
                delivery_id=s.row.delivery_id,
                subscriber_id=s.subscriber.id,
                event_id=s.event_id,
                child_id=s.child_id,
                rule_ids=[g.rule_id for g in s.decision.grants],
                pack_version=s.decision.pack_version,
            )
        return DeliveryCounts(
            published=len(sent), denied=denied, duplicates=duplicates, held=len(held) + len(again)
        )

    async def _send(
        self,
        sub: Subscriber,
        event: DeliveryEvent,
        facts: EventFacts,
        decision: Decision,
        ready: PreparedRead,
        row: StoredDelivery,
    ) -> _Sent:
        view = event.envelope.model_dump(mode="json", exclude=set(_TRANSPORT))
        copy = redact(view, decision.obligations)
        if ready.protected:
            policy = self._gov.location.for_pack(ready.pack)
            copy, _held = policy.apply(copy, str(sub.role))
        value = json.dumps(copy, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        topic = deliver_topic(self._settings, sub.id)
        headers = {
            "content-type": "application/json",
            "x-event-id": event.envelope.id,
            "x-delivery-id": row.delivery_id,
            "x-subscriber-id": sub.id,
            "x-rule-ids": ",".join(g.rule_id for g in decision.grants),
            "x-rule-pack-version": decision.pack_version,
            "x-lawful-bases": ",".join(str(g.lawful_basis) for g in decision.grants),
        }
        future = await self._publish(
            topic, value.encode("utf-8"), key=event.child_id.encode("utf-8"), headers=headers
        )
        return _Sent(
            row, sub, event.envelope.id, event.child_id, facts, decision, ready, topic, future
        )

    def _withheld_entries(
        self,
        withheld: Mapping[tuple[str, str], list[tuple[str, EventFacts, Decision]]],
        prepared: Mapping[str, PreparedRead],
        requests: Mapping[str, AccessRequest],
    ) -> list[AuditEntry]:
        by_id = {s.id: s for s in self._subscribers}
        return [
            delivery_entry(
                action=AuditAction.delivery_withheld,
                subscriber=by_id[sub_id],
                child_id=child_id,
                prepared=prepared[child_id],
                decisions=decisions,
                extra={"subscriber_id": sub_id},
                request=requests[sub_id],
            )
            for (sub_id, child_id), decisions in sorted(withheld.items())
        ]

    async def _record(
        self,
        sent: Sequence[_Sent],
        withheld: Sequence[AuditEntry],
        requests: Mapping[str, AccessRequest],
        *,
        held: Sequence[HeldDelivery] = (),
        again: Sequence[tuple[str, datetime | None]] = (),
        refused: Sequence[str] = (),
    ) -> None:
        """Mark every copy delivered and audit it (and the decisions not to share), hold what
        a delay holds and mark withheld the held deliveries no longer permitted, in one
        transaction."""
        entries = [
            delivery_entry(
                action=AuditAction.delivery_pushed,
                subscriber=s.subscriber,
                child_id=s.child_id,
                prepared=s.prepared,
                decisions=[(s.event_id, s.facts, s.decision)],
                extra={
                    "subscriber_id": s.subscriber.id,
                    "delivery_id": s.row.delivery_id,
                    "topic": s.topic,
                },
                request=requests[s.subscriber.id],
            )
            for s in sent
        ]
        async with self._store.engine.begin() as conn:
            if sent:
                await self._store.mark_delivered_many(
                    conn, [(s.row.delivery_id, s.row.attempts + 1) for s in sent]
                )
            await self._store.hold_in(conn, held)
            await self._store.hold_again_in(conn, again)
            await self._store.withhold_in(conn, refused)
            await self._gov.trail.append_in(conn, [*entries, *withheld])
