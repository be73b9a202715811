"""The resolve's summary note on the PagerDuty incident (issue 21), through the real app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.core.ids import ApprovalAction
from bot.domain.pager import PagerKind
from bot.domain.pager_summary import MAX_NOTE
from bot.store import outbox as outbox_sql
from sandbox.kubernetes import FakeKubernetes
from sandbox.pagerduty import FakePagerDuty
from sandbox.slack_api import FakeSlack
from tests.conftest import PAGERDUTY_WEBHOOK_SECRET, Bot, pagerduty_settings, running_bot

NS, DEPLOY = "waqiti", "payment-service"
ONCALL = "oncall@waqiti.example"
HEAD = "Incident summary (icbot)"


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[tuple[FakeKubernetes, Path]]:
    async with FakeKubernetes(tick_interval=0.02) as fake:
        fake.add_deployment(NS, DEPLOY, "payments:1.4.2", replicas=3, history=["payments:1.4.1"])
        fake.set_image_behaviour("payments:1.4.2", crashloop=True)
        yield fake, fake.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)


def _notes(pagerduty: FakePagerDuty) -> list[str]:
    [pd_id] = pagerduty.incidents
    return [str(n["content"]) for n in pagerduty.notes.get(pd_id, [])]


def _summaries(pagerduty: FakePagerDuty) -> list[str]:
    return [n for n in _notes(pagerduty) if n.startswith(HEAD)]


def _click(bot: Bot, user: str, action: str, value: str) -> Any:
    uid = bot.user(user)
    return bot.requests.block_action(
        action_id=action, value=value, label=action, block_id="approval", user_id=uid,
        user_name=user, channel_id=bot.channel, channel_name="waqiti-incidents",
        response_url=bot.slack.new_response_url(channel=bot.channel, user=uid),
    )  # fmt: skip


async def test_resolve_posts_one_summary_note_with_root_cause_resolution_and_remediations(
    dsn: str, slack: FakeSlack, pagerduty: FakePagerDuty, kube: tuple[FakeKubernetes, Path]
) -> None:
    async with running_bot(
        dsn, slack, kubeconfig=kube[1], verify_timeout_seconds=10, **pagerduty_settings(pagerduty)
    ) as bot:
        await bot.command("declare Payments failing sev1")
        await bot.post_signed(bot.command_request(DEPLOY, command="/rollback"))
        [row] = await bot.fetch("SELECT id FROM pending_actions")
        await bot.post_signed(_click(bot, "dana", ApprovalAction.APPROVE, str(row["id"])))
        await bot.command("note Root cause: payments 1.4.2 shipped a broken ledger client")
        await bot.command("note Resolution: rolled back to 1.4.1, error rate normal")
        await bot.command("resolve bad deploy rolled back")
        [note] = _summaries(pagerduty)
        assert "INC-1 resolved after" in note
        assert "SEV1 (Critical): Payments failing" in note
        assert "Summary: bad deploy rolled back" in note
        assert "Root cause: payments 1.4.2 shipped a broken ledger client" in note
        assert "Resolution: rolled back to 1.4.1, error rate normal" in note
        remediations = note.split("Remediations: ", 1)[1]
        assert "payment-service" in remediations and "none run" not in remediations
        assert f"{bot.services.settings.page_base_url}/incidents/INC-1?t=" in note
        writes = [c.operation for c in pagerduty.calls if c.method != "GET"]
        assert writes[-2:] == ["createIncidentNote", "updateIncident"]  # summary, then resolve


async def test_without_a_recorded_root_cause_the_note_says_so(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    await pd_bot.command("declare Payments failing sev2")
    await pd_bot.command("status Identified: the ledger client times out")
    await pd_bot.command("resolve")
    [note] = _summaries(pagerduty)
    assert "Root cause: Identified: the ledger client times out" in note
    assert "Summary: none given at resolve" in note
    assert "Remediations: none run through icbot" in note


async def test_a_retried_summary_note_is_not_added_twice(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    """PagerDuty added the note but the replica died before it recorded that."""
    queue = pd_bot.services.pager_queue
    assert queue is not None
    await pd_bot.command("declare Payments failing sev2")
    await pd_bot.command("resolve rolled back", drain=False)
    await pd_bot.services.outbox.drain()
    async with pd_bot.services.pool.acquire() as conn:
        [item] = await outbox_sql.claim(
            conn, now=pd_bot.clock(), lease=queue.lease, limit=5, channel="pagerduty"
        )
    assert item.kind == PagerKind.NOTE and item.payload["text"].startswith(HEAD)
    [pd_id] = pagerduty.incidents
    await queue.pager.add_note(pd_id, item.payload["text"])  # lands; nothing is recorded
    async with pd_bot.services.pool.acquire() as conn:
        await conn.execute(
            "UPDATE outbox SET claimed_until = now() - interval '1 s' WHERE id = $1", item.id
        )
    await pd_bot.settle()
    assert len(_summaries(pagerduty)) == 1
    assert pagerduty.incidents[pd_id]["status"] == "resolved"


async def test_reopened_and_resolved_again_adds_a_note_for_the_second_resolution(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    pagerduty.subscribe(f"{pd_bot.base}/pagerduty/webhook", PAGERDUTY_WEBHOOK_SECRET)
    await pd_bot.command("declare Payments failing sev2")
    await pd_bot.command("resolve looked fixed")
    [pd_id] = pagerduty.incidents
    pagerduty.update_incident(pd_id, by=ONCALL, status="triggered")  # reopened in PagerDuty
    await pagerduty.drain_webhooks()
    await pd_bot.settle()
    await pd_bot.command("resolve fixed for real")
    await pagerduty.drain_webhooks()
    await pd_bot.settle()
    first, second = _summaries(pagerduty)
    assert "Summary: looked fixed" in first and "resolved after" in first
    assert "Summary: fixed for real" in second and "resolved again (resolution 2)" in second


async def test_an_incident_resolved_in_pagerduty_gets_the_summary_note_too(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    pagerduty.subscribe(f"{pd_bot.base}/pagerduty/webhook", PAGERDUTY_WEBHOOK_SECRET)
    await pd_bot.command("declare Payments failing sev2")
    await pd_bot.command("note Root cause: a bad config push")
    [pd_id] = pagerduty.incidents
    pagerduty.update_incident(pd_id, by=ONCALL, status="resolved")
    await pagerduty.drain_webhooks()
    await pd_bot.settle()
    [note] = _summaries(pagerduty)
    assert "Root cause: a bad config push" in note
    await pagerduty.drain_webhooks()
    await pd_bot.settle()
    assert len(_summaries(pagerduty)) == 1  # its own note, echoed back, changes nothing


async def test_a_summary_longer_than_pagerdutys_limit_is_cut_to_fit(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    await pd_bot.command("declare Payments failing sev2")
    for i in range(12):  # twelve root-cause notes of ~2,900 characters: ~35,000 in all
        await pd_bot.command(f"note Root cause: part {i} " + "x" * 2900, drain=False)
    await pd_bot.command("resolve rolled back")
    [note] = _summaries(pagerduty)
    assert len(note) <= MAX_NOTE
    assert "cut to fit PagerDuty's note limit" in note
    assert "/incidents/INC-1?t=" in note.splitlines()[-1]  # the link survives the cut
