"""Three `icbot serve` processes on one PostgreSQL, one killed -9 midway: every status
prompt reaches Slack exactly once — none lost, none duplicated."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
from pathlib import Path

import aiohttp

from bot.delivery.outbox import ChannelPacer, Outbox
from bot.domain.policy import load_severity_policy
from bot.runtime.services import open_services
from sandbox.child import free_port
from sandbox.slack_api import FakeSlack
from sandbox.slack_requests import SlackRequests
from tests.conftest import SIGNING_SECRET, make_settings

REPO = Path(__file__).resolve().parent.parent
PROMPT_KINDS = ("status_prompt", "prompt_escalated")
RUN_SECONDS = 9.0


async def _start(env: dict[str, str]) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port("127.0.0.1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve",
        env={**env, "PORT": str(port)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(400):
            try:
                async with http.get(f"{base}/readyz") as resp:
                    if resp.status == 200:
                        return proc, base
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("replica never became ready")


async def test_three_replicas_and_a_kill_9_post_every_prompt_exactly_once(
    dsn: str, slack: FakeSlack, tmp_path: Path
) -> None:
    policy = (REPO / "playbooks" / "severities.yml").read_text()
    policy = policy.replace("status_every: 30m", "status_every: 2s")
    policy = policy.replace("escalate_after: 30m", "escalate_after: null")
    (tmp_path / "severities.yml").write_text(policy)
    slack.latency["chat.postMessage"] = 0.15  # posts take effect, answers come late
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.url,
        "PLAYBOOKS_DIR": str(tmp_path),
        "OUTBOX_LEASE_SECONDS": "2",
        "TIMER_POLL_SECONDS": "0.2",
    }
    replicas = [await _start(env) for _ in range(3)]
    channel = slack.channel_id("waqiti-incidents")
    dana = slack.add_user("dana")
    requests = SlackRequests(SIGNING_SECRET)
    try:
        async with aiohttp.ClientSession() as http:
            for n in range(4):
                request = requests.slash_command(
                    "/ic", f"declare Incident {n} sev2", user_id=dana, user_name="dana",
                    channel_id=channel, channel_name="waqiti-incidents",
                    response_url=slack.new_response_url(channel=channel, user=dana),
                )  # fmt: skip
                _, base = replicas[n % 3]
                async with http.post(
                    f"{base}/slack/events", data=request.body.encode(), headers=request.headers
                ) as resp:
                    assert resp.status == 200
        await asyncio.sleep(RUN_SECONDS / 2)
        victim, _ = replicas[1]
        victim.send_signal(signal.SIGKILL)
        await victim.wait()
        await asyncio.sleep(RUN_SECONDS / 2)
    finally:
        for proc, _ in replicas:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in replicas:
            await asyncio.wait_for(proc.wait(), timeout=30)

    # Whatever the dead replica held is retried once its lease runs out.
    await asyncio.sleep(2.1)
    settings = make_settings(slack, playbooks_dir=tmp_path)
    async with open_services(
        settings, dsn=dsn, token=slack.token, run_workers=False,
        pacer=ChannelPacer(per_second=0, burst=1),
    ) as services:  # fmt: skip
        outbox = Outbox(
            services.pool, services.chat, load_severity_policy(tmp_path),
            renderer=services.outbox.renderer, pacer=ChannelPacer(per_second=0, burst=1),
        )  # fmt: skip
        await outbox.drain(timeout=30)
        rows = await services.pool.fetch(
            "SELECT incident_id, kind, seq, data FROM timeline WHERE kind = ANY($1) ORDER BY 1, 3",
            list(PROMPT_KINDS),
        )
        threads = {
            r["id"]: r["thread_ts"]
            for r in await services.pool.fetch("SELECT id, thread_ts FROM incidents")
        }

    recorded: dict[int, list[int]] = collections.defaultdict(list)
    for row in rows:
        recorded[row["incident_id"]].append(row["data"]["prompt_seq"])
    assert sorted(threads) == [1, 2, 3, 4]
    for incident_id, thread_ts in threads.items():
        seqs = recorded[incident_id]
        # ~9 s at a 2 s cadence (prompt, reminder after 1 s, escalation after 1 s, then 2 s)
        assert len(seqs) >= 3, (incident_id, seqs)
        assert seqs == list(range(1, len(seqs) + 1))  # claimed once each, in order
        posted = [
            m for m in slack.thread("waqiti-incidents", thread_ts)
            if m.metadata and "prompt" in str(m.blocks)
        ]  # fmt: skip
        keys = [m.metadata["event_payload"]["key"] for m in posted if m.metadata]
        assert len(keys) == len(set(keys)), "a prompt was posted twice"
        assert len(posted) == len(seqs), (incident_id, len(posted), seqs)
