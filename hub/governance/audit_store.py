"""The audit trail's store: serialised appends to one hash chain, checkpoints, search, verify.

Appends lock the chain's head row first (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite
an ``UPDATE`` of the head, which takes the single writer lock), so there is exactly one chain
whatever the number of processes. Every ``checkpoint_every`` records the head hash is stored,
signed with an Ed25519 key when one is configured. ``verify`` reads the whole chain and says
where it was changed, cut, added to or reordered.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.governance.audit import GENESIS, AuditEntry, AuditRecord, canonical_json, record_hash
from hub.governance.tables import audit_checkpoints, audit_head, audit_records
from hub.observability import get_logger
from hub.store.times import as_utc

__all__ = [
    "AuditPage",
    "AuditQuery",
    "AuditTrail",
    "CheckpointSigner",
    "Problem",
    "VerifyReport",
    "load_checkpoint_signer",
]

log = get_logger(__name__)

_KEY_FILE = "audit-checkpoint-key.pem"
_PAGE = 1000
_MAX_SKIPPED = 1000  # rows examined one by one when a link skips over them
_LOGGED_ONE_BY_ONE = 8
"""Appends of more records than this log one event for them all (with the seq range)."""
_INSERT_RECORD = audit_records.insert()
_INSERT_CHECKPOINT = audit_checkpoints.insert()
_LOCK_HEAD_SQLITE = (
    update(audit_head)
    .where(audit_head.c.id == 1)
    .values(seq=audit_head.c.seq)
    .returning(audit_head.c.seq, audit_head.c.hash)
)
_LOCK_HEAD = select(audit_head).where(audit_head.c.id == 1).with_for_update()
_SET_HEAD = (
    update(audit_head)
    .where(audit_head.c.id == 1)
    .values(seq=bindparam("b_seq"), hash=bindparam("b_hash"))
)
_COLUMNS = ("action", "who", "role", "agency_id", "child_id", "effect")


class CheckpointSigner:
    """Signs checkpoints ``"<seq>:<hash>"`` with an Ed25519 key and checks them."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = "audit-" + hashlib.sha256(raw).hexdigest()[:16]

    def sign(self, seq: int, head: str) -> str:
        return base64.b64encode(self._key.sign(f"{seq}:{head}".encode())).decode()

    def valid(self, seq: int, head: str, signature: str) -> bool:
        try:
            self._key.public_key().verify(base64.b64decode(signature), f"{seq}:{head}".encode())
        except (InvalidSignature, ValueError):
            return False
        return True


def load_checkpoint_signer(keys_dir: Path) -> CheckpointSigner:
    """The signer whose key is ``keys_dir/audit-checkpoint-key.pem`` (made, mode 0600, once)."""
    path = keys_dir / _KEY_FILE
    if not path.exists():
        keys_dir.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        if path.exists():  # another process made it first: use theirs
            tmp.unlink(missing_ok=True)
        else:
            tmp.replace(path)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return CheckpointSigner(key)


