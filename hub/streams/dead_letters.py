"""Dead letters you can act on: list them with reasons, redrive them through ingest once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError

from hub.bootstrap import Hub
from hub.crypto.dead_letters import DeadLetterErased, DeadLetterSealer, SealedOriginalInvalid
from hub.observability import get_logger
from hub.streams.log_reader import read_topic
from hub.streams.wire import DeadLetter

__all__ = ["DeadLetterView", "RedriveError", "list_dead_letters", "redrive"]

log = get_logger(__name__)


class RedriveError(Exception):
    """A redrive that cannot be done as asked (unknown id, not an ingest message, bad fix)."""


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    """A dead letter and whether it was already redriven."""

    letter: DeadLetter
    offset: int
    redriven: bool


async def list_dead_letters(hub: Hub) -> list[DeadLetterView]:
    """Every dead letter on `hub.dlq`, oldest first."""
    letters: list[tuple[DeadLetter, int]] = []
    async for batch in read_topic(hub.settings.bootstrap, hub.topics.dlq):
        for record in batch:
            try:
                letters.append((DeadLetter.model_validate_json(record.value), record.offset))
            except ValidationError:
                log.warning("dlq.unreadable_letter", offset=record.offset)
    done = await hub.store.redriven(letter.dlq_id for letter, _ in letters)
    return [
        DeadLetterView(letter=letter, offset=offset, redriven=letter.dlq_id in done)
        for letter, offset in letters
    ]


async def redrive(
    hub: Hub,
    *,
    ids: list[str] | None = None,
    fixed: bytes | None = None,
) -> list[str]:
    """Send dead letters back to the ingest topic they came from; returns the ids sent.

    Each dead letter is redriven at most once (recorded in the store); ingest de-duplicates by
    event id, so even a crash between sending and recording cannot double an event.
    `fixed` replaces the original message (only with exactly one id).
    """
    if fixed is not None and (ids is None or len(ids) != 1):
        raise RedriveError("a fixed message needs exactly one --id")
    views = await list_dead_letters(hub)
    by_id = {v.letter.dlq_id: v for v in views}
    if ids:
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise RedriveError(f"no dead letter with id {', '.join(unknown)}")
        chosen = [by_id[i] for i in ids]
    else:
        chosen = views
    sent: list[str] = []
    for view in chosen:
        letter = view.letter
        if view.redriven:
            log.info("dlq.already_redriven", dlq_id=letter.dlq_id)
            continue
        if hub.topics.ingest_kind(letter.source.topic) is None:
            if ids:
                raise RedriveError(
                    f"dead letter {letter.dlq_id} came from {letter.source.topic}, "
                    "not an ingest topic; fix the producer instead"
                )
            continue
        if letter.original_sealed is not None:
            try:
                opened = await DeadLetterSealer(hub.security.keys).open_original(
                    letter.original_sealed, dlq_id=letter.dlq_id
                )
            except (DeadLetterErased, SealedOriginalInvalid) as exc:
                if ids:
                    raise RedriveError(str(exc)) from exc
                log.warning("dlq.original_unavailable", dlq_id=letter.dlq_id)
                continue
            original, kafka_key = opened.value, opened.key
        else:  # written before dead letters were sealed
            original = letter.original
            kafka_key = letter.source.key.encode() if letter.source.key else None
        value = fixed if fixed is not None else original
        future = await hub.streams.publish(
            letter.source.topic,
            value,
            key=kafka_key,
            headers={"content-type": "application/json", "x-redriven-from": letter.dlq_id},
        )
        await future
        await hub.store.record_redrive(letter.dlq_id, letter.source.topic, datetime.now(UTC))
        log.info("dlq.redriven", dlq_id=letter.dlq_id, topic=letter.source.topic)
        sent.append(letter.dlq_id)
    return sent
