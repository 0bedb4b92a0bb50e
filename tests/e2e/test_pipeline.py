"""End to end on the real broker and store: HTTP submission -> Kafka -> ingest -> hub.events ->
narrative projector -> narrative API, for SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from contracts.examples import example_envelope, valid_nhs_number
from hub.crypto.runtime import sign_as_dev
from hub.domain.roles import Role
from hub.kafka.admin import end_offsets
from hub.streams.log_reader import read_topic
from tests.support.hub_process import HubProcess, poll

pytestmark = pytest.mark.e2e


def concern(n: int, *, nhs_seed: int = 1, **overrides: Any) -> dict[str, Any]:
    """A valid police concern about the child with NHS number seed ``nhs_seed``.

    The police person reference follows the child: the hub links on it as well.
    """
    overrides.setdefault("subject", f"NP-PERSON-{nhs_seed:04d}")
    env = example_envelope(id=f"northshire-police:evt-{n:06d}", **overrides)
    env["person"]["identifiers"] = [{"system": "nhs", "value": valid_nhs_number(nhs_seed)}]
    return env


async def submit(client: httpx.AsyncClient, hub: HubProcess, body: Any) -> httpx.Response:
    headers = hub.headers(sub="adapter", agency="northshire-police", role=Role.agency_system)
    signed = sign_as_dev(body)  # with the police's development key, as its adapter would
    return await client.post(f"{hub.url}/api/v1/submissions", json=signed, headers=headers)


async def child_id_for(client: httpx.AsyncClient, hub: HubProcess, nhs_seed: int) -> str:
    async def find() -> str | None:
        r = await client.get(
            f"{hub.url}/api/v1/children",
            params={"identifier": f"nhs:{valid_nhs_number(nhs_seed)}"},
            headers=hub.headers(),
        )
        r.raise_for_status()
        found = r.json()["children"]
        return found[0]["child_id"] if found else None

    return await poll(find)


async def narrative(client: httpx.AsyncClient, hub: HubProcess, child_id: str) -> dict[str, Any]:
    """The whole narrative as the default (duty officer) token sees it, every page."""
    pages: list[dict[str, Any]] = []
    while True:
        r = await client.get(
            f"{hub.url}/api/v1/children/{child_id}/narrative",
            params={"page": len(pages) + 1, "page_size": 1000},
            headers=hub.headers(),
        )
        r.raise_for_status()
        pages.append(r.json())
        if len(pages) * 1000 >= pages[0]["total"]:
            break
    return {**pages[0], "entries": [e for p in pages for e in p["entries"]]}


async def entries_once(
    client: httpx.AsyncClient, hub: HubProcess, child_id: str, count: int
) -> list[dict[str, Any]]:
    async def stored() -> int | None:
        n = await hub.stored_entries(child_id)
        return n if n >= count else None

    await poll(stored)
    return (await narrative(client, hub, child_id))["entries"]  # type: ignore[no-any-return]


class TestSubmissionToNarrative:
    """A submission over HTTP becomes an entry in the child's narrative."""

    async def test_submitted_concern_appears_in_narrative(self, running_hub: HubProcess) -> None:
        """The narrative API shows the submitted event with its summary and agency."""
        async with httpx.AsyncClient(timeout=10) as client:
            r = await submit(client, running_hub, concern(1))
            assert r.status_code == 202, r.text
            assert r.json() == {"accepted": 1, "event_ids": ["northshire-police:evt-000001"]}
            child = await child_id_for(client, running_hub, 1)
            entries = await entries_once(client, running_hub, child, 1)
        assert [e["event_id"] for e in entries] == ["northshire-police:evt-000001"]
        entry = entries[0]
        assert entry["agency_id"] == "northshire-police"
        assert entry["agency_kind"] == "police"
        assert entry["family"] == "concern"
        assert entry["summary"].startswith("Concern raised: domestic abuse, high risk.")
        assert entry["occurred_at"].startswith("2024-03-04T21:40:00")

    async def test_same_submission_twice_gives_one_entry_and_replay_is_identical(
        self, make_hub: Any
    ) -> None:
        """De-duplication by event id; `hub replay` rebuilds exactly the same narrative."""
        hub = make_hub()
        hub.start()
        async with httpx.AsyncClient(timeout=10) as client:
            first = [concern(1), concern(2, time="2024-01-01T09:00:00+00:00")]
            assert (await submit(client, hub, first)).status_code == 202
            assert (await submit(client, hub, first)).status_code == 202
            assert (
                await submit(client, hub, concern(3, time="2024-02-01T09:00:00Z"))
            ).status_code == 202
            child = await child_id_for(client, hub, 1)
            entries = await entries_once(client, hub, child, 3)
            before = await narrative(client, hub, child)
            # Ordered by when it happened, not when it arrived.
            assert [e["event_id"] for e in entries] == [
                "northshire-police:evt-000002",
                "northshire-police:evt-000003",
                "northshire-police:evt-000001",
            ]
            hub.stop()
            result = hub.run_cli("replay")
            assert result.returncode == 0, result.stderr
            assert "narrative entries stored" in result.stdout
            hub.start()
            after = await narrative(client, hub, child)
        assert after == before


