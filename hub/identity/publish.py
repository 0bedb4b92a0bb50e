"""Puts identity decisions on `hub.events`, where the narrative projector follows them.

A merge is keyed by the surviving child and its un-merge by the same child, so both land in
one partition and are read in the order they were decided.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from hub.identity.events import ChildrenMerged, MatchKeptApart, MergeUndone
from hub.observability import get_logger
from hub.streams.wire import IdentityHubEvent

__all__ = ["LogIdentitySink", "identity_record"]

log = get_logger(__name__)

Publish = Callable[..., Awaitable[Any]]


def identity_record(
    event: ChildrenMerged | MergeUndone | MatchKeptApart, *, now: datetime
) -> IdentityHubEvent:
    """The `hub.events` value of an identity decision, keyed by the child it concerns."""
    if isinstance(event, ChildrenMerged):
        key = event.surviving_child_id
    elif isinstance(event, MergeUndone):
        key = event.from_child_id
    else:
        key = event.other_child_id
    return IdentityHubEvent(
        type=event.type,  # type: ignore[arg-type]
        child_id=key,
        published_at=now,
        data=event.as_data(),
    )


class LogIdentitySink:
    """Publishes identity decisions to `hub.events` and waits for the broker's confirmation."""

    def __init__(self, publish: Publish, topic: str) -> None:
        self._publish = publish
        self._topic = topic

    async def publish(self, event: ChildrenMerged | MergeUndone | MatchKeptApart) -> None:
        """Put one decision on the log; raises if the broker does not confirm it."""
        record = identity_record(event, now=datetime.now(UTC))
        confirmed = await self._publish(
            self._topic,
            record.model_dump_json().encode(),
            key=record.child_id.encode(),
            headers={"content-type": "application/json", "identity-event": record.type},
        )
        await confirmed
        log.info("identity.event_published", type=record.type, child_id=record.child_id)
