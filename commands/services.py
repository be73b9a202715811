"""What the Slack surface is given: every service, built once by the composition root.

`bot.runtime.services.open_services` builds it from `Settings`; handlers hold it and call the
domain through it. Typed by the domain's ports (`Chat`, `Pager`), not by the adapters behind
them, so this layer imports no `bot.integrations` and no `bot.runtime`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.inflight import Inflight
from bot.core.models import Clock
from bot.core.settings import Settings
from bot.delivery.incident_events import IncidentEvents
from bot.delivery.outbox import Outbox
from bot.domain.alerts import AlertIntake
from bot.domain.approvals import Approvals
from bot.domain.email_fallback import EmailQueue
from bot.domain.grafana import GrafanaQueue
from bot.domain.incidents import Incidents
from bot.domain.jira import Followups, JiraQueue
from bot.domain.pager import PagerQueue
from bot.domain.pager_events import PagerEvents
from bot.domain.policy import SeverityPolicy
from bot.domain.ports import Chat, Directory, Pager
from bot.domain.prompts import Prompter
from bot.domain.scribe import Scribe
from bot.domain.uow import UnitOfWork
from bot.pages.links import Linker
from bot.playbooks.catalogue import Catalogue
from bot.playbooks.checks.probes import Probes
from bot.playbooks.diagnose import Diagnoser
from bot.playbooks.remediations.runner import Remediator


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    uow: UnitOfWork
    policy: SeverityPolicy
    client: AsyncWebClient
    chat: Chat
    channel_id: str
    incidents: Incidents
    outbox: Outbox
    prompter: Prompter
    pager: Pager | None
    pager_queue: PagerQueue | None
    pager_events: PagerEvents | None
    catalogue: Catalogue
    probes: Probes
    diagnoser: Diagnoser
    remediator: Remediator
    approvals: Approvals
    clock: Clock
    scribe: Scribe
    links: Callable[[], Linker]  # incident-page links, made on first use (may write a key)
    inflight: Inflight = field(default_factory=Inflight)
    alert_intake: AlertIntake | None = None  # KAFKA_ALERT_TOPICS set
    incident_events: IncidentEvents | None = None  # KAFKA_EVENTS_TOPIC set
    email_queue: EmailQueue | None = None  # SMTP_URL set: email when Slack is down (issue 21)
    # Jira follow-ups (issue 21): ticking action items always; filing them when JIRA_* is set.
    followups: Followups | None = None
    jira_queue: JiraQueue | None = None  # JIRA_URL, JIRA_EMAIL, JIRA_API_TOKEN, JIRA_PROJECT set
    grafana_queue: GrafanaQueue | None = None  # GRAFANA_URL and GRAFANA_TOKEN set (issue 21)
    directory: Directory | None = None  # names for mentions in files (users.info, cached)
