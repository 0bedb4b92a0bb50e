"""Shared pieces of every adapter: results, record errors, stable event ids and safe readers.

An adapter is a pure function from an agency's native file to contract envelopes. It never
does I/O beyond reading the bytes it is given, and never puts personal data in an error.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum
from typing import Any
from xml.etree.ElementTree import Element, ParseError
from zoneinfo import ZoneInfo

import defusedxml.ElementTree as safe_xml
from defusedxml import DefusedXmlException
from pydantic import ValidationError

from contracts import AgencyKind, Envelope, EventType, LawfulBasis, SensitivityTag

__all__ = [
    "LONDON",
    "AdapterResult",
    "AgencyRef",
    "RecordError",
    "RecordProblem",
    "ResultBuilder",
    "Severity",
    "UnreadableFile",
    "check_now",
    "local_midnight",
    "local_name",
    "make_envelope",
    "media_type",
    "parse_date",
    "parse_datetime",
    "read_csv",
    "read_json",
    "read_xml",
    "run_reader",
    "stable_id",
]

LONDON = ZoneInfo("Europe/London")
"""Agencies in England record local times; a time without an offset is read as London time."""

_ID_SAFE = re.compile(r"^[A-Za-z0-9._:-]+$")
_MAX_ID = 128


@dataclass(frozen=True, slots=True)
class AgencyRef:
    """The agency a file came from: its registered id and kind."""

    id: str
    kind: AgencyKind


class Severity(StrEnum):
    """How bad a record problem is: ``error`` drops the record, ``warning`` keeps it."""

    error = "error"
    warning = "warning"


@dataclass(frozen=True, slots=True)
class RecordError:
    """One problem with one record: where to find it, which field, and what is wrong.

    ``record`` locates the record in the file (``row 7``, ``Child[2] LAchildID CIN0002``) and
    never carries personal data beyond the agency's own record id; nor does ``reason``.
    """

    record: str
    field: str
    reason: str
    severity: Severity = Severity.error


@dataclass(slots=True)
class AdapterResult:
    """What an adapter made of a file: the envelopes to send and the problems it found."""

    envelopes: list[Envelope] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)

    @property
    def rejected(self) -> list[RecordError]:
        """Problems that dropped a record."""
        return [e for e in self.errors if e.severity is Severity.error]

    @property
    def warnings(self) -> list[RecordError]:
        """Problems noted on records that were kept."""
        return [e for e in self.errors if e.severity is Severity.warning]


class UnreadableFile(Exception):
    """The whole file cannot be read (wrong format, wrong root element, no header row)."""


class RecordProblem(Exception):
    """Raised inside a record's mapping: the record is dropped with this field and reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ResultBuilder:
    """Collects envelopes and record errors while an adapter walks a file."""

    def __init__(self) -> None:
        self.result = AdapterResult()

    def add(self, envelope: Envelope) -> None:
        """Keep an envelope."""
        self.result.envelopes.append(envelope)

    def warn(self, record: str, field: str, reason: str) -> None:
        """Note a problem on a record that is kept."""
        self.result.errors.append(RecordError(record, field, reason, Severity.warning))

    def reject(self, record: str, field: str, reason: str) -> None:
        """Note a problem that drops a record."""
        self.result.errors.append(RecordError(record, field, reason, Severity.error))

    @contextmanager
    def record(self, locator: str) -> Iterator[None]:
        """Map one record; a RecordProblem or contract ValidationError drops it with an error."""
        try:
            yield
        except RecordProblem as problem:
            self.reject(locator, problem.field, problem.reason)
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False, include_context=False):
                loc = ".".join(str(part) for part in err["loc"]) or "record"
                self.reject(locator, loc, str(err["msg"]))


Reader = Callable[[bytes, AgencyRef, datetime, "ResultBuilder"], None]
"""Maps one native format into a ResultBuilder: (body, agency, now, out)."""


def run_reader(
    adapter: str,
    readers: Mapping[str, Reader],
    body: bytes,
    content_type: str,
    agency: AgencyRef,
    now: datetime,
    *,
    what: str | None = None,
) -> AdapterResult:
    """Pick the reader for the body's media type and run it; ``UnreadableFile`` for others."""
    check_now(now)
    reader = readers.get(media_type(content_type))
    if reader is None:
        media = ", ".join(readers)
        raise UnreadableFile(
            f"{adapter} adapter reads {f'{what} ({media})' if what else media}, "
            f"not {media_type(content_type) or 'an unnamed content type'}"
        )
    out = ResultBuilder()
    reader(body, agency, now, out)
    return out.result


