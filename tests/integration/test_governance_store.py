"""The governance stores on SQLite and PostgreSQL: the audit chain and its tamper detection,
checkpoints, consent, break-glass, protections, rule versions, dry-run and subject access."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, update
from structlog.testing import capture_logs

from contracts import AgencyKind, EventType
from hub.domain.roles import Role
from hub.governance import Governance, GovernanceSettings
from hub.governance.audit import (
    Actor,
    AuditAction,
    AuditEntry,
    canonical_json,
    decisions_entry,
    record_hash,
)
from hub.governance.audit_store import AuditQuery, AuditTrail, Problem
from hub.governance.break_glass import JustificationRejected, ReviewRejected, ReviewStatus
from hub.governance.consent import ConsentDecision, GivenBy
from hub.governance.disclosures import replay_dry_run, subject_access
from hub.governance.protected import NotProtected, ProtectionRefused, SubjectKind
from hub.governance.rules_store import PackVersionUsed
from hub.governance.tables import audit_checkpoints, audit_head, audit_records
from hub.sharing import (
    AccessRequest,
    ChildContext,
    ConsentRecord,
    ConsentState,
    EventFacts,
    Purpose,
    RulePackInvalid,
    decide,
)
from hub.store.db import create_engine, migrate
from hub.store.schema import children, narrative_entries
from tests.support.databases import BACKENDS, fresh_database_url

pytestmark = pytest.mark.integration

T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]
NORTHSHIRE = REPO / "deploy" / "rules" / "northshire.yaml"
CHILD = "child-0001"
SW = Actor("sam.sw", "northshire-cs", "childrens_services", "social_worker", "Team 2")
IG = Actor("ivy.ig", "northshire-cs", "childrens_services", "ig_officer")
POLICE = Actor("pat.ppu", "northshire-police", "police", "police_ppu")
NURSE = Actor("nia.nurse", "northshire-health", "health", "named_nurse")


class Clock:
    """A settable frozen clock."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=BACKENDS)
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    """A freshly migrated store of each backend."""
    made = create_engine(await fresh_database_url(request.param, tmp_path))
    await migrate(made)
    try:
        yield made
    finally:
        await made.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gov(engine, clock: Clock, tmp_path: Path) -> Governance:
    """Every governance store, checkpoints every 5 records, signed, ids counted from 1."""
    built = Governance.over(
        engine,
        GovernanceSettings(audit_checkpoint_every=5, rules_bootstrap_file=NORTHSHIRE),
        keys_dir=tmp_path / "keys",
        agencies={
            "northshire-police": AgencyKind.police,
            "northshire-health": AgencyKind.health,
            "northshire-primary": AgencyKind.schools,
            "northshire-cs": AgencyKind.childrens_services,
        },
        clock=clock,
    )
    counter = itertools.count(1)
    for store in (built.consents, built.break_glass, built.protections):
        store._new_id = lambda: f"id-{next(counter):04d}"  # frozen ids
    return built


def note(n: int, child: str = CHILD) -> AuditEntry:
    """A small audit entry (a narrative read by the social worker of one event)."""
    return SW.entry(
        AuditAction.narrative_read, child_id=child, event_ids=(f"ev-{n}",), effect="permit"
    )


async def fill(trail: AuditTrail, n: int) -> None:
    for i in range(1, n + 1):
        await trail.append(note(i))


async def swap_seq(engine, a: int, b: int) -> None:
    c = audit_records.c
    async with engine.begin() as conn:
        await conn.execute(update(audit_records).where(c.seq == a).values(seq=-1))
        await conn.execute(update(audit_records).where(c.seq == b).values(seq=a))
        await conn.execute(update(audit_records).where(c.seq == -1).values(seq=b))


