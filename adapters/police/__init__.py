"""Police adapter: public protection notices (CSV or JSON) to contact and concern envelopes."""

from __future__ import annotations

from datetime import datetime

from adapters.common import AdapterResult, AgencyRef, run_reader
from adapters.police.formats.notices_csv import parse_notices_csv
from adapters.police.formats.notices_json import parse_notices_json

__all__ = ["CONTENT_TYPES", "parse"]

_READERS = {
    "text/csv": parse_notices_csv,
    "application/csv": parse_notices_csv,
    "application/json": parse_notices_json,
}
CONTENT_TYPES = tuple(_READERS)
"""Media types this adapter reads."""


def parse(body: bytes, content_type: str, agency: AgencyRef, *, now: datetime) -> AdapterResult:
    """Turn a file of public protection notices into envelopes, one set per child.

    Raises UnreadableFile for an unknown content type or a file that cannot be read at all.
    """
    return run_reader("police", _READERS, body, content_type, agency, now)
