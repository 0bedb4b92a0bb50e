"""One call that builds every delivery part from the hub's own pieces (for ``bootstrap.py``).

The composition root stays the only place that chooses concrete adapters: it calls
``build_delivery`` with what it has already built and decides what to subscribe and run.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.crypto.runtime import HubSecurity
from hub.delivery.backoff import RetryPolicy
from hub.delivery.config import Subscribers, load_subscribers
from hub.delivery.consumer import DeliveryConsumer
from hub.delivery.context import NarrativeChildFacts
from hub.delivery.store import DeliveryStore
from hub.delivery.topics import TopicDeliveryProcessor, deliver_topic_specs
from hub.delivery.webhooks import AlertDispatcher
from hub.governance import Governance
from hub.governance.config import load_governance_settings
from hub.registry import AgencyRegistry
from hub.settings import Settings
from hub.store.repository import SqlStore
from hub.streams.records import Publish
from hub.streams.topics import TopicSpec

__all__ = ["DeliveryParts", "build_delivery"]


@dataclass
class DeliveryParts:
    """Everything partner delivery adds to a hub process."""

    subscribers: Subscribers
    topic_specs: list[TopicSpec]
    store: DeliveryStore
    consumer: DeliveryConsumer
    dispatcher: AlertDispatcher

    async def aclose(self) -> None:
        """Close the webhook HTTP client."""
        await self.dispatcher.aclose()


def build_delivery(
    *,
    settings: Settings,
    registry: AgencyRegistry,
    store: SqlStore,
    security: HubSecurity,
    publish: Publish,
) -> DeliveryParts:
    """Load the subscribers (validated against the registry) and wire the processor, the
    consumer, the webhook dispatcher and the ledger over the hub's store, as ``settings`` say."""
    agencies = {a.id: a.kind for a in registry.all()}
    subscribers = load_subscribers(settings.subscribers_file, agencies=agencies)
    governance = Governance.over(
        store.engine,
        load_governance_settings(),
        keys_dir=settings.data_dir / "keys",
        agencies=agencies,
    )
    ledger = DeliveryStore(store.engine)
    snapshots = NarrativeChildFacts(store, security.keys)
    processor = TopicDeliveryProcessor(
        settings=settings,
        subscribers=subscribers,
        store=ledger,
        governance=governance,
        publish=publish,
    )
    dispatcher = AlertDispatcher(
        subscribers=subscribers,
        store=ledger,
        governance=governance,
        snapshots=snapshots,
        policy=RetryPolicy(
            attempts=settings.webhook_attempts,
            base_seconds=settings.webhook_base_delay_seconds,
            cap_seconds=settings.webhook_max_delay_seconds,
        ),
        timeout_seconds=settings.webhook_timeout_seconds,
    )
    return DeliveryParts(
        subscribers=subscribers,
        topic_specs=deliver_topic_specs(
            settings,
            subscribers,
            partitions=settings.deliver_partitions,
            retention_days=settings.deliver_retention_days,
        ),
        store=ledger,
        consumer=DeliveryConsumer(
            processor=processor,
            cipher=security.cipher,
            snapshots=snapshots.situations,
            ledger=ledger,
            shown=store.shown_events,
        ),
        dispatcher=dispatcher,
    )
