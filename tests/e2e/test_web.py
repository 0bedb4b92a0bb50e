"""The web pages in a real browser (Chromium through Playwright) against a real hub process.

A social worker signs in and watches a live alert arrive, opens the child and reads entries
from all four agency kinds and the incident about the child's brother in the family section; a
school DSL sees the same child only as the API lets them, and nothing of the brother; a merged
record says so; an IG officer checks, dry-runs and applies a rule change; every page passes
axe-core with no serious or critical violation and its screenshot is taken: into
``docs/screenshots/<page>.png`` (the README's pictures) with ``HUB_UPDATE_SCREENSHOTS=1``, else
into a temporary directory, so a test run leaves the working tree as it was.

The hub here is a real ``hub serve`` process on the real broker (``HubProcess``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from contracts.examples import example_data, example_envelope, valid_nhs_number
from hub.crypto.runtime import sign_as_dev
from hub.domain.roles import Role
from tests.support.hub_process import PATIENCE, HubProcess, poll

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
AXE = Path(__file__).parent / "assets" / "axe.min.js"
SHOTS = (
    REPO / "docs" / "screenshots"
    if os.environ.get("HUB_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "hub-test-screenshots"
)
NORTHSHIRE = REPO / "deploy" / "rules" / "northshire.yaml"
CHROMIUM = os.environ.get("HUB_TEST_CHROMIUM", "/usr/bin/chromium")
HAVE_CHROMIUM = Path(CHROMIUM).exists()
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run"]  # fmt: skip
KINDS = {
    "northshire-cs": "childrens_services",
    "northshire-police": "police",
    "northshire-health": "health",
    "northshire-primary": "schools",
}
HEALTH_SUMMARY = "Attended the emergency department with a head injury."
BROTHER_SUMMARY = "Officers found the younger brother hiding upstairs during the incident."
BROTHER = {
    "name": {"given": "Leo", "family": "Example", "aliases": []},
    "birth_date": "2019-11-23",
    "sex": "male",
}
"""An invented younger brother: the default child's address and mother, his own name and birth."""


@pytest.fixture
def backend() -> str:
    """Pages are tested on SQLite; the API under them is tested on both stores elsewhere."""
    return "sqlite"


@pytest.fixture
def hub(hub_env: dict[str, str], tmp_path: Path) -> Iterator[HubProcess]:
    made = HubProcess(env=hub_env, data_dir=tmp_path / "data")
    made.start()
    yield made
    made.kill()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Debian's Chromium, driven by Playwright (no browser download)."""
    if not HAVE_CHROMIUM:
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        made = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield made
        await made.close()


# --- helpers ----------------------------------------------------------------------------------


def envelope(
    agency: str,
    n: int,
    event_type: str,
    nhs_seed: int,
    *,
    person: dict[str, Any] | None = None,
    **data: Any,
) -> dict[str, Any]:
    """A signed envelope from ``agency`` about the child with NHS seed ``nhs_seed``; ``person``
    overrides fields of the example child (who lives at the example address with their mother).
    """
    when = datetime.now(UTC) - timedelta(hours=10 - n)
    env = example_envelope(
        id=f"{agency}:web-{nhs_seed}-{n}",
        source=f"urn:agency:{agency}",
        type=event_type,
        agency_id=agency,
        agency_kind=KINDS[agency],
        subject=f"WEB-{agency}-{nhs_seed}",
        time=when.isoformat(),
        recorded_at=when.isoformat(),
        lawful_basis="law_enforcement_sch8" if agency == "northshire-police" else "public_task",
        sensitivity=["domestic_abuse"] if agency == "northshire-police" else [],
    )
    env["data"] = {**example_data(event_type), **data}
    if "ended_at" in env["data"]:
        env["data"]["ended_at"] = (when + timedelta(hours=1)).isoformat()
    env["person"].update(person or {})
    env["person"]["identifiers"] = [{"system": "nhs", "value": valid_nhs_number(nhs_seed)}]
    return sign_as_dev(env)  # type: ignore[no-any-return]


