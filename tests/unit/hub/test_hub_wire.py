"""Wire shapes the hub writes: the content hash used for de-duplication and dead letters."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from contracts import FieldError
from hub.streams.wire import DeadLetter, DeadLetterReason, DeadLetterSource, content_hash

pytestmark = pytest.mark.unit


class TestContentHash:
    """The hash of a message's content, not of its spelling."""

    def test_key_order_and_whitespace_do_not_matter(self) -> None:
        """Reordered keys and different spacing hash the same."""
        compact = b'{"a":1,"b":{"c":[1,2],"d":"x"}}'
        spaced = b'{\n  "b": {"d": "x", "c": [1, 2]},\n  "a": 1\n}'
        assert content_hash(compact) == content_hash(spaced)

    def test_hash_is_sha256_of_canonical_json(self) -> None:
        """The hash is SHA-256 of the sorted, compact JSON."""
        expected = hashlib.sha256(b'{"a":1,"b":2}').hexdigest()
        assert content_hash(b'{ "b": 2, "a": 1 }') == expected

    def test_different_content_differs(self) -> None:
        """A changed value, or a changed list order, changes the hash."""
        assert content_hash(b'{"a":1}') != content_hash(b'{"a":2}')
        assert content_hash(b'{"a":[1,2]}') != content_hash(b'{"a":[2,1]}')

    @pytest.mark.parametrize(
        "raw", [b"not json at all", b"\xff\xfe\x00garbage", b"", b'{"a":'], ids=repr
    )
    def test_non_json_bytes_hash_raw(self, raw: bytes) -> None:
        """Bytes that are not JSON hash as they are."""
        assert content_hash(raw) == hashlib.sha256(raw).hexdigest()

    def test_deeply_nested_bytes_hash_raw(self) -> None:
        """Bytes nested too deeply to parse hash as they are, rather than raising."""
        raw = b"[" * 100_000
        assert content_hash(raw) == hashlib.sha256(raw).hexdigest()


class TestDeadLetter:
    """A dead letter keeps the original bytes whole and survives a JSON round trip."""

    ORIGINAL = b'{"id": "evt-1", \xff not json'

    def letter(self) -> DeadLetter:
        return DeadLetter(
            dlq_id="00000000000000000000000000000001",
            reason=DeadLetterReason.contract_invalid,
            detail="the envelope does not meet the contract",
            errors=(FieldError(loc="lawful_basis", msg="Field required", type="missing"),),
            processor="ingest",
            event_id="evt-1",
            source=DeadLetterSource(topic="t.ingest.police", partition=2, offset=41, key="k-1"),
            failed_at=datetime(2024, 3, 5, 9, 0, tzinfo=UTC),
            original_b64=DeadLetter.encode_original(self.ORIGINAL),
        )

    def test_json_round_trip(self) -> None:
        """Serialised and parsed back, a dead letter is equal to itself."""
        letter = self.letter()
        assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter

    def test_original_bytes(self) -> None:
        """``original`` gives back the exact bytes, even when they are not text."""
        assert self.letter().original == self.ORIGINAL

    def test_wire_form(self) -> None:
        """The JSON form: reason as its value, errors as objects, original as base64."""
        assert json.loads(self.letter().model_dump_json()) == {
            "dlq_id": "00000000000000000000000000000001",
            "reason": "contract_invalid",
            "detail": "the envelope does not meet the contract",
            "errors": [{"loc": "lawful_basis", "msg": "Field required", "type": "missing"}],
            "processor": "ingest",
            "event_id": "evt-1",
            "source": {"topic": "t.ingest.police", "partition": 2, "offset": 41, "key": "k-1"},
            "failed_at": "2024-03-05T09:00:00Z",
            "original_b64": "eyJpZCI6ICJldnQtMSIsIP8gbm90IGpzb24=",
            "original_sealed": None,
        }

    def test_exactly_one_original(self) -> None:
        """A letter carries its original either sealed or (legacy) in base64, never both."""
        fields = self.letter().model_dump()
        with pytest.raises(ValidationError, match="exactly one"):
            DeadLetter(**{**fields, "original_sealed": {"enc": "x"}})
        with pytest.raises(ValidationError, match="exactly one"):
            DeadLetter(**{**fields, "original_b64": None})

    def test_sealed_letter_has_no_plain_original(self) -> None:
        """``original`` refuses a sealed letter rather than guessing."""
        fields = {**self.letter().model_dump(), "original_b64": None, "original_sealed": {}}
        with pytest.raises(ValueError, match="sealed"):
            _ = DeadLetter(**fields).original

    def test_headers(self) -> None:
        """Headers carry the reason and id so tools can filter without decoding."""
        assert self.letter().headers() == {
            "x-dlq-reason": "contract_invalid",
            "x-dlq-id": "00000000000000000000000000000001",
        }
