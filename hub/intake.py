"""Intake: sending validated envelopes to the ingest topic, and running agency adapters on files.

Envelopes the hub makes itself from a native file are signed with the hub's intake key (or the
signer given, e.g. the agency's own key for `hub adapter`); the SHA-256 of the native file is
logged with the event ids it produced, so each event can be traced to the file (ADR 0006).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from adapters import childrens_services, health, police, schools
from adapters.common import AdapterResult, AgencyRef, UnreadableFile
from contracts import AgencyKind, Envelope
from hub.crypto.runtime import EnvelopeSigner, intake_signer
from hub.domain.identity import link_keys_for
from hub.observability import get_logger
from hub.registry import Agency
from hub.streams.app import HubStreams
from hub.streams.topics import Topics

__all__ = [
    "ADAPTERS",
    "AdapterParse",
    "UnreadableFile",
    "content_type_for",
    "parse_native",
    "partition_key",
    "publish_envelopes",
]

log = get_logger(__name__)

AdapterParse = Callable[..., AdapterResult]

ADAPTERS: dict[AgencyKind, AdapterParse] = {
    AgencyKind.police: police.parse,
    AgencyKind.health: health.parse,
    AgencyKind.schools: schools.parse,
    AgencyKind.childrens_services: childrens_services.parse,
}

_BY_SUFFIX = {
    ".csv": "text/csv",
    ".xml": "application/xml",
    ".json": "application/json",
    ".fhir.json": "application/fhir+json",
}


def content_type_for(path: Path) -> str:
    """The media type of a native file, from its name (`.csv`, `.xml`, `.json`)."""
    name = path.name.lower()
    for suffix in sorted(_BY_SUFFIX, key=len, reverse=True):
        if name.endswith(suffix):
            return _BY_SUFFIX[suffix]
    raise UnreadableFile(f"cannot tell the format of {path.name}: use .csv, .xml or .json")


def parse_native(agency: Agency, body: bytes, content_type: str, *, now: datetime) -> AdapterResult:
    """Run the adapter of the agency's kind on a native file (raises ``UnreadableFile``).

    Logs the file's SHA-256 with the ids of the events made from it (provenance; ids only).
    """
    parse = ADAPTERS[agency.kind]
    result = parse(body, content_type, AgencyRef(agency.id, agency.kind), now=now)
    log.info(
        "intake.native_parsed",
        agency_id=agency.id,
        body_sha256=hashlib.sha256(body).hexdigest(),
        content_type=content_type.split(";")[0].strip(),
        event_ids=[e.id for e in result.envelopes],
        rejected=len(result.rejected),
    )
    return result


def partition_key(envelope: Envelope) -> bytes:
    """Key ingest records by the person's strongest link key so their records stay in order."""
    keys = link_keys_for(
        ((i.system.value, i.value) for i in envelope.person.identifiers),
        agency_id=envelope.agency_id,
        subject=envelope.subject,
    )
    first = keys[0] if keys else None
    return (f"{first.system}:{first.value}" if first else f"id:{envelope.id}").encode()


async def publish_envelopes(
    streams: HubStreams,
    topics: Topics,
    kind: AgencyKind,
    envelopes: Sequence[Envelope],
    raw: Sequence[dict[str, Any]] | None = None,
    *,
    signer: EnvelopeSigner | None = None,
) -> list[str]:
    """Put envelopes on the ingest topic of their agency kind; returns once the broker has all.

    ``raw`` (the submitted JSON objects, same order) is sent as received when given, so the
    ingest processor validates and verifies exactly what the agency sent. Otherwise the hub
    made the envelopes (an adapter): their JSON is signed by ``signer``, by default the hub's
    intake key for these settings.
    """
    topic = topics.ingest(kind)
    if raw is None:
        sign = signer or intake_signer(streams.settings)
        raw = [sign.sign(e.model_dump(mode="json")) for e in envelopes]
    futures = []
    for index, envelope in enumerate(envelopes):
        value = json.dumps(raw[index]).encode()
        futures.append(
            await streams.publish(
                topic,
                value,
                key=partition_key(envelope),
                headers={"content-type": "application/json", "event-id": envelope.id},
            )
        )
    await asyncio.gather(*futures)
    return [e.id for e in envelopes]
