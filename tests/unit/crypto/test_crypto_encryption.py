"""Specification of field sealing: what is sealed, that it opens only in place, and erasure."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from contracts.examples import example_envelope, valid_nhs_number
from hub.crypto.data_keys import KeyDestroyed
from hub.crypto.encryption import (
    SEALED_ALG,
    FieldCipher,
    FieldDecryptionFailed,
    is_sealed,
    open_value,
    redact_sealed,
    seal_paths,
    seal_value,
    sealed_paths,
)
from hub.crypto.fakes import MemoryDataKeys
from hub.crypto.policy import PERSON_FIELDS, sensitive_paths

pytestmark = pytest.mark.unit

PLAINTEXTS = (
    "Ruby",
    "Rubes",
    "Example Street",
    "ZZ99 3ZZ",
    "2015-06-01",
    "1990-02-03",
    valid_nhs_number(0),
    "Officers attended",
    "head injury",
    "Northshire General",
    "Initial child protection",
    "wrong child",
)
"""Strings of the example envelopes that must never appear once sealed."""

PERSON_PATHS = [
    "person.identifiers",
    "person.name",
    "person.birth_date",
    "person.address",
    "person.related.0.name",
    "person.related.0.identifiers",
    "person.related.0.birth_date",
]


@pytest.fixture
def keys() -> MemoryDataKeys:
    return MemoryDataKeys()


@pytest.fixture
def cipher(keys: MemoryDataKeys) -> FieldCipher:
    return FieldCipher(keys)


class TestPolicy:
    """The sealed paths per event type are data, with a seal-everything default."""

    @pytest.mark.parametrize(
        ("event_type", "data_paths"),
        [
            ("concern.raised", ["data.summary"]),
            ("involvement.started", ["data.reason"]),
            ("involvement.changed", ["data.reason"]),
            ("involvement.ended", ["data.reason"]),
            ("contact.recorded", ["data.summary", "data.location", "data.details"]),
            ("event.retracted", ["data.reason"]),
            ("event.corrected", ["data.reason", "data.replacement.summary"]),
            ("case.opened", ["data"]),
        ],
    )
    def test_paths_per_type(self, event_type: str, data_paths: list[str]) -> None:
        """Person fields always, then the type's data fields."""
        env = {**example_envelope(type=event_type)} if "." in event_type else {}
        env["type"] = event_type
        assert sensitive_paths(env) == (*PERSON_FIELDS, *data_paths)

    def test_a_correction_of_an_unknown_type_seals_the_whole_replacement(self) -> None:
        """Default seal also applies inside corrections."""
        env = example_envelope(type="event.corrected")
        env["data"]["corrected_type"] = "something.new"
        assert sensitive_paths(env)[-2:] == ("data.reason", "data.replacement")


class TestSealedEnvelopes:
    """Sealed envelopes keep routing fields in clear and nothing sensitive."""

    @pytest.mark.parametrize(
        "event_type",
        [
            "concern.raised",
            "involvement.started",
            "contact.recorded",
            "event.corrected",
            "event.retracted",
        ],
    )
    async def test_round_trip_and_no_plaintext(self, cipher: FieldCipher, event_type: str) -> None:
        """Opening gives back the exact envelope; the sealed JSON holds no known string."""
        env = example_envelope(type=event_type)
        sealed = await cipher.seal_envelope("ch-0001", env)
        text = json.dumps(sealed, ensure_ascii=False)
        assert [s for s in PLAINTEXTS if s in text] == []
        assert await cipher.open_envelope("ch-0001", sealed) == env
        assert (sealed["type"], sealed["agency_id"], sealed["sensitivity"]) == (
            env["type"],
            env["agency_id"],
            env["sensitivity"],
        )

    async def test_which_paths_are_sealed(self, cipher: FieldCipher) -> None:
        """Exactly the policy's paths with a value; null and absent values are left alone."""
        env = example_envelope(type="contact.recorded")
        env["data"]["location"] = None
        sealed = await cipher.seal_envelope("ch-0001", env)
        assert [p for p, _ in sealed_paths(sealed)] == [
            *PERSON_PATHS,
            "data.summary",
            "data.details",
        ]
        assert sealed["data"]["location"] is None
        assert sealed["data"]["contact_type"] == "unscheduled_care_attendance"
        assert sealed["person"]["sex"] == "female"
        assert sealed["person"]["related"][0]["relationship"] == "mother"

    async def test_the_input_is_not_changed(self, cipher: FieldCipher) -> None:
        """Sealing returns a new document."""
        env = example_envelope()
        before = json.dumps(env)
        await cipher.seal_envelope("ch-0001", env)
        assert json.dumps(env) == before

    async def test_sealing_twice_changes_nothing_more(self, cipher: FieldCipher) -> None:
        """A sealed value is not sealed again (safe on redelivery)."""
        once = await cipher.seal_envelope("ch-0001", example_envelope())
        twice = await cipher.seal_envelope("ch-0001", once)
        assert twice == once

    async def test_a_batch_seals_each_under_its_child(self, cipher: FieldCipher) -> None:
        """seal_envelopes gives each envelope its own child's key."""
        a = example_envelope(id="e-1")
        b = example_envelope(id="e-2")
        sealed = await cipher.seal_envelopes([("ch-1", a), ("ch-2", b)])
        assert await cipher.open_envelope("ch-1", sealed[0]) == a
        with pytest.raises(FieldDecryptionFailed):
            await cipher.open_envelope("ch-1", sealed[1])


