"""The security services of one hub process: signature checks, sealing, digests, intake signing.

``build_security(settings, engine, registry)`` wires them from settings; the ingest processor,
the narrative projector, replay and the API use the one ``HubSecurity`` a hub process holds.
Native files parsed by the hub's own adapters are signed with the hub's *intake key*,
registered under the pseudo-agency ``hub-intake``: it speaks for the agency whose token the
hub authenticated, so its signature is accepted for any registered agency (ADR 0006).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.crypto.agency_keys import (
    AgencyKeyRing,
    AgencyKeysError,
    KeyState,
    dev_key_id,
    dev_private_key,
    public_key_b64,
)
from hub.crypto.data_keys import ChildKeyStore
from hub.crypto.digests import IdentifierDigests
from hub.crypto.encryption import FieldCipher
from hub.crypto.keyring import KeyProvider, LocalFileKeyProvider
from hub.crypto.signing import VerifiedSignature, sign_envelope, verify_envelope
from hub.registry import AgencyRegistry
from hub.settings import Settings

__all__ = [
    "INTAKE_AGENCY",
    "EnvelopeSigner",
    "HubSecurity",
    "agency_key_file",
    "agency_signer",
    "build_security",
    "intake_signer",
    "load_agency_keys",
    "sign_as_dev",
]

INTAKE_AGENCY = "hub-intake"
"""The pseudo-agency whose key signs what the hub's own adapters make of native files."""


