"""The migrations build exactly the schema the table definitions declare (SQLite and PostgreSQL).

Every area declares its tables on ``hub.store.schema.metadata`` and creates them in a migration;
a column, index or constraint added to one and not the other would differ between a migrated
store and what the code expects (an index declared but never made is a silent full scan).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import hub.bootstrap  # noqa: F401 - imports every area's tables onto the shared metadata
from hub.store.db import create_engine, migrate
from hub.store.schema import metadata
from tests.support.databases import BACKENDS, fresh_database_url, upgrade_to

pytestmark = pytest.mark.integration


PREVIOUS_HEADS = {
    "before 0014": ("0003", "0005", "0006", "0007", "0010", "0011", "0012", "0013"),
    "at 0014": ("0003", "0005", "0006", "0007", "0010", "0011", "0012", "0013", "0014"),
}
"""Stores as earlier versions of main left them: each must upgrade to the same schema."""


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("start", [None, *PREVIOUS_HEADS])
async def test_migrated_store_matches_the_table_definitions(
    backend: str, start: str | None, tmp_path: Path
) -> None:
    """A fresh store, and stores at earlier heads upgraded, match the definitions."""
    url = await fresh_database_url(backend, tmp_path)
    engine = create_engine(url)
    try:
        for revision in PREVIOUS_HEADS.get(start or "", ()):
            async with engine.begin() as conn:
                await conn.run_sync(upgrade_to, url, revision)
        await migrate(engine)
        async with engine.connect() as conn:
            differences = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), metadata)
            )
    finally:
        await engine.dispose()
    assert differences == []
