"""Scenario tests through the real app: signed requests in, recorded Web API calls out."""

from __future__ import annotations

import json

from tests.conftest import Bot


async def test_declare_posts_card_as_thread_root_and_entry_as_reply(bot: Bot) -> None:
    status, _ = await bot.command("declare Payments failing sev2", user="dana")
    assert status == 200
    card = bot.card(1)
    assert card.thread_ts is None
    assert "INC-1" in card.text and "SEV2" in card.text and "Payments failing" in card.text
    header = card.blocks[0]["text"]["text"]
    assert header == "INC-1 · SEV2 · Payments failing"
    replies = bot.thread(1)
    assert len(replies) == 1
    assert "declared INC-1" in replies[0].text
    rows = await bot.fetch("SELECT thread_ts, channel_id, severity FROM incidents")
    assert rows[0]["thread_ts"] == card.ts
    assert rows[0]["channel_id"] == bot.channel
    assert rows[0]["severity"] == "sev2"


async def test_declarer_is_incident_commander_until_reassigned(bot: Bot) -> None:
    await bot.command("declare Checkout slow", user="dana")
    dana = bot.slack.user_id("dana")
    roles = await bot.fetch("SELECT role, user_id FROM incident_roles")
    assert [(r["role"], r["user_id"]) for r in roles] == [("incident commander", dana)]
    erin = bot.user("erin")
    await bot.command(f"assign <@{erin}|erin> ic", user="dana")
    roles = await bot.fetch("SELECT role, user_id FROM incident_roles")
    assert [(r["role"], r["user_id"]) for r in roles] == [("incident commander", bot.user("erin"))]
    assert "replacing" in bot.thread(1)[-1].text


async def test_declare_without_severity_uses_policy_default(bot: Bot) -> None:
    await bot.command("declare Dashboard glitch")
    rows = await bot.fetch("SELECT severity FROM incidents")
    assert rows[0]["severity"] == "sev3"


