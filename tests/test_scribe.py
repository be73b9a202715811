"""The scribe: thread messages, edits, deletions and pins, as Slack delivers them, into the timeline.

Events go through the real app (signed Events API requests); the Slack stand-in holds the
messages people post. Deletions must leave a chain that `icbot audit verify` still accepts,
while a row changed by hand in PostgreSQL must still be caught.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from typing import Any

import pytest

from bot.core import wording
from bot.domain import timeline
from bot.domain.ports import ChatMessage
from bot.domain.scribe import Scribe, fallback_permalink
from bot.integrations.slack import SlackMessages
from bot.store import captures as captures_sql
from commands import parsing
from commands.scribe import chat_message
from sandbox.slack_api import Message
from sandbox.slack_requests import SignedRequest
from tests.conftest import Bot, shown_text

# Until the patches to existing files (timeline.redact, listeners in commands/app.py, ...) are in.
WAR_ROOM = "waqiti-incidents"
_event_ts = itertools.count(1)


# -- Slack's events, shaped as the Events API sends them ----------------------------------------


def _next_ts(bot: Bot) -> str:
    return f"{int(bot.card(1).ts.split('.')[0]) + 5}.{next(_event_ts):06d}"


def posted_event(msg: Message) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "message",
        "channel": msg.channel,
        "user": msg.user,
        "text": msg.text,
        "ts": msg.ts,
        "event_ts": msg.ts,
        "team": "T0001",
        "channel_type": "channel",
        "client_msg_id": f"c0ffee00-0000-4000-8000-{msg.ts.replace('.', '')[-12:]:0>12}",
    }
    if msg.thread_ts:
        event["thread_ts"] = msg.thread_ts
    return event


def _as_stored(msg: Message, text: str) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "message", "user": msg.user, "text": text, "ts": msg.ts}
    if msg.thread_ts:
        out["thread_ts"] = msg.thread_ts
    return out


async def say(
    bot: Bot, user: str, text: str, *, thread: int | None = 1, event_id: str | None = None
) -> Message:
    """`user` posts `text` in incident `thread`'s thread (None: in the war room itself)."""
    thread_ts = bot.card(thread).ts if thread else None
    msg = bot.slack.post_user_message(WAR_ROOM, user, text, thread_ts=thread_ts)
    await bot.post_signed(bot.requests.event(posted_event(msg), event_id=event_id))
    return msg


async def edit(bot: Bot, msg: Message, text: str, *, event_id: str | None = None) -> None:
    before = msg.text
    msg.text, msg.edited = text, True
    ts = _next_ts(bot)
    event = {
        "type": "message", "subtype": "message_changed", "hidden": True,
        "channel": msg.channel, "ts": ts, "event_ts": ts,
        "message": {**_as_stored(msg, text), "edited": {"user": msg.user, "ts": ts}},
        "previous_message": _as_stored(msg, before),
    }  # fmt: skip
    await bot.post_signed(bot.requests.event(event, event_id=event_id))


def deletion(bot: Bot, msg: Message) -> SignedRequest:
    if msg in bot.slack.messages[msg.channel]:
        bot.slack.messages[msg.channel].remove(msg)
    ts = _next_ts(bot)
    event = {
        "type": "message", "subtype": "message_deleted", "hidden": True,
        "channel": msg.channel, "ts": ts, "event_ts": ts, "deleted_ts": msg.ts,
        "previous_message": _as_stored(msg, msg.text),
    }  # fmt: skip
    return bot.requests.event(event)


async def delete(bot: Bot, msg: Message) -> None:
    await bot.post_signed(deletion(bot, msg))


def reaction(
    bot: Bot, msg: Message, *, by: str, name: str = "pushpin", added: bool = True
) -> SignedRequest:
    event = {
        "type": "reaction_added" if added else "reaction_removed",
        "user": bot.user(by), "reaction": name, "item_user": msg.user,
        "item": {"type": "message", "channel": msg.channel, "ts": msg.ts},
        "event_ts": _next_ts(bot),
    }  # fmt: skip
    return bot.requests.event(event)


