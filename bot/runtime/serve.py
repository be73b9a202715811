"""`icbot serve` (and the parts `icbot socket` shares): start, follow rotated secrets, drain, stop.

Shutdown on SIGTERM (or SIGINT), in this order:

1. **Stop taking new work.** ``/readyz`` answers 503 ``shutting down`` and new Slack requests
   and PagerDuty webhooks get 503 (Slack retries events, PagerDuty retries webhooks, on another
   replica); ``/healthz`` and ``/metrics`` keep answering, so the liveness probe does not kill
   a draining pod. (The Deployment's ``preStop`` sleep lets the Service drop the pod first.)
   Requests already being answered get their ack (at most Slack's 3 seconds). Socket Mode
   closes its WebSocket after the envelopes it received are acked.
2. **Finish what was started**: every command, click and remediation still running after its
   ack (``services.inflight``), bounded by ``grace`` seconds (``SHUTDOWN_GRACE_SECONDS``); a
   second signal stops waiting. Nothing is cut in the middle by us before the bound.
3. **Deliver what they queued**, best effort for a few seconds (the outbox is durable: whatever
   is left is posted by another replica, or by this one after a restart, exactly once).
4. Close the listener, stop the workers, close the pool; exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.logs import get_logger
from bot.core.settings import Settings
from bot.integrations.pagerduty import PagerDutyAdapter
from bot.runtime.secrets import DEFAULT_INTERVAL, LiveSecrets, open_secrets
from bot.runtime.web import VERIFIER
from commands.services import Services

log = get_logger(__name__)

SERVE_SECRETS = ("slack_bot_token", "slack_signing_secret")
SOCKET_SECRETS = ("slack_bot_token", "slack_app_token")
DEFAULT_GRACE = 30.0
OUTBOX_FLUSH = 5.0  # at most this long (within the grace) to deliver what the drained work queued
HTTP_SHUTDOWN = 5.0
ACK_WAIT = 3.0  # Slack's ack window: no request being answered takes longer

_REFUSED_WHILE_STOPPING = ("/slack/events", "/pagerduty/webhook")


class _Gate:
    """Whether the app takes new work, and how many requests for work are being answered."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.answering = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    @contextlib.contextmanager
    def answer(self) -> Iterator[None]:
        self.answering += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self.answering -= 1
            if self.answering == 0:
                self._quiet.set()

    async def quiet(self, timeout: float) -> bool:
        if self.answering == 0:
            return True
        try:
            await asyncio.wait_for(self._quiet.wait(), timeout)
        except TimeoutError:
            return False
        return True


GATE: web.AppKey[_Gate] = web.AppKey("icbot_gate", _Gate)


class Stop:
    """SIGTERM/SIGINT: the first asks to stop, a second one says stop waiting."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.forced = asyncio.Event()

    def install(self) -> Stop:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._signal)
        return self

    def _signal(self) -> None:
        if self.requested.is_set():
            log.warning("shutdown.forced")
            self.forced.set()
        self.requested.set()

    async def wait(self) -> None:
        await self.requested.wait()


def dsn_setting(settings: Settings) -> str | None:
    return settings.database_url.get_secret_value() if settings.database_url else None


def freeze_startup_objects() -> None:
    """Start-up objects (imports, the app) live for the whole process: move them out of the
    garbage collector's way so full collections do not stall acks."""
    gc.collect()
    gc.freeze()


# ---------------------------------------------------------------------- HTTP


