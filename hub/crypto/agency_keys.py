"""The registered public signing keys of partner agencies: rotation by key id, grace periods.

The registry is configuration (YAML): per agency a list of Ed25519 public keys, each with a
``key_id`` unique across all agencies, ``valid_from``, an optional ``retired_at`` and
``grace_days``. Rotating a key means adding the new key and setting ``retired_at`` on the old
one; the old key keeps verifying until ``retired_at + grace_days``.

It also derives the deterministic development keys of the Northshire demo agencies: anyone can
recompute them, so they prove nothing outside a developer's machine.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "DEV_KEYS_VALID_FROM",
    "AgencyKeyRing",
    "AgencyKeysError",
    "AgencyPublicKey",
    "KeyState",
    "dev_key_id",
    "dev_private_key",
    "public_key_b64",
    "registry_yaml",
    "write_private_key",
]

DEV_KEYS_VALID_FROM = datetime(2024, 1, 1, tzinfo=UTC)
"""``valid_from`` of every deterministic development key."""

_DEV_SEED = b"safeguarding-hub/dev-agency-signing-key/v1/"


class AgencyKeysError(Exception):
    """The agency keys registry cannot be read or is not valid."""


class KeyState(StrEnum):
    """Where a key stands at a given moment."""

    not_yet_valid = "not_yet_valid"
    valid = "valid"
    in_grace = "in_grace"  # retired, but still inside its grace period
    expired = "expired"


@dataclass(frozen=True, slots=True)
class AgencyPublicKey:
    """One registered Ed25519 public key of an agency."""

    key_id: str
    agency_id: str
    public_key: Ed25519PublicKey
    valid_from: datetime
    retired_at: datetime | None = None
    grace: timedelta = timedelta(days=30)

    @property
    def expires_at(self) -> datetime | None:
        """When the key stops verifying: ``retired_at + grace``; None while not retired."""
        return None if self.retired_at is None else self.retired_at + self.grace

    def state_at(self, now: datetime) -> KeyState:
        """The key's state at ``now`` (an aware datetime)."""
        if now < self.valid_from:
            return KeyState.not_yet_valid
        if self.retired_at is None or now < self.retired_at:
            return KeyState.valid
        assert self.expires_at is not None
        return KeyState.in_grace if now < self.expires_at else KeyState.expired


class _KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    key_id: str = Field(pattern=r"^[A-Za-z0-9._:/-]{1,128}$")
    public_key: str | None = Field(default=None, description="Base64 of the 32 raw key bytes.")
    public_key_pem: str | None = None
    valid_from: AwareDatetime
    retired_at: AwareDatetime | None = None
    grace_days: int = Field(default=30, ge=0, le=3650)

    @model_validator(mode="after")
    def _one_key_form(self) -> Self:
        if (self.public_key is None) == (self.public_key_pem is None):
            raise ValueError("give exactly one of public_key (base64 raw) or public_key_pem")
        if self.retired_at is not None and self.retired_at < self.valid_from:
            raise ValueError("retired_at is before valid_from")
        return self

    def load_key(self) -> Ed25519PublicKey:
        try:
            if self.public_key is not None:
                raw = base64.b64decode(self.public_key, validate=True)
                return Ed25519PublicKey.from_public_bytes(raw)
            key = serialization.load_pem_public_key(str(self.public_key_pem).encode())
        except ValueError as exc:
            raise ValueError(f"key {self.key_id} is not a valid Ed25519 public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"key {self.key_id} is not an Ed25519 public key")
        return key


class _KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agency_keys: dict[str, list[_KeyEntry]]


class AgencyKeyRing:
    """Every agency's registered public keys, looked up by key id."""

    def __init__(self, keys: Iterable[AgencyPublicKey]) -> None:
        self._by_id: dict[str, AgencyPublicKey] = {}
        for key in keys:
            if key.key_id in self._by_id:
                raise AgencyKeysError(f"key id {key.key_id!r} is registered twice")
            self._by_id[key.key_id] = key

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, where: str = "agency keys") -> AgencyKeyRing:
        """Build the ring from parsed configuration ``{"agency_keys": {agency: [entry...]}}``."""
        try:
            parsed = _KeysFile.model_validate(raw)
            keys = [
                AgencyPublicKey(
                    key_id=entry.key_id,
                    agency_id=agency_id,
                    public_key=entry.load_key(),
                    valid_from=entry.valid_from,
                    retired_at=entry.retired_at,
                    grace=timedelta(days=entry.grace_days),
                )
                for agency_id, entries in parsed.agency_keys.items()
                for entry in entries
            ]
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise AgencyKeysError(
                f"{where} is not a valid agency keys registry: {problems}"
            ) from exc
        except ValueError as exc:
            raise AgencyKeysError(f"{where}: {exc}") from exc
        try:
            return cls(keys)
        except AgencyKeysError as exc:
            raise AgencyKeysError(f"{where}: {exc}") from exc

    @classmethod
    def load(cls, path: Path) -> AgencyKeyRing:
        """Read a YAML agency keys registry file."""
        try:
            raw = yaml.safe_load(path.read_text("utf-8"))
        except OSError as exc:
            raise AgencyKeysError(f"cannot read agency keys {path}: {exc.strerror}") from exc
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise AgencyKeysError(f"agency keys {path} is not valid YAML text") from exc
        if not isinstance(raw, dict):
            raise AgencyKeysError(f"{path} must be a mapping with an 'agency_keys' mapping")
        return cls.from_mapping(raw, where=str(path))

    @classmethod
    def development(cls, agency_ids: Iterable[str]) -> AgencyKeyRing:
        """The ring of the deterministic development keys of these agencies."""
        return cls(
            AgencyPublicKey(
                key_id=dev_key_id(agency_id),
                agency_id=agency_id,
                public_key=dev_private_key(agency_id).public_key(),
                valid_from=DEV_KEYS_VALID_FROM,
            )
            for agency_id in agency_ids
        )

    def get(self, key_id: str) -> AgencyPublicKey | None:
        """The key with this id, or None."""
        return self._by_id.get(key_id)

    def keys_of(self, agency_id: str) -> list[AgencyPublicKey]:
        """Every key of an agency, in registry order."""
        return [k for k in self._by_id.values() if k.agency_id == agency_id]

    def __len__(self) -> int:
        return len(self._by_id)


def dev_key_id(agency_id: str) -> str:
    """The key id of an agency's deterministic development key."""
    return f"{agency_id}.dev-1"


def dev_private_key(agency_id: str) -> Ed25519PrivateKey:
    """An agency's deterministic development signing key (public knowledge: dev only)."""
    seed = hashlib.sha256(_DEV_SEED + agency_id.encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_b64(key: Ed25519PublicKey) -> str:
    """Base64 of the 32 raw bytes of a public key (the registry's ``public_key`` form)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def registry_yaml(keys: Iterable[AgencyPublicKey]) -> str:
    """The YAML registry text for these keys (what ``hub keys agency-init`` prints)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for key in keys:
        entry: dict[str, Any] = {
            "key_id": key.key_id,
            "public_key": public_key_b64(key.public_key),
            "valid_from": key.valid_from.isoformat(),
            "grace_days": key.grace.days,
        }
        if key.retired_at is not None:
            entry["retired_at"] = key.retired_at.isoformat()
        out.setdefault(key.agency_id, []).append(entry)
    return yaml.safe_dump({"agency_keys": out}, sort_keys=False)


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write a private key as PKCS#8 PEM with mode 0600 (replacing any file there)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    tmp.replace(path)
