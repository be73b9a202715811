"""`/ic handover`: a role moves, and its new holder is briefed in the thread. Through the real app."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest

from bot.core.errors import UsageError
from bot.core.wording import Flavour
from bot.store import actions as actions_sql
from bot.store import timeline as timeline_sql
from commands import blocks
from sandbox.slack_api import Message
from tests.conftest import Bot
from tests.test_scribe import say


async def roles(bot: Bot) -> dict[str, str]:
    rows = await bot.fetch("SELECT role, user_id FROM incident_roles")
    return {r["role"]: r["user_id"] for r in rows}


async def state(bot: Bot) -> tuple[int, dict[str, str], int]:
    """(timeline entries, roles, card version): what a refused handover must leave alone."""
    row = (await bot.fetch("SELECT timeline_count, card_version FROM incidents WHERE id = 1"))[0]
    count = (await bot.fetch("SELECT count(*) AS n FROM timeline"))[0]["n"]
    assert count == row["timeline_count"]
    return count, await roles(bot), row["card_version"]


def briefing(bot: Bot) -> Message:
    posts = [m for m in bot.thread(1) if "Briefing for" in json.dumps(m.blocks)]
    assert len(posts) == 1, f"{len(posts)} briefings in the thread"
    return posts[0]


def shown(message: Message) -> str:
    return "\n".join(b["text"]["text"] for b in message.blocks if b["type"] == "section")


async def handover_entry(bot: Bot) -> dict[str, Any]:
    rows = await bot.fetch("SELECT data FROM timeline WHERE kind = 'handover' ORDER BY seq")
    assert len(rows) == 1
    data: dict[str, Any] = rows[0]["data"]
    return data


async def test_handover_moves_the_role_and_the_card_shows_the_new_holder(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    erin = bot.user("erin")
    await bot.command(f"handover <@{erin}|erin> ic", user="dana")
    assert (await roles(bot))["incident commander"] == erin
    card = bot.card(1)
    assert card.edited
    assert f"*Incident commander*\\n<@{erin}>" in json.dumps(card.blocks)
    row = (await bot.fetch("SELECT card_version, card_posted_version FROM incidents"))[0]
    assert row["card_posted_version"] == row["card_version"]
    assert await bot.kinds() == ["declared", "handover"]
    post = briefing(bot)
    assert post.ts == bot.thread(1)[-1].ts
    assert f"<@{erin}>" in post.text  # the new holder is mentioned, so Slack notifies them
    assert "handed incident commander of INC-1 over to" in post.text
    assert "is now incident commander of *INC-1*" in bot.last_reply("dana")
    assert (await bot.services.incidents.verify(1)).ok


async def test_the_briefing_lists_only_the_last_30_minutes(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    await bot.command("note old clue: ledger lag", user="dana")
    bot.clock.advance(minutes=40)
    await bot.command("note fresh clue: gateway 502s", user="dana")
    bot.clock.advance(minutes=1)
    await bot.command(f"handover <@{bot.user('erin')}|erin>", user="dana")
    text = shown(briefing(bot))
    assert "fresh clue: gateway 502s" in text
    assert "old clue" not in text and "declared INC-1" not in text
    summary = (await handover_entry(bot))["summary"]
    assert [e["seq"] for e in summary["recent"]] == [3]
    assert summary["recent_total"] == 1
    assert (await bot.services.incidents.verify(1)).ok


async def test_the_briefing_gives_the_state_roles_action_items_and_pending_approvals(
    bot: Bot,
) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    erin, kim = bot.user("erin"), bot.user("kim")
    await bot.command(f"assign <@{erin}|erin> scribe", user="dana")
    await bot.command("status Mitigating: rolling back payment-service", user="dana")
    await bot.command(f"action Alert on DB pool saturation <@{erin}|erin>", user="dana")
    await bot.command("action Add config diffs to the deploy checklist", user="dana")
    now = bot.clock()
    async with bot.services.pool.acquire() as conn:
        await actions_sql.insert(
            conn, incident_id=1, action="rollback", label="Roll back payment-service",
            params={}, preview={"lines": []}, requested_by=erin, requested_at=now,
            expires_at=now + timedelta(minutes=15), required=1, approvers=["anyone"],
        )  # fmt: skip
        await actions_sql.insert(
            conn, incident_id=1, action="restart", label="Restart ledger (expired)",
            params={}, preview={"lines": []}, requested_by=erin, requested_at=now,
            expires_at=now - timedelta(minutes=1), required=1, approvers=["anyone"],
        )  # fmt: skip
    bot.clock.advance(minutes=5)
    await bot.command(f"handover <@{kim}|kim>", user="dana")
    text = shown(briefing(bot))
    assert "INC-1 · SEV2 · High* · Payments failing" in text
    assert "Mitigating · open for 5m" in text
    assert "*Last status update* (5m ago):\n> Mitigating: rolling back payment-service" in text
    assert re.search(r"Next status prompt due in 2[45]m\.", text)
    assert f"incident commander: <@{kim}> · scribe: <@{erin}> · comms lead: _unassigned_" in text
    assert "*Open action items* (2):" in text
    assert f"• Alert on DB pool saturation — <@{erin}>" in text
    assert "• Add config diffs to the deploy checklist — no owner yet" in text
    assert "*Pending approvals* (1):" in text
    assert f"*Roll back payment-service* (`rollback`) requested by <@{erin}>: 0/1" in text
    assert "expired" not in text
    assert (await bot.services.incidents.verify(1)).ok


async def test_without_a_status_update_the_briefing_says_so_and_when_the_prompt_is_due(
    bot: Bot,
) -> None:
    await bot.command("declare Checkout slow sev1", user="dana")
    await bot.command(f"handover <@{bot.user('erin')}|erin>", user="dana")
    text = shown(briefing(bot))
    assert "*No status update yet.*" in text
    assert re.search(r"Next status prompt due in 1[45]m\.", text)
    assert "*Open action items:* none." in text
    assert "Pending approvals" not in text


async def test_without_a_role_the_requester_hands_over_theirs_commander_first(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    dana, erin = bot.user("dana"), bot.user("erin")
    # dana holds scribe from before she is incident commander again: the order given is not
    # the order taken.
    await bot.command(f"assign <@{erin}|erin> ic", user="dana")
    await bot.command(f"assign <@{dana}|dana> scribe", user="dana")
    await bot.command(f"assign <@{dana}|dana> ic", user="erin")
    await bot.command(f"handover <@{erin}|erin>", user="dana")
    assert await roles(bot) == {"incident commander": erin, "scribe": dana}
    reply = bot.last_reply("dana")
    assert "is now incident commander" in reply and "You are still scribe." in reply
    await bot.command(f"handover <@{erin}|erin>", user="dana")
    assert await roles(bot) == {"incident commander": erin, "scribe": erin}
    assert (await bot.services.incidents.verify(1)).ok


async def test_without_a_role_a_requester_holding_none_is_told_the_roles_to_name(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    dana, erin = bot.user("dana"), bot.user("erin")
    before = await state(bot)
    await bot.command(f"handover <@{erin}|erin>", user="kim")
    reply = bot.last_reply("kim")
    assert "You hold no role in INC-1" in reply
    assert f"`ic` (held by <@{dana}>), `scribe` (nobody), `comms` (nobody)" in reply
    assert f"/ic handover INC-1 <@{erin}> &lt;role&gt;" in reply  # Slack shows `<role>`
    assert await state(bot) == before


async def test_the_roles_to_name_are_pieces_so_plain_text_shows_no_markup(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    dana, erin = bot.user("dana"), bot.user("erin")
    with pytest.raises(UsageError) as refused:
        await bot.services.incidents.handover(ref=1, user=erin, role=None, actor=bot.user("kim"))
    assert refused.value.text(Flavour.PLAIN) == (
        "You hold no role in INC-1, so say which one to hand over:"
        f" /ic handover INC-1 @{erin} <role>. Roles: ic (held by @{dana}), scribe (nobody),"
        " comms (nobody)."
    )


async def test_handing_a_role_to_its_holder_is_refused_and_changes_nothing(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    erin = bot.user("erin")
    await bot.command(f"assign <@{erin}|erin> scribe", user="dana")
    before = await state(bot)
    await bot.command(f"handover <@{bot.user('dana')}|dana>", user="dana")
    assert "is already incident commander of INC-1; nothing changed" in bot.last_reply("dana")
    await bot.command(f"handover <@{erin}|erin> scribe", user="kim")
    assert "is already scribe of INC-1; nothing changed" in bot.last_reply("kim")
    assert await state(bot) == before


async def test_a_resolved_incident_refuses_a_handover(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    await bot.command("resolve", user="dana")
    before = await state(bot)
    await bot.command(f"handover INC-1 <@{bot.user('erin')}|erin> ic", user="dana")
    assert "INC-1 is resolved" in bot.last_reply("dana")
    await bot.command(f"handover <@{bot.user('erin')}|erin>", user="dana")
    assert "no open incident" in bot.last_reply("dana")
    assert await state(bot) == before


async def test_anyone_may_hand_over_a_named_role(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    erin, lee = bot.user("erin"), bot.user("lee")
    await bot.command(f"assign <@{erin}|erin> scribe", user="dana")
    await bot.command(f"handover <@{lee}|lee> scribe", user="kim")
    assert (await roles(bot))["scribe"] == lee
    kim = bot.slack.user_id("kim")
    assert briefing(bot).text == (
        f"<@{lee}> takes over as scribe of INC-1 from <@{erin}>, handed over by <@{kim}>."
    )
    data = await handover_entry(bot)
    assert (data["role"], data["user"], data["previous"]) == ("scribe", lee, erin)


async def test_the_briefing_puts_the_most_relevant_first_and_counts_the_rest(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    for i in range(1, 14):
        await say(bot, "kim", f"chatter number {i:02d}")
    await bot.command("note ledger is fine", user="kim")
    await bot.command("sev sev1", user="dana")
    await bot.command(f"handover <@{bot.user('erin')}|erin>", user="dana")
    lines = next(t for t in shown(briefing(bot)).split("\n*") if t.startswith("Last 30 minutes"))
    listed = lines.split("\n")[1:]
    assert len(listed) == 13  # 12 entries and the count of the rest
    assert "declared INC-1" in listed[0]
    assert "Severity SEV2 → SEV1" in listed[1]
    assert "ledger is fine" in listed[2]
    # People's messages are named, not quoted (their words stay in the thread): oldest first.
    kim = bot.user("kim")
    assert [line.rsplit(" ", 1)[1] for line in listed[3:12]] == [f"(#{i})" for i in range(2, 11)]
    assert all(f"<@{kim}> wrote in the thread" in line for line in listed[3:12])
    assert listed[12] == "…and 4 more (`/ic timeline INC-1`)"


async def test_the_briefing_is_stored_with_its_entry_so_it_shows_the_same_later(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    await bot.command("status Investigating the gateway", user="dana")
    await bot.command(f"action Alert on lag <@{bot.user('kim')}|kim>", user="dana")
    await bot.command(f"handover <@{bot.user('erin')}|erin>", user="dana")
    posted = briefing(bot)
    # Later the incident has moved on; the briefing entry still shows what was briefed.
    bot.clock.advance(minutes=50)
    await bot.command("status Mitigated: rolled back", user="erin")
    await bot.command("action Another one", user="erin")
    async with bot.services.pool.acquire() as conn:
        entries = await timeline_sql.entries(conn, 1)
    again = blocks.timeline_reply(next(e for e in entries if e.kind == "handover"))
    assert (again.text, again.blocks) == (posted.text, posted.blocks)
    assert (await bot.services.incidents.verify(1)).ok


async def test_the_briefing_keeps_long_texts_within_slacks_limits(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    long = "word " * 580
    await bot.command(f"status Mitigating: {long}", user="dana")
    for _ in range(13):
        await bot.command(f"note {long}", user="dana")
    await bot.command(f"action {long}", user="dana")
    await bot.command(f"handover <@{bot.user('erin')}|erin>", user="dana")
    post = briefing(bot)  # the stand-in refuses a section over 3000 characters
    sections = [b["text"]["text"] for b in post.blocks if b["type"] == "section"]
    assert all(len(text) <= blocks.SECTION_TEXT_MAX for text in sections)
    recent = next(t for t in sections if t.startswith("*Last 30 minutes"))
    notes = [line for line in recent.split("\n") if "word word" in line]
    assert len(notes) == 11  # the status update, then ten of the notes
    assert all(line.endswith("…") and len(line) < 200 for line in notes)
    assert "> Mitigating: word" in shown(post)


async def test_the_briefing_names_peoples_messages_without_copying_their_words(bot: Bot) -> None:
    """A briefing is a hash-chained entry and a reply nobody edits later: a message deleted in
    Slack after the handover must not live on in it, so it never holds people's words."""
    from tests.test_scribe import delete, say

    await bot.command("declare Payments failing sev2", user="dana")
    msg = await say(bot, "erin", "the db password is hunter2")
    await bot.command("handover <@U0KIM|kim>", user="dana")
    await delete(bot, msg)
    await bot.settle()
    [entry] = await bot.fetch("SELECT text, data FROM timeline WHERE kind = 'handover'")
    assert "hunter2" not in str(entry["data"]) and "hunter2" not in entry["text"]
    recent = entry["data"]["summary"]["recent"]
    assert any("wrote in the thread" in line["text"] for line in recent)
    assert all("hunter2" not in text for text in bot.thread_texts(1))
    assert (await bot.services.incidents.verify(1)).ok
