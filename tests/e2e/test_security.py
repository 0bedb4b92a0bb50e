"""Security of the records end to end (issue 6), on the real broker and both stores.

Signed submissions: forged, replayed, another agency's key, an expired key -> dead-lettered
with the reason, nothing stored. Encryption at rest: the raw bytes of `hub.events` and of the
store hold none of the plain sensitive values. Erasure: after `hub keys destroy-child` neither
the API nor `hub replay` recovers them. KEK rotation: events under old and new KEKs readable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from contracts.examples import example_envelope, valid_nhs_number
from hub.crypto.agency_keys import (
    DEV_KEYS_VALID_FROM,
    AgencyKeyRing,
    AgencyPublicKey,
    dev_key_id,
    dev_private_key,
    registry_yaml,
)
from hub.crypto.runtime import INTAKE_AGENCY, sign_as_dev
from hub.crypto.signing import sign_envelope
from hub.domain.roles import Role
from hub.registry import AgencyRegistry
from hub.store.db import create_engine
from hub.streams.log_reader import read_topic
from tests.support.hub_process import HubProcess, poll

pytestmark = pytest.mark.e2e

POLICE = "northshire-police"
OLD_POLICE_KEY = "northshire-police.2023"

# Invented values that appear nowhere else in the suite, so a hit means a leak.
GIVEN, FAMILY, ALIAS = "Quillonna", "Marrowdale", "Quilly Marrowdale"
BIRTH_DATE, MOTHER_BIRTH = "2016-02-29", "1988-11-23"
STREET, POSTCODE = "17 Larkspur Wynd", "ZZ99 7QX"
SUMMARY = "Neighbour reported shouting at the Larkspur flat; the girl hid in a cupboard."
SENSITIVE = (GIVEN, FAMILY, ALIAS, BIRTH_DATE, MOTHER_BIRTH, STREET, POSTCODE, SUMMARY)


def concern(n: int, nhs_seed: int, **overrides: Any) -> dict[str, Any]:
    """An unsigned police concern about the child with NHS seed ``nhs_seed``."""
    env = example_envelope(id=f"{POLICE}:sec-{n:04d}", subject=f"NP-SEC-{nhs_seed}", **overrides)
    env["person"]["identifiers"] = [{"system": "nhs", "value": valid_nhs_number(nhs_seed)}]
    return env


def marked_concern(n: int, nhs_seed: int) -> dict[str, Any]:
    """A concern carrying every sensitive marker string, in the fields the policy seals."""
    env = concern(n, nhs_seed)
    env["person"]["name"] = {"given": GIVEN, "family": FAMILY, "aliases": [ALIAS]}
    env["person"]["birth_date"] = BIRTH_DATE
    env["person"]["address"] = {"lines": [STREET, "Northshire"], "postcode": POSTCODE}
    env["person"]["related"][0]["birth_date"] = MOTHER_BIRTH
    env["data"]["summary"] = SUMMARY
    return env


async def submit(client: httpx.AsyncClient, hub: HubProcess, body: Any) -> None:
    headers = hub.headers(sub="adapter", agency=POLICE, role=Role.agency_system)
    r = await client.post(f"{hub.url}/api/v1/submissions", json=body, headers=headers)
    assert r.status_code == 202, r.text


async def children(client: httpx.AsyncClient, hub: HubProcess, nhs_seed: int) -> list[str]:
    r = await client.get(
        f"{hub.url}/api/v1/children",
        params={"identifier": f"nhs:{valid_nhs_number(nhs_seed)}"},
        headers=hub.headers(),
    )
    r.raise_for_status()
    return [c["child_id"] for c in r.json()["children"]]


async def narrative(client: httpx.AsyncClient, hub: HubProcess, child: str) -> list[Any]:
    r = await client.get(f"{hub.url}/api/v1/children/{child}/narrative", headers=hub.headers())
    r.raise_for_status()
    return r.json()["entries"]  # type: ignore[no-any-return]


async def child_with_entries(
    client: httpx.AsyncClient, hub: HubProcess, nhs_seed: int, count: int
) -> tuple[str, list[Any]]:
    async def ready() -> tuple[str, list[Any]] | None:
        found = await children(client, hub, nhs_seed)
        if not found:
            return None
        entries = await narrative(client, hub, found[0])
        return (found[0], entries) if len(entries) >= count else None

    return await poll(ready, timeout=60)


def dead_letters(hub: HubProcess) -> list[dict[str, Any]]:
    out = hub.run_cli("dlq", "list", "--json")
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


async def hub_events_bytes(hub: HubProcess) -> bytes:
    """Every record of the hub's `hub.events` topic, keys and values, as raw bytes."""
    topic = f"{hub.env['HUB_TOPIC_PREFIX']}hub.events"
    raw = b""
    async for batch in read_topic(hub.env["HUB_KAFKA_BOOTSTRAP"], topic):
        raw += b"".join((r.key or b"") + b"\n" + r.value + b"\n" for r in batch)
    return raw


