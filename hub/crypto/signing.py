"""Signed submissions: canonical JSON, Ed25519 signatures on envelopes and on batches.

An adapter signs the canonical JSON (RFC 8785: sorted keys, no whitespace, UTF-8) of the
envelope it sends, with ``signature`` and ``key_id`` left out; the hub verifies it against the
sending agency's registered keys. A *batch* (one submission) can instead be signed once over
the SHA-256 digest of each record, so per-record provenance stays provable for one signature.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.crypto.agency_keys import AgencyKeyRing, AgencyPublicKey, KeyState

__all__ = [
    "BATCH_TYPE",
    "SIGNATURE_FIELDS",
    "BatchManifest",
    "RejectionReason",
    "SignatureRejected",
    "VerifiedBatch",
    "VerifiedSignature",
    "canonical_json",
    "record_digest",
    "sign_batch",
    "sign_envelope",
    "verify_batch",
    "verify_envelope",
]

SIGNATURE_FIELDS = frozenset({"signature", "key_id"})
"""Top-level fields left out of the signed bytes."""

BATCH_TYPE = "hub.submission-batch.v1"
"""The ``type`` inside a signed batch manifest, so it can never pass for an envelope."""

_MAX_SAFE_INT = 2**53 - 1
_LEAVES = frozenset({str, bool, type(None)})
_WIDE = 32
"""Containers longer than this are checked by ``_plain_wide``."""


class RejectionReason(StrEnum):
    """Machine-readable reasons a signature is not accepted."""

    unsigned = "unsigned"
    unknown_key = "unknown_key"
    key_of_another_agency = "key_of_another_agency"
    key_not_yet_valid = "key_not_yet_valid"
    key_expired = "key_expired"
    signature_invalid = "signature_invalid"


class SignatureRejected(Exception):
    """A submission's signature is missing, made with the wrong key, or does not verify."""

    def __init__(
        self,
        reason: RejectionReason,
        detail: str,
        *,
        agency_id: str | None = None,
        key_id: str | None = None,
    ) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.agency_id = agency_id
        self.key_id = key_id


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """Proof that an envelope was signed by a key registered to its agency."""

    agency_id: str
    key_id: str
    key_state: KeyState
    digest: str  # SHA-256 hex of the signed canonical bytes


def _plain(values: Iterable[Any]) -> bool:
    """True when these values serialise to RFC 8785 bytes as they are (``json.dumps``' or
    orjson's compact, key-sorted, UTF-8 form).

    That holds without floats (whose ES6 form differs from Python's), with integers inside
    the IEEE-754 safe range, and with ASCII object keys (sorted alike by code point and by
    UTF-16 unit). Iterative over the values of each container, so leaves cost no call; wide
    containers (a long list of ids) are checked by type sets, in C.
    """
    for value in values:
        kind = type(value)
        if kind is str or value is None or kind is bool:
            continue
        if kind is dict:
            try:
                if not "".join(value).isascii():
                    return False
            except TypeError:  # a key that is not text
                return False
            inner = value.values()
            if not (_plain_wide(list(inner)) if len(inner) > _WIDE else _plain(inner)):
                return False
        elif kind is list or kind is tuple:
            if not (_plain_wide(value) if len(value) > _WIDE else _plain(value)):
                return False
        elif kind is not int or not -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            return False
    return True


def _plain_wide(values: Sequence[Any]) -> bool:
    """``_plain`` for a long sequence: its kinds of value first, then only what they need."""
    kinds = set(map(type, values))
    if int in kinds:
        ints = values if len(kinds) == 1 else [v for v in values if type(v) is int]
        if min(ints) < -_MAX_SAFE_INT or max(ints) > _MAX_SAFE_INT:
            return False
        kinds.discard(int)
    if kinds <= _LEAVES:
        return True
    return _plain([v for v in values if type(v) not in _LEAVES and type(v) is not int])


