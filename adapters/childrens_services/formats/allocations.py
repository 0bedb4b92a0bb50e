"""Worker allocations CSV to involvement.changed envelopes naming the lead practitioner.

One row per allocation, as a case-management system exports its worker allocations:
``child_id`` (the LA's child id, the CIN census ``LAchildID`` / SSDA903 ``CHILD``), ``upn``,
``nhs_number``, ``date_of_birth``, ``involvement_type`` (a contract involvement type, e.g.
``child_protection_plan``), ``involvement_id`` (the involvement the worker is allocated to, as
this agency's other files name it), ``worker_name``, ``worker_role``, ``worker_team``,
``worker_phone``, ``worker_email``, ``allocated_from`` and optionally ``allocation_id``.

Each row becomes ``involvement.changed`` with ``lead_practitioner`` set, so the narrative
shows who leads the work and the alerts reach them. The id is built from ``allocation_id``
when the export has one, else from the involvement and ``allocated_from``: re-sending a file
gives the same ids, a new allocation a new event.
Lawful basis: UK GDPR Art. 6(1)(e), the authority's duties under Children Act 1989 ss. 17, 47.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from adapters.common import (
    AgencyRef,
    RecordProblem,
    ResultBuilder,
    local_midnight,
    make_envelope,
    parse_date,
    read_csv,
    stable_id,
)
from contracts import (
    EventType,
    Identifier,
    InvolvementType,
    LawfulBasis,
    normalise_nhs_number,
    normalise_upn,
)

__all__ = ["ALLOCATION_COLUMNS", "REQUIRED_COLUMNS", "parse_allocations"]

ALLOCATION_COLUMNS = (
    "allocation_id",
    "child_id",
    "upn",
    "nhs_number",
    "date_of_birth",
    "involvement_type",
    "involvement_id",
    "worker_name",
    "worker_role",
    "worker_team",
    "worker_phone",
    "worker_email",
    "allocated_from",
)
"""Every column the mapping reads, in the sample's order."""

REQUIRED_COLUMNS = frozenset(
    {"child_id", "involvement_type", "involvement_id", "worker_name", "allocated_from"}
)
"""Columns the header row must have."""

_BASIS = LawfulBasis.public_task


def _person(row: dict[str, str]) -> dict[str, Any]:
    child = row.get("child_id", "")
    if not child:
        raise RecordProblem("child_id", "is missing")
    try:
        Identifier.model_validate({"system": "la", "value": child})
    except ValidationError:
        raise RecordProblem("child_id", "must be 1-64 letters, digits, '/', '_' or '-'") from None
    identifiers = [{"system": "la", "value": child}]
    for column, system, normalise in (
        ("upn", "upn", normalise_upn),
        ("nhs_number", "nhs", normalise_nhs_number),
    ):
        if value := row.get(column):
            try:
                identifiers.append({"system": system, "value": normalise(value)})
            except ValueError as exc:
                raise RecordProblem(column, str(exc)) from None
    return {
        "identifiers": identifiers,
        "birth_date": parse_date(row.get("date_of_birth"), "date_of_birth", required=False),
    }


def _lead(row: dict[str, str]) -> dict[str, Any]:
    if not row.get("worker_name"):
        raise RecordProblem("worker_name", "is missing")
    return {
        "name": row["worker_name"],
        "role": row.get("worker_role") or None,
        "team": row.get("worker_team") or None,
        "phone": row.get("worker_phone") or None,
        "email": row.get("worker_email") or None,
    }


def parse_allocations(body: bytes, agency: AgencyRef, now: datetime, out: ResultBuilder) -> None:
    """Map each allocation row; a bad row is rejected with its column, the rest still go."""
    seen: dict[str, int] = {}
    for number, row in read_csv(body, "worker allocations CSV", set(REQUIRED_COLUMNS)):
        with out.record(f"row {number}" + (f" child_id {c}" if (c := row["child_id"]) else "")):
            person = _person(row)
            kind = row.get("involvement_type", "").lower()
            if kind not in InvolvementType.__members__:
                raise RecordProblem(
                    "involvement_type", f"must be one of: {', '.join(InvolvementType)}"
                )
            involvement_id = row.get("involvement_id", "")
            if not involvement_id:
                raise RecordProblem("involvement_id", "is missing")
            start = parse_date(row.get("allocated_from"), "allocated_from")
            assert start is not None  # required=True
            lead = _lead(row)
            source = row.get("allocation_id") or ""
            parts = (source,) if source else (involvement_id, start.isoformat())
            event_id = stable_id(agency, "allocation", *parts)
            if event_id in seen:
                raise RecordProblem(
                    "allocation_id" if source else "allocated_from",
                    f"repeats the allocation in row {seen[event_id]}",
                )
            envelope = make_envelope(
                agency,
                event_id=event_id,
                event_type=EventType.involvement_changed,
                time=local_midnight(start),
                now=now,
                person=person,
                subject=row["child_id"],
                data={
                    "involvement_type": kind,
                    "involvement_id": involvement_id,
                    "lead_practitioner": lead,
                    "reason": f"Lead practitioner allocated from {start.isoformat()}.",
                },
                lawful_basis=_BASIS,
            )
            seen[event_id] = number
            out.add(envelope)
