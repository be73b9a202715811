"""Secrets never reach logs; settings follow the contract."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from pydantic import ValidationError

from bot.core import logs
from bot.core.settings import Settings


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_tokens_and_secrets_are_redacted_from_log_lines(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    logs.configure("json", "INFO")
    log = logs.get_logger("test")
    log.info(
        "slack.call",
        slack_bot_token="xoxb-1234-5678-abcdef",
        headers={"Authorization": "Bearer sekrit-value", "X-Slack-Signature": "v0=" + "a" * 64},
        url="postgresql://icbot:hunter2@db:5432/icbot",
        note="token xoxb-999-888-zzz leaked in text",
    )
    logging.getLogger("slack_sdk").warning("sent Bearer another-secret to slack")
    err = capsys.readouterr().err
    for secret in (
        "xoxb-1234",
        "sekrit-value",
        "hunter2",
        "xoxb-999",
        "aaaaaaaa",
        "another-secret",
    ):
        assert secret not in err
    line = json.loads(err.splitlines()[0])
    assert line["event"] == "slack.call" and line["slack_bot_token"] == logs.REDACTED


def test_secret_settings_do_not_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-real-token-value")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "abcdef0123456789")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert "xoxb-real-token-value" not in repr(settings)
    assert "abcdef0123456789" not in str(settings.model_dump())
    assert settings.require_slack() == ("xoxb-real-token-value", "abcdef0123456789")


def test_contract_defaults() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.incident_channel == "waqiti-incidents"
    assert settings.pagerduty_api_url == "https://api.pagerduty.com"
    assert settings.service_url_template == "http://{service}:8080"
    assert settings.port == 3000
    assert settings.database_url is None


def test_placeholder_secrets_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "changeme")
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_serve_without_slack_credentials_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET must be set"):
        Settings(_env_file=None).require_slack()  # type: ignore[call-arg]


def test_kafka_defaults_are_real_kafkas_and_tansu_turns_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.kafka_idempotent_producer is True
    assert settings.kafka_clamp_negative_lag is False
    monkeypatch.setenv("KAFKA_IDEMPOTENT_PRODUCER", "false")
    monkeypatch.setenv("KAFKA_CLAMP_NEGATIVE_LAG", "true")
    tansu = Settings(_env_file=None)  # type: ignore[call-arg]
    assert tansu.kafka_idempotent_producer is False
    assert tansu.kafka_clamp_negative_lag is True
