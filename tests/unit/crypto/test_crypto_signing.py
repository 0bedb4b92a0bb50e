"""Specification of signed submissions: canonical JSON, envelope and batch signatures."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.examples import example_envelope
from hub.crypto.agency_keys import AgencyKeyRing, AgencyPublicKey, KeyState, dev_private_key
from hub.crypto.signing import (
    BatchManifest,
    RejectionReason,
    SignatureRejected,
    VerifiedBatch,
    VerifiedSignature,
    canonical_json,
    record_digest,
    sign_batch,
    sign_envelope,
    verify_batch,
    verify_envelope,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
POLICE = "northshire-police"
HEALTH = "northshire-health"
POLICE_KEY = dev_private_key(POLICE)
POLICE_OLD_KEY = dev_private_key("northshire-police-old")
HEALTH_KEY = dev_private_key(HEALTH)


def ring() -> AgencyKeyRing:
    """Police rotated on 1 May 2026 (30 days' grace); health has one key from 2027."""
    return AgencyKeyRing(
        [
            AgencyPublicKey(
                "police-2025",
                POLICE,
                POLICE_OLD_KEY.public_key(),
                valid_from=datetime(2025, 1, 1, tzinfo=UTC),
                retired_at=datetime(2026, 5, 1, tzinfo=UTC),
                grace=timedelta(days=45),
            ),
            AgencyPublicKey(
                "police-2026", POLICE, POLICE_KEY.public_key(), datetime(2026, 5, 1, tzinfo=UTC)
            ),
            AgencyPublicKey(
                "health-2027", HEALTH, HEALTH_KEY.public_key(), datetime(2027, 1, 1, tzinfo=UTC)
            ),
        ]
    )


def signed(key: Ed25519PrivateKey = POLICE_KEY, key_id: str = "police-2026", **over: Any) -> dict:
    return sign_envelope(example_envelope(**over), key, key_id)


class TestCanonicalJson:
    """The signed bytes are RFC 8785 canonical JSON without signature and key_id."""

    def test_sorted_compact_utf8_without_signature_fields(self) -> None:
        """Keys sorted, no whitespace, non-ASCII kept as UTF-8, signature/key_id left out."""
        doc = {"b": 1, "a": {"z": "é", "y": [True, None]}, "signature": "x", "key_id": "k"}
        assert canonical_json(doc) == '{"a":{"y":[true,null],"z":"é"},"b":1}'.encode()

    @pytest.mark.parametrize(
        "doc",
        [
            {"n": 1.0, "m": 1e21, "s": 1e-7, "t": 0.1, "u": -0.0},
            {"ctl": '\x00\x1f\x7f\u2028\b\t\n\f\r"\\'},
            {"é": 1, "e": 2, "\U0001f600": 3, "\ufb01": 4},
            {"big": 2**53 - 1, "neg": -(2**53) + 1, "nested": [{"b": 1, "a": [1.5]}]},
            example_envelope(),
            {"deep": [{"a": [{"b": [1, 2, {"c": 2.5}]}]}], "x": "y"},
            {"k": ["\U0001f600 emoji", "e\u0301 combining", "\u00e9\u4e2d\u6587", "\ufeff", ""]},
            {"outer": {"\u00e9t\u00e9": {"z": 1}, "ete": 2}, "a": {}, "b": []},
            {"\ue000": 1, "\U00010000": 2},
            {"t": (1, "two", None), "flags": [True, False, 0, 1], "neg": -5},
            {"exp": [1e16, 1e-6, 123456789.125, 5e-324, 1.7976931348623157e308]},
        ],
        ids=[
            "floats",
            "control-chars",
            "non-ascii-keys",
            "ints",
            "envelope",
            "float-deep-in-lists",
            "unicode-values",
            "nested-non-ascii-keys",
            "utf16-key-order",
            "tuples-bools-ints",
            "float-exponents",
        ],
    )
    def test_matches_the_reference_implementation(self, doc: dict[str, Any]) -> None:
        """Fast path or not, the bytes equal those of the rfc8785 library."""
        unsigned = {k: v for k, v in doc.items() if k not in ("signature", "key_id")}
        assert canonical_json(doc) == rfc8785.dumps(unsigned)

    @settings(max_examples=300, deadline=None)
    @given(
        doc=st.dictionaries(
            st.text(max_size=6),
            st.recursive(
                st.none()
                | st.booleans()
                | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
                | st.floats(allow_nan=False, allow_infinity=False)
                | st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
                lambda inner: (
                    st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=4)
                ),
                max_leaves=20,
            ),
            max_size=6,
        )
    )
    def test_matches_the_reference_on_any_json_document(self, doc: dict[str, Any]) -> None:
        """Any JSON object (floats, unicode keys and text, nesting) canonicalises as rfc8785."""
        unsigned = {k: v for k, v in doc.items() if k not in ("signature", "key_id")}
        assert canonical_json(doc) == rfc8785.dumps(unsigned)

    @settings(max_examples=200, deadline=None)
    @given(
        wide=st.lists(
            st.none()
            | st.booleans()
            | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
            | st.lists(st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1), max_size=3)
            | st.dictionaries(
                st.text(max_size=4), st.integers(-(2**53) + 1, 2**53 - 1), max_size=3
            ),
            min_size=33,
            max_size=80,
        ),
        pad=st.sampled_from(["id", 7, None, True]),
    )
    def test_long_lists_match_the_reference(self, wide: list[Any], pad: Any) -> None:
        """Lists long enough to be checked by their kinds of value (an audit record's ids and
        indexes) canonicalise as rfc8785, mixed or all of one kind."""
        for doc in (
            {"wide": wide},
            {"ids": [pad] * 40, "tail": wide},
            {"d": dict.fromkeys((f"k{i}" for i in range(40)), pad)},
        ):
            assert canonical_json(doc) == rfc8785.dumps(doc)

    @pytest.mark.parametrize(
        "doc",
        [
            {"ids": [1] * 40 + [2**53]},
            {"ids": ["a"] * 40 + [1.0]},
            {"ids": ["a"] * 40 + [{"\u00e9": 1, "e": 2.5}]},
            {"d": {**{f"k{i}": 1 for i in range(40)}, "f": -(2**60)}},
        ],
        ids=["long-int-list-too-big", "long-list-float", "long-list-float-in-dict", "wide-dict"],
    )
    def test_long_lists_with_what_the_fast_path_cannot_carry(self, doc: dict[str, Any]) -> None:
        """A long list holding a float or an unsafe integer is not taken as plain."""
        try:
            expected = rfc8785.dumps(doc)
        except rfc8785.CanonicalizationError:
            with pytest.raises(ValueError):
                canonical_json(doc)
        else:
            assert canonical_json(doc) == expected

    def test_what_orjson_refuses_but_the_reference_takes_is_canonicalised(self) -> None:
        """Keys of a str subclass and nesting deeper than orjson goes still canonicalise."""

        class Code(StrEnum):
            a = "a"

        deep: Any = "leaf"
        for _ in range(300):
            deep = [deep]
        for doc in ({"d": {Code.a: 1}}, {"deep": deep}):
            assert canonical_json(doc) == rfc8785.dumps(doc)

    @pytest.mark.parametrize(
        "doc",
        [{"big": 2**53}, {"n": [{"neg": -(2**60)}]}, {"x": "\ud800"}, {"k": {1: "x"}}],
        ids=["int-too-big", "nested-int-too-small", "lone-surrogate", "key-not-text"],
    )
    def test_what_the_reference_refuses_is_refused(self, doc: dict[str, Any]) -> None:
        """A document rfc8785 cannot canonicalise raises ValueError, never other bytes."""
        with pytest.raises(ValueError):
            canonical_json(doc)

    def test_nan_is_refused(self) -> None:
        """A value JSON cannot carry raises ValueError."""
        with pytest.raises(ValueError, match="cannot be canonicalised"):
            canonical_json({"x": float("nan")})