async def store_bytes(hub: HubProcess) -> bytes:
    """The store as an attacker with the disk sees it.

    SQLite: the database file and its WAL, byte for byte. PostgreSQL: every row of every
    table, every column as text (``row_to_json``).
    """
    url = hub.env["HUB_DATABASE_URL"]
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        files = [path, path.with_name(path.name + "-wal")]
        return b"".join(p.read_bytes() for p in files if p.exists())
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            tables = [
                r[0]
                for r in await conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                )
            ]
            assert "narrative_entries" in tables and "child_identifiers" in tables
            rows = []
            for table in tables:
                result = await conn.execute(text(f'SELECT row_to_json(t)::text FROM "{table}" t'))
                rows += [r[0] for r in result]
    finally:
        await engine.dispose()
    return "\n".join(rows).encode()


def leaks(raw: bytes, nhs_seed: int) -> list[str]:
    """Which sensitive values (and the NHS number) occur in ``raw``."""
    values = [*SENSITIVE, valid_nhs_number(nhs_seed)]
    return [v for v in values if v.encode() in raw]


def keys_file(tmp_path: Path) -> Path:
    """A registry: every agency's dev key and the intake key, plus an old police key that was
    retired in 2023 with 30 days' grace (expired)."""
    ids = [a.id for a in AgencyRegistry.load().all()] + [INTAKE_AGENCY]
    ring = AgencyKeyRing.development(ids)
    old = AgencyPublicKey(
        key_id=OLD_POLICE_KEY,
        agency_id=POLICE,
        public_key=old_police_key().public_key(),
        valid_from=datetime(2023, 1, 1, tzinfo=UTC),
        retired_at=datetime(2023, 6, 1, tzinfo=UTC),
    )
    keys = [k for i in ids for k in ring.keys_of(i)] + [old]
    path = tmp_path / "agency-keys.yaml"
    path.write_text(registry_yaml(keys))
    assert yaml.safe_load(path.read_text())["agency_keys"][POLICE][1]["key_id"] == OLD_POLICE_KEY
    assert keys[0].valid_from == DEV_KEYS_VALID_FROM
    return path


def old_police_key() -> Ed25519PrivateKey:
    seed = hashlib.sha256(b"tests/e2e/test_security old police key").digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


class TestSignedSubmissions:
    """Only what a registered, current key of the sending agency signed is accepted."""

    async def test_bad_signatures_rejected_with_reasons_and_nothing_stored(
        self, make_hub: Callable[..., HubProcess], tmp_path: Path
    ) -> None:
        """Forged, other agency's key, expired key, unsigned, replayed id: each dead-lettered."""
        hub = make_hub(HUB_AGENCY_KEYS_FILE=str(keys_file(tmp_path)))
        hub.start()
        good = sign_as_dev(concern(1, nhs_seed=101))
        forged = sign_envelope(
            concern(2, nhs_seed=102), Ed25519PrivateKey.generate(), dev_key_id(POLICE)
        )
        other_agency = sign_envelope(
            concern(3, nhs_seed=103),
            dev_private_key("northshire-health"),
            dev_key_id("northshire-health"),
        )
        expired = sign_envelope(concern(4, nhs_seed=104), old_police_key(), OLD_POLICE_KEY)
        unsigned = concern(5, nhs_seed=105)
        replayed = sign_as_dev(concern(1, nhs_seed=101, time="2024-03-04T21:45:00+00:00"))
        async with httpx.AsyncClient(timeout=10) as client:
            await submit(client, hub, [good, forged, other_agency, expired, unsigned])
            child, entries = await child_with_entries(client, hub, 101, 1)
            await submit(client, hub, replayed)

            async def five_letters() -> list[dict[str, Any]] | None:
                found = dead_letters(hub)
                return found if len(found) >= 5 else None

            letters = await poll(five_letters, timeout=60)
            assert [await children(client, hub, seed) for seed in (102, 103, 104, 105)] == [
                [],
                [],
                [],
                [],
            ]
            assert [e["event_id"] for e in await narrative(client, hub, child)] == [
                f"{POLICE}:sec-0001"
            ]
            metrics = (await client.get(f"{hub.url}/metrics")).text
        assert sorted((d["reason"], d["event_id"]) for d in letters) == [
            ("duplicate_id_conflict", f"{POLICE}:sec-0001"),
            ("signature_invalid", f"{POLICE}:sec-0002"),
            ("signature_key_expired", f"{POLICE}:sec-0004"),
            ("signature_key_of_another_agency", f"{POLICE}:sec-0003"),
            ("signature_unsigned", f"{POLICE}:sec-0005"),
        ]
        assert entries[0]["summary"].startswith("Concern raised: domestic abuse, high risk.")
        for reason in (
            "signature_invalid",
            "signature_key_expired",
            "signature_key_of_another_agency",
            "signature_unsigned",
        ):
            sample = f'hub_signature_rejections_total{{agency_id="{POLICE}",reason="{reason}"}} 1.0'
            assert sample in metrics


