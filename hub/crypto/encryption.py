"""Envelope encryption of payload fields: seal sensitive values under the child's data key.

A sealed value replaces the plain one in place::

    {"enc": "aesgcm-v1", "kv": <key version>, "n": <nonce, base64>, "ct": <ciphertext, base64>}

The plaintext is the value's JSON; the AES-GCM associated data binds the child id, the event
id and the field's path, so a sealed value copied to another child, event or field does not
open. Readers find sealed values by their shape, so they need no knowledge of the policy that
was in force when the event was written.
"""

from __future__ import annotations

import binascii
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

import orjson
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


def _b64(raw: bytes) -> str:
    return binascii.b2a_base64(raw, newline=False).decode("ascii")


def _seal(key: DataKey, aad: bytes, value: Any) -> dict[str, Any]:
    plain = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    nonce = os.urandom(12)
    return {
        "enc": SEALED_ALG,
        "kv": key.version,
        "n": _b64(nonce),
        "ct": _b64(key.aead.encrypt(nonce, plain, aad)),
    }


def seal_value(key: DataKey, event_id: str, path: str, value: Any) -> dict[str, Any]:
    """Encrypt one JSON value under ``key``, bound to the child, event and path."""
    return _seal(key, _aad(key.child_id, event_id, path), value)


def open_value(key: DataKey, event_id: str, path: str, sealed: Mapping[str, Any]) -> Any:
    """The JSON value a sealed object holds; FieldDecryptionFailed if it does not open."""
    try:
        # Strict base64 (no stray characters or padding), as ``b64decode(validate=True)``.
        nonce = binascii.a2b_base64(sealed["n"], strict_mode=True)
        ct = binascii.a2b_base64(sealed["ct"], strict_mode=True)
        plain = key.aead.decrypt(nonce, ct, _aad(key.child_id, event_id, path))
        return orjson.loads(plain)
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


_Trie = dict[str, "_Trie"]


@lru_cache(maxsize=512)
def _path_trie(paths: tuple[str, ...]) -> _Trie | None:
    """The paths as a tree of names (a leaf is an empty dict); None when one path lies
    inside another, whose outcome depends on the order they are sealed in."""
    trie: _Trie = {}
    for path in paths:
        node = trie
        *parents, last = path.split(".")
        for name in parents:
            if node.get(name) == {}:
                return None
            node = node.setdefault(name, {})
        if node.get(last):
            return None
        node[last] = {}
    return trie


def _seal_tree(node: Any, trie: _Trie, prefix: str, seal: Callable[[str, Any], Any]) -> Any:
    """A copy of ``node`` with ``seal(path, value)`` applied at every leaf of ``trie``; each
    container on the way is copied once, however many paths pass through it."""
    if type(node) is list:
        sub = trie.get("*")
        if sub is None:
            return node
        out: list[Any] = []
        for i, item in enumerate(node):
            path = f"{prefix}.{i}" if prefix else str(i)
            if sub:
                out.append(_seal_tree(item, sub, path, seal))
            else:
                out.append(item if item is None or is_sealed(item) else seal(path, item))
        return out
    if type(node) is not dict:
        return node
    copy = dict(node)
    for name, sub in trie.items():
        if name not in copy:
            continue
        value = copy[name]
        path = f"{prefix}.{name}" if prefix else name
        if sub:
            copy[name] = _seal_tree(value, sub, path, seal)
        elif value is not None and not is_sealed(value):
            copy[name] = seal(path, value)
    return copy


def seal_paths(
    key: DataKey, event_id: str, doc: Mapping[str, Any], paths: Iterable[str]
) -> dict[str, Any]:
    """A copy of ``doc`` with the value at each path sealed (absent or null values skipped)."""
    paths = tuple(paths)
    aad_head = f"{_AAD}\x1f{key.child_id}\x1f{event_id}\x1f"

    def seal(path: str, value: Any) -> dict[str, Any]:
        return _seal(key, (aad_head + path).encode(), value)

    trie = _path_trie(paths)
    if trie is not None:
        return dict(_seal_tree(doc, trie, "", seal))
    out: Any = doc
    for path in paths:
        out = _rewrite(out, path.split("."), "", seal)
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


_Found = list[tuple[Any, Any, str, Mapping[str, Any]]]


def _copy_finding(node: Any, prefix: str, found: _Found) -> Any:
    """A copy of ``node``'s containers; each sealed value inside is recorded as (container
    copy, slot, path, sealed value) to be opened in place."""
    if type(node) is dict:
        out: Any = dict(node)
        slots: Iterable[tuple[Any, Any]] = out.items()
    else:
        out = list(node)
        slots = enumerate(out)
    for slot, value in slots:
        kind = type(value)
        if kind is not dict and kind is not list:
            continue
        path = f"{prefix}.{slot}" if prefix else str(slot)
        if kind is dict and value.keys() == _SEALED_KEYS and value["enc"] == SEALED_ALG:
            found.append((out, slot, path, value))
        else:
            out[slot] = _copy_finding(value, path, found)
    return out


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
        opened, _ = await self._open(child_id, payload, event_id=event_id)
        return opened

    async def _open(
        self, child_id: str, payload: Mapping[str, Any], *, event_id: str
    ) -> tuple[dict[str, Any], DataKey | None]:
        """The opened copy (one walk, each key version looked up once) and the key of the
        newest version that sealed it (None when nothing sealed was opened)."""
        found: _Found = []
        opened = _copy_finding(payload, "", found)
        keys: dict[int, DataKey] = {}
        for container, slot, path, sealed in found:
            version = int(sealed["kv"])
            key = keys.get(version)
            if key is None:
                key = keys[version] = await self._keys.data_key(child_id, version)
            container[slot] = open_value(key, event_id, path, sealed)
        return opened, keys[max(keys)] if keys else None

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

    async def open_envelope(self, child_id: str, sealed: Mapping[str, Any]) -> dict[str, Any]:
        """The plain envelope; KeyDestroyed if the child's key was destroyed."""
        opened, _ = await self._open(child_id, sealed, event_id=str(sealed["id"]))
        return opened

    async def open_envelope_keyed(
        self, child_id: str, sealed: Mapping[str, Any]
    ) -> tuple[dict[str, Any], DataKey]:
        """The plain envelope and the key to seal more of it with (the newest version that
        sealed it; the child's current key when nothing was sealed), from one walk of the
        document. Raises KeyDestroyed."""
        opened, key = await self._open(child_id, sealed, event_id=str(sealed["id"]))
        if key is None:
            key = (await self._keys.current_keys([child_id]))[child_id]
        return opened, key