class TestAuditChain:
    """Appends form one chain whose every record hashes its canonical JSON with prev_hash."""

    async def test_records_link_and_hash_their_canonical_json(self, gov, engine):
        """seq 1 follows the genesis hash; each next record names the hash before it."""
        first, second = await gov.trail.append(note(1), note(2))
        assert (first.seq, second.seq) == (1, 2)
        assert first.prev_hash == "0" * 64
        assert second.prev_hash == first.hash
        async with engine.connect() as conn:
            row = (await conn.execute(select(audit_records).where(audit_records.c.seq == 1))).one()
        assert row.record == canonical_json(dict(first.body))
        assert record_hash(row.record) == first.hash
        assert first.body == {
            "action": "narrative.read",
            "agency_id": "northshire-cs",
            "agency_kind": "childrens_services",
            "at": "2025-06-02T09:00:00.000000+00:00",
            "break_glass_id": None,
            "child": None,
            "child_id": CHILD,
            "decisions": {
                "facts": [],
                "outcomes": [],
                "occurred_at": [],
                "fact": [],
                "outcome": [],
            },
            "effect": "permit",
            "event_ids": ["ev-1"],
            "extra": {},
            "justification_sha256": None,
            "lawful_bases": [],
            "pack_version": None,
            "prev_hash": "0" * 64,
            "purpose": None,
            "reason": "",
            "reasons": [],
            "role": "social_worker",
            "rule_ids": [],
            "team": "Team 2",
            "who": "sam.sw",
        }

    async def test_an_untouched_trail_verifies(self, gov):
        """Twelve records, two signed checkpoints, no problem."""
        await fill(gov.trail, 12)
        report = await gov.trail.verify()
        assert report.as_dict() | {"head_hash": "-"} == {
            "ok": True,
            "records": 12,
            "head_seq": 12,
            "head_hash": "-",
            "checkpoints": 2,
            "signed_checkpoints": 2,
            "problems": [],
        }

    async def test_concurrent_appends_make_one_chain(self, gov):
        """Twenty appends at once: seqs 1..20, every link intact."""
        await asyncio.gather(*(gov.trail.append(note(i)) for i in range(20)))
        report = await gov.trail.verify()
        assert (report.ok, report.records, report.head_seq) == (True, 20, 20)

    async def test_one_append_of_many_records_is_one_chain_and_one_log_event(self, gov):
        """Thirty entries at once (a batch's withheld deliveries) and the checkpoints due
        among them: every link and signature verifies; a few entries log one event each."""
        with capture_logs() as logs:
            made = await gov.trail.append(*(note(i) for i in range(30)))
            await gov.trail.append(note(30), note(31))
        assert [r.seq for r in made] == list(range(1, 31))
        report = await gov.trail.verify()
        assert (report.ok, report.records, report.checkpoints) == (True, 32, 6)
        appended = [e for e in logs if e["event"] == "audit.appended"]
        assert [(e["seq"], e.get("last_seq"), e.get("records")) for e in appended] == [
            (1, 30, 30),
            (31, None, None),
            (32, None, None),
        ]


