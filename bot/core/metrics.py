"""Prometheus metrics. Every name starts with `icbot_`.

Two kinds of series:

* **Counters and histograms** are counted in this process where the thing happens (a request
  acked, a prompt posted, an approval decided, a remediation finished, an integration failing).
  Each replica counts its own; sum them across replicas (`sum by (command) (rate(...))`).
* **Gauges of shared state** (open incidents, overdue prompts, outbox depth) are read from
  PostgreSQL when `/metrics` is scraped (:func:`refresh_from_database`, a few `count(*)`s with
  a 2-second bound). Every replica reports the same database-wide value: aggregate them with
  `max`, not `sum`. If the database does not answer, the gauges keep their last values and
  `icbot_database_up` is 0.

Label values are bounded: commands are the known slash commands (and `/ic` subcommands),
interaction types and event types; anything else is `other`.

::

    icbot_requests_total{transport,command,status}   Slack requests handled (HTTP or Socket Mode)
    icbot_ack_seconds{transport,command}             receipt -> ack answered
    icbot_open_incidents{severity}                   unresolved incidents            (database)
    icbot_prompts_posted_total{severity,kind}        status prompts posted
                                                     (kind: prompt|reminder|escalation)
    icbot_prompts_overdue{severity}                  open incidents whose status update is overdue
                                                     (a prompt is unanswered)        (database)
    icbot_prompts_due{severity}                      prompts due but not yet posted  (database)
    icbot_outbox_depth{target}                       undelivered posts (slack|pagerduty|jira|
                                                     grafana|email)              (database)
    icbot_outbox_oldest_seconds{target}              age of the oldest undelivered post (database)
    icbot_approvals_total{outcome}                   approval clicks and expiries
                                                     (approved|partial|denied|refused|expired)
    icbot_remediation_runs_total{action,result}      approved remediations run (succeeded|failed)
    icbot_remediation_seconds{action}                how long a run took, verification included
    icbot_integration_errors_total{service}          failures reported by an outside system
    icbot_secret_reloads_total{result}               Vault re-reads
                                                     (unchanged|rotated|refused|failed)
    icbot_inflight                                   work still running after its ack
    icbot_database_up                                1 if the last scrape could read the database
    icbot_kafka_consumer_lag{topic,partition}        alerts this replica's intake has not read yet,
                                                     per partition it owns (sum over replicas)
    icbot_alerts_total{outcome}                      alert records read from Kafka (declared|
                                                     attached|repeat|resolved|ignored|duplicate|
                                                     dead_letter)
    icbot_alert_batch_seconds                        time to store one batch of alerts
    icbot_incident_events_published_total            timeline entries the events topic acked
    icbot_incident_events_backlog                    entries not yet published (database-wide)
    icbot_redactions_total{kind}                     card numbers and secrets the guard kept out
                                                     of the record (bot/core/guard.py FindingKind)

The alert and incident-events series are defined next to their work (`bot/domain/alerts.py`,
`bot/delivery/incident_events.py`) on this registry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

SLASH_COMMANDS = ("/ic", "/diagnose", "/rollback")
# `/ic` subcommands that get their own label value; tests/ship checks that every subcommand of
# commands/parsing.USAGE is here.
IC_SUBCOMMANDS = frozenset(
    {
        "declare", "assign", "handover", "sev", "status", "note", "resolve", "timeline",
        "oncall", "page", "list", "help", "postmortem", "action", "export",
        "statuspage",  # issue 21
    }
)  # fmt: skip
INTERACTION_TYPES = frozenset(
    {"block_actions", "view_submission", "view_closed", "shortcut", "message_action"}
)
EVENT_TYPES = frozenset({"app_mention", "message", "reaction_added", "member_joined_channel"})
# Every outbox channel (a `LeasedQueue.channel`); tests/ship checks that none is missing.
TARGETS = ("slack", "pagerduty", "jira", "grafana", "email")
APPROVAL_OUTCOMES = ("approved", "partial", "denied", "refused", "expired")
TRANSPORTS = ("http", "socket")
DB_TIMEOUT = 2.0

REQUESTS = Counter(
    "icbot_requests_total",
    "Slack requests (slash commands, interactions, events) handled, by command and status.",
    ["transport", "command", "status"],
    registry=REGISTRY,
)
ACK_LATENCY = Histogram(
    "icbot_ack_seconds",
    "Time from receiving a Slack request to answering (acking) it, by command.",
    ["transport", "command"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0),
    registry=REGISTRY,
)
OPEN_INCIDENTS = Gauge(
    "icbot_open_incidents",
    "Unresolved incidents, by severity (read from PostgreSQL at scrape time).",
    ["severity"],
    registry=REGISTRY,
)
PROMPTS_POSTED = Counter(
    "icbot_prompts_posted_total",
    "Status prompts posted in incident threads, by severity and kind.",
    ["severity", "kind"],
    registry=REGISTRY,
)
PROMPTS_OVERDUE = Gauge(
    "icbot_prompts_overdue",
    "Open incidents with an unanswered status prompt (a status update is overdue).",
    ["severity"],
    registry=REGISTRY,
)
PROMPTS_DUE = Gauge(
    "icbot_prompts_due",
    "Open incidents whose next status prompt is due but not yet posted.",
    ["severity"],
    registry=REGISTRY,
)
OUTBOX_DEPTH = Gauge(
    "icbot_outbox_depth",
    "Posts not yet delivered, by target (slack, pagerduty, jira, grafana, email).",
    ["target"],
    registry=REGISTRY,
)
OUTBOX_OLDEST = Gauge(
    "icbot_outbox_oldest_seconds",
    "Age of the oldest undelivered post, by target (0 when none).",
    ["target"],
    registry=REGISTRY,
)
APPROVALS = Counter(
    "icbot_approvals_total",
    "Decisions on approval requests, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
REMEDIATION_RUNS = Counter(
    "icbot_remediation_runs_total",
    "Approved remediations run, by action and result.",
    ["action", "result"],
    registry=REGISTRY,
)
REMEDIATION_SECONDS = Histogram(
    "icbot_remediation_seconds",
    "How long an approved remediation ran, verification included.",
    ["action"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
INTEGRATION_ERRORS = Counter(
    "icbot_integration_errors_total",
    "Failures reported by an outside system (slack, pagerduty, kubernetes, ...).",
    ["service"],
    registry=REGISTRY,
)
SECRET_RELOADS = Counter(
    "icbot_secret_reloads_total",
    "Periodic re-reads of the bot's secrets from Vault, by result.",
    ["result"],
    registry=REGISTRY,
)
INFLIGHT = Gauge(
    "icbot_inflight",
    "Work still running after its ack (commands, clicks, remediations).",
    registry=REGISTRY,
)
REDACTIONS = Counter(
    "icbot_redactions_total",
    "Card numbers and secrets redacted before they entered the record, by kind.",
    ["kind"],
    registry=REGISTRY,
)
DATABASE_UP = Gauge(
    "icbot_database_up",
    "1 if the last /metrics scrape could read PostgreSQL, else 0.",
    registry=REGISTRY,
)

OUTBOX_POSTED = Counter(
    "icbot_outbox_posted_total",
    "Outbox items delivered, by target (slack, pagerduty, jira, grafana, email) and kind.",
    ["target", "kind"],
    registry=REGISTRY,
)
OUTBOX_RETRIES = Counter(
    "icbot_outbox_retries_total",
    "Outbox deliveries that failed and will be tried again, by target.",
    ["target"],
    registry=REGISTRY,
)

# Series that exist (at 0) from the start, so dashboards and alerts see them before the first
# event: a rate over a series that appears late misses its first increment.
for _target in TARGETS:
    OUTBOX_DEPTH.labels(_target)
    OUTBOX_OLDEST.labels(_target)
for _outcome in APPROVAL_OUTCOMES:
    APPROVALS.labels(_outcome)
for _service in ("slack", "pagerduty", "kubernetes", "actuator", "kafka", "vault"):
    INTEGRATION_ERRORS.labels(_service)


def command_label(body: Mapping[str, Any] | None) -> str:
    """A bounded label for a request body as Bolt parsed it (slash command, payload or event).

    `/ic declare` (known subcommands), `/diagnose`, `block_actions`, `event:app_mention`, ...;
    anything unexpected is `other`, so a caller cannot mint label values.
    """
    if not body:
        return "other"
    command = body.get("command")
    if isinstance(command, str):
        if command not in SLASH_COMMANDS:
            return "other"
        if command == "/ic":
            text = body.get("text")
            words = text.split(maxsplit=1) if isinstance(text, str) else []
            sub = words[0].lower() if words else ""
            return f"/ic {sub}" if sub in IC_SUBCOMMANDS else "/ic"
        return command
    kind = body.get("type")
    if kind == "event_callback":
        event = body.get("event")
        event_type = event.get("type") if isinstance(event, dict) else None
        return f"event:{event_type}" if event_type in EVENT_TYPES else "event:other"
    if kind in INTERACTION_TYPES:
        return str(kind)
    return "other"


def observe_request(*, transport: str, command: str, status: int | str, seconds: float) -> None:
    """Count one Slack request and its time to ack."""
    transport = transport if transport in TRANSPORTS else "other"
    REQUESTS.labels(transport, command, str(status)).inc()
    ACK_LATENCY.labels(transport, command).observe(seconds)


def prompt_posted(severity: str, kind: str) -> None:
    PROMPTS_POSTED.labels(severity, kind).inc()


def approval(outcome: str, count: int = 1) -> None:
    if outcome not in APPROVAL_OUTCOMES:
        raise ValueError(f"unknown approval outcome {outcome!r}")
    if count:
        APPROVALS.labels(outcome).inc(count)


def remediation_run(action: str, *, ok: bool, seconds: float) -> None:
    REMEDIATION_RUNS.labels(action, "succeeded" if ok else "failed").inc()
    REMEDIATION_SECONDS.labels(action).observe(seconds)


def integration_error(service: str) -> None:
    INTEGRATION_ERRORS.labels(service).inc()


async def refresh_from_database(
    read: Callable[[], Awaitable[Mapping[tuple[str, str], float]]],
    *,
    severities: Iterable[str],
    inflight: int | None = None,
) -> bool:
    """Set the shared-state gauges from PostgreSQL (`read`: `bot.store.gauges.shared_state`,
    {(series, label): value}); False (and `icbot_database_up` 0) on failure.

    Every severity of the policy and every target is set, to 0 when absent, so a series drops
    back to 0 instead of keeping its last non-zero value. `inflight` (this process's count of
    work still running after its ack) is set as given.
    """
    if inflight is not None:
        INFLIGHT.set(inflight)
    try:
        async with asyncio.timeout(DB_TIMEOUT):
            found = await read()
    except Exception:
        DATABASE_UP.set(0)
        return False
    levels = sorted({*severities, *(label for s, label in found if s == "open")})
    for severity in levels:
        OPEN_INCIDENTS.labels(severity).set(found.get(("open", severity), 0.0))
        PROMPTS_OVERDUE.labels(severity).set(found.get(("overdue", severity), 0.0))
        PROMPTS_DUE.labels(severity).set(found.get(("due", severity), 0.0))
    for target in sorted({*TARGETS, *(label for s, label in found if s == "depth")}):
        OUTBOX_DEPTH.labels(target).set(found.get(("depth", target), 0.0))
        OUTBOX_OLDEST.labels(target).set(found.get(("oldest", target), 0.0))
    DATABASE_UP.set(1)
    return True