@dataclass(frozen=True, slots=True)
class EnvelopeSigner:
    """Signs envelopes (JSON dicts) with one agency's private key and registered key id."""

    agency_id: str
    key_id: str
    private_key: Ed25519PrivateKey = field(repr=False, compare=False)

    def sign(self, envelope: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of the envelope with ``key_id`` and ``signature`` set."""
        return sign_envelope(envelope, self.private_key, self.key_id)


def sign_as_dev(doc: Any) -> Any:
    """An envelope (or list of them) signed with its agency's deterministic development key.

    For tests and demos only: anyone can derive these keys.
    """
    if isinstance(doc, list):
        return [sign_as_dev(item) for item in doc]
    agency_id = str(doc["agency_id"])
    return sign_envelope(doc, dev_private_key(agency_id), dev_key_id(agency_id))


def agency_key_file(settings: Settings, agency_id: str) -> Path:
    """Where ``hub keys agency-init`` keeps an agency's private signing key."""
    return settings.data_dir / "keys" / "agencies" / f"{agency_id}.pem"


def load_agency_keys(settings: Settings, registry: AgencyRegistry) -> AgencyKeyRing:
    """The registry of agency public keys: the configured file, else the development ring.

    The development ring holds the deterministic keys of every registered agency and of
    ``hub-intake``; anyone can derive them, so it proves nothing outside a developer's machine.
    """
    if settings.agency_keys_file is not None:
        return AgencyKeyRing.load(settings.agency_keys_file)
    return AgencyKeyRing.development([*(a.id for a in registry.all()), INTAKE_AGENCY])


def _raw_public(key: Ed25519PrivateKey) -> str:
    return public_key_b64(key.public_key())


def _signer_from(
    settings: Settings, ring: AgencyKeyRing, agency_id: str, *, now: datetime | None
) -> EnvelopeSigner:
    """The agency's private key (file, else the dev key without a keys file) and its key id."""
    path = agency_key_file(settings, agency_id)
    if path.exists():
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise AgencyKeysError(f"{path} is not an Ed25519 private key")
        private = loaded
    elif settings.agency_keys_file is None:
        private = dev_private_key(agency_id)
    else:
        raise AgencyKeysError(
            f"no private signing key for {agency_id} at {path}; "
            f"run `hub keys agency-init --agency {agency_id} --random` and register its key"
        )
    public = _raw_public(private)
    matching = [k for k in ring.keys_of(agency_id) if public_key_b64(k.public_key) == public]
    if now is not None:
        usable = [k for k in matching if k.state_at(now) in (KeyState.valid, KeyState.in_grace)]
        matching = usable or matching
    if not matching:
        raise AgencyKeysError(
            f"the private key of {agency_id} at {path} is not registered for {agency_id}"
        )
    newest = max(matching, key=lambda k: k.valid_from)
    return EnvelopeSigner(agency_id=agency_id, key_id=newest.key_id, private_key=private)


def agency_signer(
    settings: Settings, agency_id: str, registry: AgencyRegistry, *, now: datetime | None = None
) -> EnvelopeSigner:
    """The signer an agency-side tool (``hub adapter``) uses for ``agency_id``."""
    return _signer_from(settings, load_agency_keys(settings, registry), agency_id, now=now)


_INTAKE_SIGNERS: dict[tuple[Path, Path | None, Path | None], EnvelopeSigner] = {}
_INTAKE_LOCK = threading.Lock()


def intake_signer(settings: Settings) -> EnvelopeSigner:
    """The hub's intake signer for these settings (read once per data dir and keys file)."""
    cache_key = (settings.data_dir.resolve(), settings.agency_keys_file, settings.agencies_file)
    with _INTAKE_LOCK:
        signer = _INTAKE_SIGNERS.get(cache_key)
        if signer is None:
            registry = AgencyRegistry.load(settings.agencies_file)
            signer = _signer_from(
                settings, load_agency_keys(settings, registry), INTAKE_AGENCY, now=None
            )
            _INTAKE_SIGNERS[cache_key] = signer
        return signer


class HubSecurity:
    """Checks agency signatures, seals and opens records, and digests identifiers."""

    def __init__(
        self,
        *,
        provider: KeyProvider,
        keys: ChildKeyStore,
        agency_keys: AgencyKeyRing,
        require_signatures: bool = True,
        digests: IdentifierDigests | None = None,
    ) -> None:
        self.provider = provider
        self.keys = keys
        self.cipher = FieldCipher(keys)
        self.agency_keys = agency_keys
        self.require_signatures = require_signatures
        self._digests = digests

    async def start(self) -> None:
        """Read the identifier-digest secret (created on first use)."""
        if self._digests is None:
            self._digests = await IdentifierDigests.from_provider(self.provider)

    def digest(self, system: str, value: str) -> str:
        """The keyed digest the person index stores for an identifier."""
        if self._digests is None:
            raise RuntimeError("HubSecurity.start() has not run: no identifier digest secret")
        return self._digests(system, value)

    def verify(self, envelope: Mapping[str, Any], *, now: datetime) -> VerifiedSignature | None:
        """Check a received envelope's signature; None for an unsigned one when not required.

        Raises SignatureRejected. A signature by the hub's intake key is accepted for the
        envelope's agency: the hub made that envelope from a file the agency's token sent.
        """
        if not envelope.get("signature") or not envelope.get("key_id"):
            if not self.require_signatures:
                return None
            return verify_envelope(envelope, self.agency_keys, now=now)  # raises unsigned
        ring = self.agency_keys
        key_id = envelope.get("key_id")
        claimed = envelope.get("agency_id")
        key = ring.get(key_id) if isinstance(key_id, str) else None
        if key is not None and key.agency_id == INTAKE_AGENCY and isinstance(claimed, str):
            ring = AgencyKeyRing([dataclasses.replace(key, agency_id=claimed)])
        return verify_envelope(envelope, ring, now=now)


def build_security(
    settings: Settings, engine: AsyncEngine, registry: AgencyRegistry
) -> HubSecurity:
    """Wire the security services from settings (reads the agency keys file, if any)."""
    if INTAKE_AGENCY in registry:
        raise AgencyKeysError(f"{INTAKE_AGENCY!r} is reserved; no agency may use that id")
    provider = LocalFileKeyProvider(settings.data_dir / "keys")
    return HubSecurity(
        provider=provider,
        keys=ChildKeyStore(engine, provider),
        agency_keys=load_agency_keys(settings, registry),
        require_signatures=settings.require_signatures,
    )
