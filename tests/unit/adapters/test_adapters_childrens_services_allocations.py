"""Children's services adapter: worker allocations CSV to involvement.changed with a lead."""

from __future__ import annotations

import pytest

from adapters import childrens_services
from adapters.common import RecordError
from contracts import InvolvementType
from tests.unit.adapters.conftest import AGENCIES, NOW, sample

pytestmark = pytest.mark.unit

AGENCY = AGENCIES["childrens_services"]
ALLOCATIONS = sample("childrens_services", "allocations.csv")
HEADER = (
    "allocation_id,child_id,upn,nhs_number,date_of_birth,involvement_type,involvement_id,"
    "worker_name,worker_role,worker_team,worker_phone,worker_email,allocated_from\n"
)
GOOD = (
    "ALC-1,NCS0070001,,9990023352,2015-01-01,child_protection_plan,NCS0070001:2024-01-02:cpp-0,"
    "Alex Example,social worker,Team 1,01632 960999,alex.example@northshire.example,2024-02-01\n"
)


def _parse(body: bytes = ALLOCATIONS):
    return childrens_services.parse(body, "text/csv", AGENCY, now=NOW)


def _csv(*rows: str, header: str = HEADER) -> bytes:
    return (header + "".join(rows)).encode()


class TestAllocations:
    """Each allocation names the involvement's lead practitioner and how to reach them."""

    def test_sample_round_trips(self) -> None:
        """Every row becomes involvement.changed with its lead practitioner."""
        result = _parse()
        assert result.errors == []
        assert [
            (e.id, e.type.value, e.subject, e.data.model_dump(mode="json"))
            for e in result.envelopes
        ] == [
            (
                "northshire-cs:allocation:ALC-20231",
                "involvement.changed",
                "NCS0041872",
                {
                    "involvement_type": "child_protection_plan",
                    "involvement_id": "NCS0041872:2023-06-12:cpp-0",
                    "started_on": None,
                    "ended_on": None,
                    "lead_practitioner": {
                        "name": "Dana Whitlock",
                        "role": "social worker",
                        "team": "Northshire Safeguarding Team 2",
                        "phone": "01632 960114",
                        "email": "dana.whitlock@northshire.example",
                    },
                    "reason": "Lead practitioner allocated from 2023-07-27.",
                },
            ),
            (
                "northshire-cs:allocation:ALC-24007",
                "involvement.changed",
                "NCS0062102",
                {
                    "involvement_type": "looked_after",
                    "involvement_id": "NCS0062102:looked-after:2024-01-05",
                    "started_on": None,
                    "ended_on": None,
                    "lead_practitioner": {
                        "name": "Tom Ashdown",
                        "role": "social worker",
                        "team": "Northshire Children in Care Team",
                        "phone": "01632 960208",
                        "email": "tom.ashdown@northshire.example",
                    },
                    "reason": "Lead practitioner allocated from 2024-01-05.",
                },
            ),
            (
                "northshire-cs:allocation:ALC-24019",
                "involvement.changed",
                "NCS0062102",
                {
                    "involvement_type": "looked_after",
                    "involvement_id": "NCS0062102:looked-after:2024-01-05",
                    "started_on": None,
                    "ended_on": None,
                    "lead_practitioner": {
                        "name": "Grace Lindqvist",
                        "role": "social worker",
                        "team": "Northshire Children in Care Team",
                        "phone": "01632 960219",
                        "email": "grace.lindqvist@northshire.example",
                    },
                    "reason": "Lead practitioner allocated from 2024-03-18.",
                },
            ),
        ]

    def test_person_and_time(self) -> None:
        """The child carries the LA id, UPN and NHS number; the event is dated allocated_from."""
        envelope = _parse().envelopes[1]
        assert [i.key for i in envelope.person.identifiers] == [
            "la:NCS0062102",
            "upn:B938000002102",
            "nhs:9990023360",
        ]
        assert envelope.person.birth_date.isoformat() == "2010-11-21"
        assert envelope.time.isoformat() == "2024-01-05T00:00:00+00:00"
        assert envelope.lawful_basis == "public_task"

    def test_lead_matches_the_cin_census_plan(self) -> None:
        """An allocation to a CIN census plan names the census's own involvement id."""
        census = childrens_services.parse(
            sample("childrens_services", "cin_census_2024.xml"),
            "application/xml",
            AGENCY,
            now=NOW,
        )
        plans = {e.data.involvement_id for e in census.envelopes}
        assert _parse().envelopes[0].data.involvement_id in plans

    def test_resending_gives_same_ids(self) -> None:
        """Parsing the same file twice gives identical event ids."""
        assert [e.id for e in _parse().envelopes] == [e.id for e in _parse().envelopes]

    def test_id_without_allocation_id(self) -> None:
        """Exports without allocation ids key the event by involvement and start date."""
        header = HEADER.replace("allocation_id,", "")
        result = _parse(_csv(GOOD.removeprefix("ALC-1,"), header=header))
        assert [e.id for e in result.envelopes] == [
            "northshire-cs:allocation:NCS0070001:2024-01-02:cpp-0:2024-02-01"
        ]

    def test_only_the_name_is_needed(self) -> None:
        """Role, team, phone and email are optional."""
        row = GOOD.replace(
            "social worker,Team 1,01632 960999,alex.example@northshire.example", ",,,"
        )
        [envelope] = _parse(_csv(row)).envelopes
        assert envelope.data.lead_practitioner.model_dump() == {
            "name": "Alex Example",
            "role": None,
            "team": None,
            "phone": None,
            "email": None,
        }


