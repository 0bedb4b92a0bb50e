"""The subscribers file: strict validation, errors that name the place, secrets by reference."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts import AgencyKind
from hub.delivery.config import (
    DEFAULT_SUBSCRIBERS_FILE,
    SecretRef,
    SecretUnavailable,
    SubscriberConfigError,
    SubscriberKind,
    load_subscribers,
)
from hub.domain.roles import Role
from hub.settings import Settings, load_settings
from hub.sharing import AccessRequest, Purpose

pytestmark = pytest.mark.unit

AGENCIES = {
    "northshire-police": AgencyKind.police,
    "northshire-health": AgencyKind.health,
    "northshire-primary": AgencyKind.schools,
    "northshire-cs": AgencyKind.childrens_services,
}

HEAD = "version: 1\nsubscribers:\n"
TOPIC = """\
  - id: school-dsl
    agency_id: northshire-primary
    role: designated_safeguarding_lead
    purpose: education_safeguarding
    kind: topic
"""
HOOK = """\
  - id: school-hook
    agency_id: northshire-primary
    role: designated_safeguarding_lead
    purpose: education_safeguarding
    kind: webhook
    url: https://hooks.example/alerts
    secret: {env: HUB_TEST_HOOK_SECRET}
    alerts: {rules: [domestic_abuse_to_school], severities: [high]}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "subscribers.yaml"
    path.write_text(text, "utf-8")
    return path


class TestLoading:
    def test_packaged_file_is_valid(self) -> None:
        """The packaged Northshire file loads against the packaged agencies."""
        loaded = load_subscribers(agencies=AGENCIES)
        assert DEFAULT_SUBSCRIBERS_FILE.name == "northshire.yaml"
        assert [s.id for s in loaded.subscribers] == [
            "northshire-primary-dsl",
            "northshire-health-named-nurse",
        ]  # the webhook example is commented out: its URL is not a real endpoint

    def test_resolves_the_requester(self, tmp_path: Path) -> None:
        """A subscriber's requester is its agency (kind from the registry), role and purpose."""
        loaded = load_subscribers(write(tmp_path, HEAD + TOPIC), agencies=AGENCIES)
        (sub,) = loaded.subscribers
        assert sub.request == AccessRequest(
            "northshire-primary",
            AgencyKind.schools,
            Role.designated_safeguarding_lead,
            Purpose.education_safeguarding,
        )
        assert sub.who == "subscriber:school-dsl"
        assert loaded.of_kind(SubscriberKind.webhook) == ()

    def test_webhook_alert_filter(self, tmp_path: Path) -> None:
        """A webhook wants only the alerts its rules and severities name."""
        (hook,) = load_subscribers(write(tmp_path, HEAD + HOOK), agencies=AGENCIES).subscribers
        assert hook.wants_alert("domestic_abuse_to_school", "high")
        assert not hook.wants_alert("domestic_abuse_to_school", "medium")
        assert not hook.wants_alert("missing_episodes", "high")


class TestErrors:
    @pytest.mark.parametrize(
        ("text", "message"),
        [
            (
                HEAD + HOOK.replace("secret: {env: HUB_TEST_HOOK_SECRET}", "secret: hunter2"),
                "subscribers[0] (line 3): Value error, secret must not be written in this "
                "file: give {env: VARIABLE} or {file: PATH}",
            ),
            (
                HEAD + HOOK.replace("    url: https://hooks.example/alerts\n", ""),
                "subscribers[0] (line 3): Value error, a webhook subscriber needs url",
            ),
            (
                HEAD + TOPIC + "    url: https://hooks.example/x\n",
                "subscribers[0] (line 3): Value error, a topic subscriber takes no url",
            ),
            (
                HEAD + TOPIC.replace("role: designated_safeguarding_lead", "role: janitor"),
                "subscribers[0].role (line 5): Input should be",
            ),
            (
                HEAD + TOPIC + "    colour: blue\n",
                "subscribers[0].colour (line 8): Extra inputs are not permitted",
            ),
            (HEAD + TOPIC + TOPIC, "subscriber id 'school-dsl' appears twice"),
            (
                HEAD + HOOK.replace("{env: HUB_TEST_HOOK_SECRET}", "{env: X, file: /tmp/x}"),
                "subscribers[0].secret (line 9): Value error, name exactly one of env "
                "(a variable) or file (a path)",
            ),
        ],
    )
    def test_names_the_place(self, tmp_path: Path, text: str, message: str) -> None:
        """Every problem names the file, the entry (with its line) and what is wrong."""
        path = write(tmp_path, text)
        with pytest.raises(SubscriberConfigError) as caught:
            load_subscribers(path, agencies=AGENCIES)
        assert str(caught.value).startswith(f"{path}: ")
        assert message in str(caught.value)

    def test_unknown_agency(self, tmp_path: Path) -> None:
        """A subscriber of an agency the registry does not know is an error naming it."""
        path = write(tmp_path, HEAD + TOPIC.replace("northshire-primary", "elsewhere-school"))
        with pytest.raises(SubscriberConfigError) as caught:
            load_subscribers(path, agencies=AGENCIES)
        assert str(caught.value) == (
            f"{path}: subscribers[0].agency_id: agency 'elsewhere-school' is not registered"
        )

    def test_unreadable_file(self, tmp_path: Path) -> None:
        """A missing file is an error saying it cannot be read."""
        with pytest.raises(SubscriberConfigError, match="cannot read"):
            load_subscribers(tmp_path / "absent.yaml")

    def test_not_yaml(self, tmp_path: Path) -> None:
        """Broken YAML is an error with its line."""
        path = write(tmp_path, "version: 1\nsubscribers: [\n")
        with pytest.raises(SubscriberConfigError) as caught:
            load_subscribers(path)
        assert str(caught.value) == (
            f"{path}: line 3, column 1 is not valid YAML: "
            "expected the node content, but found '<stream end>'"
        )


