"""Dead letters as the processors write them: the original record sealed, no key in clear.

The original bytes and the record's Kafka key (often ``nhs:<number>``) are sealed under the
month's dead-letter key (``hub.crypto.dead_letters``), so `hub.dlq` holds reasons and ids in
clear and personal data only as ciphertext; `hub dlq redrive` opens them again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from contracts import FieldError
from hub.crypto.dead_letters import DeadLetterSealer
from hub.streams.records import ConsumedRecord
from hub.streams.wire import DeadLetter, DeadLetterReason, DeadLetterSource

__all__ = ["sealed_dead_letter"]


async def sealed_dead_letter(
    record: ConsumedRecord,
    *,
    sealer: DeadLetterSealer,
    dlq_id: str,
    reason: DeadLetterReason,
    detail: str,
    processor: str,
    failed_at: datetime,
    errors: Sequence[FieldError] = (),
    event_id: str | None = None,
) -> DeadLetter:
    """The dead letter of a consumed record, its original (value and key) sealed."""
    return DeadLetter(
        dlq_id=dlq_id,
        reason=reason,
        detail=detail,
        errors=tuple(errors),
        processor=processor,
        event_id=event_id,
        source=DeadLetterSource.of(record).model_copy(update={"key": None}),
        failed_at=failed_at,
        original_sealed=await sealer.seal_original(
            record.value, dlq_id=dlq_id, failed_at=failed_at, key=record.key
        ),
    )
