"""A local stand-in for the Slack Web API, served over real HTTP on 127.0.0.1.

Point the real ``slack_sdk.web.async_client.AsyncWebClient(token=..., base_url=fake.url)`` at
it and the bot runs unchanged. The wire format follows Slack's published shapes
(``slack_web_openapi_v2.json`` and the Java SDK's response samples): every Web API answer is
HTTP 200 with ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``, except injected
faults (429 + ``Retry-After``, or 5xx).

Every payload is checked as Slack checks it: ``text`` up to 40,000 characters (else
``msg_too_long``) and ``blocks`` through slack_sdk's Block Kit models plus the documented
limits (``sandbox.block_kit``), else ``invalid_blocks`` with Slack's JSON pointer in
``response_metadata.messages``; on chat methods, on response URLs (HTTP 400) and on views
(``invalid_arguments``). So every scenario test is also a Block Kit test.

Requests may arrive as JSON bodies, urlencoded forms (where ``blocks``/``metadata``/
``attachments`` are JSON strings) or query-string parameters; all three are merged (body wins).
The token comes from ``Authorization: Bearer ...`` or a ``token`` parameter and is never
recorded or logged.

Everything the bot did is kept for assertions: :attr:`FakeSlack.calls`, :attr:`FakeSlack.messages`
(per channel, in post order, roots and replies), :attr:`FakeSlack.ephemerals`,
:attr:`FakeSlack.pins` and :attr:`FakeSlack.files` (uploads, with their bytes). Listeners in
:attr:`FakeSlack.on_change` are called with ``(kind, obj)`` for every ``"post"``, ``"update"``,
``"ephemeral"``, ``"delete"`` and ``"reaction"``.

Files arrive as slack_sdk's ``files_upload_v2`` sends them: ``files.getUploadURLExternal``
hands out a file id and an upload URL served by the stand-in itself (``/upload/v1/<ticket>``,
which takes the raw bytes or a multipart form and answers ``OK - <size>`` as Slack's file
service does), then ``files.completeUploadExternal`` shares them: a message from the bot with
a ``files`` list (and the ``initial_comment`` as its text) in the channel or in ``thread_ts``'s
thread. Until then a file is private and in no channel.

What people do goes the other way, as Slack's Events API delivers it: after
:meth:`FakeSlack.deliver_events_to`, :meth:`FakeSlack.user_says` and :meth:`FakeSlack.user_reacts`
change the stand-in's state and hand the app a signed ``event_callback`` request (a ``message``,
``reaction_added`` or ``reaction_removed`` event shaped like Slack's). The bot's own posts are
not echoed back as events: Bolt drops an app's own events anyway.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import mimetypes
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from aiohttp import web

from sandbox.block_kit import message_problems, view_problems
from sandbox.loopback import StandIn, serve_on_loopback
from sandbox.slack_requests import SignedRequest, SlackRequests

__all__ = ["Call", "Ephemeral", "FakeSlack", "Message", "UploadedFile"]

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 40_000
DOMAIN = "example"
_JSON_FIELDS = ("blocks", "attachments", "metadata")
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_BOT_ICONS = {
    "image_36": "https://a.slack-edge.com/80588/img/plugins/app/bot_36.png",
    "image_48": "https://a.slack-edge.com/80588/img/plugins/app/bot_48.png",
    "image_72": "https://a.slack-edge.com/80588/img/plugins/app/service_72.png",
}


@dataclass
class Call:
    """One recorded Web API (or response_url) request."""

    method: str
    args: dict[str, Any]
    status: int
    error: str | None = None  # Slack's error when it was refused (`ok: false`)


@dataclass
class Message:
    """A message as the stand-in stores it."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    user: str
    thread_ts: str | None
    metadata: dict[str, Any] | None
    edited: bool = False
    reactions: dict[str, list[str]] = field(default_factory=dict)
    broadcast: bool = False
    attachments: list[dict[str, Any]] = field(default_factory=list)
    edited_ts: str | None = None
    client_msg_id: str | None = None  # set on messages people post from a Slack client
    files: list[dict[str, Any]] = field(default_factory=list)  # file objects shared with it

    @property
    def is_root(self) -> bool:
        return self.thread_ts is None or self.thread_ts == self.ts


@dataclass
class Ephemeral:
    """A message only one user sees: ``chat.postEphemeral`` or a ``response_url`` post."""

    channel: str
    user: str | None
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None
    via: str
    replace_original: bool = False
    delete_original: bool = False
    response_type: str = "ephemeral"


@dataclass
class UploadedFile:
    """A file as the stand-in holds it: from ``files.getUploadURLExternal`` on."""

    id: str
    name: str
    length: int  # what the uploader declared
    created: int
    ticket: str
    alt_txt: str | None = None
    content: bytes | None = None  # None until the bytes reach the upload URL
    title: str | None = None
    completed: bool = False  # files.completeUploadExternal took it (it can only once)
    deleted: bool = False  # files.delete: its bytes are gone, its messages show a tombstone
    shared_in: list[tuple[str, str]] = field(default_factory=list)  # (channel, message ts)

    @property
    def text(self) -> str:
        return (self.content or b"").decode("utf-8", errors="replace")


class _SlackError(Exception):
    def __init__(
        self, error: str, *, detail: str | None = None, errors: list[str] | None = None
    ) -> None:
        super().__init__(error)
        self.error = error
        self.detail = detail
        self.errors = errors


@dataclass
class _Channel:
    id: str
    name: str
    created: int
    is_member: bool = True
    im_user: str | None = None


@dataclass
class _User:
    id: str
    name: str
    real_name: str
    is_bot: bool
    updated: int


@dataclass
class _Fault:
    status: int
    retry_after: int
    error: str | None


@dataclass
class _Hook:
    channel: str
    user: str
    message_ts: str | None


Handler = Callable[[dict[str, Any]], dict[str, Any]]
EventSink = Callable[[SignedRequest], Awaitable[object]]


