"""`icbot socket`: the same Bolt app over Socket Mode, for workspaces without a public endpoint.

Slack pushes slash commands, interactions and events over a WebSocket the bot opens itself
(``apps.connections.open`` with the app-level token ``SLACK_APP_TOKEN``, scope
``connections:write``); the bot acks each envelope on the same socket. This runs bolt-python's
aiohttp Socket Mode handler with two additions: each envelope is counted in the request
metrics (``transport="socket"``), and shutdown waits for the envelopes already received to be
acked before closing the socket (then drains like ``icbot serve``, see :mod:`bot.runtime.serve`).

Everything else is shared with ``icbot serve``: settings, secrets (Vault included), database,
services, workers. ``/healthz``, ``/readyz`` and ``/metrics`` are served on ``PORT`` for the
cluster; there is no ``/slack/events`` (nothing to sign, so ``SLACK_SIGNING_SECRET`` is not
needed).

The Web API base (``SLACK_API_URL``) is used for ``apps.connections.open`` too; Slack answers
with a ``wss://`` URL (a local stand-in may answer ``ws://``, which the client accepts).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import (
    run_async_bolt_app,
    send_async_response,
)
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import metrics
from bot.core.errors import ConfigError
from bot.core.logs import get_logger
from bot.core.settings import Settings
from bot.pages import routes as pages
from bot.runtime import serve as runtime
from bot.runtime.secrets import DEFAULT_INTERVAL, open_secrets
from bot.runtime.web import SERVICES, healthz, readyz, request_context
from bot.runtime.web import metrics as metrics_route
from commands.services import Services

log = get_logger(__name__)

ACK_WAIT = 3.0  # Slack's own ack window: no envelope waits longer than this for its ack
PING_INTERVAL = 10.0


class IcbotSocketModeHandler(AsyncSocketModeHandler):
    """bolt-python's aiohttp Socket Mode handler, counted, with a drain-friendly stop."""

    def __init__(
        self,
        app: AsyncApp,
        *,
        app_token: str,
        web_client: AsyncWebClient,
        ping_interval: float = PING_INTERVAL,
    ) -> None:
        super().__init__(
            app, app_token=app_token, web_client=web_client, ping_interval=ping_interval
        )
        self._acking = 0
        self._all_acked = asyncio.Event()
        self._all_acked.set()

    @property
    def socket(self) -> SocketModeClient:
        client: SocketModeClient = self.client
        return client

    async def handle(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        started = time.perf_counter()
        self._acking += 1
        self._all_acked.clear()
        status: int | str = "error"
        try:
            bolt_response = await run_async_bolt_app(self.app, req)
            status = bolt_response.status
            await send_async_response(client, req, bolt_response, started)
        finally:
            self._acking -= 1
            if self._acking == 0:
                self._all_acked.set()
            metrics.observe_request(
                transport="socket",
                command=metrics.command_label(req.payload),
                status=status,
                seconds=time.perf_counter() - started,
            )

    async def open(self) -> None:
        """Check the app token with one ``apps.connections.open``, then connect with its URL.

        The SDK's own connect loop retries a refused token forever; a wrong or missing token
        should stop start-up instead, naming the setting.
        """
        web_client = self.socket.web_client
        try:
            response = await web_client.apps_connections_open(app_token=self.app_token)
        except SlackApiError as exc:
            error = exc.response.get("error", "unknown_error")
            raise ConfigError(
                f"SLACK_APP_TOKEN was refused by apps.connections.open ({error}); it must be an"
                " app-level token (xapp-...) with the connections:write scope"
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ConfigError(
                f"cannot reach Slack's apps.connections.open at SLACK_API_URL"
                f" {web_client.base_url} ({type(exc).__name__})"
            ) from None
        self.socket.wss_uri = str(response["url"])
        await self.connect_async()  # type: ignore[no-untyped-call]

    async def stop(self, *, timeout: float = ACK_WAIT) -> None:
        """Ack what was received (bounded), then close the socket: Slack sends nothing more."""
        try:
            await asyncio.wait_for(self._all_acked.wait(), timeout)
        except TimeoutError:
            log.warning("socket.unacked_at_stop", envelopes=self._acking)
        await self.close_async()  # type: ignore[no-untyped-call]


def health_app(services: Services) -> web.Application:
    """``/healthz``, ``/readyz``, ``/metrics`` and the incident pages of ``icbot serve``,
    without ``/slack/events``."""
    app = web.Application(middlewares=[request_context])
    app[SERVICES] = services
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_route)
    s = services
    site = pages.site(
        s.settings, pool=s.pool, policy=s.policy, clock=s.clock, directory=s.directory
    )
    pages.add_routes(app, site)
    return app


async def serve_socket_mode(
    settings: Settings,
    *,
    grace: float = runtime.DEFAULT_GRACE,
    secrets_interval: float = DEFAULT_INTERVAL,
    ping_interval: float = PING_INTERVAL,
) -> None:
    """`icbot socket`: run until SIGTERM/SIGINT, then drain (see :mod:`bot.runtime.serve`)."""
    from bot.runtime.services import open_services
    from bot.store.db import database
    from commands.app import build_slack_app

    stop = runtime.Stop().install()
    async with open_secrets(
        settings, required=runtime.SOCKET_SECRETS, interval=secrets_interval
    ) as live:
        assert settings.slack_bot_token is not None and settings.slack_app_token is not None
        token = settings.slack_bot_token.get_secret_value()
        async with (
            database(runtime.dsn_setting(settings), settings.data_dir) as dsn,
            open_services(settings, dsn=dsn, token=token) as services,
        ):
            bolt = build_slack_app(services)
            runtime.use_current_token(bolt, services.client)
            handler = IcbotSocketModeHandler(
                bolt,
                app_token=settings.slack_app_token.get_secret_value(),
                web_client=services.client,
                ping_interval=ping_interval,
            )
            health = health_app(services)
            runtime.prepare_for_drain(health)
            runtime.follow_rotation(live, services, socket_client=handler.socket)
            runtime.freeze_startup_objects()
            runner: web.AppRunner | None = None
            try:
                await handler.open()
                runner = await runtime.start_http(health, port=settings.port)
                async with runtime.background(live.run_forever()):
                    log.info("socket.started", port=settings.port, channel=services.channel_id)
                    await stop.wait()
                    log.info("socket.stopping", grace=grace)
                    await runtime.begin_stopping(health, timeout=0)
                    await handler.stop()
                    await runtime.drain(services, grace=grace, stop=stop)
            finally:
                await _close(handler)
                if runner is not None:
                    await runner.cleanup()
            log.info("socket.stopped")


async def _close(handler: Any) -> None:
    if not handler.client.closed:
        await handler.close_async()