class TestTamperDetection:
    """verify says where the trail was changed, cut, added to or reordered, and how."""

    async def test_a_changed_field(self, gov, engine):
        """Editing the child id in the hashed record is a change at that seq."""
        await fill(gov.trail, 6)
        c = audit_records.c
        async with engine.begin() as conn:
            text = (await conn.execute(select(c.record).where(c.seq == 3))).scalar_one()
            forged = text.replace(CHILD, "child-9999")
            await conn.execute(update(audit_records).where(c.seq == 3).values(record=forged))
        assert (await gov.trail.verify()).problems == (
            Problem(3, "changed", "its content does not match its hash"),
        )

    async def test_a_changed_search_column(self, gov, engine):
        """Hiding a record from searches by editing its indexed column is a change too."""
        await fill(gov.trail, 3)
        c = audit_records.c
        async with engine.begin() as conn:
            await conn.execute(update(audit_records).where(c.seq == 2).values(child_id="other"))
        assert (await gov.trail.verify()).problems == (
            Problem(2, "changed", "its child_id column differs from the hashed record"),
        )

    async def test_a_deleted_record(self, gov, engine):
        """A gap in the chain names the missing seq."""
        await fill(gov.trail, 6)
        async with engine.begin() as conn:
            await conn.execute(delete(audit_records).where(audit_records.c.seq == 4))
        assert (await gov.trail.verify()).problems == (
            Problem(4, "deleted", "record 4 is missing"),
        )

    async def test_the_last_records_deleted(self, gov, engine):
        """Cutting the tail is caught by the head."""
        await fill(gov.trail, 6)
        async with engine.begin() as conn:
            await conn.execute(delete(audit_records).where(audit_records.c.seq >= 5))
        assert (await gov.trail.verify()).problems == (
            Problem(5, "deleted", "records 5-6 are missing from the end of the trail"),
        )

    async def test_a_deleted_record_with_the_rest_renumbered(self, gov, engine):
        """Closing the gap leaves a record whose predecessor is nowhere; the checkpoint at 5
        now names another record."""
        await fill(gov.trail, 6)
        c = audit_records.c
        async with engine.begin() as conn:
            await conn.execute(delete(audit_records).where(c.seq == 3))
            for seq in (4, 5, 6):
                await conn.execute(update(audit_records).where(c.seq == seq).values(seq=seq - 1))
            await conn.execute(update(audit_head).values(seq=5))
        problems = (await gov.trail.verify()).problems
        assert [(p.seq, p.kind) for p in problems] == [(3, "deleted"), (5, "checkpoint")]

    async def test_an_inserted_record(self, gov, engine):
        """A well-formed record slipped in (later ones renumbered) is named as inserted; the
        checkpoint at 5 now names another record."""
        await fill(gov.trail, 5)
        c = audit_records.c
        async with engine.begin() as conn:
            for seq in (5, 4, 3):
                await conn.execute(update(audit_records).where(c.seq == seq).values(seq=seq + 1))
            prev = (await conn.execute(select(c.hash).where(c.seq == 2))).scalar_one()
            body = {**note(99).body(T0), "prev_hash": prev}
            text = canonical_json(body)
            await conn.execute(
                insert(audit_records).values(
                    seq=3, at=T0, action="narrative.read", who="sam.sw", role="social_worker",
                    agency_id="northshire-cs", child_id=CHILD, effect="permit", record=text,
                    prev_hash=prev, hash=record_hash(text),
                )
            )  # fmt: skip
            await conn.execute(update(audit_head).values(seq=6))
        problems = (await gov.trail.verify()).problems
        assert [(p.seq, p.kind) for p in problems] == [(3, "inserted"), (5, "checkpoint")]

    async def test_two_records_swapped(self, gov, engine):
        """Exchanging the places of seq 2 and 3 is a reordering at both."""
        await fill(gov.trail, 4)
        await swap_seq(engine, 2, 3)
        problems = (await gov.trail.verify()).problems
        assert [(p.seq, p.kind) for p in problems] == [(2, "reordered"), (3, "reordered")]

    async def test_a_rewritten_tail_is_caught_by_its_checkpoint(self, gov, engine):
        """Changing record 5 and re-hashing everything after it still fails checkpoint 5."""
        await fill(gov.trail, 7)
        c = audit_records.c
        async with engine.begin() as conn:
            rows = (
                await conn.execute(select(audit_records).where(c.seq >= 5).order_by(c.seq))
            ).all()
            prev = (await conn.execute(select(c.hash).where(c.seq == 4))).scalar_one()
            for row in rows:
                body = json.loads(row.record)
                body["prev_hash"] = prev
                if row.seq == 5:
                    body["event_ids"] = ["ev-forged"]
                text = canonical_json(body)
                digest = record_hash(text)
                await conn.execute(
                    update(audit_records)
                    .where(c.seq == row.seq)
                    .values(record=text, prev_hash=prev, hash=digest)
                )
                prev = digest
            await conn.execute(update(audit_head).values(hash=prev))
        assert (await gov.trail.verify()).problems == (
            Problem(5, "checkpoint", "its hash is not the one checkpointed"),
        )

    async def test_a_forged_checkpoint_signature(self, gov, engine):
        """A checkpoint re-pointed at a forged head fails its signature."""
        await fill(gov.trail, 5)
        async with engine.begin() as conn:
            await conn.execute(update(audit_checkpoints).values(hash="f" * 64))
        kinds = [(p.seq, p.kind, p.detail) for p in (await gov.trail.verify()).problems]
        assert kinds == [
            (5, "checkpoint", "its hash is not the one checkpointed"),
            (5, "checkpoint", "its signature is not valid"),
        ]


