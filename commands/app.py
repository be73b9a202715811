"""build_slack_app(services) -> AsyncApp: the one Bolt app, for HTTP, Socket Mode and the shell."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.kwargs_injection.async_args import AsyncArgs
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.core.errors import Repeated
from bot.core.ids import (
    ApprovalAction,
    ChecklistAction,
    IcAction,
    PromptAction,
    RemediationAction,
    ShortcutId,
    ViewId,
)
from bot.core.logs import get_logger
from bot.domain import once
from commands.approvals import ApprovalHandlers
from commands.diagnose import DiagnoseHandlers
from commands.edge import SessionRespond
from commands.ic import IcHandlers
from commands.mentions import MentionHandlers
from commands.prompts import PromptHandlers
from commands.scribe import ScribeHandlers
from commands.services import Services

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


def request_of(body: Any, *, at: datetime) -> once.Request | None:
    """The Slack request a body is, for `bot.domain.once`: an event by its `event_id`, a view
    submission by its view id and hash (a double submit of one form is the same request), a
    slash command, button or shortcut by its `trigger_id`. None: nothing to tell repeats by."""
    if not isinstance(body, dict):
        return None
    kind = body.get("type")
    if kind == "event_callback":
        event_id = body.get("event_id")
        return once.Request(once.event_key(event_id), at) if isinstance(event_id, str) else None
    if kind == "view_submission":
        view = body.get("view") or {}
        view_id, view_hash = view.get("id"), view.get("hash")
        if isinstance(view_id, str) and isinstance(view_hash, str) and view_id and view_hash:
            return once.Request(once.view_key(view_id, view_hash), at)
    if kind in (None, "block_actions", "view_submission", "shortcut", "message_action"):
        trigger_id = body.get("trigger_id")
        if isinstance(trigger_id, str) and trigger_id:
            return once.Request(once.trigger_key(trigger_id), at)
    return None


ONCE = "icbot_request"  # the context key of the request's `once.Request`
# The early repeat check is a shortcut (the work claims the request itself, so a repeat still
# does nothing without it), made only for deliveries Slack marks as retries, and it may take
# at most this long before the ack goes ahead without it. Made for every request and unbounded,
# it waited for a pooled connection that a burst of commands doing their work held: acks then
# took seconds (bench/README.md).
REPEAT_CHECK_SECONDS = 0.05


def _once_per_request(services: Services) -> Callable[..., Awaitable[BoltResponse | None]]:
    """Slack repeats requests (retries, replays, double submits): do each one's work once.

    A retry (`X-Slack-Retry-Num`) of a request already handled is acknowledged here and goes no
    further; any other repeat (a replay, a double submit) is found by its work's claim, which
    costs no query before the ack. The request is put in the context, and its listener runs in
    its `once.scope` (see _acks_first), so its work claims it (bot/domain/once.py); a repeat
    arriving while the first still runs finds that claim there. Events are claimed here, before
    their listeners run.
    """

    async def middleware(
        req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse | None:
        request = request_of(req.body, at=services.clock())
        if request is None:
            return await next()
        retry = req.headers.get("x-slack-retry-num", [None])[0]
        repeated = False
        if request.key.startswith("event:"):
            repeated = not await once.claim_event(services.pool, request)
        elif retry is not None:  # Slack says it is sending this again: skip its work early
            try:
                async with asyncio.timeout(REPEAT_CHECK_SECONDS):
                    repeated = await once.seen(services.pool, request)
            except TimeoutError:  # every connection busy: the ack must not wait for one
                log.debug("slack.repeat_check_skipped", key=request.key)
                repeated = False
            except Exception as exc:  # only a shortcut: the work's own claim still decides
                log.warning("slack.repeat_check_failed", error=type(exc).__name__)
                repeated = False
        if repeated:
            log.info("slack.request_repeated", key=request.key, retry=retry)
            return BoltResponse(status=200, body="")
        if not request.key.startswith("event:"):
            req.context[ONCE] = request
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


ACK_WAIT = 3.0  # Slack gives up on an answer after 3 seconds


class _SignallingAck:
    """The request's `ack`, which also says when it has been called."""

    def __init__(self, ack: AsyncAck, called: asyncio.Event) -> None:
        self._ack = ack
        self._called = called

    async def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        try:
            return await self._ack(*args, **kwargs)
        finally:
            self._called.set()