@web.middleware
async def _refuse_while_stopping(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    gate = request.app[GATE]
    if request.path in _REFUSED_WHILE_STOPPING:
        if gate.stopping.is_set():
            return web.json_response(
                {"error": "shutting down; try another replica"},
                status=503,
                headers={"Retry-After": "1"},
            )
        with gate.answer():  # until the ack: the work it starts is tracked from then on
            return await handler(request)
    if request.path == "/readyz" and gate.stopping.is_set():
        return web.json_response({"status": "unavailable", "reason": "shutting down"}, status=503)
    return await handler(request)


def prepare_for_drain(app: web.Application) -> None:
    """Let `app` refuse new work once `begin_stopping(app)` is called (before it starts)."""
    app[GATE] = _Gate()
    app.middlewares.insert(0, _refuse_while_stopping)


async def begin_stopping(app: web.Application, *, timeout: float = ACK_WAIT) -> None:
    """Refuse new work, then wait (bounded) for the requests already being answered."""
    gate = app[GATE]
    gate.stopping.set()
    if not await gate.quiet(timeout):
        log.warning("shutdown.requests_unanswered", requests=gate.answering)


async def start_http(app: web.Application, *, port: int, host: str = "0.0.0.0") -> web.AppRunner:  # noqa: S104
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=HTTP_SHUTDOWN)
    await runner.setup()
    site = web.TCPSite(runner, host=host, port=port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


# ---------------------------------------------------------------------- secrets


def use_current_token(bolt: AsyncApp, client: AsyncWebClient) -> None:
    """Bolt middleware: listeners' `client`/`say` use the bot token `client` holds *now*.

    Bolt copies the token into a per-request client when the app is built; after a rotation
    (see :func:`follow_rotation`) this hands the listeners the current one.
    """

    async def current_token(
        req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse:
        token = client.token
        per_request = req.context.get("client")
        if token and isinstance(per_request, AsyncWebClient) and per_request.token != token:
            per_request.token = token
            req.context["token"] = token
            req.context["bot_token"] = token
        return await next()

    bolt.middleware(current_token)


def follow_rotation(
    live: LiveSecrets,
    services: Services,
    *,
    web_app: web.Application | None = None,
    socket_client: Any | None = None,
) -> None:
    """Give rotated values to the objects that copied one at start-up.

    Everything else reads ``services.settings`` when it acts (``LiveSecrets`` assigns new
    values there): PagerDuty webhook secrets, the feature-flag token.
    """
    settings = services.settings

    def rotated(names: frozenset[str]) -> None:
        def value(name: str) -> str | None:
            secret = getattr(settings, name)
            return secret.get_secret_value() if name in names and secret is not None else None

        if (token := value("slack_bot_token")) is not None:
            services.client.token = token
        if (signing := value("slack_signing_secret")) is not None and web_app is not None:
            web_app[VERIFIER].signing_secret = signing
        pager = services.pager
        if (key := value("pagerduty_api_token")) is not None and isinstance(
            pager, PagerDutyAdapter
        ):
            pager.client.auth_method.secret = key
        if (app_token := value("slack_app_token")) is not None and socket_client is not None:
            socket_client.app_token = app_token
        log.info("secrets.applied", settings=sorted(n.upper() for n in names))

    live.on_rotate(rotated)


# ---------------------------------------------------------------------- draining


async def drain(
    services: Services, *, grace: float, stop: Stop | None = None, flush: bool = True
) -> bool:
    """Wait for work in flight (bounded), then flush the outbox briefly. True if all finished.

    ``flush=False`` (``serve --no-worker``): what the work queued is left to ``icbot worker``.
    """
    started = time.monotonic()
    idle = asyncio.ensure_future(services.inflight.idle(timeout=grace))
    waiters: set[asyncio.Future[Any]] = {idle}
    forced: asyncio.Future[Any] | None = None
    if stop is not None:
        forced = asyncio.ensure_future(stop.forced.wait())
        waiters.add(forced)
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if forced is not None:
            forced.cancel()
    finished = idle.done() and not idle.cancelled() and idle.exception() is None
    if not idle.done():
        idle.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await idle
    if not finished:
        log.warning("shutdown.drain_incomplete", grace=grace)
        return False
    remaining = grace - (time.monotonic() - started)
    if flush and remaining > 0:
        await flush_outboxes(services, min(remaining, OUTBOX_FLUSH))
    log.info("shutdown.drained", seconds=round(time.monotonic() - started, 3))
    return True


async def flush_outboxes(services: Services, timeout: float) -> None:
    """Deliver what the outbox (and the PagerDuty queue) hold, for at most `timeout` seconds."""
    queues: list[Any] = [services.outbox]
    if services.pager_queue is not None:
        queues.append(services.pager_queue)
    if services.jira_queue is not None:
        queues.append(services.jira_queue)
    if services.grafana_queue is not None:
        queues.append(services.grafana_queue)
    for queue in queues:
        try:
            await queue.drain(timeout=timeout)
        except TimeoutError:
            log.info("shutdown.outbox_left", queue=getattr(queue, "name", "outbox"))
        except Exception:
            log.exception("shutdown.outbox_flush_failed")


@contextlib.asynccontextmanager
async def background(*jobs: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run `jobs` as tasks while the block runs; cancel them at the end."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


# ---------------------------------------------------------------------- icbot serve


async def serve_http(
    settings: Settings,
    *,
    grace: float = DEFAULT_GRACE,
    secrets_interval: float = DEFAULT_INTERVAL,
    run_workers: bool = True,
) -> None:
    """`icbot serve`: secrets, database, services, the HTTP app on PORT; drain on SIGTERM.

    With ``run_workers=False`` (``--no-worker``) the background loops are left to a separate
    ``icbot worker`` (:mod:`bot.runtime.worker`): this process only answers Slack.
    """
    from bot.runtime.services import open_services
    from bot.runtime.web import build_web_app
    from bot.store.db import database
    from commands.app import build_slack_app

    serve_log = get_logger("icbot.serve")
    stop = Stop().install()
    async with open_secrets(settings, required=SERVE_SECRETS, interval=secrets_interval) as live:
        token, signing_secret = settings.require_slack()
        async with (
            database(dsn_setting(settings), settings.data_dir) as dsn,
            open_services(settings, dsn=dsn, token=token, run_workers=run_workers) as services,
        ):
            bolt = build_slack_app(services)
            use_current_token(bolt, services.client)
            app = build_web_app(services, bolt, signing_secret=signing_secret)
            prepare_for_drain(app)
            follow_rotation(live, services, web_app=app)
            freeze_startup_objects()
            runner = await start_http(app, port=settings.port)
            try:
                async with background(live.run_forever()):
                    serve_log.info("serve.started", port=settings.port, channel=services.channel_id)
                    await stop.wait()
                    serve_log.info("serve.stopping", grace=grace)
                    await begin_stopping(app)
                    await drain(services, grace=grace, stop=stop, flush=run_workers)
            finally:
                await runner.cleanup()
            serve_log.info("serve.stopped")