class TestBadInput:
    """Bad input is refused with the reason, and nothing bad or good is lost."""

    async def test_malformed_body_names_each_field_and_publishes_nothing(
        self, running_hub: HubProcess, kafka_bootstrap: str
    ) -> None:
        """422 lists every bad field; no topic receives anything."""
        prefix = running_hub.env["HUB_TOPIC_PREFIX"]
        topics = [f"{prefix}ingest.police", f"{prefix}hub.events", f"{prefix}hub.dlq"]
        before = {t: await end_offsets(kafka_bootstrap, t) for t in topics}
        good = concern(10)
        bad = concern(11, time="2024-03-04T21:40:00", type="concern.raised")  # naive time
        bad["data"]["risk_level"] = "enormous"
        del bad["person"]
        async with httpx.AsyncClient(timeout=10) as client:
            r = await submit(client, running_hub, [good, bad])
        assert r.status_code == 422
        locs = {e["loc"] for e in r.json()["detail"]}
        assert {"1.time", "1.data.risk_level", "1.person"} <= locs
        assert not any(loc.startswith("0.") for loc in locs)
        assert "enormous" not in r.text  # rejected values are never echoed back
        after = {t: await end_offsets(kafka_bootstrap, t) for t in topics}
        assert after == before

    async def test_invalid_message_on_ingest_topic_is_dead_lettered_and_rest_processed(
        self, running_hub: HubProcess, producer: AIOKafkaProducer
    ) -> None:
        """A bad message goes to hub.dlq with its reason; the events behind it still land."""
        prefix = running_hub.env["HUB_TOPIC_PREFIX"]
        topic = f"{prefix}ingest.police"
        key = f"nhs:{valid_nhs_number(5)}".encode()
        broken = concern(20, nhs_seed=5)
        broken["data"]["summary"] = ""
        await producer.send_and_wait(topic, b"{not json", key=key)
        await producer.send_and_wait(topic, json.dumps(sign_as_dev(broken)).encode(), key=key)
        await producer.send_and_wait(
            topic, json.dumps(sign_as_dev(concern(21, nhs_seed=5))).encode(), key=key
        )
        async with httpx.AsyncClient(timeout=10) as client:
            child = await child_id_for(client, running_hub, 5)
            entries = await entries_once(client, running_hub, child, 1)
        assert [e["event_id"] for e in entries] == ["northshire-police:evt-000021"]
        listed = running_hub.run_cli("dlq", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        letters = [json.loads(line) for line in listed.stdout.splitlines()]
        assert [(d["reason"], d["event_id"]) for d in letters] == [
            ("not_json", None),
            ("contract_invalid", "northshire-police:evt-000020"),
        ]
        assert letters[1]["fields"] == ["data.summary"]

    async def test_fixed_dead_letter_is_redriven_exactly_once(
        self, running_hub: HubProcess, producer: AIOKafkaProducer, tmp_path: Any
    ) -> None:
        """`hub dlq redrive --id X --fixed FILE` sends the fix through ingest once."""
        prefix = running_hub.env["HUB_TOPIC_PREFIX"]
        broken = concern(30, nhs_seed=6)
        broken["data"]["risk_level"] = "enormous"
        await producer.send_and_wait(f"{prefix}ingest.police", json.dumps(broken).encode())

        def letters() -> list[dict[str, Any]]:
            out = running_hub.run_cli("dlq", "list", "--json")
            return [json.loads(line) for line in out.stdout.splitlines()]

        async def one_letter() -> list[dict[str, Any]]:
            return letters()

        (letter,) = await poll(one_letter)
        fixed = tmp_path / "fixed.json"
        fixed.write_text(json.dumps(sign_as_dev(concern(30, nhs_seed=6))))
        for _ in range(2):
            out = running_hub.run_cli(
                "dlq", "redrive", "--id", letter["dlq_id"], "--fixed", str(fixed)
            )
            assert out.returncode == 0, out.stderr
        async with httpx.AsyncClient(timeout=10) as client:
            child = await child_id_for(client, running_hub, 6)
            entries = await entries_once(client, running_hub, child, 1)
        assert [e["event_id"] for e in entries] == ["northshire-police:evt-000030"]
        assert [d["redriven"] for d in letters()] == [True]

    async def test_sealed_original_is_redriven_as_it_was(
        self, running_hub: HubProcess, producer: AIOKafkaProducer, kafka_bootstrap: str
    ) -> None:
        """The DLQ holds the original sealed (no name, no NHS number in its bytes); a redrive
        without a fix opens it and sends it back unchanged, so it fails the same way again."""
        prefix = running_hub.env["HUB_TOPIC_PREFIX"]
        unsigned = concern(31, nhs_seed=7)
        await producer.send_and_wait(
            f"{prefix}ingest.police",
            json.dumps(unsigned).encode(),
            key=f"nhs:{valid_nhs_number(7)}".encode(),
        )

        def letters() -> list[dict[str, Any]]:
            out = running_hub.run_cli("dlq", "list", "--json")
            return [json.loads(line) for line in out.stdout.splitlines()]

        async def count(n: int) -> list[dict[str, Any]] | None:
            found = letters()
            return found if len(found) == n else None

        (letter,) = await poll(lambda: count(1))
        assert letter["reason"] == "signature_unsigned"
        raw = b""
        async for batch in read_topic(kafka_bootstrap, f"{prefix}hub.dlq"):
            raw += b"".join((r.key or b"") + r.value for r in batch)
        assert raw and b"Ruby" not in raw and valid_nhs_number(7).encode() not in raw
        out = running_hub.run_cli("dlq", "redrive", "--id", letter["dlq_id"])
        assert out.returncode == 0, out.stderr
        both = await poll(lambda: count(2))
        assert sorted((d["event_id"], d["redriven"]) for d in both) == [
            (unsigned["id"], False),
            (unsigned["id"], True),
        ]


class TestCrashSafety:
    """Stopping the hub mid-stream loses nothing and doubles nothing."""

    async def test_killed_mid_stream_then_restarted_has_every_event_once(
        self, make_hub: Any, producer: AIOKafkaProducer
    ) -> None:
        """SIGKILL while events flow; after restart each event is in the narrative exactly once."""
        total, children = 1200, 30  # 24 batches of 50: the kill lands mid-stream
        hub = make_hub(HUB_BATCH_MAX_RECORDS="50")
        prefix = hub.env["HUB_TOPIC_PREFIX"]
        hub.start()
        sent = [
            await producer.send(
                f"{prefix}ingest.police",
                json.dumps(sign_as_dev(concern(100_000 + n, nhs_seed=100 + n % children))).encode(),
                key=f"nhs:{valid_nhs_number(100 + n % children)}".encode(),
            )
            for n in range(total)
        ]
        await asyncio.gather(*sent)
        async with httpx.AsyncClient(timeout=10) as client:
            last = await child_id_for(client, hub, 100 + children - 1)

            async def some_but_not_all() -> int | None:
                n = await hub.stored_entries(last)
                return n if 0 < n < total // children else None

            seen = await poll(some_but_not_all, interval=0.02)
            hub.kill()
            restarted = make_hub(HUB_BATCH_MAX_RECORDS="50")
            restarted.start()
            entries = []
            for seed in range(100, 100 + children):
                child = await child_id_for(client, restarted, seed)
                entries += await entries_once(client, restarted, child, total // children)
        ids = [e["event_id"] for e in entries]
        assert 0 < seen < total // children
        assert len(ids) == total
        assert len(set(ids)) == total


class TestCallers:
    """Every /api/v1 call needs a valid bearer token."""

    @pytest.mark.parametrize("backend", ["sqlite"])
    async def test_missing_forged_and_expired_tokens_are_refused(
        self, running_hub: HubProcess
    ) -> None:
        """No token, a token signed by another key, and an expired token all get 401."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from hub.auth import TokenIssuer

        forged = TokenIssuer(
            Ed25519PrivateKey.generate(), issuer="hub-local", audience="safeguarding-hub"
        ).issue(sub="x", agency="northshire-cs", role=Role.social_worker)
        expired = running_hub.token(ttl=timedelta(minutes=-5))
        tampered = running_hub.token()
        header, payload, sig = tampered.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims["role"] = "ig_officer"
        payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        url = f"{running_hub.url}/api/v1/children?identifier=nhs:{valid_nhs_number(1)}"
        async with httpx.AsyncClient(timeout=10) as client:
            cases = {
                "none": await client.get(url),
                "forged": await client.get(url, headers={"Authorization": f"Bearer {forged}"}),
                "expired": await client.get(url, headers={"Authorization": f"Bearer {expired}"}),
                "tampered": await client.get(
                    url, headers={"Authorization": f"Bearer {header}.{payload}.{sig}"}
                ),
                "valid": await client.get(url, headers=running_hub.headers()),
            }
        assert {k: r.status_code for k, r in cases.items()} == {
            "none": 401,
            "forged": 401,
            "expired": 401,
            "tampered": 401,
            "valid": 200,
        }
        assert cases["expired"].json()["detail"] == "token has expired"