@dataclass(frozen=True, slots=True)
class Problem:
    """One place where the trail is not as it was written: the seq, the kind, in words."""

    seq: int
    kind: str  # changed | deleted | inserted | reordered | checkpoint
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of ``verify``: records read, the head, checkpoints checked, every problem."""

    records: int
    head_seq: int
    head_hash: str
    checkpoints: int
    signed_checkpoints: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "checkpoints": self.checkpoints,
            "signed_checkpoints": self.signed_checkpoints,
            "problems": [p.as_dict() for p in self.problems],
        }


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters for searching the trail (all optional), newest first, paged by ``before_seq``."""

    child_id: str | None = None
    who: str | None = None
    agency_id: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_seq: int | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of records, newest first; ``next_before_seq`` fetches the next (None: last)."""

    records: tuple[AuditRecord, ...]
    next_before_seq: int | None


def _record(row: Any) -> AuditRecord:
    return AuditRecord(
        seq=row.seq, hash=row.hash, prev_hash=row.prev_hash, body=json.loads(row.record)
    )


@dataclass
class _Verifier:
    conn: AsyncConnection
    problems: dict[tuple[int, str, str], Problem] = field(default_factory=dict)

    def add(self, seq: int, kind: str, detail: str) -> None:
        # One problem per record and kind (the first words win); checkpoints may fail two ways.
        key = (seq, kind, detail if kind == "checkpoint" else "")
        self.problems.setdefault(key, Problem(seq, kind, detail))

    async def seq_of(self, digest: str) -> int | None:
        if digest == GENESIS:
            return 0
        found = await self.conn.execute(
            select(audit_records.c.seq).where(audit_records.c.hash == digest)
        )
        return found.scalar_one_or_none()

    async def follower_of(self, digest: str) -> int | None:
        found = await self.conn.execute(
            select(audit_records.c.seq).where(audit_records.c.prev_hash == digest).limit(1)
        )
        return found.scalar_one_or_none()

    async def hash_at(self, seq: int) -> str | None:
        found = await self.conn.execute(
            select(audit_records.c.hash).where(audit_records.c.seq == seq)
        )
        return found.scalar_one_or_none()

    def content(self, row: Any) -> None:
        """The record text matches its hash, and the indexed columns match the text."""
        if record_hash(row.record) != row.hash:
            self.add(row.seq, "changed", "its content does not match its hash")
            return
        body = json.loads(row.record)
        if body.get("prev_hash") != row.prev_hash:
            self.add(row.seq, "changed", "its prev_hash column differs from the hashed record")
        if as_utc(row.at) != datetime.fromisoformat(body["at"]):
            self.add(row.seq, "changed", "its time column differs from the hashed record")
        for column in _COLUMNS:
            if getattr(row, column) != body.get(column):
                self.add(row.seq, "changed", f"its {column} column differs from the hashed record")

    async def link(self, row: Any, prev_seq: int, prev_hash: str) -> None:
        """The record follows the one before it; if not, say what happened."""
        seq = row.seq
        if seq != prev_seq + 1:
            first, last = prev_seq + 1, seq - 1
            what = f"record {first} is" if first == last else f"records {first}-{last} are"
            self.add(first, "deleted", f"{what} missing")
            return
        if row.prev_hash == prev_hash:
            return
        before = await self.seq_of(row.prev_hash)
        if before is None:
            follower = await self.follower_of(prev_hash)
            if await self.follower_of(row.hash) is None and follower is not None and follower > seq:
                self.add(seq, "inserted", "no record follows it: it was put into the chain")
            else:
                self.add(
                    seq,
                    "deleted",
                    "the record it follows is missing: deleted with later records renumbered, "
                    "or changed and re-hashed",
                )
        elif before > seq:
            self.add(seq, "reordered", f"it follows the record now at seq {before}")
        elif before < prev_seq:
            for skipped in range(before + 1, min(prev_seq, before + _MAX_SKIPPED) + 1):
                digest = await self.hash_at(skipped)
                if digest is not None and await self.follower_of(digest) is not None:
                    self.add(skipped, "reordered", "it is out of its place in the chain")
                else:
                    self.add(skipped, "inserted", "no record follows it: it was put into the chain")
        else:
            self.add(seq, "changed", "its prev_hash does not name the record before it")


class AuditTrail:
    """The append-only audit trail over one async engine (SQLite or PostgreSQL)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Callable[[], datetime] | None = None,
        checkpoint_every: int = 100,
        signer: CheckpointSigner | None = None,
    ) -> None:
        self.engine = engine
        self._clock = clock or (lambda: datetime.now(UTC))
        self._every = checkpoint_every
        self._signer = signer

    async def append(self, *entries: AuditEntry) -> list[AuditRecord]:
        """Append entries (in order, one transaction) and return their records."""
        async with self.engine.begin() as conn:
            return await self.append_in(conn, entries)

    async def append_in(
        self, conn: AsyncConnection, entries: Sequence[AuditEntry]
    ) -> list[AuditRecord]:
        """Append within the caller's transaction (so the audited change and its record
        commit together); the head stays locked until that transaction ends."""
        if not entries:
            return []
        sqlite = conn.dialect.name == "sqlite"  # the write takes the lock and reads the head
        head = (await conn.execute(_LOCK_HEAD_SQLITE if sqlite else _LOCK_HEAD)).one()
        seq, prev = int(head.seq), str(head.hash)
        now = self._clock()
        at = now.astimezone(UTC)
        made: list[AuditRecord] = []
        rows: list[dict[str, Any]] = []
        checkpoints: list[dict[str, Any]] = []
        for entry in entries:
            seq += 1
            body = {**entry.body(now), "prev_hash": prev}
            text = canonical_json(body)
            digest = record_hash(text)
            rows.append(
                {
                    "seq": seq,
                    "at": at,
                    "action": body["action"],
                    "who": body["who"],
                    "role": body["role"],
                    "agency_id": body["agency_id"],
                    "child_id": body["child_id"],
                    "effect": body["effect"],
                    "record": text,
                    "prev_hash": prev,
                    "hash": digest,
                }
            )
            if seq % self._every == 0:
                checkpoints.append(
                    {
                        "seq": seq,
                        "hash": digest,
                        "at": at,
                        "key_id": None if self._signer is None else self._signer.key_id,
                        "signature": None
                        if self._signer is None
                        else self._signer.sign(seq, digest),
                    }
                )
            made.append(AuditRecord(seq=seq, hash=digest, prev_hash=prev, body=body))
            prev = digest
        # Statements built once (their values as parameters): a read appends one per call.
        await conn.execute(_INSERT_RECORD, rows)
        if checkpoints:
            await conn.execute(_INSERT_CHECKPOINT, checkpoints)
        await conn.execute(_SET_HEAD, {"b_seq": seq, "b_hash": prev})
        if len(made) <= _LOGGED_ONE_BY_ONE:
            say = log.bind()  # resolved once: the lazy module logger binds on every call
            for record in made:
                say.info(
                    "audit.appended",
                    seq=record.seq,
                    action=record.action,
                    child_id=record.body["child_id"],
                )
        else:  # a batch's withheld deliveries: hundreds at once, one event for them
            log.info(
                "audit.appended",
                seq=made[0].seq,
                last_seq=made[-1].seq,
                records=len(made),
                actions=sorted({r.action for r in made}),
            )
        return made

    async def search(self, query: AuditQuery) -> AuditPage:
        """Records matching every given filter, newest first, one page."""
        c = audit_records.c
        conditions = []
        for column, value in (
            (c.child_id, query.child_id),
            (c.who, query.who),
            (c.agency_id, query.agency_id),
            (c.action, query.action),
        ):
            if value is not None:
                conditions.append(column == value)
        if query.since is not None:
            conditions.append(c.at >= query.since.astimezone(UTC))
        if query.until is not None:
            conditions.append(c.at < query.until.astimezone(UTC))
        if query.before_seq is not None:
            conditions.append(c.seq < query.before_seq)
        limit = max(1, min(query.limit, 500))
        stmt = select(audit_records).where(and_(True, *conditions)).order_by(c.seq.desc())
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt.limit(limit + 1))).all()
        records = tuple(_record(r) for r in rows[:limit])
        more = len(rows) > limit
        return AuditPage(records, records[-1].seq if more and records else None)

    async def records(
        self,
        *,
        child_id: str | None = None,
        actions: Sequence[str] | None = None,
        since: datetime | None = None,
    ) -> AsyncIterator[AuditRecord]:
        """Every matching record, oldest first, read a page at a time."""
        c = audit_records.c
        after = 0
        while True:
            stmt = select(audit_records).where(c.seq > after)
            if child_id is not None:
                stmt = stmt.where(c.child_id == child_id)
            if actions is not None:
                stmt = stmt.where(c.action.in_(list(actions)))
            if since is not None:
                stmt = stmt.where(c.at >= since.astimezone(UTC))
            async with self.engine.connect() as conn:
                rows = (await conn.execute(stmt.order_by(c.seq).limit(_PAGE))).all()
            for row in rows:
                yield _record(row)
            if len(rows) < _PAGE:
                return
            after = rows[-1].seq

    async def verify(self) -> VerifyReport:
        """Read the whole chain and report every change, deletion, insertion and reordering."""
        async with self.engine.connect() as conn:
            check = _Verifier(conn)
            prev_seq, prev_hash, count, after = 0, GENESIS, 0, None
            while True:
                stmt = select(audit_records).order_by(audit_records.c.seq).limit(_PAGE)
                if after is not None:
                    stmt = stmt.where(audit_records.c.seq > after)
                rows = (await conn.execute(stmt)).all()
                for row in rows:
                    count += 1
                    check.content(row)
                    await check.link(row, prev_seq, prev_hash)
                    prev_seq, prev_hash = row.seq, row.hash
                if len(rows) < _PAGE:
                    break
                after = rows[-1].seq
            head = (await conn.execute(select(audit_head).where(audit_head.c.id == 1))).one()
            if head.seq > prev_seq:
                first = prev_seq + 1
                what = (
                    f"record {first} is" if first == head.seq else f"records {first}-{head.seq} are"
                )
                check.add(first, "deleted", f"{what} missing from the end of the trail")
            elif head.seq < prev_seq:
                check.add(head.seq + 1, "inserted", "records lie beyond the head of the chain")
            elif head.hash != prev_hash:
                check.add(prev_seq, "changed", "the last record is not the head the trail wrote")
            checkpoints = (
                await conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq))
            ).all()
            signed = 0
            for cp in checkpoints:
                if cp.seq > prev_seq:
                    continue  # reported as deleted above
                stored = await check.hash_at(cp.seq)
                if stored is not None and stored != cp.hash:
                    check.add(cp.seq, "checkpoint", "its hash is not the one checkpointed")
                if cp.signature is not None:
                    signed += 1
                    if self._signer is None or cp.key_id != self._signer.key_id:
                        check.add(cp.seq, "checkpoint", f"signed by unknown key {cp.key_id}")
                    elif not self._signer.valid(cp.seq, cp.hash, cp.signature):
                        check.add(cp.seq, "checkpoint", "its signature is not valid")
        problems = tuple(sorted(check.problems.values(), key=lambda p: (p.seq, p.kind, p.detail)))
        report = VerifyReport(
            records=count,
            head_seq=int(head.seq),
            head_hash=str(head.hash),
            checkpoints=len(checkpoints),
            signed_checkpoints=signed,
            problems=problems,
        )
        log.info("audit.verified", records=count, problems=len(problems), head_seq=report.head_seq)
        return report
