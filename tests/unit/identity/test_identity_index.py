"""The person index: blocking finds the true candidate; twins and ambiguity are never linked."""

from __future__ import annotations

from datetime import date

import pytest

from contracts import Person
from hub.identity.compare import compare
from hub.identity.index import Candidate, PersonIndex, blocking_keys
from hub.identity.records import PersonRecord, make_record, record_from_person
from hub.identity.scoring import Band, band_for, score_levels

pytestmark = pytest.mark.unit


def rec(record_id: str, given: str, family: str, born: date, **kw: object) -> PersonRecord:
    fields = {"sex": "male", "postcode": "NS1 4MB", **kw}
    return make_record(record_id, given=[given], family=[family], birth_date=born, **fields)  # type: ignore[arg-type]


JAYDEN = rec(
    "health|pt-1", "Jayden", "Smith", date(2016, 5, 4), identifiers=[("nhs", "9990001138")]
)


@pytest.fixture
def index() -> PersonIndex:
    ix = PersonIndex()
    ix.add(JAYDEN, "ch-jayden")
    ix.add(rec("health|pt-2", "Amelia", "Smith", date(2009, 9, 2), sex="female"), "ch-amelia")
    ix.add(rec("health|pt-3", "Oliver", "Turner", date(2016, 5, 4), postcode="NS3 5RC"), "ch-ol")
    return ix


class TestBlocking:
    """A lookup finds the true candidate despite the usual errors."""

    @pytest.mark.parametrize(
        "incoming",
        [
            rec("police|1", "Jaden", "Smyth", date(2016, 5, 4), postcode=None),
            rec("police|2", "Jayden", "Smith", date(2016, 4, 5), postcode=None),
            rec("school|3", "Jay", "Smith-Jones", date(2016, 5, 4)),
            rec("school|4", "Jayden", "Smith", date(2016, 5, 9)),
            rec("school|5", "Jayden", "Smith", date(2016, 5, 4), postcode="NS9 9ZZ"),
        ],
        ids=["misspelt", "day-month-swapped", "nickname-hyphenated", "wrong-day", "moved"],
    )
    def test_true_candidate_is_found(self, index: PersonIndex, incoming: PersonRecord) -> None:
        """The true child is among the candidates a lookup scores."""
        assert "ch-jayden" in [c.child_id for c in index.scored(incoming)]

    def test_unrelated_people_are_not_compared(self, index: PersonIndex) -> None:
        """Someone sharing no blocking key with anyone has no candidates."""
        assert index.scored(rec("x|1", "Zara", "Nowak", date(2001, 1, 1), postcode="NS8 1AA")) == []

    def test_lookup_keys_include_the_swapped_date(self) -> None:
        """Lookups also try the birth date with day and month swapped; indexing does not."""
        keys = blocking_keys(rec("x", "Jo", "Ng", date(2016, 5, 4)), lookup=True)
        assert "df:2016-04-05:NK" in keys
        assert "df:2016-04-05:NK" not in blocking_keys(rec("x", "Jo", "Ng", date(2016, 5, 4)))


class TestMatch:
    """The bands a lookup answers."""

    def test_misspelt_police_record_links(self, index: PersonIndex) -> None:
        """Jaden Smyth, same birth date and sex, links to Jayden Smith by score."""
        result = index.match(rec("police|1", "Jaden", "Smyth", date(2016, 5, 4)))
        assert (result.band, result.child_id, result.linked_by) == (Band.link, "ch-jayden", "score")

    def test_identifier_links_deterministically(self, index: PersonIndex) -> None:
        """A known NHS number links whatever the names say."""
        other = rec(
            "gp|9", "Someone", "Else", date(2000, 1, 1), identifiers=[("nhs", "9990001138")]
        )
        result = index.match(other)
        assert (result.band, result.child_id, result.linked_by) == (Band.link, "ch-jayden", "nhs")

    @pytest.mark.parametrize(
        ("family", "born"),
        [
            ("Smith", date(2016, 5, 4)),
            ("Smyth", date(2016, 5, 4)),
            ("Smith", date(2016, 4, 5)),
        ],
        ids=["same-surname", "misspelt-surname", "swapped-date"],
    )
    def test_twin_is_not_linked(self, index: PersonIndex, family: str, born: date) -> None:
        """A twin (same surname, birth date, address; different first name) is no match."""
        result = index.match(rec("school|t", "Oscar", family, born))
        assert result.band is Band.no_match
        assert result.child_id is None
        assert result.candidates[0].child_id == "ch-jayden"

    def test_partial_evidence_is_queued(self, index: PersonIndex) -> None:
        """A nickname and a surname part with no address or sex is a possible match."""
        incoming = make_record(
            "school|c", given=["Jay"], family=["Jones-Smith"], birth_date=date(2016, 4, 5)
        )
        result = index.match(incoming)
        assert (result.band, result.child_id) == (Band.possible_match, None)
        assert result.candidates[0].child_id == "ch-jayden"

    def test_two_children_in_the_link_band_is_ambiguous(self, index: PersonIndex) -> None:
        """If two different children both score a link, the record is queued, not linked."""
        index.add(rec("health|dup", "Jayden", "Smith", date(2016, 5, 4)), "ch-duplicate")
        result = index.match(rec("police|7", "Jayden", "Smith", date(2016, 5, 4)))
        assert (result.band, result.child_id) == (Band.possible_match, None)
        assert {c.child_id for c in result.candidates[:2]} == {"ch-jayden", "ch-duplicate"}

    def test_move_and_remove(self, index: PersonIndex) -> None:
        """A moved record belongs to its new child; a removed one is never a candidate."""
        index.move("health|pt-2", "ch-jayden")
        assert index.child_of("health|pt-2") == "ch-jayden"
        index.remove("health|pt-2")
        assert index.child_of("health|pt-2") is None
        lookup = rec("x", "Amelia", "Smith", date(2009, 9, 2), sex="female")
        assert index.match(lookup).band is Band.no_match
        assert len(index) == 2

    def test_record_from_contract_person(self) -> None:
        """A contract Person's aliases become given-name variants of the record."""
        person = Person.model_validate(
            {
                "identifiers": [{"system": "upn", "value": "P938000001001"}],
                "name": {"given": "Amelia", "family": "Smith", "aliases": ["Millie Smith"]},
                "birth_date": "2009-09-02",
                "sex": "female",
                "address": {"lines": ["3 Mill Lane", "Northtown"], "postcode": "ns14mb"},
            }
        )
        record = record_from_person(person, "school|upn")
        assert (record.given_first, record.family_joined, record.postcode, record.address_key) == (
            ("amelia", "millie"),
            ("smith",),
            "NS1 4MB",
            "NS14MB:3",
        )
        assert record.identifiers == (("upn", "P938000001001"),)


