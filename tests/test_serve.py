"""`icbot serve` as operators run it: a real process, real HTTP, JSON logs, clean shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import aiohttp

from sandbox.child import free_port
from sandbox.slack_api import FakeSlack
from sandbox.slack_requests import SlackRequests
from tests.conftest import SIGNING_SECRET


async def test_serve_answers_slack_posts_the_card_and_stops_on_sigterm(
    dsn: str, slack: FakeSlack
) -> None:
    port = free_port("127.0.0.1")
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.url,
        "PORT": str(port),
    }
    env.pop("LOG_FORMAT", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", env=env, stderr=asyncio.subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(f"{base}/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("serve never became ready")
            uid = slack.add_user("dana")
            channel = slack.channel_id("waqiti-incidents")
            request = SlackRequests(SIGNING_SECRET).slash_command(
                "/ic",
                "declare Payments failing sev1",
                user_id=uid,
                user_name="dana",
                channel_id=channel,
                channel_name="waqiti-incidents",
                response_url=slack.new_response_url(channel=channel, user=uid),
            )
            async with http.post(
                f"{base}/slack/events", data=request.body.encode(), headers=request.headers
            ) as resp:
                assert resp.status == 200
            async with http.post(f"{base}/slack/events", data=b"text=x") as resp:
                assert resp.status == 401
        # The outbox worker of `serve` posts the card and the first entry on its own.
        await slack.wait_for(
            lambda: (
                len(slack.roots("waqiti-incidents")) == 1
                and len(slack.thread("waqiti-incidents", slack.roots("waqiti-incidents")[0].ts))
                == 1
            ),
            timeout=15,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    events = [line["event"] for line in lines]
    assert "serve.started" in events and "serve.stopping" in events
    assert slack.token not in stderr.decode() and SIGNING_SECRET not in stderr.decode()


async def test_serve_refuses_to_start_without_slack_credentials(dsn: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env["DATABASE_URL"] = dsn
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 2
    assert b"SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET must be set" in stderr
