"""Children's services adapter: SSDA903 looked-after episodes CSV to looked_after involvements."""

from __future__ import annotations

from datetime import date

import pytest

from adapters import childrens_services
from adapters.common import RecordError, Severity, UnreadableFile
from tests.unit.adapters.conftest import AGENCIES, NOW, sample

pytestmark = pytest.mark.unit

AGENCY = AGENCIES["childrens_services"]
EPISODES = sample("childrens_services", "ssda903_episodes_2024.csv")
HEADER = (
    "CHILD,SEX,DOB,UPN,DECOM,RNE,LS,CIN,PLACE,PLACE_PROVIDER,DEC,REC,"
    "REASON_PLACE_CHANGE,HOME_POST,PL_POST,URN\n"
)
GOOD = "NCS0070001,1,01/01/2015,,01/02/2024,S,C2,N1,U1,PR1,,,,NS1 1AA,NS2 2BB,XXXXXXX\n"


def _parse(body: bytes = EPISODES):
    return childrens_services.parse(body, "text/csv", AGENCY, now=NOW)


def _csv(*rows: str) -> bytes:
    return (HEADER + "".join(rows)).encode()


class TestLookedAfterPeriods:
    """Episodes joined into periods become looked_after started/ended events."""

    def test_sample_round_trips(self) -> None:
        """Each period gives started (DECOM) and, if it ended, ended (DEC, REC) events."""
        result = _parse()
        assert result.errors == []
        assert [
            (
                e.id,
                e.type.value,
                e.data.involvement_id,
                e.data.started_on,
                e.data.ended_on,
                e.data.reason,
            )
            for e in result.envelopes
        ] == [
            (
                "northshire-cs:ssda903:NCS0062101:2023-03-14:started",
                "involvement.started",
                "NCS0062101:looked-after:2023-03-14",
                date(2023, 3, 14),
                None,
                "legal status C2; category of need N1",
            ),
            (
                "northshire-cs:ssda903:NCS0062101:2023-03-14:ended",
                "involvement.ended",
                "NCS0062101:looked-after:2023-03-14",
                date(2023, 3, 14),
                date(2024, 3, 8),
                "reason episode ceased E4A",
            ),
            (
                "northshire-cs:ssda903:NCS0062102:2024-01-05:started",
                "involvement.started",
                "NCS0062102:looked-after:2024-01-05",
                date(2024, 1, 5),
                None,
                "legal status V2; category of need N2",
            ),
            (
                "northshire-cs:ssda903:NCS0062103:2022-06-20:started",
                "involvement.started",
                "NCS0062103:looked-after:2022-06-20",
                date(2022, 6, 20),
                None,
                "legal status V2; category of need N1",
            ),
            (
                "northshire-cs:ssda903:NCS0062103:2022-06-20:ended",
                "involvement.ended",
                "NCS0062103:looked-after:2022-06-20",
                date(2022, 6, 20),
                date(2022, 9, 30),
                "reason episode ceased E13",
            ),
            (
                "northshire-cs:ssda903:NCS0062103:2024-02-15:started",
                "involvement.started",
                "NCS0062103:looked-after:2024-02-15",
                date(2024, 2, 15),
                None,
                "legal status C1; category of need N1",
            ),
        ]

    def test_envelope_whole(self) -> None:
        """The child comes from the Header columns; type, subject, basis and times are set."""
        first = _parse().envelopes[0]
        assert first.model_dump(mode="json", exclude={"data"}) == {
            "specversion": "1.0",
            "id": "northshire-cs:ssda903:NCS0062101:2023-03-14:started",
            "source": "urn:agency:northshire-cs",
            "type": "involvement.started",
            "time": "2023-03-14T00:00:00Z",
            "subject": "NCS0062101",
            "datacontenttype": "application/json",
            "schemaversion": 1,
            "agency_id": "northshire-cs",
            "agency_kind": "childrens_services",
            "recorded_at": "2024-04-15T09:30:00Z",
            "classification": "official_sensitive",
            "sensitivity": [],
            "lawful_basis": "public_task",
            "consent_ref": None,
            "supersedes": None,
            "signature": None,
            "key_id": None,
            "person": {
                "identifiers": [
                    {"system": "la", "value": "NCS0062101"},
                    {"system": "upn", "value": "M938000002101"},
                ],
                "name": None,
                "birth_date": "2014-08-09",
                "sex": "male",
                "address": None,
                "related": [],
            },
        }
        assert first.data.involvement_type == "looked_after"
        assert first.data.lead_practitioner is None

    def test_placement_is_never_sent(self) -> None:
        """No postcode, placement type, provider or URN appears in any envelope."""
        sent = " ".join(e.model_dump_json() for e in _parse().envelopes)
        for secret in ("NS1 4AB", "NS4 2CD", "NS2 7EF", "NS5 8JK", "NS7 3QR", "XXXXXXX"):
            assert secret not in sent
        for code in ("U1", "U3", "U4", "PR1", "PR2", "CARPL"):
            assert code not in sent

    def test_resending_gives_same_ids(self) -> None:
        """Parsing the same file twice gives identical event ids."""
        assert [e.id for e in _parse().envelopes] == [e.id for e in _parse().envelopes]

    def test_rows_in_any_order(self) -> None:
        """Episodes are joined by date, not by their order in the file."""
        lines = EPISODES.decode().splitlines(keepends=True)
        shuffled = "".join([lines[0], *reversed(lines[1:])]).encode()
        assert sorted(e.id for e in _parse(shuffled).envelopes) == sorted(
            e.id for e in _parse().envelopes
        )

    def test_iso_dates_accepted(self) -> None:
        """Exports writing YYYY-MM-DD read the same as DD/MM/YYYY."""
        iso = _csv(GOOD.replace("01/01/2015", "2015-01-01").replace("01/02/2024", "2024-02-01"))
        assert [e.data.started_on for e in _parse(iso).envelopes] == [date(2024, 2, 1)]


