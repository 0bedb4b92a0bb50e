"""Properties over many seeded random packs, requests, events and children.

A plain oracle (every rule checked directly against the model, no index, no cache) must agree
with the decision point; no permitted view ever holds a field every permitting rule removes;
a request no rule names is always denied.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from contracts import AgencyKind, EventType, SensitivityTag
from hub.domain.roles import Role
from hub.sharing import (
    AccessRequest,
    ChildContext,
    ChildStatus,
    ConsentMode,
    ConsentRecord,
    ConsentState,
    EventFacts,
    Purpose,
    Rule,
    RulePack,
    decide,
    decide_all,
    redact,
)
from hub.sharing.rules import instant
from tests.unit.sharing.conftest import INCIDENT_AT, NOW, pack, rule

pytestmark = pytest.mark.unit

SEED = 20250602
CASES = 3000
AGENCIES = {
    "northshire-police": AgencyKind.police,
    "northshire-health": AgencyKind.health,
    "northshire-primary": AgencyKind.schools,
    "northshire-cs": AgencyKind.childrens_services,
}
PATHS = [
    "summary",
    "data",
    "data.summary",
    "data.details",
    "data.location",
    "person.address",
    "person.related",
    "person.related.*.name",
]
PURPOSES = [Purpose.safeguarding, Purpose.education_safeguarding, Purpose.unscheduled_care]


def some(rng: random.Random, pool: list[Any], none_chance: float = 0.5) -> list[Any] | None:
    """None (match any) or a non-empty random subset of the pool."""
    if rng.random() < none_chance:
        return None
    return rng.sample(pool, rng.randint(1, min(3, len(pool))))


def random_rule(rng: random.Random, n: int) -> dict[str, Any]:
    tags = [str(t) for t in SensitivityTag]
    recipients: dict[str, Any] = {"roles": some(rng, [str(r) for r in Role], 0.2)}
    if recipients["roles"] is None:
        recipients = {"agency_kinds": some(rng, [str(k) for k in AgencyKind], 0.0)}
    recipients["involved_with_child"] = rng.random() < 0.3
    match = {
        "source_agency_kinds": some(rng, [str(k) for k in AgencyKind]),
        "event_types": some(rng, [str(t) for t in EventType]),
        "sensitivity_any": some(rng, tags, 0.7),
        "sensitivity_none": some(rng, tags, 0.7),
        "child_status": some(rng, [str(s) for s in ChildStatus], 0.6),
    }
    if match["sensitivity_any"] and match["sensitivity_none"]:
        match["sensitivity_none"] = [
            t for t in match["sensitivity_none"] if t not in match["sensitivity_any"]
        ] or None
    removed = rng.sample(PATHS, rng.randint(0, 3))
    generalised = [
        p
        for p in rng.sample(PATHS, rng.randint(0, 2))
        if not any(p == r or p.startswith(r + ".") for r in removed)
    ]
    consent = rng.choice(list(ConsentMode))
    return rule(
        id=f"rule-{n}",
        effective_from=rng.choice(["2025-01-01", "2025-07-01"]),
        match={k: v for k, v in match.items() if v is not None},
        recipients={k: v for k, v in recipients.items() if v is not None},
        purpose=str(rng.choice(PURPOSES)),
        lawful_basis="consent" if consent is not ConsentMode.not_required else "public_task",
        consent=str(consent),
        obligations={
            "remove_fields": removed,
            "generalise": {p: f"general {p}" for p in generalised},
            "may_reshare": rng.random() < 0.5,
        },
    )


def random_case(
    rng: random.Random, rules: RulePack
) -> tuple[AccessRequest, EventFacts, ChildContext]:
    """A random case; half the time the requester is one a random rule of the pack names."""
    agency, role, purpose = rng.choice(list(AGENCIES)), rng.choice(list(Role)), rng.choice(PURPOSES)
    if rng.random() < 0.5:
        aim = rng.choice(rules.rules)
        role = rng.choice(aim.recipients.roles or list(Role))
        kinds = aim.recipients.agency_kinds or list(AgencyKind)
        agency = rng.choice([a for a, k in AGENCIES.items() if k in kinds])
        purpose = aim.purpose
    source = rng.choice(list(AGENCIES))
    request = AccessRequest(agency, AGENCIES[agency], role, purpose)
    event = EventFacts(
        rng.choice(list(EventType)),
        source,
        AGENCIES[source],
        frozenset(rng.sample([str(t) for t in SensitivityTag], rng.randint(0, 2))),
        INCIDENT_AT - timedelta(hours=rng.randint(0, 1000)),
    )
    child = ChildContext.build(
        statuses=rng.sample(
            [ChildStatus.cp_plan, ChildStatus.looked_after, ChildStatus.child_in_need],
            rng.randint(0, 2),
        ),
        consents=[
            ConsentRecord(purpose, agency, rng.choice(list(ConsentState)), NOW - timedelta(days=3))
        ],
        significant_harm=rng.random() < 0.3,
        involved_agencies=[a for a in AGENCIES if rng.random() < 0.5],
    )
    return request, event, child


def oracle(rules: RulePack, req: AccessRequest, ev: EventFacts, ch: ChildContext) -> list[str]:
    """Ids of the rules that permit, checked one by one straight from the model."""

    def ok(values: Any, value: Any) -> bool:
        return values is None or value in values

    def applies(r: Rule) -> bool:
        m, to = r.match, r.recipients
        statuses = ch.statuses or {ChildStatus.none}
        given = ch.consent_for(req.purpose, req.agency_id).state is ConsentState.given
        return (
            instant(r.effective_from) <= NOW
            and r.purpose == req.purpose
            and ok(to.roles, req.role)
            and ok(to.agency_kinds, req.agency_kind)
            and ok(to.agencies, req.agency_id)
            and (not to.involved_with_child or req.agency_id in ch.involved_agencies)
            and ok(m.source_agency_kinds, ev.source_agency_kind)
            and ok(m.event_types, ev.event_type)
            and (m.sensitivity_any is None or any(t in ev.sensitivity for t in m.sensitivity_any))
            and (
                m.sensitivity_none is None
                or not any(t in ev.sensitivity for t in m.sensitivity_none)
            )
            and (m.child_status is None or any(s in statuses for s in m.child_status))
            and (
                r.consent is ConsentMode.not_required
                or given
                or (
                    r.consent is ConsentMode.required_unless_significant_harm
                    and ch.significant_harm
                )
            )
        )

    return [r.id for r in rules.rules if applies(r)]


def full_view() -> dict[str, Any]:
    """A view holding every path the random rules name."""
    return {
        "event_id": "evt-1",
        "summary": "Everything about it.",
        "data": {"summary": "Detail.", "details": {"code": "X"}, "location": "Ward 3"},
        "person": {
            "address": {"postcode": "ZZ99 3ZZ"},
            "related": [{"name": "A", "relationship": "mother"}],
        },
    }


def holds(view: Any, path: list[str]) -> bool:
    """Whether any value sits at the path (``*`` over list items)."""
    if not path:
        return True
    head, rest = path[0], path[1:]
    if head == "*" and isinstance(view, list):
        return any(holds(item, rest) for item in view)
    return isinstance(view, dict) and head in view and holds(view[head], rest)


def covered(by: str, path: str) -> bool:
    return path == by or path.startswith(by + ".")


@pytest.fixture(scope="module")
def cases() -> list[tuple[RulePack, AccessRequest, EventFacts, ChildContext]]:
    rng = random.Random(SEED)
    packs = [pack(*(random_rule(rng, n) for n in range(rng.randint(1, 8)))) for _ in range(60)]
    chosen = [rng.choice(packs) for _ in range(CASES)]
    return [(rules, *random_case(rng, rules)) for rules in chosen]


class TestAgainstTheOracle:
    """The decision point agrees with the plain oracle on every random case."""

    def test_permits_exactly_when_the_oracle_does(self, cases: list[Any]) -> None:
        """Same permit/deny and the same permitting rules, cached and fresh; both outcomes seen."""
        outcomes = set()
        for rules, req, ev, ch in cases:
            expected = oracle(rules, req, ev, ch)
            for use_cache in (True, False):
                got = decide(req, ev, ch, rules, now=NOW, use_cache=use_cache)
                assert (got.permitted, [g.rule_id for g in got.grants]) == (
                    bool(expected),
                    expected,
                )
            outcomes.add(got.permitted)
        assert outcomes == {True, False}

    def test_deciding_a_childs_events_together_answers_as_one_by_one(
        self, cases: list[Any]
    ) -> None:
        """``decide_all`` over many events (repeated attributes, delays) = ``decide`` each."""
        rng = random.Random(SEED + 1)
        for rules, req, _, ch in cases[:300]:
            events = [c[2] for c in rng.sample(cases, 12)]
            events += [rng.choice(events) for _ in range(8)]  # attributes seen again
            for now in (NOW, INCIDENT_AT + timedelta(hours=2)):
                assert decide_all(req, events, ch, rules, now=now) == [
                    decide(req, ev, ch, rules, now=now) for ev in events
                ]

    def test_a_request_no_rule_names_is_always_denied(self, cases: list[Any]) -> None:
        """Asking for a purpose no rule serves is denied, whatever else holds."""
        for rules, req, ev, ch in cases[:500]:
            stranger = AccessRequest(req.agency_id, req.agency_kind, req.role, Purpose.audit)
            got = decide(stranger, ev, ch, rules, now=NOW)
            assert (got.permitted, got.grants, got.reason.startswith("no rule in pack")) == (
                False,
                (),
                True,
            )


class TestNoRemovedFieldIsExposed:
    """What every permitting rule removes never reaches the recipient."""

    def test_removed_fields_absent_and_generalised_fields_replaced(self, cases: list[Any]) -> None:
        """Checked on a view holding every path; a single permitting rule's view exactly."""
        permitted = 0
        for rules, req, ev, ch in cases:
            got = decide(req, ev, ch, rules, now=NOW)
            if not got.permitted:
                continue
            permitted += 1
            view = redact(full_view(), got.obligations)
            specs = [rules.rule(g.rule_id).obligations for g in got.grants]
            for path in PATHS:
                hidden_by_all = all(
                    any(covered(r, path) for r in s.remove_fields)
                    or any(covered(g, path) and g != path for g in s.generalise)
                    for s in specs
                )
                if hidden_by_all:
                    assert not holds(view, path.split(".")), (path, got)
            if len(specs) == 1:
                for path, text in specs[0].generalise.items():
                    hiding = [
                        *specs[0].remove_fields,
                        *(g for g in specs[0].generalise if g != path),
                    ]
                    if "*" not in path and not any(covered(h, path) for h in hiding):
                        parent, _, leaf = path.rpartition(".")
                        node = view
                        for seg in parent.split(".") if parent else []:
                            node = node[seg]
                        assert node[leaf] == text
            assert view["event_id"] == "evt-1"
        assert permitted > 100
