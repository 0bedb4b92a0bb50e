"""The family around a child: which other children share its household, and how.

Pure logic over household links (``hub.identity.households``): people and addresses are
nodes; address and relationship links join a household; an adult only ``connected`` to a
household (a parent's partner living elsewhere) reaches it without joining it. Node keys are
opaque, so what this answers is ids and a plain-language connection, never an address.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hub.identity.households import Link, LinkKind

__all__ = ["Connection", "FamilyMember", "household_children"]


class Connection:
    """How another child is connected to this one, in words a practitioner reads."""

    same_address = "lives at the same address"
    same_carer = "shares a parent or carer"
    same_adult_connected = "an adult linked to both households"
    same_household = "in the same household"


@dataclass(frozen=True, slots=True)
class FamilyMember:
    """Another child of the household and how it is connected to the child asked about."""

    child_id: str
    connection: str


def _neighbours(links: Iterable[Link]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for link in links:
        if link.kind is LinkKind.connected:
            continue
        graph.setdefault(link.a, set()).add(link.b)
        graph.setdefault(link.b, set()).add(link.a)
    return graph


def household_children(links: Sequence[Link], group: Sequence[str]) -> list[FamilyMember]:
    """Every other child in the household of ``group`` (a child and those merged into it).

    A child sharing an address node directly is at the same address; one sharing a parent or
    carer node is the child of the same carer; one only reached through others is in the
    same household; one sharing only a ``connected`` adult is linked through that adult.
    Ordered by how close the connection is, then by id.
    """
    own = set(group)
    graph = _neighbours(links)
    reached: set[str] = set()
    frontier = [n for n in own if n in graph]
    seen = set(frontier)
    while frontier:
        node = frontier.pop()
        for other in graph.get(node, ()):
            if other not in seen:
                seen.add(other)
                frontier.append(other)
                if other.startswith("ch-") and other not in own:
                    reached.add(other)
    direct = {n for member in own for n in graph.get(member, ())}
    connected_adults = {x.b for x in links if x.kind is LinkKind.connected and x.a in own}
    via_adult = {
        x.a
        for x in links
        if x.kind is LinkKind.connected and x.b in connected_adults and x.a not in own
    }
    order = [
        Connection.same_address,
        Connection.same_carer,
        Connection.same_household,
        Connection.same_adult_connected,
    ]
    members: list[FamilyMember] = []
    for child in reached | via_adult:
        mine = graph.get(child, set()) & direct
        if any(n.startswith("addr:") for n in mine):
            connection = Connection.same_address
        elif any(n.startswith("adult:") for n in mine):
            connection = Connection.same_carer
        elif child in reached:
            connection = Connection.same_household
        else:
            connection = Connection.same_adult_connected
        members.append(FamilyMember(child, connection))
    return sorted(members, key=lambda m: (order.index(m.connection), m.child_id))