async def pin(bot: Bot, msg: Message, *, by: str) -> None:
    await bot.post_signed(reaction(bot, msg, by=by))


async def unpin(bot: Bot, msg: Message, *, by: str) -> None:
    await bot.post_signed(reaction(bot, msg, by=by, added=False))


async def entries(bot: Bot, kind: str | None = None) -> list[Any]:
    if kind is None:
        return await bot.fetch("SELECT * FROM timeline ORDER BY seq")
    return await bot.fetch("SELECT * FROM timeline WHERE kind = $1 ORDER BY seq", kind)


async def anywhere(bot: Bot, words: str) -> list[Any]:
    """Rows of the timeline that still hold `words` (text or data)."""
    return await bot.fetch(
        "SELECT seq FROM timeline WHERE text LIKE $1 OR data::text LIKE $1", f"%{words}%"
    )


def bot_posts(bot: Bot) -> list[str]:
    return [m.text for m in bot.slack.messages[bot.channel] if m.user == bot.slack.bot_user_id]


# -- pure helpers (no patches needed) ------------------------------------------------------------


def test_a_slack_message_event_becomes_a_chat_message() -> None:
    event = {
        "type": "message", "channel": "C1", "user": "U1", "text": "db at 95%",
        "ts": "1700000000.000200", "thread_ts": "1700000000.000100",
        "files": [{"id": "F1"}, {"id": "F2"}],
    }  # fmt: skip
    message = chat_message(event, channel="C1", bot_user_id="UBOT")
    assert message == ChatMessage(
        channel="C1", ts="1700000000.000200", user="U1", text="db at 95%",
        thread_ts="1700000000.000100", is_bot=False, files=2,
    )  # fmt: skip
    assert message.is_reply


@pytest.mark.parametrize(
    "event",
    [
        {"user": "UBOT", "ts": "1.1", "text": "x"},
        {"user": "U9", "bot_id": "B9", "ts": "1.1", "text": "x"},
        {"subtype": "bot_message", "bot_id": "B9", "ts": "1.1", "text": "x"},
    ],
)
def test_bot_messages_are_recognised_whoever_posted_them(event: dict[str, Any]) -> None:
    assert chat_message(event, channel="C1", bot_user_id="UBOT").is_bot


def test_a_thread_root_is_not_a_reply() -> None:
    root = chat_message(
        {"user": "U1", "ts": "5.1", "thread_ts": "5.1"}, channel="C", bot_user_id=None
    )
    assert not root.is_reply


def test_the_fallback_permalink_is_built_from_channel_and_ts() -> None:
    assert fallback_permalink("C0123", "1700000000.000200") == (
        "https://slack.com/archives/C0123/p1700000000000200"
    )
    assert fallback_permalink("C0123", "1700000000.000200", "1700000000.000100") == (
        "https://slack.com/archives/C0123/p1700000000000200?thread_ts=1700000000.000100&cid=C0123"
    )


@pytest.mark.parametrize(
    ("text", "incident", "body", "owner"),
    [
        ("action Add an alert on pool saturation", None, "Add an alert on pool saturation", None),
        ("action INC-3 Add an alert <@U0DANA001|dana>", 3, "Add an alert", "U0DANA001"),
        ("todo  Review   <@U0ERIN002> deploys <@W0KIM0003>", None, "Review   <@U0ERIN002> deploys",
         "W0KIM0003"),
    ],
)  # fmt: skip
def test_action_item_grammar(text: str, incident: int | None, body: str, owner: str | None) -> None:
    parsed = parsing.parse_ic(text)
    assert (parsed.incident, parsed.text, parsed.owner) == (incident, body, owner)  # type: ignore[union-attr]


