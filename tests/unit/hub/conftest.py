"""Fixtures for the hub's unit tests: frozen time and ids, a SQLite store, a recording publish,
and the security services (local key files, development agency keys)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import hub.domain.identity
import hub.streams.ingest
import hub.streams.projector
from hub.crypto.data_keys import ChildKeyStore
from hub.crypto.keyring import LocalFileKeyProvider
from hub.crypto.runtime import INTAKE_AGENCY, HubSecurity, load_agency_keys
from hub.registry import AgencyRegistry
from hub.settings import Settings
from hub.store.db import create_engine, migrate
from hub.store.repository import SqlStore

NOW = datetime(2024, 3, 5, 9, 0, tzinfo=UTC)
"""The frozen clock of every processor test."""


def dlq_id(n: int) -> str:
    """The n-th frozen dead-letter id (1-based), as ``uuid.uuid4().hex`` would give it."""
    return uuid.UUID(int=n).hex


def child_id(n: int) -> str:
    """The n-th frozen canonical child id (1-based)."""
    return f"ch-{n:04d}"


@pytest.fixture
def frozen_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Child ids mint as ch-0001, ch-0002...; dead-letter ids as UUID(int=1), UUID(int=2)..."""
    children = itertools.count(1)
    minted: dict[str | None, str] = {}

    def new_child_id(seed: str | None = None) -> str:
        # Like the real one: the same seed (event id) always mints the same child.
        if seed is None or seed not in minted:
            minted[seed] = child_id(next(children))
        return minted[seed]

    monkeypatch.setattr(hub.domain.identity, "new_child_id", new_child_id)
    letters = itertools.count(1)
    fake_uuid = SimpleNamespace(uuid4=lambda: uuid.UUID(int=next(letters)))
    monkeypatch.setattr(hub.streams.ingest, "uuid", fake_uuid)
    monkeypatch.setattr(hub.streams.projector, "uuid", fake_uuid)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    """A real SqlStore on a migrated SQLite file of its own."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/hub.db")
    await migrate(engine)
    try:
        yield SqlStore(engine)
    finally:
        await engine.dispose()


async def make_security(
    store: SqlStore, keys_dir: Path, *, require_signatures: bool = True
) -> HubSecurity:
    """The security services on the store: KEK files in ``keys_dir``, development agency keys."""
    provider = LocalFileKeyProvider(keys_dir)
    ring = load_agency_keys(Settings(data_dir=keys_dir.parent), AgencyRegistry.load())
    assert ring.keys_of(INTAKE_AGENCY)
    security = HubSecurity(
        provider=provider,
        keys=ChildKeyStore(store.engine, provider),
        agency_keys=ring,
        require_signatures=require_signatures,
    )
    await security.start()
    return security


@pytest.fixture
async def security(store: SqlStore, tmp_path: Path) -> HubSecurity:
    """Signatures required; data keys in the store, KEKs under ``tmp_path/keys``."""
    return await make_security(store, tmp_path / "keys")


@dataclass(frozen=True, slots=True)
class Sent:
    """One record handed to ``publish``."""

    topic: str
    value: bytes
    key: bytes | None
    headers: dict[str, str]


class BrokerDidNotConfirm(Exception):
    """What a failing fake publish's future raises."""


@dataclass
class RecordingPublish:
    """A ``Publish`` that records every call; the calls numbered in ``failing`` never confirm.

    A failed call is still recorded: the broker may have the record even though the producer
    never heard back (a timeout), which is the case at-least-once delivery must survive.
    """

    failing: set[int] = field(default_factory=set)
    sent: list[Sent] = field(default_factory=list)

    async def __call__(
        self, topic: str, value: bytes, *, key: bytes | None, headers: dict[str, str]
    ) -> asyncio.Future[Any]:
        call = len(self.sent)
        self.sent.append(Sent(topic, value, key, dict(headers)))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if call in self.failing:
            future.set_exception(BrokerDidNotConfirm(f"publish #{call} was not confirmed"))
        else:
            future.set_result(None)
        return future

    def to(self, topic: str) -> list[Sent]:
        """The records sent to one topic, in order."""
        return [s for s in self.sent if s.topic == topic]


@pytest.fixture
def publish() -> Iterator[RecordingPublish]:
    """A publish whose every call is confirmed at once."""
    yield RecordingPublish()
