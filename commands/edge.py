"""Where errors are caught: UserError becomes an ephemeral reply, anything else an error id."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
from slack_sdk.webhook import WebhookResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.core import metrics
from bot.core.errors import Ambiguous, IntegrationError, Repeated, UserError
from bot.core.logs import get_logger
from bot.domain import once, timeline
from commands import blocks

log = get_logger(__name__)

Respond = Callable[..., Awaitable[Any]]


class SessionRespond:
    """Bolt's `respond()`, over the app's one HTTP session.

    Bolt's own opens a new aiohttp session, so a new connection, for every call: at 100
    commands a second that was a third of the bot's CPU after the acks (bench/README.md).
    This is slack_sdk's webhook client all the same, given the shared session.
    """

    def __init__(self, response_url: str, session: aiohttp.ClientSession) -> None:
        self.response_url = response_url
        self.session = session

    async def __call__(
        self,
        text: str = "",
        blocks: Sequence[dict[str, Any]] | None = None,
        response_type: str | None = None,
        replace_original: bool | None = None,
        delete_original: bool | None = None,
    ) -> WebhookResponse:
        client = AsyncWebhookClient(url=self.response_url, session=self.session)
        return await client.send(
            text=text,
            blocks=blocks,
            response_type=response_type,
            replace_original=replace_original,
            delete_original=delete_original,
        )


def _refusal(response: object) -> str | None:
    """Slack's error if it refused a response_url post (anything but HTTP 200), else None."""
    status = getattr(response, "status_code", 200)
    if status == 200:
        return None
    body = str(getattr(response, "body", "") or "")
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        error = None
    return str(error or body[:200] or f"HTTP {status}")


async def reply(respond: Respond, message: blocks.Message, **extra: Any) -> None:
    """Send `message`; if Slack refuses it, log Slack's error and send a short text instead,
    so the user is never left with nothing."""
    try:
        response = await respond(text=message.text, blocks=message.blocks, **extra)
        error = _refusal(response)
        if error is None:
            return
        log.warning(
            "reply.refused",
            error=error,
            status=getattr(response, "status_code", None),
            text_chars=len(message.text),
            blocks=len(message.blocks),
        )
        fallback = blocks.refused_reply(error)
        response = await respond(text=fallback.text, **extra)
        if _refusal(response) is not None:
            log.warning("reply.fallback_refused", error=_refusal(response))
    except Exception:
        log.exception("reply.failed")


async def run_reporting(
    respond: Respond,
    work: Callable[[], Awaitable[blocks.Message | None]],
    *,
    command: str,
    replace_original: bool = False,
) -> None:
    """Run a command's work after the ack and tell the user how it went, whatever happens
    (work returning None has nothing to say).

    Exactly once (bot.domain.once): work that changed something claimed the request with its change;
    an answer (a result or a user error) claims it before it is sent, so a repeat of the
    request answers nothing. A failure (an outside system, a bug) claims nothing: Slack's
    retry of the request runs it again.
    """
    extra: dict[str, Any] = {"response_type": "ephemeral"}
    if replace_original:
        extra["replace_original"] = True
    with timeline.notices() as redacted:
        message = await _answer(work, command=command)
    if redacted:
        summary = timeline.summary_of(redacted)
        message = blocks.with_notice(message, blocks.redaction_notice(summary, posted=False))
    if message is not None:
        await reply(respond, message, **extra)


async def _answer(
    work: Callable[[], Awaitable[blocks.Message | None]], *, command: str
) -> blocks.Message | None:
    try:
        try:
            message = await work()
        except Ambiguous as exc:
            message = blocks.name_the_incident(str(exc), exc.choices)
        except UserError as exc:
            message = blocks.confirmation(str(exc))
        await once.claim_first()
    except Repeated:
        raise
    except IntegrationError as exc:
        metrics.integration_error(exc.service)
        log.warning("command.integration_failed", system=exc.service, code=exc.code, error=str(exc))
        message = blocks.confirmation(
            f":warning: {exc.service.capitalize()} did not answer ({exc}). Try again shortly."
        )
    except Exception:
        error_id = uuid.uuid4().hex[:12]
        log.exception("command.failed", error_id=error_id, command=command.split(" ", 1)[0])
        message = blocks.confirmation(blocks.error_text(error_id))
    return message