def _reference(index: PersonIndex, incoming: PersonRecord, records: dict[str, str]) -> list:
    """``scored`` as it is specified: every record scored with ``score_levels(compare(..))``,
    the first best per child kept, highest weight (then child id) first."""
    best: dict[str, Candidate] = {}
    for record_id, child_id in records.items():
        other = index_records[record_id]
        score = score_levels(compare(incoming, other), index.model)
        if child_id not in best or score.weight > best[child_id].score.weight:
            band = band_for(score, index.model.thresholds)
            best[child_id] = Candidate(child_id, record_id, score, band)
    return sorted(best.values(), key=lambda c: (-c.score.weight, c.child_id))


index_records = {
    "health|j1": rec("health|j1", "Jayden", "Smith", date(2016, 5, 4)),
    "school|j2": rec("school|j2", "Jay", "Smith", date(2016, 5, 4), sex=None),
    "gp|j3": rec("gp|j3", "Jayden", "Smith", date(2016, 5, 4), identifiers=[("nhs", "1")]),
    "gp|o1": rec("gp|o1", "Oscar", "Smith", date(2016, 5, 4)),
    "police|e1": rec("police|e1", "Jaden", "Smyth", date(2016, 4, 5), postcode="NS9 9ZZ"),
}


class TestScored:
    """Candidates are scored exactly as ``score_levels(compare(...))`` scores a pair."""

    def test_every_candidate_as_the_reference_scores_it(self) -> None:
        """Weights, breakdowns, bands, best record per child and order match the reference."""
        children = {
            "health|j1": "ch-j",
            "school|j2": "ch-j",
            "gp|j3": "ch-k",
            "gp|o1": "ch-o",
            "police|e1": "ch-e",
        }
        index = PersonIndex()
        for record_id, child_id in children.items():
            index.add(index_records[record_id], child_id)
        incoming = rec("police|n", "Jayden", "Smith", date(2016, 5, 4), identifiers=[("nhs", "2")])
        scored = index.scored(incoming)
        assert scored == _reference(index, incoming, children)
        assert [(c.child_id, c.record_id, c.band) for c in scored] == [
            ("ch-j", "health|j1", Band.link),  # the better of ch-j's two records
            ("ch-k", "gp|j3", Band.no_match),  # a different NHS number never links
            ("ch-o", "gp|o1", Band.no_match),  # the sibling guard
            ("ch-e", "police|e1", Band.possible_match),
        ]

    def test_a_tie_keeps_the_first_record_seen(self) -> None:
        """Two records of one child scoring the same weight: the earlier-indexed one is kept."""
        index = PersonIndex()
        index.add(rec("a|1", "Jayden", "Smith", date(2016, 5, 4)), "ch-j")
        index.add(rec("b|1", "Jayden", "Smith", date(2016, 5, 4)), "ch-j")
        [candidate] = index.scored(rec("c|1", "Jayden", "Smith", date(2016, 5, 4)))
        assert (candidate.child_id, candidate.record_id) == ("ch-j", "a|1")

    def test_a_record_is_not_its_own_candidate(self) -> None:
        """Looking up a record already indexed does not score it against itself."""
        index = PersonIndex()
        jay = rec("a|1", "Jayden", "Smith", date(2016, 5, 4))
        index.add(jay, "ch-j")
        assert index.scored(jay) == []

    @pytest.mark.parametrize("shortlist", [1, 2, 3])
    @pytest.mark.parametrize(
        "incoming",
        [
            rec("police|a", "Jayden", "Smith", date(2016, 5, 4), identifiers=[("nhs", "2")]),
            rec("police|b", "Jaden", "Smyth", date(2016, 5, 4)),
            rec("police|c", "Oscar", "Smith", date(2016, 5, 4)),
            make_record(
                "school|d", given=["Jay"], family=["Jones-Smith"], birth_date=date(2016, 4, 5)
            ),
        ],
        ids=["other-nhs", "misspelt", "oscar", "partial"],
    )
    def test_a_shortlist_decides_as_the_whole_list(
        self, shortlist: int, incoming: PersonRecord
    ) -> None:
        """With a shortlist the decision is the same and the candidates are the best few."""
        index = PersonIndex()
        for record_id, record in index_records.items():
            index.add(record, f"ch-{record_id}")
        whole = index.match(incoming)
        short = index.match(incoming, shortlist=shortlist)
        kept = max(shortlist, 2)
        assert (short.band, short.child_id, short.linked_by) == (
            whole.band,
            whole.child_id,
            whole.linked_by,
        )
        assert short.candidates == whole.candidates[:kept]
        assert len(whole.candidates) == 5  # every indexed child: each shortlist cuts some


