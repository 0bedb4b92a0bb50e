"""The in-memory person index: blocking keys so a lookup compares only a few candidates.

Every record the hub has accepted is indexed under its blocking keys; a lookup gathers the
records sharing any key with the incoming one, compares and scores only those, and answers a
``MatchResult``. Validated identifiers (NHS number, UPN, local-authority and police ids) link
deterministically before any scoring, as decision 0003 has it.

Blocking keys (a record is found when any one agrees):

* ``i`` — each identifier, exact;
* ``df`` — birth date + family-name metaphone (lookups also try the day/month swap);
* ``dg`` — birth date + given-name metaphone, nickname forms included (catches surname changes);
* ``ny`` — family metaphone + given metaphone + birth year (catches day and month errors);
* ``pg`` — full postcode + given metaphone (catches a wrong birth date and a new surname).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import jellyfish

from hub.identity.compare import COMPARISONS
from hub.identity.records import DETERMINISTIC_SYSTEMS, PersonRecord
from hub.identity.scoring import Band, LevelWeight, MatchModel, Score, band_for, default_model

__all__ = ["Candidate", "MatchResult", "PersonIndex", "blocking_keys"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A child the record may be, with the best-scoring of that child's records."""

    child_id: str
    record_id: str
    score: Score
    band: Band


@dataclass(frozen=True, slots=True)
class MatchResult:
    """What the index made of a record: the band, the child when linked, and the candidates.

    ``linked_by`` is the identifier system of a deterministic link, ``"score"`` for a
    probabilistic one, None otherwise. ``child_id`` is set only for ``Band.link``.
    """

    band: Band
    child_id: str | None
    candidates: tuple[Candidate, ...]
    linked_by: str | None = None


def _swapped(day: date) -> date | None:
    if day.day > 12 or day.day == day.month:
        return None
    return date(day.year, day.day, day.month)


def _given_keys(record: PersonRecord) -> set[str]:
    metas = set(record.given_meta)
    metas.update(jellyfish.metaphone(f) or f for f in record.given_forms)
    return metas


def blocking_keys(record: PersonRecord, *, lookup: bool = False) -> set[str]:
    """The keys a record is indexed under; a lookup also tries a day/month-swapped birth date."""
    keys = {f"i:{s}:{v}" for s, v in record.identifiers}
    givens = _given_keys(record)
    dates = [record.birth_date] if record.birth_date else []
    if lookup and record.birth_date and (swap := _swapped(record.birth_date)):
        dates.append(swap)
    for day in dates:
        iso = day.isoformat()
        keys.update(f"df:{iso}:{fm}" for fm in record.family_meta)
        keys.update(f"dg:{iso}:{gm}" for gm in givens)
    if record.birth_date:
        year = record.birth_date.year
        keys.update(f"ny:{fm}:{gm}:{year}" for fm in record.family_meta for gm in givens)
    if record.postcode:
        keys.update(f"pg:{record.postcode}:{gm}" for gm in givens)
    return keys


class _LevelWeights(dict[tuple[str, str], LevelWeight]):
    """One shared ``LevelWeight`` per comparison level, made on first use.

    There are a few dozen levels in all, so a pair's breakdown is looked up, not built: a
    lookup meets every record in its blocks, and new objects per pair were a third of its cost.
    """

    def __init__(self, model: MatchModel) -> None:
        super().__init__()
        self._model = model

    def __missing__(self, key: tuple[str, str]) -> LevelWeight:
        comparison, level = key
        weight = self[key] = LevelWeight(comparison, level, self._model.weight(comparison, level))
        return weight


