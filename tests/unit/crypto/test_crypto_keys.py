"""Specification of the agency keys registry and the local key-encryption-key provider."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from hub.crypto.agency_keys import (
    DEV_KEYS_VALID_FROM,
    AgencyKeyRing,
    AgencyKeysError,
    AgencyPublicKey,
    dev_key_id,
    dev_private_key,
    public_key_b64,
    registry_yaml,
    write_private_key,
)
from hub.crypto.digests import IdentifierDigests, identifier_digest
from hub.crypto.keyring import KeyProviderError, LocalFileKeyProvider, UnknownKek, WrappedKey

pytestmark = pytest.mark.unit

POLICE_PUB = dev_private_key("northshire-police").public_key()
POLICE_B64 = public_key_b64(POLICE_PUB)
POLICE_PEM = POLICE_PUB.public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
).decode()


def entry(**over: object) -> dict[str, object]:
    return {"key_id": "p-1", "public_key": POLICE_B64, "valid_from": "2026-01-01T00:00:00Z", **over}


class TestAgencyKeyRing:
    """The registry is validated configuration; key ids are unique across agencies."""

    def test_base64_and_pem_forms_load_the_same_key(self) -> None:
        """Both key forms give the same key; defaults: not retired, 30 days' grace."""
        ring = AgencyKeyRing.from_mapping(
            {
                "agency_keys": {
                    "northshire-police": [
                        entry(),
                        entry(
                            key_id="p-0",
                            public_key=None,
                            public_key_pem=POLICE_PEM,
                            retired_at="2026-01-01T00:00:00Z",
                            grace_days=7,
                        ),
                    ]
                }
            }
        )
        new, old = ring.get("p-1"), ring.get("p-0")
        assert new is not None and old is not None
        assert (new.agency_id, new.retired_at, new.grace) == (
            "northshire-police",
            None,
            timedelta(days=30),
        )
        assert old.expires_at == datetime(2026, 1, 8, tzinfo=UTC)
        assert public_key_b64(old.public_key) == public_key_b64(new.public_key) == POLICE_B64
        assert [k.key_id for k in ring.keys_of("northshire-police")] == ["p-1", "p-0"]

    @pytest.mark.parametrize(
        ("raw", "message"),
        [
            ({"agency_keys": {"a": [entry(public_key_pem=POLICE_PEM)]}}, "exactly one of"),
            ({"agency_keys": {"a": [entry(public_key=None)]}}, "exactly one of"),
            ({"agency_keys": {"a": [entry(public_key="bm90IGEga2V5")]}}, "not a valid Ed25519"),
            ({"agency_keys": {"a": [entry(public_key="%%%")]}}, "not a valid Ed25519"),
            (
                {"agency_keys": {"a": [entry(retired_at="2025-01-01T00:00:00Z")]}},
                "retired_at is before valid_from",
            ),
            ({"agency_keys": {"a": [entry(valid_from="2026-01-01T00:00:00")]}}, "timezone"),
            ({"agency_keys": {"a": [entry()], "b": [entry()]}}, "'p-1' is registered twice"),
            ({"agency_keys": {"a": [entry(grace_days=-1)]}}, "grace_days"),
            ({"agencies": []}, "agency_keys"),
        ],
        ids=[
            "two-forms",
            "no-form",
            "not-a-key",
            "not-base64",
            "retired-first",
            "naive-time",
            "duplicate-id",
            "negative-grace",
            "wrong-shape",
        ],
    )
    def test_invalid_registries_are_refused(self, raw: dict, message: str) -> None:
        """Each mistake is reported with what is wrong."""
        with pytest.raises(AgencyKeysError, match=message):
            AgencyKeyRing.from_mapping(raw)

    def test_a_pem_of_another_algorithm_is_refused(self) -> None:
        """Only Ed25519 keys sign submissions."""
        from cryptography.hazmat.primitives.asymmetric import ec

        pem = (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        raw = {"agency_keys": {"a": [entry(public_key=None, public_key_pem=pem)]}}
        with pytest.raises(AgencyKeysError, match="not an Ed25519 public key"):
            AgencyKeyRing.from_mapping(raw)

    def test_load_reads_yaml_and_reports_missing_files(self, tmp_path: Path) -> None:
        """A file round-trips through registry_yaml; a missing one names its path."""
        key = AgencyPublicKey(
            "p-1",
            "northshire-police",
            POLICE_PUB,
            DEV_KEYS_VALID_FROM,
            retired_at=datetime(2026, 1, 1, tzinfo=UTC),
            grace=timedelta(days=3),
        )
        path = tmp_path / "agency-keys.yaml"
        path.write_text(registry_yaml([key]), "utf-8")
        loaded = AgencyKeyRing.load(path).get("p-1")
        assert loaded is not None
        assert (loaded.agency_id, loaded.valid_from, loaded.retired_at, loaded.grace) == (
            key.agency_id,
            key.valid_from,
            key.retired_at,
            key.grace,
        )
        with pytest.raises(AgencyKeysError, match="cannot read agency keys"):
            AgencyKeyRing.load(tmp_path / "missing.yaml")
        (tmp_path / "list.yaml").write_text("- 1\n", "utf-8")
        with pytest.raises(AgencyKeysError, match="must be a mapping"):
            AgencyKeyRing.load(tmp_path / "list.yaml")

    def test_development_keys_are_deterministic_and_distinct(self) -> None:
        """The same agency always derives the same key; agencies get different keys."""
        ring = AgencyKeyRing.development(["northshire-police", "northshire-health"])
        police = ring.get(dev_key_id("northshire-police"))
        assert police is not None and public_key_b64(police.public_key) == POLICE_B64
        assert public_key_b64(dev_private_key("northshire-health").public_key()) != POLICE_B64
        assert yaml.safe_load(registry_yaml([police]))["agency_keys"]["northshire-police"] == [
            {
                "key_id": "northshire-police.dev-1",
                "public_key": POLICE_B64,
                "valid_from": "2024-01-01T00:00:00+00:00",
                "grace_days": 30,
            }
        ]

    def test_private_keys_are_written_owner_only(self, tmp_path: Path) -> None:
        """The PEM file has mode 0600 and loads back as the same key."""
        path = tmp_path / "agencies" / "northshire-police.pem"
        write_private_key(path, dev_private_key("northshire-police"))
        write_private_key(path, dev_private_key("northshire-police"))  # replaces
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert public_key_b64(loaded.public_key()) == POLICE_B64  # type: ignore[arg-type]


class TestLocalFileKeyProvider:
    """KEKs are owner-only files; rotation adds one; old ones keep unwrapping."""

    async def test_first_use_creates_kek_0001_owner_only(self, tmp_path: Path) -> None:
        """The first KEK and the current marker appear on first use."""
        provider = LocalFileKeyProvider(tmp_path / "keys")
        assert await provider.current_kek_id() == "kek-0001"
        assert provider.kek_ids() == ["kek-0001"]
        path = tmp_path / "keys" / "kek" / "kek-0001.key"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert (tmp_path / "keys" / "kek" / "current").read_text() == "kek-0001\n"

    async def test_wrap_unwrap_round_trip_bound_to_context(self, tmp_path: Path) -> None:
        """A wrapped key opens with its context only, and never contains the key."""
        provider = LocalFileKeyProvider(tmp_path / "keys")
        data_key = os.urandom(32)
        wrapped = await provider.wrap(data_key, context=b"child-1")
        assert data_key not in wrapped.blob and len(wrapped.blob) == 12 + 32 + 16
        assert await provider.unwrap(wrapped, context=b"child-1") == data_key
        with pytest.raises(KeyProviderError, match="does not unwrap"):
            await provider.unwrap(wrapped, context=b"child-2")
        flipped = WrappedKey(wrapped.kek_id, wrapped.blob[:-1] + bytes([wrapped.blob[-1] ^ 1]))
        with pytest.raises(KeyProviderError, match="does not unwrap"):
            await provider.unwrap(flipped, context=b"child-1")

    async def test_rotation_keeps_old_keks_usable(self, tmp_path: Path) -> None:
        """After rotate, new wraps use kek-0002; a second process sees the new current KEK."""
        provider = LocalFileKeyProvider(tmp_path / "keys")
        old = await provider.wrap(b"k" * 32, context=b"c")
        assert await provider.rotate() == "kek-0002"
        other_process = LocalFileKeyProvider(tmp_path / "keys")
        assert await other_process.current_kek_id() == "kek-0002"
        assert (await other_process.wrap(b"k" * 32, context=b"c")).kek_id == "kek-0002"
        assert await other_process.unwrap(old, context=b"c") == b"k" * 32

    async def test_destroying_a_kek(self, tmp_path: Path) -> None:
        """The current KEK cannot be destroyed; a destroyed one unwraps nothing."""
        provider = LocalFileKeyProvider(tmp_path / "keys")
        old = await provider.wrap(b"k" * 32, context=b"c")
        with pytest.raises(KeyProviderError, match="is the current KEK"):
            provider.destroy_kek("kek-0001")
        await provider.rotate()
        provider.destroy_kek("kek-0001")
        with pytest.raises(UnknownKek, match="'kek-0001' is not available"):
            await LocalFileKeyProvider(tmp_path / "keys").unwrap(old, context=b"c")
        with pytest.raises(UnknownKek):
            provider.destroy_kek("kek-0001")
        with pytest.raises(UnknownKek):
            await provider.unwrap(WrappedKey("../../etc/passwd", b""), context=b"c")

    async def test_a_key_file_others_can_read_is_refused(self, tmp_path: Path) -> None:
        """Like ssh, the provider will not use a key file with group or world access."""
        provider = LocalFileKeyProvider(tmp_path / "keys")
        await provider.current_kek_id()
        (tmp_path / "keys" / "kek" / "kek-0001.key").chmod(0o644)
        with pytest.raises(KeyProviderError, match="readable by other users"):
            await LocalFileKeyProvider(tmp_path / "keys").wrap(b"k" * 32, context=b"c")

    async def test_hub_secret_is_stable_and_per_purpose(self, tmp_path: Path) -> None:
        """Same purpose, same secret across instances and KEK rotation; purposes differ."""
        first = LocalFileKeyProvider(tmp_path / "keys")
        secret = await first.hub_secret("identifier-digest/v1")
        await first.rotate()
        again = await LocalFileKeyProvider(tmp_path / "keys").hub_secret("identifier-digest/v1")
        assert secret == again and len(secret) == 32
        assert await first.hub_secret("other") != secret


class TestIdentifierDigests:
    """Identifiers are matched by keyed hash: stable, per system, useless without the secret."""

    SECRET = b"s" * 32

    def test_digest_is_hmac_sha256_hex(self) -> None:
        """64 hex characters, the same for the same input, stripped of outer spaces."""
        import hashlib
        import hmac

        expected = hmac.new(self.SECRET, b"nhs\x1f9990000018", hashlib.sha256).hexdigest()
        assert identifier_digest("nhs", " 9990000018 ", secret=self.SECRET) == expected
        assert identifier_digest("upn", "9990000018", secret=self.SECRET) != expected
        assert identifier_digest("nhs", "9990000018", secret=b"t" * 32) != expected

    def test_short_secrets_are_refused(self) -> None:
        """A secret under 256 bits is a configuration error."""
        with pytest.raises(ValueError, match="at least 32 bytes"):
            IdentifierDigests(b"short")

    async def test_stable_across_restarts(self, tmp_path: Path) -> None:
        """Two providers on the same key directory give the same digests; repr hides it."""
        first = await IdentifierDigests.from_provider(LocalFileKeyProvider(tmp_path / "keys"))
        second = await IdentifierDigests.from_provider(LocalFileKeyProvider(tmp_path / "keys"))
        assert first("nhs", "9990000018") == second("nhs", "9990000018")
        assert repr(first) == "IdentifierDigests(<secret>)"