async def submit(hub: HubProcess, doc: dict[str, Any]) -> None:
    headers = hub.headers(sub="adapter", agency=doc["agency_id"], role=Role.agency_system)
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(f"{hub.url}/api/v1/submissions", json=doc, headers=headers)
    assert r.status_code == 202, r.text


async def child_with(hub: HubProcess, nhs_seed: int, count: int) -> str:
    """The child id once the narrative holds ``count`` entries."""

    async def ready() -> str | None:
        async with httpx.AsyncClient(timeout=30) as client:
            found = await client.get(
                f"{hub.url}/api/v1/children",
                params={"identifier": f"nhs:{valid_nhs_number(nhs_seed)}"},
                headers=hub.headers(),
            )
            ids = [c["child_id"] for c in found.json()["children"]]
            if not ids:
                return None
            story = await client.get(
                f"{hub.url}/api/v1/children/{ids[0]}/narrative", headers=hub.headers()
            )
        return ids[0] if len(story.json()["entries"]) >= count else None

    return await poll(ready, timeout=90)


async def seed_child(hub: HubProcess, nhs_seed: int) -> str:
    """A child on a CP plan (Sam Practitioner leads) known to all four agency kinds."""
    await submit(hub, envelope("northshire-cs", 1, "involvement.started", nhs_seed))
    await submit(hub, envelope("northshire-police", 2, "concern.raised", nhs_seed))
    await submit(
        hub,
        envelope("northshire-primary", 3, "contact.recorded", nhs_seed,
                 contact_type="school_absence", summary="Absent without explanation.",
                 location="Northshire Primary School", details={}),
    )  # fmt: skip
    await submit(hub, envelope("northshire-health", 4, "contact.recorded", nhs_seed))
    return await child_with(hub, nhs_seed, 4)


async def seed_brother(hub: HubProcess, nhs_seed: int) -> str:
    """The younger brother, on a CP plan, with one domestic-abuse incident reported by police."""
    await submit(hub, envelope("northshire-cs", 5, "involvement.started", nhs_seed, person=BROTHER))
    await submit(
        hub,
        envelope("northshire-police", 6, "concern.raised", nhs_seed, person=BROTHER,
                 summary=BROTHER_SUMMARY),
    )  # fmt: skip
    return await child_with(hub, nhs_seed, 2)


async def new_page(browser: Any) -> Any:
    """A page in its own context; CSP bypassed only so the test can inject axe-core."""
    context = await browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
    return await context.new_page()


async def sign_in(browser: Any, hub: HubProcess, who: str) -> Any:
    """A new page signed in as the demo user ``who`` (through the sign-in form)."""
    page = await new_page(browser)
    await page.goto(f"{hub.url}/sign-in")
    await page.check(f"#user-{who}")
    await page.click("button:has-text('Sign in')")
    await page.wait_for_url(f"{hub.url}/alerts")
    return page


async def check_page(page: Any, name: str) -> None:
    """axe-core finds no serious or critical violation; save the page's screenshot."""
    await check_accessible(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def check_accessible(page: Any) -> None:
    """axe-core finds no serious or critical violation on the page as it stands."""
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        "() => axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}})"
    )
    bad = [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], json.dumps(bad, indent=1)


async def entry_kinds(page: Any) -> set[str]:
    return set(await page.eval_on_selector_all(
        "[data-timeline] li", "els => els.map(e => e.dataset.agencyKind)"))  # fmt: skip


async def family_members(page: Any) -> list[str]:
    """Each household child listed in the family section, as 'child id: connection'."""
    return await page.eval_on_selector_all(  # type: ignore[no-any-return]
        "[data-family-members] [data-member]",
        "els => els.map(e => e.dataset.member + ': ' + e.querySelector('dt').innerText.trim())",
    )


async def family_entries(page: Any) -> list[tuple[str, str]]:
    """The family section's entries as (event id, child it is about)."""
    found = await page.eval_on_selector_all(
        "[data-family-entries] li", "els => els.map(e => [e.dataset.eventId, e.dataset.viaChild])"
    )
    return [tuple(f) for f in found]


# --- scenarios --------------------------------------------------------------------------------


