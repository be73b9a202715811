"""Before authentication the bot answers 401 (or 413) and logs one line, whatever is malformed.

Anyone on the internet can reach `POST /slack/events` and `POST /pagerduty/webhook`: no
header, body or size they send may give a 500 or a traceback in the logs.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import signal
import sys
import time
from typing import Any

import aiohttp
import pytest

from sandbox.child import free_port
from sandbox.pagerduty import FakePagerDuty
from sandbox.slack_api import FakeSlack
from tests.conftest import SIGNING_SECRET, Bot, pagerduty_settings

BODY = b"token=x&command=%2Fic&text=declare+Sneaky+sev1&user_id=U1&channel_id=C1"


def _sign(timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()


def _malformed_slack_requests() -> list[tuple[str, bytes, dict[str, str]]]:
    """(what, body, headers): each signed as well as it can be, and each not a fresh, signed
    Slack request."""
    now = str(int(time.time()))
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    cases = [
        (
            f"timestamp {ts[:12]!r}",
            BODY,
            {
                **form,
                "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": _sign(ts, BODY) if ts.isascii() else "v0=00",
            },
        )
        for ts in ("abc", "", f"{time.time():.3f}", "9" * 400, "-1", "١٢٣", " 1")
    ]
    cases += [
        ("signature v0=é", BODY, {**form, "X-Slack-Request-Timestamp": now,
                                  "X-Slack-Signature": "v0=é"}),
        ("signature empty", BODY, {**form, "X-Slack-Request-Timestamp": now,
                                   "X-Slack-Signature": ""}),
        ("unsigned non-UTF-8 body", b"\xff\xfe\x00text=\xe9", {
            **form, "X-Slack-Request-Timestamp": now, "X-Slack-Signature": "v0=" + "0" * 64}),
        ("no headers at all", b"\xff\xfe", {}),
    ]  # fmt: skip
    return cases


def _tracebacks(records: list[logging.LogRecord]) -> list[str]:
    out = []
    for r in records:
        event = r.msg if isinstance(r.msg, dict) else {}
        if r.exc_info or "exception" in event or "Traceback" in r.getMessage():
            out.append(r.getMessage()[:300])
    return out


async def test_malformed_slack_requests_get_401_one_log_line_and_no_traceback(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for what, body, headers in _malformed_slack_requests():
        caplog.clear()
        async with bot.http.post(f"{bot.base}/slack/events", data=body, headers=headers) as resp:
            assert resp.status == 401, what
        assert _tracebacks(caplog.records) == [], what
        assert len(caplog.records) <= 1, (what, [r.getMessage() for r in caplog.records])
    await bot.settle()
    assert (await bot.fetch("SELECT count(*) AS n FROM incidents"))[0]["n"] == 0


async def test_a_body_over_the_limit_gets_413_and_no_traceback(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    big = b"text=" + b"x" * (1024 * 1024 + 1)
    for path in ("/slack/events", "/pagerduty/webhook"):
        caplog.clear()
        async with bot.http.post(f"{bot.base}{path}", data=big) as resp:
            assert resp.status == 413, path
        assert _tracebacks(caplog.records) == [], path


async def test_a_signed_body_that_is_not_utf8_is_refused_without_a_500(bot: Bot) -> None:
    ts = str(int(time.time()))
    body = b"text=\xff\xfe"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": _sign(ts, body),
    }
    async with bot.http.post(f"{bot.base}/slack/events", data=body, headers=headers) as resp:
        assert resp.status in (400, 401)


async def test_malformed_pagerduty_signatures_get_401_and_no_traceback(
    dsn: str, slack: FakeSlack, pagerduty: FakePagerDuty, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.conftest import running_bot

    caplog.set_level(logging.INFO)
    async with running_bot(dsn, slack, **pagerduty_settings(pagerduty)) as bot:
        body = json.dumps({"event": {"event_type": "incident.triggered"}}).encode()
        for header in ("v1=é", "v1=", "v1=é,v1=00", "é", ",,,", "v1=" + "0" * 64):
            caplog.clear()
            async with bot.http.post(
                f"{bot.base}/pagerduty/webhook",
                data=body,
                headers={"X-PagerDuty-Signature": header},
            ) as resp:
                assert resp.status == 401, header
            assert _tracebacks(caplog.records) == [], header
            assert len(caplog.records) <= 1, header
        caplog.clear()
        async with bot.http.post(
            f"{bot.base}/pagerduty/webhook", data=b"\xff\xfe", headers={}
        ) as resp:
            assert resp.status == 401
        assert _tracebacks(caplog.records) == []


async def test_icbot_serve_answers_malformed_requests_401_without_a_traceback(
    dsn: str, slack: FakeSlack
) -> None:
    """The real process, with its JSON logs: 401s, and not one logged exception."""
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
        sys.executable, "-m", "bot", "serve", env=env,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    statuses: list[int] = []
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
            cases = _malformed_slack_requests()
            for _, body, headers in cases:
                async with http.post(f"{base}/slack/events", data=body, headers=headers) as r:
                    statuses.append(r.status)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert statuses == [401] * len(cases)
    lines: list[dict[str, Any]] = [
        json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")
    ]
    assert not [line for line in lines if "exception" in line or line.get("level") == "error"]
    assert "Traceback" not in stderr.decode()
