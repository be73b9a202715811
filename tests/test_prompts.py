"""Status prompts, escalation and post-incident reminders, driven by a controlled clock."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.core.ids import ChecklistAction, PromptAction
from bot.domain.prompts import Prompter
from bot.domain.uow import UnitOfWork
from bot.store import db
from tests.conftest import Bot


async def _prompts(bot: Bot) -> list[str]:
    rows = await bot.fetch("SELECT text FROM timeline WHERE kind = 'status_prompt' ORDER BY seq")
    return [r["text"] for r in rows]


def _button(message: Any, action_id: str) -> dict[str, Any]:
    for block in message.blocks:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return {**element, "block_id": block.get("block_id", "")}
    raise AssertionError(f"no {action_id} in {message.text!r}")


async def test_prompt_is_posted_when_the_cadence_passes_without_an_update(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    bot.clock.advance(minutes=29)
    await bot.tick()
    assert await _prompts(bot) == []
    bot.clock.advance(minutes=1, seconds=1)
    await bot.tick()
    [prompt] = await _prompts(bot)
    dana = bot.slack.user_id("dana")
    assert prompt.startswith(f"<@{dana}>") and "INC-1" in prompt
    reply = bot.thread(1)[-1]
    assert _button(reply, PromptAction.POST_UPDATE)["text"]["text"] == "Post update"


async def test_status_update_resets_the_prompt_timer(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2")
    bot.clock.advance(minutes=20)
    await bot.command("status Investigating the gateway")
    bot.clock.advance(minutes=20)
    await bot.tick()
    assert await _prompts(bot) == []  # 40 min after declaring, 20 after the update
    bot.clock.advance(minutes=11)
    await bot.tick()
    assert len(await _prompts(bot)) == 1


async def test_unanswered_prompts_remind_then_escalate_to_the_policy_contacts(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2")
    bot.clock.advance(minutes=30, seconds=1)
    await bot.tick()
    bot.clock.advance(minutes=14)
    await bot.tick()
    assert len(await _prompts(bot)) == 1  # the reminder waits for half the cadence
    bot.clock.advance(minutes=1)
    await bot.tick()
    prompts = await _prompts(bot)
    assert len(prompts) == 2 and prompts[1].startswith("Reminder")
    bot.clock.advance(minutes=15)
    await bot.tick()
    escalations = await bot.fetch("SELECT text FROM timeline WHERE kind = 'prompt_escalated'")
    assert len(escalations) == 1
    assert (
        "@eng-manager" in escalations[0]["text"] and "after two prompts" in escalations[0]["text"]
    )
    bot.clock.advance(minutes=29)
    await bot.tick()
    assert len(await _prompts(bot)) == 2
    bot.clock.advance(minutes=1)
    await bot.tick()
    assert len(await _prompts(bot)) == 3  # then every cadence until someone answers


async def test_a_bot_down_for_an_hour_posts_one_catch_up_prompt_not_four(bot: Bot) -> None:
    await bot.command("declare Payments failing sev1")
    bot.clock.advance(minutes=61)
    while await bot.services.prompter.tick():
        pass
    await bot.settle()
    assert len(await _prompts(bot)) == 1


async def test_severity_change_replans_the_next_prompt_at_once(bot: Bot) -> None:
    await bot.command("declare Payments failing sev3")
    bot.clock.advance(minutes=20)
    await bot.tick()
    assert await _prompts(bot) == []  # SEV3: hourly
    await bot.command("sev sev1")  # SEV1 wants one every 15 minutes: 20 have passed
    await bot.tick()
    assert len(await _prompts(bot)) == 1
    await bot.command("sev sev4")  # SEV4: no prompts at all
    bot.clock.advance(hours=5)
    await bot.tick()
    assert len(await _prompts(bot)) == 1


async def test_sev4_gets_no_status_prompts(bot: Bot) -> None:
    await bot.command("declare Dashboard typo sev4")
    bot.clock.advance(hours=10)
    await bot.tick()
    assert await _prompts(bot) == []


async def test_sev1_policy_escalates_at_once_and_only_once(bot: Bot) -> None:
    await bot.command("declare Everything down sev1")
    await bot.tick()
    await bot.tick()
    rows = await bot.fetch("SELECT text FROM timeline WHERE kind = 'escalated'")
    assert len(rows) == 1
    assert "@eng-manager" in rows[0]["text"] and "@cto" in rows[0]["text"]


async def test_sev3_policy_escalates_after_two_hours(bot: Bot) -> None:
    await bot.command("declare Slow queries sev3")
    await bot.command("status Investigating")
    bot.clock.advance(minutes=119)
    await bot.command("status still investigating")
    await bot.tick()
    assert await bot.fetch("SELECT * FROM timeline WHERE kind = 'escalated'") == []
    bot.clock.advance(minutes=2)
    await bot.tick()
    assert len(await bot.fetch("SELECT * FROM timeline WHERE kind = 'escalated'")) == 1


async def test_resolving_stops_prompts_and_schedules_the_checklist(bot: Bot) -> None:
    await bot.command("declare Payments failing sev1")
    await bot.command("resolve")
    bot.clock.advance(minutes=59)
    await bot.tick()
    assert await _prompts(bot) == []
    assert await bot.fetch("SELECT * FROM timeline WHERE kind = 'checklist'") == []
    bot.clock.advance(minutes=2)
    await bot.tick()
    checklists = await bot.fetch("SELECT text, data FROM timeline WHERE kind = 'checklist'")
    assert len(checklists) == 1 and "Immediate" in checklists[0]["text"]
    bot.clock.advance(hours=48)
    await bot.tick()
    stages = [
        r["data"]["stage"]
        for r in await bot.fetch("SELECT data FROM timeline WHERE kind = 'checklist' ORDER BY seq")
    ]
    assert stages == ["immediate", "short-term", "long-term"]
    assert await _prompts(bot) == []


async def test_checklist_ticks_are_recorded_once(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2")
    await bot.command("resolve")
    bot.clock.advance(hours=1, minutes=1)
    await bot.tick()
    message = bot.thread(1)[-1]
    checkboxes = _button(message, ChecklistAction.TICK)
    options = checkboxes["options"]
    assert options[0]["text"]["text"] == "Incident resolved and verified"
    dana = bot.user("dana")

    def tick(selected: list[dict[str, Any]]) -> Any:
        return bot.requests.block_action(
            action_id=ChecklistAction.TICK, value="", label="", block_id=checkboxes["block_id"],
            user_id=dana, user_name="dana", channel_id=bot.channel, channel_name="waqiti-incidents",
            response_url=bot.slack.new_response_url(channel=bot.channel, user=dana),
            selected_options=selected,
        )  # fmt: skip

    await bot.post_signed(tick([options[0], options[3]]))
    await bot.post_signed(tick([options[0], options[3]]))  # Slack retry / double click
    await bot.post_signed(tick([options[3]]))
    rows = await bot.fetch(
        "SELECT text, data FROM timeline WHERE kind = 'checklist_ticked' ORDER BY seq"
    )
    assert len(rows) == 2
    assert (
        "ticked “Incident resolved and verified”" in rows[0]["text"]
        and "2/4 done" in rows[0]["text"]
    )
    assert "unticked “Incident resolved and verified”" in rows[1]["text"]
    ticked = await bot.fetch("SELECT ticked FROM reminders WHERE stage = 'immediate'")
    assert ticked[0]["ticked"] == [3]


async def test_post_update_button_opens_the_modal_and_its_submission_resets_the_timer(
    bot: Bot,
) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    bot.clock.advance(minutes=31)
    await bot.tick()
    button = _button(bot.thread(1)[-1], PromptAction.POST_UPDATE)
    dana = bot.slack.user_id("dana")
    assert dana is not None
    click = bot.requests.block_action(
        action_id=button["action_id"], value=button["value"], label="Post update",
        block_id=button["block_id"], user_id=dana, user_name="dana", channel_id=bot.channel,
        channel_name="waqiti-incidents",
        response_url=bot.slack.new_response_url(channel=bot.channel, user=dana),
    )  # fmt: skip
    await bot.post_signed(click)
    [view] = bot.slack.opened_views
    assert [b.get("block_id") for b in view["blocks"] if b["type"] == "input"] == [
        "status",
        "impact",
        "next",
    ]
    submit = bot.requests.view_submission(
        view,
        {"status": "Mitigating: rolled back", "impact": "8% of card payments", "next": None},
        user_id=dana,
        user_name="dana",
    )
    status, body = await bot.post_signed(submit)
    assert status == 200 and body == ""
    rows = await bot.fetch("SELECT data FROM timeline WHERE kind = 'status_update'")
    assert rows[0]["data"]["text"] == "Mitigating: rolled back\n*Impact:* 8% of card payments"
    incident = (
        await bot.fetch("SELECT status, unanswered, next_prompt_at, last_status_at FROM incidents")
    )[0]
    assert incident["status"] == "mitigating" and incident["unanswered"] == 0
    assert (incident["next_prompt_at"] - incident["last_status_at"]).total_seconds() == 1800


async def test_modal_without_a_status_is_refused_with_a_field_error(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    incident = await bot.services.incidents.get(1)
    from commands.blocks import status_modal

    view = {**status_modal(incident), "id": "V1"}
    dana = bot.user("dana")
    submit = bot.requests.view_submission(
        view, {"status": "  ", "impact": "x"}, user_id=dana, user_name="dana"
    )
    status, body = await bot.post_signed(submit)
    assert status == 200 and '"response_action":"errors"' in body.replace(" ", "")
    assert "status" in body
    assert await bot.fetch("SELECT * FROM timeline WHERE kind = 'status_update'") == []


async def test_three_replicas_post_each_due_prompt_exactly_once(bot: Bot, dsn: str) -> None:
    for n in range(12):
        await bot.command(f"declare Incident {n} sev2")
    bot.clock.advance(minutes=31)
    pools = [await db.create_pool(dsn, min_size=1, max_size=2) for _ in range(3)]
    try:
        replicas = [
            Prompter(UnitOfWork(pool, clock=bot.clock), bot.services.policy) for pool in pools
        ]
        await asyncio.gather(*(r.tick() for r in replicas for _ in range(3)))
    finally:
        for pool in pools:
            await pool.close()
    rows = await bot.fetch(
        "SELECT incident_id, count(*) AS n FROM timeline WHERE kind = 'status_prompt' GROUP BY 1"
    )
    assert len(rows) == 12 and all(r["n"] == 1 for r in rows)
    await bot.settle()
    prompts = [
        c
        for c in bot.slack.calls_to("chat.postMessage")
        if "time for a status update" in str(c.args.get("text"))
    ]
    assert len(prompts) == 12
