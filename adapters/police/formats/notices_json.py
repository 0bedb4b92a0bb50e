"""Public protection notices as JSON: ``{"notices": [...]}`` (or a bare list of notices).

Each notice: ``incident_ref``, ``incident_type``, ``occurred_at``, ``location`` (text, or an
object with ``description`` and ``postcode``), ``risk_level`` and/or ``dash_ticks``,
``summary``, ``officer_role`` and ``persons``: objects with ``person_ref``, ``role``,
``forename``, ``surname``, ``date_of_birth``, ``sex``, ``nhs_number`` and ``address``
(``{"lines": [...], "postcode": ...}``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters.common import (
    AgencyRef,
    RecordProblem,
    ResultBuilder,
    UnreadableFile,
    parse_datetime,
    read_json,
)
from adapters.police.formats.notice import Notice, add_notice, grade, incident_type, person_from

__all__ = ["parse_notices_json"]


def _text(value: Any, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise RecordProblem(field, "must be text")


def _location(value: Any) -> str | None:
    if isinstance(value, dict):
        parts = [_text(value.get(k), f"location.{k}") for k in ("description", "postcode")]
        return ", ".join(p for p in parts if p) or None
    return _text(value, "location")


def _address(value: Any, field: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RecordProblem(field, "must be an object with lines and postcode")
    lines = value.get("lines") or []
    if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
        raise RecordProblem(f"{field}.lines", "must be a list of text")
    postcode = _text(value.get("postcode"), f"{field}.postcode")
    return {"lines": lines, "postcode": postcode} if lines or postcode else None


def parse_notices_json(body: bytes, agency: AgencyRef, now: datetime, out: ResultBuilder) -> None:
    """Map each notice in the file; a bad notice or person is listed, the rest still parse."""
    raw = read_json(body, "police notices JSON")
    notices = raw.get("notices") if isinstance(raw, dict) else raw
    if not isinstance(notices, list):
        raise UnreadableFile("police notices JSON must hold a list under 'notices'")
    for index, item in enumerate(notices):
        ref = item.get("incident_ref") if isinstance(item, dict) else None
        locator = f"notices[{index}]" + (f" incident {ref}" if isinstance(ref, str) else "")
        with out.record(locator):
            if not isinstance(item, dict):
                raise RecordProblem("notice", "must be an object")
            if not isinstance(ref, str) or not ref.strip():
                raise RecordProblem("incident_ref", "is missing")
            level, ticks = grade(
                _text(item.get("risk_level"), "risk_level"), item.get("dash_ticks")
            )
            notice = Notice(
                locator=locator,
                ref=ref.strip(),
                incident_type=incident_type(_text(item.get("incident_type"), "incident_type")),
                occurred_at=parse_datetime(
                    _text(item.get("occurred_at"), "occurred_at"), "occurred_at"
                ),
                location=_location(item.get("location")),
                grade=level,
                dash_ticks=ticks,
                summary=_text(item.get("summary"), "summary") or None,
                officer_role=_text(item.get("officer_role"), "officer_role") or None,
            )
            persons = item.get("persons")
            if not isinstance(persons, list):
                raise RecordProblem("persons", "must be a list")
            for p_index, fields in enumerate(persons):
                p_locator = f"{locator} persons[{p_index}]"
                try:
                    if not isinstance(fields, dict):
                        raise RecordProblem("person", "must be an object")
                    flat = {k: _text(v, k) for k, v in fields.items() if k != "address"}
                    notice.persons.append(
                        person_from(p_locator, flat, _address(fields.get("address"), "address"))
                    )
                except RecordProblem as problem:
                    out.reject(p_locator, problem.field, problem.reason)
            add_notice(notice, agency, now, out)
