"""Identity and family end to end on the real broker and store: records without identifiers
matched at ingest, a possible match reviewed and merged, the merge undone, and the family view.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from contracts.examples import example_envelope, valid_upn
from hub.crypto.runtime import sign_as_dev
from hub.domain.roles import Role
from tests.support.hub_process import HubProcess, poll

pytestmark = pytest.mark.e2e

MILL_LANE = {"lines": ["3 Mill Lane", "Northtown"], "postcode": "NS1 4MB"}
DAY_BEFORE = datetime.now(UTC) - timedelta(days=1)  # recent enough for alerts to be raised
WHEN = {
    "time": DAY_BEFORE.isoformat(),
    "recorded_at": (DAY_BEFORE + timedelta(hours=1)).isoformat(),
}
JAYDEN_UPN = valid_upn(7701)
AYESHA_UPN = valid_upn(7702)


def person(given: str, family: str, born: str, upn: str | None = None) -> dict[str, Any]:
    """An invented child at 3 Mill Lane whose mother is Jo Smith."""
    return {
        "identifiers": [{"system": "upn", "value": upn}] if upn else [],
        "name": {"given": given, "family": family, "aliases": []},
        "birth_date": born,
        "sex": "male" if given != "Ayesha" else "female",
        "address": MILL_LANE,
        "related": [
            {
                "relationship": "mother",
                "name": {"given": "Jo", "family": "Smith", "aliases": []},
                "identifiers": [],
                "birth_date": "1990-02-03",
            }
        ],
    }


def school_concern(n: int, who: dict[str, Any]) -> dict[str, Any]:
    return example_envelope(
        id=f"northshire-primary:fam-{n:04d}",
        source="urn:agency:northshire-primary",
        agency_id="northshire-primary",
        agency_kind="schools",
        subject=f"PUPIL-{n:04d}",
        lawful_basis="public_task",
        sensitivity=[],
        person=who,
        **WHEN,
    )


def police_notice(n: int, who: dict[str, Any], subject: str) -> dict[str, Any]:
    return example_envelope(
        id=f"northshire-police:fam-{n:04d}", subject=subject, person=who, **WHEN
    )


async def submit(client: httpx.AsyncClient, hub: HubProcess, envelope: dict[str, Any]) -> None:
    headers = hub.headers(sub="adapter", agency=envelope["agency_id"], role=Role.agency_system)
    r = await client.post(
        f"{hub.url}/api/v1/submissions", json=sign_as_dev(envelope), headers=headers
    )
    assert r.status_code == 202, r.text


async def child_of(client: httpx.AsyncClient, hub: HubProcess, upn: str) -> str:
    async def find() -> str | None:
        r = await client.get(
            f"{hub.url}/api/v1/children",
            params={"identifier": f"upn:{upn}"},
            headers=hub.headers(),
        )
        found = r.json()["children"]
        return found[0]["child_id"] if found else None

    return await poll(find)


async def narrative(client: httpx.AsyncClient, hub: HubProcess, child_id: str) -> dict[str, Any]:
    r = await client.get(f"{hub.url}/api/v1/children/{child_id}/narrative", headers=hub.headers())
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


def event_ids(story: dict[str, Any]) -> list[str]:
    return [e["event_id"] for e in story["entries"]]


class TestIdentityAndFamily:
    """One family's records from a school and the police become one story, reviewably."""

    async def test_match_review_merge_unmerge_and_family(self, running_hub: HubProcess) -> None:
        """Matched, queued, merged, un-merged and seen as a household, through the real hub."""
        hub = running_hub
        decider = hub.headers(sub="sw-1", role=Role.social_worker)
        async with httpx.AsyncClient(timeout=30) as client:
            await submit(
                client, hub, school_concern(1, person("Jayden", "Smith", "2016-05-14", JAYDEN_UPN))
            )
            await submit(
                client, hub, school_concern(2, person("Ayesha", "Smith", "2013-09-02", AYESHA_UPN))
            )
            jayden = await child_of(client, hub, JAYDEN_UPN)
            ayesha = await child_of(client, hub, AYESHA_UPN)
            # "Jaden Smyth", no identifiers: linked to Jayden by score.
            await submit(
                client, hub, police_notice(3, person("Jaden", "Smyth", "2016-05-14"), "NP-FAM-1")
            )
            # "Jay Smith", a month and a day out: a possible match, queued, not merged.
            await submit(
                client, hub, police_notice(4, person("Jay", "Smith", "2016-07-15"), "NP-FAM-2")
            )

            async def queued() -> list[dict[str, Any]] | None:
                r = await client.get(f"{hub.url}/api/v1/identity/reviews", headers=decider)
                found = r.json()["reviews"]
                return found or None

            [review] = await poll(queued)
            assert review["candidate_child_id"] == jayden
            provisional = review["provisional_child_id"]
            assert provisional not in (jayden, ayesha)
            await poll(lambda: _stored(hub, jayden, 2))
            await poll(lambda: _stored(hub, provisional, 1))
            assert set(event_ids(await narrative(client, hub, jayden))) == {
                "northshire-police:fam-0003",
                "northshire-primary:fam-0001",
            }

            decided = await client.post(
                f"{hub.url}/api/v1/identity/reviews/{review['review_id']}",
                json={"decision": "link", "reason": "Same boy: school confirmed his nickname."},
                headers=decider,
            )
            assert decided.status_code == 200, decided.text
            assert decided.json()["event_type"] == "identity.merged"
            merge_id = decided.json()["event"]["merge_id"]

            async def merged() -> dict[str, Any] | None:
                story = await narrative(client, hub, jayden)
                return story if story["merged_from"] == [provisional] else None

            story = await poll(merged)
            # Three concerns from two agencies only once joined: the front door hears of them.
            [alert] = await poll(lambda: front_door_alerts(client, hub, jayden))
            assert set(alert["trigger_event_ids"]) == {
                "northshire-primary:fam-0001",
                "northshire-police:fam-0003",
                "northshire-police:fam-0004",
            }
            assert set(event_ids(story)) == {
                "northshire-primary:fam-0001",
                "northshire-police:fam-0003",
                "northshire-police:fam-0004",
            }
            # Asking for the merged child shows the one story, told for the surviving child.
            through_merged = await narrative(client, hub, provisional)
            assert (through_merged["child_id"], through_merged["merged_from"]) == (
                jayden,
                [provisional],
            )

            undone = await client.post(
                f"{hub.url}/api/v1/identity/merges/{merge_id}/undo",
                json={"reason": "Different boy: the police record was a cousin."},
                headers=decider,
            )
            assert undone.status_code == 200, undone.text
            again = await client.post(
                f"{hub.url}/api/v1/identity/merges/{merge_id}/undo",
                json={"reason": "Pressed twice by mistake."},
                headers=decider,
            )
            assert again.status_code == 404

            async def unmerged() -> dict[str, Any] | None:
                story = await narrative(client, hub, jayden)
                return story if story["merged_from"] == [] else None

            story = await poll(unmerged)
            assert "northshire-police:fam-0004" not in event_ids(story)
            # The alert needed the cousin's record: withdrawn with the merge, off the inbox.

            async def withdrawn() -> bool:
                return await front_door_alerts(client, hub, jayden) is None

            assert await poll(withdrawn)
            assert event_ids(await narrative(client, hub, provisional)) == [
                "northshire-police:fam-0004"
            ]

            family = await client.get(
                f"{hub.url}/api/v1/children/{jayden}/family", headers=hub.headers()
            )
            assert family.status_code == 200, family.text
            body = family.json()
            members = {m["child_id"]: m["connection"] for m in body["members"]}
            assert members[ayesha] == "lives at the same address"
            ayesha_entries = [e for e in body["entries"] if e["via_child_id"] == ayesha]
            assert [e["event_id"] for e in ayesha_entries] == ["northshire-primary:fam-0002"]
            assert all(e["connection"] == members[e["via_child_id"]] for e in body["entries"])
            assert "Mill" not in family.text and "NS1" not in family.text

            refused = await client.post(
                f"{hub.url}/api/v1/identity/merges/{merge_id}/undo",
                json={"reason": "A school may not decide identity."},
                headers=hub.headers(
                    sub="dsl-1", agency="northshire-primary", role=Role.designated_safeguarding_lead
                ),
            )
            assert refused.status_code == 403


async def front_door_alerts(
    client: httpx.AsyncClient, hub: HubProcess, child_id: str
) -> list[dict[str, Any]] | None:
    """The front door's open accumulating-concerns alerts about the child (None: none)."""
    headers = hub.headers(sub="mash-1", role=Role.duty_officer, team="front-door")
    r = await client.get(f"{hub.url}/api/v1/alerts", headers=headers)
    r.raise_for_status()
    found = [
        a
        for a in r.json()["alerts"]
        if a["child_id"] == child_id and a["rule_id"] == "accumulating_concerns"
    ]
    return found or None


async def _stored(hub: HubProcess, child_id: str, at_least: int) -> bool | None:
    return True if await hub.stored_entries(child_id) >= at_least else None
