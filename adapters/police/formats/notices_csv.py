"""Public protection notices as CSV: one row per person, rows of one incident share its ref.

Incident columns (``incident_type``, ``occurred_at``, ``location``, ``risk_level``,
``dash_ticks``, ``summary``, ``officer_role``) are read from the incident's first row; person
columns (``person_ref``, ``role``, ``forename``, ``surname``, ``date_of_birth``, ``sex``,
``nhs_number``, ``address``, ``postcode``) from every row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters.common import AgencyRef, RecordProblem, ResultBuilder, parse_datetime, read_csv
from adapters.police.formats.notice import Notice, add_notice, grade, incident_type, person_from

__all__ = ["REQUIRED_COLUMNS", "parse_notices_csv"]

REQUIRED_COLUMNS = {"incident_ref", "incident_type", "occurred_at", "role"}


def _address(row: dict[str, str]) -> dict[str, Any] | None:
    lines = [p.strip() for p in (row.get("address") or "").split(",") if p.strip()]
    postcode = (row.get("postcode") or "").strip() or None
    return {"lines": lines, "postcode": postcode} if lines or postcode else None


def parse_notices_csv(body: bytes, agency: AgencyRef, now: datetime, out: ResultBuilder) -> None:
    """Group rows by incident, then map each incident's children (errors per row/incident)."""
    incidents: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for number, row in read_csv(body, "police notices CSV", REQUIRED_COLUMNS):
        ref = row.get("incident_ref", "")
        if not ref:
            out.reject(f"row {number}", "incident_ref", "is missing")
            continue
        incidents.setdefault(ref, []).append((number, row))

    for ref, rows in incidents.items():
        first_number, first = rows[0]
        span = f"rows {first_number}-{rows[-1][0]}" if len(rows) > 1 else f"row {first_number}"
        locator = f"incident {ref} ({span})"
        with out.record(locator):
            level, ticks = grade(first.get("risk_level"), first.get("dash_ticks"))
            notice = Notice(
                locator=locator,
                ref=ref,
                incident_type=incident_type(first.get("incident_type")),
                occurred_at=parse_datetime(first.get("occurred_at"), "occurred_at"),
                location=first.get("location") or None,
                grade=level,
                dash_ticks=ticks,
                summary=first.get("summary") or None,
                officer_role=first.get("officer_role") or None,
            )
            for number, row in rows:
                for column in ("incident_type", "occurred_at"):
                    if row.get(column) and row[column] != first[column]:
                        out.warn(
                            f"row {number}",
                            column,
                            "differs from the incident's first row; first row used",
                        )
                try:
                    notice.persons.append(person_from(f"row {number}", row, _address(row)))
                except RecordProblem as problem:
                    out.reject(f"row {number}", problem.field, problem.reason)
            add_notice(notice, agency, now, out)
