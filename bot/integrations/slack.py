"""`Chat` over Slack's Web API (slack_sdk's AsyncWebClient; base URL from settings)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import ConfigError, ErrorCode, IntegrationError
from bot.domain.ports import ChatMessage, SharedFile

if TYPE_CHECKING:
    from bot.domain.ports import Chat, MessageSource


class MessageParser(Protocol):
    def __call__(
        self, message: dict[str, Any], *, channel: str, bot_user_id: str | None
    ) -> ChatMessage: ...


CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
# Errors that the same request will never get past.
PERMANENT = {
    "channel_not_found", "is_archived", "msg_too_long", "no_text", "invalid_blocks",
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "missing_scope",
    "message_not_found", "cant_update_message", "invalid_arguments", "not_in_channel",
}  # fmt: skip
HISTORY_LOOKBACK = 200
THREAD_PAGES = 25  # 5,000 replies
UPLOAD_STATUS = re.compile(r"status: (\d+)")
# Slack's error names whose code is not `refused` (any other error name answered with HTTP 200).
CODES = {
    "channel_not_found": ErrorCode.NOT_FOUND, "message_not_found": ErrorCode.NOT_FOUND,
    "file_not_found": ErrorCode.NOT_FOUND, "file_deleted": ErrorCode.NOT_FOUND,
    "user_not_found": ErrorCode.NOT_FOUND, "thread_not_found": ErrorCode.NOT_FOUND,
    "invalid_auth": ErrorCode.DENIED, "not_authed": ErrorCode.DENIED,
    "account_inactive": ErrorCode.DENIED, "token_revoked": ErrorCode.DENIED,
    "token_expired": ErrorCode.DENIED, "missing_scope": ErrorCode.DENIED,
    "not_allowed_token_type": ErrorCode.DENIED, "ratelimited": ErrorCode.RATE_LIMITED,
    "fatal_error": ErrorCode.UNAVAILABLE, "internal_error": ErrorCode.UNAVAILABLE,
    "service_unavailable": ErrorCode.UNAVAILABLE, "request_timeout": ErrorCode.TIMEOUT,
}  # fmt: skip


def _code(exc: Exception) -> ErrorCode:
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        if status == 429 or status >= 500:
            return ErrorCode.for_status(status)
        return CODES.get(_error_name(exc), ErrorCode.REFUSED)
    return ErrorCode.for_exception(exc)


def _wrap(exc: Exception, method: str) -> IntegrationError:
    code = _code(exc)
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        error = str(exc.response.get("error", "unknown_error"))
        if status == 429:
            retry_after = float(exc.response.headers.get("Retry-After", "1") or 1)
            return IntegrationError(
                "slack", code, f"{method} rate limited", reason=error, retry_after=retry_after
            )
        if status >= 500:
            return IntegrationError("slack", code, f"{method} failed with HTTP {status}")
        return IntegrationError(
            "slack", code, f"{method}: {error}", reason=error, permanent=error in PERMANENT
        )
    return IntegrationError("slack", code, f"{method}: {type(exc).__name__}")


def _with_key(data: dict[str, Any], event_type: str, key: str) -> str | None:
    """The ts of the message in a history page that carries this metadata key, if any."""
    for message in data.get("messages", []):
        meta = message.get("metadata") or {}
        if (
            meta.get("event_type") == event_type
            and (meta.get("event_payload") or {}).get("key") == key
        ):
            return str(message["ts"])
    return None


class SlackChat:
    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """Call a Web API method through the SDK's own method (JSON for writes, form for reads)."""
        bound = getattr(self.client, method.replace(".", "_"))
        try:
            response = await bound(**kwargs)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            raise _wrap(exc, method) from exc
        data = response.data
        assert isinstance(data, dict)
        return data

    async def post(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]],
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        args: dict[str, Any] = {"channel": channel, "text": text, "blocks": blocks}
        if thread_ts:
            args["thread_ts"] = thread_ts
        if metadata:
            args["metadata"] = metadata
        try:
            data = await self._call("chat.postMessage", **args)
        except IntegrationError as exc:
            if exc.reason != "not_in_channel":
                raise
            await self._call("conversations.join", channel=channel)
            data = await self._call("chat.postMessage", **args)
        return str(data["ts"])

    async def update(
        self, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]
    ) -> None:
        await self._call("chat.update", channel=channel, ts=ts, text=text, blocks=blocks)

    async def find_posted(
        self, *, channel: str, thread_ts: str | None, event_type: str, key: str
    ) -> str | None:
        if not thread_ts:  # the channel's history comes newest first: the last page will do
            data = await self._call(
                "conversations.history",
                channel=channel,
                include_all_metadata=True,
                limit=HISTORY_LOOKBACK,
            )
            return _with_key(data, event_type, key)
        # A thread's replies come oldest first, and a busy incident's thread (where the digest
        # lives) runs past one page: read on, up to THREAD_PAGES pages.
        cursor = None
        for _ in range(THREAD_PAGES):
            data = await self._call(
                "conversations.replies",
                channel=channel,
                ts=thread_ts,
                include_all_metadata=True,
                limit=HISTORY_LOOKBACK,
                **({"cursor": cursor} if cursor else {}),
            )
            found = _with_key(data, event_type, key)
            cursor = (data.get("response_metadata") or {}).get("next_cursor")
            if found is not None or not cursor:
                return found
        return None

    async def delete(self, *, channel: str, ts: str) -> None:
        try:
            await self._call("chat.delete", channel=channel, ts=ts)
        except IntegrationError as exc:
            if exc.reason != "message_not_found":
                raise

    async def delete_file(self, file_id: str) -> None:
        try:
            await self._call("files.delete", file=file_id)
        except IntegrationError as exc:
            if exc.reason in ("file_not_found", "file_deleted"):
                return  # gone already: what we wanted
            raise

    async def share_file(
        self,
        *,
        channel: str,
        thread_ts: str | None,
        filename: str,
        title: str,
        content: str | bytes,
        comment: str,
    ) -> SharedFile:
        """slack_sdk's files_upload_v2: files.getUploadURLExternal, the bytes POSTed to the URL
        it gives, then files.completeUploadExternal shares the file with `comment`."""
        try:
            response = await self.client.files_upload_v2(
                channel=channel,
                thread_ts=thread_ts,
                filename=filename,
                title=title,
                # slack_sdk takes text as `content`, anything else (a ZIP) as `file`.
                **({"content": content} if isinstance(content, str) else {"file": content}),
                initial_comment=comment,
            )
        except SlackRequestError as exc:  # the upload URL did not answer 200
            status = UPLOAD_STATUS.search(str(exc))
            why = f"HTTP {status.group(1)}" if status else type(exc).__name__
            raise IntegrationError(
                "slack",
                ErrorCode.for_status(int(status.group(1))) if status else ErrorCode.UNAVAILABLE,
                f"uploading {filename} failed with {why}",
            ) from exc
        except SlackApiError as exc:
            method = str(exc.response.api_url).rsplit("/", 1)[-1] or "files.upload_v2"
            raise _wrap(exc, method) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _wrap(exc, "files.upload_v2") from exc
        file = response.get("file") or {}
        return SharedFile(
            id=str(file.get("id") or ""),
            name=str(file.get("name") or filename),
            title=str(file.get("title") or title),
            permalink=str(file.get("permalink") or ""),
        )

    async def resolve_channel(self, name_or_id: str) -> str:
        name = name_or_id.lstrip("#")
        if CHANNEL_ID.match(name):
            return name
        cursor: str | None = None
        while True:
            args: dict[str, Any] = {
                "types": "public_channel,private_channel",
                "exclude_archived": True,
                "limit": 200,
            }
            if cursor:
                args["cursor"] = cursor
            data = await self._call("conversations.list", **args)
            for channel in data.get("channels", []):
                if channel.get("name") == name:
                    return str(channel["id"])
            cursor = (data.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                raise ConfigError(
                    f"INCIDENT_CHANNEL #{name} was not found; create it and invite the bot,"
                    " or set INCIDENT_CHANNEL to the channel id"
                )


class SlackMessages:
    """`bot.domain.ports.MessageSource` over the Web API: chat.getPermalink and reactions.get.

    `parse` reads a message payload as the scribe sees it (`commands.scribe.chat_message`, the
    same reading the Events API listeners use).
    """

    def __init__(self, client: AsyncWebClient, *, parse: MessageParser) -> None:
        self.client = client
        self.parse = parse

    async def permalink(self, channel: str, ts: str) -> str:
        try:
            response = await self.client.chat_getPermalink(channel=channel, message_ts=ts)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            raise IntegrationError(
                "slack",
                _code(exc),
                f"chat.getPermalink: {_error_name(exc)}",
                reason=_error_name(exc) if isinstance(exc, SlackApiError) else None,
            ) from exc
        return str(response["permalink"])

    async def message(self, channel: str, ts: str) -> ChatMessage | None:
        try:
            response = await self.client.reactions_get(channel=channel, timestamp=ts, full=True)
        except SlackApiError as exc:
            if _error_name(exc) == "message_not_found":
                return None
            raise IntegrationError(
                "slack", _code(exc), f"reactions.get: {_error_name(exc)}", reason=_error_name(exc)
            ) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise IntegrationError(
                "slack", _code(exc), f"reactions.get: {_error_name(exc)}"
            ) from exc
        found = response.get("message")
        if not isinstance(found, dict):
            return None
        return self.parse(found, channel=channel, bot_user_id=None)


def _error_name(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", "unknown_error"))
    return type(exc).__name__


if TYPE_CHECKING:  # mypy proves the adapters are the ports (bot/domain/ports.py)

    def _conforms(chat: SlackChat, messages: SlackMessages) -> tuple[Chat, MessageSource]:
        return chat, messages
