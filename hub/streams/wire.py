"""Messages the hub itself puts on its topics: `hub.events` records and `hub.dlq` dead letters.

On `hub.events` the envelope travels *sealed* (``SealedHubEvent``): its sensitive fields are
encrypted under the child's data key (``hub.crypto``, ADR 0006). ``HubEvent`` is the opened,
validated form processors work with in memory; it is never written to a topic.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from contracts import Envelope, FieldError
from hub.streams.records import ConsumedRecord

__all__ = [
    "DeadLetter",
    "DeadLetterReason",
    "DeadLetterSource",
    "HubEvent",
    "IdentityHubEvent",
    "SealedHubEvent",
    "content_hash",
    "envelope_digest",
]


def content_hash(raw: bytes) -> str:
    """SHA-256 of a message's canonical JSON form (key order and spacing do not matter)."""
    try:
        canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()
    except (ValueError, UnicodeDecodeError, RecursionError):
        return hashlib.sha256(raw).hexdigest()


# Transport metadata: re-sending the same facts later, or signed with a new key, is a duplicate.
_TRANSPORT_FIELDS = frozenset({"recorded_at", "signature", "key_id"})


def envelope_digest(envelope: Envelope) -> str:
    """SHA-256 of an envelope's facts (canonical JSON without its transport metadata)."""
    facts = envelope.model_dump(mode="json", exclude=set(_TRANSPORT_FIELDS))
    canonical = json.dumps(facts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class HubEvent(BaseModel):
    """A validated event linked to its canonical child; the value of a `hub.events` record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    child_id: str = Field(min_length=1, max_length=64)
    ingested_at: AwareDatetime
    linked_by: str | None = Field(default=None, description="Identifier system that linked it.")
    envelope: Envelope


class SealedHubEvent(BaseModel):
    """The value of a `hub.events` record: an envelope as the agency sent it, fields sealed.

    ``envelope`` is the received JSON object (signature and ``key_id`` kept, so provenance
    stays provable) with the policy's sensitive values replaced by sealed values.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    child_id: str = Field(min_length=1, max_length=64)
    ingested_at: AwareDatetime
    linked_by: str | None = Field(default=None, description="Identifier system that linked it.")
    envelope: dict[str, Any] = Field(description="The envelope with sensitive fields sealed.")


IDENTITY_RECORD_PREFIX = b'{"record_kind":"identity"'
"""How an identity record's value starts (``record_kind`` is its first field)."""


class IdentityHubEvent(BaseModel):
    """An identity decision on `hub.events`: a merge, an un-merge or a kept-apart decision.

    Keyed by ``child_id`` (the surviving child of a merge, the restored child of an un-merge);
    ``data`` carries ids, the decider and the reason only, never personal data. Consumers that
    only want agency events skip these with ``IdentityHubEvent.is_one``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    record_kind: Literal["identity"] = "identity"
    type: Literal["identity.merged", "identity.unmerged", "identity.kept_apart"]
    child_id: str = Field(min_length=1, max_length=64)
    published_at: AwareDatetime
    data: dict[str, Any]

    @staticmethod
    def is_one(value: bytes) -> bool:
        """Whether a `hub.events` record value is an identity record (no parsing)."""
        return value.startswith(IDENTITY_RECORD_PREFIX)


class DeadLetterReason(StrEnum):
    """Machine-readable reasons a message is dead-lettered."""

    not_json = "not_json"
    contract_invalid = "contract_invalid"
    unsupported_schema_version = "unsupported_schema_version"
    agency_unknown = "agency_unknown"
    agency_kind_mismatch = "agency_kind_mismatch"
    duplicate_id_conflict = "duplicate_id_conflict"
    identity_unresolved = "identity_unresolved"
    hub_event_invalid = "hub_event_invalid"
    hub_event_unreadable = "hub_event_unreadable"  # sealed fields do not open (tampered, lost key)
    signature_unsigned = "signature_unsigned"
    signature_invalid = "signature_invalid"
    signature_unknown_key = "signature_unknown_key"
    signature_key_of_another_agency = "signature_key_of_another_agency"
    signature_key_not_yet_valid = "signature_key_not_yet_valid"
    signature_key_expired = "signature_key_expired"


class DeadLetterSource(BaseModel):
    """Where a dead letter was consumed from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str
    partition: int
    offset: int
    key: str | None = None

    @classmethod
    def of(cls, record: ConsumedRecord) -> DeadLetterSource:
        """The position (and key, as text) of a consumed record."""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key.decode("utf-8", "replace") if record.key else None,
        )


class DeadLetter(BaseModel):
    """A message the hub could not process, kept whole with the reason (`hub.dlq`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dlq_id: str
    reason: DeadLetterReason
    detail: str = Field(description="What is wrong, in words; never contains the payload.")
    errors: tuple[FieldError, ...] = ()
    processor: str
    event_id: str | None = None
    source: DeadLetterSource
    failed_at: datetime
    original_b64: str | None = Field(
        default=None, description="Legacy letters only: the original bytes, base64."
    )
    original_sealed: dict[str, Any] | None = Field(
        default=None,
        description="The original record (key and value) sealed under the month's dead-letter "
        "key (hub.crypto.dead_letters), so hub.dlq holds no plain personal data.",
    )

    @model_validator(mode="after")
    def _one_original(self) -> Self:
        if (self.original_b64 is None) == (self.original_sealed is None):
            raise ValueError("a dead letter carries exactly one of original_b64, original_sealed")
        return self

    @property
    def original(self) -> bytes:
        """The original bytes of a legacy (unsealed) letter."""
        if self.original_b64 is None:
            raise ValueError(f"dead letter {self.dlq_id} is sealed; open it with DeadLetterSealer")
        return base64.b64decode(self.original_b64)

    @staticmethod
    def encode_original(raw: bytes) -> str:
        """Base64 text for the original bytes."""
        return base64.b64encode(raw).decode("ascii")

    def value(self) -> bytes:
        """The `hub.dlq` record value (JSON)."""
        return self.model_dump_json().encode()

    def headers(self) -> dict[str, Any]:
        """Kafka headers that let tools filter dead letters without decoding the value."""
        return {"x-dlq-reason": self.reason.value, "x-dlq-id": self.dlq_id}
