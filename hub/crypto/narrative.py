"""Narrative entries at rest: their text sealed for the store, opened (or shown erased) on read.

The projector seals an entry's ``summary`` and ``payload`` under the data key that sealed its
event, so destroying the child's keys erases the projection as it erases the log. An event
whose key is already gone when it is projected (a replay after erasure) becomes an *erased*
entry built from the envelope's clear attributes only: the narrative shows the gap honestly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contracts import EventType, family_of
from hub.crypto.data_keys import ChildKeyStore, DataKey, KeyDestroyed, UnknownDataKey
from hub.crypto.encryption import FieldDecryptionFailed, is_sealed, open_value, seal_value
from hub.domain.chronology import ChronologyItem
from hub.domain.narrative import EntryStatus, NarrativeEntry
from hub.observability import get_logger
from hub.store.repository import SqlStore, StoredEntry

__all__ = [
    "CONTEXT_FAMILIES",
    "PAYLOAD_PATH",
    "SUMMARY_PATH",
    "UNREADABLE_LINE",
    "NarrativeOpener",
    "OpenedText",
    "destroyed_versions",
    "erased_entry",
    "erased_line",
    "open_items",
    "read_chronology",
    "seal_entry",
    "with_texts",
]

log = get_logger(__name__)

SUMMARY_PATH = "narrative.summary"
PAYLOAD_PATH = "narrative.payload"
UNREADABLE_LINE = "Record cannot be read: it failed its integrity check."


def seal_entry(key: DataKey, entry: NarrativeEntry) -> NarrativeEntry:
    """The entry with ``summary`` and ``payload`` replaced by the JSON of their sealed values."""
    summary = seal_value(key, entry.event_id, SUMMARY_PATH, entry.summary)
    payload = seal_value(key, entry.event_id, PAYLOAD_PATH, json.loads(entry.payload))
    # Built directly, not by ``dataclasses.replace`` (its per-field checks cost more than
    # the rest of the copy, for every event projected).
    return NarrativeEntry(
        event_id=entry.event_id,
        child_id=entry.child_id,
        event_type=entry.event_type,
        family=entry.family,
        occurred_at=entry.occurred_at,
        recorded_at=entry.recorded_at,
        agency_id=entry.agency_id,
        agency_kind=entry.agency_kind,
        summary=json.dumps(summary),
        sensitivity=entry.sensitivity,
        supersedes=entry.supersedes,
        status=entry.status,
        payload=json.dumps(payload, sort_keys=True),
    )


def _when(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def erased_entry(sealed: Mapping[str, Any], child_id: str) -> NarrativeEntry:
    """The entry of an event whose key was destroyed: clear attributes, no text, no payload.

    Only attributes the policy leaves in clear are read (type, times, agency, sensitivity,
    supersedes, a correction's ``corrected_type``), so supersession still applies.
    """
    event_type = EventType(str(sealed["type"]))
    status = EntryStatus.ACTIVE
    shown = event_type
    data = sealed.get("data")
    if event_type is EventType.event_corrected:
        corrected = data.get("corrected_type") if isinstance(data, Mapping) else None
        shown = EventType(str(corrected)) if corrected in EventType.__members__.values() else shown
    elif event_type is EventType.event_retracted:
        status = EntryStatus.NOTICE
    return NarrativeEntry(
        event_id=str(sealed["id"]),
        child_id=child_id,
        event_type=shown.value,
        family=family_of(shown),
        occurred_at=_when(sealed["time"]),
        recorded_at=_when(sealed["recorded_at"]),
        agency_id=str(sealed["agency_id"]),
        agency_kind=str(sealed["agency_kind"]),
        summary="",
        sensitivity=tuple(str(t) for t in sealed.get("sensitivity") or ()),
        supersedes=sealed.get("supersedes"),
        status=status,
        payload="{}",
    )


def erased_line(erased_at: datetime) -> str:
    """What a reader sees instead of an erased entry's text."""
    return f"Record erased on {erased_at.astimezone(UTC).date().isoformat()}."


@dataclass(frozen=True, slots=True)
class OpenedText:
    """An entry's readable text, or why there is none (erased, or failing its integrity check)."""

    summary: str
    payload: dict[str, Any]
    erased_at: datetime | None = None
    unreadable: bool = False


def _sealed_json(text: str) -> dict[str, Any] | None:
    """The sealed value a stored text holds, or None for plain text (a pre-0003 row)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if is_sealed(value) else None


async def destroyed_versions(keys: ChildKeyStore, child_id: str) -> dict[int, datetime]:
    """The child's destroyed key versions and when each was destroyed, read from the store."""
    return {
        r.key_version: r.destroyed_at
        for r in await keys.key_records(child_id)
        if r.destroyed_at is not None
    }


class NarrativeOpener:
    """Opens stored entries for a reader; erased ones say when, with no content."""

    def __init__(self, keys: ChildKeyStore, *, summaries: bool = True) -> None:
        self._keys = keys
        self._summaries = summaries

    async def open_all(
        self,
        child_id: str,
        entries: Sequence[StoredEntry],
        destroyed: Mapping[int, datetime] | None = None,
    ) -> list[OpenedText]:
        """The text of each entry, in order.

        The child's key records are read from the store on every call (not from a cache), so
        an erasure done by another process shows at once; a caller that has just read them
        (in the same read) passes the ``destroyed`` key versions instead.
        """
        if destroyed is None:
            destroyed = await destroyed_versions(self._keys, child_id)
        return [await self._open(child_id, e, destroyed) for e in entries]

    async def _open(
        self, child_id: str, entry: StoredEntry, destroyed: Mapping[int, datetime]
    ) -> OpenedText:
        if entry.erased_at is not None:
            return OpenedText(erased_line(entry.erased_at), {}, erased_at=entry.erased_at)
        summary = _sealed_json(entry.summary) if self._summaries else None
        payload = entry.payload if is_sealed(entry.payload) else None
        if summary is None and payload is None:
            return OpenedText(entry.summary if self._summaries else "", dict(entry.payload))
        try:
            opened: list[Any] = []
            for path, sealed in ((SUMMARY_PATH, summary), (PAYLOAD_PATH, payload)):
                if sealed is None:
                    plain = entry.summary if self._summaries else ""
                    opened.append(plain if path == SUMMARY_PATH else entry.payload)
                    continue
                version = int(sealed["kv"])
                if version in destroyed:
                    raise KeyDestroyed(child_id, version, destroyed[version])
                key = await self._keys.data_key(child_id, version)
                opened.append(open_value(key, entry.event_id, path, sealed))
        except KeyDestroyed as gone:
            return OpenedText(erased_line(gone.destroyed_at), {}, erased_at=gone.destroyed_at)
        except (FieldDecryptionFailed, UnknownDataKey, ValueError, KeyError):
            log.error("narrative.entry_unreadable", child_id=child_id, event_id=entry.event_id)
            return OpenedText(UNREADABLE_LINE, {}, unreadable=True)
        return OpenedText(str(opened[0]), dict(opened[1]))


CONTEXT_FAMILIES = frozenset({"involvement", "contact"})
"""Entries whose content the child's situation is read from (spans, leads, milestones)."""


async def open_items(
    keys: ChildKeyStore,
    entries: Sequence[StoredEntry],
    *,
    only: Callable[[StoredEntry], bool] | None = None,
    summaries: bool = True,
    destroyed: Mapping[str, Mapping[int, datetime]] | None = None,
) -> list[ChronologyItem]:
    """Entries as chronology items, in order; with ``only``, the others are left closed
    (their clear columns kept, no summary and no data), so a read opens what it shows.

    Each entry is opened under the key of the child it was linked to; an erased entry keeps
    its place with its erasure line and no data. ``summaries=False`` leaves the stored
    summary sealed (a reader that describes entries from their data needs only the payload).
    ``destroyed`` (each child's destroyed key versions, read by the caller in this read)
    spares reading the children's key records again.
    """
    opener = NarrativeOpener(keys, summaries=summaries)
    by_child: dict[str, list[int]] = {}
    for position, entry in enumerate(entries):
        if only is None or only(entry):
            by_child.setdefault(entry.child_id, []).append(position)
    texts: dict[int, OpenedText] = {}
    for owner, positions in by_child.items():
        known = None if destroyed is None else destroyed.get(owner)
        opened = await opener.open_all(owner, [entries[p] for p in positions], known)
        texts.update(zip(positions, opened, strict=True))
    items: list[ChronologyItem] = []
    for i, e in enumerate(entries):
        text = texts.get(i)
        items.append(
            ChronologyItem(
                event_id=e.event_id,
                event_type=e.event_type,
                family=e.family,
                occurred_at=e.occurred_at,
                recorded_at=e.recorded_at,
                agency_id=e.agency_id,
                agency_kind=e.agency_kind,
                summary=text.summary if text else "",
                sensitivity=tuple(e.sensitivity),
                corrects=e.supersedes,
                data=text.payload if text else {},
                erased_at=text.erased_at if text else e.erased_at,
            )
        )
    return items


async def with_texts(
    store: SqlStore, entries: Sequence[StoredEntry], wanted: Callable[[StoredEntry], bool]
) -> list[StoredEntry]:
    """The entries (read without texts), those ``wanted`` with their stored texts read in."""
    texts = await store.entry_texts(e.event_id for e in entries if wanted(e))
    return [e.with_text(*texts[e.event_id]) if e.event_id in texts else e for e in entries]


async def read_chronology(
    store: SqlStore, keys: ChildKeyStore, child_ids: str | Sequence[str]
) -> list[ChronologyItem]:
    """A child's (or identity group's) entries, every one opened, in order."""
    return await open_items(keys, await store.narrative(child_ids))
