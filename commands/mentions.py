"""Events: a mention of the bot gets a pointer to `/ic help` in the same thread."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bot.core.logs import get_logger

log = get_logger(__name__)


class MentionHandlers:
    async def app_mention(
        self,
        ack: Callable[[], Awaitable[Any]],
        event: dict[str, Any],
        say: Callable[..., Awaitable[Any]],
    ) -> None:
        await ack()
        thread = event.get("thread_ts") or event.get("ts")
        try:
            await say(
                text=(
                    "I run incidents here: `/ic declare <title> [sev1-4]` opens one,"
                    " `/ic help` lists the rest."
                ),
                thread_ts=thread,
            )
        except Exception:
            log.exception("mention.reply_failed")
