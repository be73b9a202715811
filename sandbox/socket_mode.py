"""A local stand-in for Slack's Socket Mode, served over real HTTP and WebSocket on 127.0.0.1.

It speaks the protocol slack_sdk's Socket Mode clients speak to Slack:

* ``POST /api/apps.connections.open`` with the app-level token (``Authorization: Bearer
  xapp-...``) answers ``{"ok": true, "url": "ws://127.0.0.1:<port>/link/?ticket=..."}``; each
  URL works once (a used or unknown ticket is refused with HTTP 401, as Slack does). A bot
  token there is ``not_allowed_token_type``, a wrong app token ``invalid_auth``, none
  ``not_authed``.
* On the WebSocket, Slack speaks first: ``{"type": "hello", "num_connections": n,
  "debug_info": {...}, "connection_info": {"app_id": ...}}``. Then envelopes::

      {"envelope_id": "...", "type": "slash_commands" | "interactive" | "events_api",
       "payload": {...}, "accepts_response_payload": true|false,
       "retry_attempt": 0, "retry_reason": ""}          # the last two for events_api only

  ``payload`` is what the HTTP transport would have POSTed: the slash command's form fields as
  a JSON object, the interaction's ``payload`` JSON, or the Events API ``event_callback``.
  ``accepts_response_payload`` is true for slash commands and for ``view_submission`` and
  ``block_suggestion`` interactions, false otherwise.
* The app acks each envelope on the same socket: ``{"envelope_id": "...", "payload": {...}}``
  (``payload`` optional: an ephemeral reply for a slash command, ``response_action`` for a
  modal). :meth:`FakeSocketMode.send` waits for it (Slack's window is 3 seconds).
* ``{"type": "disconnect", "reason": "refresh_requested" | "warning" | ...}`` asks the app to
  reconnect: it opens a new connection with a fresh ``apps.connections.open``.
* WebSocket pings are answered with pongs carrying the same data (the SDK checks them).

Every other ``/api/<method>`` is forwarded unchanged (headers, body, query) to ``upstream``, a
Web API stand-in such as :class:`sandbox.slack_api.FakeSlack`, so one ``SLACK_API_URL``
serves both, as ``https://slack.com/api/`` does in production.

The app token is never recorded or logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

from sandbox.loopback import StandIn, serve_on_loopback
from sandbox.slack_requests import SignedRequest

__all__ = ["Ack", "FakeSocketMode", "envelope_payload"]

ACK_TIMEOUT = 3.0
_RESPONSE_PAYLOAD_INTERACTIONS = ("view_submission", "block_suggestion")


@dataclass
class Ack:
    """What the app answered for one envelope."""

    envelope_id: str
    payload: dict[str, Any] | None
    connection: int


@dataclass
class _Connection:
    number: int
    ws: web.WebSocketResponse
    pending: dict[str, asyncio.Future[Ack]] = field(default_factory=dict)
    closed: asyncio.Event = field(default_factory=asyncio.Event)


def envelope_payload(request: SignedRequest) -> tuple[str, dict[str, Any]]:
    """The (envelope type, payload) Slack would send over a socket for an HTTP request body.

    Lets tests and the shell reuse :class:`sandbox.slack_requests.SlackRequests`.
    """
    content_type = request.headers.get("Content-Type", "")
    if content_type.startswith("application/json"):
        body = json.loads(request.body)
        return "events_api", body
    form = dict(parse_qsl(request.body, keep_blank_values=True))
    if "payload" in form:
        return "interactive", json.loads(form["payload"])
    return "slash_commands", form


class FakeSocketMode(StandIn):
    """The Socket Mode stand-in. Use ``async with FakeSocketMode(upstream=slack.url) as sm``."""

    def __init__(
        self,
        *,
        app_token: str = "xapp-1-A0000000001-1-0123456789abcdef",  # noqa: S107 - fake
        app_id: str = "A0000000001",
        upstream: str | None = None,
    ) -> None:
        self.app_token = app_token
        self.app_id = app_id
        self.upstream = upstream.rstrip("/") + "/" if upstream else None
        self.opened = 0  # apps.connections.open calls answered ok
        self.acks: list[Ack] = []
        self.protocol_errors: list[str] = []  # what a real Slack would have ignored or refused
        self.connections: list[_Connection] = []
        self._tickets: set[str] = set()
        self._numbers = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._http: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_post("/api/apps.connections.open", self._connections_open)
        app.router.add_get("/link/", self._link)
        app.router.add_route("*", "/api/{method}", self._forward)
        self._runner, self._port = await serve_on_loopback(app)
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        for connection in list(self.connections):
            with contextlib.suppress(Exception):
                await connection.ws.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    @property
    def root(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeSocketMode is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def url(self) -> str:
        """The Web API base (``SLACK_API_URL``) the app should use."""
        return f"{self.root}/api/"

    @property
    def live(self) -> list[_Connection]:
        return [c for c in self.connections if not c.ws.closed]

    # ------------------------------------------------------------------ driving the app

    async def wait_connected(
        self, count: int = 1, *, total: int = 0, timeout: float = 10.0
    ) -> None:
        """Until `count` connections are open and greeted, and `total` were made in all."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(
                lambda: len(self.live) >= count and len(self.connections) >= total
            )

    async def wait_opened(self, count: int, *, timeout: float = 10.0) -> None:
        """Until apps.connections.open has been answered `count` times in all."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.opened >= count)

    async def send(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int = 0,
        timeout: float = ACK_TIMEOUT,
    ) -> Ack:
        """Push one envelope to the newest connection and wait for its ack (TimeoutError)."""
        if kind not in ("slash_commands", "interactive", "events_api"):
            raise ValueError(f"unknown envelope type {kind!r}")
        if not self.live:
            raise RuntimeError("no app is connected")
        connection = self.live[-1]
        if accepts_response_payload is None:
            accepts_response_payload = kind == "slash_commands" or (
                kind == "interactive" and payload.get("type") in _RESPONSE_PAYLOAD_INTERACTIONS
            )
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": kind,
            "accepts_response_payload": accepts_response_payload,
        }
        if kind == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = "timeout" if retry_attempt else ""
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        connection.pending[envelope_id] = future
        await connection.ws.send_str(json.dumps(envelope))
        try:
            ack = await asyncio.wait_for(future, timeout)
        finally:
            connection.pending.pop(envelope_id, None)
        if ack.payload and not accepts_response_payload:
            self.protocol_errors.append(f"{envelope_id}: payload in the ack of a {kind} envelope")
        return ack

    async def request(self, request: SignedRequest, **kw: Any) -> Ack:
        """Send what would have been an HTTP request (from SlackRequests) as an envelope."""
        kind, payload = envelope_payload(request)
        return await self.send(kind, payload, **kw)

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the newest connection to go away, as Slack does before it recycles a host."""
        if not self.live:
            raise RuntimeError("no app is connected")
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-local"}}
        await self.live[-1].ws.send_str(json.dumps(message))

    # ------------------------------------------------------------------ HTTP side

    async def _connections_open(self, request: web.Request) -> web.Response:
        token = _token(request)
        if not token:
            return web.json_response({"ok": False, "error": "not_authed"})
        if not token.startswith("xapp-"):
            return web.json_response({"ok": False, "error": "not_allowed_token_type"})
        if not hmac.compare_digest(token.encode(), self.app_token.encode()):
            return web.json_response({"ok": False, "error": "invalid_auth"})
        ticket = secrets.token_urlsafe(16)
        self._tickets.add(ticket)
        ws_root = self.root.replace("http://", "ws://", 1)
        async with self._changed:
            self.opened += 1
            self._changed.notify_all()
        return web.json_response(
            {"ok": True, "url": f"{ws_root}/link/?ticket={ticket}&app_id={self.app_id}"}
        )

    async def _link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid or used ticket")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        connection = _Connection(next(self._numbers), ws)
        hello = {
            "type": "hello",
            "num_connections": len(self.live) + 1,
            "debug_info": {
                "host": "applink-local",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.app_id},
        }
        await ws.send_str(json.dumps(hello))
        async with self._changed:
            self.connections.append(connection)
            self._changed.notify_all()
        try:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    self._received(connection, message.data)
        finally:
            connection.closed.set()
            for future in connection.pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("the app closed the connection"))
            async with self._changed:
                self._changed.notify_all()
        return ws

    def _received(self, connection: _Connection, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            self.protocol_errors.append("a message that is not JSON")
            return
        envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
        if not isinstance(envelope_id, str):
            self.protocol_errors.append("a message without envelope_id")
            return
        payload = message.get("payload")
        ack = Ack(envelope_id, payload if isinstance(payload, dict) else None, connection.number)
        self.acks.append(ack)
        future = connection.pending.get(envelope_id)
        if future is None:
            self.protocol_errors.append(f"{envelope_id}: ack of an unknown or expired envelope")
        elif not future.done():
            future.set_result(ack)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if self.upstream is None or self._http is None:
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        method = request.match_info["method"]
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "content-type", "user-agent")
        }
        async with self._http.request(
            request.method,
            f"{self.upstream}{method}",
            params=request.query,
            data=await request.read(),
            headers=headers,
        ) as answer:
            body = await answer.read()
            keep = {
                k: v
                for k, v in answer.headers.items()
                if k.lower() in ("content-type", "retry-after")
            }
            return web.Response(status=answer.status, body=body, headers=keep)


def _token(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth.removeprefix("Bearer ").strip() or None
    return None