class TestWarnings:
    """Episodes that break the join rules but still make sense are kept with a warning."""

    def test_period_without_start_episode(self) -> None:
        """A first episode not starting care (RNE not S) still dates the period, warned."""
        result = _parse(_csv(GOOD.replace(",S,", ",P,")))
        assert [e.data.started_on for e in result.envelopes] == [date(2024, 2, 1)]
        assert result.errors == [
            RecordError(
                "row 2",
                "RNE",
                "the child's first episode here does not start the period (RNE S); "
                "the period is dated from this episode",
                Severity.warning,
            )
        ]

    def test_continuing_last_episode_left_open(self) -> None:
        """A last episode ending X1 means still looked after: started only, warned."""
        row = GOOD.replace(",,,,NS1", ",01/03/2024,X1,,NS1")
        result = _parse(_csv(row))
        assert [e.type.value for e in result.envelopes] == ["involvement.started"]
        assert result.errors == [
            RecordError(
                "row 2",
                "REC",
                "is X1 (still looked after) but no episode follows; the period is left open",
                Severity.warning,
            )
        ]

    def test_bad_header_fields_are_warnings(self) -> None:
        """An unreadable SEX, DOB or UPN is left out, and the periods still go."""
        row = "NCS0070001,7,31/02/2015,Z123,01/02/2024,S,C2,N1,U1,PR1,,,,,,\n"
        result = _parse(_csv(row))
        assert len(result.envelopes) == 1
        person = result.envelopes[0].person
        assert (person.sex, person.birth_date, len(person.identifiers)) == ("unknown", None, 1)
        assert [(e.record, e.field, e.severity) for e in result.errors] == [
            ("row 2 CHILD NCS0070001", "UPN", Severity.warning),
            ("row 2 CHILD NCS0070001", "SEX", Severity.warning),
            ("row 2 CHILD NCS0070001", "DOB", Severity.warning),
        ]


