"""Exactly once per Slack request: the same signed body delivered again is acknowledged and
does nothing, whether it comes after the first finished or while it still runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.core.ids import IcAction, PromptAction
from bot.domain import once
from sandbox.kubernetes import FakeKubernetes
from sandbox.slack_api import FakeSlack
from sandbox.slack_requests import SignedRequest
from tests.conftest import Bot, running_bot

RETRY = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}


async def _twice(bot: Bot, request: SignedRequest, *, together: bool = False) -> list[int]:
    """Deliver `request` twice: one after the other, or both at once."""
    if together:
        results = await asyncio.gather(bot.post(request), bot.post(request, headers=RETRY))
    else:
        results = [await bot.post_signed(request), await bot.post(request, headers=RETRY)]
    await bot.settle()
    return [status for status, _ in results]


async def _notes(bot: Bot) -> list[str]:
    rows = await bot.fetch("SELECT text FROM timeline WHERE kind = 'note' ORDER BY seq")
    return [r["text"] for r in rows]


@pytest.mark.parametrize("together", [False, True], ids=["after", "while-running"])
async def test_a_repeated_note_makes_one_entry_and_one_reply(bot: Bot, together: bool) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    replies = len(bot.replies_to("erin"))
    request = bot.command_request("note pool is exhausted", user="erin")
    assert await _twice(bot, request, together=together) == [200, 200]
    assert len(await _notes(bot)) == 1
    assert len(bot.replies_to("erin")) == replies + 1
    assert sum("pool is exhausted" in t for t in bot.thread_texts(1)) == 1


@pytest.mark.parametrize("together", [False, True], ids=["after", "while-running"])
async def test_a_repeated_declare_opens_one_incident(bot: Bot, together: bool) -> None:
    request = bot.command_request("declare Checkout down sev1", user="dana")
    assert await _twice(bot, request, together=together) == [200, 200]
    rows = await bot.fetch("SELECT id FROM incidents")
    assert [r["id"] for r in rows] == [1]
    assert len(bot.slack.roots("waqiti-incidents")) == 1
    assert len(bot.replies_to("dana")) == 1
    # Nothing was burnt either: the next incident is INC-2.
    await bot.command("declare Search slow sev3", user="dana")
    assert [r["id"] for r in await bot.fetch("SELECT id FROM incidents ORDER BY id")] == [1, 2]


async def test_a_repeated_read_only_command_is_answered_once(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    request = bot.command_request("timeline", user="erin")
    await _twice(bot, request, together=True)
    assert len(bot.replies_to("erin")) == 1


async def test_a_repeated_command_that_failed_for_the_user_is_answered_once(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    request = bot.command_request("assign INC-7 <@U0NOBODY> scribe", user="erin")
    await _twice(bot, request)
    assert len(bot.replies_to("erin")) == 1
    assert "INC-7 does not exist" in bot.last_reply("erin")


async def test_each_new_request_is_processed_even_with_the_same_text(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    await bot.command("note same words", user="erin")
    await bot.command("note same words", user="erin")
    assert len(await _notes(bot)) == 2


async def _fail_the_next_timeline_insert(bot: Bot) -> None:
    """A database failure in the middle of the work: a trigger refusing the next entry."""
    async with bot.services.pool.acquire() as conn:
        await conn.execute(
            """CREATE TABLE fail_once (armed boolean);
               INSERT INTO fail_once VALUES (true);
               CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN
                 IF (SELECT armed FROM fail_once) THEN
                   RAISE EXCEPTION 'simulated database failure';
                 END IF;
                 RETURN NEW;
               END $$;
               CREATE TRIGGER fail_once BEFORE INSERT ON timeline
                 FOR EACH ROW EXECUTE FUNCTION fail_once();"""
        )


async def _disarm(bot: Bot) -> None:
    async with bot.services.pool.acquire() as conn:
        await conn.execute("UPDATE fail_once SET armed = false")


async def test_a_request_whose_work_failed_is_done_when_slack_delivers_it_again(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    await _fail_the_next_timeline_insert(bot)
    request = bot.command_request("note failover started", user="erin")
    await bot.post_signed(request)
    assert "went wrong" in bot.last_reply("erin")
    assert await _notes(bot) == []
    await _disarm(bot)
    await bot.post_signed(request)  # Slack's retry of the failed one
    assert len(await _notes(bot)) == 1
    assert bot.last_reply("erin").startswith("Noted in *INC-1*")


async def test_a_repeated_status_form_posts_one_update(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    bot.clock.advance(minutes=31)
    await bot.tick()
    [button] = [
        e
        for b in bot.thread(1)[-1].blocks or []
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == PromptAction.POST_UPDATE
    ]
    dana = bot.user("dana")
    click = bot.requests.block_action(
        action_id=button["action_id"], value=button["value"], label="Post update",
        block_id=button.get("block_id", "b"), user_id=dana, user_name="dana",
        channel_id=bot.channel, channel_name="waqiti-incidents",
        response_url=bot.slack.new_response_url(channel=bot.channel, user=dana),
    )  # fmt: skip
    await _twice(bot, click)
    [view] = bot.slack.opened_views  # one form, not two
    submit = bot.requests.view_submission(
        view, {"status": "Mitigating: rolled back", "impact": None, "next": None},
        user_id=dana, user_name="dana",
    )  # fmt: skip
    await _twice(bot, submit, together=True)
    # The same form submitted again (a double click: another trigger_id, the same view hash).
    again = bot.requests.view_submission(
        view, {"status": "Mitigating: rolled back", "impact": None, "next": None},
        user_id=dana, user_name="dana",
    )  # fmt: skip
    assert again.body != submit.body
    await bot.post_signed(again)
    rows = await bot.fetch("SELECT text FROM timeline WHERE kind = 'status_update'")
    assert len(rows) == 1


async def test_a_repeated_incident_choice_runs_the_command_once(bot: Bot) -> None:
    await bot.command("declare First sev2", user="dana")
    await bot.command("declare Second sev3", user="dana")
    await bot.command("note checking both", user="dana")
    question = bot.slack.ephemerals[-1]
    [second] = [
        e for b in question.blocks if b["type"] == "actions" for e in b["elements"]
        if e["action_id"].startswith(IcAction.PICK_INCIDENT) and "INC-2" in e["text"]["text"]
    ]  # fmt: skip
    dana = bot.user("dana")
    click = bot.requests.block_action(
        action_id=second["action_id"], value=second["value"], label=second["text"]["text"],
        block_id="b1", user_id=dana, user_name="dana", channel_id=bot.channel,
        channel_name="waqiti-incidents",
        response_url=bot.slack.new_response_url(channel=bot.channel, user=dana),
    )  # fmt: skip
    await _twice(bot, click, together=True)
    assert len(await _notes(bot)) == 1


async def test_claims_older_than_the_window_are_pruned(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    [before] = await bot.fetch("SELECT count(*) AS n FROM handled_requests")
    assert before["n"] >= 1
    assert await once.prune(bot.services.pool, now=bot.clock()) == 0
    bot.clock.advance(minutes=31)
    await bot.tick()  # the timer loop prunes as one of its chores
    assert await bot.fetch("SELECT key FROM handled_requests") == []


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[Path]:
    async with FakeKubernetes(tick_interval=0.02) as fake:
        fake.add_deployment(
            "waqiti", "payment-service", "payments:1.4.2", replicas=3,
            history=["payments:1.4.0", "payments:1.4.1"],
        )  # fmt: skip
        yield fake.write_kubeconfig(tmp_path / "kubeconfig", namespace="waqiti")


@pytest.fixture
async def rbot(dsn: str, slack: FakeSlack, kube: Path) -> AsyncIterator[Bot]:
    async with running_bot(dsn, slack, kubeconfig=kube) as bot:
        yield bot


@pytest.mark.parametrize("together", [False, True], ids=["after", "while-running"])
async def test_a_repeated_rollback_asks_for_approval_once(rbot: Bot, together: bool) -> None:
    await rbot.command("declare Payments failing sev1", user="alice")
    request = rbot.command_request("payment-service", command="/rollback", user="alice")
    await _twice(rbot, request, together=together)
    rows: list[Any] = await rbot.fetch("SELECT id FROM pending_actions")
    assert len(rows) == 1
    assert len(await rbot.fetch("SELECT 1 FROM timeline WHERE kind = 'approval_requested'")) == 1


async def test_a_repeated_shortcut_opens_one_form_and_its_submission_marks_once(bot: Bot) -> None:
    from tests.test_shortcut import WAR_ROOM, shortcut

    bot.slack.deliver_events_to(bot.requests, bot.post_signed)
    await bot.command("declare Payments failing sev2", user="dana")
    msg = await bot.slack.user_says(WAR_ROOM, "erin", "502s", thread_ts=bot.card(1).ts)
    await _twice(bot, shortcut(bot, msg, by="dana"), together=True)
    [view] = bot.slack.opened_views
    submit = bot.requests.view_submission(
        view, {"incident": "1"}, user_id=bot.user("dana"), user_name="dana"
    )
    await _twice(bot, submit, together=True)
    assert len(await bot.fetch("SELECT 1 FROM timeline WHERE kind = 'pinned'")) == 1
    assert len(bot.replies_to("dana")) == 2  # declared; added as a key event (once)


async def test_a_busy_database_pool_never_holds_up_the_ack(bot: Bot) -> None:
    """The repeat check before the ack is only a shortcut: with every pooled connection busy
    (a burst of commands doing their work), a command is still acknowledged, and its work,
    which claims the request itself, runs once the pool frees up."""
    await bot.command("declare Payments failing sev2")
    pool = bot.services.pool
    held = [await pool.acquire() for _ in range(pool.get_max_size())]
    try:
        async with asyncio.timeout(10):  # without the bound, the check waits for a connection
            request = bot.command_request("note acked while busy", user="erin")
            status, _ = await bot.post(request, headers=RETRY)  # a retry: the check is made
        assert status == 200
    finally:
        for conn in held:
            await pool.release(conn)
    await bot.settle()
    notes = await _notes(bot)
    assert len(notes) == 1 and notes[0].endswith(": acked while busy")