class TestHolds:
    """``holds`` says whether a record, as it is, is indexed under a child."""

    def test_equal_record_under_its_child(self, index: PersonIndex) -> None:
        """An equal record (another object) under the same child is held."""
        again = rec(
            "health|pt-1", "Jayden", "Smith", date(2016, 5, 4), identifiers=[("nhs", "9990001138")]
        )
        assert again is not JAYDEN
        assert index.holds(again, "ch-jayden")

    def test_other_child_changed_record_or_unknown_id_is_not(self, index: PersonIndex) -> None:
        """Another child, changed features or an unindexed record id are not held."""
        renamed = rec("health|pt-1", "Jayden", "Smyth", date(2016, 5, 4))
        unknown = rec("health|pt-9", "Jayden", "Smith", date(2016, 5, 4))
        assert not index.holds(JAYDEN, "ch-amelia")
        assert not index.holds(renamed, "ch-jayden")
        assert not index.holds(unknown, "ch-jayden")


class TestRemoveChild:
    """``remove_child`` forgets every record of a child, as an erasure requires."""

    def test_every_record_of_the_child_goes(self, index: PersonIndex) -> None:
        """Both of the child's records go; the same person is no longer linked or a candidate,
        by identifier or by score, and the other children are untouched."""
        index.add(rec("school|1", "Jay", "Smith", date(2016, 5, 4)), "ch-jayden")
        assert index.remove_child("ch-jayden") == ["health|pt-1", "school|1"]
        assert (index.child_of("health|pt-1"), index.child_of("school|1"), len(index)) == (
            None,
            None,
            2,
        )
        again = rec("police|1", "Jayden", "Smith", date(2016, 5, 4), identifiers=JAYDEN.identifiers)
        result = index.match(again)
        assert (result.band, result.child_id) == (Band.no_match, None)
        assert "ch-jayden" not in [c.child_id for c in result.candidates]
        amelia = index.match(rec("x", "Amelia", "Smith", date(2009, 9, 2), sex="female"))
        assert (amelia.band, amelia.child_id) == (Band.link, "ch-amelia")

    def test_no_block_or_identifier_keeps_a_removed_record(self, index: PersonIndex) -> None:
        """Every block entry left names an indexed record, and the identifier map holds only
        the identifiers of indexed records."""
        index.remove_child("ch-jayden")
        indexed = set(index._position.values())
        left = {p for b in index._blocks.values() for p in ((b,) if isinstance(b, int) else b)}
        assert left == indexed
        assert index._identifiers == {}

    def test_a_later_record_of_the_child_is_indexed_again(self, index: PersonIndex) -> None:
        """A record added for the child after the removal is found and links by identifier."""
        index.remove_child("ch-jayden")
        later = rec(
            "health|pt-9", "Jayden", "Smith", date(2016, 5, 4), identifiers=JAYDEN.identifiers
        )
        index.add(later, "ch-jayden")
        result = index.match(
            rec("police|1", "Jayden", "Smith", date(2016, 5, 4), identifiers=JAYDEN.identifiers)
        )
        assert (result.band, result.child_id, result.linked_by) == (Band.link, "ch-jayden", "nhs")
        assert index.remove_child("ch-jayden") == ["health|pt-9"]

    def test_a_child_with_no_records_removes_nothing(self, index: PersonIndex) -> None:
        """An unknown child (or one erased before) leaves the index as it was."""
        assert index.remove_child("ch-unknown") == []
        assert len(index) == 3