class PersonIndex:
    """Records by blocking key, each record belonging to one canonical child."""

    def __init__(self, model: MatchModel | None = None) -> None:
        self.model = model or default_model()
        self._level_weights = _LevelWeights(self.model)
        self._comparisons = tuple(COMPARISONS.items())
        self._records: list[PersonRecord | None] = []
        self._child_of: list[str] = []
        self._position: dict[str, int] = {}
        self._positions_of: dict[str, list[int]] = {}
        self._blocks: dict[int, list[int] | int] = {}
        self._identifiers: dict[tuple[str, str], str] = {}

    def __len__(self) -> int:
        return len(self._position)

    def add(self, record: PersonRecord, child_id: str) -> None:
        """Index a record as belonging to ``child_id`` (re-adding a record id moves it)."""
        if record.record_id in self._position:
            self.remove(record.record_id)
        position = len(self._records)
        self._records.append(record)
        self._child_of.append(child_id)
        self._position[record.record_id] = position
        self._positions_of.setdefault(child_id, []).append(position)
        for key in blocking_keys(record):
            hashed = hash(key)
            block = self._blocks.get(hashed)
            if block is None:
                self._blocks[hashed] = position
            elif isinstance(block, int):
                self._blocks[hashed] = [block, position]
            else:
                block.append(position)
        for identifier in record.identifiers:
            self._identifiers.setdefault(identifier, child_id)

    def holds(self, record: PersonRecord, child_id: str) -> bool:
        """Whether this very record (equal in every field) is indexed under ``child_id``."""
        position = self._position.get(record.record_id)
        return (
            position is not None
            and self._child_of[position] == child_id
            and self._records[position] == record
        )

    def remove(self, record_id: str) -> None:
        """Forget a record: the record, its blocking entries and the identifiers it gave."""
        position = self._position.pop(record_id)
        record = self._records[position]
        self._records[position] = None
        child_id = self._child_of[position]
        held = self._positions_of[child_id]
        held.remove(position)
        if not held:
            del self._positions_of[child_id]
        if record is None:
            return
        for key in blocking_keys(record):  # the same keys ``add`` appended it under
            hashed = hash(key)
            block = self._blocks[hashed]
            if isinstance(block, int):
                del self._blocks[hashed]
            else:
                block.remove(position)
                if len(block) == 1:
                    self._blocks[hashed] = block[0]
        for identifier in record.identifiers:
            if self._identifiers.get(identifier) == child_id:
                del self._identifiers[identifier]

    def remove_child(self, child_id: str) -> list[str]:
        """Forget every record of a child (e.g. erased); the ids removed, none if it had none."""
        removed = []
        for position in tuple(self._positions_of.get(child_id, ())):
            record = self._records[position]
            if record is not None:
                removed.append(record.record_id)
                self.remove(record.record_id)
        return removed

    def move(self, record_id: str, child_id: str) -> None:
        """Reassign a record to another child (a merge or an un-merge)."""
        position = self._position[record_id]
        record = self._records[position]
        if record is not None:
            self.add(record, child_id)

    def child_of(self, record_id: str) -> str | None:
        """The child a record is linked to, if it is indexed."""
        position = self._position.get(record_id)
        return None if position is None else self._child_of[position]

    def _candidates(self, record: PersonRecord) -> Iterator[int]:
        seen: set[int] = set()
        for key in blocking_keys(record, lookup=True):
            block = self._blocks.get(hash(key))
            if block is None:
                continue
            for position in (block,) if isinstance(block, int) else block:
                if position not in seen:
                    seen.add(position)
                    yield position

    def scored(self, record: PersonRecord, *, best: int | None = None) -> list[Candidate]:
        """Every candidate child, best-scoring record per child, highest weight first.

        Scores are ``score_levels(compare(record, other), model)``, summed in the same order,
        so the weights are the same floats; a ``Candidate`` is built only for each child's
        best record, and with ``best`` only for the first ``best`` of those.
        """
        levels, comparisons = self._level_weights, self._comparisons
        per_child: dict[str, tuple[float, str, tuple[LevelWeight, ...]]] = {}
        for position in self._candidates(record):
            other = self._records[position]
            if other is None or other.record_id == record.record_id:
                continue
            breakdown = tuple([levels[name, fn(record, other)] for name, fn in comparisons])
            weight = sum([b.weight for b in breakdown])
            child_id = self._child_of[position]
            current = per_child.get(child_id)
            if current is None or weight > current[0]:
                per_child[child_id] = (weight, other.record_id, breakdown)
        order = [(-weight, child_id) for child_id, (weight, _, _) in per_child.items()]
        order = sorted(order) if best is None else heapq.nsmallest(best, order)
        thresholds = self.model.thresholds
        candidates = []
        for _, child_id in order:
            weight, record_id, breakdown = per_child[child_id]
            score = Score(weight, breakdown)
            candidates.append(Candidate(child_id, record_id, score, band_for(score, thresholds)))
        return candidates

    def match(self, record: PersonRecord, *, shortlist: int | None = None) -> MatchResult:
        """Decide which child a record is: identifiers first, then the best score's band.

        Two different children both in the link band is ambiguous and queued for review,
        never resolved silently. With ``shortlist`` the result carries only the best that
        many candidates (two at least: the decision reads the first two), and only those
        are built; the decision is the same.
        """
        best = None if shortlist is None else max(shortlist, 2)
        candidates = tuple(self.scored(record, best=best))
        for system in DETERMINISTIC_SYSTEMS:
            value = record.identifier(system)
            child_id = self._identifiers.get((system, value)) if value else None
            if child_id is not None:
                return MatchResult(Band.link, child_id, candidates, linked_by=system)
        if not candidates or candidates[0].band is Band.no_match:
            return MatchResult(Band.no_match, None, candidates)
        top = candidates[0]
        if top.band is Band.link:
            rival = len(candidates) > 1 and candidates[1].band is Band.link
            if not rival:
                return MatchResult(Band.link, top.child_id, candidates, linked_by="score")
        return MatchResult(Band.possible_match, None, candidates)