class TestVerifyEnvelope:
    """An envelope verifies only with a live key of its own agency and unaltered content."""

    def test_a_good_signature_verifies(self) -> None:
        """The result names agency, key, key state and the digest of the signed bytes."""
        env = signed()
        digest = hashlib.sha256(canonical_json(env)).hexdigest()
        assert verify_envelope(env, ring(), now=NOW) == VerifiedSignature(
            POLICE, "police-2026", KeyState.valid, digest
        )

    def test_reserialised_json_still_verifies(self) -> None:
        """Key order and whitespace added in transit do not matter."""
        env = json.loads(json.dumps(dict(reversed(list(signed().items()))), indent=2))
        assert verify_envelope(env, ring(), now=NOW).key_id == "police-2026"

    @pytest.mark.parametrize(
        ("env", "reason"),
        [
            (example_envelope(), RejectionReason.unsigned),
            ({**signed(), "key_id": None}, RejectionReason.unsigned),
            ({**signed(), "signature": ""}, RejectionReason.unsigned),
            (signed(key_id="police-1999"), RejectionReason.unknown_key),
            (signed(HEALTH_KEY, "health-2027"), RejectionReason.key_of_another_agency),
            ({**signed(), "agency_id": HEALTH}, RejectionReason.key_of_another_agency),
            ({**signed(), "agency_id": 7}, RejectionReason.key_of_another_agency),
            (signed(HEALTH_KEY, "police-2026"), RejectionReason.signature_invalid),
            ({**signed(), "signature": "!!not base64!!"}, RejectionReason.signature_invalid),
            ({**signed(), "signature": "AAAA"}, RejectionReason.signature_invalid),
            ({**signed(), "signature": 12}, RejectionReason.signature_invalid),
            ({**signed(), "id": "northshire-police:evt-9999"}, RejectionReason.signature_invalid),
            (
                {**signed(), "data": {**signed()["data"], "risk_level": "low"}},
                RejectionReason.signature_invalid,
            ),
            (
                {**signed(), "person": {**signed()["person"], "birth_date": "2016-06-01"}},
                RejectionReason.signature_invalid,
            ),
            ({**signed(), "extra": True}, RejectionReason.signature_invalid),
            ({**signed(), "x": float("nan")}, RejectionReason.signature_invalid),
        ],
        ids=[
            "no-signature",
            "no-key-id",
            "empty-signature",
            "unknown-key",
            "other-agencys-key",
            "speaks-for-another-agency",
            "agency-not-text",
            "forged",
            "garbage-signature",
            "short-signature",
            "signature-not-text",
            "id-changed",
            "payload-field-changed",
            "person-changed",
            "field-added",
            "not-canonicalisable",
        ],
    )
    def test_rejections(self, env: dict[str, Any], reason: RejectionReason) -> None:
        """Each fault is rejected with its machine-readable reason."""
        with pytest.raises(SignatureRejected) as caught:
            verify_envelope(env, ring(), now=NOW)
        assert caught.value.reason is reason

    def test_health_key_is_of_another_agency_even_before_it_is_valid(self) -> None:
        """Scope is checked before validity: the agency mismatch is the reason given."""
        with pytest.raises(SignatureRejected) as caught:
            verify_envelope(signed(HEALTH_KEY, "health-2027"), ring(), now=NOW)
        assert (caught.value.reason, caught.value.agency_id, caught.value.key_id) == (
            RejectionReason.key_of_another_agency,
            POLICE,
            "health-2027",
        )

    def test_a_key_before_its_valid_from_is_refused(self) -> None:
        """A registered key used before valid_from is rejected as key_not_yet_valid."""
        env = sign_envelope(
            example_envelope(agency_id=HEALTH, agency_kind="health"), HEALTH_KEY, "health-2027"
        )
        with pytest.raises(SignatureRejected) as caught:
            verify_envelope(env, ring(), now=NOW)
        assert caught.value.reason is RejectionReason.key_not_yet_valid


