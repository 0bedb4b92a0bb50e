"""Children's services adapter: CIN census XML, SSDA903 episodes and worker allocations.

XML is the DfE Children in Need census; CSV is either the SSDA903 looked-after episodes
table or a worker allocations export, told apart by the header row.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime

from adapters.childrens_services.formats import allocations, ssda903_episodes
from adapters.childrens_services.formats.cin_census import parse_cin_census
from adapters.common import AdapterResult, AgencyRef, ResultBuilder, UnreadableFile, run_reader

__all__ = ["CONTENT_TYPES", "parse"]


def _header(body: bytes) -> set[str]:
    """The CSV's header names, normalised as ``read_csv`` does them."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnreadableFile("children's services CSV is not UTF-8 text") from None
    if "\x00" in text:
        raise UnreadableFile("children's services CSV is binary, not CSV text")
    try:
        first = next(csv.reader(io.StringIO(text, newline="")), None) or []
    except csv.Error as exc:
        raise UnreadableFile(f"children's services CSV cannot be read as CSV ({exc})") from None
    return {h.strip().lower().replace(" ", "_") for h in first}


def _parse_csv(body: bytes, agency: AgencyRef, now: datetime, out: ResultBuilder) -> None:
    """Read the CSV as SSDA903 episodes or as worker allocations, by its header row."""
    header = _header(body)
    if header >= ssda903_episodes.REQUIRED_COLUMNS:
        ssda903_episodes.parse_episodes(body, agency, now, out)
    elif header >= allocations.REQUIRED_COLUMNS:
        allocations.parse_allocations(body, agency, now, out)
    else:
        episodes = ", ".join(c.upper() for c in sorted(ssda903_episodes.REQUIRED_COLUMNS))
        allocated = ", ".join(sorted(allocations.REQUIRED_COLUMNS))
        raise UnreadableFile(
            "children's services CSV has neither header row: SSDA903 episodes need "
            f"{episodes}; worker allocations need {allocated}"
        )


_READERS = {
    "application/xml": parse_cin_census,
    "text/xml": parse_cin_census,
    "text/csv": _parse_csv,
    "application/csv": _parse_csv,
}
CONTENT_TYPES = tuple(_READERS)
"""Media types this adapter reads."""


def parse(body: bytes, content_type: str, agency: AgencyRef, *, now: datetime) -> AdapterResult:
    """Turn a children's services file into involvement envelopes; rule breaks are warnings.

    Raises UnreadableFile for an unknown content type, or a file that is not a CIN census,
    SSDA903 episodes or worker allocations file.
    """
    return run_reader(
        "childrens_services",
        _READERS,
        body,
        content_type,
        agency,
        now,
        what="CIN census XML, SSDA903 episodes CSV or worker allocations CSV",
    )
