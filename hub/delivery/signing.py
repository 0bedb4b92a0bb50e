"""Webhook signatures: HMAC-SHA256 over the timestamp and the exact body bytes.

The signed material is ``<timestamp>.<body>`` (the Unix time in seconds as ASCII, a full stop,
then the body bytes exactly as sent), so a captured request cannot be replayed later with a
fresh timestamp. A receiver recomputes it and rejects stale timestamps (docs/delivery.md).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "SignatureInvalid",
    "sign",
    "signature_headers",
    "verify",
]

SIGNATURE_HEADER = "X-Hub-Signature-256"
TIMESTAMP_HEADER = "X-Hub-Timestamp"
_PREFIX = "sha256="


class SignatureInvalid(ValueError):
    """A webhook request whose signature or timestamp does not verify."""


def sign(body: bytes, secret: bytes, timestamp: int) -> str:
    """The header value ``sha256=<hex>`` of HMAC-SHA256(secret, b"<timestamp>." + body)."""
    material = str(int(timestamp)).encode("ascii") + b"." + body
    return _PREFIX + hmac.new(secret, material, hashlib.sha256).hexdigest()


def signature_headers(body: bytes, secret: bytes, timestamp: int) -> dict[str, str]:
    """The two headers a signed webhook request carries."""
    return {TIMESTAMP_HEADER: str(int(timestamp)), SIGNATURE_HEADER: sign(body, secret, timestamp)}


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secret: bytes,
    *,
    now: int,
    tolerance_seconds: int = 300,
) -> None:
    """Check a received request (headers matched case-insensitively); ``SignatureInvalid`` if
    the signature is wrong or the timestamp is further than ``tolerance_seconds`` from ``now``."""
    lower = {k.lower(): v for k, v in headers.items()}
    stamp = lower.get(TIMESTAMP_HEADER.lower(), "")
    given = lower.get(SIGNATURE_HEADER.lower(), "")
    if not stamp.isdigit():
        raise SignatureInvalid("missing or malformed timestamp header")
    if abs(now - int(stamp)) > tolerance_seconds:
        raise SignatureInvalid("timestamp outside the tolerance window")
    if not hmac.compare_digest(given, sign(body, secret, int(stamp))):
        raise SignatureInvalid("signature does not match")