class TestAuditSearch:
    """Search by child, actor, agency, action and period; newest first, paged."""

    async def test_filters_and_pages(self, gov, clock):
        for i in range(5):
            clock.now = T0 + timedelta(hours=i)
            await gov.trail.append(note(i, child=CHILD if i % 2 == 0 else "child-0002"))
        await gov.trail.append(POLICE.entry(AuditAction.narrative_read, child_id=CHILD))
        page = await gov.trail.search(AuditQuery(child_id=CHILD, who="sam.sw", limit=2))
        assert [r.seq for r in page.records] == [5, 3]
        assert page.next_before_seq == 3
        rest = await gov.trail.search(
            AuditQuery(child_id=CHILD, who="sam.sw", limit=2, before_seq=3)
        )
        assert ([r.seq for r in rest.records], rest.next_before_seq) == ([1], None)
        police = await gov.trail.search(AuditQuery(agency_id="northshire-police"))
        assert [r.seq for r in police.records] == [6]
        window = await gov.trail.search(
            AuditQuery(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=3))
        )
        assert [r.seq for r in window.records] == [3, 2]
        assert [r.seq for r in (await gov.trail.search(AuditQuery(action="x"))).records] == []


class TestConsent:
    """Decisions kept as history; the latest per purpose and agency is in force at once."""

    async def test_withdrawal_changes_consent_records_and_the_next_decision(self, gov, clock):
        """Given, then withdrawn an hour later: the next decision denies a consent-only rule."""
        await gov.consents.record(
            child_id=CHILD, purpose=Purpose.safeguarding, agency_id="northshire-cs",
            state=ConsentDecision.given, given_by=GivenBy.parent, actor=SW,
        )  # fmt: skip
        assert await gov.consents.consent_records(CHILD) == [
            ConsentRecord(Purpose.safeguarding, "northshire-cs", ConsentState.given, T0)
        ]
        pack = (await gov.rules.current()).pack
        request = AccessRequest(
            "northshire-cs", AgencyKind.childrens_services, Role.social_worker, Purpose.safeguarding
        )
        event = EventFacts(
            EventType.contact_recorded, "northshire-health", AgencyKind.health,
            frozenset({"mental_health"}), T0 - timedelta(days=30),
        )  # fmt: skip

        async def decision():
            context = ChildContext.build(
                consents=await gov.consents.consent_records(CHILD),
                involved_agencies=["northshire-cs"],
            )
            return decide(request, event, context, pack, now=clock.now)

        assert (await decision()).rule_id == "cs-sensitive-health"
        clock.now = T0 + timedelta(hours=1)
        await gov.consents.record(
            child_id=CHILD, purpose=Purpose.safeguarding, agency_id="northshire-cs",
            state=ConsentDecision.withdrawn, given_by=GivenBy.parent, actor=SW,
        )  # fmt: skip
        assert await gov.consents.consent_records(CHILD) == [
            ConsentRecord(Purpose.safeguarding, "northshire-cs", ConsentState.withdrawn, clock.now)
        ]
        assert not (await decision()).permitted
        history = await gov.consents.history(CHILD)
        assert [(h.consent_id, h.state) for h in history] == [
            ("id-0001", ConsentDecision.given),
            ("id-0002", ConsentDecision.withdrawn),
        ]
        audited = await gov.trail.search(AuditQuery(action="consent.recorded"))
        assert [r.body["extra"] for r in audited.records] == [
            {"consent_id": "id-0002", "state": "withdrawn", "given_by": "parent",
             "for_agency_id": "northshire-cs"},
            {"consent_id": "id-0001", "state": "given", "given_by": "parent",
             "for_agency_id": "northshire-cs"},
        ]  # fmt: skip

    async def test_a_decision_dated_in_the_future_is_refused(self, gov):
        with pytest.raises(ValueError, match="future"):
            await gov.consents.record(
                child_id=CHILD, purpose=Purpose.safeguarding, agency_id="northshire-cs",
                state=ConsentDecision.given, given_by=GivenBy.child, actor=SW,
                decided_at=T0 + timedelta(days=1),
            )  # fmt: skip


