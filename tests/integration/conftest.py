"""Fixtures the integration tests share: a freshly migrated store on each backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.store.db import create_engine, migrate
from hub.store.repository import SqlStore
from tests.support.databases import BACKENDS, fresh_database_url


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    """A ``SqlStore`` over a new, migrated database (SQLite file, or PostgreSQL when set)."""
    engine = create_engine(await fresh_database_url(request.param, tmp_path))
    await migrate(engine)
    try:
        yield SqlStore(engine)
    finally:
        await engine.dispose()
