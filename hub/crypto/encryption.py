"""Envelope encryption of payload fields: seal sensitive values under the child's data key.

A sealed value replaces the plain one in place::

    {"enc": "aesgcm-v1", "kv": <key version>, "n": <nonce, base64>, "ct": <ciphertext, base64>}

The plaintext is the value's JSON; the AES-GCM associated data binds the child id, the event
id and the field's path, so a sealed value copied to another child, event or field does not
open. Readers find sealed values by their shape, so they need no knowledge of the policy that
was in force when the event was written.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.crypto.data_keys import DataKey
from hub.crypto.policy import sensitive_paths

__all__ = [
    "SEALED_ALG",
    "DataKeySource",
    "FieldCipher",
    "FieldDecryptionFailed",
    "is_sealed",
    "open_value",
    "redact_sealed",
    "seal_paths",
    "seal_value",
    "sealed_paths",
]

SEALED_ALG = "aesgcm-v1"
_SEALED_KEYS = frozenset({"enc", "kv", "n", "ct"})
_AAD = "safeguarding-hub/field/v1"


class FieldDecryptionFailed(Exception):
    """A sealed value does not open: tampered, moved, or sealed under another key."""

    def __init__(self, child_id: str, event_id: str, path: str) -> None:
        super().__init__(
            f"sealed field {path} of event {event_id} (child {child_id}) does not open"
        )
        self.child_id, self.event_id, self.path = child_id, event_id, path


class DataKeySource(Protocol):
    """Where data keys come from (``ChildKeyStore``, or a fake in tests)."""

    async def current_keys(
        self, child_ids: Iterable[str], *, conn: AsyncConnection | None = None
    ) -> dict[str, DataKey]: ...

    async def data_key(self, child_id: str, version: int) -> DataKey: ...


def is_sealed(value: Any) -> bool:
    """True for a sealed-value object (JSON documents are plain dicts and lists)."""
    return type(value) is dict and value.keys() == _SEALED_KEYS and value["enc"] == SEALED_ALG


def _aad(child_id: str, event_id: str, path: str) -> bytes:
    return f"{_AAD}\x1f{child_id}\x1f{event_id}\x1f{path}".encode()


def seal_value(key: DataKey, event_id: str, path: str, value: Any) -> dict[str, Any]:
    """Encrypt one JSON value under ``key``, bound to the child, event and path."""
    plain = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    nonce = os.urandom(12)
    ct = key.aead.encrypt(nonce, plain, _aad(key.child_id, event_id, path))
    return {
        "enc": SEALED_ALG,
        "kv": key.version,
        "n": base64.b64encode(nonce).decode("ascii"),
        "ct": base64.b64encode(ct).decode("ascii"),
    }


def open_value(key: DataKey, event_id: str, path: str, sealed: Mapping[str, Any]) -> Any:
    """The JSON value a sealed object holds; FieldDecryptionFailed if it does not open."""
    try:
        nonce = base64.b64decode(sealed["n"], validate=True)
        ct = base64.b64decode(sealed["ct"], validate=True)
        plain = key.aead.decrypt(nonce, ct, _aad(key.child_id, event_id, path))
        return json.loads(plain)
    except (InvalidTag, ValueError, TypeError):
        raise FieldDecryptionFailed(key.child_id, event_id, path) from None


def _rewrite(node: Any, parts: Sequence[str], done: str, fn: Callable[[str, Any], Any]) -> Any:
    """A copy of ``node`` with ``fn(path, value)`` applied at the dotted path ``parts``."""
    if not parts:
        return node if node is None or is_sealed(node) else fn(done, node)
    head, rest = parts[0], parts[1:]
    if head == "*" and type(node) is list:
        return [_rewrite(item, rest, f"{done}.{i}".lstrip("."), fn) for i, item in enumerate(node)]
    if type(node) is dict and head in node:
        return {**node, head: _rewrite(node[head], rest, f"{done}.{head}".lstrip("."), fn)}
    return node


def seal_paths(
    key: DataKey, event_id: str, doc: Mapping[str, Any], paths: Iterable[str]
) -> dict[str, Any]:
    """A copy of ``doc`` with the value at each path sealed (absent or null values skipped)."""
    out: Any = doc
    for path in paths:
        out = _rewrite(out, path.split("."), "", lambda p, v: seal_value(key, event_id, p, v))
    return dict(out)


def sealed_paths(doc: Any, prefix: str = "") -> list[tuple[str, Mapping[str, Any]]]:
    """Every sealed value in ``doc`` with its path, in document order."""
    if is_sealed(doc):
        return [(prefix, doc)]
    found: list[tuple[str, Mapping[str, Any]]] = []
    if type(doc) is dict:
        for k, v in doc.items():
            found += sealed_paths(v, f"{prefix}.{k}" if prefix else str(k))
    elif type(doc) is list:
        for i, v in enumerate(doc):
            found += sealed_paths(v, f"{prefix}.{i}" if prefix else str(i))
    return found


def _replace(doc: Any, values: Mapping[str, Any], prefix: str = "") -> Any:
    if prefix in values and is_sealed(doc):
        return values[prefix]
    if type(doc) is dict:
        return {
            k: _replace(v, values, f"{prefix}.{k}" if prefix else str(k)) for k, v in doc.items()
        }
    if type(doc) is list:
        return [
            _replace(v, values, f"{prefix}.{i}" if prefix else str(i)) for i, v in enumerate(doc)
        ]
    return doc


def redact_sealed(doc: Mapping[str, Any], marker: Any = None) -> tuple[dict[str, Any], list[str]]:
    """``doc`` with every sealed value replaced by ``marker``, and the paths replaced.

    For showing an erased record honestly: what was there, and that it is gone.
    """
    paths = [p for p, _ in sealed_paths(doc)]
    return dict(_replace(doc, dict.fromkeys(paths, marker))), paths


class FieldCipher:
    """Seals and opens envelope fields with children's data keys."""

    def __init__(self, keys: DataKeySource) -> None:
        self._keys = keys

    async def encrypt_fields(
        self,
        child_id: str,
        payload: Mapping[str, Any],
        fields: Iterable[str],
        *,
        event_id: str,
        conn: AsyncConnection | None = None,
    ) -> dict[str, Any]:
        """``payload`` with the given dotted paths sealed under the child's current key."""
        key = (await self._keys.current_keys([child_id], conn=conn))[child_id]
        return seal_paths(key, event_id, payload, fields)

    async def decrypt_fields(
        self, child_id: str, payload: Mapping[str, Any], *, event_id: str
    ) -> dict[str, Any]:
        """``payload`` with every sealed value opened; raises KeyDestroyed once erased."""
        found = sealed_paths(payload)
        if not found:
            return dict(payload)
        opened: dict[str, Any] = {}
        for path, sealed in found:
            key = await self._keys.data_key(child_id, int(sealed["kv"]))
            opened[path] = open_value(key, event_id, path, sealed)
        return dict(_replace(payload, opened))

    async def seal_envelope(
        self, child_id: str, envelope: Mapping[str, Any], *, conn: AsyncConnection | None = None
    ) -> dict[str, Any]:
        """An envelope (JSON dict) with the policy's sensitive fields sealed."""
        return await self.encrypt_fields(
            child_id, envelope, sensitive_paths(envelope), event_id=str(envelope["id"]), conn=conn
        )

    async def seal_envelopes(
        self,
        items: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        conn: AsyncConnection | None = None,
    ) -> list[dict[str, Any]]:
        """Seal a batch of (child id, envelope) with one key lookup for all the children."""
        keys = await self._keys.current_keys({c for c, _ in items}, conn=conn)
        return [
            seal_paths(keys[child_id], str(env["id"]), env, sensitive_paths(env))
            for child_id, env in items
        ]

    async def key_for(self, child_id: str, sealed: Mapping[str, Any]) -> DataKey:
        """The key a sealed document was sealed under (its newest version), to seal more with.

        A document with nothing sealed gets the child's current key. Raises KeyDestroyed.
        """
        versions = [int(s["kv"]) for _, s in sealed_paths(sealed)]
        if versions:
            return await self._keys.data_key(child_id, max(versions))
        return (await self._keys.current_keys([child_id]))[child_id]

    async def open_envelope(self, child_id: str, sealed: Mapping[str, Any]) -> dict[str, Any]:
        """The plain envelope; KeyDestroyed if the child's key was destroyed."""
        return await self.decrypt_fields(child_id, sealed, event_id=str(sealed["id"]))