class TestSignIn:
    """Signing in and out, and what happens without a session."""

    async def test_pages_need_a_session_and_sign_in_returns_to_the_page(self, hub, browser):
        """A page opened without a session leads to sign in and back to that page."""
        page = await new_page(browser)
        await page.goto(f"{hub.url}/rules")
        assert page.url == f"{hub.url}/sign-in?next=/rules"
        await check_page(page, "sign-in")
        await page.click("button:has-text('Sign in')")
        assert await page.inner_text(".govuk-error-summary") == (
            "There is a problem\nChoose who to sign in as."
        )
        await page.check("#user-ig-officer")
        await page.click("button:has-text('Sign in')")
        await page.wait_for_url(f"{hub.url}/rules")
        cookie = next(c for c in await page.context.cookies() if c["name"] == "hub_session")
        assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
        await page.click("button:has-text('Sign out')")
        await page.wait_for_url(f"{hub.url}/sign-in")
        assert [c["name"] for c in await page.context.cookies() if c["name"] == "hub_session"] == []

    async def test_a_form_without_the_session_csrf_token_is_refused(self, hub):
        """A cross-site style POST carrying the cookie but no CSRF token changes nothing."""
        token = hub.token(sub="robin.hale", role=Role.ig_officer)
        async with httpx.AsyncClient(base_url=hub.url, cookies={"hub_session": token}) as c:
            r = await c.post("/rules", data={"action": "apply", "text": "x", "reason": "y"})
        assert r.status_code == 400
        assert "This form has expired" in r.text


class TestSocialWorker:
    """The inbox, live alerts and the child's cross-agency timeline."""

    async def test_child_timeline_shows_all_four_agency_kinds_and_filters(self, hub, browser):
        """Entries from police, health, school and children's social care; the brother's
        incident in the family section, not in the child's own timeline; filters narrow."""
        child = await seed_child(hub, 4101)
        brother = await seed_brother(hub, 4102)
        page = await sign_in(browser, hub, "social-worker")
        await check_page(page, "alerts")
        await page.click("a:has-text('Find a child')")
        await page.fill("#identifier", "nhs:not-a-number")
        await page.click("button:has-text('Find')")
        assert "Enter an identifier like" in await page.inner_text(".govuk-error-summary")
        await check_page(page, "find-child")
        await page.fill("#identifier", f"nhs:{valid_nhs_number(4101)}")
        await page.click("button:has-text('Find')")
        await page.wait_for_url(f"{hub.url}/children/{child}")
        assert await entry_kinds(page) == set(KINDS.values())
        assert "Sam Practitioner" in await page.inner_text(".govuk-summary-card")
        assert await family_members(page) == [f"{brother}: Lives at the same address"]
        assert await family_entries(page) == [("northshire-police:web-4102-6", brother)]
        about = await page.inner_text("[data-family-entries] li")
        assert f"About child {brother} (lives at the same address)" in about
        assert BROTHER_SUMMARY in about
        assert BROTHER_SUMMARY not in await page.inner_text("[data-timeline]")
        assert await page.query_selector("[data-merged-from]") is None
        await check_page(page, "child")
        await page.click(f"[data-member='{brother}'] a")
        await page.wait_for_url(f"{hub.url}/children/{brother}")
        assert await family_members(page) == [f"{child}: Lives at the same address"]
        assert await family_entries(page) == [("northshire-police:web-4101-2", child)]
        await page.go_back()
        await page.click("summary:has-text('Filter the timeline')")
        await page.check("#agency-police")
        await page.click("button:has-text('Apply filters')")
        assert await entry_kinds(page) == {"police"}
        assert "Showing 1 of 4 entries." in await page.inner_text("[data-entry-count]")

    async def test_live_alert_arrives_and_is_acknowledged_in_place(self, hub, browser):
        """An unscheduled-care attendance for a child on a CP plan appears without reloading."""
        await submit(hub, envelope("northshire-cs", 1, "involvement.started", 4202))
        await child_with(hub, 4202, 1)
        page = await sign_in(browser, hub, "social-worker")
        await page.wait_for_selector("[data-alerts][data-live='open']")
        await submit(hub, envelope("northshire-health", 2, "contact.recorded", 4202))
        await page.wait_for_selector("[data-alert-row]", timeout=PATIENCE * 1000)
        assert "New alert" in await page.inner_text("[data-live-status]")
        await check_page(page, "alerts-live")
        await page.click("[data-alert-row] button:has-text('Acknowledge')")
        await page.wait_for_selector("[data-alert-row]", state="detached")
        assert "Alert acknowledged" in await page.inner_text("[data-live-status]")