class TestRotation:
    """A retired key verifies until retired_at + grace; the new key from its valid_from."""

    RETIRED = datetime(2026, 5, 1, tzinfo=UTC)

    @pytest.mark.parametrize(
        ("now", "state"),
        [
            (RETIRED - timedelta(seconds=1), KeyState.valid),
            (RETIRED, KeyState.in_grace),
            (RETIRED + timedelta(days=45, seconds=-1), KeyState.in_grace),
        ],
        ids=["before-retirement", "at-retirement", "last-second-of-grace"],
    )
    def test_old_key_verifies_until_grace_ends(self, now: datetime, state: KeyState) -> None:
        """The old key's signatures still verify, reporting whether it is in grace."""
        env = signed(POLICE_OLD_KEY, "police-2025")
        assert verify_envelope(env, ring(), now=now).key_state is state

    def test_old_key_is_expired_after_grace(self) -> None:
        """At retired_at + grace the old key is refused as key_expired."""
        env = signed(POLICE_OLD_KEY, "police-2025")
        with pytest.raises(SignatureRejected) as caught:
            verify_envelope(env, ring(), now=self.RETIRED + timedelta(days=45))
        assert caught.value.reason is RejectionReason.key_expired
        assert "2026-06-15T00:00:00+00:00" in caught.value.detail

    def test_new_key_verifies_during_the_old_keys_grace(self) -> None:
        """Both keys work in the overlap, so adapters can switch at their own pace."""
        assert verify_envelope(signed(), ring(), now=self.RETIRED).key_state is KeyState.valid


