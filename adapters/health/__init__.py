"""Health adapter: FHIR R4 JSON Bundles from NHS trusts and GP practices to hub envelopes."""

from __future__ import annotations

from datetime import datetime

from adapters.common import (
    AdapterResult,
    AgencyRef,
    ResultBuilder,
    UnreadableFile,
    check_now,
    media_type,
)
from adapters.health.formats.fhir_r4 import parse_bundle

__all__ = ["CONTENT_TYPES", "parse"]

CONTENT_TYPES = ("application/fhir+json", "application/json")
"""Media types this adapter reads."""


def parse(body: bytes, content_type: str, agency: AgencyRef, *, now: datetime) -> AdapterResult:
    """Turn a FHIR R4 Bundle into envelopes; bad resources are listed in ``errors``.

    Raises UnreadableFile when the body is not a FHIR JSON Bundle.
    """
    check_now(now)
    if media_type(content_type) not in CONTENT_TYPES:
        raise UnreadableFile(
            f"health adapter reads FHIR R4 JSON ({', '.join(CONTENT_TYPES)}), "
            f"not {media_type(content_type) or 'an unnamed content type'}"
        )
    out = ResultBuilder()
    parse_bundle(body, agency, now, out)
    return out.result
