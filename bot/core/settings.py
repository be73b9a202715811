"""The one typed configuration of the bot, read from the environment (and `.env`).

Built once in the entry point (`bot/cli.py`), never at import time. Names follow
`../shared/CONTRACT.md`; secrets are `SecretStr` so they never print.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.core.timefmt import parse_duration

BUNDLED_PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"

# Values copied from examples and docs that must never be used as real secrets.
_PLACEHOLDERS = {"changeme", "xoxb-your-token", "your-signing-secret", "secret", "xxx"}


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/icbot`, default `~/.local/share/icbot` (where embedded PostgreSQL lives)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "icbot"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    incident_channel: str = "waqiti-incidents"

    database_url: SecretStr | None = None
    data_dir: Path = Field(default_factory=default_data_dir, alias="ICBOT_DATA_DIR")

    pagerduty_api_token: SecretStr | None = None
    pagerduty_from_email: str | None = None
    pagerduty_service_id: str | None = None
    pagerduty_api_url: str = "https://api.pagerduty.com"
    pagerduty_ca_bundle: Path | None = None
    pagerduty_webhook_secret: SecretStr | None = None

    kubeconfig: Path | None = None
    # Namespace of /rollback (and other commands) when none is named; unset: the kubeconfig
    # context's namespace (in a pod: the service account's), else "default".
    kube_namespace: str | None = None
    kafka_bootstrap_servers: str | None = None
    # Kafka in and out (issue 12), both off unless named. Alert intake: a consumer group (one per
    # deployment) on KAFKA_ALERT_TOPICS (comma-separated); unreadable alerts go to
    # KAFKA_DEAD_LETTER_TOPIC. Incident events: every timeline entry to KAFKA_EVENTS_TOPIC.
    kafka_alert_topics: str | None = None
    kafka_group_id: str = "icbot"
    kafka_dead_letter_topic: str = "icbot-alerts-dead-letter"
    kafka_events_topic: str | None = None
    # Alerts of one (fingerprint, service) within one window are one group (tumbling windows).
    kafka_alert_window_seconds: float = Field(default=300.0, gt=0)
    kafka_alert_batch: int = Field(default=1000, gt=0, le=50_000)  # records per getmany
    # Where a group with no committed offset starts; "earliest" replays the topic's retention.
    kafka_alert_offset_reset: Literal["earliest", "latest"] = "latest"
    # Real-Kafka defaults. The tansu broker of the tests and the sandbox refuses the idempotent
    # producer, and its ListOffsets under-reports the log end after a batch of several records
    # (the intake's lag comes out below 0): they set false and true.
    kafka_idempotent_producer: bool = True
    kafka_clamp_negative_lag: bool = False
    vault_addr: str | None = None
    vault_token: SecretStr | None = None
    vault_role_id: str | None = None
    vault_secret_id: SecretStr | None = None
    vault_secrets_path: str = "icbot"
    service_url_template: str = "http://{service}:8080"
    feature_flag_token: SecretStr | None = None  # config-service admin token (or from Vault)

    playbooks_dir: Path = BUNDLED_PLAYBOOKS
    # Tuning (not in the contract): how long a claimed outbox post stays leased to a replica
    # before another may retry it, and how often the timer loop looks for due prompts.
    outbox_lease_seconds: float = Field(default=30.0, gt=0)
    timer_poll_seconds: float = Field(default=1.0, gt=0)
    verify_timeout_seconds: float = Field(default=120.0, gt=0)  # how long a remediation is verified
    # On SIGTERM: how long work already started (commands, remediations) may take to finish.
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    # How often the bot's own secrets are re-read from Vault (rotation without a restart).
    secrets_refresh_seconds: float = Field(default=60.0, gt=0)
    log_format: Literal["json", "console"] | None = None
    log_level: str = "INFO"
    port: int = 3000
    # The incident page (bot/pages): where people reach the bot (unset: http://localhost:PORT),
    # the key of its links (unset: derived from SLACK_SIGNING_SECRET) and how long a link lasts.
    public_url: str | None = None
    web_link_secret: SecretStr | None = None
    web_link_ttl: float = Field(default=7 * 24 * 3600.0, gt=0)  # seconds, or `7d`, `12h`
    # Atlassian Statuspage (issue 21): public updates, each behind an approval. Off unless
    # both the key and the page are set ("Statuspage is not configured").
    statuspage_api_key: SecretStr | None = None
    statuspage_page_id: str | None = None
    statuspage_api_url: str = "https://api.statuspage.io"

    @field_validator("web_link_ttl", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator(
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "pagerduty_api_token",
        "pagerduty_webhook_secret",
        "vault_token",
        "vault_secret_id",
        "feature_flag_token",
        "web_link_secret",
        "statuspage_api_key",
    )
    @classmethod
    def _refuse_placeholders(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value().strip()
        if not raw:
            return None
        if raw.lower() in _PLACEHOLDERS:
            raise ValueError("is a placeholder value; set the real secret")
        return value

    @property
    def pagerduty_webhook_secrets(self) -> list[str]:
        """Comma-separated, so an old and a new secret both work while rotating."""
        if self.pagerduty_webhook_secret is None:
            return []
        raw = self.pagerduty_webhook_secret.get_secret_value()
        return [part.strip() for part in raw.split(",") if part.strip()]

    @property
    def kafka_alert_topic_list(self) -> list[str]:
        return [t.strip() for t in (self.kafka_alert_topics or "").split(",") if t.strip()]

    @property
    def page_base_url(self) -> str:
        """PUBLIC_URL without a trailing slash; http://localhost:PORT when unset."""
        return (self.public_url or f"http://localhost:{self.port}").rstrip("/")

    @property
    def pagerduty_enabled(self) -> bool:
        return bool(
            self.pagerduty_api_token and self.pagerduty_from_email and self.pagerduty_service_id
        )

    @property
    def statuspage_enabled(self) -> bool:
        return bool(self.statuspage_api_key and (self.statuspage_page_id or "").strip())

    def require_slack(self) -> tuple[str, str]:
        """The bot token and signing secret, or a clear error naming what is missing."""
        missing = [
            name
            for name, value in (
                ("SLACK_BOT_TOKEN", self.slack_bot_token),
                ("SLACK_SIGNING_SECRET", self.slack_signing_secret),
            )
            if value is None
        ]
        if missing:
            raise ValueError(f"{' and '.join(missing)} must be set for this command")
        assert self.slack_bot_token is not None and self.slack_signing_secret is not None
        return (
            self.slack_bot_token.get_secret_value(),
            self.slack_signing_secret.get_secret_value(),
        )
