"""SIGTERM during an in-flight command: it completes, new work is refused, the process exits 0."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from sandbox.actuator import FakeActuator
from sandbox.kubernetes import FakeKubernetes
from sandbox.slack_api import FakeSlack
from sandbox.slack_requests import SignedRequest, SlackRequests
from tests.conftest import SIGNING_SECRET
from tests.ship.helpers import Icbot, clean_env, free_port, start, wait_ready

SERVICE = "payment-service"


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[tuple[FakeActuator, Path]]:
    async with FakeActuator(services=[SERVICE]) as actuator, FakeKubernetes() as kube:
        kube.add_deployment("waqiti", SERVICE, "payments:1.4.2", replicas=3)
        actuator.set_metric(SERVICE, "saga.started.total", {"COUNT": 100_000})
        actuator.set_metric(SERVICE, "saga.compensated.total", {"COUNT": 50})
        actuator.set_breaker(SERVICE, "ledger", "CLOSED")
        actuator.set_component(SERVICE, "db", "UP", {"database": "PostgreSQL"})
        yield actuator, kube.write_kubeconfig(tmp_path / "kubeconfig")


async def _serve(
    dsn: str, slack: FakeSlack, actuator: FakeActuator, kubeconfig: Path, **extra: str
) -> Icbot:
    port = free_port()
    env = clean_env(
        DATABASE_URL=dsn,
        SLACK_BOT_TOKEN=slack.token,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.url,
        SERVICE_URL_TEMPLATE=actuator.url_template,
        KUBECONFIG=str(kubeconfig),
        PORT=str(port),
        **extra,
    )
    bot = await start("serve", env, port=port)
    await wait_ready(bot)
    return bot


def _command(slack: FakeSlack, command: str, text: str) -> SignedRequest:
    uid = slack.add_user("dana")
    channel = slack.channel_id("waqiti-incidents")
    return SlackRequests(SIGNING_SECRET, team_id=slack.team_id).slash_command(
        command, text, user_id=uid, user_name="dana", channel_id=channel,
        channel_name="waqiti-incidents",
        response_url=slack.new_response_url(channel=channel, user=uid),
    )  # fmt: skip


async def _post(http: aiohttp.ClientSession, bot: Icbot, request: SignedRequest) -> int:
    async with http.post(
        f"{bot.base}/slack/events", data=request.body.encode(), headers=request.headers
    ) as resp:
        return resp.status


async def _get(http: aiohttp.ClientSession, bot: Icbot, path: str) -> tuple[int, Any]:
    async with http.get(f"{bot.base}{path}") as resp:
        return resp.status, await resp.text()


async def _findings(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        data = await conn.fetchval(
            "SELECT data FROM timeline WHERE kind = 'diagnosis' ORDER BY seq DESC LIMIT 1"
        )
    finally:
        await conn.close()
    assert data is not None, "no diagnosis was recorded"
    report = json.loads(data) if isinstance(data, str) else data
    return {f["id"]: f["band"] for f in report["findings"]}


async def test_sigterm_during_a_slow_diagnose_lets_it_finish_and_exits_zero(
    dsn: str, slack: FakeSlack, platform: tuple[FakeActuator, Path]
) -> None:
    actuator, kubeconfig = platform
    bot = await _serve(dsn, slack, actuator, kubeconfig, SHUTDOWN_GRACE_SECONDS="30")
    try:
        async with aiohttp.ClientSession() as http:
            assert await _post(http, bot, _command(slack, "/ic", "declare Payments sev2")) == 200
            await slack.wait_for(lambda: len(slack.roots("waqiti-incidents")) == 1, timeout=15)
            actuator.slow(SERVICE, "circuitbreakers", delay=3)  # within the check's 5 s timeout
            started = time.monotonic()
            assert await _post(http, bot, _command(slack, "/diagnose", "saga")) == 200
            assert time.monotonic() - started < 2  # acked at once; the checks run after
            bot.terminate()  # SIGTERM while the diagnosis is running

            # Draining: still alive for the kubelet, not ready, no new work taken.
            await asyncio.sleep(0.3)
            assert (await _get(http, bot, "/healthz"))[0] == 200
            status, body = await _get(http, bot, "/readyz")
            assert status == 503 and "shutting down" in body
            assert await _post(http, bot, _command(slack, "/ic", "note too late")) == 503
            assert (await _get(http, bot, "/metrics"))[0] == 200
    finally:
        code = await bot.stop()
    elapsed = time.monotonic() - started
    assert code == 0, bot.text[-3000:]
    assert elapsed >= 2.5  # it waited for the slow check instead of cutting it off
    bands = await _findings(dsn)
    assert bands["circuit_breakers"] == "normal" and bands["compensation_rate"] == "normal"
    assert any("Diagnosis `saga` posted in *INC-1*" in e.text for e in slack.ephemerals)
    card = slack.roots("waqiti-incidents")[0]
    assert any("saga" in str(m.blocks) for m in slack.thread("waqiti-incidents", card.ts))
    assert not any("too late" in m.text for m in slack.thread("waqiti-incidents", card.ts))
    events = [e["event"] for e in bot.events()]
    assert events.index("serve.stopping") < events.index("shutdown.drained")
    assert "serve.stopped" in events


async def test_the_drain_is_bounded_by_the_grace_period(
    dsn: str, slack: FakeSlack, platform: tuple[FakeActuator, Path]
) -> None:
    actuator, kubeconfig = platform
    bot = await _serve(dsn, slack, actuator, kubeconfig, SHUTDOWN_GRACE_SECONDS="1")
    try:
        async with aiohttp.ClientSession() as http:
            assert await _post(http, bot, _command(slack, "/ic", "declare Payments sev2")) == 200
            actuator.slow(SERVICE, "circuitbreakers", delay=4.5)
            assert await _post(http, bot, _command(slack, "/diagnose", "saga")) == 200
            started = time.monotonic()
            bot.terminate()
    finally:
        code = await bot.stop()
    assert code == 0, bot.text[-3000:]
    assert time.monotonic() - started < 4  # the grace (1 s) plus closing, not the 4.5 s check
    events = [e["event"] for e in bot.events()]
    assert "shutdown.drain_incomplete" in events and "serve.stopped" in events
