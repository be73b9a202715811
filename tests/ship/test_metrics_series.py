"""`GET /metrics` through the real app: every `icbot_` series exists and moves with the work."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.core import metrics
from bot.core.ids import ApprovalAction
from commands.parsing import USAGE
from sandbox.actuator import FakeActuator
from sandbox.slack_api import FakeSlack
from tests.conftest import Bot, running_bot

SERVICE = "unified-alerting-service"

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(bot: Bot) -> tuple[Series, set[str]]:
    """Every sample (name, sorted labels) -> value, and every metric family name."""
    async with bot.http.get(f"{bot.base}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    samples: Series = {}
    families: set[str] = set()
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, families


def value(series: Series, name: str, **labels: str) -> float:
    return series.get((name, tuple(sorted(labels.items()))), 0.0)


def test_every_metric_is_named_icbot() -> None:
    names = {family.name for family in metrics.REGISTRY.collect()}
    assert names and all(name.startswith("icbot_") for name in names)


def test_every_outbox_channel_has_depth_and_age_series() -> None:
    """Each leased queue (Slack, PagerDuty, Jira, Grafana, email) has its outbox series from the
    start, so a stuck Jira or email queue shows on the dashboard before its first item."""
    import bot.runtime.services  # noqa: F401  (imports every queue the composition root runs)
    from bot.delivery.outbox import LeasedQueue

    def queues(cls: type[LeasedQueue]) -> set[type[LeasedQueue]]:
        found = set(cls.__subclasses__())
        return found.union(*(queues(sub) for sub in found))

    channels = {queue.channel for queue in queues(LeasedQueue)}
    assert {"slack", "pagerduty", "jira", "grafana", "email"} <= channels
    assert channels <= set(metrics.TARGETS)


def test_every_ic_subcommand_has_its_own_label() -> None:
    assert set(USAGE) <= metrics.IC_SUBCOMMANDS


@pytest.mark.parametrize(
    ("body", "label"),
    [
        ({"command": "/ic", "text": "declare Payments down sev1"}, "/ic declare"),
        ({"command": "/ic", "text": "STATUS Mitigating"}, "/ic status"),
        ({"command": "/ic", "text": "frobnicate"}, "/ic"),
        ({"command": "/ic", "text": ""}, "/ic"),
        ({"command": "/diagnose", "text": "saga"}, "/diagnose"),
        ({"command": "/deploy", "text": "x"}, "other"),
        ({"type": "block_actions", "actions": []}, "block_actions"),
        ({"type": "view_submission"}, "view_submission"),
        ({"type": "event_callback", "event": {"type": "app_mention"}}, "event:app_mention"),
        ({"type": "event_callback", "event": {"type": "x" * 500}}, "event:other"),
        ({"type": "made-up"}, "other"),
        ({}, "other"),
    ],
)
def test_command_labels_are_bounded(body: dict[str, object], label: str) -> None:
    assert metrics.command_label(body) == label


@pytest.fixture
async def actuator() -> AsyncIterator[FakeActuator]:
    async with FakeActuator(services=[SERVICE]) as fake:
        fake.set_breaker(SERVICE, "pagerduty", "OPEN")
        fake.set_breaker(SERVICE, "email", "OPEN")
        yield fake


@pytest.fixture
async def mbot(dsn: str, slack: FakeSlack, actuator: FakeActuator) -> AsyncIterator[Bot]:
    async with running_bot(dsn, slack, service_url_template=actuator.url_template) as bot:
        yield bot


async def _click(bot: Bot, action: str, pending_id: int, user: str) -> None:
    uid = bot.user(user)
    await bot.post_signed(
        bot.requests.block_action(
            action_id=action, value=str(pending_id), label="x", block_id="a", user_id=uid,
            user_name=user, channel_id=bot.channel, channel_name="waqiti-incidents",
            response_url=bot.slack.new_response_url(channel=bot.channel, user=uid),
        )
    )  # fmt: skip


async def test_metrics_series_exist_and_move_with_the_work(mbot: Bot) -> None:
    before, families = await scrape(mbot)
    for family in (
        "icbot_requests", "icbot_ack_seconds", "icbot_open_incidents", "icbot_prompts_posted",
        "icbot_prompts_overdue", "icbot_prompts_due", "icbot_outbox_depth",
        "icbot_outbox_oldest_seconds", "icbot_approvals", "icbot_remediation_runs",
        "icbot_remediation_seconds", "icbot_integration_errors", "icbot_secret_reloads",
        "icbot_inflight", "icbot_database_up",
    ):  # fmt: skip
        assert family in families, family
    assert value(before, "icbot_database_up") == 1
    assert value(before, "icbot_open_incidents", severity="sev1") == 0
    for target in ("slack", "pagerduty", "jira", "grafana", "email"):
        assert ("icbot_outbox_depth", (("target", target),)) in before, target
        assert ("icbot_outbox_oldest_seconds", (("target", target),)) in before, target

    # A declaration: counted by command, acked, an open SEV1, posts waiting in the outbox.
    await mbot.command("declare Ledger down sev1", drain=False)
    queued, _ = await scrape(mbot)
    declare = {"transport": "http", "command": "/ic declare"}
    assert value(queued, "icbot_requests_total", **declare, status="200") == (
        value(before, "icbot_requests_total", **declare, status="200") + 1
    )
    assert value(queued, "icbot_ack_seconds_count", **declare) == (
        value(before, "icbot_ack_seconds_count", **declare) + 1
    )
    assert value(queued, "icbot_open_incidents", severity="sev1") == 1
    assert value(queued, "icbot_outbox_depth", target="slack") >= 2  # the card and its entry
    await mbot.settle()
    posted, _ = await scrape(mbot)
    assert value(posted, "icbot_outbox_depth", target="slack") == 0
    assert value(posted, "icbot_outbox_oldest_seconds", target="slack") == 0

    # A status prompt falls due, is posted, and stays unanswered until a status update.
    await mbot.fetch("UPDATE incidents SET next_prompt_at = now() - interval '1 minute'")
    due, _ = await scrape(mbot)
    assert value(due, "icbot_prompts_due", severity="sev1") == 1
    await mbot.tick()
    prompted, _ = await scrape(mbot)
    assert value(prompted, "icbot_prompts_posted_total", severity="sev1", kind="prompt") == (
        value(before, "icbot_prompts_posted_total", severity="sev1", kind="prompt") + 1
    )
    assert value(prompted, "icbot_prompts_due", severity="sev1") == 0
    assert value(prompted, "icbot_prompts_overdue", severity="sev1") == 1
    await mbot.command("status Mitigating: failing over")
    answered, _ = await scrape(mbot)
    assert value(answered, "icbot_prompts_overdue", severity="sev1") == 0

    # Approvals by outcome, remediation runs by result.
    approvals = mbot.services.approvals
    alice = mbot.user("alice")
    close = await approvals.propose(
        ref=None, action="circuit_breaker", params={"service": SERVICE, "breaker": "pagerduty"},
        label="Close pagerduty", actor=alice,
    )  # fmt: skip
    await _click(mbot, ApprovalAction.APPROVE, close.id, "alice")  # the requester: refused
    await _click(mbot, ApprovalAction.APPROVE, close.id, "dana")  # approved, runs
    other = await approvals.propose(
        ref=None, action="circuit_breaker", params={"service": SERVICE, "breaker": "email"},
        label="Close email", actor=alice,
    )  # fmt: skip
    await _click(mbot, ApprovalAction.DENY, other.id, "erin")
    decided, _ = await scrape(mbot)
    for outcome in ("refused", "approved", "denied"):
        assert value(decided, "icbot_approvals_total", outcome=outcome) == (
            value(before, "icbot_approvals_total", outcome=outcome) + 1
        ), outcome
    run = {"action": "circuit_breaker", "result": "succeeded"}
    assert value(decided, "icbot_remediation_runs_total", **run) == (
        value(before, "icbot_remediation_runs_total", **run) + 1
    )
    assert value(decided, "icbot_remediation_seconds_count", action="circuit_breaker") >= 1

    # Slack failing: counted as an integration error, the post is retried and delivered.
    mbot.slack.fail("chat.postMessage", status=500)
    await mbot.command("note Slack hiccup")
    failed, _ = await scrape(mbot)
    assert value(failed, "icbot_integration_errors_total", service="slack") >= (
        value(before, "icbot_integration_errors_total", service="slack") + 1
    )
    assert value(failed, "icbot_outbox_depth", target="slack") == 0
    assert value(failed, "icbot_requests_total", transport="http", command="/ic note",
                 status="200") >= 1  # fmt: skip