def check_now(now: datetime) -> datetime:
    """Return ``now`` if it is timezone-aware, else raise ValueError (a programming error)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now


def media_type(content_type: str) -> str:
    """Return the bare, lower-case media type of a Content-Type header value."""
    return content_type.split(";", 1)[0].strip().lower()


def stable_id(agency: AgencyRef, *parts: str, opaque: bool = False) -> str:
    """Return a deterministic event id ``<agency.id>:<parts joined by ':'>``.

    Ids too long for the envelope, with characters it does not allow, or built from personal
    identifiers (``opaque=True``, e.g. a UPN) become ``<agency.id>:h-<sha256 prefix>``, so the
    same source record always gives the same id and no id carries an identifier.
    """
    raw = ":".join(parts)
    candidate = f"{agency.id}:{raw}"
    if not opaque and len(candidate) <= _MAX_ID and _ID_SAFE.match(raw):
        return candidate
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:40]
    return f"{agency.id}:h-{digest}"


def make_envelope(
    agency: AgencyRef,
    *,
    event_id: str,
    event_type: EventType,
    time: datetime,
    now: datetime,
    person: dict[str, Any],
    data: dict[str, Any],
    lawful_basis: LawfulBasis,
    sensitivity: tuple[SensitivityTag, ...] = (),
    subject: str | None = None,
) -> Envelope:
    """Build and validate an envelope (raises pydantic ValidationError on a contract breach)."""
    return Envelope.model_validate(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": f"urn:agency:{agency.id}",
            "type": event_type,
            "time": time,
            "subject": subject,
            "agency_id": agency.id,
            "agency_kind": agency.kind,
            "recorded_at": now,
            "sensitivity": tuple(dict.fromkeys(sensitivity)),
            "lawful_basis": lawful_basis,
            "person": person,
            "data": data,
        }
    )


def parse_date(text: str | None, field: str, *, required: bool = True) -> date | None:
    """Read a date written ``2024-03-31`` or ``31/03/2024``; never echoes the value on error."""
    text = (text or "").strip()
    if not text:
        if required:
            raise RecordProblem(field, "is missing")
        return None
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(text[:10] if fmt == "%Y-%m-%d" else text, fmt).date()
        except ValueError:
            continue
    raise RecordProblem(field, "is not a date (expected YYYY-MM-DD or DD/MM/YYYY)")


def parse_datetime(text: str | None, field: str) -> datetime:
    """Read an ISO 8601 or ``DD/MM/YYYY HH:MM`` date-time; a time without offset is London time."""
    text = (text or "").strip()
    if not text:
        raise RecordProblem(field, "is missing")
    value: datetime | None = None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        for fmt in ("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S"):
            try:
                value = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if value is None:
        raise RecordProblem(field, "is not a date-time (expected ISO 8601 or DD/MM/YYYY HH:MM)")
    if value.tzinfo is None:
        value = value.replace(tzinfo=LONDON)
    return value


def local_midnight(day: date) -> datetime:
    """Return the start of ``day`` in London time (the event time of a date-only record)."""
    return datetime.combine(day, time(0), tzinfo=LONDON)


def read_json(body: bytes, what: str) -> Any:
    """Parse JSON or raise UnreadableFile naming where it broke."""
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise UnreadableFile(f"{what} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise UnreadableFile(
            f"{what} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise UnreadableFile(f"{what} is nested too deeply to read") from None


def read_xml(body: bytes, what: str, root: str) -> Element:
    """Parse XML safely (no DTDs, entities or network), drop namespaces, check the root's name."""
    try:
        element = safe_xml.fromstring(body, forbid_dtd=True)
    except DefusedXmlException:
        raise UnreadableFile(
            f"{what} declares a DTD or entities, which are refused for safety"
        ) from None
    except ParseError as exc:
        raise UnreadableFile(f"{what} is not well-formed XML ({exc})") from None
    for node in element.iter():
        if isinstance(node.tag, str):
            node.tag = local_name(node.tag)
    name = element.tag
    if name != root:
        raise UnreadableFile(f"{what} must have root element <{root}>, not <{name}>")
    return element


def local_name(tag: str) -> str:
    """Return an XML tag without its ``{namespace}`` prefix."""
    return tag.rsplit("}", 1)[-1]


def read_csv(body: bytes, what: str, required: set[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(row number, row)`` with header names lower-cased and spaces turned to ``_``.

    Row numbers count the header as row 1, as a spreadsheet shows them. Raises UnreadableFile
    when the file is not UTF-8 text or the header row lacks a required column.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnreadableFile(f"{what} is not UTF-8 text") from None
    if "\x00" in text:
        raise UnreadableFile(f"{what} is binary, not CSV text")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    names = [h.strip().lower().replace(" ", "_") for h in header or []]
    missing = sorted(required - set(names))
    if missing:
        raise UnreadableFile(
            f"{what} has no header row with the required columns; missing: {', '.join(missing)}"
        )
    for number, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        yield (
            number,
            {name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(names)},
        )
