"""Specification of sealing dead letters' originals: no plain personal data on `hub.dlq`."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from contracts.examples import example_envelope, valid_nhs_number
from hub.crypto.data_keys import ChildKeyStore
from hub.crypto.dead_letters import (
    SEALED_ORIGINAL_ALG,
    DeadLetterErased,
    DeadLetterSealer,
    OpenedOriginal,
    SealedOriginalInvalid,
    is_sealed_original,
    month_key_id,
)
from hub.crypto.keyring import LocalFileKeyProvider
from hub.store.db import create_engine, migrate

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 28, 22, 30, tzinfo=UTC)
DLQ_ID = "0123456789abcdef0123456789abcdef"
NHS = valid_nhs_number(4)
SURNAME = "Quillfeather"
ORIGINAL = json.dumps(
    example_envelope(
        person={
            "identifiers": [{"system": "nhs", "value": NHS}],
            "name": {"given": "Ottilie", "family": SURNAME, "aliases": []},
            "birth_date": "2016-02-29",
            "sex": "female",
        }
    )
).encode()
KAFKA_KEY = f"nhs:{NHS}".encode()


@pytest.fixture
async def keys(tmp_path: Path) -> AsyncIterator[ChildKeyStore]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/hub.db")
    await migrate(engine)
    try:
        yield ChildKeyStore(engine, LocalFileKeyProvider(tmp_path / "keys"), clock=lambda: NOW)
    finally:
        await engine.dispose()


def _variants(text: bytes) -> list[bytes]:
    """How a string can show in a record: as is, base64 of the whole, JSON-escaped."""
    return [text, base64.b64encode(text), json.dumps(text.decode()).encode()]


class TestMonthKeyId:
    """Dead-letter keys are per UTC month."""

    @pytest.mark.parametrize(
        ("at", "expected"),
        [
            (datetime(2026, 11, 28, 22, 30, tzinfo=UTC), "hub-dlq:2026-11"),
            (datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), "hub-dlq:2026-12"),
            (datetime.fromisoformat("2027-01-01T00:30:00+01:00"), "hub-dlq:2026-12"),
        ],
    )
    def test_month_of_failure_in_utc(self, at: datetime, expected: str) -> None:
        """The key of the UTC calendar month the letter failed in."""
        assert month_key_id(at) == expected


class TestSealing:
    """A sealed original opens to the exact bytes and key, and to nothing else."""

    async def test_round_trip(self, keys: ChildKeyStore) -> None:
        """Sealing then opening gives the original value and Kafka key back."""
        sealer = DeadLetterSealer(keys)
        sealed = await sealer.seal_original(ORIGINAL, dlq_id=DLQ_ID, failed_at=NOW, key=KAFKA_KEY)
        assert is_sealed_original(sealed)
        assert (sealed["enc"], sealed["kid"], sealed["kv"]) == (
            SEALED_ORIGINAL_ALG,
            "hub-dlq:2026-11",
            1,
        )
        opened = await sealer.open_original(sealed, dlq_id=DLQ_ID)
        assert opened == OpenedOriginal(key=KAFKA_KEY, value=ORIGINAL)

    async def test_round_trip_without_key_in_another_process(
        self, keys: ChildKeyStore, tmp_path: Path
    ) -> None:
        """A record without a Kafka key opens in a process with a cold key cache."""
        sealed = await DeadLetterSealer(keys).seal_original(
            b"not json", dlq_id=DLQ_ID, failed_at=NOW
        )
        other = ChildKeyStore(keys.engine, LocalFileKeyProvider(tmp_path / "keys"))
        opened = await DeadLetterSealer(other).open_original(sealed, dlq_id=DLQ_ID)
        assert opened == OpenedOriginal(key=None, value=b"not json")

    async def test_no_plain_personal_data_in_the_sealed_bytes(self, keys: ChildKeyStore) -> None:
        """Neither the NHS number nor the surname appears in any form in the sealed JSON."""
        sealed = await DeadLetterSealer(keys).seal_original(
            ORIGINAL, dlq_id=DLQ_ID, failed_at=NOW, key=KAFKA_KEY
        )
        wire = json.dumps(sealed).encode()
        assert SURNAME.encode() in ORIGINAL and NHS.encode() in ORIGINAL  # the test can fail
        for secret in (SURNAME.encode(), NHS.encode(), b"2016-02-29"):
            for form in _variants(secret):
                assert form not in wire

    @pytest.mark.parametrize("field", ["ct", "n"])
    async def test_tampering_is_detected(self, keys: ChildKeyStore, field: str) -> None:
        """A flipped bit in the ciphertext or the nonce fails the integrity check."""
        sealer = DeadLetterSealer(keys)
        sealed = await sealer.seal_original(ORIGINAL, dlq_id=DLQ_ID, failed_at=NOW)
        raw = bytearray(base64.b64decode(sealed[field]))
        raw[3] ^= 0x01
        tampered = {**sealed, field: base64.b64encode(bytes(raw)).decode()}
        with pytest.raises(SealedOriginalInvalid, match="integrity check failed"):
            await sealer.open_original(tampered, dlq_id=DLQ_ID)

    async def test_moved_to_another_letter_does_not_open(self, keys: ChildKeyStore) -> None:
        """The letter's id is bound: the same sealed original under another id fails."""
        sealer = DeadLetterSealer(keys)
        sealed = await sealer.seal_original(ORIGINAL, dlq_id=DLQ_ID, failed_at=NOW)
        with pytest.raises(SealedOriginalInvalid, match="dead letter ffff"):
            await sealer.open_original(sealed, dlq_id="ffff")

    @pytest.mark.parametrize(
        ("change", "why"),
        [
            ({"enc": "aesgcm-v1"}, "not a sealed original"),
            ({"kid": "ch-0001"}, "names no dead-letter key"),
            ({"kv": 7}, "no key hub-dlq:2026-11 v7"),
            ({"ct": "%%%"}, "integrity check failed"),
        ],
    )
    async def test_malformed_sealed_originals_are_refused(
        self, keys: ChildKeyStore, change: dict[str, object], why: str
    ) -> None:
        """Another shape, a non-dead-letter key, an unknown version or bad base64: refused."""
        sealer = DeadLetterSealer(keys)
        sealed = await sealer.seal_original(ORIGINAL, dlq_id=DLQ_ID, failed_at=NOW)
        with pytest.raises(SealedOriginalInvalid, match=why):
            await sealer.open_original({**sealed, **change}, dlq_id=DLQ_ID)


class TestShredding:
    """Destroying a month's key erases that month's dead letters, and only those."""

    async def test_months_ended_before_the_cutoff_are_shredded(self, keys: ChildKeyStore) -> None:
        """October goes at a 1 November cutoff; November stays; its letters still open."""
        sealer = DeadLetterSealer(keys)
        october = await sealer.seal_original(
            ORIGINAL, dlq_id="a", failed_at=datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
        )
        november = await sealer.seal_original(ORIGINAL, dlq_id="b", failed_at=NOW)
        assert await sealer.month_keys() == ["hub-dlq:2026-10", "hub-dlq:2026-11"]

        assert await sealer.shred_before(date(2026, 10, 31)) == []
        assert await sealer.shred_before(date(2026, 11, 1)) == ["hub-dlq:2026-10"]
        assert await sealer.shred_before(date(2026, 11, 1)) == []  # idempotent

        with pytest.raises(DeadLetterErased, match="hub-dlq:2026-10, which has been destroyed"):
            await sealer.open_original(october, dlq_id="a")
        assert (await sealer.open_original(november, dlq_id="b")).value == ORIGINAL
        assert await sealer.month_keys() == ["hub-dlq:2026-11"]
