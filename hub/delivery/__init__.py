"""Partner deliveries: redacted events to ``deliver.<subscriber>`` topics, signed alert webhooks.

Subscribers are configuration (``config``); every delivery passes the sharing rules
(``hub.sharing``) for the subscriber as requester, is recorded once in the ledger (``store``)
and written to the audit trail. ``api`` is the operator's view of the ledger.
"""

from hub.delivery.backoff import RetryPolicy
from hub.delivery.config import (
    Subscriber,
    SubscriberConfigError,
    SubscriberKind,
    Subscribers,
    load_subscribers,
)
from hub.delivery.consumer import DeliveryConsumer, ProjectThenDeliver, run_held_releases
from hub.delivery.context import ChildSnapshot, NarrativeChildFacts
from hub.delivery.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify
from hub.delivery.store import DeliveryStatus, DeliveryStore, StoredDelivery
from hub.delivery.topics import (
    DeliveryCounts,
    DeliveryEvent,
    TopicDeliveryProcessor,
    deliver_topic,
    deliver_topic_specs,
)
from hub.delivery.webhooks import AlertDispatcher, alert_body, run_webhooks
from hub.delivery.wiring import DeliveryParts, build_delivery

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AlertDispatcher",
    "ChildSnapshot",
    "DeliveryConsumer",
    "DeliveryCounts",
    "DeliveryEvent",
    "DeliveryParts",
    "DeliveryStatus",
    "DeliveryStore",
    "NarrativeChildFacts",
    "ProjectThenDeliver",
    "RetryPolicy",
    "StoredDelivery",
    "Subscriber",
    "SubscriberConfigError",
    "SubscriberKind",
    "Subscribers",
    "TopicDeliveryProcessor",
    "alert_body",
    "build_delivery",
    "deliver_topic",
    "deliver_topic_specs",
    "load_subscribers",
    "run_held_releases",
    "run_webhooks",
    "sign",
    "verify",
]
