"""`icbot serve`: the aiohttp app. Slack requests are verified here, once, then given to Bolt."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.core import metrics as telemetry
from bot.core.errors import UserError
from bot.core.logs import get_logger
from bot.domain import jira as jira_domain
from bot.integrations import jira as jira_integration
from bot.integrations.pagerduty import verify_signature
from bot.pages import routes as pages
from bot.store import db
from bot.store import gauges as gauges_sql
from commands.services import Services

log = get_logger(__name__)

SERVICES: web.AppKey[Services] = web.AppKey("services", Services)
BOLT: web.AppKey[AsyncApp] = web.AppKey("bolt", AsyncApp)
VERIFIER: web.AppKey[SignatureVerifier] = web.AppKey("verifier", SignatureVerifier)
MAX_BODY = 1024 * 1024
TIMESTAMP_DIGITS = 12  # seconds since 1970 fit in 10 digits until the year 2286


def slack_rejection(
    verifier: SignatureVerifier, raw: bytes, headers: Mapping[str, str]
) -> str | None:
    """Why this is not a correctly signed, fresh Slack request (None when it is one).

    slack_sdk's verifier does the check; it is given only what it can check: a timestamp of
    ASCII digits, an ASCII signature and a UTF-8 body (it raises on anything else, and Slack
    sends nothing else), so a malformed request is refused like a forged one.
    """
    timestamp = headers.get("x-slack-request-timestamp") or ""
    signature = headers.get("x-slack-signature") or ""
    if not signature or not timestamp:
        return "unsigned"
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= TIMESTAMP_DIGITS):
        return "malformed timestamp"
    if not signature.isascii():
        return "malformed signature"
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "body not UTF-8"
    if not verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
        return "bad or stale signature"
    return None


@web.middleware
async def request_context(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Bind a request id for every log line of this request (and the tasks it starts)."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        request_id=request.headers.get("X-Request-Id") or uuid.uuid4().hex[:16],
        path=request.path,
    )
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = uuid.uuid4().hex[:12]
        log.exception("http.unhandled", error_id=error_id)
        return web.json_response({"error": "internal", "error_id": error_id}, status=500)


def _observe(started: float, command: str, status: int) -> None:
    seconds = time.perf_counter() - started
    telemetry.observe_request(transport="http", command=command, status=status, seconds=seconds)


async def slack_events(request: web.Request) -> web.Response:
    started = time.perf_counter()
    raw = await request.read()
    verifier = request.app[VERIFIER]
    headers = {k.lower(): v for k, v in request.headers.items()}
    rejected = slack_rejection(verifier, raw, headers)
    if rejected is not None:
        _observe(started, "unverified", 401)
        log.warning("slack.bad_signature", reason=rejected)
        return web.json_response({"error": "invalid signature"}, status=401)
    try:
        body = raw.decode("utf-8")
        bolt_request = AsyncBoltRequest(
            body=body,
            query=request.query_string,
            headers=dict(request.headers),
        )
    except (UnicodeDecodeError, ValueError):
        _observe(started, "malformed", 400)
        return web.json_response({"error": "malformed body"}, status=400)
    bolt_response = await request.app[BOLT].async_dispatch(bolt_request)
    _observe(started, telemetry.command_label(bolt_request.body), bolt_response.status)
    if bolt_response.status == 404:
        # Nothing listens for this (an event type the manifest no longer asks for): say OK,
        # or Slack retries it and eventually turns the app's events off.
        return web.Response(status=200, text="")
    return await to_aiohttp_response(bolt_response)


async def pagerduty_webhook(request: web.Request) -> web.Response:
    """PagerDuty V3 webhooks: signature checked, each event applied once, 2xx fast."""
    services = request.app[SERVICES]
    raw = await request.read()
    secrets = services.settings.pagerduty_webhook_secrets
    if not secrets or services.pager_events is None:
        return web.json_response({"error": "PagerDuty webhooks are not configured"}, status=401)
    if not verify_signature(raw, request.headers.get("X-PagerDuty-Signature"), secrets):
        log.warning("pagerduty.bad_signature")
        return web.json_response({"error": "invalid signature"}, status=401)
    try:
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("not an object")
        outcome = await services.pager_events.apply(body)
    except (ValueError, UserError) as exc:
        return web.json_response({"error": f"malformed webhook: {exc}"}, status=400)
    log.info("pagerduty.webhook", outcome=outcome, webhook_id=request.headers.get("X-Webhook-Id"))
    return web.json_response({"status": outcome})


async def jira_webhook(request: web.Request) -> web.Response:
    """Jira Cloud admin webhooks: `X-Hub-Signature` checked; an issue moved to Done ticks its
    action item once (a repeat finds it ticked)."""
    services = request.app[SERVICES]
    raw = await request.read()
    secret = services.settings.jira_webhook_secret
    if services.jira_queue is None or services.followups is None:
        return web.json_response({"error": "Jira is not configured"}, status=401)
    if secret is None:
        return web.json_response({"error": "Jira webhooks are not configured"}, status=401)
    if not jira_integration.verify_signature(
        raw, request.headers.get("X-Hub-Signature"), secret.get_secret_value()
    ):
        log.warning("jira.bad_signature")
        return web.json_response({"error": "invalid signature"}, status=401)
    try:
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("not an object")
        resolved = jira_domain.resolved_issue(body)
    except ValueError as exc:
        return web.json_response({"error": f"malformed webhook: {exc}"}, status=400)
    outcome = "ignored"
    if resolved is not None:
        key, by = resolved
        outcome = await services.followups.resolved_in_jira(key, by=by)
    log.info(
        "jira.webhook", outcome=outcome,
        webhook_id=request.headers.get("X-Atlassian-Webhook-Identifier"),
    )  # fmt: skip
    return web.json_response({"status": outcome})


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    try:
        async with asyncio.timeout(2):
            async with services.pool.acquire() as conn:
                pending = await db.pending_migrations(conn)
    except Exception as exc:
        return web.json_response(
            {"status": "unavailable", "reason": f"database unreachable ({type(exc).__name__})"},
            status=503,
        )
    if pending:
        return web.json_response(
            {"status": "unavailable", "reason": f"migrations pending: {', '.join(pending)}"},
            status=503,
        )
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text; the gauges of shared state are read from PostgreSQL first (bounded)."""
    services = request.app[SERVICES]

    async def read() -> dict[tuple[str, str], float]:
        async with services.pool.acquire() as conn:
            return await gauges_sql.shared_state(conn)

    await telemetry.refresh_from_database(
        read, severities=services.policy.levels, inflight=services.inflight.count
    )
    return web.Response(
        body=generate_latest(telemetry.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def build_web_app(services: Services, bolt: AsyncApp, *, signing_secret: str) -> web.Application:
    app = web.Application(middlewares=[request_context], client_max_size=MAX_BODY)
    app[SERVICES] = services
    app[BOLT] = bolt
    app[VERIFIER] = SignatureVerifier(signing_secret)
    app.router.add_post("/slack/events", slack_events)
    app.router.add_post("/pagerduty/webhook", pagerduty_webhook)
    app.router.add_post("/jira/webhook", jira_webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    s = services
    site = pages.site(
        s.settings, pool=s.pool, policy=s.policy, clock=s.clock, directory=s.directory
    )
    pages.add_routes(app, site)
    return app