@pytest.mark.parametrize("text", ["action", "action INC-2", "action <@U0DANA001|dana>", "pm now"])
def test_action_without_text_and_postmortem_with_extra_words_are_usage_errors(text: str) -> None:
    with pytest.raises(parsing.UsageError):
        parsing.parse_ic(text)


# -- listening in the thread ---------------------------------------------------------------------


async def test_a_reply_in_the_incident_thread_is_captured_with_author_and_permalink(
    bot: Bot,
) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    replies_before = len(bot.thread(1))
    msg = await say(bot, "erin", "Gateway 502s since the 13:55 deploy")
    [row] = await entries(bot, "message")
    assert row["actor"] == bot.slack.user_id("erin")
    assert row["text"] == f"<@{row['actor']}>: Gateway 502s since the 13:55 deploy"
    assert row["data"]["ts"] == msg.ts and row["data"]["text"] == msg.text
    assert row["data"]["permalink"] == (
        f"https://example.slack.com/archives/{bot.channel}/p{msg.ts.replace('.', '')}"
        f"?thread_ts={msg.thread_ts}&cid={bot.channel}"
    )
    # The message is already in the thread: the bot does not repost it, only notes it in the
    # thread's digest (one bot message for the chatter).
    assert len(bot.thread(1)) == replies_before + 2
    assert not any("Gateway 502s" in text for text in bot_posts(bot))
    [digest] = bot.digests(1)
    assert "Gateway 502s since the 13:55 deploy" in shown_text(digest)
    assert (await bot.services.incidents.verify(1)).ok


async def test_messages_outside_incident_threads_and_bot_messages_are_not_captured(
    bot: Bot,
) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    await say(bot, "erin", "anyone seeing 502s?", thread=None)  # the war room, not a thread
    chatter = bot.slack.post_user_message(WAR_ROOM, "kim", "lunch?")
    reply = bot.slack.post_user_message(WAR_ROOM, "erin", "tacos", thread_ts=chatter.ts)
    await bot.post_signed(bot.requests.event(posted_event(reply)))
    card = bot.card(1).ts
    own = {"type": "message", "channel": bot.channel, "user": bot.slack.bot_user_id,
           "bot_id": bot.slack.bot_id, "text": "from the bot", "ts": _next_ts(bot), "thread_ts": card}  # fmt: skip
    other = {"type": "message", "subtype": "bot_message", "channel": bot.channel,
             "bot_id": "B0OTHER01", "text": "another app", "ts": _next_ts(bot), "thread_ts": card}  # fmt: skip
    joined = {"type": "message", "subtype": "channel_join", "channel": bot.channel,
              "user": bot.user("kim"), "text": "joined", "ts": _next_ts(bot), "thread_ts": card}  # fmt: skip
    for event in (own, other, joined):
        status, _ = await bot.post_signed(bot.requests.event(event))
        assert status == 200
    assert await entries(bot, "message") == []


