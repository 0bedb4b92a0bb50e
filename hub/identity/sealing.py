"""Person-index records sealed at rest: what matching needs, readable only with the hub's key.

Matching compares names, birth dates and postcodes, so the index cannot hold keyed digests of
them; instead each stored record's matching data (normalised name tokens, birth date, sex,
postcode, address key, identifier digests) is sealed with AES-GCM under the hub's identity
key (``hub-identity``, a data key wrapped by the KEK like every other, so it rotates and
re-wraps with them), bound to the record id. The index is opened into memory by ingest.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.crypto.data_keys import ChildKeyStore, KeyDestroyed

__all__ = ["IDENTITY_KEY_ID", "RecordSealer", "SealedRecordInvalid", "is_sealed_record"]

IDENTITY_KEY_ID = "hub-identity"
_ALG = "A256GCM/identity-record-1"
_PREFIX = '{"enc":"' + _ALG + '"'


class SealedRecordInvalid(Exception):
    """A sealed person record that does not open (wrong key, tampered, malformed)."""


def is_sealed_record(text: str) -> bool:
    """Whether a stored ``features`` value is a sealed record (no parsing)."""
    return text.startswith(_PREFIX)


def _aad(record_id: str) -> bytes:
    return f"{_ALG}\x1f{record_id}".encode()


class RecordSealer:
    """Seals and opens person records' matching data with the hub's identity key."""

    def __init__(self, keys: ChildKeyStore) -> None:
        self._keys = keys

    async def seal_all(
        self, conn: AsyncConnection, items: list[tuple[str, dict[str, Any]]]
    ) -> dict[str, str]:
        """Sealed text for each (record id, data), in the caller's transaction."""
        if not items:
            return {}
        key = (await self._keys.current_keys([IDENTITY_KEY_ID], conn=conn))[IDENTITY_KEY_ID]
        sealed: dict[str, str] = {}
        for record_id, data in items:
            nonce = os.urandom(12)
            # orjson: compact like the json module's form; the plain text is only ever
            # parsed back, and the envelope's keys keep their order (``_PREFIX``).
            plain = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
            ct = key.aead.encrypt(nonce, plain, _aad(record_id))
            sealed[record_id] = orjson.dumps(
                {
                    "enc": _ALG,
                    "kv": key.version,
                    "n": base64.b64encode(nonce).decode(),
                    "ct": base64.b64encode(ct).decode(),
                }
            ).decode()
        return sealed

    async def open(self, text: str, record_id: str) -> dict[str, Any]:
        """The matching data of a sealed record; SealedRecordInvalid if it does not open."""
        try:
            sealed = orjson.loads(text)
            key = await self._keys.data_key(IDENTITY_KEY_ID, int(sealed["kv"]))
            nonce = base64.b64decode(sealed["n"], validate=True)
            ct = base64.b64decode(sealed["ct"], validate=True)
            data = orjson.loads(key.aead.decrypt(nonce, ct, _aad(record_id)))
        except (InvalidTag, KeyDestroyed, ValueError, TypeError, KeyError, LookupError) as exc:
            raise SealedRecordInvalid(record_id) from exc
        if not isinstance(data, dict):
            raise SealedRecordInvalid(record_id)
        return data
