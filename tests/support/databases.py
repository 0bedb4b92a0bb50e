"""Fresh databases for tests: a SQLite file, or a new database on the test PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest

__all__ = ["BACKENDS", "fresh_database_url", "upgrade_to"]

BACKENDS = ("sqlite", "postgresql")

_PG_ENV = "HUB_TEST_POSTGRES_URL"


async def fresh_database_url(backend: str, tmp_path: Path) -> str:
    """An empty database of the given backend; PostgreSQL comes from ``HUB_TEST_POSTGRES_URL``.

    Without that variable the PostgreSQL variant is skipped, with the reason; CI sets it
    (`.ci/run` starts PostgreSQL through `scripts/postgres.sh`), so CI never skips it.
    """
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    admin_url = os.environ.get(_PG_ENV)
    if not admin_url:
        if os.environ.get("CI"):
            pytest.fail(f"{_PG_ENV} is not set in CI; PostgreSQL must be tested")
        pytest.skip(f"PostgreSQL not configured: set {_PG_ENV} (make test does)")
    import asyncpg

    name = f"hub_test_{uuid.uuid4().hex[:12]}"
    plain = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(plain)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def upgrade_to(connection: Any, url: str, revision: str) -> None:
    """Migrate the database on ``connection`` up to ``revision`` only (to test an upgrade)."""
    from alembic import command
    from alembic.config import Config

    import hub.store.db as db_module

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(db_module.__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)