class TestSchoolDsl:
    """A school's DSL sees the child only as the API answers them."""

    async def test_dsl_page_matches_the_api_and_never_shows_health_details(self, hub, browser):
        """What the DSL's page lists is exactly what the API gives their token; no A&E visit,
        and nothing at all of a brother whose records the school's rules do not reach."""
        child = await seed_child(hub, 4303)
        brother = await seed_brother(hub, 4304)
        page = await sign_in(browser, hub, "school-dsl")
        response = await page.goto(f"{hub.url}/children/{child}")
        token = next(c["value"] for c in await page.context.cookies() if c["name"] == "hub_session")
        async with httpx.AsyncClient(timeout=30) as c:
            api = await c.get(f"{hub.url}/api/v1/children/{child}/narrative",
                              headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            family = await c.get(f"{hub.url}/api/v1/children/{child}/family",
                                 headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        shown = await page.eval_on_selector_all(
            "[data-timeline] li", "els => els.map(e => e.dataset.eventId)"
        )
        if api.status_code == 403:
            assert (response.status, shown) == (403, [])
            assert "You cannot see this" in await page.inner_text("h1")
        else:
            assert sorted(shown) == sorted(e["event_id"] for e in api.json()["entries"])
        assert HEALTH_SUMMARY not in await page.content()
        assert (family.status_code, family.json()["members"], family.json()["entries"]) == (
            200, [], []
        )  # fmt: skip
        assert await page.inner_text("[data-family-empty]") == (
            "There is nothing to show you about other children in this child's household."
        )
        html = await page.content()
        assert (brother in html, BROTHER_SUMMARY in html) == (False, False)
        await check_page(page, "child-school-dsl")


class TestInformationGovernance:
    """Rules: checked as typed, dry-run, applied with a reason; audit; consent; break-glass."""

    async def test_ig_checks_dry_runs_and_applies_a_rule_change(self, hub, browser):
        """A broken pack is flagged while typing; a valid one is dry-run then put in force."""
        child = await seed_child(hub, 4404)
        sw = await sign_in(browser, hub, "social-worker")
        await sw.goto(f"{hub.url}/children/{child}")
        before = await entry_kinds(sw)
        page = await sign_in(browser, hub, "ig-officer")
        await page.goto(f"{hub.url}/rules")
        text = NORTHSHIRE.read_text()
        await page.fill("#text", text.replace("purpose: safeguarding", "purpose: gossip", 1))
        check = page.locator("[data-rules-check]")
        await check.filter(has_text="1 problem").wait_for()
        assert "rules[0] (own-agency-records).purpose" in await check.inner_text()
        proposed = text.replace('version: "2025.1"', 'version: "2025.2"').replace(
            "source_agency_kinds: [police, health, schools]",
            "source_agency_kinds: [health, schools]", 1)  # fmt: skip
        await page.fill("#text", proposed)
        await check.filter(has_text="No problems found.").wait_for()
        await page.click("button:has-text('See what would change')")
        summary = await page.inner_text("[data-dry-run-summary]")
        assert summary.startswith("Version 2025.1 to 2025.2")
        assert "Changed: cs-partner-information" in await page.inner_text("main")
        await check_page(page, "rules")
        await page.click("button:has-text('Apply these rules')")
        assert "Say why this change is being made" in await page.inner_text(".govuk-error-summary")
        await page.fill("#reason", "Police information reaches social care through MASH only.")
        await page.click("button:has-text('Apply these rules')")
        await page.wait_for_url(f"{hub.url}/rules?applied=2025.2")
        assert await page.inner_text("[data-version]") == "Version 2025.2 (number 2)"
        history = await page.inner_text("[data-history] tbody")
        assert history.splitlines()[0].startswith("2025.2")
        await sw.goto(f"{hub.url}/children/{child}")
        after = await entry_kinds(sw)
        assert "police" in before
        assert after == before - {"police"}

    async def test_audit_subject_access_consent_and_break_glass_pages(self, hub, browser):
        """IG verifies the trail and exports a child; a social worker records consent and
        breaks glass; IG sees it waiting for review."""
        child = await seed_child(hub, 4505)
        sw = await sign_in(browser, hub, "social-worker")
        await sw.goto(f"{hub.url}/consent?child_id={child}")
        await sw.select_option("#purpose", "education_safeguarding")
        await sw.select_option("#agency_id", "northshire-primary")
        await sw.select_option("#state", "refused")
        await sw.select_option("#given_by", "parent")
        await sw.click("button:has-text('Record decision')")
        await sw.wait_for_url(f"{hub.url}/consent?child_id={child}&done=consent")
        assert "Education safeguarding\tnorthshire-primary\tRefused" in await sw.inner_text(
            "[data-consents] tbody"
        )
        await check_page(sw, "consent")
        await sw.fill(
            "#justification",
            "Child disclosed harm at school today; need the full health history first.",
        )
        await sw.click("button:has-text('Break glass')")
        await sw.wait_for_url(f"{hub.url}/children/{child}?break_glass=1")
        ig = await sign_in(browser, hub, "ig-officer")
        await ig.goto(f"{hub.url}/consent")
        assert f"child {child}" in await ig.inner_text(".govuk-summary-card__title")
        await check_page(ig, "break-glass-reviews")
        await ig.goto(f"{hub.url}/audit")
        await ig.click("button:has-text('Verify the audit trail')")
        assert await ig.get_attribute("[data-verified]", "data-verified") == "ok"
        await check_page(ig, "audit")
        await ig.fill("#sar-child", child)
        await ig.click("button:has-text('Prepare export')")
        assert int(await ig.inner_text("[data-held]")) >= 4
        await check_page(ig, "subject-access")


class TestIdentityReview:
    """Possible matches side by side, decided with a reason."""

    async def test_reviewer_links_a_pair_with_a_reason(self, hub, browser):
        """Differing fields are marked; a decision without a reason is refused, then saved."""
        from hub.identity.store import IdentityStore
        from hub.store.db import create_engine

        left, right = await seed_child(hub, 4606), await seed_child(hub, 4607)
        engine = create_engine(hub.env["HUB_DATABASE_URL"])
        score = SimpleNamespace(weight=9.25, breakdown=[
            SimpleNamespace(comparison="given_name", level="exact", weight=6.1),
            SimpleNamespace(comparison="birth_date", level="one_digit_differs", weight=1.2),
            SimpleNamespace(comparison="postcode", level="missing", weight=0.0),
        ])  # fmt: skip
        try:
            await IdentityStore(engine).queue_review(
                "rec-web-1", left, SimpleNamespace(child_id=right, score=score),
                now=datetime.now(UTC),
            )  # fmt: skip
        finally:
            await engine.dispose()
        page = await sign_in(browser, hub, "social-worker")
        await page.click("a:has-text('Possible matches')")
        differs = await page.eval_on_selector_all(
            "tr.hub-differs", "els => els.map(e => e.dataset.level)"
        )
        assert differs == ["one_digit_differs"]
        await check_page(page, "identity")
        await page.check("text=Yes, link them")
        await page.click("button:has-text('Save decision')")
        assert "Give a reason" in await page.inner_text(".govuk-error-summary")
        await page.check("text=Yes, link them")
        await page.fill("textarea[name=reason]", "Same school, same mother, birth date typo.")
        await page.click("button:has-text('Save decision')")
        await page.wait_for_url(f"{hub.url}/identity?decided=link")
        assert "There are no possible matches waiting." in await page.inner_text("main")

        async def merged() -> str | None:
            await page.goto(f"{hub.url}/children/{right}")
            notice = await page.query_selector("[data-merged-from]")
            return await notice.inner_text() if notice else None

        assert await poll(merged) == (
            f"This record includes records merged from child {left}. "
            "Their entries are part of the timeline below."
        )
        assert await page.inner_text("[data-family-empty]") == (
            "There is nothing to show you about other children in this child's household."
        )
        await check_accessible(page)