class TestBreakGlass:
    """Time-limited, audited, and queued for one IG review."""

    JUSTIFICATION = "Child disclosed injuries at school; plan status needed before visit."

    async def test_active_until_it_expires(self, gov, clock):
        made = await gov.break_glass.use(child_id=CHILD, actor=SW, justification=self.JUSTIFICATION)
        assert made.expires_at == T0 + timedelta(hours=4)
        assert await gov.break_glass.active_break_glass(CHILD, SW) == made
        assert await gov.break_glass.active_break_glass(CHILD, POLICE) is None
        assert await gov.break_glass.active_break_glass("child-0002", SW) is None
        clock.now = T0 + timedelta(hours=4)
        assert await gov.break_glass.active_break_glass(CHILD, SW) is None
        [record] = (await gov.trail.search(AuditQuery(action="break_glass.used"))).records
        assert record.body["break_glass_id"] == made.break_glass_id
        assert record.body["justification_sha256"] == made.justification_sha256
        assert self.JUSTIFICATION not in str(record.body)

    async def test_review_queue(self, gov):
        made = await gov.break_glass.use(child_id=CHILD, actor=SW, justification=self.JUSTIFICATION)
        assert [b.break_glass_id for b in await gov.break_glass.reviews()] == ["id-0001"]
        with pytest.raises(ReviewRejected, match="own"):
            await gov.break_glass.review(made.break_glass_id, reviewer=SW, upheld=True, note="ok")
        done = await gov.break_glass.review(
            made.break_glass_id, reviewer=IG, upheld=False, note="Plan status was in the rules."
        )
        assert (done.review_status, done.reviewer, done.reviewed_at) == (
            ReviewStatus.not_upheld, "ivy.ig", T0,
        )  # fmt: skip
        assert await gov.break_glass.reviews() == []
        assert await gov.break_glass.reviews(ReviewStatus.not_upheld) == [done]
        with pytest.raises(ReviewRejected, match="already"):
            await gov.break_glass.review(made.break_glass_id, reviewer=IG, upheld=True, note="x")

    async def test_a_thin_justification_is_refused(self, gov):
        with pytest.raises(JustificationRejected, match="at least 20"):
            await gov.break_glass.use(child_id=CHILD, actor=SW, justification="  urgent  ")


class TestProtection:
    """Set and lifted by children's services or police; history kept; both audited."""

    async def test_protect_then_lift(self, gov, clock):
        made = await gov.protections.protect(
            CHILD, kind=SubjectKind.child, reason="Mother and child in a refuge.",
            review_on=date(2025, 12, 1), actor=POLICE,
        )  # fmt: skip
        assert await gov.protections.active(CHILD) == made
        assert await gov.protections.protected_among([CHILD, "person-7"]) == {CHILD}
        clock.now = T0 + timedelta(days=1)
        lifted = await gov.protections.lift(CHILD, actor=SW)
        assert (lifted.lifted_by, lifted.lifted_at) == ("sam.sw", clock.now)
        assert await gov.protections.active(CHILD) is None
        assert await gov.protections.history(CHILD) == [lifted]
        with pytest.raises(NotProtected):
            await gov.protections.lift(CHILD, actor=SW)
        actions = [r.action for r in (await gov.trail.search(AuditQuery())).records]
        assert actions == ["protection.lifted", "protection.set"]

    async def test_other_agencies_may_not_protect(self, gov):
        with pytest.raises(ProtectionRefused):
            await gov.protections.protect(
                CHILD, kind=SubjectKind.child, reason="r", review_on=date(2026, 1, 1), actor=NURSE
            )


class TestRuleVersions:
    """Bootstrapped from the Northshire pack; apply validates, numbers and audits."""

    async def test_bootstrap_apply_and_history(self, gov, clock):
        first = await gov.rules.current()
        assert (first.number, first.version, first.author) == (
            1, "2025.1", "Northshire Information Governance Team",
        )  # fmt: skip
        text = NORTHSHIRE.read_text().replace('version: "2025.1"', 'version: "2025.2"')
        clock.now = T0 + timedelta(days=1)
        second = await gov.rules.apply(text, "northshire.yaml", actor=IG, reason="New version.")
        assert (second.number, second.version, second.author, second.applied_at) == (
            2, "2025.2", "ivy.ig", clock.now,
        )  # fmt: skip
        assert (await gov.rules.current()).pack.version == "2025.2"
        assert [p.number for p in await gov.rules.history()] == [2, 1]
        with pytest.raises(PackVersionUsed, match=r"2025\.2"):
            await gov.rules.apply(text, "northshire.yaml", actor=IG, reason="Again.")
        [record] = (
            await gov.trail.search(AuditQuery(action="rules.applied", who="ivy.ig"))
        ).records
        assert record.body["extra"] == {"number": 2, "sha256": second.sha256}

    async def test_an_invalid_pack_is_refused_with_its_places(self, gov):
        text = NORTHSHIRE.read_text().replace("purpose: safeguarding", "purpose: gossip", 1)
        with pytest.raises(RulePackInvalid) as caught:
            await gov.rules.apply(text, "bad.yaml", actor=IG, reason="Try.")
        assert [str(p) for p in caught.value.problems] == [
            "bad.yaml:25 rules[0] (own-agency-records).purpose: unknown purpose 'gossip'; "
            "expected 'safeguarding', 'unscheduled_care', 'education_safeguarding', "
            "'law_enforcement', 'direct_care' or 'audit'"
        ]
        assert [p.number for p in await gov.rules.history()] == [1]