class TestBinding:
    """A sealed value opens only for its child, event and path."""

    async def _sealed(self, keys: MemoryDataKeys) -> tuple[Any, dict[str, Any]]:
        key = (await keys.current_keys(["ch-1"]))["ch-1"]
        return key, seal_value(key, "e-1", "data.summary", "A worry.")

    async def test_shape(self, keys: MemoryDataKeys) -> None:
        """The sealed object has exactly enc, kv, n and ct."""
        _, sealed = await self._sealed(keys)
        assert (sorted(sealed), sealed["enc"], sealed["kv"], is_sealed(sealed)) == (
            ["ct", "enc", "kv", "n"],
            SEALED_ALG,
            1,
            True,
        )
        assert not is_sealed({**sealed, "extra": 1})

    @pytest.mark.parametrize(
        ("event_id", "path"),
        [("e-2", "data.summary"), ("e-1", "data.reason")],
        ids=["other-event", "other-path"],
    )
    async def test_aad_mismatch_fails(self, keys: MemoryDataKeys, event_id: str, path: str) -> None:
        """Moved to another event or field, the value does not open."""
        key, sealed = await self._sealed(keys)
        assert open_value(key, "e-1", "data.summary", sealed) == "A worry."
        with pytest.raises(FieldDecryptionFailed, match=f"sealed field {path} of event {event_id}"):
            open_value(key, event_id, path, sealed)

    async def test_another_childs_key_fails(self, keys: MemoryDataKeys) -> None:
        """Another child's key (same version number) does not open it."""
        _, sealed = await self._sealed(keys)
        other = (await keys.current_keys(["ch-2"]))["ch-2"]
        with pytest.raises(FieldDecryptionFailed):
            open_value(other, "e-1", "data.summary", sealed)

    @pytest.mark.parametrize(
        "change", [{"ct": "AAAA"}, {"n": "not base64!"}, {"ct": 5}], ids=["ct", "nonce", "type"]
    )
    async def test_tampering_fails(self, keys: MemoryDataKeys, change: dict[str, Any]) -> None:
        """Changed ciphertext or nonce is detected, never silently wrong."""
        key, sealed = await self._sealed(keys)
        with pytest.raises(FieldDecryptionFailed):
            open_value(key, "e-1", "data.summary", {**sealed, **change})

    async def test_document_moved_to_another_child_fails(self, cipher: FieldCipher) -> None:
        """An envelope sealed for one child does not open as another's."""
        sealed = await cipher.seal_envelope("ch-1", example_envelope())
        await cipher.seal_envelope("ch-2", example_envelope())
        with pytest.raises(FieldDecryptionFailed):
            await cipher.open_envelope("ch-2", sealed)


class TestVersionsAndErasure:
    """Every key version stays readable until the child's keys are destroyed."""

    async def test_versions_1_and_2_both_open(
        self, keys: MemoryDataKeys, cipher: FieldCipher
    ) -> None:
        """After a child key rotation old events open and new ones use version 2."""
        old = await cipher.seal_envelope("ch-1", example_envelope(id="e-1"))
        keys.rotate_child_key("ch-1")
        new = await cipher.seal_envelope("ch-1", example_envelope(id="e-2"))
        assert {s["kv"] for _, s in sealed_paths(old)} == {1}
        assert {s["kv"] for _, s in sealed_paths(new)} == {2}
        assert (await cipher.open_envelope("ch-1", old))["id"] == "e-1"
        assert (await cipher.open_envelope("ch-1", new))["id"] == "e-2"

    async def test_destroyed_key_raises_and_redaction_shows_the_gap(
        self, keys: MemoryDataKeys, cipher: FieldCipher
    ) -> None:
        """After destruction opening raises KeyDestroyed; redact_sealed lists what is gone."""
        sealed = await cipher.seal_envelope("ch-1", example_envelope())
        keys.destroy_child_key("ch-1")
        with pytest.raises(KeyDestroyed, match="data key 1 of child ch-1 was destroyed"):
            await cipher.open_envelope("ch-1", sealed)
        shown, erased = redact_sealed(sealed, marker="[erased]")
        assert erased == [*PERSON_PATHS, "data.summary"]
        assert shown["data"] == {
            "category": "domestic_abuse",
            "risk_level": "high",
            "summary": "[erased]",
            "raised_by_role": "attending officer",
        }

    async def test_decrypt_fields_of_a_plain_payload_is_a_copy(self, cipher: FieldCipher) -> None:
        """A payload with nothing sealed comes back equal."""
        data = {"a": [1, {"b": None}]}
        assert await cipher.decrypt_fields("ch-1", data, event_id="e-1") == data

    async def test_encrypt_fields_on_a_payload(self, cipher: FieldCipher) -> None:
        """Nested paths and list wildcards address values inside any payload."""
        payload = {"summary": "x", "people": [{"name": "A"}, {"name": "B"}], "n": 1}
        sealed = await cipher.encrypt_fields(
            "ch-1", payload, ["summary", "people.*.name", "missing.path"], event_id="e-1"
        )
        assert [p for p, _ in sealed_paths(sealed)] == ["summary", "people.0.name", "people.1.name"]
        assert await cipher.decrypt_fields("ch-1", sealed, event_id="e-1") == payload

    async def test_seal_paths_is_pure(self, keys: MemoryDataKeys) -> None:
        """The synchronous form needs only a key (for batch paths and benchmarks)."""
        key = (await keys.current_keys(["ch-1"]))["ch-1"]
        sealed = seal_paths(key, "e-1", {"a": {"b": "c"}}, ["a.b"])
        assert open_value(key, "e-1", "a.b", sealed["a"]["b"]) == "c"


