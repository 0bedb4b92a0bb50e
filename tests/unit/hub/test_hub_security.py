"""The hub's security services: who may sign, the intake key, and signing what the hub makes."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from contracts import AgencyKind, parse_envelope
from contracts.examples import example_envelope
from hub.crypto.agency_keys import (
    AgencyKeyRing,
    AgencyKeysError,
    AgencyPublicKey,
    dev_key_id,
    dev_private_key,
    registry_yaml,
    write_private_key,
)
from hub.crypto.runtime import (
    INTAKE_AGENCY,
    HubSecurity,
    agency_signer,
    build_security,
    intake_signer,
    sign_as_dev,
)
from hub.crypto.signing import RejectionReason, SignatureRejected, sign_envelope
from hub.intake import publish_envelopes
from hub.registry import Agency, AgencyRegistry
from hub.settings import Settings
from hub.store.db import create_engine
from hub.streams.topics import Topics

from .conftest import NOW

pytestmark = pytest.mark.unit

POLICE = "northshire-police"


class TestVerify:
    """HubSecurity.verify: the registered key of the sender, or the hub's intake key."""

    def test_agency_key_verifies(self, security: HubSecurity) -> None:
        """An envelope signed with its agency's registered key verifies, naming that key."""
        verified = security.verify(sign_as_dev(example_envelope()), now=NOW)
        assert verified is not None
        assert (verified.agency_id, verified.key_id) == (POLICE, dev_key_id(POLICE))

    def test_intake_key_speaks_for_the_envelopes_agency(self, security: HubSecurity) -> None:
        """The intake key's signature is accepted for any agency, and names that agency."""
        signed = sign_envelope(
            example_envelope(), dev_private_key(INTAKE_AGENCY), dev_key_id(INTAKE_AGENCY)
        )
        verified = security.verify(signed, now=NOW)
        assert verified is not None
        assert (verified.agency_id, verified.key_id) == (POLICE, dev_key_id(INTAKE_AGENCY))

    def test_intake_signature_over_other_content_fails(self, security: HubSecurity) -> None:
        """The intake key is no blank cheque: a changed field breaks its signature."""
        signed = sign_envelope(
            example_envelope(), dev_private_key(INTAKE_AGENCY), dev_key_id(INTAKE_AGENCY)
        )
        signed["agency_id"] = "northshire-health"
        with pytest.raises(SignatureRejected) as caught:
            security.verify(signed, now=NOW)
        assert caught.value.reason is RejectionReason.signature_invalid

    def test_unsigned_refused_unless_opted_out(self, security: HubSecurity) -> None:
        """Unsigned: rejected when required, None (accepted) under the opt-out."""
        with pytest.raises(SignatureRejected) as caught:
            security.verify(example_envelope(), now=NOW)
        assert caught.value.reason is RejectionReason.unsigned
        security.require_signatures = False
        assert security.verify(example_envelope(), now=NOW) is None

    def test_digest_needs_start(self, security: HubSecurity) -> None:
        """Digests before start() raise instead of storing something unkeyed."""
        fresh = HubSecurity(
            provider=security.provider, keys=security.keys, agency_keys=security.agency_keys
        )
        with pytest.raises(RuntimeError, match="start"):
            fresh.digest("nhs", "9990000018")
        assert len(security.digest("nhs", "9990000018")) == 64


