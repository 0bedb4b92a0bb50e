"""Sealing of dead letters' originals: no plain personal data on `hub.dlq`.

A dead letter keeps the message the hub could not process so that it can be redriven. That
message is an agency's envelope in plain JSON, and its Kafka key names the child (``nhs:<n>``),
so both are sealed with AES-256-GCM under a *dead-letter key* before the letter is published::

    {"enc": "aesgcm-dlq-v1", "kid": "hub-dlq:2026-11", "kv": 1, "n": <nonce b64>,
     "ct": <ciphertext b64>}

The plaintext is ``{"key": <original Kafka key b64 or null>, "value": <original bytes b64>}``;
the associated data binds the dead letter's id, so a sealed original copied to another letter
does not open. There is one key per calendar month (UTC) of failure, kept like children's data
keys in ``child_data_keys`` under the pseudo-id ``hub-dlq:YYYY-MM``: wrapped by the KEK,
re-wrapped by ``hub keys kek-rotate``, rotatable, and destroyable. Destroying a month's key
(``DeadLetterSealer.shred_before``) erases every dead letter of that month, on the topic and in
any copy of it, without rewriting the log.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import and_, select

from hub.crypto.data_keys import ChildKeyStore, KeyDestroyed, UnknownDataKey
from hub.crypto.tables import child_data_keys
from hub.observability import get_logger

__all__ = [
    "DLQ_KEY_PREFIX",
    "SEALED_ORIGINAL_ALG",
    "DeadLetterErased",
    "DeadLetterSealer",
    "OpenedOriginal",
    "SealedOriginalInvalid",
    "is_sealed_original",
    "month_key_id",
]

log = get_logger(__name__)

SEALED_ORIGINAL_ALG = "aesgcm-dlq-v1"
DLQ_KEY_PREFIX = "hub-dlq:"
_KEYS = frozenset({"enc", "kid", "kv", "n", "ct"})
_AAD = "safeguarding-hub/dead-letter/v1"
_KID = re.compile(r"^hub-dlq:(\d{4})-(\d{2})$")


class SealedOriginalInvalid(Exception):
    """A sealed original does not open: tampered with, moved to another letter, or malformed."""

    def __init__(self, dlq_id: str, why: str) -> None:
        super().__init__(f"the sealed original of dead letter {dlq_id} does not open: {why}")
        self.dlq_id = dlq_id


class DeadLetterErased(Exception):
    """The dead letter's month key was destroyed: its original is erased and cannot be read."""

    def __init__(self, dlq_id: str, key_id: str) -> None:
        super().__init__(
            f"dead letter {dlq_id} was sealed under {key_id}, which has been destroyed; "
            "its original message is erased"
        )
        self.dlq_id = dlq_id
        self.key_id = key_id


@dataclass(frozen=True, slots=True)
class OpenedOriginal:
    """The original record of a dead letter: its Kafka key (if any) and value bytes."""

    key: bytes | None
    value: bytes


def month_key_id(at: datetime) -> str:
    """The dead-letter key id of the (UTC) month of ``at``: ``hub-dlq:YYYY-MM``."""
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return f"{DLQ_KEY_PREFIX}{at.astimezone(UTC):%Y-%m}"


def is_sealed_original(value: Any) -> bool:
    """True for a sealed-original object."""
    return (
        isinstance(value, Mapping)
        and value.keys() == _KEYS
        and value.get("enc") == SEALED_ORIGINAL_ALG
    )


def _aad(dlq_id: str, key_id: str) -> bytes:
    return f"{_AAD}\x1f{dlq_id}\x1f{key_id}".encode()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class DeadLetterSealer:
    """Seals and opens dead letters' originals with the hub's monthly dead-letter keys."""

    def __init__(self, keys: ChildKeyStore) -> None:
        self._keys = keys

    async def seal_original(
        self, value: bytes, *, dlq_id: str, failed_at: datetime, key: bytes | None = None
    ) -> dict[str, Any]:
        """The sealed form of a record's value (and Kafka key) for dead letter ``dlq_id``."""
        key_id = month_key_id(failed_at)
        data_key = (await self._keys.current_keys([key_id]))[key_id]
        plain = json.dumps(
            {"key": None if key is None else _b64(key), "value": _b64(value)},
            separators=(",", ":"),
        ).encode()
        nonce = os.urandom(12)
        ct = data_key.aead.encrypt(nonce, plain, _aad(dlq_id, key_id))
        return {
            "enc": SEALED_ORIGINAL_ALG,
            "kid": key_id,
            "kv": data_key.version,
            "n": _b64(nonce),
            "ct": _b64(ct),
        }

    async def open_original(self, sealed: Mapping[str, Any], *, dlq_id: str) -> OpenedOriginal:
        """The original key and bytes; DeadLetterErased or SealedOriginalInvalid if not."""
        if not is_sealed_original(sealed):
            raise SealedOriginalInvalid(dlq_id, "not a sealed original")
        key_id = str(sealed["kid"])
        if not _KID.match(key_id):
            raise SealedOriginalInvalid(dlq_id, "it names no dead-letter key")
        try:
            data_key = await self._keys.data_key(key_id, int(sealed["kv"]))
        except KeyDestroyed:
            raise DeadLetterErased(dlq_id, key_id) from None
        except (UnknownDataKey, ValueError, TypeError):
            raise SealedOriginalInvalid(dlq_id, f"no key {key_id} v{sealed['kv']}") from None
        try:
            nonce = base64.b64decode(sealed["n"], validate=True)
            ct = base64.b64decode(sealed["ct"], validate=True)
            plain = json.loads(data_key.aead.decrypt(nonce, ct, _aad(dlq_id, key_id)))
            key = None if plain["key"] is None else base64.b64decode(plain["key"], validate=True)
            return OpenedOriginal(key=key, value=base64.b64decode(plain["value"], validate=True))
        except (InvalidTag, ValueError, TypeError, KeyError):
            raise SealedOriginalInvalid(dlq_id, "integrity check failed") from None

    async def month_keys(self) -> list[str]:
        """The dead-letter key ids that still have a live key, oldest month first."""
        t = child_data_keys.c
        async with self._keys.engine.connect() as conn:
            rows = await conn.execute(
                select(t.child_id)
                .where(and_(t.child_id.like(f"{DLQ_KEY_PREFIX}%"), t.destroyed_at.is_(None)))
                .distinct()
            )
            return sorted(r.child_id for r in rows if _KID.match(r.child_id))

    async def shred_before(self, cutoff: date) -> list[str]:
        """Destroy the key of every month that ended before ``cutoff``; returns their ids.

        A month ``YYYY-MM`` goes once its last day is before ``cutoff``: every dead letter
        that failed in it becomes unreadable (and can no longer be redriven).
        """
        gone: list[str] = []
        for key_id in await self.month_keys():
            match = _KID.match(key_id)
            assert match is not None
            year, month = int(match[1]), int(match[2])
            first_after = date(year + month // 12, month % 12 + 1, 1)
            if first_after <= cutoff:
                await self._keys.destroy_child_key(key_id)
                gone.append(key_id)
        if gone:
            log.info("dlq.keys_shredded", key_ids=gone)
        return gone