def _read(request: AccessRequest, child: ChildContext, events, pack, at):
    return [(eid, facts, decide(request, facts, child, pack, now=at)) for eid, facts in events]


class TestDryRunFromTheTrail:
    """Recorded decisions replayed against a proposed pack; the diff is exact."""

    async def test_removing_a_rule_lists_exactly_the_disclosures_it_made(self, gov, clock):
        pack = (await gov.rules.current()).pack
        worker = AccessRequest(
            "northshire-cs", AgencyKind.childrens_services, Role.social_worker, Purpose.safeguarding
        )
        child = ChildContext.build(involved_agencies=["northshire-cs"])
        concern = EventFacts(
            EventType.concern_raised, "northshire-police", AgencyKind.police,
            frozenset({"domestic_abuse"}), T0 - timedelta(days=2),
        )  # fmt: skip
        sensitive = EventFacts(
            EventType.contact_recorded, "northshire-health", AgencyKind.health,
            frozenset({"sexual_health"}), T0 - timedelta(days=3),
        )  # fmt: skip
        events = [("ev-concern", concern), ("ev-sensitive", sensitive)]
        for day, who in ((40, "old.sw"), (5, "sam.sw")):
            clock.now = T0 - timedelta(days=day)
            await gov.trail.append(
                decisions_entry(
                    action=AuditAction.narrative_read, who=who, request=worker,
                    child_id=CHILD, child=child,
                    decisions=_read(worker, child, events, pack, clock.now),
                    pack_version=pack.version,
                )
            )  # fmt: skip
        clock.now = T0
        data = pack.model_dump(mode="json")
        data["version"] = "2025.2"
        data["rules"] = [r for r in data["rules"] if r["id"] != "cs-partner-information"]
        from hub.sharing import RulePack

        proposed = RulePack.model_validate(data)
        result = await replay_dry_run(gov.trail, pack, proposed, days=30, now=T0)
        assert result.as_dict() == {
            "old_version": "2025.1",
            "new_version": "2025.2",
            "examined": 2,
            "unchanged": 1,
            "added": [],
            "removed": [
                {
                    "agency_id": "northshire-cs",
                    "role": "social_worker",
                    "team": None,
                    "disclosures": [
                        {
                            "event_id": "ev-concern",
                            "child_id": CHILD,
                            "purpose": "safeguarding",
                            "at": (T0 - timedelta(days=5)).isoformat(),
                            "old_rule_ids": ["cs-partner-information"],
                            "new_rule_ids": [],
                            "old_obligations": {
                                "remove_fields": [],
                                "generalise": {},
                                "may_reshare": True,
                            },
                            "new_obligations": None,
                        }
                    ],
                }
            ],
            "changed": [],
        }