class TestBadRecords:
    """A bad row is rejected with its column; the other rows still go."""

    @pytest.mark.parametrize(
        ("old", "new", "field", "reason"),
        [
            ("NCS0070001,,", ",,", "child_id", "is missing"),
            (
                "NCS0070001,,",
                "NCS 1,,",
                "child_id",
                "must be 1-64 letters, digits, '/', '_' or '-'",
            ),
            (
                "9990023352",
                "9990023353",
                "nhs_number",
                "NHS number *******353 fails the check-digit test",
            ),
            (
                "child_protection_plan",
                "foster_care",
                "involvement_type",
                f"must be one of: {', '.join(InvolvementType)}",
            ),
            (",NCS0070001:2024-01-02:cpp-0,", ",,", "involvement_id", "is missing"),
            (
                ",NCS0070001:2024-01-02:cpp-0,",
                ",cpp 0,",
                "data.involvement_id",
                "String should match pattern '^[A-Za-z0-9._:/-]+$'",
            ),
            ("Alex Example", "", "worker_name", "is missing"),
            (
                "01632 960999",
                "call me",
                "data.lead_practitioner.phone",
                "String should match pattern '^\\+?[0-9 ()-]{3,32}$'",
            ),
            (
                "alex.example@northshire.example",
                "alex",
                "data.lead_practitioner.email",
                "String should match pattern '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$'",
            ),
            ("2024-02-01", "", "allocated_from", "is missing"),
            (
                "2024-02-01",
                "01-02-2024",
                "allocated_from",
                "is not a date (expected YYYY-MM-DD or DD/MM/YYYY)",
            ),
            (
                "2015-01-01",
                "1/1/15x",
                "date_of_birth",
                "is not a date (expected YYYY-MM-DD or DD/MM/YYYY)",
            ),
        ],
    )
    def test_bad_row(self, old: str, new: str, field: str, reason: str) -> None:
        """The row gives one error (row, column, reason); the next row still goes."""
        other = GOOD.replace("ALC-1,NCS0070001", "ALC-2,NCS0070002")
        result = _parse(_csv(GOOD.replace(old, new, 1), other))
        assert [e.id for e in result.envelopes] == ["northshire-cs:allocation:ALC-2"]
        [error] = result.errors
        assert (error.record.split(" child_id")[0], error.field, error.reason) == (
            "row 2",
            field,
            reason,
        )

    def test_repeated_allocation(self) -> None:
        """The same allocation twice in one file: the first goes, the second is an error."""
        result = _parse(_csv(GOOD, GOOD))
        assert [e.id for e in result.envelopes] == ["northshire-cs:allocation:ALC-1"]
        assert result.errors == [
            RecordError(
                "row 3 child_id NCS0070001",
                "allocation_id",
                "repeats the allocation in row 2",
            )
        ]

    def test_errors_name_no_person(self) -> None:
        """Errors never repeat an identifier or a date of birth."""
        body = _csv(
            GOOD.replace("9990023352", "9990023353"), GOOD.replace("2015-01-01", "2015-02-30")
        )
        errors = _parse(body).errors
        assert [e.field for e in errors] == ["nhs_number", "date_of_birth"]
        text = " ".join(f"{e.record} {e.field} {e.reason}" for e in errors)
        assert "9990023353" not in text and "2015" not in text
