"""Operating the hub: health, metrics, AsyncAPI, the CLI, and parts scaled as separate processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from contracts.examples import example_envelope, valid_nhs_number
from hub.crypto.runtime import sign_as_dev
from hub.domain.roles import Role
from tests.support.hub_process import HubProcess, poll, start_all

pytestmark = pytest.mark.e2e

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])


@sqlite_only
class TestOperability:
    """Health, readiness, metrics and the AsyncAPI document are served."""

    async def test_health_ready_metrics_and_asyncapi(self, running_hub: HubProcess) -> None:
        """/healthz, /readyz and /metrics answer; AsyncAPI lists every topic."""
        prefix = running_hub.env["HUB_TOPIC_PREFIX"]
        env = example_envelope(id="northshire-police:ops-1")
        async with httpx.AsyncClient(base_url=running_hub.url, timeout=10) as client:
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            ready = await client.get("/readyz")
            assert ready.json() == {"status": "ready", "checks": {"kafka": "ok", "store": "ok"}}
            headers = running_hub.headers(agency="northshire-police", role=Role.agency_system)
            r = await client.post("/api/v1/submissions", json=sign_as_dev(env), headers=headers)
            assert r.status_code == 202

            async def stored() -> str | None:
                text = (await client.get("/metrics")).text
                return (
                    text
                    if 'hub_events_out_total{outcome="stored",processor="narrative"} 1.0' in text
                    else None
                )

            metrics = await poll(stored)
            asyncapi = (await client.get("/asyncapi.json")).json()
            openapi = (await client.get("/openapi.json")).json()
        assert 'hub_submissions_total{outcome="accepted"} 1.0' in metrics
        assert (
            'hub_events_in_total{processor="ingest",topic="' + prefix + 'ingest.police"} 1.0'
            in metrics
        )
        assert "hub_consumer_lag_records" in metrics
        assert "hub_submission_to_stored_seconds_bucket" in metrics
        addresses = {c["address"] for c in asyncapi["channels"].values()}
        assert {
            f"{prefix}ingest.police",
            f"{prefix}ingest.health",
            f"{prefix}ingest.schools",
            f"{prefix}ingest.childrens_services",
            f"{prefix}hub.events",
            f"{prefix}hub.dlq",
        } <= addresses
        assert "Envelope" in openapi["components"]["schemas"]
        assert "/api/v1/submissions" in openapi["paths"]

    async def test_narrative_reads_are_decided_by_the_rules_and_audited(
        self, running_hub: HubProcess
    ) -> None:
        """Duty officer sees a police concern; an uninvolved social worker and school see nothing.

        The default rules let the duty officer (MASH triage) see partners' concerns about any
        child, but a social worker only about children children's social care works with, and
        a school only about its pupils. Every read lands in the audit trail.
        """
        env = sign_as_dev(example_envelope(id="northshire-police:rules-1"))
        env_nhs = env["person"]["identifiers"][0]["value"]
        async with httpx.AsyncClient(base_url=running_hub.url, timeout=10) as client:
            police = running_hub.headers(agency="northshire-police", role=Role.agency_system)
            assert (await client.post("/api/v1/submissions", json=env, headers=police)).is_success

            async def child() -> str | None:
                r = await client.get(
                    "/api/v1/children",
                    params={"identifier": f"nhs:{env_nhs}"},
                    headers=running_hub.headers(),
                )
                found = r.json()["children"]
                return found[0]["child_id"] if found else None

            child_id = await poll(child)
            await poll(lambda: running_hub.stored_entries(child_id))
            url = f"/api/v1/children/{child_id}/narrative"
            views = {
                who: (await client.get(url, headers=running_hub.headers(**token))).json()
                for who, token in {
                    "duty": {},
                    "social_worker": {"sub": "sw-1", "role": Role.social_worker},
                    "school": {
                        "agency": "northshire-primary",
                        "role": Role.designated_safeguarding_lead,
                    },
                }.items()
            }
            system = await client.get(url, headers=police)
            missing = await client.get(
                "/api/v1/children/ch-unknown/narrative", headers=running_hub.headers()
            )
            bad_query = await client.get(
                "/api/v1/children", params={"identifier": "nhs:123"}, headers=running_hub.headers()
            )
            ig = running_hub.headers(sub="ig-1", role=Role.ig_officer)
            audit = (
                await client.get("/api/v1/audit", params={"child_id": child_id}, headers=ig)
            ).json()["records"]
            verified = (await client.get("/api/v1/audit/verify", headers=ig)).json()
        assert [e["event_id"] for e in views["duty"]["entries"]] == ["northshire-police:rules-1"]
        assert views["duty"]["summary"] == {
            "open_plans": [],
            "concerns_by_agency": {},
            "last_contact_by_agency": {"northshire-police": "2024-03-04T21:40:00Z"},
        }
        for hidden in ("social_worker", "school"):
            assert views[hidden]["entries"] == [] and views[hidden]["total"] == 0
            assert views[hidden]["summary"]["last_contact_by_agency"] == {}
        assert system.status_code == 403
        assert missing.status_code == 404
        assert bad_query.status_code == 422
        assert bad_query.json()["detail"][0]["loc"] == "query.identifier"
        assert "123" not in bad_query.text
        readers = {(r["who"], r["action"]) for r in audit}
        assert {("duty-1", "narrative.read"), ("sw-1", "narrative.read")} <= readers
        assert verified["ok"] is True


@sqlite_only
class TestScaledParts:
    """`hub serve --role` runs one part; api, ingest and narrative in three processes still work."""

    async def test_three_processes_make_one_pipeline(self, make_hub: Any) -> None:
        """A submission to the api process reaches the narrative through the other two."""
        ingest, narrative, api = make_hub("ingest"), make_hub("narrative"), make_hub("api")
        start_all((ingest, narrative, api))
        env = example_envelope(id="northshire-police:scaled-1")
        env["person"]["identifiers"] = [{"system": "nhs", "value": valid_nhs_number(42)}]
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
            headers = api.headers(agency="northshire-police", role=Role.agency_system)
            assert (
                await client.post("/api/v1/submissions", json=sign_as_dev(env), headers=headers)
            ).status_code == 202

            async def entry() -> list[Any] | None:
                r = await client.get(
                    "/api/v1/children",
                    params={"identifier": f"nhs:{valid_nhs_number(42)}"},
                    headers=api.headers(),
                )
                found = r.json()["children"]
                if not found:
                    return None
                n = await client.get(
                    f"/api/v1/children/{found[0]['child_id']}/narrative", headers=api.headers()
                )
                return n.json()["entries"] or None

            entries = await poll(entry)
            ingest_api = await httpx.AsyncClient().get(f"{ingest.url}/api/v1/children")
        assert [e["event_id"] for e in entries] == ["northshire-police:scaled-1"]
        assert ingest_api.status_code == 404  # the ingest part serves no API routes


class TestCommandLine:
    """The `hub` command's offline subcommands."""

    def run(self, *args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hub", *args],
            env={"HUB_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def test_token_is_alone_on_last_line_and_verifies(self, tmp_path: Path) -> None:
        """`hub token` prints a JWT with sub, agency and role, signed by the local key."""
        out = self.run(
            "token",
            "--sub",
            "sw-7",
            "--agency",
            "northshire-cs",
            "--role",
            "social_worker",
            data_dir=tmp_path,
        )
        assert out.returncode == 0, out.stderr
        token = out.stdout.strip().splitlines()[-1]
        claims = jwt.decode(token, options={"verify_signature": False})
        assert (claims["sub"], claims["agency"], claims["role"]) == (
            "sw-7",
            "northshire-cs",
            "social_worker",
        )
        assert (tmp_path / "keys" / "jwt-signing-key.pem").exists()

    def test_token_for_unknown_agency_is_refused(self, tmp_path: Path) -> None:
        """An agency that is not registered gets an error, not a token."""
        out = self.run(
            "token",
            "--sub",
            "x",
            "--agency",
            "nowhere",
            "--role",
            "social_worker",
            data_dir=tmp_path,
        )
        assert out.returncode == 2
        assert "not registered" in out.stderr

    def test_contracts_and_asyncapi_export(self, tmp_path: Path) -> None:
        """`hub contracts export` writes a schema per event type; `asyncapi` writes the document."""
        out = self.run("contracts", "export", str(tmp_path / "schemas"), data_dir=tmp_path)
        assert out.returncode == 0, out.stderr
        names = sorted(p.name for p in (tmp_path / "schemas").iterdir())
        assert "envelope.schema.json" in names
        assert "concern.raised.v1.schema.json" in names
        assert len(names) == 8
        doc = tmp_path / "asyncapi.json"
        out = self.run("contracts", "asyncapi", "--output", str(doc), data_dir=tmp_path)
        assert out.returncode == 0, out.stderr
        assert json.loads(doc.read_text())["asyncapi"].startswith("3.")