class TestSubjectAccess:
    """What is held (ids, types, agencies, dates) and every permitted disclosure."""

    async def test_held_and_disclosed(self, gov, engine, clock):
        async with engine.begin() as conn:
            await conn.execute(insert(children).values(child_id=CHILD, created_at=T0))
            await conn.execute(
                insert(narrative_entries).values(
                    event_id="northshire-police:e1", child_id=CHILD, event_type="concern.raised",
                    family="concern", occurred_at=T0 - timedelta(days=2),
                    recorded_at=T0 - timedelta(days=2), agency_id="northshire-police",
                    agency_kind="police", summary="{}", sensitivity="[]", supersedes=None,
                    status="current", superseded_by=None, payload="{}", log_partition=0,
                    log_offset=0, stored_at=T0,
                )
            )  # fmt: skip
        pack = (await gov.rules.current()).pack
        worker = AccessRequest(
            "northshire-cs", AgencyKind.childrens_services, Role.social_worker, Purpose.safeguarding
        )
        child = ChildContext.build(involved_agencies=["northshire-cs"])
        facts = EventFacts(
            EventType.concern_raised, "northshire-police", AgencyKind.police, frozenset(),
            T0 - timedelta(days=2),
        )  # fmt: skip
        await gov.trail.append(
            decisions_entry(
                action=AuditAction.narrative_read, who="sam.sw", request=worker, child_id=CHILD,
                child=child, decisions=_read(worker, child, [("northshire-police:e1", facts)],
                                             pack, T0),
                pack_version=pack.version,
            )
        )  # fmt: skip
        export = await subject_access(
            engine, gov.trail, CHILD, gov.retention, statuses=("cp_plan",)
        )
        assert export.held == (
            {
                "event_id": "northshire-police:e1",
                "event_type": "concern.raised",
                "family": "concern",
                "source_agency_id": "northshire-police",
                "source_agency_kind": "police",
                "occurred_at": (T0 - timedelta(days=2)).isoformat(),
                "recorded_at": (T0 - timedelta(days=2)).isoformat(),
                "status": "current",
            },
        )
        assert export.disclosures == (
            {
                "audit_seq": 2,
                "at": "2025-06-02T09:00:00.000000+00:00",
                "how": "narrative.read",
                "event_id": "northshire-police:e1",
                "event_type": "concern.raised",
                "source_agency_id": "northshire-police",
                "recipient": {
                    "who": "sam.sw",
                    "agency_id": "northshire-cs",
                    "agency_kind": "childrens_services",
                    "role": "social_worker",
                    "team": None,
                },
                "purpose": "safeguarding",
                "lawful_bases": ["public_task"],
                "rule_ids": ["cs-partner-information"],
                "pack_version": "2025.1",
                "break_glass_id": None,
            },
        )
        assert [p["category"] for p in export.retention["applies"]] == ["child_protection"]
        assert export.withheld == 0


class TestReadPath:
    """prepare_read / record_read: break-glass turns into significant harm, protection is
    reported, and the read and the withheld location are audited together."""

    async def test_a_read_under_break_glass_of_a_protected_child(self, gov):
        from hub.governance.read_path import prepare_read, record_read

        await gov.protections.protect(
            CHILD, kind=SubjectKind.child, reason="Refuge.", review_on=date(2026, 1, 1),
            actor=POLICE,
        )  # fmt: skip
        glass = await gov.break_glass.use(
            child_id=CHILD, actor=SW, justification="Injuries seen today; need the full picture."
        )
        prepared = await prepare_read(
            gov, child_id=CHILD, actor=SW, involved_agencies=["northshire-cs"]
        )
        assert (prepared.break_glass, prepared.protected) == (glass, True)
        assert prepared.child.significant_harm is True
        worker = AccessRequest(
            "northshire-cs", AgencyKind.childrens_services, Role.social_worker, Purpose.safeguarding
        )
        facts = EventFacts(
            EventType.contact_recorded, "northshire-health", AgencyKind.health,
            frozenset({"mental_health"}), T0 - timedelta(days=1),
        )  # fmt: skip
        decision = decide(worker, facts, prepared.child, prepared.pack, now=T0)
        assert decision.grants[0].via == "significant_harm"
        await record_read(
            gov, prepared, actor=SW, request=worker, child_id=CHILD,
            decisions=[("ev-1", facts, decision)], withheld_event_ids=["ev-1"],
        )  # fmt: skip
        page = await gov.trail.search(AuditQuery(child_id=CHILD, limit=2))
        read, attempt = page.records[1], page.records[0]
        assert (read.action, read.body["break_glass_id"], read.body["lawful_bases"]) == (
            "narrative.read", glass.break_glass_id, ["safeguarding_sch1_para18"],
        )  # fmt: skip
        assert (attempt.action, attempt.body["effect"], attempt.body["event_ids"]) == (
            "protected.view_attempt", "deny", ["ev-1"],
        )  # fmt: skip
