"""Specification of ``hub keys``: agency keys a registry can verify with, KEKs, erasure."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
import yaml
from typer.testing import CliRunner

from contracts.examples import example_envelope
from hub.crypto.agency_keys import AgencyKeyRing
from hub.crypto.cli import keys_app
from hub.crypto.signing import verify_envelope
from tests.support.identity_rows import household_link_row, person_record_row

pytestmark = pytest.mark.unit

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The commands route logs to the runner's stderr; put the process's logging back after."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**config)
    root.handlers[:], root.level = handlers, level


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    monkeypatch.delenv("HUB_AGENCIES_FILE", raising=False)
    return tmp_path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(keys_app, list(args))
    return result.exit_code, result.stdout, result.stderr


class TestAgencyInit:
    """agency-init writes private keys and prints a registry that verifies their signatures."""

    def test_dev_keys_for_every_registered_agency(self, data_dir: Path) -> None:
        """Four owner-only PEM files; the printed YAML is a valid registry of their keys."""
        code, out, _ = run("agency-init")
        assert code == 0
        ring = AgencyKeyRing.from_mapping(yaml.safe_load(out))
        assert len(ring) == 4
        pem = data_dir / "keys" / "agencies" / "northshire-police.pem"
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600
        envelope = data_dir / "envelope.json"
        envelope.write_text(json.dumps(example_envelope()), "utf-8")
        code, out, _ = run("sign", str(envelope), "--agency", "northshire-police")
        assert code == 0
        verified = verify_envelope(json.loads(out), ring, now=NOW)
        assert verified.key_id == "northshire-police.dev-1"

    def test_random_keys_refuse_to_overwrite(self, data_dir: Path) -> None:
        """A fresh random key is never written over an existing private key."""
        out_file = data_dir / "registry.yaml"
        code, out, _ = run(
            "agency-init", "--agency", "northshire-cs", "--random", "--output", str(out_file)
        )
        assert code == 0 and out_file.read_text("utf-8") == out
        assert list(yaml.safe_load(out)["agency_keys"]) == ["northshire-cs"]
        code, _, err = run("agency-init", "--agency", "northshire-cs", "--random")
        assert code == 1 and "exists; move it away" in err

    def test_sign_without_a_key_says_what_to_do(self, data_dir: Path) -> None:
        """Signing before agency-init fails with the remedy."""
        code, _, err = run("sign", "-", "--agency", "northshire-police")
        assert code == 1 and "run agency-init" in err


class TestKeks:
    """KEK rotation re-wraps; destruction is refused while keys remain or unconfirmed."""

    def test_rotate_list_destroy(self, data_dir: Path) -> None:
        """kek-0001 then kek-0002 current; kek-0001 can then be destroyed."""
        assert run("kek-list")[1] == "kek-0001 (current): 0 data keys\n"
        assert run("kek-rotate")[1] == "current KEK kek-0002; 0 data keys re-wrapped\n"
        assert run("kek-destroy", "kek-0001")[0] == 1
        code, out, _ = run("kek-destroy", "kek-0001", "--yes")
        assert (code, out) == (0, "kek-0001 destroyed\n")
        code, _, err = run("kek-destroy", "kek-0002", "--yes")
        assert code == 1 and "is the current KEK" in err


async def _seed_child(data_dir: Path, child_id: str) -> None:
    """A child with a data key, a person record and a household link, in the SQLite store."""
    from hub.crypto.data_keys import ChildKeyStore
    from hub.crypto.keyring import LocalFileKeyProvider
    from hub.identity.tables import household_links, person_records
    from hub.store.db import create_engine, migrate

    engine = create_engine(f"sqlite+aiosqlite:///{data_dir / 'hub.db'}")
    try:
        await migrate(engine)
        await ChildKeyStore(engine, LocalFileKeyProvider(data_dir / "keys")).current_keys(
            [child_id]
        )
        async with engine.begin() as conn:
            await conn.execute(person_records.insert(), [person_record_row("r-1", child_id, NOW)])
            await conn.execute(
                household_links.insert(),
                [household_link_row(child_id, "addr:1", "address", NOW)],
            )
    finally:
        await engine.dispose()


async def _audit_records(data_dir: Path) -> list[dict[str, object]]:
    from hub.governance.audit_store import AuditTrail
    from hub.store.db import create_engine

    engine = create_engine(f"sqlite+aiosqlite:///{data_dir / 'hub.db'}")
    try:
        return [r.body async for r in AuditTrail(engine).records()]
    finally:
        await engine.dispose()


class TestDestroyChild:
    """destroy-child erases a child as retention does, with who and why in the audit trail."""

    def test_needs_confirmation_and_a_reason(self, data_dir: Path) -> None:
        """Without --yes: exit 1; without --reason, or a blank one: exit 2, saying so."""
        assert run("destroy-child", "ch-0001", "--reason", "court order")[0] == 1
        code, _, err = run("destroy-child", "ch-0001", "--yes")
        assert code == 2 and "Missing option '--reason'" in err
        code, _, err = run("destroy-child", "ch-0001", "--yes", "--reason", "  ")
        assert (code, err) == (2, "keys: erasing a child needs a reason (--reason)\n")

    def test_erases_records_links_and_audits(self, data_dir: Path) -> None:
        """Keys, the person record and the link go, in one audited erasure; again: nothing."""
        asyncio.run(_seed_child(data_dir, "ch-0001"))
        args = ("destroy-child", "ch-0001", "--yes", "--reason", "court order", "--author", "ig-7")
        assert run(*args)[:2] == (
            0,
            "child ch-0001 erased: data key versions 1 destroyed, 1 person records and "
            "1 household links deleted; audit record 1\n",
        )
        [record] = asyncio.run(_audit_records(data_dir))
        assert {k: record[k] for k in ("action", "who", "child_id", "effect", "reason")} == {
            "action": "operator.erased",
            "who": "ig-7",
            "child_id": "ch-0001",
            "effect": "erased",
            "reason": "court order",
        }
        assert run(*args)[:2] == (
            0,
            "child ch-0001: already erased; nothing to erase, nothing recorded\n",
        )
        assert len(asyncio.run(_audit_records(data_dir))) == 1

    def test_unknown_child_fails_and_changes_nothing(self, data_dir: Path) -> None:
        """A child the hub never held keys for (a mistyped id) fails, so a script carrying
        out an order does not count it as done; nothing is recorded."""
        code, out, err = run("destroy-child", "ch-0002", "--yes", "--reason", "duplicate id")
        assert (code, out) == (1, "")
        assert err.endswith("keys: no child ch-0002 is known here (no data keys); nothing erased\n")
        assert asyncio.run(_audit_records(data_dir)) == []

    def test_refuses_what_it_could_not_record_as_a_child_erasure(self, data_dir: Path) -> None:
        """A dead-letter month's key or any other non-child id, and an author longer than the
        audit trail keeps, are refused (exit 2) before anything is touched."""
        asyncio.run(_seed_child(data_dir, "ch-0001"))
        code, _, err = run("destroy-child", "hub-dlq:2026-11", "--yes", "--reason", "tidy")
        assert (code, err) == (
            2,
            "keys: 'hub-dlq:2026-11' is not a child id (they start with 'ch-')\n",
        )
        long = ("destroy-child", "ch-0001", "--yes", "--reason", "order", "--author", "x" * 201)
        assert run(*long)[::2] == (2, "keys: the author must be 1-200 characters\n")
        assert asyncio.run(_audit_records(data_dir)) == []