def canonical_json(doc: Mapping[str, Any], *, exclude: frozenset[str] = SIGNATURE_FIELDS) -> bytes:
    """RFC 8785 canonical bytes of a JSON object, without the top-level ``exclude`` fields.

    Documents without floats, big integers or non-ASCII keys (every envelope the adapters
    send, every audit record) take a fast path through orjson, whose bytes are then
    identical; others go through the ``rfc8785`` library. Raises ValueError for what JSON
    cannot carry.
    """
    body = dict(doc)
    for name in exclude:
        body.pop(name, None)
    if _plain((body,)):
        with contextlib.suppress(orjson.JSONEncodeError):
            return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        # orjson refuses some documents rfc8785 takes (keys of a str subclass, nesting over
        # 254 deep): those, and what neither takes (a lone surrogate), are left to rfc8785.
    try:
        return rfc8785.dumps(body)
    except rfc8785.CanonicalizationError as exc:
        raise ValueError(f"the document cannot be canonicalised: {exc}") from exc


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_envelope(
    env: Mapping[str, Any], private_key: Ed25519PrivateKey, key_id: str
) -> dict[str, Any]:
    """A copy of the envelope with ``key_id`` and an Ed25519 ``signature`` (base64url)."""
    signature = private_key.sign(canonical_json(env))
    return {**env, "key_id": key_id, "signature": _b64(signature)}


def _usable_key(keys: AgencyKeyRing, key_id: str, agency_id: Any, now: datetime) -> AgencyPublicKey:
    """The registered key, if it may speak for ``agency_id`` at ``now``; else rejects."""
    key = keys.get(key_id)
    if key is None:
        raise SignatureRejected(
            RejectionReason.unknown_key, "the key id is not registered", key_id=key_id
        )
    claimed = agency_id if isinstance(agency_id, str) else None
    if key.agency_id != claimed:
        raise SignatureRejected(
            RejectionReason.key_of_another_agency,
            f"key {key_id!r} belongs to agency {key.agency_id!r}, not the sender",
            agency_id=claimed,
            key_id=key_id,
        )
    state = key.state_at(now)
    if state is KeyState.not_yet_valid:
        raise SignatureRejected(
            RejectionReason.key_not_yet_valid,
            f"key {key_id!r} is valid from {key.valid_from.isoformat()}",
            agency_id=claimed,
            key_id=key_id,
        )
    if state is KeyState.expired:
        raise SignatureRejected(
            RejectionReason.key_expired,
            f"key {key_id!r} was retired and its grace period ended at "
            f"{key.expires_at.isoformat() if key.expires_at else '?'}",
            agency_id=claimed,
            key_id=key_id,
        )
    return key


def _check_signature(key: AgencyPublicKey, signature: Any, message: bytes) -> None:
    try:
        if not isinstance(signature, str):
            raise ValueError("not text")
        raw = _unb64(signature)
        key.public_key.verify(raw, message)
    except (ValueError, binascii.Error, InvalidSignature):
        raise SignatureRejected(
            RejectionReason.signature_invalid,
            "the signature does not match the content and key",
            agency_id=key.agency_id,
            key_id=key.key_id,
        ) from None


def verify_envelope(
    env: Mapping[str, Any], keys: AgencyKeyRing, *, now: datetime
) -> VerifiedSignature:
    """Check an envelope's signature (as received, before any normalisation) at ``now``.

    Raises SignatureRejected with a machine-readable reason; never logs or echoes content.
    """
    signature, key_id = env.get("signature"), env.get("key_id")
    agency_id = env.get("agency_id")
    if not signature or not isinstance(key_id, str) or not key_id:
        raise SignatureRejected(
            RejectionReason.unsigned,
            "the envelope has no signature and key_id",
            agency_id=agency_id if isinstance(agency_id, str) else None,
        )
    key = _usable_key(keys, key_id, agency_id, now)
    try:
        message = canonical_json(env)
    except ValueError as exc:
        raise SignatureRejected(
            RejectionReason.signature_invalid, str(exc), agency_id=key.agency_id, key_id=key_id
        ) from None
    _check_signature(key, signature, message)
    return VerifiedSignature(
        agency_id=key.agency_id,
        key_id=key_id,
        key_state=key.state_at(now),
        digest=hashlib.sha256(message).hexdigest(),
    )


