"""Children's services adapter: CIN census XML to involvement envelopes."""

from __future__ import annotations

from datetime import date

import pytest

from adapters import childrens_services
from adapters.common import Severity, UnreadableFile
from tests.unit.adapters.conftest import AGENCIES, NOW, sample

pytestmark = pytest.mark.unit

AGENCY = AGENCIES["childrens_services"]
CIN = sample("childrens_services", "cin_census_2024.xml")


def _parse(body: bytes = CIN):
    return childrens_services.parse(body, "application/xml", AGENCY, now=NOW)


class TestCinCensus:
    """Each piece of work becomes started/ended involvement events."""

    def test_first_child_involvements(self) -> None:
        """Referral, assessment, S47, CP plan and CIN plan with their dates."""
        envs = [e for e in _parse().envelopes if e.subject == "NCS0041872"]
        assert [
            (e.type.value, e.data.involvement_type.value, e.data.started_on, e.data.ended_on)
            for e in envs
        ] == [
            ("involvement.started", "referral", date(2023, 6, 12), None),
            ("involvement.started", "assessment", date(2023, 6, 13), None),
            ("involvement.ended", "assessment", date(2023, 6, 13), date(2023, 7, 24)),
            ("involvement.started", "child_in_need", date(2024, 2, 20), None),
            ("involvement.started", "section_47_enquiry", date(2023, 7, 3), None),
            ("involvement.ended", "section_47_enquiry", date(2023, 7, 3), date(2023, 7, 27)),
            ("involvement.started", "child_protection_plan", date(2023, 7, 27), None),
            ("involvement.ended", "child_protection_plan", date(2023, 7, 27), date(2024, 2, 20)),
        ]
        plan = envs[6]
        assert plan.id == "northshire-cs:cin:NCS0041872:2023-06-12:cpp-0:started"
        assert plan.data.reason == "initial category emotional abuse; latest category neglect"
        assert [i.key for i in plan.person.identifiers] == ["la:NCS0041872", "upn:P938000001001"]
        assert plan.person.sex == "male" and plan.lawful_basis == "public_task"

    def test_assessment_before_referral_kept_with_warning(self) -> None:
        """A rule break is a warning and the record is still sent."""
        result = _parse()
        assert [(e.record, e.field, e.severity) for e in result.errors] == [
            (
                "Child[1] LAchildID NCS0052210 CINdetails[0] 2024-01-08:assessment-0",
                "AssessmentActualStartDate",
                Severity.warning,
            )
        ]
        assert len(result.envelopes) == 12

    def test_plan_ending_before_start_is_kept(self) -> None:
        """A plan whose end precedes its start is sent with a warning, never dropped."""
        body = CIN.replace(b"<CPPendDate>2024-02-20", b"<CPPendDate>2023-07-01")
        result = _parse(body)
        ended = [e for e in result.envelopes if e.id.endswith("cpp-0:ended")]
        assert ended[0].data.ended_on == date(2023, 7, 1) and ended[0].data.started_on is None
        assert ("CPPendDate", Severity.warning) in [(e.field, e.severity) for e in result.errors]

    def test_bad_upn_and_sex_are_warnings(self) -> None:
        """A bad UPN is left out and an unknown sex code recorded as unknown."""
        body = CIN.replace(b"P938000001001", b"A938000001001").replace(b"<Sex>1<", b"<Sex>7<")
        result = _parse(body)
        warnings = [(e.field, e.severity) for e in result.errors if "NCS0041872" in e.record]
        assert warnings == [("UPN", Severity.warning), ("Sex", Severity.warning)]
        first = result.envelopes[0]
        assert [i.system.value for i in first.person.identifiers] == ["la"]
        assert "A938000001001" not in str(result.errors)

    def test_child_without_id_rejected(self) -> None:
        """A child without LAchildID is dropped with an error; others still parse."""
        result = _parse(CIN.replace(b"<LAchildID>NCS0052210</LAchildID>", b""))
        assert ("Child[1]", "LAchildID", Severity.error) in [
            (e.record, e.field, e.severity) for e in result.errors
        ]
        assert len(result.envelopes) == 8

    def test_resending_gives_same_ids(self) -> None:
        """Parsing the same file twice gives identical event ids."""
        assert [e.id for e in _parse().envelopes] == [e.id for e in _parse().envelopes]

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"not xml", "not well-formed XML"),
            (b"<CTfile/>", "root element <Message>"),
            (b"<Message/>", "no <Children>"),
        ],
    )
    def test_unreadable(self, body: bytes, message: str) -> None:
        """Wholly unreadable files raise with a clear message."""
        with pytest.raises(UnreadableFile, match=message):
            _parse(body)
