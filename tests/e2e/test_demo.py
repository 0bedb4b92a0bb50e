"""The demo scenario end to end: its native files posted to the agency-submission endpoint of a
real hub on the real broker become the expected narratives and raise the expected alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from hub.auth import TokenIssuer
from hub.crypto.token_keys import load_or_create_signing_key
from hub.demo.loader import wait_for_events
from hub.demo.scenario import CHILDREN, EXPECTED_ALERTS, FILES, file_bytes, render, shift_for
from hub.domain.roles import Role
from hub.intake import content_type_for
from hub.store.db import create_engine
from hub.store.schema import narrative_entries
from tests.support.hub_process import PATIENCE, HubProcess, poll

pytestmark = pytest.mark.e2e


def issuer(hub: HubProcess) -> TokenIssuer:
    """Tokens from the hub's own key, with the team claims the inboxes need."""
    key = load_or_create_signing_key(hub.data_dir / "keys")
    return TokenIssuer(key, issuer="hub-local", audience="safeguarding-hub")


def bearer(
    hub: HubProcess,
    sub: str,
    agency: str,
    role: Role,
    team: str | None = None,
    email: str | None = None,
) -> dict[str, str]:
    token = issuer(hub).issue(
        sub=sub, agency=agency, role=role, team=team, email=email, ttl=timedelta(minutes=30)
    )
    return {"Authorization": f"Bearer {token}"}


async def load_demo(client: httpx.AsyncClient, hub: HubProcess, shift: int) -> None:
    """Post every scenario file as its agency, wave by wave, each wave stored before the next."""
    engine = create_engine(hub.env["HUB_DATABASE_URL"])
    try:
        for wave in sorted({f.wave for f in FILES}):
            ids: list[str] = []
            for demo in (f for f in FILES if f.wave == wave):
                r = await client.post(
                    f"{hub.url}/api/v1/agencies/{demo.agency_id}/submissions",
                    content=render(file_bytes(demo.name), shift),
                    headers={
                        **bearer(hub, "adapter", demo.agency_id, Role.agency_system),
                        "Content-Type": content_type_for(Path(demo.name)),
                    },
                )
                assert r.status_code == 202, r.text
                assert (r.json()["rejected"], r.json()["errors"]) == (0, []), demo.name
                ids += r.json()["event_ids"]
            await wait_for_events(engine, ids, timeout=PATIENCE)
    finally:
        await engine.dispose()


async def stories(hub: HubProcess) -> dict[str, set[str]]:
    """Every stored narrative entry's event id, by canonical child."""
    engine = create_engine(hub.env["HUB_DATABASE_URL"])
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(narrative_entries.c.child_id, narrative_entries.c.event_id)
            )
            found: dict[str, set[str]] = {}
            for child_id, event_id in rows:
                found.setdefault(child_id, set()).add(event_id)
            return found
    finally:
        await engine.dispose()


class TestDemoScenario:
    """The demo, loaded through the real endpoints, tells each child's story and alerts."""

    async def test_narratives_and_alerts(self, running_hub: HubProcess) -> None:
        """Each child has one linked story; the expected alerts reach their inboxes."""
        hub = running_hub
        shift = shift_for(datetime.now(UTC).date())
        async with httpx.AsyncClient(timeout=60) as client:
            await load_demo(client, hub, shift)
            by_child = await stories(hub)
            ids: dict[str, str] = {}
            for child in CHILDREN:
                owners = {c for c, events in by_child.items() if set(child.event_ids) & events}
                assert len(owners) == 1, (child.key, owners)
                [ids[child.key]] = owners
                assert by_child[ids[child.key]] == set(child.event_ids), child.key
            assert len(by_child) == len(CHILDREN)

            duty = bearer(hub, "duty-1", "northshire-cs", Role.duty_officer, team="duty")
            # The police PPU reads Ruby's story: the misspelt notice is in it, beside the school's.
            ppu = bearer(hub, "ppu-1", "northshire-police", Role.police_ppu)
            r = await client.get(f"{hub.url}/api/v1/children/{ids['ruby']}/narrative", headers=ppu)
            assert r.status_code == 200, r.text
            shown = {e["event_id"] for e in r.json()["entries"]}
            assert "northshire-police:NP-26-011842:NPP-410977:contact" in shown  # "Ruby Brenan"

            inboxes = {
                "team:northshire-cs:duty": duty,
                "team:northshire-cs:front-door": bearer(
                    hub, "fd-1", "northshire-cs", Role.duty_officer, team="front-door"
                ),
                "agency:northshire-primary:designated_safeguarding_lead": bearer(
                    hub, "dsl-1", "northshire-primary", Role.designated_safeguarding_lead
                ),
                # Leo's allocated social worker (allocations.csv), signed in as themselves.
                "practitioner:sam.practitioner@northshire.example": bearer(
                    hub,
                    "sam.practitioner",
                    "northshire-cs",
                    Role.social_worker,
                    team="safeguarding-team-2",
                    email="sam.practitioner@northshire.example",
                ),
            }
            expected = {
                (a.rule_id, ids[a.child_key], a.trigger_event_id, a.address)
                for a in EXPECTED_ALERTS
                if a.known_gap is None
            }

            latest: set[tuple[str, str, str, str]] = set()

            async def seen() -> set[tuple[str, str, str, str]] | None:
                found = latest
                found.clear()
                for address, headers in inboxes.items():
                    r = await client.get(f"{hub.url}/api/v1/alerts", headers=headers)
                    assert r.status_code == 200, r.text
                    for alert in r.json()["alerts"]:
                        for trigger in alert["trigger_event_ids"]:
                            found.add((alert["rule_id"], alert["child_id"], trigger, address))
                return found if expected <= found else None

            try:
                found = await poll(seen, timeout=min(PATIENCE, 90))
            except AssertionError:
                assert expected <= latest, hub.tail(60)
                raise
            raised = {(rule, child) for rule, child, _, _ in found}
            assert not [a for a in EXPECTED_ALERTS if a.known_gap is not None]
            assert not any(child == ids["anaya"] for _, child in raised)
            # Kayden is looked after (SSDA903 episodes): one missing episode is enough, and
            # with no lead named for his care period the duty team hears.
            kayden = {a[3] for a in found if a[:2] == ("missing_episodes", ids["kayden"])}
            assert kayden == {"team:northshire-cs:duty"}
            # Oscar, not named by police, hears through the household: one notice, the same
            # incident as Ruby's, at the same school.
            encompass = sorted(a[1] for a in found if a[0] == "domestic_abuse_to_school")
            assert encompass == sorted([ids["ruby"], ids["oscar"]])
            leo = [a for a in found if a[0] == "unscheduled_care_with_plan"]
            assert {a[3] for a in leo} == {
                "team:northshire-cs:duty",
                "practitioner:sam.practitioner@northshire.example",
            }
