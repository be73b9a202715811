"""Posting to Slack: at least once from the outbox, never twice, in order, paced."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta

import pytest

from bot.delivery.outbox import LEASE, ChannelPacer
from bot.store import outbox as outbox_sql
from tests.conftest import Bot


def _thread_texts(bot: Bot) -> list[str]:
    return [m.text for m in bot.thread(1)]


async def test_slack_429_delays_the_thread_but_loses_and_duplicates_nothing(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2")
    bot.slack.fail("chat.postMessage", status=429, retry_after=1, times=2)
    await bot.command("status Investigating", drain=False)
    await bot.command("note gateway timeouts", drain=False)
    await bot.services.inflight.idle()
    started = time.monotonic()
    await bot.services.outbox.drain(timeout=20)
    assert time.monotonic() - started >= 1.0  # Retry-After was honoured
    texts = _thread_texts(bot)
    assert len(texts) == 3
    assert "Investigating" in texts[1] and "gateway timeouts" in texts[2]
    statuses = [c.status for c in bot.slack.calls_to("chat.postMessage")]
    assert statuses.count(429) == 2


async def test_slack_5xx_is_retried_until_the_post_lands(bot: Bot) -> None:
    bot.slack.fail("chat.postMessage", status=503, times=1)
    await bot.command("declare Payments failing sev2")
    assert len(bot.slack.roots("waqiti-incidents")) == 1
    assert len(bot.thread(1)) == 1


async def test_a_post_that_landed_before_a_crash_is_not_posted_again(bot: Bot) -> None:
    """The worker dies after Slack accepted the post but before marking it done."""
    await bot.command("declare Payments failing sev2")
    await bot.command("note first", drain=False)
    await bot.services.inflight.idle()
    outbox = bot.services.outbox
    async with bot.services.pool.acquire() as conn:
        [item] = await outbox_sql.claim(conn, now=bot.services.clock(), lease=LEASE, limit=5)
    await outbox._send(item)  # the post reaches Slack; the process dies before `complete`
    assert len(bot.thread(1)) == 2
    # The lease expires and another worker picks the item up again.
    async with bot.services.pool.acquire() as conn:
        await conn.execute(
            "UPDATE outbox SET claimed_until = now() - interval '1 second' WHERE id = $1", item.id
        )
    await outbox.drain()
    assert len(bot.thread(1)) == 2
    assert [m.text.count("first") for m in bot.thread(1)] == [0, 1]


async def test_card_is_posted_first_and_replies_keep_timeline_order(bot: Bot) -> None:
    bot.slack.fail("chat.postMessage", status=503, times=1)  # the card's first try fails
    await bot.command("declare Payments failing sev2", drain=False)
    await bot.command("note one", drain=False)
    await bot.command("note two", drain=False)
    await bot.settle()
    posts = [c for c in bot.slack.calls_to("chat.postMessage") if c.status == 200]
    assert "thread_ts" not in posts[0].args  # the card
    assert [("one" in p.args["text"], "two" in p.args["text"]) for p in posts[2:]] == [
        (True, False),
        (False, True),
    ]


async def test_card_updates_collapse_to_the_latest_state(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2")
    for sev in ("sev1", "sev2", "sev1"):
        await bot.command(f"sev {sev}", drain=False)
    await bot.settle()
    updates = bot.slack.calls_to("chat.update")
    assert 1 <= len(updates) <= 3
    assert "SEV1" in bot.card(1).text


async def test_permanent_slack_error_gives_up_after_retries_and_keeps_the_timeline(
    bot: Bot,
) -> None:
    await bot.command("declare Payments failing sev2")
    bot.slack.fail("chat.postMessage", status=200, error="msg_too_long", times=10)
    await bot.command("note doomed", drain=False)
    await bot.services.inflight.idle()
    async with bot.services.pool.acquire() as conn:
        for _ in range(6):
            await conn.execute("UPDATE outbox SET next_attempt_at = now() WHERE done_at IS NULL")
            await bot.services.outbox.process_once()
        row = await conn.fetchrow(
            "SELECT failed, last_error FROM outbox WHERE done_at IS NOT NULL ORDER BY id DESC LIMIT 1"
        )
    assert row is not None and row["failed"] and "msg_too_long" in row["last_error"]
    entries = await bot.fetch("SELECT text FROM timeline WHERE kind = 'note'")
    assert len(entries) == 1


class SteppedClock:
    """A monotonic clock that only `sleep` moves on: the pacer's schedule, without timing."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_pacer_spaces_posts_in_one_channel_after_the_burst() -> None:
    clock = SteppedClock()
    pacer = ChannelPacer(per_second=20.0, burst=2, clock=clock, sleep=clock.sleep)
    stamps = []
    for _ in range(5):
        await pacer.wait("C1")
        stamps.append(clock())
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert gaps[:1] == [0.0]  # within the burst
    assert gaps[2:] == pytest.approx([0.05, 0.05])  # then one per interval (50 ms)
    other = clock()
    await pacer.wait("C2")  # another channel is not held back
    assert clock() == other


