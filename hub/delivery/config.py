"""Partner subscribers as configuration: who receives deliveries, how, and for which purpose.

A subscriber is a partner system acting for one agency in one role and purpose (the sharing
rules' requester). ``kind: topic`` subscribers consume ``deliver.<id>`` from Kafka themselves;
``kind: webhook`` subscribers receive alerts as signed HTTP POSTs. A webhook's HMAC secret is
named by reference (an environment variable or a file), never written in the YAML.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from contracts import AgencyKind
from hub.alerts._yaml import DataFileError, load_model, read_text
from hub.alerts.rules import Severity
from hub.domain.roles import Role
from hub.sharing import AccessRequest, Purpose

__all__ = [
    "DEFAULT_SUBSCRIBERS_FILE",
    "AlertFilter",
    "SecretRef",
    "SecretUnavailable",
    "Subscriber",
    "SubscriberConfigError",
    "SubscriberKind",
    "Subscribers",
    "load_subscribers",
]

DEFAULT_SUBSCRIBERS_FILE = (
    Path(__file__).resolve().parents[2] / "deploy" / "subscribers" / "northshire.yaml"
)
"""The packaged Northshire demo subscribers, used when ``HUB_SUBSCRIBERS_FILE`` is unset."""

SubscriberId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
AgencyId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{2,64}$")]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")]


class SubscriberConfigError(ValueError):
    """The subscribers file cannot be read or is not valid (the message names the place)."""


class SecretUnavailable(LookupError):
    """A webhook's secret reference names an unset variable or an unreadable/empty file."""


class SubscriberKind(StrEnum):
    """How a subscriber receives deliveries."""

    topic = "topic"
    webhook = "webhook"


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Data):
    """Where a webhook's HMAC secret is: exactly one of an environment variable or a file."""

    env: EnvName | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("name exactly one of env (a variable) or file (a path)")
        return self

    def read(self) -> bytes:
        """The secret's bytes (a file's trailing newline dropped); ``SecretUnavailable`` if none."""
        if self.env is not None:
            value = os.environ.get(self.env, "")
            if not value:
                raise SecretUnavailable(f"environment variable {self.env} is not set")
            return value.encode("utf-8")
        assert self.file is not None
        try:
            data = self.file.read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise SecretUnavailable(f"cannot read secret file {self.file}: {exc.strerror}") from exc
        if not data:
            raise SecretUnavailable(f"secret file {self.file} is empty")
        return data


class AlertFilter(_Data):
    """Which alerts a webhook wants: rule ids and severities (omitted means any)."""

    rules: tuple[str, ...] | None = Field(default=None, min_length=1)
    severities: tuple[Severity, ...] | None = Field(default=None, min_length=1)

    def wants(self, rule_id: str, severity: str) -> bool:
        """Whether an alert of this rule and severity is for this subscriber."""
        return (self.rules is None or rule_id in self.rules) and (
            self.severities is None or severity in {str(s) for s in self.severities}
        )


class Subscriber(_Data):
    """One partner subscriber: who it acts as, and how it receives deliveries."""

    id: SubscriberId
    agency_id: AgencyId
    role: Role
    purpose: Purpose
    team: str | None = Field(default=None, min_length=1, max_length=64)
    kind: SubscriberKind
    url: AnyHttpUrl | None = None
    secret: SecretRef | None = None
    alerts: AlertFilter | None = None
    agency_kind: AgencyKind | None = Field(
        default=None, description="Filled in from the agency registry when loaded."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_literal_secret(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and isinstance(raw.get("secret"), str | bytes | int):
            raise ValueError(
                "secret must not be written in this file: give {env: VARIABLE} or {file: PATH}"
            )
        return raw

    @model_validator(mode="after")
    def _fits_kind(self) -> Subscriber:
        if self.kind is SubscriberKind.webhook:
            if self.url is None:
                raise ValueError("a webhook subscriber needs url")
            if self.secret is None:
                raise ValueError("a webhook subscriber needs secret ({env: ...} or {file: ...})")
        else:
            extra = [n for n in ("url", "secret", "alerts") if getattr(self, n) is not None]
            if extra:
                raise ValueError(f"a topic subscriber takes no {', '.join(extra)}")
        return self

    @property
    def request(self) -> AccessRequest:
        """The sharing rules' requester this subscriber acts as."""
        if self.agency_kind is None:
            raise SubscriberConfigError(f"subscriber {self.id}: agency kind not resolved")
        return AccessRequest(self.agency_id, self.agency_kind, self.role, self.purpose, self.team)

    @property
    def who(self) -> str:
        """The audit trail's ``who`` for this subscriber."""
        return f"subscriber:{self.id}"

    def wants_alert(self, rule_id: str, severity: str) -> bool:
        """Whether this (webhook) subscriber wants an alert of this rule and severity."""
        if self.kind is not SubscriberKind.webhook:
            return False
        return self.alerts is None or self.alerts.wants(rule_id, severity)


class Subscribers(_Data):
    """The subscribers file: a version label and the subscribers, ids unique."""

    version: int = Field(ge=1)
    subscribers: tuple[Subscriber, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> Subscribers:
        seen: set[str] = set()
        for s in self.subscribers:
            if s.id in seen:
                raise ValueError(f"subscriber id {s.id!r} appears twice")
            seen.add(s.id)
        return self

    def of_kind(self, kind: SubscriberKind) -> tuple[Subscriber, ...]:
        """The subscribers receiving deliveries this way."""
        return tuple(s for s in self.subscribers if s.kind is kind)

    def get(self, subscriber_id: str) -> Subscriber | None:
        """The subscriber with this id, if configured."""
        return next((s for s in self.subscribers if s.id == subscriber_id), None)


def load_subscribers(
    path: Path | None = None, *, agencies: Mapping[str, AgencyKind] | None = None
) -> Subscribers:
    """The subscribers in ``path`` (default: the packaged demo), agency kinds resolved.

    ``agencies`` maps registered agency ids to their kinds; a subscriber of an unknown agency
    is an error. Every problem names the file, the entry and the line.
    """
    where = str(path or DEFAULT_SUBSCRIBERS_FILE)
    try:
        loaded = load_model(Subscribers, read_text(path or DEFAULT_SUBSCRIBERS_FILE), where)
    except DataFileError as exc:
        raise SubscriberConfigError(str(exc)) from exc
    if agencies is None:
        return loaded
    resolved = []
    for n, s in enumerate(loaded.subscribers):
        kind = agencies.get(s.agency_id)
        if kind is None:
            raise SubscriberConfigError(
                f"{where}: subscribers[{n}].agency_id: agency {s.agency_id!r} is not registered"
            )
        resolved.append(s.model_copy(update={"agency_kind": kind}))
    return loaded.model_copy(update={"subscribers": tuple(resolved)})
