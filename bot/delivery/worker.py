"""The loop every replica runs for each background job: rounds of work that survive errors.

A round (`run_round`) returns how much it handled. While there is work the loop goes straight
on; when there is none it waits `poll_interval`, or less if `kick()` says something was queued.
A failed round is logged and retried after an exponential back-off (capped), so one bad row or
a database blip never stops the job; cancellation (shutdown) goes straight through.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib

from bot.core import metrics
from bot.core.errors import IntegrationError
from bot.core.logs import get_logger

log = get_logger(__name__)

MAX_BACKOFF = 60.0


class Worker(abc.ABC):
    name = "worker"  # log events are "<name>.round_failed"

    def __init__(self, *, poll_interval: float = 1.0) -> None:
        self.poll_interval = poll_interval
        self._kick = asyncio.Event()

    @abc.abstractmethod
    async def run_round(self) -> int:
        """Do one round of work; returns how many things it handled (0: nothing to do)."""

    async def _idle(self) -> None:  # noqa: B027
        """Called when a round found nothing to do, before waiting; nothing by default."""

    def kick(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._kick.set()

    async def run_forever(self) -> None:
        failures = 0
        while True:
            self._kick.clear()
            try:
                handled = await self.run_round()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc, IntegrationError):  # e.g. the alert intake's Kafka source
                    metrics.integration_error(exc.service)
                failures += 1
                log.exception(f"{self.name}.round_failed", failures=failures)
                handled = 0
                await asyncio.sleep(min(MAX_BACKOFF, 0.5 * 2**failures))
            if handled:
                continue
            await self._idle()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), timeout=self.poll_interval)