def record_digest(record: bytes | str | Mapping[str, Any]) -> str:
    """SHA-256 hex of a record's canonical JSON (``signature``/``key_id`` left out).

    Canonical, so a record keeps its digest however a transport re-serialises it.
    """
    doc = json.loads(record) if isinstance(record, bytes | str) else record
    if not isinstance(doc, Mapping):
        raise ValueError("a batch record must be a JSON object")
    return hashlib.sha256(canonical_json(doc)).hexdigest()


@dataclass(frozen=True, slots=True)
class BatchManifest:
    """The signed list of record digests of one submission."""

    agency_id: str
    key_id: str
    digests: tuple[str, ...]
    signature: str

    def signed_part(self) -> dict[str, Any]:
        """The object whose canonical JSON is signed."""
        return {"type": BATCH_TYPE, "agency_id": self.agency_id, "digests": list(self.digests)}

    def to_dict(self) -> dict[str, Any]:
        """The manifest as JSON-ready data (sent beside the records)."""
        return {**self.signed_part(), "key_id": self.key_id, "signature": self.signature}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> BatchManifest:
        """Read a manifest; a malformed one is rejected as ``signature_invalid``/``unsigned``."""
        if not raw.get("signature") or not isinstance(raw.get("key_id"), str):
            raise SignatureRejected(RejectionReason.unsigned, "the batch has no signature")
        digests = raw.get("digests")
        if (
            raw.get("type") != BATCH_TYPE
            or not isinstance(raw.get("agency_id"), str)
            or not isinstance(digests, list)
            or not all(isinstance(d, str) for d in digests)
        ):
            raise SignatureRejected(
                RejectionReason.signature_invalid, "the batch manifest is malformed"
            )
        return cls(raw["agency_id"], raw["key_id"], tuple(digests), str(raw["signature"]))


@dataclass(frozen=True, slots=True)
class VerifiedBatch:
    """Proof that every record of a batch was signed, once, by its agency."""

    agency_id: str
    key_id: str
    key_state: KeyState
    digests: tuple[str, ...]


def sign_batch(
    records: Sequence[bytes | Mapping[str, Any]],
    private_key: Ed25519PrivateKey,
    *,
    key_id: str,
    agency_id: str,
) -> BatchManifest:
    """Sign one manifest over the digest of each record (in order)."""
    digests = tuple(record_digest(r) for r in records)
    unsigned = BatchManifest(agency_id, key_id, digests, "")
    signature = _b64(private_key.sign(canonical_json(unsigned.signed_part())))
    return BatchManifest(agency_id, key_id, digests, signature)


def verify_batch(
    manifest: BatchManifest | Mapping[str, Any],
    records: Sequence[bytes | Mapping[str, Any]],
    keys: AgencyKeyRing,
    *,
    now: datetime,
) -> VerifiedBatch:
    """Verify a batch manifest once, then that each record matches its digest and agency."""
    if not isinstance(manifest, BatchManifest):
        manifest = BatchManifest.from_dict(manifest)
    key = _usable_key(keys, manifest.key_id, manifest.agency_id, now)
    _check_signature(key, manifest.signature, canonical_json(manifest.signed_part()))
    if len(records) != len(manifest.digests):
        raise SignatureRejected(
            RejectionReason.signature_invalid,
            f"the batch signs {len(manifest.digests)} records but {len(records)} were sent",
            agency_id=key.agency_id,
            key_id=key.key_id,
        )
    for index, (record, expected) in enumerate(zip(records, manifest.digests, strict=True)):
        doc = json.loads(record) if isinstance(record, bytes | str) else record
        if not isinstance(doc, Mapping) or record_digest(doc) != expected:
            raise SignatureRejected(
                RejectionReason.signature_invalid,
                f"record {index} does not match its signed digest",
                agency_id=key.agency_id,
                key_id=key.key_id,
            )
        if doc.get("agency_id") != key.agency_id:
            raise SignatureRejected(
                RejectionReason.key_of_another_agency,
                f"record {index} speaks for another agency than the batch's key",
                agency_id=key.agency_id,
                key_id=key.key_id,
            )
    return VerifiedBatch(key.agency_id, key.key_id, key.state_at(now), manifest.digests)
