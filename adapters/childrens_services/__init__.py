"""Children's services adapter: DfE Children in Need census XML to involvement envelopes."""

from __future__ import annotations

from datetime import datetime

from adapters.childrens_services.formats.cin_census import parse_cin_census
from adapters.common import (
    AdapterResult,
    AgencyRef,
    ResultBuilder,
    UnreadableFile,
    check_now,
    media_type,
)

__all__ = ["CONTENT_TYPES", "parse"]

CONTENT_TYPES = ("application/xml", "text/xml")
"""Media types this adapter reads."""


def parse(body: bytes, content_type: str, agency: AgencyRef, *, now: datetime) -> AdapterResult:
    """Turn a CIN census file into involvement envelopes; rule breaks come back as warnings.

    Raises UnreadableFile when the body is not a CIN census XML file.
    """
    check_now(now)
    if media_type(content_type) not in CONTENT_TYPES:
        raise UnreadableFile(
            f"childrens_services adapter reads CIN census XML ({', '.join(CONTENT_TYPES)}), "
            f"not {media_type(content_type) or 'an unnamed content type'}"
        )
    out = ResultBuilder()
    parse_cin_census(body, agency, now, out)
    return out.result
