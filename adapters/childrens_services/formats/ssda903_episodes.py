"""DfE SSDA903 looked-after episodes CSV to looked_after involvement started/ended envelopes.

One row per episode, in the columns of the SSDA903 ``Episodes`` table (``CHILD``, ``DECOM``,
``RNE``, ``LS``, ``CIN``, ``PLACE``, ``PLACE_PROVIDER``, ``DEC``, ``REC``,
``REASON_PLACE_CHANGE``, ``HOME_POST``, ``PL_POST``, ``URN``), with the child's ``Header``
columns ``SEX``, ``DOB`` and ``UPN`` joined on where the export has them. A child's episodes
are joined into looked-after periods: an episode ending with ``REC`` ``X1`` (episode ceases,
child remains looked after) continues into the episode starting on its ``DEC``. Each period
becomes ``involvement.started`` (its first ``DECOM``) and, once ended, ``involvement.ended``
(its last ``DEC``, with the ``REC`` code as reason), of type ``looked_after``; ids come from
``CHILD`` and the period's first ``DECOM``, so re-sending a file gives the same events.

Never sent: ``HOME_POST``, ``PL_POST``, ``PLACE``, ``PLACE_PROVIDER``, ``URN`` and
``REASON_PLACE_CHANGE``. Where a looked-after child lives is exactly what must not leak.

A row that cannot be read is rejected, and so is the rest of that child's episodes: a period
can only be joined from every one of its episodes. Other children still go.
Lawful basis: UK GDPR Art. 6(1)(e), the authority's duties under Children Act 1989 ss. 20-22.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
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
from contracts import EventType, Identifier, LawfulBasis, normalise_upn

__all__ = ["EPISODE_COLUMNS", "REASONS_EPISODE_CEASED", "REQUIRED_COLUMNS", "parse_episodes"]

EPISODE_COLUMNS = (
    "CHILD",
    "DECOM",
    "RNE",
    "LS",
    "CIN",
    "PLACE",
    "PLACE_PROVIDER",
    "DEC",
    "REC",
    "REASON_PLACE_CHANGE",
    "HOME_POST",
    "PL_POST",
    "URN",
)
"""The SSDA903 Episodes table's columns, in order."""

REQUIRED_COLUMNS = frozenset({"child", "decom", "rne", "ls", "dec", "rec"})
"""Columns the mapping reads (header names are matched case-insensitively)."""

REASONS_EPISODE_CEASED = frozenset(
    {
        *("E11", "E12", "E13", "E14", "E15", "E16", "E17", "E2", "E3", "E4A", "E4B"),
        *("E41", "E45", "E46", "E47", "E48", "E5", "E6", "E7", "E8", "E9", "X1"),
    }
)
"""The ``REC`` code list; ``X1`` means the episode ceased but the child is still looked after."""

_CONTINUES = "X1"
_STARTED = "S"  # RNE: started to be looked after
_SEX = {"1": "male", "2": "female"}
_BASIS = LawfulBasis.public_task


@dataclass(frozen=True, slots=True)
class _Episode:
    """One readable episode row."""

    row: int
    child: str
    decom: date
    dec: date | None
    rne: str
    ls: str | None
    cin: str | None
    rec: str | None


def _code(row: dict[str, str], column: str) -> str | None:
    return (row.get(column) or "").strip().upper() or None


def _episode(number: int, row: dict[str, str], child: str) -> _Episode:
    """Read one row's episode fields, or raise RecordProblem naming the column."""
    decom = parse_date(row.get("decom"), "DECOM")
    assert decom is not None  # required=True
    dec = parse_date(row.get("dec"), "DEC", required=False)
    rne, rec = _code(row, "rne"), _code(row, "rec")
    if rne is None:
        raise RecordProblem("RNE", "is missing")
    if dec is not None and dec < decom:
        raise RecordProblem("DEC", "is before DECOM")
    if rec is not None and rec not in REASONS_EPISODE_CEASED:
        raise RecordProblem("REC", "is not an SSDA903 reason episode ceased code")
    if dec is not None and rec is None:
        raise RecordProblem("REC", "is missing; an episode with DEC needs its reason")
    if rec is not None and dec is None:
        raise RecordProblem("DEC", "is missing; an episode with REC needs its end date")
    return _Episode(number, child, decom, dec, rne, _code(row, "ls"), _code(row, "cin"), rec)


def _person(row: dict[str, str], child: str, where: str, out: ResultBuilder) -> dict[str, Any]:
    """The child from the Header columns; unreadable SEX, DOB or UPN are warned and left out."""
    identifiers = [{"system": "la", "value": child}]
    if upn := (row.get("upn") or "").strip():
        try:
            identifiers.append({"system": "upn", "value": normalise_upn(upn)})
        except ValueError as exc:
            out.warn(where, "UPN", f"{exc}; left out")
    sex = _SEX.get((row.get("sex") or "").strip())
    if (row.get("sex") or "").strip() and sex is None:
        out.warn(where, "SEX", "is not an SSDA903 code (1 male, 2 female); recorded as unknown")
    try:
        born = parse_date(row.get("dob"), "DOB", required=False)
    except RecordProblem as problem:
        out.warn(where, "DOB", f"{problem.reason}; left out")
        born = None
    return {"identifiers": identifiers, "birth_date": born, "sex": sex or "unknown"}


