"""An in-memory ``DataKeySource`` for tests of code that seals and opens fields."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.crypto.data_keys import DataKey, KeyDestroyed, UnknownDataKey

__all__ = ["MemoryDataKeys"]


class MemoryDataKeys:
    """Data keys in a dict: created on first use, rotatable, destroyable, like ChildKeyStore."""

    def __init__(self) -> None:
        self._keys: dict[str, list[DataKey | None]] = {}

    async def current_keys(
        self, child_ids: Iterable[str], *, conn: AsyncConnection | None = None
    ) -> dict[str, DataKey]:
        """The newest live key of each child, created when there is none."""
        out: dict[str, DataKey] = {}
        for child_id in set(child_ids):
            versions = self._keys.setdefault(child_id, [])
            if not versions or versions[-1] is None:
                self._add(child_id)
            key = versions[-1]
            assert key is not None
            out[child_id] = key
        return out

    async def data_key(self, child_id: str, version: int) -> DataKey:
        """The key of a version; KeyDestroyed or UnknownDataKey like the real store."""
        versions = self._keys.get(child_id, [])
        if not 1 <= version <= len(versions):
            raise UnknownDataKey(child_id, version)
        key = versions[version - 1]
        if key is None:
            raise KeyDestroyed(child_id, version, datetime.fromtimestamp(0, UTC))
        return key

    def rotate_child_key(self, child_id: str) -> int:
        """Add a new version for the child; returns it."""
        return self._add(child_id).version

    def destroy_child_key(self, child_id: str) -> None:
        """Forget every key of the child."""
        self._keys[child_id] = [None for _ in self._keys.get(child_id, [])]

    def _add(self, child_id: str) -> DataKey:
        versions = self._keys.setdefault(child_id, [])
        key = DataKey(child_id, len(versions) + 1, AESGCM(AESGCM.generate_key(256)))
        versions.append(key)
        return key
