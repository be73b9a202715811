"""Data and code can't drift: the manifest and the registered listeners agree."""

from __future__ import annotations

from pathlib import Path

import yaml
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from commands.app import EVENTS, SHORTCUTS, SLASH_COMMANDS, build_slack_app
from sandbox.slack_requests import SignedRequest
from tests.conftest import Bot

MANIFEST = yaml.safe_load((Path(__file__).resolve().parent.parent / "manifest.yml").read_text())


async def _status(bot: Bot, app: AsyncApp, request: SignedRequest) -> int:
    headers = {k: [v] for k, v in request.headers.items()}
    response = await app.async_dispatch(AsyncBoltRequest(body=request.body, headers=headers))
    await bot.settle()
    return response.status


async def test_every_manifest_slash_command_has_a_listener(bot: Bot) -> None:
    declared = {c["command"] for c in MANIFEST["features"]["slash_commands"]}
    assert declared == set(SLASH_COMMANDS)
    app = build_slack_app(bot.services)
    for command in sorted(declared):
        assert await _status(bot, app, bot.command_request("help", command=command)) == 200


async def test_no_listener_answers_a_command_the_manifest_does_not_declare(bot: Bot) -> None:
    app = build_slack_app(bot.services)
    for command in ("/incident", "/ic2", "/deploy"):
        assert await _status(bot, app, bot.command_request("help", command=command)) == 404


async def test_manifest_events_are_exactly_the_events_with_listeners(bot: Bot) -> None:
    declared = set(MANIFEST["settings"]["event_subscriptions"]["bot_events"])
    assert declared == set(EVENTS)
    app = build_slack_app(bot.services)
    base = {"user": bot.user("dana"), "channel": bot.channel, "text": "hi", "ts": "1.000100"}
    for event_type in sorted(set(EVENTS.values())):
        request = bot.requests.event({**base, "type": event_type, "event_ts": "1.000100"})
        assert await _status(bot, app, request) == 200
    for event_type in ("member_joined_channel", "pin_added", "channel_rename"):
        request = bot.requests.event({**base, "type": event_type, "event_ts": "1.000200"})
        assert await _status(bot, app, request) == 404, event_type


def _shortcut(bot: Bot, callback_id: str, kind: str) -> SignedRequest:
    assert kind == "message", f"build a {kind} shortcut request to test {callback_id}"
    msg = bot.slack.post_user_message("waqiti-incidents", "dana", "hi")
    return bot.requests.message_shortcut(
        callback_id,
        bot.slack.payload_message(msg),
        user_id=bot.user("erin"),
        user_name="erin",
        channel_id=bot.channel,
        channel_name="waqiti-incidents",
        response_url=bot.slack.new_response_url(channel=bot.channel, user=bot.user("erin")),
    )


async def test_manifest_shortcuts_are_exactly_the_shortcuts_with_listeners(bot: Bot) -> None:
    declared = {s["callback_id"]: s["type"] for s in MANIFEST["features"]["shortcuts"]}
    assert declared == SHORTCUTS
    for shortcut in MANIFEST["features"]["shortcuts"]:
        assert shortcut["name"] and 0 < len(shortcut["description"]) <= 150
    app = build_slack_app(bot.services)
    for callback_id, kind in sorted(declared.items()):
        assert await _status(bot, app, _shortcut(bot, callback_id, kind)) == 200
    for callback_id in ("add_to_timeline", "Add to incident timeline", "pin"):
        assert await _status(bot, app, _shortcut(bot, callback_id, "message")) == 404


def test_every_request_url_is_the_one_slack_events_route() -> None:
    urls = {c["url"] for c in MANIFEST["features"]["slash_commands"]}
    urls.add(MANIFEST["settings"]["event_subscriptions"]["request_url"])
    urls.add(MANIFEST["settings"]["interactivity"]["request_url"])
    assert len(urls) == 1 and urls.pop().endswith("/slack/events")
    assert MANIFEST["settings"]["interactivity"]["is_enabled"] is True


def test_manifest_requests_the_scopes_the_bot_uses() -> None:
    scopes = set(MANIFEST["oauth_config"]["scopes"]["bot"])
    needed = {
        "commands",
        "chat:write",
        "channels:read",
        "channels:history",
        "users:read",
        "app_mentions:read",
        "channels:join",
    }
    assert needed <= scopes
