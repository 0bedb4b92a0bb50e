"""The pure helpers of bench/alert_latency.py, bench/narrative_read.py,
bench/narrative_handler.py and bench/floor_latency.py."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

from contracts import parse_envelope
from contracts.examples import valid_nhs_number
from hub.identity.index import blocking_keys
from hub.identity.records import make_record

pytestmark = pytest.mark.unit

BENCH = Path(__file__).resolve().parents[2] / "bench"
NOW = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


alert_latency = _load("alert_latency")
narrative_read = _load("narrative_read")
narrative_handler = _load("narrative_handler")
floor_latency = _load("floor_latency")


class TestDue:
    """A paced sender owes rate x elapsed minus what it already sent, never less than 0."""

    @pytest.mark.parametrize(
        ("rate", "elapsed", "sent", "owed"),
        [
            (1000, 0.5, 0, 500),
            (1000, 0.5, 480, 20),
            (1000, 0.5, 600, 0),
            (200, 0.0149, 0, 2),
            (0, 10.0, 0, 0),
            (1000, -1.0, 0, 0),
        ],
    )
    def test_owed(self, rate: float, elapsed: float, sent: int, owed: int) -> None:
        """Whole messages owed at each point."""
        assert alert_latency.due(rate, elapsed, sent) == owed


class TestMachineBusy:
    """The machine's busy share comes from /proc/stat's first line; idle and iowait are idle."""

    def test_jiffies_count_idle_and_iowait_as_idle(self, tmp_path: Path) -> None:
        """user nice system idle iowait irq softirq steal: busy = all but idle and iowait;
        guest and guest_nice are inside user and nice already, so they are not added again."""
        stat = tmp_path / "stat"
        stat.write_text("cpu  100 5 20 300 10 1 2 3 40 7\ncpu0 1 2 3 4\n")
        assert alert_latency.box_jiffies(stat) == (131, 441)

    def test_missing_or_garbled_stat_is_unknown(self, tmp_path: Path) -> None:
        """No file, or a first line that is not numbers, gives None rather than a guess."""
        garbled = tmp_path / "stat"
        garbled.write_text("cpu  a b c\n")
        assert alert_latency.box_jiffies(tmp_path / "absent") is None
        assert alert_latency.box_jiffies(garbled) is None

    @pytest.mark.parametrize(
        ("before", "after", "share"),
        [
            ((100, 400), (250, 600), 0.75),
            ((100, 400), (100, 600), 0.0),
            ((100, 400), (100, 400), None),
            (None, (100, 400), None),
        ],
    )
    def test_busy_share(
        self,
        before: tuple[int, int] | None,
        after: tuple[int, int] | None,
        share: float | None,
    ) -> None:
        """Busy jiffies over all jiffies between the two readings; None with no time between."""
        assert alert_latency.busy_share(before, after) == share


class TestSseParser:
    """Lines in, whole events out at each blank line, as the SSE spec frames them."""

    def test_event_with_id_and_multiline_data(self) -> None:
        """id, event and data lines make one event; data lines join with newlines."""
        parser = alert_latency.SseParser()
        lines = ["id: 7", "event: raised", "data: {", "data: }", ""]
        assert [parser.feed(line) for line in lines] == [
            None,
            None,
            None,
            None,
            ("7", "raised", "{\n}"),
        ]

    def test_comments_retry_and_empty_events_yield_nothing(self) -> None:
        """Keep-alive comments, a retry field and a lone blank line are not events."""
        parser = alert_latency.SseParser()
        assert [parser.feed(line) for line in ["retry: 2000", "", ": keep-alive", ""]] == [
            None,
            None,
            None,
            None,
        ]

    def test_event_name_resets_but_id_persists(self) -> None:
        """A later event without ``event:`` is a ``message``; the last id carries over."""
        parser = alert_latency.SseParser()
        for line in ["id: 3", "event: raised", "data: a", ""]:
            parser.feed(line)
        assert [parser.feed(line) for line in ["data: b", ""]] == [None, ("3", "message", "b")]


class TestAlertEnvelopes:
    """The plan and the attendance meet the contract and make the alert rule match."""

    def test_plan_is_a_valid_open_cp_plan_led_by_the_recipient(self) -> None:
        """A children's-services plan begun 30 days ago, lead practitioner the token's sub."""
        envelope = parse_envelope(alert_latency.plan_envelope("r1", 4, NOW))
        assert (
            envelope.id,
            envelope.type,
            envelope.agency_id,
            str(envelope.agency_kind),
            envelope.time,
            envelope.data.involvement_type,
            envelope.data.started_on.isoformat(),
            envelope.data.lead_practitioner.email,
            [(str(i.system), i.value) for i in envelope.person.identifiers],
        ) == (
            "northshire-cs:alertbench-r1-plan-4",
            "involvement.started",
            "northshire-cs",
            "childrens_services",
            NOW - timedelta(days=30),
            "child_protection_plan",
            "2026-10-29",
            "sam.practitioner@northshire.example",
            [("nhs", valid_nhs_number(800_004))],
        )

    def test_attendance_is_a_valid_unscheduled_care_contact_happening_now(self) -> None:
        """A health-trust ED attendance of the same child, at the given instant."""
        envelope = parse_envelope(alert_latency.attendance_envelope("r1", 4, NOW))
        assert (
            envelope.id,
            envelope.type,
            envelope.agency_id,
            envelope.time,
            envelope.recorded_at,
            envelope.data.contact_type,
            [(str(i.system), i.value) for i in envelope.person.identifiers],
        ) == (
            "northshire-health:alertbench-r1-ed-4",
            "contact.recorded",
            "northshire-health",
            NOW,
            NOW,
            "unscheduled_care_attendance",
            [("nhs", valid_nhs_number(800_004))],
        )


class TestEventMix:
    """The read child's history: a plan first, then a fixed rotation nine hours apart."""

    def test_first_eleven(self) -> None:
        """Kinds and times of the first entries."""
        mix = list(narrative_read.event_mix(11, NOW))
        assert [k for k, _ in mix] == [
            "plan",
            "attendance",
            "police",
            "health",
            "school",
            "police",
            "attendance",
            "police",
            "health",
            "school",
            "police",
        ]
        assert [w for _, w in mix][:3] == [NOW, NOW + timedelta(hours=9), NOW + timedelta(hours=18)]

    def test_templates_cover_every_kind_with_valid_entries(self) -> None:
        """Each kind's template entry was made by entry_for from a valid envelope."""
        templates = narrative_read.template_entries()
        assert {k: (t.event_type, t.agency_id) for k, t in templates.items()} == {
            "plan": ("involvement.started", "northshire-cs"),
            "police": ("concern.raised", "northshire-police"),
            "health": ("concern.raised", "northshire-health"),
            "school": ("concern.raised", "northshire-primary"),
            "attendance": ("contact.recorded", "northshire-health"),
        }