async def test_each_change_updates_the_card_and_writes_the_timeline(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2")
    dana = bot.user("dana")
    await bot.command(f"assign <@{dana}|dana> scribe")
    await bot.command("sev sev1")
    await bot.command("status Mitigating: rolled back payment-service")
    await bot.command("note error rate back under 1%")
    await bot.command("resolve bad deploy rolled back")
    kinds = [r["kind"] for r in await bot.fetch("SELECT kind FROM timeline ORDER BY seq")]
    assert kinds == [
        "declared",
        "role_assigned",
        "severity_changed",
        "status_update",
        "note",
        "resolved",
    ]
    assert len(bot.thread(1)) == 6  # every entry is a reply in the thread
    card = bot.card(1)
    assert card.edited
    fields = json.dumps(card.blocks)
    assert "SEV1" in fields and "Resolved" in fields and f"<@{dana}>" in fields
    assert "bad deploy rolled back" in fields
    row = (await bot.fetch("SELECT * FROM incidents"))[0]
    assert row["status"] == "resolved"
    assert row["mitigated_at"] is not None and row["resolved_at"] is not None
    assert row["acknowledged_at"] is not None
    # Every card update re-rendered the latest state; no update was lost.
    assert row["card_posted_version"] == row["card_version"]


async def test_status_naming_a_stage_moves_the_incident_to_it(bot: Bot) -> None:
    await bot.command("declare API errors sev2")
    await bot.command("status Monitoring after the fix")
    row = (await bot.fetch("SELECT status, mitigated_at FROM incidents"))[0]
    assert row["status"] == "monitoring"
    assert row["mitigated_at"] is not None


async def test_resolved_incident_rejects_changes_except_notes(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2")
    await bot.command("resolve")
    before = await bot.fetch("SELECT count(*) AS n FROM timeline")
    await bot.command("sev INC-1 sev1")
    assert "resolved" in bot.last_reply()
    await bot.command("status INC-1 still broken?")
    assert "resolved" in bot.last_reply()
    await bot.command("resolve INC-1")
    assert "resolved" in bot.last_reply()
    assert (await bot.fetch("SELECT count(*) AS n FROM timeline"))[0]["n"] == before[0]["n"]
    await bot.command("note INC-1 follow-up: add an alert")
    kinds = [r["kind"] for r in await bot.fetch("SELECT kind FROM timeline ORDER BY seq")]
    assert kinds[-1] == "note"


async def test_two_open_incidents_ask_which_one_and_the_choice_applies(bot: Bot) -> None:
    await bot.command("declare First sev2")
    await bot.command("declare Second sev3")
    await bot.command("sev sev1")
    question = bot.slack.ephemerals[-1]
    assert "Which one" in question.text
    buttons = [e for b in question.blocks if b["type"] == "actions" for e in b["elements"]]
    assert [b["text"]["text"] for b in buttons] == ["INC-1 First", "INC-2 Second"]
    rows = await bot.fetch("SELECT severity FROM incidents ORDER BY id")
    assert [r["severity"] for r in rows] == ["sev2", "sev3"]  # nothing changed yet
    chosen = buttons[1]
    alice = bot.user("alice")
    click = bot.requests.block_action(
        action_id=chosen["action_id"],
        value=chosen["value"],
        label=chosen["text"]["text"],
        block_id="b1",
        user_id=alice,
        user_name="alice",
        channel_id=bot.channel,
        channel_name="waqiti-incidents",
        response_url=bot.slack.new_response_url(channel=bot.channel, user=alice),
    )
    status, _ = await bot.post(click)
    await bot.settle()
    assert status == 200
    rows = await bot.fetch("SELECT severity FROM incidents ORDER BY id")
    assert [r["severity"] for r in rows] == ["sev2", "sev1"]
    assert bot.slack.ephemerals[-1].replace_original


async def test_assigning_the_same_role_twice_is_refused_without_a_new_entry(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2")
    dana = bot.user("dana")
    await bot.command(f"assign <@{dana}|dana> scribe")
    await bot.command(f"assign <@{dana}|dana> scribe")
    assert "already scribe" in bot.last_reply()
    kinds = [r["kind"] for r in await bot.fetch("SELECT kind FROM timeline ORDER BY seq")]
    assert kinds.count("role_assigned") == 1


async def test_free_form_roles_are_kept_and_shown_on_the_card(bot: Bot) -> None:
    await bot.command("declare DB slow sev3")
    kim = bot.user("kim")
    await bot.command(f"assign <@{kim}|kim> dba")
    assert f"dba: <@{kim}>" in json.dumps(bot.card(1).blocks)


async def test_commands_without_an_open_incident_say_so(bot: Bot) -> None:
    await bot.command("status all good")
    assert "no open incident" in bot.last_reply()
    assert await bot.fetch("SELECT * FROM timeline") == []


async def test_unknown_incident_number_is_not_found(bot: Bot) -> None:
    await bot.command("declare One sev3")
    await bot.command("note INC-42 hello")
    assert "INC-42 does not exist" in bot.last_reply()


async def test_list_shows_open_incidents_with_their_commander(bot: Bot) -> None:
    await bot.command("declare First sev2", user="dana")
    await bot.command("list")
    listing = bot.last_reply()
    assert "INC-1" in listing and "First" in listing and bot.slack.user_id("dana") in listing


async def test_timeline_lists_every_entry_in_order(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2")
    await bot.command("status Investigating the gateway")
    await bot.command("timeline")
    listing = bot.last_reply()
    assert "2 entries" in listing
    assert listing.index("declared") < listing.index("Investigating the gateway")


async def test_help_lists_every_subcommand(bot: Bot) -> None:
    await bot.command("help")
    text = bot.last_reply()
    for sub in ("declare", "assign", "sev", "status", "note", "resolve", "timeline", "list"):
        assert f"/ic {sub}" in text


async def test_help_lists_the_other_slash_commands_diagnose_and_rollback(bot: Bot) -> None:
    await bot.command("help")
    text = bot.last_reply()
    assert "/diagnose <playbook>" in text and "/rollback <deployment>" in text