async def _dropping_repeats(work: Coroutine[Any, Any, None]) -> None:
    """A listener's work that finds its request handled by another delivery just stops."""
    try:
        await work
    except Repeated as exc:
        log.info("slack.request_repeated", key=exc.key, while_running=True)


def _acks_first(
    services: Services, listener: Callable[..., Coroutine[Any, Any, None]]
) -> Callable[[AsyncArgs], Awaitable[None]]:
    """Run `listener` in a task of its own and return as soon as it has called `ack()`.

    The app runs with `process_before_response=True`, so Bolt answers Slack when this returns:
    right after the ack, while the work after it goes on in the task (counted by `inflight`
    for graceful shutdown, the shell and tests). Bolt's default instead runs the listener in a
    task and looks for the ack every 10 ms, a floor under every answer that grows with the
    event loop's load (bench/README.md). The listener gets the arguments it names, as Bolt
    would give them; a listener that never acks is answered after ACK_WAIT by Bolt's rules.
    """
    names = list(inspect.signature(listener).parameters)
    label = getattr(listener, "__qualname__", "listener")

    async def run(args: AsyncArgs) -> None:
        called = asyncio.Event()
        ack = _SignallingAck(args.ack, called)
        kwargs = {name: ack if name == "ack" else getattr(args, name) for name in names}
        request = args.context.get(ONCE)
        with contextlib.ExitStack() as stack:
            if isinstance(request, once.Request):  # the task takes the scope with it
                stack.enter_context(once.scope(request, pool=services.pool))
            task = services.inflight.spawn(_dropping_repeats(listener(**kwargs)), name=label)
        acked = asyncio.ensure_future(called.wait())
        try:
            await asyncio.wait({task, acked}, timeout=ACK_WAIT, return_when=asyncio.FIRST_COMPLETED)
        finally:
            acked.cancel()
        if task.done() and not called.is_set():
            task.result()  # it failed before its ack: Bolt's error handler answers (500)

    return run


def build_slack_app(services: Services) -> AsyncApp:
    # Requests are verified once, at the HTTP edge (bot/runtime/web.py); the shell feeds the app
    # directly.
    app = AsyncApp(
        client=services.client,
        request_verification_enabled=False,
        raise_error_for_unhandled_request=False,
        process_before_response=True,  # and every listener acks first: see _acks_first
    )

    def first(
        listener: Callable[..., Coroutine[Any, Any, None]],
    ) -> Callable[[AsyncArgs], Awaitable[None]]:
        return _acks_first(services, listener)

    app.middleware(_once_per_request(services))
    app.middleware(_respond_over_shared_session(services))
    ic = IcHandlers(services)
    app.command("/ic")(first(ic.command))
    app.action(re.compile(rf"^{re.escape(IcAction.PICK_INCIDENT.value)}:"))(first(ic.pick_incident))
    app.action(IcAction.SHOW_OLDER.value)(first(ic.timeline_page))
    app.action(IcAction.SHOW_NEWER.value)(first(ic.timeline_page))
    diagnose = DiagnoseHandlers(services)
    app.command("/diagnose")(first(diagnose.command))
    app.action(re.compile(rf"^{re.escape(RemediationAction.REQUEST.value)}:"))(
        first(diagnose.remediation_clicked)
    )
    approvals = ApprovalHandlers(services)
    app.command("/rollback")(first(approvals.rollback))
    app.action(ApprovalAction.APPROVE.value)(first(approvals.approve))
    app.action(ApprovalAction.DENY.value)(first(approvals.deny))
    app.action(ApprovalAction.REQUEST_AGAIN.value)(first(approvals.request_again))
    prompts = PromptHandlers(services)
    app.action(PromptAction.POST_UPDATE.value)(first(prompts.post_update_clicked))
    app.view(ViewId.STATUS_UPDATE.value)(first(prompts.status_submitted))
    app.action(ChecklistAction.TICK.value)(first(prompts.checklist_ticked))
    mentions = MentionHandlers()
    app.event("app_mention")(first(mentions.app_mention))
    scribe = ScribeHandlers(services)
    app.event("message")(first(scribe.message))
    app.event("reaction_added")(first(scribe.reaction_added))
    app.event("reaction_removed")(first(scribe.reaction_removed))
    app.message_shortcut(ShortcutId.ADD_TO_TIMELINE.value)(first(scribe.add_to_timeline))
    app.view(ViewId.ADD_TO_TIMELINE.value)(first(scribe.add_to_timeline_submitted))
    return app
