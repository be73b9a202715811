"""Prometheus metrics. Every name starts with `icbot_`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

SLACK_REQUESTS = Counter(
    "icbot_slack_requests_total",
    "Requests received on /slack/events, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
ACK_SECONDS = Histogram(
    "icbot_slack_ack_seconds",
    "Time from receiving a Slack request to answering it.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0),
    registry=REGISTRY,
)
OUTBOX_POSTED = Counter(
    "icbot_outbox_posted_total",
    "Messages the outbox delivered to Slack.",
    ["kind"],
    registry=REGISTRY,
)
OUTBOX_RETRIES = Counter(
    "icbot_outbox_retries_total", "Outbox deliveries that will be tried again.", registry=REGISTRY
)
