"""Configuration of the hub, read from ``HUB_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    """Every knob the hub has; defaults give the embedded single-process deployment."""

    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    data_dir: Path = Field(default=Path(".hub"), description="Local state: SQLite, keys, Kafka.")
    kafka_bootstrap: str | None = Field(
        default=None, description="Kafka bootstrap servers; unset means the local broker."
    )
    kafka_port: int = Field(default=19092, description="Client port of the local broker.")
    kafka_controller_port: int = Field(default=19093, description="Controller port, local broker.")
    kafka_version: str = Field(default="4.1.1", description="Apache Kafka version to provision.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; unset means SQLite under data_dir."
    )
    topic_prefix: str = Field(default="", description="Prefix for every topic (test isolation).")
    events_partitions: int = Field(default=6, description="Partitions of hub.events.")
    ingest_partitions: int = Field(default=3, description="Partitions of each ingest topic.")
    replication_factor: int = Field(default=1, description="Replication of created topics.")
    group_prefix: str = Field(default="hub", description="Prefix of consumer group ids.")
    batch_max_records: int = Field(default=500, description="Records per consumer batch.")
    batch_wait_ms: int = Field(
        default=25,
        ge=1,
        le=1_000,
        description="How long a consumer waits for records when none are ready (and then "
        "pauses as long again): each hop of an idle hub adds up to twice this.",
    )
    kafka_session_timeout_ms: int = Field(
        default=30_000,
        ge=6_000,
        le=300_000,
        description="How long a consumer may go without a heartbeat before the group gives its "
        "partitions to others. A restarted process after a crash waits this long for the dead "
        "member's partitions; shorter recovers sooner, but a loop stalled that long (a loaded "
        "machine) costs the member its partitions. Heartbeats go every third of it, at most 3 s.",
    )
    ingest_fetch_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description="Most bytes the ingest consumer fetches from one partition at a time. It "
        "hands out what it holds partition by partition, so a record on a quiet topic (an "
        "ED attendance) waits behind at most this much of each busy partition's backlog "
        "(Kafka's default, 1 MiB, is about 500 police envelopes a partition).",
    )
    jwt_issuer: str = Field(default="hub-local", description="Expected JWT issuer.")
    jwt_audience: str = Field(default="safeguarding-hub", description="Expected JWT audience.")
    jwt_public_key_file: Path | None = Field(
        default=None, description="PEM public key of an external issuer; unset: local key."
    )
    jwt_leeway_seconds: int = Field(default=30, description="Clock skew allowed on exp/nbf.")
    agencies_file: Path | None = Field(
        default=None, description="Agency registry YAML; unset: the packaged Northshire demo."
    )
    agency_keys_file: Path | None = Field(
        default=None,
        description="Agency public signing keys (YAML, ADR 0006); unset: the dev keys.",
    )
    require_signatures: bool = Field(
        default=True, description="Reject unsigned submissions (false: explicit opt-out)."
    )
    alert_rules_file: Path | None = Field(
        default=None, description="Alert rules YAML; unset: deploy/alerts/northshire.yaml."
    )
    term_dates_file: Path | None = Field(
        default=None, description="School term dates YAML; unset: deploy/alerts/term-dates.yaml."
    )
    escalation_interval_seconds: float = Field(
        default=30.0, description="How often overdue alerts are checked for escalation."
    )
    alert_stream_poll_seconds: float = Field(
        default=0.05,
        gt=0,
        le=60,
        description="How often an API process looks for alert steps other processes committed "
        "(one indexed query per process while a stream waits; its own are announced at once).",
    )
    retention_interval_seconds: float = Field(
        default=86_400.0, gt=0, description="How often the retention schedule runs (daily)."
    )
    retention_dead_letter_days: int = Field(
        default=90, ge=1, description="Dead letters older than this are erased (month keys)."
    )
    subscribers_file: Path | None = Field(
        default=None, description="Subscribers YAML; unset: deploy/subscribers/northshire.yaml."
    )
    deliver_partitions: int = Field(default=3, ge=1, description="Partitions of deliver topics.")
    deliver_retention_days: int = Field(default=14, ge=1, description="Deliver topic retention.")
    webhook_attempts: int = Field(default=8, ge=1, le=50, description="Attempts before dead.")
    webhook_base_delay_seconds: float = Field(
        default=2.0, gt=0, description="Delay before the 2nd attempt; doubles each time."
    )
    webhook_max_delay_seconds: float = Field(
        default=900.0, gt=0, description="Cap on one back-off delay."
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Connect/read timeout of one POST."
    )
    webhook_interval_seconds: float = Field(
        default=1.0, gt=0, description="How often due webhook deliveries are looked for."
    )
    held_delivery_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How often topic deliveries a rule's delay held are decided again once due.",
    )
    rate_limit_enabled: bool = Field(default=True, description="Refuse over-limit calls (429).")
    rate_limit_agency_per_minute: float = Field(
        default=600.0, description="Sustained submissions per agency a minute."
    )
    rate_limit_agency_burst: int = Field(
        default=100, description="Submissions an agency may make at once."
    )
    rate_limit_caller_per_minute: float = Field(
        default=1200.0, description="Other API calls per caller a minute."
    )
    rate_limit_caller_burst: int = Field(default=200, description="Other API calls at once.")
    log_level: str = Field(default="INFO")
    log_json: bool = Field(default=True, description="JSON logs (False: console renderer).")

    @property
    def bootstrap(self) -> str:
        """The Kafka address to use: the configured cluster, else the local broker."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def db_url(self) -> str:
        """The store's SQLAlchemy URL: the configured one, else SQLite under ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'hub.db').resolve()}"

    @property
    def kafka_dir(self) -> Path:
        """Where the local broker keeps its jars cache, config, data and log."""
        return self.data_dir / "kafka"

    def topic(self, name: str) -> str:
        """The full name of a topic, with the configured prefix."""
        return f"{self.topic_prefix}{name}"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with explicit overrides winning."""
    return Settings(**overrides)  # type: ignore[arg-type]