def _periods(episodes: list[_Episode], out: ResultBuilder) -> list[list[_Episode]]:
    """Join a child's episodes (sorted by DECOM) into periods, or raise RecordProblem."""
    periods: list[list[_Episode]] = []
    for episode in episodes:
        if not periods:
            if episode.rne != _STARTED:
                out.warn(
                    f"row {episode.row}",
                    "RNE",
                    "the child's first episode here does not start the period (RNE S); "
                    "the period is dated from this episode",
                )
            periods.append([episode])
            continue
        last = periods[-1][-1]
        if last.dec is None or episode.decom < last.dec:
            raise RecordProblem(
                "DECOM", f"in row {episode.row} overlaps the episode in row {last.row}"
            )
        if last.rec == _CONTINUES:
            if episode.decom != last.dec:
                raise RecordProblem(
                    "DECOM",
                    f"in row {episode.row} is not the DEC of row {last.row}, which "
                    "continues the period (REC X1)",
                )
            periods[-1].append(episode)
            continue
        if episode.rne != _STARTED:
            out.warn(
                f"row {episode.row}",
                "RNE",
                "is not S though the previous episode ended the period; a new period starts",
            )
        periods.append([episode])
    return periods


def _send_period(
    period: list[_Episode],
    person: dict[str, Any],
    agency: AgencyRef,
    now: datetime,
    out: ResultBuilder,
) -> None:
    first, last = period[0], period[-1]
    child, start = first.child, first.decom
    rows = f"rows {first.row}-{last.row}" if len(period) > 1 else f"row {first.row}"
    involvement_id = f"{child}:looked-after:{start.isoformat()}"
    reasons = [f"legal status {first.ls}" if first.ls else None]
    reasons.append(f"category of need {first.cin}" if first.cin else None)
    base = {"involvement_type": "looked_after", "involvement_id": involvement_id}
    phases: list[tuple[str, date, dict[str, Any]]] = [
        (
            "started",
            start,
            {**base, "started_on": start, "reason": "; ".join(r for r in reasons if r) or None},
        )
    ]
    if last.dec is not None and last.rec != _CONTINUES:
        ended = {**base, "started_on": start, "ended_on": last.dec}
        phases.append(("ended", last.dec, {**ended, "reason": f"reason episode ceased {last.rec}"}))
    elif last.rec == _CONTINUES:
        out.warn(
            f"row {last.row}",
            "REC",
            "is X1 (still looked after) but no episode follows; the period is left open",
        )
    with out.record(f"CHILD {child} {rows}"):
        envelopes = [
            make_envelope(
                agency,
                event_id=stable_id(agency, "ssda903", child, start.isoformat(), phase),
                event_type=EventType(f"involvement.{phase}"),
                time=local_midnight(day),
                now=now,
                person=person,
                subject=child,
                data=data,
                lawful_basis=_BASIS,
            )
            for phase, day, data in phases
        ]
        for envelope in envelopes:
            out.add(envelope)


def parse_episodes(body: bytes, agency: AgencyRef, now: datetime, out: ResultBuilder) -> None:
    """Map every child's looked-after periods; a child with an unreadable episode is rejected."""
    children: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for number, row in read_csv(body, "SSDA903 episodes CSV", set(REQUIRED_COLUMNS)):
        child = (row.get("child") or "").strip()
        try:
            if not child:
                raise RecordProblem("CHILD", "is missing")
            Identifier.model_validate({"system": "la", "value": child})
        except RecordProblem as problem:
            out.reject(f"row {number}", problem.field, problem.reason)
            continue
        except ValidationError:
            out.reject(f"row {number}", "CHILD", "must be 1-64 letters, digits, '/', '_' or '-'")
            continue
        children.setdefault(child, []).append((number, row))

    for child, rows in children.items():
        episodes: list[_Episode] = []
        bad: list[int] = []
        for number, row in rows:
            try:
                episodes.append(_episode(number, row, child))
            except RecordProblem as problem:
                out.reject(f"row {number} CHILD {child}", problem.field, problem.reason)
                bad.append(number)
        if bad:
            out.reject(
                f"CHILD {child}",
                "episodes",
                f"not sent: row(s) {', '.join(map(str, bad))} could not be read, and a "
                "period is joined from every episode",
            )
            continue
        episodes.sort(key=lambda e: e.decom)
        with out.record(f"CHILD {child}"):
            periods = _periods(episodes, out)
            person = _person(rows[0][1], child, f"row {rows[0][0]} CHILD {child}", out)
            for period in periods:
                _send_period(period, person, agency, now, out)
