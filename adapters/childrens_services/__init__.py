"""Children's services adapter: DfE Children in Need census XML to involvement envelopes."""

from __future__ import annotations

from datetime import datetime

from adapters.childrens_services.formats.cin_census import parse_cin_census
from adapters.common import AdapterResult, AgencyRef, run_reader

__all__ = ["CONTENT_TYPES", "parse"]

_READERS = {media: parse_cin_census for media in ("application/xml", "text/xml")}
CONTENT_TYPES = tuple(_READERS)
"""Media types this adapter reads."""


def parse(body: bytes, content_type: str, agency: AgencyRef, *, now: datetime) -> AdapterResult:
    """Turn a CIN census file into involvement envelopes; rule breaks come back as warnings.

    Raises UnreadableFile when the body is not a CIN census XML file.
    """
    return run_reader(
        "childrens_services", _READERS, body, content_type, agency, now, what="CIN census XML"
    )
