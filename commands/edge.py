"""Where errors are caught: UserError becomes an ephemeral reply, anything else an error id."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bot import blocks
from bot.errors import Ambiguous, IntegrationError, UserError
from bot.logs import get_logger

log = get_logger(__name__)

Respond = Callable[..., Awaitable[Any]]


async def reply(respond: Respond, message: blocks.Message, **extra: Any) -> None:
    try:
        await respond(text=message.text, blocks=message.blocks, **extra)
    except Exception:
        log.exception("reply.failed")


async def run_reporting(
    respond: Respond,
    work: Callable[[], Awaitable[blocks.Message]],
    *,
    command: str,
    replace_original: bool = False,
) -> None:
    """Run a command's work after the ack and tell the user how it went, whatever happens."""
    extra: dict[str, Any] = {"response_type": "ephemeral"}
    if replace_original:
        extra["replace_original"] = True
    try:
        message = await work()
    except Ambiguous as exc:
        message = blocks.choose_incident(str(exc), exc.choices, command=command)
    except UserError as exc:
        message = blocks.confirmation(str(exc))
    except IntegrationError as exc:
        log.warning("command.integration_failed", system=exc.system, error=str(exc))
        message = blocks.confirmation(
            f":warning: {exc.system.capitalize()} did not answer ({exc}). Try again shortly."
        )
    except Exception:
        error_id = uuid.uuid4().hex[:12]
        log.exception("command.failed", error_id=error_id, command=command.split(" ", 1)[0])
        message = blocks.confirmation(blocks.error_text(error_id))
    await reply(respond, message, **extra)
