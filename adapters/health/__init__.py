"""Health adapter: FHIR R4 JSON Bundles from NHS trusts and GP practices to hub envelopes."""

from __future__ import annotations

from datetime import datetime

from adapters.common import AdapterResult, AgencyRef, run_reader
from adapters.health.formats.fhir_r4 import parse_bundle

__all__ = ["CONTENT_TYPES", "parse"]

_READERS = {media: parse_bundle for media in ("application/fhir+json", "application/json")}
CONTENT_TYPES = tuple(_READERS)
"""Media types this adapter reads."""


def parse(body: bytes, content_type: str, agency: AgencyRef, *, now: datetime) -> AdapterResult:
    """Turn a FHIR R4 Bundle into envelopes; bad resources are listed in ``errors``.

    Raises UnreadableFile when the body is not a FHIR JSON Bundle.
    """
    return run_reader("health", _READERS, body, content_type, agency, now, what="FHIR R4 JSON")
