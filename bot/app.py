"""build_slack_app(services) -> AsyncApp: the one Bolt app, for HTTP, Socket Mode and the shell."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.ids import (
    ApprovalAction,
    ChecklistAction,
    IcAction,
    PromptAction,
    RemediationAction,
    ShortcutId,
    ViewId,
)
from bot.logs import get_logger
from bot.services import Services
from commands.approvals import ApprovalHandlers
from commands.diagnose import DiagnoseHandlers
from commands.edge import SessionRespond
from commands.ic import IcHandlers
from commands.mentions import MentionHandlers
from commands.prompts import PromptHandlers
from commands.scribe import ScribeHandlers

log = get_logger(__name__)

SLASH_COMMANDS = ("/ic", "/diagnose", "/rollback")
# Manifest `bot_events` -> the event type Slack delivers for each subscription.
EVENTS = {
    "app_mention": "app_mention",
    "message.channels": "message",
    "message.groups": "message",
    "reaction_added": "reaction_added",
    "reaction_removed": "reaction_removed",
}
# Manifest `features.shortcuts`: callback_id -> type (`message` or `global`).
SHORTCUTS = {ShortcutId.ADD_TO_TIMELINE.value: "message"}


def _dedupe_events(services: Services) -> Callable[..., Awaitable[BoltResponse | None]]:
    """Slack repeats Events API deliveries (retries, at-least-once): handle each event_id once."""

    async def middleware(
        req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse | None:
        body: Any = req.body
        event_id = body.get("event_id") if isinstance(body, dict) else None
        if isinstance(event_id, str) and body.get("type") == "event_callback":
            async with services.pool.acquire() as conn:
                fresh = await conn.fetchval(
                    "INSERT INTO slack_events (event_id) VALUES ($1)"
                    " ON CONFLICT (event_id) DO NOTHING RETURNING true",
                    event_id[:200],
                )
            if not fresh:
                retry = req.headers.get("x-slack-retry-num", [None])[0]
                log.info("slack.event_repeated", event_id=event_id, retry=retry)
                return BoltResponse(status=200, body="")
        return await next()

    return middleware


def _respond_over_shared_session(
    services: Services,
) -> Callable[..., Awaitable[BoltResponse | None]]:
    """Give listeners a `respond` that reuses the app's HTTP session (see SessionRespond)."""

    async def middleware(
        context: AsyncBoltContext, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse | None:
        session = services.client.session
        if context.response_url and session is not None and not session.closed:
            context["respond"] = SessionRespond(context.response_url, session)
        return await next()

    return middleware


def build_slack_app(services: Services) -> AsyncApp:
    # Requests are verified once, at the HTTP edge (bot/web.py); the shell feeds the app directly.
    app = AsyncApp(
        client=services.client,
        request_verification_enabled=False,
        raise_error_for_unhandled_request=False,
        process_before_response=False,
    )
    app.middleware(_dedupe_events(services))
    app.middleware(_respond_over_shared_session(services))
    ic = IcHandlers(services)
    app.command("/ic")(ic.command)
    app.action(re.compile(rf"^{re.escape(IcAction.PICK_INCIDENT.value)}:"))(ic.pick_incident)
    diagnose = DiagnoseHandlers(services)
    app.command("/diagnose")(diagnose.command)
    app.action(re.compile(rf"^{re.escape(RemediationAction.REQUEST.value)}:"))(
        diagnose.remediation_clicked
    )
    approvals = ApprovalHandlers(services)
    app.command("/rollback")(approvals.rollback)
    app.action(ApprovalAction.APPROVE.value)(approvals.approve)
    app.action(ApprovalAction.DENY.value)(approvals.deny)
    prompts = PromptHandlers(services)
    app.action(PromptAction.POST_UPDATE.value)(prompts.post_update_clicked)
    app.view(ViewId.STATUS_UPDATE.value)(prompts.status_submitted)
    app.action(ChecklistAction.TICK.value)(prompts.checklist_ticked)
    mentions = MentionHandlers()
    app.event("app_mention")(mentions.app_mention)
    scribe = ScribeHandlers(services)
    app.event("message")(scribe.message)
    app.event("reaction_added")(scribe.reaction_added)
    app.event("reaction_removed")(scribe.reaction_removed)
    app.message_shortcut(ShortcutId.ADD_TO_TIMELINE.value)(scribe.add_to_timeline)
    app.view(ViewId.ADD_TO_TIMELINE.value)(scribe.add_to_timeline_submitted)
    return app
