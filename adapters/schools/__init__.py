"""Schools adapter: Common Transfer File XML and safeguarding-concern CSV to hub envelopes."""

from __future__ import annotations

from datetime import datetime

from adapters.common import AdapterResult, AgencyRef, run_reader
from adapters.schools.formats.concerns_csv import parse_concerns_csv
from adapters.schools.formats.ctf import parse_ctf

__all__ = ["CONTENT_TYPES", "parse"]

_READERS = {
    "application/xml": parse_ctf,
    "text/xml": parse_ctf,
    "text/csv": parse_concerns_csv,
    "application/csv": parse_concerns_csv,
}
CONTENT_TYPES = tuple(_READERS)
"""Media types this adapter reads: XML is a CTF, CSV a concerns export."""


def parse(body: bytes, content_type: str, agency: AgencyRef, *, now: datetime) -> AdapterResult:
    """Turn a CTF (XML) or a safeguarding-concerns export (CSV) into envelopes.

    Raises UnreadableFile for an unknown content type or a file that cannot be read at all.
    """
    return run_reader("schools", _READERS, body, content_type, agency, now)
