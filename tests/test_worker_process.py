"""`icbot serve --no-worker` and `icbot worker`: Slack answered by one process, delivery by another."""

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


def _env(dsn: str, slack: FakeSlack, *, port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.url,
        "PORT": str(port),
    }
    env.pop("LOG_FORMAT", None)
    return env


async def _stop(proc: asyncio.subprocess.Process) -> list[str]:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    return [json.loads(line)["event"] for line in stderr.decode().splitlines() if line[:1] == "{"]


async def test_serve_without_worker_answers_but_posts_nothing_until_a_worker_runs(
    dsn: str, slack: FakeSlack
) -> None:
    port = free_port("127.0.0.1")
    env = _env(dsn, slack, port=port)
    serve = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", "--no-worker", env=env, stderr=asyncio.subprocess.PIPE
    )
    worker: asyncio.subprocess.Process | None = None
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
                raise AssertionError("serve --no-worker never became ready")
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
        # The command was answered, but with no worker nothing reaches the channel.
        await asyncio.sleep(3)
        assert slack.roots("waqiti-incidents") == []
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "worker", env=env, stderr=asyncio.subprocess.PIPE
        )
        await slack.wait_for(
            lambda: (
                len(slack.roots("waqiti-incidents")) == 1
                and len(slack.thread("waqiti-incidents", slack.roots("waqiti-incidents")[0].ts))
                == 1
            ),
            timeout=20,
        )
    finally:
        serve_events = await _stop(serve)
        worker_events = await _stop(worker) if worker is not None else []
    assert "serve.started" in serve_events
    assert "worker.started" in worker_events and "worker.stopped" in worker_events
