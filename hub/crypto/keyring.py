"""Key-encryption keys (KEKs): the provider port and the local key-file provider.

A KEK wraps (encrypts) the per-child data keys; it never encrypts data itself. The
``KeyProvider`` Protocol is what a cloud KMS or HSM implements; ``LocalFileKeyProvider`` keeps
AES-256 KEKs as files under ``HUB_DATA_DIR/keys/kek/`` (mode 0600) with the current one named in
``current``, and a hub secret (``keys/hub-secret.key``) from which keyed-hash keys are derived.
"""

from __future__ import annotations

import base64
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hub.observability import get_logger

__all__ = [
    "KeyProvider",
    "KeyProviderError",
    "LocalFileKeyProvider",
    "UnknownKek",
    "WrappedKey",
]

log = get_logger(__name__)

_KEK_ID = re.compile(r"^kek-(\d{4,})$")
_WRAP_AAD = b"safeguarding-hub/kek-wrap/v1\x1f"
_SECRET_INFO = b"safeguarding-hub/hub-secret/v1/"


class KeyProviderError(Exception):
    """A key-encryption key cannot be created, read or used."""


class UnknownKek(KeyProviderError):
    """A wrapped key names a KEK the provider does not have (destroyed or never existed)."""

    def __init__(self, kek_id: str) -> None:
        super().__init__(f"key-encryption key {kek_id!r} is not available")
        self.kek_id = kek_id


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key encrypted under a KEK; ``blob`` is safe to store."""

    kek_id: str
    blob: bytes


@runtime_checkable
class KeyProvider(Protocol):
    """Wraps and unwraps data keys with key-encryption keys; rotates KEKs; holds the hub secret.

    ``context`` is bound to the wrapped key (authenticated, not secret): a wrapped key moved to
    another child's row does not unwrap.
    """

    async def current_kek_id(self) -> str:
        """The KEK new data keys are wrapped under."""
        ...

    async def wrap(
        self, data_key: bytes, *, context: bytes, kek_id: str | None = None
    ) -> WrappedKey:
        """Encrypt a data key under ``kek_id`` (default: the current KEK)."""
        ...

    async def unwrap(self, wrapped: WrappedKey, *, context: bytes) -> bytes:
        """Decrypt a data key; raises UnknownKek or KeyProviderError."""
        ...

    async def rotate(self) -> str:
        """Create a new KEK, make it current, and return its id."""
        ...

    async def hub_secret(self, purpose: str) -> bytes:
        """A 32-byte secret for ``purpose``, stable across restarts and KEK rotations."""
        ...


def _write_secret_file(path: Path, raw: bytes) -> bool:
    """Create ``path`` holding base64 ``raw`` with mode 0600; False if it already exists."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as fh:
        fh.write(base64.b64encode(raw) + b"\n")
    return True


def _read_secret_file(path: Path) -> bytes:
    """Read a key file, refusing one that other users could read."""
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyProviderError(f"{path} is readable by other users; chmod 600 it")
        raw = base64.b64decode(path.read_bytes().strip(), validate=True)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise KeyProviderError(f"cannot read key file {path}: {exc}") from exc
    if len(raw) != 32:
        raise KeyProviderError(f"{path} does not hold a 256-bit key")
    return raw


