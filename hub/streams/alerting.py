"""The alert consumer: feeds `hub.events` to the alert engine, and escalates overdue alerts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pydantic import ValidationError

from contracts import ContractValidationError, parse_envelope
from hub.alerts.engine import EngineOutcome
from hub.alerts.facts import facts_from_envelope
from hub.alerts.processing import AlertProcessor, IdentityChange, PositionedFacts
from hub.crypto.data_keys import KeyDestroyed, UnknownDataKey
from hub.crypto.encryption import FieldCipher, FieldDecryptionFailed
from hub.observability import Metrics, get_logger
from hub.periodic import run_every
from hub.streams.records import ConsumedRecord
from hub.streams.wire import IdentityHubEvent, SealedHubEvent

__all__ = ["AlertConsumer", "run_escalations"]

log = get_logger(__name__)

PROCESSOR = "alerts"


class AlertConsumer:
    """Opens each sealed `hub.events` record and hands its facts to the alert processor.

    A record that cannot be opened (erased child, invalid record) still advances the
    alert engine's position: the narrative projector dead-letters invalid records, and an
    erased child's events must not raise alerts.
    """

    def __init__(
        self,
        *,
        processor: AlertProcessor,
        cipher: FieldCipher,
        metrics: Metrics,
    ) -> None:
        self._processor = processor
        self._cipher = cipher
        self._metrics = metrics

    async def handle_batch(self, records: Sequence[ConsumedRecord]) -> int:
        """Evaluate one batch; returns how many alerts were raised or withdrawn."""
        items: list[PositionedFacts] = []
        for topic, count in Counter(r.topic for r in records).items():
            self._metrics.events_in.labels(PROCESSOR, topic).inc(count)
        for record in records:
            facts = None
            if IdentityHubEvent.is_one(record.value):
                # A merge joins two children's alert states (or an un-merge parts them): no
                # facts of its own, but the joined story may raise (or withdraw) alerts.
                items.append(
                    PositionedFacts(
                        None,
                        record.topic,
                        record.partition,
                        record.offset,
                        identity=_identity_change(record),
                    )
                )
                continue
            try:
                sealed = SealedHubEvent.model_validate_json(record.value)
                opened = await self._cipher.open_envelope(sealed.child_id, sealed.envelope)
                facts = facts_from_envelope(parse_envelope(opened), sealed.child_id)
            except (ValidationError, ContractValidationError, FieldDecryptionFailed):
                _skipped(record, "invalid")
            except (KeyDestroyed, UnknownDataKey):
                _skipped(record, "erased", warn=False)
            items.append(PositionedFacts(facts, record.topic, record.partition, record.offset))
        outcomes = await self._processor.handle(items, on_committed=self._committed)
        self._metrics.events_out.labels(PROCESSOR, "alert_changes")  # exported from batch one
        return len(outcomes)

    async def _committed(self, outcomes: list[EngineOutcome]) -> None:
        """Count the alert changes of a part of a batch as soon as it has committed (their
        webhooks were queued in its transaction: the processor's outbox)."""
        self._metrics.events_out.labels(PROCESSOR, "alert_changes").inc(len(outcomes))


def _identity_change(record: ConsumedRecord) -> IdentityChange | None:
    """The merge or un-merge an identity record decides (None: a kept-apart decision, or a
    record that does not parse, logged by position)."""
    try:
        event = IdentityHubEvent.model_validate_json(record.value)
        data = event.data
        if event.type == "identity.merged":
            return IdentityChange(
                "merged",
                str(data["surviving_child_id"]),
                str(data["merged_child_id"]),
                str(data["merge_id"]),
            )
        if event.type == "identity.unmerged":
            return IdentityChange(
                "unmerged",
                str(data["from_child_id"]),
                str(data["restored_child_id"]),
                str(data["merge_id"]),
            )
    except (ValidationError, KeyError):
        _skipped(record, "invalid_identity_record")
    return None


def _skipped(record: ConsumedRecord, cause: str, *, warn: bool = True) -> None:
    """Log a record the engine cannot use, by its position only."""
    (log.warning if warn else log.info)(
        "alerts.record_skipped",
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        cause=cause,
    )


async def run_escalations(processor: AlertProcessor, *, every_seconds: float = 30.0) -> None:
    """Take due escalation steps for ever (cancelled at shutdown); a failure is logged, retried."""
    await run_every(
        processor.escalate, every_seconds=every_seconds, failed="alerts.escalation_failed"
    )