class TestBuild:
    """build_security wires from settings; hub-intake is reserved."""

    async def test_reserved_intake_id(self, tmp_path: Path) -> None:
        """A registry with an agency called hub-intake is refused."""
        registry = AgencyRegistry([Agency(INTAKE_AGENCY, AgencyKind.police, "Impostor")])
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/x.db")
        try:
            with pytest.raises(AgencyKeysError, match="reserved"):
                build_security(Settings(data_dir=tmp_path), engine, registry)
        finally:
            await engine.dispose()

    async def test_keys_file_and_opt_out_from_settings(self, tmp_path: Path) -> None:
        """HUB_AGENCY_KEYS_FILE replaces the dev ring; require_signatures follows settings."""
        path = tmp_path / "keys.yaml"
        path.write_text(registry_yaml(AgencyKeyRing.development([POLICE]).keys_of(POLICE)))
        settings = Settings(data_dir=tmp_path, agency_keys_file=path, require_signatures=False)
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/x.db")
        try:
            security = build_security(settings, engine, AgencyRegistry.load())
        finally:
            await engine.dispose()
        assert len(security.agency_keys) == 1
        assert security.require_signatures is False


class TestSigners:
    """Who signs what the hub or an agency-side tool makes."""

    def test_dev_signers_without_keys_file(self, tmp_path: Path) -> None:
        """No keys file, no key files: the deterministic dev keys and their ids."""
        settings = Settings(data_dir=tmp_path)
        police = agency_signer(settings, POLICE, AgencyRegistry.load())
        intake = intake_signer(settings)
        assert (police.agency_id, police.key_id) == (POLICE, dev_key_id(POLICE))
        assert (intake.agency_id, intake.key_id) == (INTAKE_AGENCY, dev_key_id(INTAKE_AGENCY))
        assert police.sign(example_envelope()) == sign_as_dev(example_envelope())

    def test_registered_random_key_found_by_its_public_half(self, tmp_path: Path) -> None:
        """With a keys file, the private key file is matched to its registered key id."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        private = Ed25519PrivateKey.generate()
        write_private_key(tmp_path / "keys" / "agencies" / f"{POLICE}.pem", private)
        registered = AgencyPublicKey(
            "northshire-police.2026", POLICE, private.public_key(), datetime(2026, 1, 1, tzinfo=UTC)
        )
        path = tmp_path / "keys.yaml"
        path.write_text(registry_yaml([registered]))
        settings = Settings(data_dir=tmp_path, agency_keys_file=path)
        signer = agency_signer(settings, POLICE, AgencyRegistry.load())
        assert signer.key_id == "northshire-police.2026"
        with pytest.raises(AgencyKeysError, match="no private signing key for northshire-health"):
            agency_signer(settings, "northshire-health", AgencyRegistry.load())

    def test_unregistered_key_file_refused(self, tmp_path: Path) -> None:
        """A private key whose public half is not registered for the agency is refused."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        write_private_key(
            tmp_path / "keys" / "agencies" / f"{POLICE}.pem", Ed25519PrivateKey.generate()
        )
        with pytest.raises(AgencyKeysError, match="is not registered for northshire-police"):
            agency_signer(Settings(data_dir=tmp_path), POLICE, AgencyRegistry.load())


class TestPublishEnvelopes:
    """Envelopes the hub's adapters made are signed before they go to ingest."""

    async def test_hub_made_envelopes_signed_with_intake_key(
        self, tmp_path: Path, security: HubSecurity
    ) -> None:
        """No raw objects given: each envelope's JSON is signed by the intake key."""
        sent: list[tuple[str, bytes]] = []

        async def publish(
            topic: str, value: bytes, *, key: bytes | None, headers: dict[str, str]
        ) -> asyncio.Future[Any]:
            sent.append((topic, value))
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            future.set_result(None)
            return future

        settings = Settings(data_dir=tmp_path, topic_prefix="t.")
        streams = SimpleNamespace(settings=settings, publish=publish)
        envelope = parse_envelope(example_envelope())
        ids = await publish_envelopes(
            streams,  # type: ignore[arg-type]
            Topics(settings),
            AgencyKind.police,
            [envelope],
        )
        [(topic, value)] = sent
        doc = json.loads(value)
        assert (ids, topic, doc["key_id"]) == (
            [envelope.id],
            "t.ingest.police",
            dev_key_id(INTAKE_AGENCY),
        )
        assert security.verify(doc, now=NOW) is not None
