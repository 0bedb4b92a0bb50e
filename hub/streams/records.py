"""The small wire-neutral shapes processors work on: a consumed record and a way to publish."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["ConsumedRecord", "Publish"]


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    """One record taken from a topic, with its position."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes

    @classmethod
    def from_kafka(cls, record: Any) -> ConsumedRecord:
        """From an aiokafka ``ConsumerRecord`` (value/key as raw bytes)."""
        value = record.value if record.value is not None else b""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=bytes(value),
        )


class Publish(Protocol):
    """Send one record to a topic; the returned future resolves when the broker has it."""

    async def __call__(
        self, topic: str, value: bytes, *, key: bytes | None, headers: dict[str, str]
    ) -> asyncio.Future[Any]: ...