class TestSecrets:
    def test_from_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An env reference reads the variable's value."""
        monkeypatch.setenv("HUB_TEST_HOOK_SECRET", "s3cret")
        assert SecretRef(env="HUB_TEST_HOOK_SECRET").read() == b"s3cret"

    def test_from_file(self, tmp_path: Path) -> None:
        """A file reference reads the file, without its trailing newline."""
        path = tmp_path / "secret"
        path.write_bytes(b"s3cret\n")
        assert SecretRef(file=path).read() == b"s3cret"

    def test_unset_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An unset variable is SecretUnavailable naming the variable (never a value)."""
        monkeypatch.delenv("HUB_TEST_HOOK_SECRET", raising=False)
        with pytest.raises(SecretUnavailable) as caught:
            SecretRef(env="HUB_TEST_HOOK_SECRET").read()
        assert str(caught.value) == "environment variable HUB_TEST_HOOK_SECRET is not set"

    def test_empty_file(self, tmp_path: Path) -> None:
        """An empty secret file is refused."""
        path = tmp_path / "secret"
        path.write_bytes(b"\n")
        with pytest.raises(SecretUnavailable, match="is empty"):
            SecretRef(file=path).read()


class TestSettings:
    """Delivery's knobs are the hub's settings, from ``HUB_*`` variables, validated."""

    def test_env_override(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """HUB_SUBSCRIBERS_FILE and the retry knobs come from the environment."""
        monkeypatch.setenv("HUB_SUBSCRIBERS_FILE", str(tmp_path / "s.yaml"))
        monkeypatch.setenv("HUB_WEBHOOK_ATTEMPTS", "3")
        settings = load_settings()
        assert (settings.subscribers_file, settings.webhook_attempts) == (tmp_path / "s.yaml", 3)
        assert settings.webhook_base_delay_seconds == 2.0

    def test_defaults(self) -> None:
        """Unset, the delivery knobs keep their documented defaults."""
        settings = Settings()
        assert (
            settings.subscribers_file,
            settings.deliver_partitions,
            settings.deliver_retention_days,
            settings.webhook_attempts,
            settings.webhook_base_delay_seconds,
            settings.webhook_max_delay_seconds,
            settings.webhook_timeout_seconds,
            settings.webhook_interval_seconds,
        ) == (None, 3, 14, 8, 2.0, 900.0, 10.0, 1.0)

    @pytest.mark.parametrize(
        ("variable", "value"),
        [
            ("HUB_WEBHOOK_ATTEMPTS", "0"),
            ("HUB_WEBHOOK_ATTEMPTS", "51"),
            ("HUB_DELIVER_PARTITIONS", "0"),
            ("HUB_DELIVER_RETENTION_DAYS", "0"),
            ("HUB_WEBHOOK_BASE_DELAY_SECONDS", "0"),
            ("HUB_WEBHOOK_TIMEOUT_SECONDS", "-1"),
        ],
    )
    def test_out_of_range_refused(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
    ) -> None:
        """A knob outside its range is refused at start, naming the field."""
        monkeypatch.setenv(variable, value)
        with pytest.raises(ValidationError, match=variable.removeprefix("HUB_").lower()):
            load_settings()
