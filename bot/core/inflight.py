"""Counts work still running after an ack, so the shell and tests can wait for it to finish."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from bot.core.logs import get_logger

log = get_logger(__name__)


class Inflight:
    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Task[Any]] = set()  # strong references while they run

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run `work` in a task of its own, waited for by `idle()` from this moment (not from
        its first step). `count` is the work inside `track()` only, so it is not counted twice."""
        self._idle.clear()
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._settle()
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("listener.failed", listener=task.get_name(), exc_info=exc)

    @asynccontextmanager
    async def track(self) -> AsyncIterator[None]:
        self._count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._count -= 1
            self._settle()

    def _settle(self) -> None:
        if self._count == 0 and not self._tasks:
            self._idle.set()

    @property
    def count(self) -> int:
        """Work still running after its ack (for /metrics and the shutdown log)."""
        return self._count

    async def idle(self, timeout: float = 30.0) -> None:
        # Bolt starts a listener in a task of its own: give it a turn to begin before waiting.
        for _ in range(3):
            await asyncio.sleep(0)
        await asyncio.wait_for(self._idle.wait(), timeout)
