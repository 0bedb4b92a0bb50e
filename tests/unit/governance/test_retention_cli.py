"""``hub retention run --dry-run`` lists what the run would do and changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from hub.cli import app
from tests.unit.crypto.test_crypto_cli import NOW, _restore_logging, _seed_child  # noqa: F401

pytestmark = pytest.mark.unit


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    monkeypatch.delenv("HUB_AGENCIES_FILE", raising=False)
    yield tmp_path


async def _keys_destroyed_alone(data_dir: Path, child_id: str) -> None:
    """The child's keys destroyed with nothing else (the by-hand path before ADR 0021): its
    person record and household link are leftovers."""
    from hub.crypto.data_keys import ChildKeyStore
    from hub.crypto.keyring import LocalFileKeyProvider
    from hub.store.db import create_engine

    engine = create_engine(f"sqlite+aiosqlite:///{data_dir / 'hub.db'}")
    try:
        keys = ChildKeyStore(
            engine, LocalFileKeyProvider(data_dir / "keys"), clock=lambda: NOW + timedelta(days=1)
        )
        await keys.destroy_child_key(child_id)
    finally:
        await engine.dispose()


async def _person_records(data_dir: Path) -> int:
    from hub.identity.tables import person_records
    from hub.store.db import create_engine

    engine = create_engine(f"sqlite+aiosqlite:///{data_dir / 'hub.db'}")
    try:
        async with engine.connect() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(person_records))).scalar_one()
            )
    finally:
        await engine.dispose()


class TestDryRun:
    def test_lists_the_leftovers_the_run_would_sweep(self, data_dir: Path) -> None:
        """A child whose keys went but whose matching data stayed is listed as a leftover,
        counted on stderr, and left in place; the run then sweeps it."""
        asyncio.run(_seed_child(data_dir, "ch-0001"))
        asyncio.run(_keys_destroyed_alone(data_dir, "ch-0001"))
        result = CliRunner().invoke(app, ["retention", "run", "--dry-run"])
        assert result.exit_code == 0, result.stderr
        assert result.stdout.splitlines() == [
            "child_id\tverdict\tcategory\tdue_on",
            "ch-0001\tleftover\t-\t-",
        ]
        assert result.stderr.endswith("0 would be erased; 1 with leftovers to sweep\n")
        assert asyncio.run(_person_records(data_dir)) == 1

        swept = CliRunner().invoke(app, ["retention", "run"])
        assert swept.exit_code == 0, swept.stderr
        assert asyncio.run(_person_records(data_dir)) == 0
        again = CliRunner().invoke(app, ["retention", "run", "--dry-run"])
        assert again.stdout.splitlines() == ["child_id\tverdict\tcategory\tdue_on"]
