"""Households: shared addresses and related people link children, siblings and adults."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters import police
from adapters.common import AgencyRef
from contracts import AgencyKind, RelatedPerson
from hub.identity.households import (
    Households,
    Link,
    LinkKind,
    address_key,
    address_node,
    adult_key,
    links_from_person,
)

pytestmark = pytest.mark.unit

NOW = datetime(2024, 3, 6, 9, 0, tzinfo=UTC)

_HEADER = (
    "incident_ref,incident_type,occurred_at,location,risk_level,dash_ticks,summary,"
    "officer_role,person_ref,role,forename,surname,date_of_birth,sex,address,postcode"
)
_INCIDENT = "NP-1,Domestic abuse,2024-03-04T21:40:00+00:00"
_HOME = '"3 Mill Lane, Northtown",NS1 4MB'
INCIDENT = "\n".join(
    [
        _HEADER,
        f"{_INCIDENT},{_HOME.split(',NS')[0]},high,,Shouting.,Response officer,"
        f"NPP-1,Victim,Kelly,Smith,02/02/1988,F,{_HOME}",
        f"{_INCIDENT},,,,,,NPP-2,Suspect,Dean,Carter,1985-07-19,M,,",
        f"{_INCIDENT},,,,,,NPP-3,Child present,Jaden,Smyth,14/05/2016,M,{_HOME}",
        f"{_INCIDENT},,,,,,NPP-4,Child in household,Amelia,Smith,2009-09-02,F,{_HOME}",
    ]
).encode()


class TestAddressKey:
    """Postcode plus the first line's number or name."""

    @pytest.mark.parametrize(
        ("lines", "postcode", "key"),
        [
            (("3 Mill Lane", "Northtown"), "NS1 4MB", "NS14MB:3"),
            (("3 Mill Lane, Northtown",), "ns14mb", "NS14MB:3"),
            (("Flat 2, 18 Quay Street",), "NS2 7QT", "NS27QT:flat2/18"),
            (("Flat 2 18 Quay Street",), "NS2 7QT", "NS27QT:flat2/18"),
            (("Rose Cottage", "Mill Lane"), "NS1 4MB", "NS14MB:rose cottage"),
            (("12b Rowan Close",), "NS3 5RC", "NS35RC:12b"),
            (("3 Mill Lane",), None, None),
            ((), "NS1 4MB", None),
        ],
    )
    def test_address_key(
        self, lines: tuple[str, ...], postcode: str | None, key: str | None
    ) -> None:
        """Each address normalises to its key; no postcode, no key."""
        assert address_key(lines, postcode) == key


class TestHouseholds:
    """A police incident with two children and the mother's partner."""

    def test_incident_reaches_both_children_and_the_partner(self) -> None:
        """Both children share a household with their mother; the partner is connected."""
        result = police.parse(
            INCIDENT, "text/csv", AgencyRef("northshire-police", AgencyKind.police), now=NOW
        )
        assert result.errors == []
        households = Households()
        child_ids = {"NPP-3": "ch-jaden", "NPP-4": "ch-amelia"}
        for envelope in result.envelopes:
            for link in links_from_person(child_ids[envelope.subject], envelope.person):
                households.add(link)
        mother = adult_key(
            RelatedPerson.model_validate(
                {
                    "relationship": "household_member",
                    "identifiers": [{"system": "police", "value": "NPP-1"}],
                }
            )
        )
        partner = adult_key(
            RelatedPerson.model_validate(
                {
                    "relationship": "alleged_perpetrator",
                    "identifiers": [{"system": "police", "value": "NPP-2"}],
                }
            )
        )
        home = address_node("NS14MB:3")
        assert households.household_of("ch-jaden") == frozenset(
            {"ch-jaden", "ch-amelia", mother, home}
        )
        assert partner not in households.household_of("ch-jaden")
        # A later incident involving only the partner, elsewhere, reaches both children.
        assert households.children_reached([partner]) == frozenset({"ch-jaden", "ch-amelia"})
        # An incident at the address reaches them too; one elsewhere reaches nobody.
        assert households.children_reached([home]) == frozenset({"ch-jaden", "ch-amelia"})
        assert households.children_reached([address_node("NS9 9ZZ:1")]) == frozenset()

    def test_shared_address_joins_households(self) -> None:
        """Two children recorded at one address by different agencies share a household."""
        home = address_node("NS14MB:3")
        households = Households(
            [Link("ch-a", home, LinkKind.address), Link("ch-b", home, LinkKind.address)]
        )
        assert households.children_reached(["ch-a"]) == frozenset({"ch-a", "ch-b"})
        assert households.household_of("ch-unknown") == frozenset({"ch-unknown"})

    def test_node_keys_carry_no_personal_data(self) -> None:
        """Address and adult keys are hashes."""
        node = address_node("NS14MB:3")
        assert node.startswith("addr:") and "NS1" not in node and len(node) == 29