class FakeSlack(StandIn):
    """The Slack Web API stand-in. Use ``async with FakeSlack() as slack: ...``."""

    def __init__(
        self,
        *,
        token: str = "xoxb-test-token",  # noqa: S107 - a fake token for the fake
        bot_user_id: str = "UBOT00001",
        team_id: str = "T0001",
        channels: Iterable[str] = ("waqiti-incidents",),
        bot_name: str = "icbot",
        clock: Callable[[], float] = time.time,
        users_file: Path | None = None,
    ) -> None:
        """`users_file`: where the workspace's members are kept between runs, as Slack's
        `users.list` answers them (the shell's people keep their ids, and `icbot postmortem`
        names them from it)."""
        self.token = token
        self.bot_user_id = bot_user_id
        self.team_id = team_id
        self.team_name = "Example"
        self.bot_id = "B0000000001"
        self.app_id = "A0000000001"
        self.bot_name = bot_name
        self._clock = clock
        self._created = int(clock())

        self.calls: list[Call] = []
        self.messages: dict[str, list[Message]] = {}
        self.ephemerals: list[Ephemeral] = []
        self.pins: dict[str, list[str]] = {}
        self.emails: dict[str, str] = {}  # lower-cased email -> user id
        self.usergroups: dict[str, list[str]] = {}  # S… -> user ids
        self.views: dict[str, dict[str, Any]] = {}  # view id -> the view as Slack holds it
        self.opened_views: list[dict[str, Any]] = []  # views.open/push in call order
        self.files: dict[str, UploadedFile] = {}  # file id -> the upload, in upload order
        self._next_file = 1
        # (host, port) each response_url post came from: how many connections the bot opened
        self.response_url_peers: list[tuple[str, int]] = []
        self._next_view = 1
        self.on_change: list[Callable[[str, Any], None]] = []
        self.latency: dict[str, float] = {}  # method -> seconds to wait before answering
        self._event_requests: SlackRequests | None = None
        self._event_sink: EventSink | None = None

        self._channels: dict[str, _Channel] = {}
        self._channel_by_name: dict[str, str] = {}
        self._users: dict[str, _User] = {}
        self._user_by_name: dict[str, str] = {}
        self._hooks: dict[str, _Hook] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self.outage: int | None = None  # `down()`: every Web API call answers this 5xx
        self._next_channel = 1
        self._next_user = 1
        self._ts_sec = 0
        self._ts_seq = 100

        self._runner: web.AppRunner | None = None
        self._port: int | None = None

        self._users[bot_user_id] = _User(bot_user_id, bot_name, bot_name, True, self._created)
        self._user_by_name[bot_name] = bot_user_id
        self.users_file = users_file
        if users_file is not None:
            self._load_users(users_file)
        for name in channels:
            self.add_channel(name)

        self._methods: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.delete": self._chat_delete,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.info": self._conversations_info,
            "conversations.list": self._conversations_list,
            "conversations.join": self._conversations_join,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "users.list": self._users_list,
            "users.lookupByEmail": self._users_lookup_by_email,
            "usergroups.users.list": self._usergroups_users_list,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "reactions.get": self._reactions_get,
            "pins.add": self._pins_add,
            "pins.remove": self._pins_remove,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.push": self._views_push,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
            "files.delete": self._files_delete,
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Serve on 127.0.0.1 on a free port."""
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/response/{token}", self._handle_response_url)
        app.router.add_post("/upload/v1/{ticket}", self._handle_upload)
        self._runner, self._port = await serve_on_loopback(app)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def root(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeSlack is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def url(self) -> str:
        """The ``base_url`` for slack_sdk clients (ends with a slash)."""
        return f"{self.root}/api/"

    # ------------------------------------------------------------------ fixtures / helpers

    def add_channel(self, name: str) -> str:
        """Create a public channel the bot is a member of; idempotent by name."""
        name = name.lstrip("#")
        if name in self._channel_by_name:
            return self._channel_by_name[name]
        cid = f"C{self._next_channel:010d}"
        self._next_channel += 1
        self._channels[cid] = _Channel(cid, name, self._created)
        self._channel_by_name[name] = cid
        self.messages[cid] = []
        return cid

    def channel_id(self, name_or_id: str) -> str:
        key = name_or_id.lstrip("#")
        if key in self._channels:
            return key
        if key in self._channel_by_name:
            return self._channel_by_name[key]
        raise KeyError(name_or_id)

    def dm_id(self, user: str) -> str:
        """The id of the bot's DM channel with ``user`` (created on first use)."""
        if user not in self._users:
            raise KeyError(user)
        for ch in self._channels.values():
            if ch.im_user == user:
                return ch.id
        cid = f"D{self._next_channel:010d}"
        self._next_channel += 1
        self._channels[cid] = _Channel(cid, "", self._created, im_user=user)
        self.messages[cid] = []
        return cid

    def add_user(
        self,
        name: str,
        *,
        real_name: str | None = None,
        is_bot: bool = False,
        email: str | None = None,
    ) -> str:
        """Register a workspace member; idempotent by name. Returns the user id."""
        if name in self._user_by_name:
            if email:
                self.emails[email.lower()] = self._user_by_name[name]
            return self._user_by_name[name]
        uid = f"U{self._next_user:010d}"
        self._next_user += 1
        self._users[uid] = _User(uid, name, real_name or name, is_bot, int(self._clock()))
        self._user_by_name[name] = uid
        if email:
            self.emails[email.lower()] = uid
        self._save_users()
        return uid

    def _load_users(self, path: Path) -> None:
        try:
            members = json.loads(path.read_text(encoding="utf-8")).get("members") or []
        except FileNotFoundError:
            return
        for member in members:
            uid, name = str(member["id"]), str(member["name"])
            if uid == self.bot_user_id or name in self._user_by_name:
                continue
            real_name = str(member.get("real_name") or name)
            self._users[uid] = _User(uid, name, real_name, False, int(member.get("updated", 0)))
            self._user_by_name[name] = uid
            email = (member.get("profile") or {}).get("email")
            if email:
                self.emails[str(email).lower()] = uid
            if uid.startswith("U") and uid[1:].isdigit():
                self._next_user = max(self._next_user, int(uid[1:]) + 1)

    def _save_users(self) -> None:
        if self.users_file is None:
            return
        people = [self._render_user(u) for u in self._users.values() if not u.is_bot]
        self.users_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.users_file.with_suffix(".tmp")
        temporary.write_text(json.dumps({"ok": True, "members": people}, indent=1) + "\n")
        temporary.replace(self.users_file)

    def add_usergroup(self, group_id: str, user_ids: Iterable[str]) -> None:
        """A Slack user group (``S…``) and its members, for ``usergroups.users.list``."""
        self.usergroups[group_id] = list(user_ids)

    def user_id(self, name: str) -> str | None:
        return self._user_by_name.get(name.lstrip("@"))

    def user_names(self) -> list[str]:
        """Every member's name (the shell completes @names with them)."""
        return sorted(self._user_by_name)

    def user_name(self, user_id: str) -> str | None:
        user = self._users.get(user_id)
        return user.name if user else None

    def new_response_url(self, *, channel: str, user: str, message_ts: str | None = None) -> str:
        """A response_url like the ones in interaction payloads.

        POST JSON ``{text, blocks, response_type, replace_original, delete_original, thread_ts}``
        to it. ``message_ts`` (optional) names the message ``replace_original``/``delete_original``
        act on, as for a button in that message.
        """
        token = secrets.token_urlsafe(12)
        self._hooks[token] = _Hook(self.channel_id(channel), user, message_ts)
        return f"{self.root}/response/{token}"

    def fail(
        self,
        method: str,
        *,
        status: int = 429,
        retry_after: int = 1,
        error: str | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls to ``method`` fail (``"response_url"`` and
        ``"upload_url"``, the POST of a file's bytes, work too).

        429 -> HTTP 429 + ``Retry-After`` + ``ratelimited``; 5xx -> that status with a small JSON
        body; 200 -> ``{"ok": false, "error": error}``.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        self._faults.setdefault(method, []).extend(
            _Fault(status, retry_after, error) for _ in range(times)
        )

    def down(self, status: int = 503) -> None:
        """Slack is down: every Web API call answers ``status`` (5xx) until :meth:`up`."""
        if status < 500:
            raise ValueError("an outage answers 5xx")
        self.outage = status

    def up(self) -> None:
        """Slack answers again."""
        self.outage = None

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def roots(self, channel: str) -> list[Message]:
        return [m for m in self.messages[self.channel_id(channel)] if m.is_root]

    def thread(self, channel: str, ts: str) -> list[Message]:
        return [
            m for m in self.messages[self.channel_id(channel)] if m.thread_ts == ts and m.ts != ts
        ]

    def find(self, channel: str, ts: str) -> Message | None:
        for m in self.messages.get(self.channel_id(channel), []):
            if m.ts == ts:
                return m
        return None

    def post_user_message(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
    ) -> Message:
        """Put a message from a human (user id or name; unknown names are added) into a channel.

        Only the stand-in's state changes; :meth:`user_says` also delivers its event.
        """
        uid = user if user in self._users else self.add_user(user)
        msg = Message(
            channel=self.channel_id(channel),
            ts=self._next_ts(),
            text=text,
            blocks=list(blocks) if blocks is not None else _rich_text(text),
            user=uid,
            thread_ts=self._normalise_thread(self.channel_id(channel), thread_ts),
            metadata=None,
            client_msg_id=str(uuid.uuid4()),
        )
        self.messages[msg.channel].append(msg)
        self._notify("post", msg)
        return msg

    # ------------------------------------------------------------------ events to the app

    def deliver_events_to(self, requests: SlackRequests, sink: EventSink) -> None:
        """Deliver what people do to the app: each event is wrapped and signed by ``requests``
        (an ``event_callback`` envelope, Events API headers) and awaited through ``sink`` (the
        shell's dispatcher, or a POST to the bot's ``/slack/events``)."""
        self._event_requests = requests
        self._event_sink = sink

    async def user_says(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None
    ) -> Message:
        """A person posts ``text`` (in ``thread_ts``'s thread); the app gets the ``message``."""
        msg = self.post_user_message(channel, user, text, thread_ts=thread_ts)
        await self._deliver(self.message_event(msg))
        return msg

    async def user_reacts(
        self, channel: str, ts: str, user: str, name: str, *, added: bool = True
    ) -> bool:
        """A person adds (or takes away) a reaction; the app gets ``reaction_added``/``_removed``.

        False, and no event, when there is nothing to change (Slack sends none either).
        """
        msg = self.find(channel, ts)
        if msg is None:
            raise KeyError(ts)
        uid = user if user in self._users else self.add_user(user)
        name = name.strip(":")
        users = msg.reactions.get(name, [])
        if (uid in users) == added:
            return False
        if added:
            msg.reactions.setdefault(name, []).append(uid)
        else:
            users.remove(uid)
            if not users:
                del msg.reactions[name]
        self._notify("reaction", msg)
        await self._deliver(self.reaction_event(msg, user=uid, name=name, added=added))
        return True

    def message_event(self, msg: Message) -> dict[str, Any]:
        """The ``message`` event of a person's new message, as the Events API sends it."""
        event: dict[str, Any] = {
            "client_msg_id": msg.client_msg_id or str(uuid.uuid4()),
            "type": "message",
            "text": msg.text,
            "user": msg.user,
            "ts": msg.ts,
            "blocks": msg.blocks,
            "team": self.team_id,
        }
        if not msg.is_root:
            root = self.find(msg.channel, msg.thread_ts or "")
            event["thread_ts"] = msg.thread_ts
            event["parent_user_id"] = root.user if root else msg.user
        channel = self._channels[msg.channel]
        event["channel"] = msg.channel
        event["event_ts"] = msg.ts
        event["channel_type"] = "im" if channel.im_user else "channel"
        return event

    def reaction_event(
        self, msg: Message, *, user: str, name: str, added: bool = True
    ) -> dict[str, Any]:
        """``reaction_added`` / ``reaction_removed`` for ``user``'s ``name`` on ``msg``."""
        return {
            "type": "reaction_added" if added else "reaction_removed",
            "user": user,
            "item": {"type": "message", "channel": msg.channel, "ts": msg.ts},
            "reaction": name,
            "item_user": msg.user,
            "event_ts": self._next_ts(),
        }

    def payload_message(self, msg: Message) -> dict[str, Any]:
        """A message as interaction payloads (a message shortcut's ``message``) carry it."""
        return self._render_stored(msg, include_metadata=False)

    async def _deliver(self, event: dict[str, Any]) -> None:
        if self._event_requests is None or self._event_sink is None:
            raise RuntimeError("FakeSlack has nowhere to deliver events: call deliver_events_to")
        await self._event_sink(self._event_requests.event(event))

    async def _read_params(self, request: web.Request) -> tuple[dict[str, Any], str | None]:
        args: dict[str, Any] = {k: v for k, v in request.query.items()}
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            args.update({k: v for k, v in form.items() if isinstance(v, str)})
        elif request.body_exists:
            raw = await request.read()
            if request.content_type == "application/json":
                try:
                    body = json.loads(raw) if raw.strip() else {}
                except ValueError as e:
                    raise _SlackError("invalid_json") from e
                if not isinstance(body, dict):
                    raise _SlackError("json_not_object")
                args.update({k: v for k, v in body.items() if v is not None})
            elif raw:
                try:
                    args.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
                except UnicodeDecodeError as e:
                    raise _SlackError("invalid_charset") from e
        token = args.pop("token", None)
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        return args, (str(token) if token else None)

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = {}
        try:
            args, token = await self._read_params(request)
            fault = self._take_fault(method)
            if fault is None and self.outage is not None:
                fault = _Fault(self.outage, 0, "service_unavailable")
            if fault is not None:
                return self._fault_response(method, args, fault)
            handler = self._methods.get(method)
            if handler is None:
                raise _SlackError("unknown_method")
            if not token:
                raise _SlackError("not_authed")
            if not hmac.compare_digest(token.encode(), self.token.encode()):
                raise _SlackError("invalid_auth")
            _decode_json_fields(args)
            body = handler(args)
            if self.latency.get(method):
                # The call took effect; the answer is slow (a window in which a client may die).
                await asyncio.sleep(self.latency[method])
        except _SlackError as e:
            body = {"ok": False, "error": e.error}
            if e.errors:
                body["errors"] = e.errors
            if e.detail:
                body["response_metadata"] = {"messages": [f"[ERROR] {e.detail}"]}
        return self._respond(method, args, 200, body)

    def _respond(
        self,
        method: str,
        args: dict[str, Any],
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        error = None if body.get("ok", True) else str(body.get("error"))
        self.calls.append(Call(method, args, status, error))
        log.debug("fake slack %s -> %s %s", method, status, error or "ok")
        return web.json_response(body, status=status, headers=headers)

    def _take_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method)
        return queue.pop(0) if queue else None

    def _fault_response(self, method: str, args: dict[str, Any], fault: _Fault) -> web.Response:
        if fault.status == 429:
            return self._respond(
                method,
                args,
                429,
                {"ok": False, "error": fault.error or "ratelimited"},
                {"Retry-After": str(fault.retry_after)},
            )
        return self._respond(
            method, args, fault.status, {"ok": False, "error": fault.error or "fatal_error"}
        )

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        method = "response_url"
        payload: dict[str, Any] = {}
        hook = self._hooks.get(request.match_info["token"])
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if isinstance(peer, tuple):
            self.response_url_peers.append((str(peer[0]), int(peer[1])))
        try:
            raw = await request.read()
            if request.content_type == "application/x-www-form-urlencoded":
                raw = dict(parse_qsl(raw.decode("utf-8"))).get("payload", "").encode()
            parsed = json.loads(raw)
            if not isinstance(parsed, dict):
                raise ValueError("not an object")
            payload = parsed
        except ValueError:
            return self._respond(method, payload, 400, {"ok": False, "error": "invalid_payload"})
        fault = self._take_fault(method)
        if fault is not None:
            return self._fault_response(method, payload, fault)
        if hook is None:
            return self._respond(method, payload, 404, {"ok": False, "error": "expired_url"})
        try:
            _decode_json_fields(payload)
            self._apply_response_url(hook, payload)
        except _SlackError as e:
            body: dict[str, Any] = {"ok": False, "error": e.error}
            if e.errors:
                body["errors"] = e.errors
            return self._respond(method, payload, 400, body)
        return self._respond(method, payload, 200, {"ok": True})

    async def _handle_upload(self, request: web.Request) -> web.Response:
        """A file's bytes, POSTed to the URL ``files.getUploadURLExternal`` gave: raw, or as the
        first file of a multipart form. Slack's file service answers 200 ``OK - <size>``."""
        method = "upload_url"
        upload = next((f for f in self.files.values() if f.ticket == request.match_info["ticket"]),
                      None)  # fmt: skip
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            parts = [v for v in form.values() if isinstance(v, web.FileField)]
            data = parts[0].file.read() if parts else b""
        else:
            data = await request.read()
        args: dict[str, Any] = {"file_id": upload.id if upload else None, "size": len(data)}
        fault = self._take_fault(method)
        if fault is not None:
            return self._fault_response(method, args, fault)
        if upload is None or upload.completed:
            self.calls.append(Call(method, args, 404))
            return web.Response(status=404, text="Not Found")
        upload.content = data
        self.calls.append(Call(method, args, 200))
        return web.Response(status=200, text=f"OK - {len(data)}")

    def _apply_response_url(self, hook: _Hook, p: dict[str, Any]) -> None:
        replace = _flag(p, "replace_original")
        delete = _flag(p, "delete_original")
        response_type = str(p.get("response_type") or "ephemeral")
        thread_ts = _opt_str(p.get("thread_ts"))
        original = self.find(hook.channel, hook.message_ts) if hook.message_ts else None
        if delete:
            if original is not None:
                self._remove(original)
        else:
            # Checked whatever the target: an ephemeral reply has Slack's limits too.
            text, blocks, attachments = self._content(p)
            if replace and original is not None:
                original.text, original.blocks = text, blocks
                original.attachments = attachments
                self._notify("update", original)
            elif response_type == "in_channel":
                msg = self._add_bot_message(hook.channel, text, blocks, attachments, thread_ts)
                self._notify("post", msg)
                return
        eph = Ephemeral(
            channel=hook.channel,
            user=hook.user,
            text=str(p.get("text") or ""),
            blocks=_blocks(p),
            thread_ts=thread_ts,
            via="response_url",
            replace_original=replace,
            delete_original=delete,
            response_type=response_type,
        )
        self.ephemerals.append(eph)
        self._notify("ephemeral", eph)

    # ------------------------------------------------------------------ state helpers

    def _notify(self, kind: str, obj: Any) -> None:
        for listener in list(self.on_change):
            try:
                listener(kind, obj)
            except Exception:
                log.exception("fake slack on_change listener failed")

    def _next_ts(self) -> str:
        self._ts_sec = max(self._ts_sec, int(self._clock()))
        self._ts_seq += 1
        if self._ts_seq > 999_999:
            self._ts_sec, self._ts_seq = self._ts_sec + 1, 1
        return f"{self._ts_sec}.{self._ts_seq:06d}"

    def _post_target(self, value: Any) -> str:
        """chat.postMessage/postEphemeral accept a channel id, name, ``#name`` or a user id (DM)."""
        key = _opt_str(value)
        if not key:
            raise _SlackError("channel_not_found")
        try:
            return self.channel_id(key)
        except KeyError:
            pass
        if key.lstrip("@") in self._users:
            return self.dm_id(key.lstrip("@"))
        raise _SlackError("channel_not_found")

    def _channel_arg(self, a: dict[str, Any]) -> _Channel:
        """Methods other than posting take channel ids only, as Slack does."""
        cid = _opt_str(a.get("channel"))
        if not cid or cid not in self._channels:
            raise _SlackError("channel_not_found")
        return self._channels[cid]

    def _message_arg(self, channel: _Channel, a: dict[str, Any], name: str) -> Message:
        ts = _opt_str(a.get(name))
        if not ts:
            raise _SlackError("invalid_arguments", detail=f"missing required field: {name}")
        msg = self.find(channel.id, ts)
        if msg is None:
            raise _SlackError("message_not_found")
        return msg

    def _normalise_thread(self, channel: str, thread_ts: str | None) -> str | None:
        """A reply to a reply goes to the root's thread, as in Slack."""
        if not thread_ts:
            return None
        parent = self.find(channel, thread_ts)
        if parent is not None and parent.thread_ts:
            return parent.thread_ts
        return thread_ts

    def _content(self, a: dict[str, Any]) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
        text = _opt_str(a.get("text")) or _opt_str(a.get("markdown_text")) or ""
        blocks = _blocks(a)
        attachments = _attachments(a)
        if not text and not blocks and not attachments:
            raise _SlackError("no_text")
        if len(text) > MAX_TEXT_CHARS:
            raise _SlackError("msg_too_long")
        return text, blocks, attachments

    def _add_bot_message(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]],
        attachments: list[dict[str, Any]],
        thread_ts: str | None,
        metadata: dict[str, Any] | None = None,
        broadcast: bool = False,
    ) -> Message:
        thread = self._normalise_thread(channel, thread_ts)
        msg = Message(
            channel=channel,
            ts=self._next_ts(),
            text=text,
            blocks=blocks,
            user=self.bot_user_id,
            thread_ts=thread,
            metadata=metadata,
            broadcast=broadcast and thread is not None,
            attachments=attachments,
        )
        self.messages[channel].append(msg)
        return msg

    def _remove(self, msg: Message) -> None:
        self.messages[msg.channel].remove(msg)
        pinned = self.pins.get(msg.channel)
        if pinned and msg.ts in pinned:
            pinned.remove(msg.ts)
        self._notify("delete", msg)

    # ------------------------------------------------------------------ rendering

    def _bot_profile(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "deleted": False,
            "name": self.bot_name,
            "updated": self._created,
            "app_id": self.app_id,
            "icons": dict(_BOT_ICONS),
            "team_id": self.team_id,
        }

    def _is_bot(self, msg: Message) -> bool:
        return msg.user == self.bot_user_id

    def _base_message(self, msg: Message) -> dict[str, Any]:
        out: dict[str, Any] = {"user": msg.user, "type": "message", "ts": msg.ts}
        if msg.client_msg_id:
            out["client_msg_id"] = msg.client_msg_id
        if self._is_bot(msg):
            out.update(bot_id=self.bot_id, app_id=self.app_id)
        out["text"] = msg.text
        out["team"] = self.team_id
        if self._is_bot(msg):
            out["bot_profile"] = self._bot_profile()
        if msg.blocks:
            out["blocks"] = msg.blocks
        if msg.attachments:
            out["attachments"] = msg.attachments
        if msg.files:
            out["files"] = msg.files
            out["upload"] = False
            out["display_as_bot"] = False
        return out

    def _thread_fields(self, msg: Message) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if msg.is_root:
            replies = self.thread(msg.channel, msg.ts)
            if replies:
                users = list(dict.fromkeys(r.user for r in replies))
                out.update(
                    thread_ts=msg.ts,
                    reply_count=len(replies),
                    reply_users_count=len(users),
                    latest_reply=replies[-1].ts,
                    reply_users=users,
                    subscribed=False,
                )
        else:
            out["thread_ts"] = msg.thread_ts
            root = self.find(msg.channel, msg.thread_ts or "")
            out["parent_user_id"] = root.user if root else msg.user
            if msg.broadcast:
                out["subtype"] = "thread_broadcast"
        return out

    def _render_posted(self, msg: Message) -> dict[str, Any]:
        """The ``message`` of a chat.postMessage response."""
        out = self._base_message(msg)
        if not msg.is_root:
            out.update(self._thread_fields(msg))
        if msg.metadata is not None:
            out["metadata"] = msg.metadata
        return out

    def _render_updated(self, msg: Message) -> dict[str, Any]:
        """The ``message`` of a chat.update response (Slack leaves out ts and thread fields)."""
        out = self._base_message(msg)
        del out["ts"]
        out.pop("attachments", None)
        out["edited"] = {
            "user": self.bot_id if self._is_bot(msg) else msg.user,
            "ts": msg.edited_ts,
        }
        if msg.metadata is not None:
            out["metadata"] = msg.metadata
        return out

    def _render_stored(self, msg: Message, *, include_metadata: bool) -> dict[str, Any]:
        """A message as conversations.history/replies and reactions.get return it."""
        out = self._base_message(msg)
        if msg.edited:
            out["edited"] = {
                "user": self.bot_id if self._is_bot(msg) else msg.user,
                "ts": msg.edited_ts,
            }
        out.update(self._thread_fields(msg))
        if msg.reactions:
            out["reactions"] = [
                {"name": name, "users": list(users), "count": len(users)}
                for name, users in msg.reactions.items()
                if users
            ]
        if include_metadata and msg.metadata is not None:
            out["metadata"] = msg.metadata
        return out

    def _render_channel(self, ch: _Channel) -> dict[str, Any]:
        if ch.im_user is not None:
            return {
                "id": ch.id,
                "created": ch.created,
                "is_archived": False,
                "is_im": True,
                "is_org_shared": False,
                "context_team_id": self.team_id,
                "updated": ch.created * 1000,
                "user": ch.im_user,
                "is_user_deleted": False,
                "priority": 0,
            }
        empty = {"value": "", "creator": "", "last_set": 0}
        return {
            "id": ch.id,
            "name": ch.name,
            "is_channel": True,
            "is_group": False,
            "is_im": False,
            "is_mpim": False,
            "is_private": False,
            "created": ch.created,
            "is_archived": False,
            "is_general": False,
            "unlinked": 0,
            "name_normalized": ch.name,
            "is_shared": False,
            "is_org_shared": False,
            "is_pending_ext_shared": False,
            "pending_shared": [],
            "context_team_id": self.team_id,
            "updated": ch.created * 1000,
            "creator": self.bot_user_id,
            "is_ext_shared": False,
            "shared_team_ids": [self.team_id],
            "pending_connected_team_ids": [],
            "is_member": ch.is_member,
            "topic": dict(empty),
            "purpose": dict(empty),
            "previous_names": [],
        }

    def _render_user(self, u: _User) -> dict[str, Any]:
        profile: dict[str, Any] = {
            "title": "",
            "phone": "",
            "skype": "",
            "real_name": u.real_name,
            "real_name_normalized": u.real_name,
            "display_name": "" if u.is_bot else u.name,
            "display_name_normalized": "" if u.is_bot else u.name,
            "status_text": "",
            "status_emoji": "",
            "status_expiration": 0,
            "avatar_hash": "g000000000aa",
            "first_name": u.real_name.split(" ")[0],
            "last_name": " ".join(u.real_name.split(" ")[1:]),
            "team": self.team_id,
        }
        email = next((e for e, uid in self.emails.items() if uid == u.id), None)
        if email:
            profile["email"] = email
        if u.id == self.bot_user_id:
            profile.update(bot_id=self.bot_id, api_app_id=self.app_id, always_active=True)
        return {
            "id": u.id,
            "team_id": self.team_id,
            "name": u.name,
            "deleted": False,
            "color": "9f69e7",
            "real_name": u.real_name,
            "tz": "Europe/London",
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": profile,
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": u.is_bot,
            "is_app_user": False,
            "updated": u.updated,
        }

    # ------------------------------------------------------------------ Web API methods

    def _auth_test(self, a: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{DOMAIN}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, a: dict[str, Any]) -> dict[str, Any]:
        channel = self._post_target(a.get("channel"))
        text, blocks, attachments = self._content(a)
        metadata = _metadata(a)
        msg = self._add_bot_message(
            channel,
            text,
            blocks,
            attachments,
            _opt_str(a.get("thread_ts")),
            metadata,
            _flag(a, "reply_broadcast"),
        )
        self._notify("post", msg)
        return {"ok": True, "channel": channel, "ts": msg.ts, "message": self._render_posted(msg)}

    def _chat_update(self, a: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel_arg(a)
        msg = self._message_arg(ch, a, "ts")
        if not self._is_bot(msg):
            raise _SlackError("cant_update_message")
        if not any(a.get(k) not in (None, "") for k in ("text", "blocks", "attachments")):
            raise _SlackError("no_text")
        text = _opt_str(a.get("text"))
        if text is not None:
            if len(text) > MAX_TEXT_CHARS:
                raise _SlackError("msg_too_long")
            msg.text = text
        if "blocks" in a:
            msg.blocks = _blocks(a)
        if "attachments" in a:
            msg.attachments = _attachments(a)
        if "metadata" in a:
            msg.metadata = _metadata(a)
        msg.edited = True
        msg.edited_ts = self._next_ts()
        self._notify("update", msg)
        return {
            "ok": True,
            "channel": ch.id,
            "ts": msg.ts,
            "text": msg.text,
            "message": self._render_updated(msg),
        }

    def _chat_post_ephemeral(self, a: dict[str, Any]) -> dict[str, Any]:
        channel = self._post_target(a.get("channel"))
        user = _opt_str(a.get("user"))
        if not user:
            raise _SlackError("invalid_arguments", detail="missing required field: user")
        text, blocks, _ = self._content(a)
        eph = Ephemeral(
            channel=channel,
            user=user,
            text=text,
            blocks=blocks,
            thread_ts=_opt_str(a.get("thread_ts")),
            via="chat.postEphemeral",
        )
        self.ephemerals.append(eph)
        self._notify("ephemeral", eph)
        return {"ok": True, "message_ts": self._next_ts()}

    def _chat_delete(self, a: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel_arg(a)
        msg = self._message_arg(ch, a, "ts")
        if not self._is_bot(msg):
            raise _SlackError("cant_delete_message")
        self._remove(msg)
        return {"ok": True, "channel": ch.id, "ts": msg.ts}

    def _chat_get_permalink(self, a: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel_arg(a)
        msg = self._message_arg(ch, a, "message_ts")
        link = f"https://{DOMAIN}.slack.com/archives/{ch.id}/p{msg.ts.replace('.', '')}"
        if not msg.is_root:
            link += f"?thread_ts={msg.thread_ts}&cid={ch.id}"
        return {"ok": True, "permalink": link, "channel": ch.id}

    def _conversations_info(self, a: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "channel": self._render_channel(self._channel_arg(a))}

    def _conversations_list(self, a: dict[str, Any]) -> dict[str, Any]:
        types = {t.strip() for t in str(a.get("types") or "public_channel").split(",")}
        chans = [
            c for c in self._channels.values() if ("im" if c.im_user else "public_channel") in types
        ]
        page, cursor = _paginate(chans, a, default_limit=100, max_limit=1000)
        return {
            "ok": True,
            "channels": [self._render_channel(c) for c in page],
            "response_metadata": {"next_cursor": cursor},
        }

    def _conversations_join(self, a: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel_arg(a)
        if ch.im_user is not None:
            raise _SlackError("method_not_supported_for_channel_type")
        out: dict[str, Any] = {"ok": True}
        if ch.is_member:
            out["warning"] = "already_in_channel"
            out["response_metadata"] = {"warnings": ["already_in_channel"]}
        ch.is_member = True
        out["channel"] = self._render_channel(ch)
        return out

    def _conversations_history(self, a: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel_arg(a)
        oldest = _ts_arg(a, "oldest", "invalid_ts_oldest")
        latest = _ts_arg(a, "latest", "invalid_ts_latest")
        inclusive = _flag(a, "inclusive")
        visible = [
            m
            for m in reversed(self.messages[ch.id])
            if (m.is_root or m.broadcast) and _in_range(m.ts, oldest, latest, inclusive)
        ]
        page, cursor = _paginate(visible, a, default_limit=100, max_limit=999)
        meta = _flag(a, "include_all_metadata")
        out: dict[str, Any] = {
            "ok": True,
            "messages": [self._render_stored(m, include_metadata=meta) for m in page],
            "has_more": bool(cursor),
            "pin_count": len(self.pins.get(ch.id, [])),
            "channel_actions_ts": None,
            "channel_actions_count": 0,
        }
        if cursor:
            out["response_metadata"] = {"next_cursor": cursor}
        return out

    def _conversations_replies(self, a: dict[str, Any]) -> dict[str, Any]:
        ch = self._channel_arg(a)
        ts = _opt_str(a.get("ts"))
        if not ts:
            raise _SlackError("invalid_arguments", detail="missing required field: ts")
        msg = self.find(ch.id, ts)
        root = msg if msg is None or msg.is_root else self.find(ch.id, msg.thread_ts or "")
        if root is None:
            raise _SlackError("thread_not_found")
        oldest = _ts_arg(a, "oldest", "invalid_ts_oldest")
        latest = _ts_arg(a, "latest", "invalid_ts_latest")
        inclusive = _flag(a, "inclusive")
        replies = [
            m for m in self.thread(ch.id, root.ts) if _in_range(m.ts, oldest, latest, inclusive)
        ]
        page, cursor = _paginate([root, *replies], a, default_limit=1000, max_limit=1000)
        meta = _flag(a, "include_all_metadata")
        out: dict[str, Any] = {
            "ok": True,
            "messages": [self._render_stored(m, include_metadata=meta) for m in page],
            "has_more": bool(cursor),
        }
        if cursor:
            out["response_metadata"] = {"next_cursor": cursor}
        return out

    def _users_info(self, a: dict[str, Any]) -> dict[str, Any]:
        user = self._users.get(_opt_str(a.get("user")) or "")
        if user is None:
            raise _SlackError("user_not_found")
        return {"ok": True, "user": self._render_user(user)}

    def _users_lookup_by_email(self, a: dict[str, Any]) -> dict[str, Any]:
        email = (_opt_str(a.get("email")) or "").lower()
        if not email:
            raise _SlackError("invalid_arguments")
        uid = self.emails.get(email)
        if uid is None:
            raise _SlackError("users_not_found")
        return {"ok": True, "user": self._render_user(self._users[uid])}

    def _usergroups_users_list(self, a: dict[str, Any]) -> dict[str, Any]:
        group = _opt_str(a.get("usergroup")) or ""
        if group not in self.usergroups:
            raise _SlackError("no_such_subteam")
        return {"ok": True, "users": list(self.usergroups[group])}

    def _users_list(self, a: dict[str, Any]) -> dict[str, Any]:
        page, cursor = _paginate(list(self._users.values()), a, default_limit=0, max_limit=1000)
        return {
            "ok": True,
            "members": [self._render_user(u) for u in page],
            "cache_ts": int(self._clock()),
            "response_metadata": {"next_cursor": cursor},
        }

    def _reaction_target(self, a: dict[str, Any]) -> tuple[Message, str]:
        if not a.get("channel") or not a.get("timestamp"):
            raise _SlackError("no_item_specified")
        msg = self._message_arg(self._channel_arg(a), a, "timestamp")
        name = (_opt_str(a.get("name")) or "").strip(":")
        if not name:
            raise _SlackError("invalid_name")
        return msg, name

    def _reactions_add(self, a: dict[str, Any]) -> dict[str, Any]:
        msg, name = self._reaction_target(a)
        users = msg.reactions.setdefault(name, [])
        if self.bot_user_id in users:
            raise _SlackError("already_reacted")
        users.append(self.bot_user_id)
        self._notify("reaction", msg)
        return {"ok": True}

    def _reactions_remove(self, a: dict[str, Any]) -> dict[str, Any]:
        msg, name = self._reaction_target(a)
        users = msg.reactions.get(name, [])
        if self.bot_user_id not in users:
            raise _SlackError("no_reaction")
        users.remove(self.bot_user_id)
        if not users:
            del msg.reactions[name]
        self._notify("reaction", msg)
        return {"ok": True}

    def _reactions_get(self, a: dict[str, Any]) -> dict[str, Any]:
        if not a.get("channel") or not a.get("timestamp"):
            raise _SlackError("no_item_specified")
        ch = self._channel_arg(a)
        msg = self._message_arg(ch, a, "timestamp")
        return {
            "ok": True,
            "type": "message",
            "channel": ch.id,
            "message": self._render_stored(msg, include_metadata=False),
        }

    def _pin_target(self, a: dict[str, Any]) -> tuple[_Channel, Message]:
        ch = self._channel_arg(a)
        if not a.get("timestamp"):
            raise _SlackError("no_item_specified")
        return ch, self._message_arg(ch, a, "timestamp")

    def _pins_add(self, a: dict[str, Any]) -> dict[str, Any]:
        ch, msg = self._pin_target(a)
        pinned = self.pins.setdefault(ch.id, [])
        if msg.ts in pinned:
            raise _SlackError("already_pinned")
        pinned.append(msg.ts)
        return {"ok": True}

    def _pins_remove(self, a: dict[str, Any]) -> dict[str, Any]:
        ch, msg = self._pin_target(a)
        pinned = self.pins.get(ch.id, [])
        if msg.ts not in pinned:
            raise _SlackError("not_pinned")
        pinned.remove(msg.ts)
        return {"ok": True}

    # ------------------------------------------------------------------ views (modals)

    def _store_view(self, view: Any, *, view_id: str | None = None) -> dict[str, Any]:
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except ValueError as e:
                raise _SlackError("invalid_arguments") from e
        if not isinstance(view, dict) or view.get("type") != "modal":
            raise _SlackError("invalid_arguments")
        title = (view.get("title") or {}).get("text", "")
        if not title or len(title) > 24:
            raise _SlackError("invalid_arguments", detail="title must be 1-24 characters")
        blocks = view.get("blocks") or []
        _check_view(view)
        problems = view_problems(view)
        if problems:
            log.info("fake slack refused a view: %s", "; ".join(problems))
            raise _SlackError("invalid_arguments", detail=problems[0], errors=problems)
        if view_id is None:
            view_id = f"V{self._next_view:010d}"
            self._next_view += 1
        stored = {
            "id": view_id,
            "team_id": self.team_id,
            "type": "modal",
            "title": view["title"],
            "submit": view.get("submit"),
            "close": view.get("close"),
            "blocks": blocks,
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{int(self._clock())}.{view_id}",
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "root_view_id": view_id,
            "previous_view_id": None,
            "app_id": self.app_id,
            "bot_id": self.bot_id,
        }
        self.views[view_id] = stored
        return stored

    def _views_open(self, a: dict[str, Any]) -> dict[str, Any]:
        if not a.get("trigger_id"):
            raise _SlackError("invalid_arguments")
        view = self._store_view(a.get("view"))
        self.opened_views.append(view)
        self._notify("view", view)
        return {"ok": True, "view": view}

    def _views_push(self, a: dict[str, Any]) -> dict[str, Any]:
        return self._views_open(a)

    def _views_update(self, a: dict[str, Any]) -> dict[str, Any]:
        view_id = _opt_str(a.get("view_id"))
        if not view_id or view_id not in self.views:
            raise _SlackError("not_found")
        view = self._store_view(a.get("view"), view_id=view_id)
        self._notify("view_update", view)
        return {"ok": True, "view": view}

    # ------------------------------------------------------------------ files

    def _files_get_upload_url_external(self, a: dict[str, Any]) -> dict[str, Any]:
        filename = _opt_str(a.get("filename"))
        if not filename:
            raise _SlackError("invalid_arguments", detail="missing required field: filename")
        raw = a.get("length")
        if raw is None or raw == "":
            raise _SlackError("invalid_arguments", detail="missing required field: length")
        try:
            length = int(raw)
        except (TypeError, ValueError) as e:
            raise _SlackError(
                "invalid_arguments", detail="length must be an integer [json-pointer:/length]"
            ) from e
        if length < 0:
            raise _SlackError("invalid_arguments", detail="length must be >= 0")
        alt_txt = _opt_str(a.get("alt_txt"))
        if alt_txt is not None and len(alt_txt) > MAX_ALT_TXT:
            raise _SlackError("alt_txt_too_large")
        file_id = f"F{self._next_file:010d}"
        self._next_file += 1
        upload = UploadedFile(
            id=file_id,
            name=filename,
            length=length,
            created=int(self._clock()),
            ticket=secrets.token_urlsafe(18),
            alt_txt=alt_txt,
        )
        self.files[file_id] = upload
        return {"ok": True, "upload_url": f"{self.root}/upload/v1/{upload.ticket}",
                "file_id": file_id}  # fmt: skip

    def _files_complete_upload_external(self, a: dict[str, Any]) -> dict[str, Any]:
        wanted = _file_list(a.get("files"))
        uploads: list[tuple[UploadedFile, str | None]] = []
        for item in wanted:
            upload = self.files.get(str(item["id"]))
            # Unknown, never uploaded, or already completed (it can be completed only once).
            if upload is None or upload.content is None or upload.completed:
                raise _SlackError("file_not_found")
            uploads.append((upload, _opt_str(item.get("title"))))
        targets = self._share_targets(a)
        thread_ts = _opt_str(a.get("thread_ts"))
        if thread_ts and len(targets) != 1:
            raise _SlackError(
                "invalid_arguments", detail="thread_ts needs exactly one channel to share in"
            )
        comment = _opt_str(a.get("initial_comment")) or ""
        if len(comment) > MAX_TEXT_CHARS:
            raise _SlackError("msg_too_long")
        blocks = [] if comment else _blocks(a)  # Slack ignores blocks given a comment
        for upload, title in uploads:
            upload.completed = True
            upload.title = title or upload.title or upload.name
        for channel in targets:
            msg = self._add_bot_message(channel, comment, blocks, [], thread_ts)
            for upload, _ in uploads:
                upload.shared_in.append((channel, msg.ts))
            msg.files = [self._render_file(upload) for upload, _ in uploads]
            self._notify("post", msg)
        return {"ok": True, "files": [self._render_file(upload) for upload, _ in uploads]}

    def _files_delete(self, a: dict[str, Any]) -> dict[str, Any]:
        """Delete a file: its bytes go, and the messages that shared it keep a tombstone
        (``{"id": ..., "mode": "tombstone"}``) in their ``files``, as Slack shows them."""
        upload = self.files.get(_opt_str(a.get("file")) or "")
        if upload is None or not upload.completed:
            raise _SlackError("file_not_found")
        if upload.deleted:
            raise _SlackError("file_deleted")
        upload.deleted, upload.content = True, b""
        for channel, ts in upload.shared_in:
            msg = self.find(channel, ts)
            if msg is None:
                continue
            msg.files = [
                {"id": upload.id, "mode": "tombstone"} if f.get("id") == upload.id else f
                for f in msg.files
            ]
            self._notify("update", msg)
        return {"ok": True}

    def _share_targets(self, a: dict[str, Any]) -> list[str]:
        """Where completeUploadExternal shares: ``channel_id``, else ``channels`` (comma-separated);
        none keeps the file private."""
        channel_id = _opt_str(a.get("channel_id"))
        if channel_id:
            if not _SHARE_CHANNEL.fullmatch(channel_id):
                raise _SlackError(
                    "invalid_arguments",
                    detail=f"input must match regex pattern: {_SHARE_CHANNEL.pattern}"
                    " [json-pointer:/channel_id]",
                )
            targets = [channel_id]
        else:
            targets = [c.strip() for c in (_opt_str(a.get("channels")) or "").split(",")]
            targets = [c for c in targets if c]
        if len(targets) > MAX_SHARE_CHANNELS:
            raise _SlackError("channels_limit_exceeded")
        for channel in targets:
            if channel not in self._channels:
                raise _SlackError("channel_not_found")
        return targets

    def _render_file(self, upload: UploadedFile) -> dict[str, Any]:
        """A file object as files.completeUploadExternal and messages' ``files`` carry it."""
        name = quote(upload.name)
        owner = self.bot_user_id
        filetype, pretty_type = _FILE_TYPES.get(
            upload.name.rsplit(".", 1)[-1].lower() if "." in upload.name else "",
            ("binary", "Binary"),
        )
        public: dict[str, list[dict[str, Any]]] = {}
        private: dict[str, list[dict[str, Any]]] = {}
        for channel, ts in upload.shared_in:
            msg = self.find(channel, ts)
            ch = self._channels[channel]
            share: dict[str, Any] = {
                "ts": ts,
                "channel_name": ch.name,
                "team_id": self.team_id,
                "share_user_id": owner,
            }
            if msg is not None and not msg.is_root:
                share["thread_ts"] = msg.thread_ts
            (private if ch.im_user else public).setdefault(channel, []).append(share)
        shares: dict[str, Any] = {}
        if public:
            shares["public"] = public
        if private:
            shares["private"] = private
        out: dict[str, Any] = {
            "id": upload.id,
            "created": upload.created,
            "timestamp": upload.created,
            "name": upload.name,
            "title": upload.title or upload.name,
            "mimetype": mimetypes.guess_type(upload.name)[0] or "application/octet-stream",
            "filetype": filetype,
            "pretty_type": pretty_type,
            "user": owner,
            "user_team": self.team_id,
            "editable": filetype != "binary",
            "size": len(upload.content or b""),
            "mode": "snippet" if filetype != "binary" else "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": bool(public),
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"https://files.slack.com/files-pri/{self.team_id}-{upload.id}/{name}",
            "url_private_download": (
                f"https://files.slack.com/files-pri/{self.team_id}-{upload.id}/download/{name}"
            ),
            "permalink": f"https://{DOMAIN}.slack.com/files/{owner}/{upload.id}/{name}",
            "permalink_public": f"https://slack-files.com/{self.team_id}-{upload.id}-{upload.ticket[:10]}",
            "comments_count": 0,
            "is_starred": False,
            "shares": shares,
            "channels": [c for c, _ in upload.shared_in if not self._channels[c].im_user],
            "groups": [],
            "ims": [c for c, _ in upload.shared_in if self._channels[c].im_user],
            "has_more_shares": False,
            "has_rich_preview": False,
            "file_access": "visible",
        }
        if filetype != "binary":
            lines = upload.text.splitlines()
            out["edit_link"] = f"{out['permalink']}/edit"
            out["preview"] = "\n".join(lines[:FILE_PREVIEW_LINES])
            out["lines"] = len(lines)
            out["lines_more"] = max(0, len(lines) - FILE_PREVIEW_LINES)
            out["preview_is_truncated"] = len(lines) > FILE_PREVIEW_LINES
        if upload.alt_txt is not None:
            out["alt_txt"] = upload.alt_txt
        return out


# ---------------------------------------------------------------------- argument parsing


MAX_PRIVATE_METADATA = 3000
MAX_ALT_TXT = 1000
MAX_SHARE_CHANNELS = 100
FILE_PREVIEW_LINES = 5
# completeUploadExternal's channel_id, as Slack checks it (a user id is refused: use the D… id).
_SHARE_CHANNEL = re.compile(r"^[CGDZ][A-Z0-9]{8,}$")
_FILE_TYPES = {  # extension -> (filetype, pretty_type)
    "md": ("markdown", "Markdown (raw)"), "markdown": ("markdown", "Markdown (raw)"),
    "txt": ("text", "Plain Text"), "json": ("javascript", "JSON"), "csv": ("csv", "CSV"),
    "log": ("text", "Plain Text"), "yml": ("yaml", "YAML"), "yaml": ("yaml", "YAML"),
}  # fmt: skip
MAX_OPTIONS = 100
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150


def _check_view(view: dict[str, Any]) -> None:
    """The parts of Slack's view validation the bot's forms could trip (Block Kit limits)."""

    def bad(pointer: str, why: str) -> _SlackError:
        return _SlackError("invalid_arguments", detail=f"{why} [json-pointer:/view{pointer}]")

    if len(str(view.get("private_metadata") or "")) > MAX_PRIVATE_METADATA:
        raise bad("/private_metadata", f"must be at most {MAX_PRIVATE_METADATA} characters")
    if len(str(view.get("callback_id") or "")) > 255:
        raise bad("/callback_id", "must be at most 255 characters")
    for n, block in enumerate(view.get("blocks") or []):
        if not isinstance(block, dict) or block.get("type") != "input":
            continue
        element = block.get("element")
        if not (block.get("label") or {}).get("text") or not isinstance(element, dict):
            raise bad(f"/blocks/{n}", "an input block needs a label and an element")
        if element.get("type") != "static_select":
            continue
        options = element.get("options") or []
        if not 1 <= len(options) <= MAX_OPTIONS:
            raise bad(f"/blocks/{n}/element/options", f"must hold 1-{MAX_OPTIONS} options")
        for i, option in enumerate(options):
            text = str((option.get("text") or {}).get("text") or "")
            value = str(option.get("value") or "")
            if (
                not text
                or len(text) > MAX_OPTION_TEXT
                or not value
                or len(value) > MAX_OPTION_VALUE
            ):
                raise bad(f"/blocks/{n}/element/options/{i}", "option text or value out of range")
        if "initial_option" in element and element["initial_option"] not in options:
            raise bad(f"/blocks/{n}/element/initial_option", "must provide a valid initial_option")


def _rich_text(text: str) -> list[dict[str, Any]]:
    """The ``rich_text`` block a Slack client sends with a typed message (mentions as users)."""
    elements: list[dict[str, Any]] = []
    at = 0
    for match in _MENTION.finditer(text):
        if match.start() > at:
            elements.append({"type": "text", "text": text[at : match.start()]})
        elements.append({"type": "user", "user_id": match.group(1)})
        at = match.end()
    if at < len(text):
        elements.append({"type": "text", "text": text[at:]})
    block_id = secrets.token_urlsafe(3)[:4]
    section = {"type": "rich_text_section", "elements": elements}
    return [{"type": "rich_text", "block_id": block_id, "elements": [section]}]


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _flag(a: dict[str, Any], name: str) -> bool:
    value = a.get(name)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    return isinstance(value, str) and value.strip().lower() in ("1", "true", "yes")


def _decode_json_fields(a: dict[str, Any]) -> None:
    """Form posts carry blocks/attachments/metadata as JSON strings; decode them in place."""
    errors = {
        "blocks": "invalid_blocks_format",
        "attachments": "invalid_attachments",
        "metadata": "invalid_metadata_format",
    }
    for name in _JSON_FIELDS:
        value = a.get(name)
        if isinstance(value, str):
            if not value.strip():
                a[name] = None
                continue
            try:
                a[name] = json.loads(value)
            except ValueError as e:
                raise _SlackError(errors[name]) from e


def _file_list(value: Any) -> list[dict[str, Any]]:
    """completeUploadExternal's ``files``: a JSON array (a string in forms) of id and title."""
    if value is None or value == "":
        raise _SlackError("invalid_arguments", detail="missing required field: files")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as e:
            raise _SlackError(
                "invalid_arguments", detail="files must be a JSON array [json-pointer:/files]"
            ) from e
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(f, dict) and _opt_str(f.get("id")) for f in value)
    ):
        raise _SlackError(
            "invalid_arguments",
            detail="files must be an array of objects with an id [json-pointer:/files]",
        )
    return value


def _blocks(a: dict[str, Any]) -> list[dict[str, Any]]:
    """The payload's blocks, refused (`invalid_blocks`, with Slack's pointer) unless they pass
    slack_sdk's Block Kit models and the documented limits (see `sandbox.block_kit`)."""
    value = a.get("blocks")
    if value is None:
        return []
    problems = message_problems(value)
    if problems:
        log.info("fake slack refused blocks: %s", "; ".join(problems))
        raise _SlackError("invalid_blocks", detail=problems[0], errors=problems)
    assert isinstance(value, list)
    return value


def _attachments(a: dict[str, Any]) -> list[dict[str, Any]]:
    value = a.get("attachments")
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
        raise _SlackError("invalid_attachments")
    return value


def _metadata(a: dict[str, Any]) -> dict[str, Any] | None:
    value = a.get("metadata")
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("event_type"), str)
        or not isinstance(value.get("event_payload"), dict)
    ):
        raise _SlackError("invalid_metadata_format")
    return value


def _ts_arg(a: dict[str, Any], name: str, error: str) -> Decimal | None:
    value = _opt_str(a.get(name))
    if not value:
        return None
    try:
        return Decimal(value)
    except InvalidOperation as e:
        raise _SlackError(error) from e


def _in_range(ts: str, oldest: Decimal | None, latest: Decimal | None, inclusive: bool) -> bool:
    t = Decimal(ts)
    if oldest is not None and (t < oldest or (t == oldest and not inclusive)):
        return False
    return latest is None or t < latest or (t == latest and inclusive)


def _paginate(
    items: list[Any], a: dict[str, Any], *, default_limit: int, max_limit: int
) -> tuple[list[Any], str]:
    """Slice by ``cursor``/``limit``; returns the page and the next cursor ("" when done)."""
    try:
        limit = int(a.get("limit") or default_limit)
    except (TypeError, ValueError) as e:
        raise _SlackError("invalid_limit") from e
    limit = min(limit, max_limit) if limit > 0 else len(items)
    start = 0
    cursor = _opt_str(a.get("cursor"))
    if cursor:
        try:
            kind, _, number = base64.b64decode(cursor, validate=True).decode().partition(":")
            start = int(number)
        except (binascii.Error, UnicodeDecodeError, ValueError) as e:
            raise _SlackError("invalid_cursor") from e
        if kind != "offset" or start < 0:
            raise _SlackError("invalid_cursor")
    end = start + limit
    page = items[start:end]
    more = end < len(items)
    return page, base64.b64encode(f"offset:{end}".encode()).decode() if more else ""
