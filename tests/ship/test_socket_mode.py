"""`icbot socket`: the same app over Socket Mode, against a local Socket Mode stand-in."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from sandbox.slack_api import FakeSlack
from sandbox.slack_requests import SlackRequests
from sandbox.socket_mode import FakeSocketMode, envelope_payload
from tests.conftest import SIGNING_SECRET
from tests.ship.helpers import clean_env, free_port, run_to_exit, start, wait_ready


@pytest.fixture
async def socket_slack(slack: FakeSlack) -> AsyncIterator[FakeSocketMode]:
    async with FakeSocketMode(upstream=slack.url) as fake:
        yield fake


def _requests(slack: FakeSlack) -> SlackRequests:
    # Socket Mode payloads carry no signature; SlackRequests only shapes them.
    return SlackRequests(signing_secret=SIGNING_SECRET, team_id=slack.team_id)


def _command(slack: FakeSlack, text: str, *, user: str = "dana", command: str = "/ic") -> dict:
    uid = slack.add_user(user)
    channel = slack.channel_id("waqiti-incidents")
    request = _requests(slack).slash_command(
        command, text, user_id=uid, user_name=user, channel_id=channel,
        channel_name="waqiti-incidents",
        response_url=slack.new_response_url(channel=channel, user=uid),
    )  # fmt: skip
    kind, payload = envelope_payload(request)
    assert kind == "slash_commands"
    return payload


# ---------------------------------------------------------------------- the stand-in itself


async def test_connections_open_wants_the_app_token_and_each_url_works_once(
    socket_slack: FakeSocketMode, slack: FakeSlack
) -> None:
    api = socket_slack.url
    async with aiohttp.ClientSession() as http:

        async def open_with(token: str | None) -> dict:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with http.post(f"{api}apps.connections.open", headers=headers) as resp:
                assert resp.status == 200
                return dict(await resp.json())

        assert (await open_with(None))["error"] == "not_authed"
        assert (await open_with(slack.token))["error"] == "not_allowed_token_type"
        assert (await open_with("xapp-1-A1-1-wrong"))["error"] == "invalid_auth"
        opened = await open_with(socket_slack.app_token)
        assert opened["ok"] is True and opened["url"].startswith("ws://127.0.0.1:")
        async with http.ws_connect(opened["url"]) as ws:
            hello = json.loads((await ws.receive()).data)
            assert hello["type"] == "hello" and hello["num_connections"] == 1
            assert hello["connection_info"]["app_id"] == socket_slack.app_id
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(opened["url"])  # a ticket is good for one connection
        assert refused.value.status == 401
        # Other Web API methods go to the Web API stand-in, token and all.
        auth = {"Authorization": f"Bearer {slack.token}"}
        async with http.post(f"{api}auth.test", headers=auth) as resp:
            assert (await resp.json())["user_id"] == slack.bot_user_id


# ---------------------------------------------------------------------- icbot socket


async def test_declare_over_socket_mode_acks_on_the_socket_and_posts_the_card(
    dsn: str, slack: FakeSlack, socket_slack: FakeSocketMode
) -> None:
    port = free_port()
    env = clean_env(
        DATABASE_URL=dsn,
        SLACK_BOT_TOKEN=slack.token,
        SLACK_APP_TOKEN=socket_slack.app_token,
        SLACK_API_URL=socket_slack.url,
        PORT=str(port),
    )
    bot = await start("socket", env, port=port)
    try:
        await wait_ready(bot)
        await socket_slack.wait_connected()

        ack = await socket_slack.send("slash_commands", _command(slack, "declare Ledger down sev1"))
        assert ack.payload is None  # a plain ack: the work goes on after it
        channel = "waqiti-incidents"
        await slack.wait_for(
            lambda: (
                len(slack.roots(channel)) == 1
                and len(slack.thread(channel, slack.roots(channel)[0].ts)) == 1
            ),
            timeout=15,
        )
        assert "Ledger down" in slack.roots(channel)[0].text
        await slack.wait_for(lambda: any("Declared *INC-1*" in e.text for e in slack.ephemerals))

        # Bad input: the usage line comes back in the ack's payload (an ephemeral reply).
        usage = await socket_slack.send("slash_commands", _command(slack, "frobnicate"))
        assert usage.payload is not None and "Usage" in json.dumps(usage.payload)

        # Slack recycles the connection: the app opens a new one and keeps working.
        await socket_slack.disconnect("refresh_requested")
        await socket_slack.wait_opened(2)
        await socket_slack.wait_connected(total=2)
        ack = await socket_slack.send("slash_commands", _command(slack, "note Failing over"))
        assert ack.connection == socket_slack.live[-1].number
        await slack.wait_for(lambda: any("Noted in" in e.text for e in slack.ephemerals))

        async with aiohttp.ClientSession() as http, http.get(f"{bot.base}/metrics") as resp:
            text = await resp.text()
        assert 'icbot_requests_total{command="/ic declare",status="200",transport="socket"}' in text
    finally:
        code = await bot.stop()
    assert code == 0, bot.text[-3000:]
    events = [e["event"] for e in bot.events()]
    assert "socket.started" in events and "socket.stopping" in events
    assert socket_slack.app_token not in bot.text and slack.token not in bot.text
    assert socket_slack.protocol_errors == []
    assert not socket_slack.live  # the socket was closed on the way out


async def test_a_refused_app_token_stops_start_up_naming_the_setting(
    dsn: str, slack: FakeSlack, socket_slack: FakeSocketMode
) -> None:
    wrong = "xapp-1-A0000000001-1-not-the-right-one"
    env = clean_env(
        DATABASE_URL=dsn,
        SLACK_BOT_TOKEN=slack.token,
        SLACK_APP_TOKEN=wrong,
        SLACK_API_URL=socket_slack.url,
        PORT=str(free_port()),
    )
    bot = await run_to_exit("socket", env)
    assert bot.proc.returncode == 2, bot.text[-2000:]
    assert "SLACK_APP_TOKEN was refused by apps.connections.open (invalid_auth)" in bot.text
    assert wrong not in bot.text


async def test_socket_mode_needs_the_app_token_not_the_signing_secret(dsn: str) -> None:
    env = clean_env(DATABASE_URL=dsn, SLACK_BOT_TOKEN="xoxb-1-real-looking", PORT="0")
    bot = await run_to_exit("socket", env)
    assert bot.proc.returncode == 2
    assert "SLACK_APP_TOKEN must be set" in bot.text and "SIGNING" not in bot.text
