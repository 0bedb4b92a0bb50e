"""Webhook signatures: HMAC-SHA256 over ``<timestamp>.<body>``, checked with a tolerance."""

from __future__ import annotations

import pytest

from hub.delivery.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureInvalid,
    sign,
    signature_headers,
    verify,
)

pytestmark = pytest.mark.unit

BODY = b'{"a":1}'
SECRET = b"test-secret"
STAMP = 1_700_000_000
# Computed independently: printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac test-secret
EXPECTED = "sha256=8cb2c3355fca388e9ac2caec004f4d5d7045d74937ab5faad61dc11682247a9f"


class TestSign:
    def test_signs_timestamp_dot_body(self) -> None:
        """The signature is HMAC-SHA256 of ``<timestamp>.<body>``, hex, prefixed ``sha256=``."""
        assert sign(BODY, SECRET, STAMP) == EXPECTED

    def test_headers(self) -> None:
        """A signed request carries the timestamp and the signature headers."""
        assert signature_headers(BODY, SECRET, STAMP) == {
            TIMESTAMP_HEADER: "1700000000",
            SIGNATURE_HEADER: EXPECTED,
        }

    def test_timestamp_is_signed(self) -> None:
        """Another timestamp gives another signature (a replay cannot re-date a request)."""
        assert sign(BODY, SECRET, STAMP + 1) != EXPECTED


class TestVerify:
    def headers(self) -> dict[str, str]:
        return {"x-hub-timestamp": "1700000000", "x-hub-signature-256": EXPECTED}

    def test_accepts_a_good_request(self) -> None:
        """A request signed with the secret, within the tolerance, verifies (any header case)."""
        verify(BODY, self.headers(), SECRET, now=STAMP + 299)

    @pytest.mark.parametrize(
        ("body", "secret", "now", "message"),
        [
            (b'{"a":2}', SECRET, STAMP, "signature does not match"),
            (BODY, b"other", STAMP, "signature does not match"),
            (BODY, SECRET, STAMP + 301, "timestamp outside the tolerance window"),
            (BODY, SECRET, STAMP - 301, "timestamp outside the tolerance window"),
        ],
    )
    def test_rejects(self, body: bytes, secret: bytes, now: int, message: str) -> None:
        """A changed body, another secret or a stale timestamp is rejected, saying which."""
        with pytest.raises(SignatureInvalid) as caught:
            verify(body, self.headers(), secret, now=now)
        assert str(caught.value) == message

    def test_rejects_missing_timestamp(self) -> None:
        """A request without a numeric timestamp header is rejected."""
        with pytest.raises(SignatureInvalid) as caught:
            verify(BODY, {SIGNATURE_HEADER: EXPECTED}, SECRET, now=STAMP)
        assert str(caught.value) == "missing or malformed timestamp header"