class TestOpeningOnce:
    """One walk opens an envelope and names its key."""

    async def test_keyed_opening_gives_the_envelope_and_the_key_for_more(
        self, keys: MemoryDataKeys, cipher: FieldCipher
    ) -> None:
        """The plain envelope is what open_envelope gives; the key is the newest version used."""
        sealed = await cipher.seal_envelope("ch-1", example_envelope(id="e-1"))
        keys.rotate_child_key("ch-1")
        mixed = await cipher.encrypt_fields("ch-1", sealed, ["data.category"], event_id="e-1")
        plain, key = await cipher.open_envelope_keyed("ch-1", mixed)
        assert plain == example_envelope(id="e-1")
        assert (key.child_id, key.version) == ("ch-1", 2)
        assert key == await keys.data_key("ch-1", 2)

    async def test_keyed_opening_of_a_plain_envelope_gives_the_current_key(
        self, cipher: FieldCipher
    ) -> None:
        """Nothing sealed: the envelope comes back equal, with the child's current key."""
        plain, key = await cipher.open_envelope_keyed("ch-1", example_envelope())
        assert (plain, key.child_id, key.version) == (example_envelope(), "ch-1", 1)


class TestWireCompatibility:
    """Values sealed by earlier code (the same ``{enc, kv, n, ct}`` shape) still open."""

    async def test_a_value_sealed_with_base64_module_encoding_opens(
        self, keys: MemoryDataKeys
    ) -> None:
        """Standard padded base64 of nonce and ciphertext, as the first version wrote it."""
        key = (await keys.current_keys(["ch-1"]))["ch-1"]
        nonce = bytes(range(12))
        aad = b"safeguarding-hub/field/v1\x1fch-1\x1fe-1\x1fdata.summary"
        ct = key.aead.encrypt(nonce, json.dumps("A worry.").encode(), aad)
        old = {
            "enc": SEALED_ALG,
            "kv": 1,
            "n": base64.b64encode(nonce).decode(),
            "ct": base64.b64encode(ct).decode(),
        }
        assert open_value(key, "e-1", "data.summary", old) == "A worry."
        assert seal_value(key, "e-1", "data.summary", "A worry.").keys() == old.keys()

    async def test_base64_that_is_not_strict_is_refused(self, keys: MemoryDataKeys) -> None:
        """A cut value or characters outside the alphabet fail as tampering."""
        key = (await keys.current_keys(["ch-1"]))["ch-1"]
        sealed = seal_value(key, "e-1", "data.summary", "A worry.")
        for bad in (sealed["n"][:-1], sealed["n"] + "\n", "*" + sealed["n"][1:]):
            with pytest.raises(FieldDecryptionFailed):
                open_value(key, "e-1", "data.summary", {**sealed, "n": bad})


class TestSealingPathsOnce:
    """Sealing copies each container once; nested paths keep their sequential meaning."""

    async def test_policy_paths_seal_as_one_path_at_a_time(self, keys: MemoryDataKeys) -> None:
        """The tree walk seals the same paths as sealing each path in turn."""
        key = (await keys.current_keys(["ch-1"]))["ch-1"]
        env = example_envelope()
        sealed = seal_paths(key, "e-1", env, sensitive_paths(env))
        assert [p for p, _ in sealed_paths(sealed)] == [*PERSON_PATHS, "data.summary"]
        assert env == example_envelope()

    @pytest.mark.parametrize(
        ("paths", "inner_sealed"),
        [(["a", "a.b"], False), (["a.b", "a"], True)],
        ids=["outer-first", "inner-first"],
    )
    async def test_a_path_inside_another_is_sealed_in_order(
        self, keys: MemoryDataKeys, paths: list[str], inner_sealed: bool
    ) -> None:
        """Outer first: the inner path finds it sealed; inner first: both are sealed."""
        key = (await keys.current_keys(["ch-1"]))["ch-1"]
        sealed = seal_paths(key, "e-1", {"a": {"b": "c"}}, paths)
        outer = open_value(key, "e-1", "a", sealed["a"])
        assert is_sealed(outer["b"]) is inner_sealed
