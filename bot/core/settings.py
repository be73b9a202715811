"""The one typed configuration of the bot, read from the environment (and `.env`).

Built once in the entry point (`bot/cli.py`), never at import time. Names follow
`../shared/CONTRACT.md`; secrets are `SecretStr` so they never print.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.core.timefmt import parse_duration

BUNDLED_PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"

# Values copied from examples and docs that must never be used as real secrets.
_PLACEHOLDERS = {"changeme", "xoxb-your-token", "your-signing-secret", "secret", "xxx"}


_EMAIL = re.compile(r"^[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+$")


def smtp_url_problem(url: str) -> str | None:
    """What is wrong with an SMTP_URL, worded without any part of it (None: nothing)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return "SMTP_URL is not a URL such as smtp://user:password@host:587"
    if parts.scheme not in ("smtp", "smtps"):
        return "SMTP_URL must start with smtp:// (STARTTLS) or smtps:// (implicit TLS)"
    if not parts.hostname:
        return "SMTP_URL names no host (smtp://user:password@host:587)"
    if port == 0:
        return "SMTP_URL has port 0"
    if parts.password and not parts.username:
        return "SMTP_URL has a password but no user"
    return None


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/icbot`, default `~/.local/share/icbot` (where embedded PostgreSQL lives)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "icbot"


class Settings(BaseSettings):
    # hide_input_in_errors: a refused value (SMTP_URL, DATABASE_URL) may hold a password.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

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
    # Email when Slack is down (issue 21, bot/domain/email_fallback.py): off unless SMTP_URL is
    # set. `smtp://user:pass@host:587` (STARTTLS; required when there is a password) or
    # `smtps://host:465` (implicit TLS), credentials optional. Key events and status prompts go
    # to the roles' emails and FALLBACK_EMAILS (comma-separated) once Slack has failed every
    # post for SLACK_DOWN_AFTER. SMTP_FROM: the sender (unset: the SMTP user if it is an
    # address, else icbot@<SMTP host>); SMTP_CA_BUNDLE: an extra CA file (tests, the sandbox).
    smtp_url: SecretStr | None = None
    smtp_from: str | None = None
    smtp_ca_bundle: Path | None = None
    fallback_emails: str | None = None
    slack_down_after: float = Field(default=120.0, gt=0)  # seconds, or `2m`, `90s`
    # Grafana annotations on resolve (issue 21): both unset → off ("Grafana is not configured").
    grafana_url: str | None = None
    grafana_token: SecretStr | None = None  # a service account token, sent as Bearer
    # Atlassian Statuspage (issue 21): public updates, each behind an approval. Off unless
    # both the key and the page are set ("Statuspage is not configured").
    statuspage_api_key: SecretStr | None = None
    statuspage_page_id: str | None = None
    statuspage_api_url: str = "https://api.statuspage.io"

    # Jira follow-ups (issue 21): action items filed as Jira Cloud issues; off until the URL,
    # the account (email + API token) and the project are set.
    jira_url: str | None = None
    jira_email: str | None = None
    jira_api_token: SecretStr | None = None
    jira_project: str | None = None
    jira_issue_type: str = "Task"
    jira_webhook_secret: SecretStr | None = None

    @field_validator("web_link_ttl", "slack_down_after", mode="before")
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
        "jira_api_token",
        "jira_webhook_secret",
        "grafana_token",
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

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        problem = smtp_url_problem(value.get_secret_value())
        if problem:
            raise ValueError(problem)  # worded without the URL: it may hold a password
        return value

    @field_validator("fallback_emails")
    @classmethod
    def _emails(cls, value: str | None) -> str | None:
        for address in [a.strip() for a in (value or "").split(",") if a.strip()]:
            if not _EMAIL.match(address):
                raise ValueError(f"{address!r} is not an email address (name@example.com)")
        return value

    @property
    def fallback_email_list(self) -> list[str]:
        return [a.strip() for a in (self.fallback_emails or "").split(",") if a.strip()]

    @property
    def email_enabled(self) -> bool:
        return self.smtp_url is not None

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
    def jira_enabled(self) -> bool:
        return bool(self.jira_url and self.jira_email and self.jira_api_token and self.jira_project)

    @property
    def grafana_enabled(self) -> bool:
        return bool(self.grafana_url and self.grafana_token)

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
