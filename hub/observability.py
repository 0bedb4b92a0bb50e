"""Structured logging (structlog, JSON) and the Prometheus metrics the hub exports."""

from __future__ import annotations

import logging
import sys

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics", "configure_logging", "get_logger"]


def configure_logging(level: str = "INFO", *, json: bool = True, cache: bool = False) -> None:
    """Route structlog and the standard library's logging through one JSON renderer on stderr.

    ``cache`` keeps each module logger as first used: a call on an uncached module logger
    builds its bound logger again (about 17 us, paid on every event's ``debug`` even when the
    level drops it). Only a long-running process that configures logging once, before its
    first log line (``hub serve``), caches: a command run in-process by a test
    leaves structlog reconfigured afterwards, and a cached logger would keep the old setup.
    """
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=cache,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter at INFO would include connection details and request URLs (which can
    # carry identifiers, e.g. ?identifier=nhs:...); keep it at WARNING.
    noisy_loggers = ("aiokafka", "faststream", "uvicorn.access", "sqlalchemy.engine")
    for noisy in (*noisy_loggers, "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger for a module; log events carry ids, never personal data."""
    return structlog.get_logger(name)  # type: ignore[no-any-return]


class Metrics:
    """The hub's Prometheus metrics, in a registry of their own (one per process or test)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.events_in = Counter(
            "hub_events_in_total",
            "Messages consumed by a processor.",
            ["processor", "topic"],
            registry=self.registry,
        )
        self.events_out = Counter(
            "hub_events_out_total",
            "Messages a processor published or stored.",
            ["processor", "outcome"],
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "hub_events_dead_lettered_total",
            "Messages sent to the dead-letter topic, by machine-readable reason.",
            ["processor", "reason"],
            registry=self.registry,
        )
        self.submissions = Counter(
            "hub_submissions_total",
            "Envelopes accepted or rejected over HTTP.",
            ["outcome"],
            registry=self.registry,
        )
        self.processing_seconds = Histogram(
            "hub_batch_processing_seconds",
            "Time to process one consumed batch.",
            ["processor"],
            registry=self.registry,
        )
        self.end_to_end_seconds = Histogram(
            "hub_submission_to_stored_seconds",
            "Time from an envelope's recorded_at to its narrative entry being stored.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "hub_consumer_lag_records",
            "Records between a partition's high watermark and the last record processed.",
            ["processor", "topic", "partition"],
            registry=self.registry,
        )
