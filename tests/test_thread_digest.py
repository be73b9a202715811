"""A readable thread: key events are replies; chatter folds into one digest edited in place.

Chatter is what `timeline.FOLDED` names: captured messages, pins, PagerDuty events, checklist
ticks, action items... A digest message collects it until the next key event's reply; the
chatter after that starts a new digest below the reply, so the thread still reads in order.
"""

from __future__ import annotations

from bot.core.ids import Metadata
from bot.delivery.outbox import LEASE
from bot.domain import timeline
from bot.store import outbox as outbox_sql
from tests.conftest import Bot, shown_text
from tests.test_scribe import delete, say


def bot_thread_posts(bot: Bot) -> list[str]:
    """What the bot posted in incident 1's thread, oldest first: 'reply' or 'digest'."""
    kinds = []
    for m in bot.thread(1):
        if m.user != bot.slack.bot_user_id:
            continue
        digest = (m.metadata or {}).get("event_type") == Metadata.DIGEST
        kinds.append("digest" if digest else "reply")
    return kinds


async def test_chatter_folds_into_one_message_edited_in_place(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    for i in range(6):
        await say(bot, "erin", f"observation number {i}")
    await bot.command("action Add a saga lag alert", user="dana")
    assert bot_thread_posts(bot) == ["reply", "digest"]
    [digest] = bot.digests(1)
    text = shown_text(digest)
    assert all(f"observation number {i}" in text for i in range(6))
    assert "Add a saga lag alert" in text
    assert "6 messages, 1 action item" in text
    # Every folded entry is still a timeline entry of its own.
    kinds = await bot.kinds()
    assert kinds.count(timeline.ScribeKind.MESSAGE) == 6
    await bot.command("timeline", user="dana")
    assert "observation number 5" in bot.last_reply("dana")


async def test_a_key_event_closes_the_digest_and_later_chatter_starts_a_new_one(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    await say(bot, "erin", "before the update")
    await bot.command("status Rolling back payment-service", user="dana")
    await say(bot, "erin", "after the update")
    assert bot_thread_posts(bot) == ["reply", "digest", "reply", "digest"]
    first, second = bot.digests(1)
    assert "before the update" in shown_text(first)
    assert "after the update" not in shown_text(first)
    assert "after the update" in shown_text(second)
    assert "before the update" not in shown_text(second)


async def test_a_quiet_hour_of_chatter_adds_only_a_handful_of_bot_posts(bot: Bot) -> None:
    await bot.command("declare Checkout slow sev3", user="dana")
    posts_before = len(bot_thread_posts(bot))
    for i in range(40):
        await say(bot, ["erin", "frank"][i % 2], f"looking at shard {i}")
    await bot.command("status Still investigating", user="dana")
    for i in range(20):
        await say(bot, "erin", f"more detail {i}")
    # 60 messages and a status update: two digests and one reply, not 61 replies.
    assert len(bot_thread_posts(bot)) - posts_before == 3
    assert "… 25 earlier" in shown_text(bot.digests(1)[0])  # it shows the newest 15 lines


async def test_a_deleted_message_leaves_the_older_digest_too(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    msg = await say(bot, "erin", "the password is hunter2")
    await say(bot, "erin", "sorry, ignore that")
    await bot.command("status Investigating", user="dana")  # closes the first digest
    await delete(bot, msg)
    await bot.settle()
    first = bot.digests(1)[0]
    assert "hunter2" not in shown_text(first)
    assert "sorry, ignore that" in shown_text(first)
    assert all("hunter2" not in text for text in bot.thread_texts(1))
    assert (await bot.services.incidents.verify(1)).ok


async def test_a_digest_that_reached_slack_before_a_crash_is_not_posted_twice(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    await bot.settle()
    outbox = bot.services.outbox
    await bot.command("action Check the retry budget", user="dana", drain=False)
    await bot.services.inflight.idle()
    async with bot.services.pool.acquire() as conn:
        [item] = await outbox_sql.claim(conn, now=bot.services.clock(), lease=LEASE, limit=5)
    assert item.kind == "digest"
    await outbox._send(item)  # posted; now the process dies before anything is saved
    async with bot.services.pool.acquire() as conn:
        await conn.execute("DELETE FROM thread_digests")
        await conn.execute(
            "UPDATE outbox SET claimed_until = now() - interval '1 second' WHERE id = $1", item.id
        )
    await outbox.drain()
    assert len(bot.digests(1)) == 1
    assert "Check the retry budget" in shown_text(bot.digests(1)[0])


async def test_a_digest_deleted_in_slack_is_posted_anew_without_stalling_the_thread(
    bot: Bot,
) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    await say(bot, "erin", "first observation")
    [gone] = bot.digests(1)
    bot.slack.messages[bot.channel].remove(gone)  # someone deleted it in Slack
    await say(bot, "erin", "second observation")
    await bot.command("status Investigating", user="dana")
    [digest] = bot.digests(1)
    assert digest.ts != gone.ts
    assert "second observation" in shown_text(digest)
    assert bot_thread_posts(bot) == ["reply", "digest", "reply"]
    failed = await bot.fetch(
        "SELECT count(*) AS n FROM outbox WHERE failed OR last_error IS NOT NULL"
    )
    assert failed[0]["n"] == 0  # no retries: the update's message_not_found started a new one


async def test_two_workers_posting_one_digest_leave_one_message(bot: Bot) -> None:
    """A worker whose lease ran out mid-post and the one that took over both post the new
    digest: the first one saved stays (up to date), the other copy is deleted."""
    await bot.command("declare Payments failing sev2", user="dana")
    await bot.settle()
    await bot.command("action Check the retry budget", user="dana", drain=False)
    await bot.services.inflight.idle()
    outbox = bot.services.outbox
    async with bot.services.pool.acquire() as conn:
        [item] = await outbox_sql.claim(conn, now=bot.services.clock(), lease=LEASE, limit=5)
    incident = await bot.services.incidents.get(1)
    [entry] = await bot.fetch("SELECT seq FROM timeline WHERE kind = 'action_item'")
    first = await outbox._show_digest(item, incident, first=entry["seq"], before=None, ts=None)
    second = await outbox._show_digest(item, incident, first=entry["seq"], before=None, ts=None)
    assert first == second
    [digest] = bot.digests(1)
    assert digest.ts == first and "Check the retry budget" in shown_text(digest)


async def test_chatter_after_a_posted_draft_goes_below_it(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    await say(bot, "erin", "before the draft")
    await bot.command("postmortem", user="dana")
    await say(bot, "erin", "after the draft")
    mine = [m for m in bot.thread(1) if m.user == bot.slack.bot_user_id]
    kinds = ["file" if m.files else "digest" if m in bot.digests(1) else "reply" for m in mine]
    assert kinds == ["reply", "digest", "file", "digest"]
    first, second = bot.digests(1)
    assert "before the draft" in shown_text(first) and "after the draft" in shown_text(second)