async def test_a_repeated_event_and_a_slack_retry_are_captured_once(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    msg = await say(bot, "erin", "pool exhausted", event_id="Ev0SCRIBE1")
    again = bot.requests.event(posted_event(msg), event_id="Ev0SCRIBE1")
    status, _ = await bot.post(again)
    assert status == 200
    retry = bot.requests.event(posted_event(msg), event_id="Ev0SCRIBE1")
    status, _ = await bot.post(
        retry, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    )
    assert status == 200
    # The same message under another event id (a replay) is still one capture.
    await bot.post_signed(bot.requests.event(posted_event(msg), event_id="Ev0SCRIBE2"))
    await bot.settle()
    assert len(await entries(bot, "message")) == 1
    seen = await bot.fetch("SELECT key FROM handled_requests ORDER BY key")
    assert [r["key"] for r in seen if r["key"].startswith("event:Ev0SCRIBE")] == [
        "event:Ev0SCRIBE1",
        "event:Ev0SCRIBE2",
    ]


async def test_an_edit_adds_an_entry_naming_the_original_which_stays_as_it_was(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    msg = await say(bot, "erin", "rollback to rev 40")
    await edit(bot, msg, "rollback to rev 41")
    [original] = await entries(bot, "message")
    [edited] = await entries(bot, "message_edited")
    assert original["data"]["text"] == "rollback to rev 40"
    assert edited["data"] == wording.data(
        ts=msg.ts, text="rollback to rev 41", edits=original["seq"]
    )
    assert f"(#{original['seq']})" in edited["text"]
    assert (await bot.services.incidents.verify(1)).ok


async def test_an_edit_that_leaves_the_words_alone_is_not_recorded(bot: Bot) -> None:
    """Slack sends message_changed for link unfurls too."""
    await bot.command("declare Payments failing sev2", user="dana")
    msg = await say(bot, "erin", "see https://status.example.com")
    await edit(bot, msg, "see https://status.example.com")
    assert await entries(bot, "message_edited") == []


async def test_a_repeated_edit_event_is_recorded_once(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    msg = await say(bot, "erin", "v1")
    await edit(bot, msg, "v2", event_id="Ev0EDIT01")
    await edit(bot, msg, "v2", event_id="Ev0EDIT01")
    assert len(await entries(bot, "message_edited")) == 1


async def test_an_edit_of_a_reply_never_seen_captures_it(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    msg = bot.slack.post_user_message(WAR_ROOM, "erin", "first", thread_ts=bot.card(1).ts)
    await edit(bot, msg, "second")  # its `message` event was lost
    [row] = await entries(bot, "message")
    assert row["data"]["text"] == "second"


# -- deletions: the words go, the chain still verifies ----------------------------------------


async def test_a_deleted_message_loses_its_words_and_the_chain_still_verifies(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    await say(bot, "kim", "checking the pool")
    msg = await say(bot, "erin", "password for the DB is hunter2")
    await edit(bot, msg, "password for the DB is hunter2 (oops)")
    await bot.command("note pool size halved")
    await delete(bot, msg)
    assert await anywhere(bot, "hunter2") == []
    [kept] = [r for r in await entries(bot, "message") if r["redacted_at"] is None]
    assert kept["data"]["text"] == "checking the pool"
    blanked = await bot.fetch("SELECT * FROM timeline WHERE redacted_at IS NOT NULL ORDER BY seq")
    assert [r["kind"] for r in blanked] == ["message", "message_edited"]
    assert all(r["text"] == timeline.REDACTED_TEXT and r["data"] == {} for r in blanked)
    [deleted] = await entries(bot, "message_deleted")
    assert [r["seq"] for r in deleted["data"]["redacts"]] == [r["seq"] for r in blanked]
    assert deleted["data"]["ts"] == msg.ts and "hunter2" not in deleted["text"]
    result = await bot.services.incidents.verify(1)
    assert result.ok, result.problems
    assert not any("hunter2" in text for text in bot_posts(bot))


async def test_a_repeated_deletion_redacts_once(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    msg = await say(bot, "erin", "oops")
    request = deletion(bot, msg)
    await bot.post_signed(request)
    await bot.post_signed(request)  # the same delivery again
    await delete(bot, msg)  # and the same deletion under a new event id
    assert len(await entries(bot, "message_deleted")) == 1
    assert (await bot.services.incidents.verify(1)).ok


async def test_a_message_deleted_before_its_event_arrived_is_never_captured(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    msg = bot.slack.post_user_message(WAR_ROOM, "erin", "secret", thread_ts=bot.card(1).ts)
    late = bot.requests.event(posted_event(msg))
    await delete(bot, msg)
    await bot.post_signed(late)
    assert await entries(bot, "message") == []
    assert await anywhere(bot, "secret") == []


async def test_a_deletion_racing_the_capture_of_its_message_still_drops_its_words(
    bot: Bot,
) -> None:
    """Two replicas: the capture's transaction is open when the deletion arrives."""
    await bot.command("declare Payments failing sev2", user="dana")
    msg = bot.slack.post_user_message(WAR_ROOM, "erin", "secret", thread_ts=bot.card(1).ts)
    scribe = Scribe(
        bot.services.uow,
        bot.services.incidents,
        SlackMessages(bot.services.client, parse=chat_message),
    )
    async with bot.services.pool.acquire() as conn:
        capture = conn.transaction()
        await capture.start()
        await captures_sql.insert(
            conn, channel_id=bot.channel, message_ts=msg.ts, incident_id=1, author=msg.user,
            captured=True,
        )  # fmt: skip
        await timeline.record(
            conn, incident_id=1, kind=timeline.Kind.MESSAGE, text="secret", actor=msg.user,
            occurred_at=bot.clock(), data={"ts": msg.ts, "text": "secret"}, announce=False,
        )  # fmt: skip
        deleting = asyncio.create_task(
            scribe.message_deleted(
                channel=bot.channel, ts=msg.ts, thread_ts=msg.thread_ts, author=msg.user
            )
        )
        await asyncio.sleep(0.3)
        assert not deleting.done()  # it waits for the capture to commit
        await capture.commit()
    assert await deleting is not None
    assert await anywhere(bot, "secret") == []
    assert (await bot.services.incidents.verify(1)).ok


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        ("UPDATE timeline SET text = 'rewritten' WHERE seq = $1", "edited after its redaction"),
        (
            'UPDATE timeline SET data = \'{"text": "rewritten"}\'::jsonb WHERE seq = $1',
            "edited after its redaction",
        ),
        (
            "UPDATE timeline SET occurred_at = occurred_at - interval '1 hour' WHERE seq = $1",
            "without a recorded redaction",
        ),
        ("UPDATE timeline SET actor = 'U0MALLORY' WHERE seq = $1", "without a recorded redaction"),
        ("UPDATE timeline SET redacted_at = NULL WHERE seq = $1", "content hash differs"),
        (
            "UPDATE timeline SET redacted_at = now(), text = '(deleted)', data = '{}'::jsonb"
            " WHERE kind = 'note' AND $1 > 0",
            "without a recorded redaction",
        ),
    ],
    ids=["text", "data", "time", "actor", "unredacted", "blanked-by-hand"],
)
async def test_a_row_changed_by_hand_after_redaction_still_fails_verification(
    bot: Bot, tamper: str, problem: str
) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    msg = await say(bot, "erin", "oops")
    await bot.command("note pool size halved")
    await delete(bot, msg)
    assert (await bot.services.incidents.verify(1)).ok
    [blanked] = await bot.fetch("SELECT seq FROM timeline WHERE redacted_at IS NOT NULL")
    async with bot.services.pool.acquire() as conn:
        await conn.execute(tamper, blanked["seq"])
    result = await bot.services.incidents.verify(1)
    assert not result.ok
    assert any(problem in p for p in result.problems), result.problems


async def test_the_recorded_redaction_cannot_be_rewritten_either(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    msg = await say(bot, "erin", "oops")
    await delete(bot, msg)
    async with bot.services.pool.acquire() as conn:
        await conn.execute(
            "UPDATE timeline SET data = jsonb_set(data, '{redacts,0,content_hash}', '\"x\"')"
            " WHERE kind = 'message_deleted'"
        )
    result = await bot.services.incidents.verify(1)
    assert not result.ok
    assert any("message_deleted" in p and "content hash differs" in p for p in result.problems)


def _icbot(args: list[str], dsn: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": dsn, "LOG_FORMAT": "console"}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], env=env, capture_output=True, text=True, timeout=120
    )


async def test_audit_verify_passes_after_edits_and_deletions_and_fails_after_a_direct_change(
    bot: Bot, dsn: str
) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    first = await say(bot, "erin", "pool at 100%")
    second = await say(bot, "kim", "token is abc123")
    await edit(bot, first, "pool at 100%, rolling back")
    await pin(bot, first, by="dana")
    await delete(bot, second)
    ok = _icbot(["audit", "verify", "INC-1"], dsn)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "timeline intact" in ok.stdout
    async with bot.services.pool.acquire() as conn:
        await conn.execute(
            "UPDATE timeline SET data = jsonb_set(data, '{text}', '\"pool fine\"')"
            " WHERE kind = 'message_edited'"
        )
    bad = _icbot(["audit", "verify", "INC-1"], dsn)
    assert bad.returncode == 1
    assert "ALTERED" in bad.stdout and "message_edited" in bad.stdout


async def test_a_failing_permalink_call_falls_back_to_a_built_link(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    bot.slack.fail("chat.getPermalink", status=200, error="internal_error")
    msg = await say(bot, "erin", "pool exhausted")
    [row] = await entries(bot, "message")
    assert row["data"]["permalink"] == fallback_permalink(bot.channel, msg.ts, msg.thread_ts)


# -- pins ----------------------------------------------------------------------------------------


async def test_pushpin_makes_a_thread_message_a_key_event_and_removing_it_unmarks_it(
    bot: Bot,
) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    msg = await say(bot, "erin", "deploy 13:55 halved the DB pool")
    await pin(bot, msg, by="dana")
    [pinned] = await entries(bot, "pinned")
    dana, erin = bot.slack.user_id("dana"), bot.slack.user_id("erin")
    assert pinned["actor"] == dana
    assert pinned["data"]["ts"] == msg.ts and pinned["data"]["author"] == erin
    assert "text" not in pinned["data"]  # its words are in the `message` entry already
    assert "pinned" in shown_text(bot.digests(1)[-1])  # noted in the thread's digest
    await unpin(bot, msg, by="dana")
    [unpinned] = await entries(bot, "unpinned")
    assert unpinned["data"] == wording.data(ts=msg.ts, by=dana, author=erin)
    rows = await bot.fetch("SELECT pinned_by FROM captures WHERE message_ts = $1", msg.ts)
    assert rows[0]["pinned_by"] == []


async def test_a_second_pushpin_adds_nothing_and_only_the_last_removal_unpins(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    msg = await say(bot, "erin", "key finding")
    await pin(bot, msg, by="dana")
    await pin(bot, msg, by="kim")
    await bot.post_signed(reaction(bot, msg, by="kim"))  # a repeat of kim's pin
    assert len(await entries(bot, "pinned")) == 1
    await unpin(bot, msg, by="dana")
    assert await entries(bot, "unpinned") == []
    await unpin(bot, msg, by="kim")
    assert len(await entries(bot, "unpinned")) == 1


async def test_a_repeated_reaction_event_pins_once(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    msg = await say(bot, "erin", "key finding")
    request = reaction(bot, msg, by="dana")
    await bot.post_signed(request)
    status, _ = await bot.post(request, headers={"X-Slack-Retry-Num": "2"})
    await bot.settle()
    assert status == 200
    assert len(await entries(bot, "pinned")) == 1


async def test_other_reactions_and_pins_in_other_channels_are_ignored(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    msg = await say(bot, "erin", "key finding")
    await bot.post_signed(reaction(bot, msg, by="dana", name="eyes"))
    bot.slack.add_channel("random")
    elsewhere = bot.slack.post_user_message("random", "kim", "cat pictures")
    await pin(bot, elsewhere, by="kim")
    assert await entries(bot, "pinned") == []
    assert bot.replies_to("kim") == []


async def test_pushpin_on_a_war_room_message_pins_it_to_the_only_open_incident(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    msg = bot.slack.post_user_message(WAR_ROOM, "erin", "Grafana: error rate 8% since 13:55")
    await pin(bot, msg, by="dana")
    [pinned] = await entries(bot, "pinned")
    assert pinned["incident_id"] == 1
    assert pinned["data"]["text"] == "Grafana: error rate 8% since 13:55"  # fetched from Slack
    # Its edits and its deletion are honoured like a thread message's.
    await edit(bot, msg, "Grafana: error rate 9% since 13:55")
    assert len(await entries(bot, "message_edited")) == 1
    await delete(bot, msg)
    assert await anywhere(bot, "Grafana") == []
    assert (await bot.services.incidents.verify(1)).ok


async def test_pushpin_on_a_war_room_message_with_several_open_incidents_explains_why_not(
    bot: Bot,
) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    await bot.command("declare Ledger lagging sev3", user="dana")
    msg = bot.slack.post_user_message(WAR_ROOM, "erin", "which one is this about?")
    await pin(bot, msg, by="kim")
    assert await entries(bot, "pinned") == []
    [told] = bot.replies_to("kim")
    assert "Several incidents are open" in told


async def test_pushpin_with_no_open_incident_or_in_another_thread_records_nothing(
    bot: Bot,
) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    chatter = bot.slack.post_user_message(WAR_ROOM, "kim", "lunch?")
    reply = bot.slack.post_user_message(WAR_ROOM, "erin", "tacos", thread_ts=chatter.ts)
    await pin(bot, reply, by="kim")  # a thread, but not an incident's
    await bot.command("resolve", user="dana")
    late = bot.slack.post_user_message(WAR_ROOM, "erin", "post-incident musings")
    await pin(bot, late, by="kim")
    assert await entries(bot, "pinned") == []
    assert bot.replies_to("kim") == ["No incident is open, so that :pushpin: was not recorded."]


async def test_pushpin_on_the_bots_own_timeline_reply_makes_it_a_key_event(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    await bot.command("status Identified: bad deploy", user="dana")
    update = bot.thread(1)[-1]
    await pin(bot, update, by="dana")
    [pinned] = await entries(bot, "pinned")
    assert pinned["data"]["author"] == "icbot"
    assert "Identified: bad deploy" in pinned["data"]["text"]


# -- action items and the post-mortem command --------------------------------------------------


async def test_ic_action_records_an_action_item_with_its_owner(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    erin = bot.user("erin")
    await bot.command(f"action Alert on DB pool saturation <@{erin}|erin>", user="dana")
    [item] = await entries(bot, "action_item")
    assert item["data"] == wording.data(text="Alert on DB pool saturation", owner=erin)
    assert "Action item added to *INC-1*" in bot.last_reply("dana")
    assert "Alert on DB pool saturation" in shown_text(bot.digests(1)[-1])
    await bot.command("resolve", user="dana")
    await bot.command("action Write the runbook section", user="dana")  # after resolving too
    assert len(await entries(bot, "action_item")) == 2


async def test_ic_postmortem_posts_the_draft_in_the_thread_and_tells_the_asker(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    await bot.command("postmortem", user="dana")
    [posted] = bot.posted_files(1)
    assert posted.text.startswith("# Incident Post-Mortem: INC-1 Payments failing\n")
    assert "postmortem-INC-1.md" in bot.last_reply("dana")
    assert [e.via for e in bot.slack.ephemerals][-1] == "response_url"


# -- a failed capture is tried again ----------------------------------------------------------


async def test_scribe_work_that_fails_is_tried_again_until_it_lands() -> None:
    from commands.scribe import retrying

    calls: list[int] = []

    async def flaky() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("database went away")

    await retrying("capture", flaky, delays=(0.0, 0.0, 0.0))
    assert len(calls) == 3

    calls.clear()

    async def down() -> None:
        calls.append(1)
        raise ConnectionError("still down")

    await retrying("capture", down, delays=(0.0, 0.0))  # logged, not raised: the ack is sent
    assert len(calls) == 3


async def test_a_user_error_in_scribe_work_is_an_answer_and_not_retried() -> None:
    from bot.core.errors import UsageError
    from commands.scribe import retrying

    calls: list[int] = []

    async def refused() -> None:
        calls.append(1)
        raise UsageError("That message is in another incident.")

    with pytest.raises(UsageError):
        await retrying("pin", refused, delays=(0.0, 0.0))
    assert calls == [1]
