"""The local Ed25519 key that signs development bearer tokens, generated on first start."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["load_or_create_signing_key", "load_public_key"]

_PRIVATE = "jwt-signing-key.pem"


def load_or_create_signing_key(keys_dir: Path) -> Ed25519PrivateKey:
    """Load the local token-signing key, creating it (mode 0600) the first time."""
    path = keys_dir / _PRIVATE
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 private key")
        return key
    keys_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    # Two processes starting at once: the first rename wins and both then read the same key.
    if not path.exists():
        tmp.replace(path)
    else:
        tmp.unlink(missing_ok=True)
    return load_or_create_signing_key(keys_dir)


def load_public_key(path: Path) -> Ed25519PublicKey | object:
    """Load an external issuer's PEM public key (any algorithm PyJWT supports)."""
    return serialization.load_pem_public_key(path.read_bytes())
