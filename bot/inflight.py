"""Counts work still running after an ack, so the shell and tests can wait for it to finish."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Inflight:
    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @asynccontextmanager
    async def track(self) -> AsyncIterator[None]:
        self._count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._count -= 1
            if self._count == 0:
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
