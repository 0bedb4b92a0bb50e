"""The ingest processor: validate, verify, de-duplicate, link, seal, publish to `hub.events`.

Security (ADR 0006): after the agency checks, the envelope's signature is verified on the JSON
object as received; the person index is keyed by identifier digests; the envelope is sealed
under the child's data key before it is written to `hub.events`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from contracts import ContractValidationError, Envelope, FieldError, parse_envelope
from contracts.versions import UnsupportedSchemaVersion
from hub.crypto.dead_letters import DeadLetterSealer
from hub.crypto.runtime import HubSecurity
from hub.crypto.signing import RejectionReason, SignatureRejected
from hub.domain.identity import LinkDecision, LinkKey, decide_link, link_keys_for
from hub.identity.linking import IdentityLinker
from hub.identity.sealing import RecordSealer
from hub.identity.store import IdentityStore
from hub.observability import Metrics, get_logger
from hub.registry import AgencyRegistry
from hub.store.repository import SqlStore
from hub.streams.letters import sealed_dead_letter
from hub.streams.records import ConsumedRecord, Publish
from hub.streams.topics import Topics
from hub.streams.wire import (
    DeadLetterReason,
    SealedHubEvent,
    envelope_digest,
)

__all__ = ["IngestProcessor"]

log = get_logger(__name__)

PROCESSOR = "ingest"

_SIGNATURE_REASONS = {
    RejectionReason.unsigned: DeadLetterReason.signature_unsigned,
    RejectionReason.signature_invalid: DeadLetterReason.signature_invalid,
    RejectionReason.unknown_key: DeadLetterReason.signature_unknown_key,
    RejectionReason.key_of_another_agency: DeadLetterReason.signature_key_of_another_agency,
    RejectionReason.key_not_yet_valid: DeadLetterReason.signature_key_not_yet_valid,
    RejectionReason.key_expired: DeadLetterReason.signature_key_expired,
}

_COUNTERS: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()


def signature_rejections(metrics: Metrics) -> Counter:
    """``hub_signature_rejections_total{agency_id, reason}`` in the metrics' registry.

    Agency ids are configuration, not personal data, and only registered agencies reach the
    signature check, so the label's values are bounded.
    """
    counter = _COUNTERS.get(metrics.registry)
    if counter is None:
        counter = Counter(
            "hub_signature_rejections_total",
            "Submissions rejected for their signature, per claimed (registered) agency.",
            ["agency_id", "reason"],
            registry=metrics.registry,
        )
        _COUNTERS[metrics.registry] = counter
    return counter


@dataclass(slots=True)
class _Accepted:
    record: ConsumedRecord
    envelope: Envelope
    digest: str
    raw: dict[str, Any]


@dataclass(slots=True)
class _Linked:
    item: _Accepted
    decision: LinkDecision
    linked_by: str


class _Rejected(Exception):
    def __init__(
        self, reason: DeadLetterReason, detail: str, errors: Sequence[FieldError] = ()
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.errors = tuple(errors)


class IngestProcessor:
    """Turns a batch of ingest records into `hub.events` records and dead letters.

    At-least-once: links and children's data keys commit first, so every copy published is
    sealed under a key the store keeps; everything is then published and confirmed by the
    broker before the batch is recorded as ingested, and the caller commits offsets only after
    this returns. A crash in between republishes (same child, same key); the projector is
    idempotent by event id, so nothing is doubled.
    """

    def __init__(
        self,
        *,
        store: SqlStore,
        registry: AgencyRegistry,
        topics: Topics,
        publish: Publish,
        metrics: Metrics,
        security: HubSecurity,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._registry = registry
        self._topics = topics
        self._publish = publish
        self._metrics = metrics
        self._security = security
        self._signature_rejections = signature_rejections(metrics)
        self._clock = clock
        self._linker = IdentityLinker(
            IdentityStore(store.engine, RecordSealer(security.keys)), security.digest
        )
        self._dead_letters = DeadLetterSealer(security.keys)

    async def handle_batch(self, records: Sequence[ConsumedRecord]) -> None:
        """Process one consumed batch; raises on infrastructure faults so it is redelivered."""
        now = self._clock()
        pending: list[asyncio.Future[Any]] = []
        accepted: list[_Accepted] = []
        # Counted per topic, once a batch: a labelled child per record was ~2% of ingest.
        per_topic: dict[str, int] = {}
        for record in records:
            per_topic[record.topic] = per_topic.get(record.topic, 0) + 1
        for topic, count in per_topic.items():
            self._metrics.events_in.labels(PROCESSOR, topic).inc(count)
        for record in records:
            try:
                accepted.append(self._validate(record, now))
            except _Rejected as rejected:
                pending.append(await self._dead_letter(record, rejected, now, event_id=None))
        accepted = await self._drop_duplicates(accepted, pending, now)
        linked: list[_Linked] = []
        unresolved: list[_Accepted] = []
        sealed: list[dict[str, Any]] = []
        try:
            async with self._store.engine.begin() as conn:
                await self._linker.refresh(conn)
                keyed = [(item, self._link_keys(item.envelope)) for item in accepted]
                # One look-up for the whole batch; links made earlier in the batch count.
                known = dict(
                    await self._store.known_links(conn, (k for _, keys in keyed for k in keys))
                )
                decisions: list[LinkDecision] = []
                for item, keys in keyed:
                    env = item.envelope
                    exact = decide_link(keys, known, seed=env.id) if keys else None
                    resolution = self._linker.resolve(env, keys, exact, now=now)
                    if resolution is None:
                        unresolved.append(item)
                        continue
                    decision = resolution.decision
                    known.update(dict.fromkeys(decision.attach, decision.child_id))
                    decisions.append(decision)
                    if decision.conflicts:
                        log.warning(
                            "identity.conflict",
                            event_id=env.id,
                            child_id=decision.child_id,
                            systems=sorted({k.system for k in decision.conflicts}),
                        )
                    linked.append(_Linked(item, decision, resolution.linked_by))
                await self._store.apply_links(conn, decisions, now)
                await self._linker.flush(conn, now=now)
                # Keys are created (or found) in this transaction, which commits before
                # anything sealed under them is published: no copy on the log can outlive
                # its key's row.
                sealed = await self._security.cipher.seal_envelopes(
                    [(x.decision.child_id, x.item.raw) for x in linked], conn=conn
                )
        except BaseException:
            self._linker.discard()
            raise
        for item in unresolved:  # sealing a dead letter writes a key: after the transaction
            pending.append(
                await self._dead_letter(
                    item.record,
                    _Rejected(
                        DeadLetterReason.identity_unresolved,
                        "the person has no identifier, no agency subject reference "
                        "and not enough (names and birth date) to match on",
                    ),
                    now,
                    event_id=item.envelope.id,
                )
            )
        ingested: list[tuple[str, str, str]] = []
        for link, envelope in zip(linked, sealed, strict=True):
            child_id = link.decision.child_id
            hub_event = SealedHubEvent(
                child_id=child_id, ingested_at=now, linked_by=link.linked_by, envelope=envelope
            )
            event_id = link.item.envelope.id
            pending.append(
                await self._publish(
                    self._topics.events,
                    hub_event.model_dump_json().encode(),
                    key=child_id.encode(),
                    headers={"content-type": "application/json", "event-id": event_id},
                )
            )
            ingested.append((event_id, link.item.digest, child_id))
        # Publish confirmations before the ingest ledger commits: a crash in between leaves
        # the ledger without the ids, so a redelivery republishes rather than drops.
        await asyncio.gather(*pending)
        if ingested:
            async with self._store.engine.begin() as conn:
                await self._store.record_ingested(conn, ingested, now)
        self._metrics.events_out.labels(PROCESSOR, "published").inc(len(ingested))
        log.debug("ingest.batch_done", records=len(records), published=len(ingested))

    def _link_keys(self, env: Envelope) -> list[LinkKey]:
        """The envelope's link keys, strongest first, each value replaced by its keyed digest."""
        keys = link_keys_for(
            ((i.system.value, i.value) for i in env.person.identifiers),
            agency_id=env.agency_id,
            subject=env.subject,
        )
        return [LinkKey(k.system, self._linker.digest(k.system, k.value)) for k in keys]

    def _validate(self, record: ConsumedRecord, now: datetime) -> _Accepted:
        try:
            raw: Any = json.loads(record.value)
        except (ValueError, RecursionError):
            raw = None
        try:
            envelope = parse_envelope(raw if isinstance(raw, dict) else record.value)
        except UnsupportedSchemaVersion as exc:
            raise _Rejected(DeadLetterReason.unsupported_schema_version, str(exc)) from exc
        except ContractValidationError as exc:
            reason = (
                DeadLetterReason.not_json
                if any(e.type == "json_invalid" for e in exc.errors)
                else DeadLetterReason.contract_invalid
            )
            raise _Rejected(reason, "the envelope does not meet the contract", exc.errors) from exc
        agency_id = envelope.agency_id
        if agency_id not in self._registry:
            raise _Rejected(
                DeadLetterReason.agency_unknown, f"agency {agency_id!r} is not registered"
            )
        registered = self._registry.get(agency_id).kind
        if registered != envelope.agency_kind or self._topics.ingest_kind(record.topic) not in (
            None,
            registered,
        ):
            raise _Rejected(
                DeadLetterReason.agency_kind_mismatch,
                f"agency {agency_id!r} is registered as {registered}, the message says "
                f"{envelope.agency_kind} on topic {record.topic}",
            )
        assert isinstance(raw, dict)  # parse_envelope accepted it, so it was a JSON object
        try:
            self._security.verify(raw, now=now)
        except SignatureRejected as exc:
            reason = _SIGNATURE_REASONS[exc.reason]
            self._signature_rejections.labels(agency_id, reason.value).inc()
            raise _Rejected(reason, exc.detail) from exc
        return _Accepted(
            record=record, envelope=envelope, digest=envelope_digest(envelope), raw=raw
        )

    async def _drop_duplicates(
        self, items: list[_Accepted], pending: list[asyncio.Future[Any]], now: datetime
    ) -> list[_Accepted]:
        """Keep one of each event id; a known id with different content is dead-lettered."""
        async with self._store.engine.connect() as conn:
            seen = await self._store.ingested_hashes(conn, (i.envelope.id for i in items))
        kept: list[_Accepted] = []
        for item in items:
            event_id = item.envelope.id
            previous = seen.get(event_id)
            if previous is None:
                seen[event_id] = item.digest
                kept.append(item)
            elif previous == item.digest:
                self._metrics.events_out.labels(PROCESSOR, "duplicate").inc()
                log.info("ingest.duplicate_skipped", event_id=event_id)
            else:
                pending.append(
                    await self._dead_letter(
                        item.record,
                        _Rejected(
                            DeadLetterReason.duplicate_id_conflict,
                            "an event with this id was already accepted with different content",
                        ),
                        now,
                        event_id=event_id,
                    )
                )
        return kept

    async def _dead_letter(
        self, record: ConsumedRecord, rejected: _Rejected, now: datetime, *, event_id: str | None
    ) -> asyncio.Future[Any]:
        letter = await sealed_dead_letter(
            record,
            sealer=self._dead_letters,
            dlq_id=uuid.uuid4().hex,
            reason=rejected.reason,
            detail=rejected.detail,
            errors=rejected.errors,
            processor=PROCESSOR,
            event_id=event_id or _event_id_of(record.value),
            failed_at=now,
        )
        self._metrics.dead_lettered.labels(PROCESSOR, rejected.reason.value).inc()
        log.warning(
            "ingest.dead_lettered",
            dlq_id=letter.dlq_id,
            reason=rejected.reason.value,
            event_id=letter.event_id,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            fields=[e.loc for e in rejected.errors],
        )
        return await self._publish(
            self._topics.dlq,
            letter.value(),
            key=letter.dlq_id.encode(),
            headers={"content-type": "application/json", **letter.headers()},
        )


def _event_id_of(raw: bytes) -> str | None:
    """The event id of an unparseable message, if it has a usable one."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if isinstance(value, dict) and isinstance(value.get("id"), str) and len(value["id"]) <= 128:
        return str(value["id"])
    return None
