"""Rows of the identity tables for tests: a person record and a household link, stored as is."""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["household_link_row", "person_record_row"]


def person_record_row(
    record_id: str, child_id: str, at: datetime, **columns: Any
) -> dict[str, Any]:
    """An ``identity_person_records`` row: one name token, no identifiers; ``columns`` win."""
    return {
        "record_id": record_id,
        "child_id": child_id,
        "features": '{"given_first": ["ruby"]}',
        "identifiers": "[]",
        "blocking_keys": "[]",
        "updated_at": at,
        **columns,
    }


def household_link_row(a: str, b: str, kind: str, at: datetime) -> dict[str, Any]:
    """An ``identity_household_links`` row (node keys as stored: ``ch-…``, ``addr:…``)."""
    return {"a": a, "b": b, "kind": kind, "created_at": at}
