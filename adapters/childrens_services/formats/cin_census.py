"""DfE Children in Need census XML to involvement started/ended envelopes.

Root ``Message``; ``Children/Child`` each with ``ChildIdentifiers`` (``LAchildID``, ``UPN``,
``FormerUPN``, ``PersonBirthDate``, ``Sex``) and one or more ``CINdetails`` episodes. Per
episode: the referral (``CINreferralDate`` to ``CINclosureDate``), each assessment (actual
start to authorisation), each CIN plan, each section 47 enquiry (start to the initial child
protection conference) and each child protection plan become ``involvement.started`` and,
once ended, ``involvement.ended``. The census names no practitioner, so ``lead_practitioner``
is empty. Rule breaks real files carry (an assessment before its referral, an end before a
start, an unreadable sex code or UPN) are kept and listed as warnings; a plan is never dropped.
Lawful basis: UK GDPR Art. 6(1)(e), the authority's duties under Children Act 1989 ss. 17, 47.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from xml.etree.ElementTree import Element

from adapters.common import (
    AgencyRef,
    RecordProblem,
    ResultBuilder,
    UnreadableFile,
    local_midnight,
    make_envelope,
    parse_date,
    read_xml,
    stable_id,
)
from contracts import EventType, LawfulBasis, normalise_upn

__all__ = ["parse_cin_census"]

_SEX = {
    "1": "male",
    "2": "female",
    "0": "unknown",
    "9": "not_specified",
    "M": "male",
    "F": "female",
    "U": "unknown",
}
_ABUSE = {
    "NEG": "neglect",
    "PHY": "physical abuse",
    "SAB": "sexual abuse",
    "EMO": "emotional abuse",
    "MUL": "multiple categories",
}
_BASIS = LawfulBasis.public_task


def _text(element: Element | None, tag: str) -> str | None:
    found = element.find(tag) if element is not None else None
    value = (found.text or "").strip() if found is not None else ""
    return value or None


class _Episode:
    """Sends the events of one CINdetails episode for one child."""

    def __init__(
        self,
        agency: AgencyRef,
        now: datetime,
        out: ResultBuilder,
        locator: str,
        child_id: str,
        person: dict[str, Any],
        referral: date | None,
    ) -> None:
        self.agency, self.now, self.out, self.locator = agency, now, out, locator
        self.child_id, self.person, self.referral = child_id, person, referral

    def involvement(
        self,
        kind: str,
        part: str,
        start: date | None,
        end: date | None,
        reason: str | None,
        start_field: str,
        end_field: str,
    ) -> None:
        """Send started (and ended, if ``end``) for one piece of work, keeping bad dates."""
        where = f"{self.locator} {part}"
        if start is None and end is None:
            self.out.warn(where, start_field, "is missing and no end date; nothing to send")
            return
        if start is not None and self.referral is not None and start < self.referral:
            self.out.warn(where, start_field, "is before the referral date; kept as recorded")
        out_of_order = start is not None and end is not None and end < start
        if out_of_order:
            self.out.warn(where, end_field, f"is before {start_field}; kept as recorded")
        involvement_id = f"{self.child_id}:{part}"
        base = {"involvement_type": kind, "involvement_id": involvement_id, "reason": reason}
        with self.out.record(where):
            if start is not None:
                self._send("started", start, {**base, "started_on": start})
            else:
                self.out.warn(where, start_field, "is missing; only the end is sent")
            if end is not None:
                started_on = None if out_of_order else start
                self._send("ended", end, {**base, "started_on": started_on, "ended_on": end})

    def _send(self, phase: str, day: date, data: dict[str, Any]) -> None:
        self.out.add(
            make_envelope(
                self.agency,
                event_id=stable_id(self.agency, "cin", data["involvement_id"], phase),
                event_type=EventType(f"involvement.{phase}"),
                time=local_midnight(day),
                now=self.now,
                person=self.person,
                subject=self.child_id,
                data=data,
                lawful_basis=_BASIS,
            )
        )


def _date(element: Element | None, tag: str, out: ResultBuilder, where: str) -> date | None:
    """Read an optional date; an unreadable one is warned about and treated as absent."""
    try:
        return parse_date(_text(element, tag), tag, required=False)
    except RecordProblem as problem:
        out.warn(where, tag, problem.reason)
        return None


def _person(
    child: Element, ids: Element, locator: str, out: ResultBuilder, child_id: str
) -> dict[str, Any]:
    identifiers = [{"system": "la", "value": child_id}]
    for tag in ("UPN", "FormerUPN"):
        value = _text(ids, tag)
        if value:
            try:
                upn = normalise_upn(value)
            except ValueError as exc:
                out.warn(locator, tag, f"{exc}; left out")
                continue
            if all(i["value"] != upn for i in identifiers):
                identifiers.append({"system": "upn", "value": upn})
    sex_code = _text(ids, "Sex")
    sex = _SEX.get((sex_code or "0").upper())
    if sex is None:
        out.warn(locator, "Sex", "is not a known code (1, 2, 0, 9, M, F, U); recorded as unknown")
    return {
        "identifiers": identifiers,
        "birth_date": _date(ids, "PersonBirthDate", out, locator),
        "sex": sex or "unknown",
    }


def _episode(
    details: Element,
    index: int,
    agency: AgencyRef,
    now: datetime,
    out: ResultBuilder,
    locator: str,
    child_id: str,
    person: dict[str, Any],
) -> None:
    where = f"{locator} CINdetails[{index}]"
    referral = _date(details, "CINreferralDate", out, where)
    closure = _date(details, "CINclosureDate", out, where)
    key = referral.isoformat() if referral else f"undated-{index}"
    episode = _Episode(agency, now, out, where, child_id, person, referral)
    labels = (
        ("ReferralSource", "referral source"),
        ("PrimaryNeedCode", "primary need"),
        ("ReasonForClosure", "closure reason"),
    )
    reason = (
        "; ".join(f"{label} {value}" for tag, label in labels if (value := _text(details, tag)))
        or None
    )
    episode.involvement(
        "referral",
        f"{key}:referral",
        referral,
        closure,
        reason,
        "CINreferralDate",
        "CINclosureDate",
    )
    for n, node in enumerate(details.findall("Assessments")):
        factors = [f.text.strip() for f in node.iter("AssessmentFactors") if f.text]
        episode.involvement(
            "assessment",
            f"{key}:assessment-{n}",
            _date(node, "AssessmentActualStartDate", out, where),
            _date(node, "AssessmentAuthorisationDate", out, where),
            f"assessment factors {', '.join(factors)}" if factors else None,
            "AssessmentActualStartDate",
            "AssessmentAuthorisationDate",
        )
    for n, node in enumerate(details.findall("CINPlanDates")):
        episode.involvement(
            "child_in_need",
            f"{key}:cin-plan-{n}",
            _date(node, "CINPlanStartDate", out, where),
            _date(node, "CINPlanEndDate", out, where),
            None,
            "CINPlanStartDate",
            "CINPlanEndDate",
        )
    for n, node in enumerate(details.findall("Section47")):
        not_required = (_text(node, "ICPCnotRequired") or "").lower() in ("true", "1")
        episode.involvement(
            "section_47_enquiry",
            f"{key}:s47-{n}",
            _date(node, "S47ActualStartDate", out, where),
            _date(node, "DateOfInitialCPC", out, where),
            "initial child protection conference not required" if not_required else None,
            "S47ActualStartDate",
            "DateOfInitialCPC",
        )
    for n, node in enumerate(details.findall("ChildProtectionPlans")):
        initial, latest = (
            _text(node, "InitialCategoryOfAbuse"),
            _text(node, "LatestCategoryOfAbuse"),
        )
        parts = [
            f"initial category {_ABUSE.get(initial or '', initial)}" if initial else None,
            f"latest category {_ABUSE.get(latest or '', latest)}" if latest else None,
        ]
        episode.involvement(
            "child_protection_plan",
            f"{key}:cpp-{n}",
            _date(node, "CPPstartDate", out, where),
            _date(node, "CPPendDate", out, where),
            "; ".join(p for p in parts if p) or None,
            "CPPstartDate",
            "CPPendDate",
        )


def parse_cin_census(body: bytes, agency: AgencyRef, now: datetime, out: ResultBuilder) -> None:
    """Map every child of a CIN census file; children without an LAchildID are rejected."""
    root = read_xml(body, "CIN census file", "Message")
    children = root.find("Children")
    if children is None:
        raise UnreadableFile("CIN census file has no <Children> element")
    for index, child in enumerate(children.findall("Child")):
        ids = child.find("ChildIdentifiers")
        ids = ids if ids is not None else child
        child_id = _text(ids, "LAchildID")
        locator = f"Child[{index}]" + (f" LAchildID {child_id}" if child_id else "")
        with out.record(locator):
            if child_id is None:
                raise RecordProblem("LAchildID", "is missing")
            person = _person(child, ids, locator, out, child_id)
            for n, details in enumerate(child.findall("CINdetails")):
                _episode(details, n, agency, now, out, locator, child_id, person)
