"""The composition root: the only place concrete pieces (Kafka, SQL, keys) are chosen and wired."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from hub.alerts.calendar import load_calendar
from hub.alerts.changes import watch_alert_steps
from hub.alerts.processing import AlertProcessor
from hub.alerts.rules import load_rules
from hub.alerts.store import AlertStore
from hub.auth import TokenIssuer, TokenVerifier
from hub.crypto.dead_letters import DeadLetterSealer
from hub.crypto.runtime import HubSecurity, build_security
from hub.crypto.token_keys import load_or_create_signing_key, load_public_key
from hub.delivery import (
    DeliveryParts,
    ProjectThenDeliver,
    build_delivery,
    run_held_releases,
    run_webhooks,
)
from hub.governance.retention import build_retention_runner, run_retention_periodically
from hub.kafka.admin import ensure_topics
from hub.observability import Metrics, get_logger
from hub.registry import AgencyRegistry
from hub.settings import Settings
from hub.store.checkpoints import defer_checkpoints, run_checkpoints
from hub.store.db import create_engine, migrate
from hub.store.repository import SqlStore
from hub.streams.alerting import AlertConsumer, run_escalations
from hub.streams.app import HubStreams
from hub.streams.ingest import IngestProcessor
from hub.streams.projector import NarrativeProjector
from hub.streams.topics import Topics

if TYPE_CHECKING:
    from hub.governance import Governance

__all__ = ["Hub", "ProcessRole", "build_hub"]

log = get_logger(__name__)

_DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
"""Default rule and calendar files shipped beside the package (see README: configuration)."""


class ProcessRole(StrEnum):
    """What one process runs: everything (embedded default) or one part, to scale parts apart."""

    all = "all"
    ingest = "ingest"
    narrative = "narrative"
    alerts = "alerts"
    api = "api"


@dataclass
class Hub:
    """Every component of one hub process."""

    settings: Settings
    role: ProcessRole
    registry: AgencyRegistry
    metrics: Metrics
    store: SqlStore
    topics: Topics
    streams: HubStreams
    verifier: TokenVerifier
    issuer: TokenIssuer | None
    security: HubSecurity
    alerts: AlertStore
    alert_processor: AlertProcessor
    delivery: DeliveryParts
    _started: bool = field(default=False, init=False)
    _escalations: asyncio.Task[None] | None = field(default=None, init=False)
    _retention: asyncio.Task[None] | None = field(default=None, init=False)
    _webhooks: asyncio.Task[None] | None = field(default=None, init=False)
    _held: asyncio.Task[None] | None = field(default=None, init=False)
    _alert_watch: asyncio.Task[None] | None = field(default=None, init=False)
    _checkpoints: asyncio.Task[None] | None = field(default=None, init=False)
    governance: Governance | None = field(default=None, init=False, repr=False)
    """The governance stores (``hub.governance.api.governance_of`` builds them once)."""

    async def start(self) -> None:
        """Migrate the store, create missing topics, then connect and start the subscribers."""
        from hub.governance.api import governance_of  # it imports this module

        await migrate(self.store.engine)
        await self.security.start()
        # The rule pack in force is stored now, so no read ever has to write it first.
        await governance_of(self).rules.current()
        await ensure_topics(
            self.settings.bootstrap,
            self.topics.specs() + self.delivery.topic_specs,
            replication_factor=self.settings.replication_factor,
        )
        await self.streams.broker.start()
        self._started = True
        self._checkpoints = asyncio.create_task(
            run_checkpoints(self.store.engine), name="store-checkpoints"
        )
        if self.role in (ProcessRole.all, ProcessRole.alerts):
            self._escalations = asyncio.create_task(
                run_escalations(
                    self.alert_processor,
                    every_seconds=self.settings.escalation_interval_seconds,
                ),
                name="alert-escalations",
            )
            self._retention = asyncio.create_task(
                run_retention_periodically(
                    build_retention_runner(
                        self.store.engine,
                        self.security.keys,
                        keys_dir=self.settings.data_dir / "keys",
                    ),
                    every_seconds=self.settings.retention_interval_seconds,
                    dead_letters=DeadLetterSealer(self.security.keys),
                    dead_letter_days=self.settings.retention_dead_letter_days,
                ),
                name="retention",
            )
            self._webhooks = asyncio.create_task(
                run_webhooks(
                    self.delivery.dispatcher,
                    every_seconds=self.settings.webhook_interval_seconds,
                ),
                name="webhooks",
            )
        if self.role in (ProcessRole.all, ProcessRole.narrative):
            # Deliveries a rule's delay held go out once it ends (a milestone recorded for the
            # child releases them in the narrative consumer at once).
            self._held = asyncio.create_task(
                run_held_releases(
                    self.delivery.consumer,
                    every_seconds=self.settings.held_delivery_interval_seconds,
                ),
                name="held-deliveries",
            )
        if self.role in (ProcessRole.all, ProcessRole.api):
            # Alert streams wake on this process's own commits at once; this notices the
            # steps an alerts process elsewhere commits.
            self._alert_watch = asyncio.create_task(
                watch_alert_steps(
                    self.alerts.changes,
                    self.alerts.latest_seq,
                    every_seconds=self.settings.alert_stream_poll_seconds,
                ),
                name="alert-watch",
            )
        log.info(
            "hub.started",
            role=self.role.value,
            bootstrap=self.settings.bootstrap,
            store=self.store.engine.dialect.name,
        )

    async def stop(self) -> None:
        """Finish in-flight batches (offsets committed), then close Kafka and the store."""
        tasks = (
            self._escalations,
            self._retention,
            self._webhooks,
            self._held,
            self._alert_watch,
            self._checkpoints,
        )
        for task in tasks:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._escalations = self._retention = self._webhooks = self._alert_watch = None
        self._held = self._checkpoints = None
        await self.delivery.aclose()
        if self._started:
            await self.streams.broker.stop()
            self._started = False
        await self.store.engine.dispose()
        log.info("hub.stopped", role=self.role.value)

    def asyncapi_json(self) -> str:
        """The AsyncAPI document as JSON text."""
        spec = self.streams.asyncapi().to_specification()
        return json.dumps(json.loads(spec.to_json()), indent=2, sort_keys=True)

    def asyncapi_html(self) -> str:
        """The AsyncAPI document as a self-contained HTML page."""
        from faststream.specification.asyncapi.site import get_asyncapi_html

        return get_asyncapi_html(self.streams.asyncapi().to_specification())


def build_hub(settings: Settings, role: ProcessRole = ProcessRole.all) -> Hub:
    """Wire a hub process for a role from settings (no I/O beyond reading keys and config)."""
    registry = AgencyRegistry.load(settings.agencies_file)
    metrics = Metrics()
    engine = create_engine(settings.db_url)
    defer_checkpoints(engine)  # run_checkpoints (started with the hub) does them instead
    store = SqlStore(engine)
    security = build_security(settings, store.engine, registry)
    topics = Topics(settings)
    streams = HubStreams(settings, topics, metrics)
    keys_dir = settings.data_dir / "keys"
    issuer: TokenIssuer | None = None
    if settings.jwt_public_key_file is not None:
        public_key = load_public_key(settings.jwt_public_key_file)
    else:
        private_key = load_or_create_signing_key(keys_dir)
        public_key = private_key.public_key()
        issuer = TokenIssuer(
            private_key, issuer=settings.jwt_issuer, audience=settings.jwt_audience
        )
    verifier = TokenVerifier(
        public_key,
        registry,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        leeway_seconds=settings.jwt_leeway_seconds,
    )
    delivery = build_delivery(
        settings=settings,
        registry=registry,
        store=store,
        security=security,
        publish=streams.publish,
    )
    streams.declare_deliver_topics([s.name for s in delivery.topic_specs])
    if role in (ProcessRole.all, ProcessRole.ingest):
        streams.subscribe_ingest(
            IngestProcessor(
                store=store,
                registry=registry,
                topics=topics,
                publish=streams.publish,
                metrics=metrics,
                security=security,
            )
        )
    alert_store = AlertStore(store.engine)
    alert_processor = AlertProcessor(
        store=alert_store,
        rules=load_rules(settings.alert_rules_file or _DEPLOY / "alerts" / "northshire.yaml"),
        calendar=load_calendar(settings.term_dates_file or _DEPLOY / "alerts" / "term-dates.yaml"),
        outbox=delivery.dispatcher.queue_in,
    )
    if role in (ProcessRole.all, ProcessRole.alerts):
        streams.subscribe_alerts(
            AlertConsumer(
                processor=alert_processor,
                cipher=security.cipher,
                metrics=metrics,
            )
        )
    if role in (ProcessRole.all, ProcessRole.narrative):
        projector = NarrativeProjector(
            store=store,
            topics=topics,
            publish=streams.publish,
            metrics=metrics,
            security=security,
        )
        # Deliveries after the projector, before offsets commit: each child's statuses then
        # include the batch's own events; both are idempotent on redelivery.
        streams.subscribe_narrative(ProjectThenDeliver(projector, delivery.consumer))
    return Hub(
        settings=settings,
        role=role,
        registry=registry,
        metrics=metrics,
        store=store,
        topics=topics,
        streams=streams,
        verifier=verifier,
        issuer=issuer,
        security=security,
        alerts=alert_store,
        alert_processor=alert_processor,
        delivery=delivery,
    )