class TestBadRecords:
    """A bad episode drops its child with errors naming row and column; others still go."""

    @pytest.mark.parametrize(
        ("row", "field", "reason"),
        [
            (
                GOOD.replace("01/02/2024", ""),
                "DECOM",
                "is missing",
            ),
            (
                GOOD.replace("01/02/2024", "2024-13-01"),
                "DECOM",
                "is not a date (expected YYYY-MM-DD or DD/MM/YYYY)",
            ),
            (GOOD.replace(",S,", ",,"), "RNE", "is missing"),
            (GOOD.replace(",,,,NS1", ",01/01/2024,E4A,,NS1"), "DEC", "is before DECOM"),
            (
                GOOD.replace(",,,,NS1", ",01/03/2024,E99,,NS1"),
                "REC",
                "is not an SSDA903 reason episode ceased code",
            ),
            (
                GOOD.replace(",,,,NS1", ",01/03/2024,,,NS1"),
                "REC",
                "is missing; an episode with DEC needs its reason",
            ),
            (
                GOOD.replace(",,,,NS1", ",,E4A,,NS1"),
                "DEC",
                "is missing; an episode with REC needs its end date",
            ),
        ],
    )
    def test_bad_episode(self, row: str, field: str, reason: str) -> None:
        """The bad row and its child are rejected; another child's period still goes."""
        other = GOOD.replace("NCS0070001", "NCS0070002")
        result = _parse(_csv(row, other))
        assert [e.subject for e in result.envelopes] == ["NCS0070002"]
        assert result.errors == [
            RecordError("row 2 CHILD NCS0070001", field, reason),
            RecordError(
                "CHILD NCS0070001",
                "episodes",
                "not sent: row(s) 2 could not be read, and a period is joined from every episode",
            ),
        ]

    @pytest.mark.parametrize(
        ("child", "reason"),
        [("", "is missing"), ("NCS 0001", "must be 1-64 letters, digits, '/', '_' or '-'")],
    )
    def test_bad_child_id(self, child: str, reason: str) -> None:
        """A row without a usable CHILD id is rejected on its own."""
        result = _parse(_csv(GOOD.replace("NCS0070001", child, 1)))
        assert (result.envelopes, result.errors) == ([], [RecordError("row 2", "CHILD", reason)])

    def test_overlapping_episodes(self) -> None:
        """An episode starting inside an open one cannot be joined: the child is rejected."""
        later = GOOD.replace("01/02/2024", "01/03/2024").replace(",S,", ",P,")
        result = _parse(_csv(GOOD, later))
        assert (result.envelopes, result.errors) == (
            [],
            [RecordError("CHILD NCS0070001", "DECOM", "in row 3 overlaps the episode in row 2")],
        )

    def test_continuation_gap(self) -> None:
        """After X1 the next episode must start on its DEC, or the child is rejected."""
        first = GOOD.replace(",,,,NS1", ",01/03/2024,X1,,NS1")
        gap = GOOD.replace("01/02/2024", "05/03/2024").replace(",S,", ",P,")
        result = _parse(_csv(first, gap))
        assert (result.envelopes, result.errors) == (
            [],
            [
                RecordError(
                    "CHILD NCS0070001",
                    "DECOM",
                    "in row 3 is not the DEC of row 2, which continues the period (REC X1)",
                )
            ],
        )

    def test_errors_name_no_person(self) -> None:
        """Errors carry row numbers and the LA's own child id, never dates or postcodes."""
        row = GOOD.replace(",,,,NS1", ",01/01/2024,E4A,,NS1")
        text = " ".join(f"{e.record} {e.field} {e.reason}" for e in _parse(_csv(row)).errors)
        for personal in ("2015", "2024", "NS1 1AA", "NS2 2BB"):
            assert personal not in text


class TestUnreadable:
    """A CSV that is neither format is refused as a whole."""

    def test_unknown_header_names_both_formats(self) -> None:
        """The message lists the columns each CSV format needs."""
        with pytest.raises(UnreadableFile) as caught:
            _parse(b"id,start,end\n1,2024-01-01,\n")
        assert str(caught.value) == (
            "children's services CSV has neither header row: SSDA903 episodes need "
            "CHILD, DEC, DECOM, LS, REC, RNE; worker allocations need allocated_from, "
            "child_id, involvement_id, involvement_type, worker_name"
        )

    @pytest.mark.parametrize(
        ("body", "message"), [(b"\xff\xfe\x00", "not UTF-8"), (b"CHILD\x00", "binary")]
    )
    def test_not_text(self, body: bytes, message: str) -> None:
        """Bytes that are not CSV text are refused."""
        with pytest.raises(UnreadableFile, match=message):
            _parse(body)

    def test_unknown_content_type(self) -> None:
        """The adapter names the formats it reads."""
        with pytest.raises(UnreadableFile, match="SSDA903 episodes CSV or worker allocations"):
            childrens_services.parse(EPISODES, "application/json", AGENCY, now=NOW)