class TestTimers:
    """Wrapped callables add their time to their step, even when they raise."""

    async def test_sync_and_async_steps_and_errors(self) -> None:
        """Every call counts; milliseconds per read divide by the reads."""
        ticks = iter([1.0, 1.5, 2.0, 4.0, 10.0, 10.25])
        timers = narrative_read.Timers(clock=lambda: next(ticks))

        async def fetch() -> int:
            return 1

        def fail() -> None:
            raise ValueError("bad")

        assert timers.wrap("sync", lambda: 2)() == 2
        assert await timers.wrap_async("async", fetch)() == 1
        with pytest.raises(ValueError, match="bad"):
            timers.wrap("sync", fail)()
        assert timers.per_read_ms(2) == {"async": 1000.0, "sync": 375.0}


pipeline = sys.modules["pipeline"]  # imported by alert_latency from bench/

METRICS = """\
# HELP hub_events_out_total Messages a processor published or stored.
# TYPE hub_events_out_total counter
hub_events_out_total{outcome="published",processor="ingest"} 1234.0
hub_events_out_total{outcome="duplicate",processor="ingest"} 7.0
hub_events_out_total{outcome="published",processor="projector"} 99.0
"""


class _Answer:
    def __init__(self, text: str) -> None:
        self.text = text


class TestHubReadings:
    """What the benches read from a hub: published counts, assignments, CPU per role."""

    def test_published_counts_one_processors_published_records(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Only ``outcome="published"`` of the processor asked for is counted."""
        monkeypatch.setattr(pipeline.httpx, "get", lambda url, timeout: _Answer(METRICS))
        hub = pipeline.Hub({}, tmp_path, None)
        assert (hub.published("ingest"), hub.published("alerts")) == (1234.0, 0)

    def test_published_is_none_when_the_hub_does_not_answer(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A hub that cannot be reached gives no figure rather than a zero."""

        def refuse(url: str, timeout: float) -> _Answer:
            raise pipeline.httpx.ConnectError("refused")

        monkeypatch.setattr(pipeline.httpx, "get", refuse)
        assert pipeline.Hub({}, tmp_path, None).published("ingest") is None

    def test_assignment_is_one_logged_line_per_group(self, tmp_path: Path) -> None:
        """The hub's JSON log names no group: it is ready when it logged one line per group."""
        hub = pipeline.Hub({}, tmp_path, None)
        line = '{"event": "consumer assigned to partitions: {TopicPartition(...)}"}\n'
        hub.log_path.write_text(line)
        assert hub.wait_assigned(["g-ingest"], 0.05) is True
        assert hub.wait_assigned(["g-ingest", "g-narrative"], 0.05) is False

    @pytest.mark.parametrize(
        ("before", "after", "used"),
        [
            ({"ingest": 1.5}, {"ingest": 4.0}, 2.5),
            ({"ingest": None}, {"ingest": 4.0}, None),
            ({}, {"ingest": 4.0}, None),
        ],
        ids=["both-read", "unreadable-before", "role-absent"],
    )
    def test_cpu_delta(
        self, before: dict[str, float | None], after: dict[str, float | None], used: float | None
    ) -> None:
        """CPU seconds a role used between two readings, None when either is unknown."""
        assert alert_latency.cpu_delta(before, after, "ingest") == used

    @pytest.mark.parametrize(("name", "role"), [("split", "ingest"), ("single", "all")])
    def test_ingest_process_of_a_layout(self, tmp_path: Path, name: str, role: str) -> None:
        """Ingest's figures come from ``--role ingest`` when split, else the one process."""
        layout = alert_latency.Layout(name)
        layout.processes = [
            alert_latency.RoleHub({}, tmp_path, r) for r in alert_latency.LAYOUTS[name]
        ]
        assert layout.ingest.role == role

    def test_a_baseline_hub_starts_in_its_own_tree(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``python -m hub`` imports from its working directory first, so a baseline's
        processes start in the baseline tree (PYTHONPATH alone ran this tree's hub)."""
        started: list[dict[str, object]] = []

        class Exits:
            def __init__(self, cmd: list[str], **kwargs: object) -> None:
                started.append({"cmd": cmd, **kwargs})
                self.returncode = 1

            def poll(self) -> int:
                return 1

        monkeypatch.setattr(pipeline.subprocess, "Popen", Exits)
        tree = tmp_path / "base"
        hub = alert_latency.RoleHub({}, tmp_path, "ingest", tree)
        with pytest.raises(RuntimeError, match="hub exited with 1"):
            hub.start()
        [call] = started
        assert call["cwd"] == tree
        assert call["cmd"][1:-1] == ["-m", "hub", "serve", "--role", "ingest", "--port"]


class TestBenchPeople:
    """The background load's children: one block by default, a population's when varied."""

    def test_default_children_share_a_name_and_birth_date(self) -> None:
        """Every default child is Ruby Bench born 2015-06-01 (the digits are no name token)."""
        assert [pipeline.bench_person(c, varied=False) for c in (0, 1499)] == [
            {"given": "Ruby", "family": "Bench0", "born": "2015-06-01"},
            {"given": "Ruby", "family": "Bench1499", "born": "2015-06-01"},
        ]

    def test_varied_children_fall_in_blocks_of_a_few(self) -> None:
        """1,500 varied children: none shares a blocking key with more than one other."""
        blocks: Counter[str] = Counter()
        for child in range(1500):
            person = pipeline.bench_person(child, varied=True)
            record = make_record(
                str(child),
                given=[person["given"]],
                family=[person["family"]],
                birth_date=datetime.fromisoformat(person["born"]).date(),
            )
            blocks.update(blocking_keys(record))
        assert max(blocks.values()) == 2
        assert pipeline.bench_person(13, varied=True) == {
            "given": "Amir",
            "family": "Benchbd",
            "born": "2008-01-14",
        }


class TestHubRecords:
    def test_hub_events_by_key_partition_with_their_own_offsets(self) -> None:
        """Only hub.events records are kept; a key always lands on one partition, and each
        partition's offsets count from 0 in publish order."""
        sent = [
            ("hub.events", b"a1", b"nhs:1"),
            ("hub.dlq", b"x", b"dlq-1"),
            ("hub.events", b"b1", b"nhs:2"),
            ("hub.events", b"a2", b"nhs:1"),
        ]
        records = narrative_handler.hub_records(sent, "hub.events")
        assert [r.value for r in records] == [b"a1", b"b1", b"a2"]
        first, _, again = records
        assert again.partition == first.partition
        for partition in {r.partition for r in records}:
            offsets = [r.offset for r in records if r.partition == partition]
            assert offsets == list(range(len(offsets)))


class TestFloorLatency:
    """A trigger carries its wall clocks in headers; CPU and records are read per second."""

    def test_stamps_come_back_in_the_order_they_were_added(self) -> None:
        """Submission first, then ingest's receipt; other headers are kept and ignored."""
        headers = floor_latency.stamped(floor_latency.stamped([], 1.5), 1764400000.125)
        assert floor_latency.stamps([("other", b"7"), *headers]) == [1.5, 1764400000.125]

    def test_a_record_without_stamps_is_no_trigger(self) -> None:
        """No stamp header: no times."""
        assert floor_latency.stamps([("other", b"7")]) == []

    def test_during_load_divides_by_the_seconds_between_snapshots(self) -> None:
        """Cores and records/s over the window; ms per record from the worker's own CPU;
        an unknown CPU reading stays unknown."""
        before = floor_latency.Snapshot(
            wall=100.0,
            workers={"ingest": 10.0, "alerts": None},
            broker=50.0,
            own=2.0,
            box=(1000, 4000),
            handled={"ingest": 0, "alerts": 0},
        )
        after = floor_latency.Snapshot(
            wall=110.0,
            workers={"ingest": 15.0, "alerts": 3.0},
            broker=53.0,
            own=3.0,
            box=(2500, 6000),
            handled={"ingest": 10_000, "alerts": 9_000},
        )
        assert floor_latency.during_load(before, after) == {
            "seconds": 10.0,
            "workers": {
                "ingest": {"cores": 0.5, "records_per_s": 1000.0, "cpu_ms_per_record": 0.5},
                "alerts": {"cores": None, "records_per_s": 900.0, "cpu_ms_per_record": None},
            },
            "broker_cores": 0.3,
            "producer_cores": 0.1,
            "machine_busy": 0.75,
        }
