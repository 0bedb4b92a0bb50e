"""Keyed hashes of identifiers: match on an NHS number or UPN without storing it in clear.

HMAC-SHA256 under a secret from the key provider (``hub_secret("identifier-digest/v1")``),
which does not change when KEKs rotate, so digests stay stable across restarts and rotations.
"""

from __future__ import annotations

import hashlib
import hmac

from hub.crypto.keyring import KeyProvider

__all__ = ["IDENTIFIER_DIGEST_PURPOSE", "IdentifierDigests", "identifier_digest"]

IDENTIFIER_DIGEST_PURPOSE = "identifier-digest/v1"


def identifier_digest(system: str, value: str, *, secret: bytes) -> str:
    """64 hex characters: HMAC-SHA256 of ``system``, a separator and the stripped ``value``."""
    if len(secret) < 32:
        raise ValueError("the identifier digest secret must be at least 32 bytes")
    message = f"{system}\x1f{value.strip()}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


class IdentifierDigests:
    """``identifier_digest`` bound to the hub's secret: call it with (system, value)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the identifier digest secret must be at least 32 bytes")
        self._secret = secret

    @classmethod
    async def from_provider(cls, provider: KeyProvider) -> IdentifierDigests:
        """Bind to the provider's identifier-digest secret (read once, at start-up)."""
        return cls(await provider.hub_secret(IDENTIFIER_DIGEST_PURPOSE))

    def __call__(self, system: str, value: str) -> str:
        return identifier_digest(system, value, secret=self._secret)

    def __repr__(self) -> str:
        return "IdentifierDigests(<secret>)"
