"""Identity linking: which keys a record offers and which child it belongs to."""

from __future__ import annotations

import pytest

from hub.domain.identity import LinkDecision, LinkKey, decide_link, link_keys_for

pytestmark = pytest.mark.unit

NHS = LinkKey("nhs", "9990000018")
UPN = LinkKey("upn", "A938000000001")
LA = LinkKey("la", "LA-77")
POLICE_REF = LinkKey("ref:northshire-police", "NP-PERSON-0001")
HEALTH_REF = LinkKey("ref:northshire-health", "NH-0042")


class TestLinkKeysFor:
    """A record's keys are its identifiers then the agency's own ref, strongest first."""

    def test_identifiers_strongest_first_then_subject_ref(self) -> None:
        """NHS outranks UPN outranks LA id; the agency subject ref comes last."""
        keys = link_keys_for(
            [("la", "LA-77"), ("nhs", "9990000018"), ("upn", "A938000000001")],
            agency_id="northshire-police",
            subject="NP-PERSON-0001",
        )
        assert keys == [NHS, UPN, LA, POLICE_REF]

    def test_subject_ref_is_namespaced_by_agency(self) -> None:
        """The same subject string from two agencies gives two different keys."""
        police = link_keys_for([], agency_id="northshire-police", subject="X-1")
        health = link_keys_for([], agency_id="northshire-health", subject="X-1")
        assert police == [LinkKey("ref:northshire-police", "X-1")]
        assert health == [LinkKey("ref:northshire-health", "X-1")]

    def test_no_subject_gives_identifiers_only(self) -> None:
        """Without a subject only the identifiers are keys."""
        assert link_keys_for([("nhs", "9990000018")], agency_id="a-1", subject=None) == [NHS]

    def test_repeated_identifier_gives_one_key(self) -> None:
        """The same identifier twice is one key."""
        keys = link_keys_for(
            [("nhs", "9990000018"), ("nhs", "9990000018")], agency_id="a-1", subject=None
        )
        assert keys == [NHS]

    def test_nothing_to_link_on_gives_no_keys(self) -> None:
        """No identifiers and no subject: no keys."""
        assert link_keys_for([], agency_id="a-1", subject=None) == []


class TestDecideLink:
    """Link to the child of the strongest known key; report conflicts, never merge."""

    @pytest.mark.parametrize(
        ("keys", "known", "expected"),
        [
            pytest.param(
                [NHS, POLICE_REF],
                {},
                LinkDecision(child_id="ch-new", is_new_child=True, attach=(NHS, POLICE_REF)),
                id="new child gets every key",
            ),
            pytest.param(
                [NHS, POLICE_REF],
                {NHS: "ch-1"},
                LinkDecision(
                    child_id="ch-1", is_new_child=False, attach=(POLICE_REF,), linked_by=NHS
                ),
                id="linked by strongest key, new ref attached",
            ),
            pytest.param(
                [NHS, UPN, HEALTH_REF],
                {UPN: "ch-2"},
                LinkDecision(
                    child_id="ch-2", is_new_child=False, attach=(NHS, HEALTH_REF), linked_by=UPN
                ),
                id="only a weaker key known: linked by it, stronger key attached",
            ),
            pytest.param(
                [POLICE_REF],
                {POLICE_REF: "ch-3"},
                LinkDecision(child_id="ch-3", is_new_child=False, attach=(), linked_by=POLICE_REF),
                id="agency subject ref alone links",
            ),
            pytest.param(
                [NHS, UPN, POLICE_REF],
                {NHS: "ch-1", UPN: "ch-1", POLICE_REF: "ch-1"},
                LinkDecision(child_id="ch-1", is_new_child=False, attach=(), linked_by=NHS),
                id="every key already on the same child",
            ),
            pytest.param(
                [NHS, UPN, POLICE_REF],
                {NHS: "ch-1", UPN: "ch-2"},
                LinkDecision(
                    child_id="ch-1",
                    is_new_child=False,
                    attach=(POLICE_REF,),
                    conflicts=(UPN,),
                    linked_by=NHS,
                ),
                id="weaker key on another child is a conflict, left alone",
            ),
            pytest.param(
                [NHS, UPN, LA, POLICE_REF],
                {UPN: "ch-2", LA: "ch-3", POLICE_REF: "ch-4"},
                LinkDecision(
                    child_id="ch-2",
                    is_new_child=False,
                    attach=(NHS,),
                    conflicts=(LA, POLICE_REF),
                    linked_by=UPN,
                ),
                id="several conflicts all reported, none merged",
            ),
        ],
    )
    def test_decision(
        self, keys: list[LinkKey], known: dict[LinkKey, str], expected: LinkDecision
    ) -> None:
        """The decision for a record's keys and the keys already in the person index."""
        assert decide_link(keys, known, mint="ch-new") == expected

    def test_new_child_id_is_minted_when_not_given(self) -> None:
        """Without ``mint`` a new child gets an opaque ch-<32 hex> id."""
        decision = decide_link([NHS], {})
        assert decision.is_new_child
        assert decision.child_id.startswith("ch-")
        assert len(decision.child_id) == 3 + 32
        assert NHS.value not in decision.child_id

    def test_no_keys_raise(self) -> None:
        """A record with nothing to link on cannot be linked."""
        with pytest.raises(ValueError) as caught:
            decide_link([], {})
        assert str(caught.value) == "a record needs at least one link key to be linked"
