"""The HTTP edge: signatures, bad input, retries, health and metrics."""

from __future__ import annotations

import time

from tests.conftest import Bot


async def _incident_count(bot: Bot) -> int:
    return int((await bot.fetch("SELECT count(*) AS n FROM incidents"))[0]["n"])


async def test_unsigned_request_gets_401_and_changes_nothing(bot: Bot) -> None:
    request = bot.command_request("declare Sneaky sev1")
    async with bot.http.post(
        f"{bot.base}/slack/events",
        data=request.body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as resp:
        assert resp.status == 401
    await bot.settle()
    assert await _incident_count(bot) == 0
    assert bot.slack.calls_to("chat.postMessage") == []


async def test_badly_signed_request_gets_401(bot: Bot) -> None:
    request = bot.command_request("declare Sneaky sev1")
    status, _ = await bot.post(request, headers={"X-Slack-Signature": "v0=" + "0" * 64})
    assert status == 401
    assert await _incident_count(bot) == 0


async def test_stale_request_older_than_five_minutes_gets_401(bot: Bot) -> None:
    request = bot.command_request("declare Replayed sev1", timestamp=int(time.time()) - 301)
    status, _ = await bot.post(request)
    assert status == 401
    await bot.settle()
    assert await _incident_count(bot) == 0


async def test_body_tampered_after_signing_gets_401(bot: Bot) -> None:
    request = bot.command_request("declare Real sev3")
    tampered = request.body.replace("Real", "Fake")
    async with bot.http.post(
        f"{bot.base}/slack/events", data=tampered.encode(), headers=request.headers
    ) as resp:
        assert resp.status == 401


async def test_unknown_subcommand_gets_ephemeral_usage_in_the_ack(bot: Bot) -> None:
    status, body = await bot.command("frobnicate now")
    assert status == 200
    assert "not a command I know" in body and "Usage" in body
    assert await _incident_count(bot) == 0


async def test_bad_arguments_get_usage_and_change_nothing(bot: Bot) -> None:
    await bot.command("declare Real sev2")
    for text in (
        "sev sev9",
        "assign dana scribe",
        "status",
        "timeline INC-1 extra",
        "declare sev1",
    ):
        status, body = await bot.command(text)
        assert status == 200, text
        assert "Usage" in body or "title" in body, text
    assert len(await bot.fetch("SELECT * FROM timeline")) == 1


async def test_oversized_text_is_refused_with_a_clear_message(bot: Bot) -> None:
    await bot.command("declare Real sev2")
    status, body = await bot.command("note " + "x" * 3500)
    assert status == 200
    assert "keep it under 3000" in bot.last_reply()
    status, body = await bot.command("declare " + "y" * 4100)
    assert "keep it under 4000" in body
    assert len(await bot.fetch("SELECT * FROM timeline")) == 1


async def test_malformed_body_with_a_valid_signature_is_not_a_500(bot: Bot) -> None:
    for body, ctype in (
        ("{not json", "application/json"),
        ("payload=%7Bbroken", "application/x-www-form-urlencoded"),
    ):
        signed = bot.requests.sign(body, content_type=ctype)
        status, _ = await bot.post(signed)
        assert status in (200, 400), body
        assert status != 500


async def test_event_retry_is_acknowledged_and_not_processed_twice(bot: Bot) -> None:
    mention = {
        "type": "app_mention",
        "user": bot.user("dana"),
        "text": f"<@{bot.slack.bot_user_id}> help",
        "ts": "1732480000.000100",
        "channel": bot.channel,
        "event_ts": "1732480000.000100",
    }
    first = bot.requests.event(mention, event_id="Ev0001")
    status, _ = await bot.post(first)
    assert status == 200
    await bot.settle()
    retry = bot.requests.event(mention, event_id="Ev0001")
    status, _ = await bot.post(
        retry, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    )
    assert status == 200
    await bot.settle()
    replies = [
        c
        for c in bot.slack.calls_to("chat.postMessage")
        if c.args.get("thread_ts") == mention["ts"]
    ]
    assert len(replies) == 1


async def test_url_verification_is_answered_with_the_challenge(bot: Bot) -> None:
    import json

    body = json.dumps({"token": "x", "challenge": "abc123", "type": "url_verification"})
    status, text = await bot.post(bot.requests.sign(body, content_type="application/json"))
    assert status == 200 and "abc123" in text


async def test_unhandled_event_type_is_acknowledged_not_404(bot: Bot) -> None:
    event = {"type": "channel_created", "channel": {"id": "C999", "name": "x"}}
    status, _ = await bot.post(bot.requests.event(event))
    assert status == 200


async def test_healthz_and_readyz_report_ready(bot: Bot) -> None:
    async with bot.http.get(f"{bot.base}/healthz") as resp:
        assert resp.status == 200
    async with bot.http.get(f"{bot.base}/readyz") as resp:
        assert resp.status == 200
        assert (await resp.json()) == {"status": "ready"}


async def test_readyz_is_503_with_a_reason_when_migrations_are_pending(bot: Bot) -> None:
    async with bot.services.pool.acquire() as conn:
        await conn.execute("DELETE FROM schema_migrations")
    async with bot.http.get(f"{bot.base}/readyz") as resp:
        assert resp.status == 503
        body = await resp.json()
        assert body["status"] == "unavailable" and "migrations pending" in body["reason"]


async def test_metrics_are_prometheus_text_and_named_icbot(bot: Bot) -> None:
    await bot.command("help")
    async with bot.http.get(f"{bot.base}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    assert names and all(name.startswith("icbot_") for name in names)
    assert "icbot_requests_total" in text


async def test_rollback_with_bad_arguments_gets_usage_in_the_ack(bot: Bot) -> None:
    for text in ("", "a b c", "payment-service --namespace"):
        status, body = await bot.post(bot.command_request(text, command="/rollback"))
        assert status == 200 and "Usage: `/rollback" in body, text


async def test_command_replies_reuse_one_connection_to_slack(bot: Bot) -> None:
    """Bolt's own respond() opens a connection per reply; the bot's reuses its HTTP session."""
    for i in range(5):
        await bot.command(f"note reply number {i}" if i else "declare Payments failing sev2")
    assert len(bot.slack.response_url_peers) == 5
    assert len(set(bot.slack.response_url_peers)) == 1
