"""Identity at ingest: probabilistic matching for records no identifier links, and households.

Ingest links on validated identifiers first (decision 0003). When a record's keys name no
child yet, the person index is asked before a new child is minted: a record in the *link*
band joins the child it matched (its keys are attached there, so the agency's next record
links deterministically); a *possible match* gets its own provisional child and a review for
a person to decide (never merged silently); *no match* mints a new child. Every record is
kept in the index under its child, and the people and addresses it names become household
links. Everything is written in ingest's own transaction.

The index lives in the ingest process, loaded from the store on first use and refreshed
before each batch with the records changed since (other ingest processes' records, and
merges decided through the review API). The rows a refresh can read again (the process's own
last writes among them) are remembered with their sealed text, so they are not unsealed twice.
Each refresh first reads the erasures recorded in the audit trail since the last one
(retention's or an operator's, which delete the child's records): their records leave the index
and that memory, so an erased child's matching data is neither kept nor matched after the next
batch starts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import Envelope
from hub.domain import identity as domain_identity
from hub.domain.identity import LinkDecision, LinkKey
from hub.identity.households import Link, links_from_person
from hub.identity.index import Candidate, PersonIndex
from hub.identity.records import PersonRecord, record_from_person
from hub.identity.scoring import Band, MatchModel
from hub.identity.store import IdentityStore, OpenedRecords, Review, pending_review
from hub.observability import get_logger

__all__ = ["IdentityLinker", "Resolution"]

log = get_logger(__name__)

Digest = Callable[[str, str], str]


@dataclass(frozen=True, slots=True)
class Resolution:
    """Which child a record belongs to, how it was decided, and any review it needs."""

    decision: LinkDecision
    linked_by: str
    review: Candidate | None = None


@dataclass(slots=True)
class _Writes:
    records: list[tuple[PersonRecord, str]] = field(default_factory=list)
    reviews: list[Review] = field(default_factory=list)
    links: list[tuple[Link, str | None]] = field(default_factory=list)


class IdentityLinker:
    """Resolves records to children beyond exact identifiers; one per ingest processor."""

    def __init__(
        self, identity: IdentityStore, digest: Digest, *, model: MatchModel | None = None
    ) -> None:
        self._identity = identity
        self._keyed_digest = digest
        self._digests: dict[tuple[str, str], str] = {}
        self._model = model
        self._index: PersonIndex | None = None
        self._mark: int | None = None
        """The person-record version from which the next refresh reads (ADR 0022)."""
        self._erasure_seq = 0
        """The audit trail's seq up to which erasures are applied (set at the first load)."""
        self._writes = _Writes()
        self._opened: OpenedRecords = {}
        """Sealed rows a refresh may read again (the last writes, and rows at the mark).

        Invalidation: an entry stands in for a row only while the row's sealed text is
        byte-identical (a fresh nonce per seal, so any other write differs and is opened);
        entries older than the mark are dropped (a refresh reads nothing older); ``discard``
        clears it. The row's child always comes from the store, never from here.
        """

    async def refresh(self, conn: AsyncConnection) -> None:
        """Bring the index up to date with the store (the whole store the first time).

        Records are read by version, not by the writers' clocks (ADR 0022): the mark for the
        next refresh is taken before the read, below every write still running, so a write
        committed after this read (whenever its process stamped it) is read next time.
        Erasures are read (from the audit trail, in commit order, each once) and applied
        before the changed records, in the same connection. Applied first, an erasure removes
        only records read or written before it was seen: the rows it deleted cannot come back
        in the records read after it, so any record of the child read then (or written by
        this process later) was written after the erasure and is kept. One gap is left, on
        the safe side: an erasure committed between this refresh's two reads is applied next
        time, and would drop a record of the child written after it and read in between; that
        is a missed match, never erased data kept.
        """
        if self._index is None:
            self._index = PersonIndex(self._model)
            # Erasures recorded so far deleted their rows: nothing of theirs is loaded below.
            self._erasure_seq = await self._identity.erasure_mark(conn)
        else:
            await self._apply_erasures(conn)
        mark = await self._identity.change_mark(conn)
        changed = await self._identity.records_since(conn, self._mark, opened=self._opened)
        for record, child_id, _ in changed:
            if not self._index.holds(record, child_id):  # e.g. what this process just wrote
                self._index.add(record, child_id)
        self._mark = mark
        if changed:
            log.debug("identity.index_refreshed", changed=len(changed), indexed=len(self._index))
        self._opened = {k: v for k, v in self._opened.items() if v[2] >= mark}

    async def _apply_erasures(self, conn: AsyncConnection) -> None:
        """Forget the records (and kept sealed rows) of children erased since the last read."""
        assert self._index is not None
        erased, self._erasure_seq = await self._identity.erasures_after(conn, self._erasure_seq)
        unindexed: list[str] = []
        records = 0
        for child_id in dict.fromkeys(erased):
            if removed := self._index.remove_child(child_id):
                unindexed.append(child_id)
                records += len(removed)
                for record_id in removed:
                    self._opened.pop(record_id, None)
        if unindexed:
            log.info("identity.erased_children_unindexed", child_ids=unindexed, records=records)

    def digest(self, system: str, value: str) -> str:
        """The keyed digest of an identifier, computed once per batch.

        Ingest digests a record's identifiers for its link keys and again for its person
        record; the second is a look-up. The memo is emptied by ``flush`` and ``discard``,
        so identifiers are held no longer than the batch.
        """
        digest = self._digests.get((system, value))
        if digest is None:
            digest = self._digests[system, value] = self._keyed_digest(system, value)
        return digest

    def record_for(self, env: Envelope, keys: list[LinkKey]) -> PersonRecord:
        """The person record of an envelope: names normalised, identifiers as digests.

        Its id names the agency's record of the person without personal data: the digest of
        the agency's subject reference, else of its strongest identifier, else of the event.
        """
        if env.subject:
            local = f"ref:{self.digest(f'ref:{env.agency_id}', env.subject)[:40]}"
        elif keys:
            local = f"{keys[0].system}:{keys[0].value[:40]}"
        else:
            local = f"event:{hashlib.sha256(env.id.encode()).hexdigest()[:40]}"
        return record_from_person(env.person, f"{env.agency_id}:{local}", digest=self.digest)

    def resolve(
        self, env: Envelope, keys: list[LinkKey], decision: LinkDecision | None, *, now: datetime
    ) -> Resolution | None:
        """Decide the child of one record; None when there is nothing to link on at all.

        ``decision`` is the deterministic decision from its keys (None without keys). Only a
        decision that would mint a new child is reconsidered; the record is indexed either way
        and its household links are queued for ``flush``.
        """
        assert self._index is not None, "refresh() first"
        record = self.record_for(env, keys)
        resolution = self._resolve(env, keys, decision, record)
        if resolution is None:
            return None
        child_id = resolution.decision.child_id
        if self._index.child_of(record.record_id) is None:
            self._index.add(record, child_id)
        self._writes.records.append((record, child_id))
        if resolution.review is not None:
            self._writes.reviews.append(
                pending_review(record.record_id, child_id, resolution.review, now=now)
            )
        self._writes.links.extend(
            (self._opaque(link), env.id) for link in links_from_person(child_id, env.person)
        )
        return resolution

    def _resolve(
        self,
        env: Envelope,
        keys: list[LinkKey],
        decision: LinkDecision | None,
        record: PersonRecord,
    ) -> Resolution | None:
        assert self._index is not None
        if decision is not None and not decision.is_new_child:
            linked_by = decision.linked_by.system if decision.linked_by else keys[0].system
            return Resolution(decision, linked_by)
        known = self._index.child_of(record.record_id)
        if known is not None:  # this agency record was seen before (e.g. a retried batch)
            return Resolution(
                LinkDecision(child_id=known, is_new_child=False, attach=tuple(keys)), "record"
            )
        matchable = record.birth_date is not None and record.family_tokens and record.given_first
        # Only the best candidate is used here: the index builds no others (with a large
        # block, e.g. many children of one name and birth date, that was most of a lookup).
        result = self._index.match(record, shortlist=1) if matchable else None
        if result is not None and result.band is Band.link and result.child_id is not None:
            log.info(
                "identity.linked_by_score",
                event_id=env.id,
                child_id=result.child_id,
                weight=round(result.candidates[0].score.weight, 2) if result.candidates else None,
            )
            return Resolution(
                LinkDecision(child_id=result.child_id, is_new_child=False, attach=tuple(keys)),
                result.linked_by or "score",
            )
        if decision is None and not matchable:
            return None
        fresh = decision or LinkDecision(
            child_id=domain_identity.new_child_id(env.id), is_new_child=True, attach=tuple(keys)
        )
        linked_by = keys[0].system if keys else "new"
        if result is not None and result.band is Band.possible_match and result.candidates:
            top = result.candidates[0]
            log.info(
                "identity.possible_match_queued",
                event_id=env.id,
                child_id=fresh.child_id,
                candidate_child_id=top.child_id,
            )
            return Resolution(fresh, linked_by, review=top)
        return Resolution(fresh, linked_by)

    def _opaque(self, link: Link) -> Link:
        """The link with adult and address nodes re-keyed by the hub's keyed digest, so the
        stored graph cannot be reversed by hashing guessed addresses or identifiers."""

        def node(n: str) -> str:
            if n.startswith("ch-"):
                return n
            prefix = n.split(":", 1)[0]
            return f"{prefix}:{self._keyed_digest('household', n)[:32]}"

        return Link(node(link.a), node(link.b), link.kind)

    async def flush(self, conn: AsyncConnection, *, now: datetime) -> int:
        """Write the batch's records, reviews and household links; returns reviews queued."""
        writes, self._writes = self._writes, _Writes()
        self._digests.clear()
        sealed, version = await self._identity.save_records_in(conn, writes.records, now=now)
        records = {record.record_id: record for record, _ in writes.records}
        self._opened.update(
            (record_id, (text, records[record_id], version)) for record_id, text in sealed.items()
        )
        for review in writes.reviews:
            await self._identity.queue_review_in(conn, review)
        await self._identity.add_household_links_in(conn, writes.links, now=now)
        return len(writes.reviews)

    def discard(self) -> None:
        """Forget the batch's pending writes and reload the index next time (the batch
        failed, so what it indexed may not be in the store)."""
        self._writes = _Writes()
        self._digests.clear()
        self._index = None
        self._mark = None
        self._erasure_seq = 0
        self._opened = {}
