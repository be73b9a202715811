"""Domain data the rest of the bot passes around. Plain dataclasses, no I/O."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Status(StrEnum):
    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MITIGATING = "mitigating"
    MONITORING = "monitoring"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"


# Stages that mean the bleeding has stopped: the first of them sets `mitigated_at`.
MITIGATED_STAGES = {Status.MONITORING, Status.MITIGATED}

ROLE_ALIASES = {
    "ic": "incident commander",
    "commander": "incident commander",
    "incident-commander": "incident commander",
    "incident_commander": "incident commander",
    "lead": "incident commander",
    "scribe": "scribe",
    "comms": "comms lead",
    "comms-lead": "comms lead",
    "comms_lead": "comms lead",
    "communications": "comms lead",
    "communications-lead": "comms lead",
}
IC = "incident commander"
STANDARD_ROLES = (IC, "scribe", "comms lead")
_FREE_ROLE = re.compile(r"^[a-z][a-z0-9 _-]{0,39}$")


def normalise_role(raw: str) -> str | None:
    """A role name from the runbooks, or a free-form one (`dba`, `security-lead`); None if bad."""
    key = raw.strip().lower()
    if key in ROLE_ALIASES:
        return ROLE_ALIASES[key]
    if key in STANDARD_ROLES:
        return key
    if not _FREE_ROLE.match(key):
        return None
    # One spelling per role: `security-lead`, `security_lead` and `security lead` are one role.
    return " ".join(key.replace("-", " ").replace("_", " ").split())


SYSTEM_ACTORS = {"pagerduty": "PagerDuty", "icbot": "icbot", "alerts": "Alerting", "jira": "Jira"}


def who(actor: str) -> str:
    """How an actor is written in the timeline: a Slack mention, or the system's name, with
    the person who acted there when known (`pagerduty:Ana Ruiz` is "PagerDuty (Ana Ruiz)")."""
    system, _, person = actor.partition(":")
    if person and system in SYSTEM_ACTORS:
        inert = person.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return f"{SYSTEM_ACTORS[system]} ({inert})"
    return SYSTEM_ACTORS.get(actor) or f"<@{actor}>"


def incident_ref(number: int) -> str:
    return f"INC-{number}"


@dataclass(frozen=True)
class Incident:
    id: int
    title: str
    severity: str
    status: Status
    declared_by: str
    channel_id: str
    thread_ts: str | None
    declared_at: datetime
    acknowledged_at: datetime | None
    mitigated_at: datetime | None
    resolved_at: datetime | None
    summary: str | None
    last_status: str | None
    last_status_at: datetime | None
    card_version: int
    next_prompt_at: datetime | None = None
    prompt_seq: int = 0
    unanswered: int = 0
    escalate_at: datetime | None = None
    escalated_at: datetime | None = None
    pagerduty_id: str | None = None
    pagerduty_url: str | None = None
    alert_count: int = 0  # firing alerts the Kafka intake attributed to it (issue 12)
    card_number_seen: bool = False  # the guard kept a card number out of its record (issue 19)
    roles: dict[str, str] = field(default_factory=dict)  # role -> Slack user id

    @property
    def ref(self) -> str:
        return incident_ref(self.id)

    @property
    def is_resolved(self) -> bool:
        return self.resolved_at is not None

    @property
    def commander(self) -> str | None:
        return self.roles.get(IC)


@dataclass(frozen=True)
class Member:
    """A Slack member as `users.info` shows them: their email (scope `users:read.email`; None
    when Slack shows none) and the name Slack shows (None for an id Slack does not know)."""

    user_id: str
    email: str | None
    name: str | None


@dataclass(frozen=True)
class PagerIncident:
    """A PagerDuty incident, as far as the bot needs to know it."""

    id: str
    number: int
    html_url: str
    status: str


@dataclass(frozen=True)
class OnCall:
    level: int
    name: str
    email: str | None


@dataclass(frozen=True)
class TimelineEntry:
    id: int
    incident_id: int
    seq: int
    kind: str
    actor: str
    text: str
    data: dict[str, Any]
    occurred_at: datetime
    content_hash: str
    prev_hash: str
    hash: str
    redacted_at: datetime | None = None  # set when its content was dropped (`timeline.redact`)
