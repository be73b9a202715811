"""One unit of work: a transaction, its clock and its timeline writer; the workers told after.

Every change the bot makes runs as

    async with uow.transaction() as tx:
        ...  # tx.conn, tx.now, await tx.record(incident_id=…, kind=…, actor=…, text=…)

`tx.record` is `timeline.record` in this transaction (so it also claims the Slack request in
scope, see `bot.domain.once`). When a transaction that wrote something commits, the unit of
work kicks every worker that delivers what a change leaves behind (the outbox, the PagerDuty
queue, the event publisher), so nobody has to remember to; a transaction that fails, or wrote
nothing (a timer round that found nothing due), kicks none. Reads that
change nothing take `uow.connection()` and kick nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from bot.core.models import Clock, TimelineEntry, utcnow
from bot.domain import timeline
from bot.store import Conn, db

Isolation = Literal["read_committed", "repeatable_read", "serializable"]


@dataclass(frozen=True)
class Tx:
    """One open transaction: its connection, the time it started, and the timeline writer."""

    conn: Conn
    now: datetime

    async def record(
        self,
        *,
        incident_id: int,
        kind: timeline.Kind,
        actor: str,
        text: str | None = None,
        data: dict[str, Any] | None = None,
        occurred_at: datetime | None = None,
        announce: bool = True,
    ) -> TimelineEntry:
        """`timeline.record` in this transaction; `occurred_at` defaults to `now`. Without
        `text`, `data` is versioned (`wording.data(...)`) and the text is rendered from it."""
        return await timeline.record(
            self.conn,
            incident_id=incident_id,
            kind=kind,
            text=text,
            actor=actor,
            occurred_at=self.now if occurred_at is None else occurred_at,
            data=data,
            announce=announce,
        )


class UnitOfWork:
    """The pool, the clock, and who to kick after a commit that wrote (`after_commit`)."""

    def __init__(self, pool: asyncpg.Pool, *, clock: Clock = utcnow) -> None:
        self.pool = pool
        self.clock = clock
        self._kicks: list[Callable[[], None]] = []

    def after_commit(self, kick: Callable[[], None]) -> None:
        """Call `kick` after every committed transaction (a worker's wake-up)."""
        self._kicks.append(kick)

    def kick(self) -> None:
        for kick in self._kicks:
            kick()

    @asynccontextmanager
    async def transaction(self, *, isolation: Isolation | None = None) -> AsyncIterator[Tx]:
        async with self.pool.acquire() as conn:
            async with conn.transaction(isolation=isolation):
                yield Tx(conn, self.clock())
                changed = await db.wrote(conn)
            if changed:
                self.kick()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        """A connection for reads (or for a store call that is one statement): kicks nothing."""
        async with self.pool.acquire() as conn:
            yield conn

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Conn]:
        """Several reads that must agree (one repeatable-read transaction): kicks nothing."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            yield conn
