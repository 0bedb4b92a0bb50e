"""Households: link children, siblings and adults through shared addresses and relationships.

Pure logic. People and addresses are nodes; an ``address`` or ``related`` link puts two nodes in
the same household (union-find), so a child's mother and the child's sister, or two children
at one address, share one household. An alleged perpetrator (a parent's partner who may live
elsewhere) is ``connected`` to the household without joining it, so an incident involving them
reaches every child of that household without pulling their own address's residents in.

Node keys carry no personal data: canonical child ids (``ch-…``), ``adult:<hash>`` for adults
and ``addr:<hash>`` for normalised address keys.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from contracts import Person, RelatedPerson, Relationship
from hub.identity.names import normalise_name

__all__ = [
    "Households",
    "Link",
    "LinkKind",
    "address_key",
    "address_node",
    "adult_key",
    "links_from_person",
]

_FLAT = {"flat", "apartment", "apt", "unit", "room", "maisonette"}
_NUMBER = re.compile(r"^\d+[a-z]?$")
_WORDS = re.compile(r"[^a-z0-9]+")
_JOINING = {Relationship.mother, Relationship.father, Relationship.carer, Relationship.sibling}
_JOINING |= {Relationship.household_member}


def _words(text: str) -> list[str]:
    return _WORDS.sub(" ", text.lower()).split()


def address_key(lines: tuple[str, ...], postcode: str | None) -> str | None:
    """Return ``"<postcode>:<house number or name>"`` for an address, or None without postcode.

    ``("3 Mill Lane", "Northtown")`` + ``NS1 4MB`` -> ``"NS14MB:3"``; a flat keeps its number
    (``"Flat 2, 18 Quay Street"`` -> ``"…:flat2/18"``); a named house keeps its name.
    """
    if not postcode:
        return None
    compact = "".join(postcode.split()).upper()
    segments = [w for w in (_words(s) for line in lines for s in line.split(",")) if w]
    if not segments:
        return None
    first = segments[0]
    if first[0] in _FLAT and len(first) > 1:
        rest = first[2:] or (segments[1] if len(segments) > 1 else [])
        building = rest[0] if rest and _NUMBER.match(rest[0]) else " ".join(rest)
        return f"{compact}:flat{first[1]}/{building}"
    if _NUMBER.match(first[0]):
        return f"{compact}:{first[0]}"
    return f"{compact}:{' '.join(first)}"


def _digest(prefix: str, text: str) -> str:
    return f"{prefix}:{hashlib.sha256(text.encode('utf-8')).hexdigest()[:24]}"


def address_node(key: str) -> str:
    """The household-graph node of a normalised address key (hashed: no address in the key)."""
    return _digest("addr", key)


def adult_key(related: RelatedPerson) -> str | None:
    """A stable, opaque key for a related adult: by identifier, else by name and birth date."""
    if related.identifiers:
        return _digest("adult", related.identifiers[0].key)
    if related.name is None:
        return None
    who = f"{normalise_name(related.name.given)}|{normalise_name(related.name.family)}"
    return _digest("adult", f"{who}|{related.birth_date or ''}")


class LinkKind(StrEnum):
    """Why two nodes are linked."""

    address = "address"
    related = "related"
    connected = "connected"


@dataclass(frozen=True, slots=True)
class Link:
    """One edge of the household graph: ``a`` and ``b`` and why."""

    a: str
    b: str
    kind: LinkKind


def links_from_person(child_id: str, person: Person) -> list[Link]:
    """The links one event's person gives: their address and every related person."""
    links: list[Link] = []
    if person.address is not None:
        key = address_key(person.address.lines, person.address.postcode)
        if key is not None:
            links.append(Link(child_id, address_node(key), LinkKind.address))
    for related in person.related:
        key_of = adult_key(related)
        if key_of is None:
            continue
        kind = LinkKind.related if related.relationship in _JOINING else LinkKind.connected
        links.append(Link(child_id, key_of, kind))
    return links


class Households:
    """The household graph: which people share a household and who is connected to one."""

    def __init__(self, links: Iterable[Link] = ()) -> None:
        self._parent: dict[str, str] = {}
        self._members: dict[str, set[str]] = {}
        self._connected: dict[str, set[str]] = {}
        for link in links:
            self.add(link)

    def _find(self, node: str) -> str:
        if node not in self._parent:
            self._parent[node] = node
            self._members[node] = {node}
            return node
        root = node
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[node] != root:
            self._parent[node], node = root, self._parent[node]
        return root

    def add(self, link: Link) -> None:
        """Add one link (idempotent)."""
        if link.kind is LinkKind.connected:
            self._find(link.a)
            self._connected.setdefault(link.b, set()).add(link.a)
            return
        a, b = self._find(link.a), self._find(link.b)
        if a == b:
            return
        if len(self._members[a]) < len(self._members[b]):
            a, b = b, a
        self._parent[b] = a
        self._members[a] |= self._members.pop(b)

    def household_of(self, node: str) -> frozenset[str]:
        """Every node in the same household as ``node`` (itself alone when unknown)."""
        if node not in self._parent:
            return frozenset({node})
        return frozenset(self._members[self._find(node)])

    def children_reached(self, nodes: Iterable[str]) -> frozenset[str]:
        """Every child (``ch-…``) in a household of, or connected to, any of ``nodes``.

        ``nodes`` are the people and addresses an incident involves, e.g. a partner's adult key
        and the incident address's node.
        """
        roots: set[str] = set()
        for node in nodes:
            if node in self._parent:
                roots.add(self._find(node))
            for member in self._connected.get(node, ()):
                roots.add(self._find(member))
        return frozenset(n for root in roots for n in self._members[root] if n.startswith("ch-"))
