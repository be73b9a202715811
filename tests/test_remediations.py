"""Circuit-breaker and feature-flag remediations, approved through the real app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.core import wording
from bot.core.errors import UserError
from bot.core.ids import ApprovalAction
from bot.core.wording import Flavour
from sandbox.actuator import FakeActuator
from sandbox.slack_api import FakeSlack
from sandbox.vault_server import OpenBaoDevServer
from tests.conftest import Bot, running_bot

FLAG_TOKEN = "flag-admin-token-for-tests"


@pytest.fixture
async def actuator() -> AsyncIterator[FakeActuator]:
    async with FakeActuator(services=["unified-alerting-service"], flag_token=FLAG_TOKEN) as fake:
        fake.set_breaker("unified-alerting-service", "pagerduty", "OPEN")
        fake.set_flag("payments.enabled", True, description="Kill switch for payments")
        yield fake


@pytest.fixture
async def abot(dsn: str, slack: FakeSlack, actuator: FakeActuator) -> AsyncIterator[Bot]:
    async with running_bot(
        dsn, slack, service_url_template=actuator.url_template, feature_flag_token=FLAG_TOKEN
    ) as bot:
        await bot.command("declare Alerts not delivered sev2", user="alice")
        yield bot


async def _approve(bot: Bot, pending_id: int, *users: str) -> None:
    for user in users:
        uid = bot.user(user)
        await bot.post_signed(
            bot.requests.block_action(
                action_id=ApprovalAction.APPROVE, value=str(pending_id), label="Approve",
                block_id="a", user_id=uid, user_name=user, channel_id=bot.channel,
                channel_name="waqiti-incidents",
                response_url=bot.slack.new_response_url(channel=bot.channel, user=uid),
            )
        )  # fmt: skip


async def _propose(bot: Bot, action: str, params: dict[str, Any], label: str) -> int:
    pending = await bot.services.approvals.propose(
        ref=None, action=action, params=params, label=label, actor=bot.user("alice")
    )
    await bot.settle()
    return pending.id


async def test_closing_an_open_breaker_is_verified_against_the_actuator(
    abot: Bot, actuator: FakeActuator
) -> None:
    pending = await _propose(
        abot, "circuit_breaker",
        {"service": "unified-alerting-service", "breaker": "pagerduty"}, "Reset pagerduty breaker",
    )  # fmt: skip
    assert "OPEN → CLOSED" in str(abot.thread(1)[-1].blocks)
    assert actuator.breaker("unified-alerting-service", "pagerduty").state == "OPEN"
    await _approve(abot, pending, "dana")
    assert actuator.breaker("unified-alerting-service", "pagerduty").state == "CLOSED"
    row = (await abot.fetch("SELECT status, result FROM pending_actions"))[0]
    assert row["status"] == "succeeded" and "now reports CLOSED" in row["result"]["verification"]


async def test_an_unknown_breaker_or_a_half_open_move_is_refused_before_anyone_approves(
    abot: Bot,
) -> None:
    with pytest.raises(UserError, match="no circuit breaker `slakc`"):
        await _propose(
            abot,
            "circuit_breaker",
            {"service": "unified-alerting-service", "breaker": "slakc"},
            "x",
        )
    with pytest.raises(UserError, match="cannot move a breaker to HALF_OPEN"):
        await _propose(
            abot, "circuit_breaker",
            {"service": "unified-alerting-service", "breaker": "pagerduty", "to": "HALF_OPEN"}, "x",
        )  # fmt: skip
    assert await abot.fetch("SELECT * FROM pending_actions") == []


async def test_an_unknown_breaker_or_flag_is_named_as_a_piece_not_as_slack_markup(
    abot: Bot,
) -> None:
    service = "unified-alerting-service"
    for action, params, plain in [
        ("circuit_breaker", {"service": service, "breaker": "slakc"},
         f"{service} has no circuit breaker slakc (it has: pagerduty)."),
        ("feature_flag", {"flag": "payments.enabld", "value": False},
         "There is no feature flag payments.enabld."),
    ]:  # fmt: skip
        with pytest.raises(UserError) as refused:
            await _propose(abot, action, params, "x")
        assert any(isinstance(piece, wording.Code) for piece in refused.value.said)
        assert refused.value.text(Flavour.PLAIN) == plain
    assert await abot.fetch("SELECT * FROM pending_actions") == []


async def test_disabling_payments_needs_two_distinct_approvers(
    abot: Bot, actuator: FakeActuator
) -> None:
    pending = await _propose(
        abot, "feature_flag", {"flag": "payments.enabled", "value": False}, "Disable payments"
    )
    assert "`payments.enabled`: true → false" in str(abot.thread(1)[-1].blocks)
    await _approve(abot, pending, "dana")
    assert actuator.flag("payments.enabled") is True  # one approval is not enough
    await _approve(abot, pending, "erin")
    assert actuator.flag("payments.enabled") is False
    [change] = actuator.flag_changes
    row = (await abot.fetch("SELECT status, approvals, result FROM pending_actions"))[0]
    assert row["status"] == "succeeded" and len(row["approvals"]) == 2
    assert "now reports false" in row["result"]["verification"]
    assert FLAG_TOKEN not in str(await abot.fetch("SELECT text, data FROM timeline"))
    assert change is not None


async def test_enabling_a_flag_needs_one_approver(abot: Bot, actuator: FakeActuator) -> None:
    actuator.set_flag("agent_safe_mode", 0)
    pending = await _propose(
        abot, "feature_flag", {"flag": "agent_safe_mode", "value": 1}, "Safe mode"
    )
    await _approve(abot, pending, "dana")
    assert actuator.flag("agent_safe_mode") == 1


async def test_flags_without_an_admin_token_say_so(
    dsn: str, slack: FakeSlack, actuator: FakeActuator
) -> None:
    async with running_bot(dsn, slack, service_url_template=actuator.url_template) as bot:
        await bot.command("declare Alerts not delivered sev2", user="alice")
        with pytest.raises(UserError, match="No feature-flag admin token"):
            await _propose(bot, "feature_flag", {"flag": "payments.enabled", "value": False}, "x")


@pytest.fixture(scope="module")
async def vault() -> AsyncIterator[OpenBaoDevServer]:
    async with OpenBaoDevServer() as server:
        await server.put_secret(
            "alerting/pagerduty", {"integration_key": "old-key-1", "region": "us"}
        )
        await server.put_secret("icbot", {"feature_flag_token": FLAG_TOKEN})
        yield server


async def test_rotating_a_secret_writes_a_new_version_keeps_the_old_and_never_shows_it(
    dsn: str, slack: FakeSlack, actuator: FakeActuator, vault: OpenBaoDevServer
) -> None:
    async with running_bot(
        dsn, slack, vault_addr=vault.addr, vault_token=vault.root_token,
        service_url_template=actuator.url_template,
    ) as bot:  # fmt: skip
        await bot.command("declare Alerts not delivered sev2", user="alice")
        await bot.command(f"assign <@{bot.user('sam')}|sam> security-lead", user="alice")
        pending = await _propose(
            bot,
            "rotate_secret",
            {"path": "alerting/pagerduty", "key": "integration_key"},
            "Rotate key",
        )
        await _approve(bot, pending, "dana")  # not an approver for secrets
        assert "Only the incident commander or the security lead" in bot.replies_to("dana")[-1]
        await _approve(bot, pending, "sam")
        row = (await bot.fetch("SELECT status, result FROM pending_actions"))[0]
        assert row["status"] == "succeeded"
        assert "version 1 is kept for rollback" in row["result"]["verification"]
        latest = await vault.request("GET", "secret/data/alerting/pagerduty")
        assert latest["data"]["data"]["integration_key"] != "old-key-1"
        assert latest["data"]["data"]["region"] == "us"
        everything = str(await bot.fetch("SELECT text, data FROM timeline")) + str(slack.calls)
        assert "old-key-1" not in everything
        assert latest["data"]["data"]["integration_key"] not in everything


async def test_the_flag_admin_token_can_come_from_vault(
    dsn: str, slack: FakeSlack, actuator: FakeActuator, vault: OpenBaoDevServer
) -> None:
    async with running_bot(
        dsn, slack, vault_addr=vault.addr, vault_token=vault.root_token,
        service_url_template=actuator.url_template,
    ) as bot:  # fmt: skip
        await bot.command("declare Alerts not delivered sev2", user="alice")
        actuator.set_flag("agent_safe_mode", 0)
        pending = await _propose(
            bot, "feature_flag", {"flag": "agent_safe_mode", "value": 1}, "Safe mode"
        )
        await _approve(bot, pending, "dana")
        assert actuator.flag("agent_safe_mode") == 1
