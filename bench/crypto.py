"""Per-event cost of the hub's cryptography: sign+verify (single and batched) and seal+open.

One core, in process, no I/O: Ed25519 over RFC 8785 canonical JSON of a ~550-byte envelope
(the ``concern.raised`` example without person details), a batch of 500 signed once over
per-record digests, and AES-256-GCM sealing of the policy's sensitive fields under a cached
child data key. Prints plain lines and, last, one JSON line with every figure.

Usage::

    .venv/bin/python bench/crypto.py [--events 5000] [--batch 500]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from contracts.examples import example_envelope, valid_nhs_number
from hub.crypto.agency_keys import AgencyKeyRing, dev_key_id, dev_private_key
from hub.crypto.data_keys import DataKey
from hub.crypto.encryption import open_value, seal_paths, sealed_paths
from hub.crypto.policy import sensitive_paths
from hub.crypto.signing import sign_batch, sign_envelope, verify_batch, verify_envelope

AGENCY = "northshire-police"
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def event(i: int) -> dict[str, Any]:
    """A ~550-byte concern envelope (one identifier, birth date, postcode)."""
    env = example_envelope(id=f"{AGENCY}:evt-{i:06d}")
    env["person"] = {
        "identifiers": [{"system": "nhs", "value": valid_nhs_number(i % 1000)}],
        "birth_date": "2015-06-01",
        "address": {"postcode": "ZZ99 3ZZ"},
    }
    for key in ("consent_ref", "supersedes", "signature", "key_id", "subject", "datacontenttype"):
        env.pop(key)
    env["data"]["summary"] = "Officers attended a domestic incident; the child was present."
    return env


def per_event_us(run: Callable[[], object], events: int) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) / events * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    n, batch = args.events, args.batch
    events = [event(i) for i in range(n)]
    size = len(json.dumps(events[0], separators=(",", ":")).encode())
    private, key_id = dev_private_key(AGENCY), dev_key_id(AGENCY)
    ring = AgencyKeyRing.development([AGENCY])

    signed = [sign_envelope(e, private, key_id) for e in events[:200]]  # warm-up
    sign_us = per_event_us(lambda: [sign_envelope(e, private, key_id) for e in events], n)
    signed = [sign_envelope(e, private, key_id) for e in events]
    verify_us = per_event_us(lambda: [verify_envelope(e, ring, now=NOW) for e in signed], n)

    chunks = [events[i : i + batch] for i in range(0, n, batch)]
    manifests = [sign_batch(c, private, key_id=key_id, agency_id=AGENCY) for c in chunks]
    batch_sign_us = per_event_us(
        lambda: [sign_batch(c, private, key_id=key_id, agency_id=AGENCY) for c in chunks], n
    )
    batch_verify_us = per_event_us(
        lambda: [verify_batch(m, c, ring, now=NOW) for m, c in zip(manifests, chunks, strict=True)],
        n,
    )

    message = json.dumps(events[0], separators=(",", ":")).encode()
    signature = private.sign(message)
    public = private.public_key()
    raw_sign_us = per_event_us(lambda: [private.sign(message) for _ in range(n)], n)
    raw_verify_us = per_event_us(lambda: [public.verify(signature, message) for _ in range(n)], n)
    aead = AESGCM(AESGCM.generate_key(256))
    nonce = bytes(12)
    raw_gcm_us = per_event_us(lambda: [aead.encrypt(nonce, message, None) for _ in range(n)], n)

    keys = {c: DataKey(f"ch-{c}", 1, AESGCM(AESGCM.generate_key(256))) for c in range(50)}
    paths = [sensitive_paths(e) for e in events]
    seal_us = per_event_us(
        lambda: [
            seal_paths(keys[i % 50], e["id"], e, p)
            for i, (e, p) in enumerate(zip(events, paths, strict=True))
        ],
        n,
    )
    sealed = [
        seal_paths(keys[i % 50], e["id"], e, p)
        for i, (e, p) in enumerate(zip(events, paths, strict=True))
    ]
    open_us = per_event_us(
        lambda: [
            [open_value(keys[i % 50], s["id"], path, v) for path, v in sealed_paths(s)]
            for i, s in enumerate(sealed)
        ],
        n,
    )
    figures = {
        "event_bytes": size,
        "sealed_event_bytes": len(json.dumps(sealed[0], separators=(",", ":")).encode()),
        "sealed_fields_per_event": len(sealed_paths(sealed[0])),
        "sign_us": round(sign_us, 1),
        "verify_us": round(verify_us, 1),
        "sign_verify_us": round(sign_us + verify_us, 1),
        "batch": batch,
        "batch_sign_us_per_event": round(batch_sign_us, 1),
        "batch_verify_us_per_event": round(batch_verify_us, 1),
        "batch_sign_verify_us_per_event": round(batch_sign_us + batch_verify_us, 1),
        "seal_us": round(seal_us, 1),
        "open_us": round(open_us, 1),
        "seal_open_us": round(seal_us + open_us, 1),
        "raw_ed25519_sign_us": round(raw_sign_us, 1),
        "raw_ed25519_verify_us": round(raw_verify_us, 1),
        "raw_aesgcm_encrypt_event_us": round(raw_gcm_us, 1),
    }
    print(
        f"event {size} bytes; sealed {figures['sealed_event_bytes']} bytes "
        f"({figures['sealed_fields_per_event']} sealed fields)"
    )
    print(
        f"single: sign {sign_us:.1f} us + verify {verify_us:.1f} us = "
        f"{sign_us + verify_us:.1f} us/event ({1e6 / (sign_us + verify_us):,.0f} events/s)"
    )
    print(
        f"batch of {batch}: sign {batch_sign_us:.1f} us + verify {batch_verify_us:.1f} us = "
        f"{batch_sign_us + batch_verify_us:.1f} us/event "
        f"({1e6 / (batch_sign_us + batch_verify_us):,.0f} events/s)"
    )
    print(
        f"fields: seal {seal_us:.1f} us + open {open_us:.1f} us = {seal_us + open_us:.1f} us/event "
        f"({1e6 / (seal_us + open_us):,.0f} events/s)"
    )
    print(
        f"baseline: raw Ed25519 sign {raw_sign_us:.1f} us, verify {raw_verify_us:.1f} us; "
        f"raw AES-GCM of the whole event {raw_gcm_us:.1f} us"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
