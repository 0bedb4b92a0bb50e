"""Agency adapters end to end: native files over HTTP and the CLI reach the narrative."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from hub.domain.roles import Role
from hub.kafka.admin import end_offsets
from tests.support.hub_process import HubProcess, poll

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("backend", ["sqlite"])]

SAMPLES = Path(__file__).resolve().parents[2] / "adapters"

NATIVE = [
    ("northshire-police", "police/samples/ppn_notices.csv", "text/csv"),
    ("northshire-police", "police/samples/ppn_notices.json", "application/json"),
    ("northshire-health", "health/samples/ed_attendances_bundle.json", "application/fhir+json"),
    ("northshire-health", "health/samples/community_episodes_bundle.json", "application/fhir+json"),
    ("northshire-primary", "schools/samples/ctf_flat_bs7666.xml", "application/xml"),
    ("northshire-primary", "schools/samples/ctf_basic_details_lines.xml", "application/xml"),
    ("northshire-primary", "schools/samples/safeguarding_concerns.csv", "text/csv"),
    ("northshire-cs", "childrens_services/samples/cin_census_2024.xml", "application/xml"),
]


async def post_native(
    client: httpx.AsyncClient, hub: HubProcess, agency: str, body: bytes, media: str
) -> httpx.Response:
    headers = {
        **hub.headers(sub=f"{agency}-system", agency=agency, role=Role.agency_system),
        "Content-Type": media,
    }
    return await client.post(
        f"{hub.url}/api/v1/agencies/{agency}/submissions", content=body, headers=headers
    )


def metric(metrics: str, prefix: str) -> float:
    """The value of the first sample line starting with ``prefix`` (0 when absent)."""
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def stored_count(metrics: str) -> float:
    return metric(metrics, 'hub_events_out_total{outcome="stored",processor="narrative"}')


def dead_lettered(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("hub_events_dead_lettered_total{")
    )


class TestNativeSubmissions:
    """Every sample file of every adapter goes through the real pipeline."""

    async def test_every_sample_file_reaches_the_narrative_once(
        self, running_hub: HubProcess
    ) -> None:
        """All samples are accepted and processed; re-sending them stores nothing new.

        The one school concern without a UPN is linked by matching on names, birth date and
        address, so nothing is dead-lettered.
        """
        accepted: dict[str, list[str]] = {}
        async with httpx.AsyncClient(timeout=30) as client:
            for agency, path, media in NATIVE:
                r = await post_native(
                    client, running_hub, agency, (SAMPLES / path).read_bytes(), media
                )
                assert r.status_code == 202, (path, r.text)
                assert r.json()["rejected"] == 0, (path, r.json()["errors"])
                accepted[path] = r.json()["event_ids"]
            total = sum(len(v) for v in accepted.values())
            assert all(accepted.values())

            async def all_processed() -> str | None:
                text = (await client.get(f"{running_hub.url}/metrics")).text
                return text if stored_count(text) + dead_lettered(text) >= total else None

            processed = await poll(all_processed)
            assert dead_lettered(processed) == 0
            agency, path, media = NATIVE[0]
            again = await post_native(
                client, running_hub, agency, (SAMPLES / path).read_bytes(), media
            )
            assert again.json()["event_ids"] == accepted[path]

            async def duplicates_skipped() -> str | None:
                text = (await client.get(f"{running_hub.url}/metrics")).text
                return text if 'outcome="duplicate"' in text else None

            metrics = await poll(duplicates_skipped)
        assert stored_count(metrics) == total

    async def test_bad_records_listed_and_good_ones_sent(self, running_hub: HubProcess) -> None:
        """A CSV with a bad row: the good rows are sent, the bad one is named."""
        csv = (SAMPLES / "police/samples/ppn_notices.csv").read_text()
        lines = csv.splitlines()
        broken = lines[3].replace("14/05/2016", "31/02/2016")  # a child with an impossible DOB
        body = "\n".join([*lines[:3], broken, *lines[4:]]) + "\n"
        async with httpx.AsyncClient(timeout=30) as client:
            r = await post_native(
                client, running_hub, "northshire-police", body.encode(), "text/csv"
            )
        assert r.status_code == 202, r.text
        result = r.json()
        assert result["rejected"] >= 1
        assert result["accepted"] >= 1
        assert any(e["record"].startswith("row ") for e in result["errors"])
        assert "Jaden" not in r.text and "31/02/2016" not in r.text

    async def test_unreadable_file_is_refused_and_nothing_sent(
        self, running_hub: HubProcess, kafka_bootstrap: str
    ) -> None:
        """Garbage with an XML content type: 422 naming the problem, no topic touched."""
        topic = f"{running_hub.env['HUB_TOPIC_PREFIX']}ingest.childrens_services"
        before = await end_offsets(kafka_bootstrap, topic)
        async with httpx.AsyncClient(timeout=30) as client:
            r = await post_native(
                client, running_hub, "northshire-cs", b"not xml at all", "application/xml"
            )
            police_token = running_hub.headers(agency="northshire-police", role=Role.agency_system)
            other = await client.post(
                f"{running_hub.url}/api/v1/agencies/northshire-cs/submissions",
                content=b"<CINcensus/>",
                headers={**police_token, "Content-Type": "application/xml"},
            )
        assert r.status_code == 422
        assert r.json()["detail"][0]["type"] == "unreadable_file"
        assert other.status_code == 403  # an agency may not speak for another
        assert await end_offsets(kafka_bootstrap, topic) == before


class TestAdapterCommand:
    """`hub adapter <kind> FILE` parses locally and sends to the ingest topic."""

    async def test_cli_sends_sample_and_reports(self, running_hub: HubProcess) -> None:
        """The CIN census sample is sent with the default agency of the kind."""
        out = running_hub.run_cli(
            "adapter",
            "childrens_services",
            str(SAMPLES / "childrens_services/samples/cin_census_2024.xml"),
        )
        assert out.returncode in (0, 1), out.stderr
        assert "as northshire-cs" in out.stdout
        sent = int(out.stdout.split("sent ", 1)[1].split(" ", 1)[0])
        async with httpx.AsyncClient(timeout=30) as client:

            async def stored() -> float | None:
                n = stored_count((await client.get(f"{running_hub.url}/metrics")).text)
                return n if n >= sent else None

            assert await poll(stored) == sent
