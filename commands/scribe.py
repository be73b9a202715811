"""Listeners of the scribe: thread messages, edits, deletions and :pushpin: pins (Events API),
and the "Add to incident timeline" message shortcut with its form.

Slack's repeats are dropped before these run (`commands.app._once_per_request`, by `event_id`), and
Bolt drops the bot's own events; the domain (`bot.domain.scribe`) ignores any other bot's messages.
Events have nobody to answer, so failures are logged with an error id; a :pushpin: that can't
be placed is explained to the person who added it, ephemerally.

The shortcut acks at once and opens the form with the trigger_id (valid for 3 seconds). The
form's submission is checked before its ack, so a stale or invalid one is answered in the form
(`response_action: errors`) and changes nothing; the key event is written after the ack, and
the person is told ephemerally.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import IntegrationError, Repeated, UserError
from bot.core.logs import get_logger
from bot.core.models import incident_ref
from bot.core.text import storable
from bot.domain import once, timeline
from bot.domain.ports import ChatMessage
from bot.domain.scribe import BOT, PIN_REACTION, KeyEvent
from commands import blocks
from commands.edge import Respond, reply
from commands.services import Services

log = get_logger(__name__)

Ack = Callable[[], Awaitable[Any]]

# Message subtypes that are a person saying something (others: joins, topic changes, …).
SPOKEN = {None, "thread_broadcast", "file_share", "me_message"}
# The form's checks (database and Slack reads) must leave time to ack within Slack's 3 s.
CHECK_BUDGET_SECONDS = 2.0
NO_INCIDENTS = (
    "There are no incidents to add to: none is open and none was resolved in the last 7 days."
)
STALE_FORM = "This form is no longer valid; use the shortcut on the message again."


def chat_message(message: dict[str, Any], *, channel: str, bot_user_id: str | None) -> ChatMessage:
    """A message as Slack sends it (an event, `message_changed`'s `message`, reactions.get)."""
    user = message.get("user")
    is_bot = bool(
        message.get("bot_id")
        or message.get("subtype") == "bot_message"
        or (bot_user_id is not None and user == bot_user_id)
    )
    return ChatMessage(
        channel=channel,
        ts=str(message.get("ts") or ""),
        user=str(user) if user else None,
        text=storable(str(message.get("text") or "")),
        thread_ts=str(message["thread_ts"]) if message.get("thread_ts") else None,
        is_bot=is_bot,
        files=len(message.get("files") or []),
    )


RETRY_DELAYS = (0.5, 2.0, 5.0)  # seconds between attempts of one event's capture


async def retrying(
    what: str, work: Callable[[], Awaitable[object]], *, delays: tuple[float, ...] = RETRY_DELAYS
) -> None:
    """Run one event's scribe work, again after a failure (a database blip, Slack slow).

    Slack does not deliver an event again once it got its 200, so giving up at the first error
    would lose a timeline entry. The scribe's work is idempotent (a capture, pin or redaction
    done twice is done once), so trying again is safe. A UserError is an answer, not a failure:
    it is raised at once. After the last attempt the failure is logged with an error id.
    """
    for attempt in range(len(delays) + 1):
        try:
            await work()
            return
        except UserError:
            raise
        except Exception:
            if attempt == len(delays):
                log.exception(f"scribe.{what}_failed", error_id=uuid.uuid4().hex[:12])
                return
            log.warning(f"scribe.{what}_retrying", attempt=attempt + 1, exc_info=True)
            await asyncio.sleep(delays[attempt])


class ScribeHandlers:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.scribe = services.scribe

    async def message(
        self,
        ack: Ack,
        event: dict[str, Any],
        context: AsyncBoltContext,
        client: AsyncWebClient,
    ) -> None:
        """Every `message` event: new messages, `message_changed`, `message_deleted`."""
        await ack()
        subtype = event.get("subtype")
        channel = str(event.get("channel") or "")
        bot_user_id = context.bot_user_id
        async with self.services.inflight.track():
            if subtype in SPOKEN:
                message = chat_message(event, channel=channel, bot_user_id=bot_user_id)
                with timeline.notices() as redacted:
                    await retrying("capture", lambda: self.scribe.message_posted(message))
                await self._tell_redacted(client, message, redacted)
            elif subtype == "message_changed" and isinstance(event.get("message"), dict):
                edited = chat_message(event["message"], channel=channel, bot_user_id=bot_user_id)
                with timeline.notices() as redacted:
                    await retrying("edit", lambda: self.scribe.message_edited(edited))
                await self._tell_redacted(client, edited, redacted)
            elif subtype == "message_deleted" and event.get("deleted_ts"):
                previous = event.get("previous_message") or {}
                await retrying(
                    "redact",
                    lambda: self.scribe.message_deleted(
                        channel=channel,
                        ts=str(event["deleted_ts"]),
                        thread_ts=previous.get("thread_ts"),
                        author=previous.get("user"),
                    ),
                )

    async def reaction_added(self, ack: Ack, event: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        item = event.get("item") or {}
        if event.get("reaction") != PIN_REACTION or item.get("type") != "message":
            return
        user, channel, ts = str(event.get("user")), str(item.get("channel")), str(item.get("ts"))
        async with self.services.inflight.track():
            try:
                with timeline.notices() as redacted:
                    await retrying("pin", lambda: self.scribe.pin(channel=channel, ts=ts, by=user))
            except UserError as exc:
                await self._tell(client, channel=channel, user=user, text=str(exc))
            else:
                await self._tell_authors(client, channel=channel, redacted=redacted)

    async def reaction_removed(self, ack: Ack, event: dict[str, Any]) -> None:
        await ack()
        item = event.get("item") or {}
        if event.get("reaction") != PIN_REACTION or item.get("type") != "message":
            return
        async with self.services.inflight.track():
            await retrying(
                "unpin",
                lambda: self.scribe.unpin(
                    channel=str(item.get("channel")),
                    ts=str(item.get("ts")),
                    by=str(event.get("user")),
                ),
            )

    # -- the message shortcut ----------------------------------------------------------------

    async def add_to_timeline(
        self,
        ack: Ack,
        shortcut: dict[str, Any],
        client: AsyncWebClient,
        respond: Respond,
        context: AsyncBoltContext,
    ) -> None:
        """The "Add to incident timeline" shortcut on a message: ask which incident, in a form."""
        await ack()
        async with self.services.inflight.track():
            try:
                channel = str((shortcut.get("channel") or {}).get("id") or "")
                message = chat_message(
                    shortcut.get("message") or {}, channel=channel, bot_user_id=context.bot_user_id
                )
                ts = message.ts or str(shortcut.get("message_ts") or "")
                choices, selected = await self.scribe.key_event_choices(
                    channel=channel, message=message
                )
                if not choices:
                    await reply(
                        respond, blocks.confirmation(NO_INCIDENTS), response_type="ephemeral"
                    )
                    return
                view = blocks.key_event_modal(
                    channel=channel, ts=ts, author=message.user, text=message.text,
                    choices=choices, selected=selected,
                )  # fmt: skip
                await once.claim_first()  # one form per use of the shortcut
                await client.views_open(trigger_id=shortcut["trigger_id"], view=view)
            except Repeated:
                raise
            except Exception:
                error_id = uuid.uuid4().hex[:12]
                log.exception("scribe.shortcut_failed", error_id=error_id)
                await reply(
                    respond,
                    blocks.confirmation(blocks.error_text(error_id)),
                    response_type="ephemeral",
                )

    async def add_to_timeline_submitted(
        self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """The form: check it (errors go back into the form), ack, then mark the key event."""
        user = str(body["user"]["id"])
        try:
            meta = json.loads(str(view.get("private_metadata") or ""))
            channel, ts = str(meta["channel"]), str(meta["ts"])
            state = (view.get("state") or {}).get("values") or {}
            field = (state.get(blocks.KEY_EVENT_FIELD) or {}).get(blocks.KEY_EVENT_FIELD) or {}
            incident_id = int((field.get("selected_option") or {})["value"])
            if not channel or not ts:
                raise ValueError("no message")
        except (ValueError, KeyError, TypeError):
            await ack(response_action="errors", errors={blocks.KEY_EVENT_FIELD: STALE_FORM})
            return
        try:
            async with asyncio.timeout(CHECK_BUDGET_SECONDS):
                target = await self.scribe.key_event_target(
                    channel=channel, ts=ts, incident_id=incident_id
                )
        except UserError as exc:
            await ack(response_action="errors", errors={blocks.KEY_EVENT_FIELD: str(exc)})
            return
        except (IntegrationError, TimeoutError) as exc:
            log.warning("scribe.shortcut_check_failed", error=str(exc) or type(exc).__name__)
            await ack(
                response_action="errors",
                errors={blocks.KEY_EVENT_FIELD: "Slack did not answer in time; try again."},
            )
            return
        except Exception:
            error_id = uuid.uuid4().hex[:12]
            log.exception("scribe.shortcut_check_failed", error_id=error_id)
            await ack(
                response_action="errors",
                errors={blocks.KEY_EVENT_FIELD: blocks.error_text(error_id)},
            )
            return
        await ack()
        async with self.services.inflight.track():
            with timeline.notices() as redacted:
                said = await self._mark(target, user)
            await self._tell(client, channel=channel, user=user, text=said)
            await self._tell_authors(client, channel=channel, redacted=redacted)

    async def _mark(self, target: KeyEvent, user: str) -> str:
        ref = incident_ref(target.incident_id)
        try:
            try:
                entry = await self.scribe.mark_key_event(target, by=user)
            except UserError as exc:
                await once.claim_first()  # an answer: a repeat of this form gets none
                return f"Nothing was added: {exc}"
            if entry is None:
                await once.claim_first()
                return f":pushpin: That message is already a key event of *{ref}*."
        except Repeated:
            raise
        except Exception:
            error_id = uuid.uuid4().hex[:12]
            log.exception("scribe.shortcut_mark_failed", error_id=error_id)
            return blocks.error_text(error_id)
        return f":pushpin: Added to *{ref}*'s timeline as a key event."

    async def _tell(
        self,
        client: AsyncWebClient,
        *,
        channel: str,
        user: str,
        text: str,
        thread_ts: str | None = None,
    ) -> None:
        try:
            if thread_ts:
                await client.chat_postEphemeral(
                    channel=channel, user=user, text=text, thread_ts=thread_ts
                )
            else:
                await client.chat_postEphemeral(channel=channel, user=user, text=text)
        except Exception:
            log.exception("scribe.tell_failed")

    async def _tell_authors(
        self, client: AsyncWebClient, *, channel: str, redacted: list[timeline.Notice]
    ) -> None:
        """A pinned or shortcut-added message held something the guard kept out: its author
        (not the person who pinned it) is told, in the message's channel."""
        for author in dict.fromkeys(n.author for n in redacted if n.author != BOT):
            summary = timeline.summary_of([n for n in redacted if n.author == author])
            await self._tell(
                client, channel=channel, user=author,
                text=blocks.redaction_notice(summary, posted=True),
            )  # fmt: skip

    async def _tell_redacted(
        self, client: AsyncWebClient, message: ChatMessage, redacted: list[timeline.Notice]
    ) -> None:
        """The guard kept something of `message` out of the timeline: tell its author, in the
        thread, that it was not recorded and that Slack still has it."""
        if not redacted or not message.user:
            return
        summary = timeline.summary_of(redacted)
        await self._tell(
            client, channel=message.channel, user=message.user,
            text=blocks.redaction_notice(summary, posted=True), thread_ts=message.thread_ts,
        )  # fmt: skip