class TestEncryptionAndErasure:
    """Nothing sensitive is readable at rest; destroying the child's keys erases every copy."""

    async def test_no_plaintext_at_rest_and_erasure_reaches_api_and_replay(
        self, make_hub: Callable[..., HubProcess]
    ) -> None:
        """Raw topic and store bytes hold no marker; after destroy-child, API and replay show
        "Record erased on <date>" and no content."""
        hub = make_hub()
        hub.start()
        seed = 201
        async with httpx.AsyncClient(timeout=10) as client:
            await submit(
                client, hub, sign_as_dev([marked_concern(1, seed), marked_concern(2, seed)])
            )
            child, entries = await child_with_entries(client, hub, seed, 2)
            assert all(SUMMARY in e["summary"] for e in entries)  # the reader with a key sees it
            assert leaks(await hub_events_bytes(hub), seed) == []
            assert leaks(await store_bytes(hub), seed) == []

            out = hub.run_cli("keys", "destroy-child", child, "--yes", "--reason", "e2e erasure")
            assert out.returncode == 0, out.stderr
            today = datetime.now(UTC).date().isoformat()
            erased = await narrative(client, hub, child)
            assert [(e["summary"], e["data"]) for e in erased] == [
                (f"Record erased on {today}.", {}),
                (f"Record erased on {today}.", {}),
            ]
            assert [e["event_id"] for e in erased] == [e["event_id"] for e in entries]
            assert all(e["erased_at"].startswith(today) for e in erased)

            hub.stop()
            replayed = hub.run_cli("replay")
            assert replayed.returncode == 0, replayed.stderr
            assert "replayed 2 records; 2 narrative entries stored" in replayed.stdout
            hub.start()
            after = await narrative(client, hub, child)
            assert [(e["event_id"], e["summary"], e["data"]) for e in after] == [
                (e["event_id"], e["summary"], e["data"]) for e in erased
            ]
            api_text = json.dumps(after)
        assert leaks(api_text.encode(), seed) == []
        assert leaks(await hub_events_bytes(hub), seed) == []
        assert leaks(await store_bytes(hub), seed) == []


class TestKekRotation:
    """Data keys wrapped under an old KEK and a new one all open, even once the old is gone."""

    @pytest.mark.parametrize("backend", ["sqlite"])
    async def test_events_under_old_and_new_keks_readable_after_replay(
        self, make_hub: Callable[..., HubProcess]
    ) -> None:
        """kek-rotate between two children's events, kek-destroy the old, replay: both read."""
        hub = make_hub()
        hub.start()
        async with httpx.AsyncClient(timeout=10) as client:
            await submit(client, hub, sign_as_dev(concern(1, nhs_seed=301)))
            first, _ = await child_with_entries(client, hub, 301, 1)
            rotated = hub.run_cli("keys", "kek-rotate")
            assert rotated.returncode == 0, rotated.stderr
            # The child's key and the hub's identity-index key (person records are sealed).
            assert "current KEK kek-0002; 2 data keys re-wrapped" in rotated.stdout
            await submit(client, hub, sign_as_dev(concern(2, nhs_seed=302)))
            second, _ = await child_with_entries(client, hub, 302, 1)
            hub.stop()
            destroyed = hub.run_cli("keys", "kek-destroy", "kek-0001", "--yes")
            assert destroyed.returncode == 0, destroyed.stderr
            listed = hub.run_cli("keys", "kek-list")
            assert listed.stdout.splitlines() == ["kek-0002 (current): 3 data keys"]
            replayed = hub.run_cli("replay")
            assert replayed.returncode == 0, replayed.stderr
            hub.start()
            lines = [
                [e["summary"].split(".")[0] for e in await narrative(client, hub, child)]
                for child in (first, second)
            ]
        assert lines == [["Concern raised: domestic abuse, high risk"]] * 2
