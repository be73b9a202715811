"""One unit of work (bot.domain.uow): a committed change wakes the workers that deliver it,
whoever made the change; a change that fails, or a transaction that wrote nothing, wakes none."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from bot.domain.timeline import Kind
from bot.domain.uow import UnitOfWork
from bot.store import db
from tests.conftest import Bot
from tests.test_scribe import say


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(dsn, min_size=1, max_size=2)
    try:
        yield p
    finally:
        await p.close()


def counting(uow: UnitOfWork) -> list[str]:
    kicks: list[str] = []
    uow.after_commit(lambda: kicks.append("outbox"))
    uow.after_commit(lambda: kicks.append("pager"))
    return kicks


async def test_a_committed_change_wakes_every_worker_once(bot: Bot) -> None:
    kicks = counting(bot.services.uow)
    await bot.command("declare Payments failing sev2")
    assert kicks == ["outbox", "pager"]


async def test_a_change_that_fails_wakes_no_worker_and_leaves_nothing(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2")
    kicks = counting(bot.services.uow)
    with pytest.raises(RuntimeError):
        async with bot.services.uow.transaction() as tx:
            await tx.record(incident_id=1, kind=Kind.NOTE, actor="U1", text="lost", data={})
            raise RuntimeError("the change fails after its entry")
    assert kicks == []
    assert "lost" not in [e.text for e in (await bot.services.incidents.timeline(1))[1]]
    assert (await bot.services.incidents.verify(1)).ok


async def test_a_transaction_that_writes_nothing_wakes_no_worker(pool: asyncpg.Pool) -> None:
    uow = UnitOfWork(pool)
    kicks = counting(uow)
    async with uow.transaction() as tx:
        await tx.conn.fetchval("SELECT count(*) FROM incidents")
    assert kicks == []


async def test_a_timer_round_with_nothing_due_wakes_no_worker(bot: Bot) -> None:
    kicks = counting(bot.services.uow)
    assert await bot.services.prompter.tick() == 0
    assert kicks == []


async def test_a_captured_thread_message_wakes_the_outbox_for_its_digest_line(bot: Bot) -> None:
    """The scribe's capture queues a line of the thread's digest: it must not wait for the
    outbox's next poll (it did: only commands told the workers)."""
    await bot.command("declare Payments failing sev2", user="dana")
    kicks = counting(bot.services.uow)
    await say(bot, "erin", "Gateway 502s since the 13:55 deploy")
    assert "outbox" in kicks