def records(n: int, agency: str = POLICE) -> list[bytes]:
    return [
        json.dumps(example_envelope(id=f"{agency}:evt-{i:04d}", agency_id=agency)).encode()
        for i in range(n)
    ]


class TestBatch:
    """One signature over a manifest of per-record digests proves every record."""

    def test_a_signed_batch_verifies(self) -> None:
        """The result carries the digests, in record order."""
        recs = records(3)
        manifest = sign_batch(recs, POLICE_KEY, key_id="police-2026", agency_id=POLICE)
        assert verify_batch(manifest.to_dict(), recs, ring(), now=NOW) == VerifiedBatch(
            POLICE, "police-2026", KeyState.valid, tuple(record_digest(r) for r in recs)
        )

    def test_records_may_be_reserialised(self) -> None:
        """Digests are over canonical JSON, so parsed dicts verify like the original bytes."""
        recs = records(2)
        manifest = sign_batch(recs, POLICE_KEY, key_id="police-2026", agency_id=POLICE)
        parsed = [json.loads(r) for r in recs]
        assert verify_batch(manifest, parsed, ring(), now=NOW).digests == manifest.digests

    def test_manifest_round_trips(self) -> None:
        """to_dict and from_dict are inverse."""
        manifest = sign_batch(records(2), POLICE_KEY, key_id="police-2026", agency_id=POLICE)
        assert BatchManifest.from_dict(manifest.to_dict()) == manifest

    def _rejected(self, manifest: Any, recs: list[Any]) -> SignatureRejected:
        with pytest.raises(SignatureRejected) as caught:
            verify_batch(manifest, recs, ring(), now=NOW)
        return caught.value

    def test_a_modified_record_is_named(self) -> None:
        """Changing one record breaks that record's digest."""
        recs = records(3)
        manifest = sign_batch(recs, POLICE_KEY, key_id="police-2026", agency_id=POLICE)
        tampered = json.loads(recs[1])
        tampered["data"]["summary"] = "Something else."
        error = self._rejected(manifest, [recs[0], tampered, recs[2]])
        assert (error.reason, error.detail) == (
            RejectionReason.signature_invalid,
            "record 1 does not match its signed digest",
        )

    def test_a_dropped_record_is_refused(self) -> None:
        """The count must match the manifest."""
        recs = records(3)
        manifest = sign_batch(recs, POLICE_KEY, key_id="police-2026", agency_id=POLICE)
        assert self._rejected(manifest, recs[:2]).detail == (
            "the batch signs 3 records but 2 were sent"
        )

    def test_a_forged_manifest_is_refused(self) -> None:
        """A manifest signed by another key under the police key id does not verify."""
        recs = records(2)
        manifest = sign_batch(recs, HEALTH_KEY, key_id="police-2026", agency_id=POLICE)
        assert self._rejected(manifest, recs).reason is RejectionReason.signature_invalid

    def test_a_record_for_another_agency_is_refused(self) -> None:
        """A police batch cannot carry a record that claims to be from health."""
        recs = [*records(1), *records(1, HEALTH)]
        manifest = sign_batch(recs, POLICE_KEY, key_id="police-2026", agency_id=POLICE)
        assert self._rejected(manifest, recs).reason is RejectionReason.key_of_another_agency

    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            ({"type": "hub.submission-batch.v1", "agency_id": POLICE}, RejectionReason.unsigned),
            (
                {
                    "type": "concern.raised",
                    "agency_id": POLICE,
                    "digests": [],
                    "key_id": "k",
                    "signature": "x",
                },
                RejectionReason.signature_invalid,
            ),
            (
                {
                    "type": "hub.submission-batch.v1",
                    "agency_id": POLICE,
                    "digests": [1],
                    "key_id": "k",
                    "signature": "x",
                },
                RejectionReason.signature_invalid,
            ),
        ],
        ids=["unsigned", "wrong-type", "digests-not-text"],
    )
    def test_malformed_manifests(self, raw: dict[str, Any], reason: RejectionReason) -> None:
        """A manifest that is not one is refused before any key is looked up."""
        assert self._rejected(raw, []).reason is reason

    def test_an_envelope_signature_is_not_a_batch_signature(self) -> None:
        """Domain separation: the manifest's type keeps the two signed forms apart."""
        env = signed()
        manifest = {
            "type": "hub.submission-batch.v1",
            "agency_id": POLICE,
            "digests": [],
            "key_id": "police-2026",
            "signature": env["signature"],
        }
        assert self._rejected(manifest, []).reason is RejectionReason.signature_invalid
