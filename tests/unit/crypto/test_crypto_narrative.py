"""Sealing a narrative entry: only its texts change; every other field is kept as it was."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.crypto.data_keys import DataKey
from hub.crypto.encryption import is_sealed, open_value
from hub.crypto.narrative import PAYLOAD_PATH, SUMMARY_PATH, seal_entry
from hub.domain.narrative import NarrativeEntry

pytestmark = pytest.mark.unit

SEALED_FIELDS = {"summary", "payload"}


def entry() -> NarrativeEntry:
    """An entry with a distinct value in every field."""
    return NarrativeEntry(
        event_id="northshire-police:np-1",
        child_id="child-0001",
        event_type="concern.raised",
        family="concern",
        occurred_at=datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
        recorded_at=datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
        agency_id="northshire-police",
        agency_kind="police",
        summary="Concern raised: neglect, high risk.",
        sensitivity=("police_intelligence",),
        supersedes="northshire-police:np-0",
        status="active",
        payload=json.dumps({"category": "neglect"}),
    )


def test_seal_entry_keeps_every_other_field_and_seals_the_texts() -> None:
    """Every field but the two texts is carried over (a field added to NarrativeEntry later
    is checked here too), and the texts open back to what they were."""
    key = DataKey("child-0001", 3, AESGCM(os.urandom(32)))
    plain = entry()
    sealed = seal_entry(key, plain)
    for f in dataclasses.fields(NarrativeEntry):
        if f.name not in SEALED_FIELDS:
            assert getattr(sealed, f.name) == getattr(plain, f.name), f.name
    summary, payload = json.loads(sealed.summary), json.loads(sealed.payload)
    assert is_sealed(summary) and is_sealed(payload)
    assert open_value(key, plain.event_id, SUMMARY_PATH, summary) == plain.summary
    assert open_value(key, plain.event_id, PAYLOAD_PATH, payload) == {"category": "neglect"}