class LocalFileKeyProvider:
    """KEKs as AES-256 key files in ``<keys_dir>/kek``; the current KEK named in ``current``.

    The first use creates ``kek-0001`` and the hub secret. Key files are created with mode 0600
    and never rewritten; rotation adds a file and moves the ``current`` marker.
    """

    def __init__(self, keys_dir: Path) -> None:
        self._dir = keys_dir / "kek"
        self._secret_path = keys_dir / "hub-secret.key"
        self._keks: dict[str, AESGCM] = {}

    @property
    def kek_dir(self) -> Path:
        """Where the KEK files live."""
        return self._dir

    def kek_ids(self) -> list[str]:
        """Every KEK on disk, oldest first."""
        if not self._dir.exists():
            return []
        found = [p.stem for p in self._dir.glob("kek-*.key") if _KEK_ID.match(p.stem)]
        return sorted(found, key=lambda k: int(k.split("-")[1]))

    async def current_kek_id(self) -> str:
        """The KEK named in ``current``, creating ``kek-0001`` the first time."""
        marker = self._dir / "current"
        if not marker.exists():
            if not self.kek_ids():
                self._create(1)
            self._mark_current(self.kek_ids()[-1])
        kek_id = marker.read_text("utf-8").strip()
        if not _KEK_ID.match(kek_id):
            raise KeyProviderError(f"{marker} does not name a KEK")
        return kek_id

    async def wrap(
        self, data_key: bytes, *, context: bytes, kek_id: str | None = None
    ) -> WrappedKey:
        """AES-256-GCM under the KEK; AAD binds the KEK id and ``context``."""
        kek_id = kek_id or await self.current_kek_id()
        nonce = os.urandom(12)
        blob = nonce + self._kek(kek_id).encrypt(nonce, data_key, self._aad(kek_id, context))
        return WrappedKey(kek_id=kek_id, blob=blob)

    async def unwrap(self, wrapped: WrappedKey, *, context: bytes) -> bytes:
        """The data key; KeyProviderError if the blob or context was tampered with."""
        aead = self._kek(wrapped.kek_id)
        try:
            return aead.decrypt(
                wrapped.blob[:12], wrapped.blob[12:], self._aad(wrapped.kek_id, context)
            )
        except (InvalidTag, ValueError):
            raise KeyProviderError(
                f"a data key wrapped under {wrapped.kek_id} does not unwrap (tampered or moved)"
            ) from None

    async def rotate(self) -> str:
        """Create the next KEK and make it current; existing KEKs stay for unwrapping."""
        ids = self.kek_ids()
        number = int(ids[-1].split("-")[1]) + 1 if ids else 1
        while not self._create(number):  # another process took this number
            number += 1
        kek_id = f"kek-{number:04d}"
        self._mark_current(kek_id)
        log.info("crypto.kek_rotated", kek_id=kek_id)
        return kek_id

    def destroy_kek(self, kek_id: str) -> None:
        """Delete a retired KEK's file: every key still wrapped under it becomes unreadable.

        Refuses the current KEK. Callers must re-wrap first (``ChildKeyStore.rewrap_all``) and
        check nothing is left under it; old backups of the store lose their keys with it.
        """
        if kek_id == (self._dir / "current").read_text("utf-8").strip():
            raise KeyProviderError(f"{kek_id} is the current KEK; rotate before destroying it")
        path = self._path(kek_id)
        if not path.exists():
            raise UnknownKek(kek_id)
        path.unlink()
        self._keks.pop(kek_id, None)
        log.info("crypto.kek_destroyed", kek_id=kek_id)

    async def hub_secret(self, purpose: str) -> bytes:
        """HKDF-SHA256 of the hub's root secret for ``purpose`` (created on first use)."""
        _write_secret_file(self._secret_path, os.urandom(32))
        root = _read_secret_file(self._secret_path)
        hkdf = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=_SECRET_INFO + purpose.encode()
        )
        return hkdf.derive(root)

    def _path(self, kek_id: str) -> Path:
        if not _KEK_ID.match(kek_id):
            raise UnknownKek(kek_id)
        return self._dir / f"{kek_id}.key"

    def _kek(self, kek_id: str) -> AESGCM:
        aead = self._keks.get(kek_id)
        if aead is None:
            try:
                aead = AESGCM(_read_secret_file(self._path(kek_id)))
            except FileNotFoundError:
                raise UnknownKek(kek_id) from None
            self._keks[kek_id] = aead
        return aead

    def _create(self, number: int) -> bool:
        created = _write_secret_file(self._dir / f"kek-{number:04d}.key", AESGCM.generate_key(256))
        if created:
            log.info("crypto.kek_created", kek_id=f"kek-{number:04d}")
        return created

    def _mark_current(self, kek_id: str) -> None:
        tmp = self._dir / f"current.{os.getpid()}.tmp"
        tmp.write_text(kek_id + "\n", "utf-8")
        tmp.replace(self._dir / "current")

    @staticmethod
    def _aad(kek_id: str, context: bytes) -> bytes:
        return _WRAP_AAD + kek_id.encode() + b"\x1f" + context