async def test_a_late_caller_gets_at_most_the_burst_at_once() -> None:
    clock = SteppedClock()
    pacer = ChannelPacer(per_second=20.0, burst=2, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        await pacer.wait("C1")
    clock.now += 10.0  # a long quiet spell refills the bucket, but only to the burst
    start = clock()
    for _ in range(4):
        await pacer.wait("C1")
    assert clock() - start == pytest.approx(0.1)  # 2 at once, then 2 x 50 ms


async def test_a_paused_channel_waits_for_retry_after() -> None:
    clock = SteppedClock()
    pacer = ChannelPacer(per_second=0, burst=1, clock=clock, sleep=clock.sleep)
    pacer.pause("C1", 3.0)  # HTTP 429 with Retry-After: 3
    await pacer.wait("C1")
    assert clock.slept == [3.0]


async def test_two_workers_never_post_the_same_item(bot: Bot) -> None:
    import asyncio

    await bot.command("declare Payments failing sev2")
    for n in range(6):
        await bot.command(f"note n{n}", drain=False)
    await bot.services.inflight.idle()
    outbox = bot.services.outbox
    # Two workers (as two replicas would) draining at once; they share only PostgreSQL.
    from bot.delivery.outbox import Outbox

    twin = Outbox(
        bot.services.pool,
        bot.services.chat,
        bot.services.policy,
        renderer=bot.services.outbox.renderer,
        pacer=ChannelPacer(per_second=0, burst=1),
    )
    await asyncio.gather(outbox.drain(), twin.drain())
    texts = [m.text for m in bot.thread(1)]
    assert len(texts) == 7 and len(set(texts)) == 7
    assert [t.split(": ")[-1] for t in texts[1:]] == [f"n{n}" for n in range(6)]
    assert timedelta(seconds=10) < LEASE


async def test_a_landed_post_is_found_again_in_a_thread_longer_than_one_page(bot: Bot) -> None:
    """Replies come oldest first, 200 a page: the lookup after a crash reads on."""
    await bot.command("declare Payments failing sev2")
    for i in range(450):
        bot.slack.post_user_message("waqiti-incidents", "erin", f"chatter {i}",
                                    thread_ts=bot.card(1).ts)  # fmt: skip
    await bot.command("note after the chatter", drain=False)
    await bot.services.inflight.idle()
    outbox = bot.services.outbox
    async with bot.services.pool.acquire() as conn:
        [item] = await outbox_sql.claim(conn, now=bot.services.clock(), lease=LEASE, limit=5)
    await outbox._send(item)  # the post reaches Slack; the process dies before `complete`
    async with bot.services.pool.acquire() as conn:
        await conn.execute(
            "UPDATE outbox SET claimed_until = now() - interval '1 second' WHERE id = $1", item.id
        )
    await outbox.drain()
    notes = [m for m in bot.thread(1) if "after the chatter" in m.text]
    assert len(notes) == 1


async def test_refreshes_of_one_reply_queued_together_edit_it_once(bot: Bot) -> None:
    """Each refresh renders the reply's state when it is sent, so only the last one is needed."""
    await bot.command("declare Payments failing sev2")
    [declared] = await bot.fetch("SELECT id FROM timeline WHERE seq = 1")
    async with bot.services.pool.acquire() as conn:
        for version in ("approved1", "running1", "succeeded1"):
            await outbox_sql.enqueue_refresh(
                conn, incident_id=1, timeline_id=declared["id"], version=version
            )
    await bot.services.outbox.drain()
    reply_ts = bot.thread(1)[0].ts
    edits = [c for c in bot.slack.calls_to("chat.update") if c.args.get("ts") == reply_ts]
    assert len(edits) == 1
    pending = await bot.fetch("SELECT count(*) AS n FROM outbox WHERE done_at IS NULL")
    assert pending[0]["n"] == 0
