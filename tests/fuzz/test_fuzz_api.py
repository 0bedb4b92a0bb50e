"""Fuzzing the HTTP API of a real hub with schemathesis, from the hub's own OpenAPI document.

One ``hub serve`` process on the real broker (SQLite store) answers cases schemathesis
generates for the submission endpoints and the query endpoints (children, alerts, audit,
consents, rules): positive cases from the schemas and, for submissions, negative ones too.
Every answer must be below 500 and conform to the documented response schema. Afterwards
nothing may be half-written: every event id the API accepted (202) must have reached the
narrative store or the dead-letter topic (``hub dlq list``).

Bounded: ``EXAMPLES`` cases per operation, derandomised, no example database.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import select

from hub.store.db import create_engine
from hub.store.schema import narrative_entries
from tests.support.hub_process import HubProcess, poll

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = 15
POLICE = "northshire-police"
QUERY_PATHS = r"^/api/v1/(children|alerts|audit|consents|rules)"
SUBMISSION_PATHS = r"^/api/v1/(submissions|agencies/\{agency_id\}/submissions)$"
CHECKS = [not_a_server_error, response_schema_conformance]


fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def hub(kafka_bootstrap: str, tmp_path: Path) -> Iterator[HubProcess]:
    """A hub with its own topics, consumer groups and SQLite store."""
    tag = f"f{uuid.uuid4().hex[:10]}"
    env = {
        "HUB_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "HUB_TOPIC_PREFIX": f"{tag}.",
        "HUB_GROUP_PREFIX": tag,
        "HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        "HUB_EVENTS_PARTITIONS": "2",
        "HUB_INGEST_PARTITIONS": "1",
        "HUB_LOG_LEVEL": "INFO",
        "HUB_RATE_LIMIT_ENABLED": "false",  # 429s are the limiter's test, not this one's
    }
    made = HubProcess(env=env, data_dir=tmp_path / "data")
    made.start()
    yield made
    made.stop()


def _token(hub: HubProcess, sub: str, agency: str, role: str) -> dict[str, str]:
    """A bearer header from ``hub token`` (the CLI prints the token alone on its last line)."""
    done = hub.run_cli("token", "--sub", sub, "--agency", agency, "--role", role)
    assert done.returncode == 0, done.stderr[-2000:]
    return {"Authorization": f"Bearer {done.stdout.strip().splitlines()[-1]}"}


def _own_agency(case_and_flag: tuple[Any, bool]) -> Any:
    """Half the submission cases claim the caller's own agency, so some get through."""
    case, own = case_and_flag
    if own:
        items = case.body if isinstance(case.body, list) else [case.body]
        for item in items:
            if isinstance(item, dict):
                item.update(agency_id=POLICE, agency_kind="police", id=f"{POLICE}:{uuid.uuid4()}")
        if "agency_id" in (case.path_parameters or {}):
            case.path_parameters["agency_id"] = POLICE
    return case


class Accepted:
    """Event ids the API accepted with a 202."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def note(self, response: Any) -> None:
        if response.status_code == 202:
            self.ids.update(response.json().get("event_ids", []))


def _fuzz_operation(
    operation: Any,
    base_url: str,
    headers: dict[str, str],
    accepted: Accepted,
    mode: GenerationMode = GenerationMode.POSITIVE,
) -> str | None:
    """Run the operation's cases; the first failure's summary (no request data), or None."""
    strategy = operation.as_strategy(generation_mode=mode)
    if operation.path.endswith("submissions"):
        strategy = st.tuples(strategy, st.booleans()).map(_own_agency)

    @fuzz
    @given(strategy)
    def run(case: Any) -> None:
        response = case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)
        accepted.note(response)

    try:
        run()
    except (Exception, BaseExceptionGroup) as exc:  # FailureGroup is a BaseExceptionGroup
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        codes = [line for line in lines if line.startswith(("- ST", "[5", "curl"))]
        return f"{type(exc).__name__}: {' | '.join(codes or lines[:1])[:600]}"
    return None


async def _stored(db_url: str, ids: set[str]) -> set[str]:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(narrative_entries.c.event_id).where(narrative_entries.c.event_id.in_(ids))
            )
            return {row[0] for row in rows}
    finally:
        await engine.dispose()


def _dead_lettered(hub: HubProcess) -> set[str]:
    done = hub.run_cli("dlq", "list", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    letters = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {letter["event_id"] for letter in letters if letter["event_id"]}


class TestApiFuzz:
    """Generated requests never get a 5xx or an undocumented body, and leave nothing half-done."""

    def test_submission_and_query_endpoints(self, hub: HubProcess) -> None:
        """Fuzz every selected operation, then account for every accepted event id."""
        agency_system = _token(hub, "police-adapter", POLICE, "agency_system")
        ig = _token(hub, "ig-1", "northshire-cs", "ig_officer")
        document = httpx.get(f"{hub.url}/openapi.json", timeout=30).json()
        schema = schemathesis.openapi.from_dict(document)
        accepted = Accepted()
        # a real file through the real adapter, so the narrative side is exercised too
        sample = REPO / "adapters" / "police" / "samples" / "ppn_notices.csv"
        native = httpx.post(
            f"{hub.url}/api/v1/agencies/{POLICE}/submissions",
            content=sample.read_bytes(),
            headers={**agency_system, "Content-Type": "text/csv"},
            timeout=60,
        )
        assert native.status_code == 202, native.text
        accepted.note(native)

        submissions = schema.include(path_regex=SUBMISSION_PATHS)
        queries = schema.include(path_regex=QUERY_PATHS).exclude(path_regex=r"/stream$")
        failures: dict[str, str] = {}
        ran: list[str] = []
        plan = [
            (r.ok(), agency_system, m)
            for r in submissions.get_all_operations()
            for m in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
        plan += [(r.ok(), ig, GenerationMode.POSITIVE) for r in queries.get_all_operations()]
        for operation, headers, mode in plan:
            if failure := _fuzz_operation(operation, hub.url, headers, accepted, mode):
                failures[f"{operation.label} ({mode.value})"] = failure
            ran.append(operation.label)
        assert {"POST /api/v1/submissions", "POST /api/v1/agencies/{agency_id}/submissions"} <= set(
            ran
        )
        assert len(set(ran)) >= 8, ran

        db_url = hub.env["HUB_DATABASE_URL"]

        async def unaccounted() -> set[str]:
            missing = accepted.ids - await _stored(db_url, accepted.ids)
            return missing - _dead_lettered(hub) if missing else missing

        async def none_left() -> bool:
            return not await unaccounted()

        assert len(accepted.ids) >= 2, "too few accepted submissions to prove anything"
        try:
            asyncio.run(poll(none_left, timeout=90, interval=2.0))
        except AssertionError:
            left = sorted(asyncio.run(unaccounted()))
            pytest.fail(f"accepted but neither in the narrative nor dead-lettered: {left}")
        assert failures == {}, "\n".join(f"{op}: {f}" for op, f in failures.items())
