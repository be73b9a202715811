"""The "Add to incident timeline" message shortcut, through the real app over HTTP.

People's side of Slack is the stand-in's: `FakeSlack.user_says` / `user_reacts` deliver signed
Events API requests to the bot's `/slack/events`, and the shortcut and its form are signed
interactivity payloads built like Slack's samples (../shared/specs/slack/).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from bot.core.ids import ShortcutId, ViewId
from bot.domain import timeline
from sandbox.slack_api import Message
from sandbox.slack_requests import SignedRequest, SlackRequests
from tests.conftest import Bot, shown_text
from tests.test_scribe import delete, entries

WAR_ROOM = "waqiti-incidents"
SAMPLES = Path(__file__).resolve().parent / "specs" / "slack"  # vendored, MIT: tests/specs


@pytest.fixture
async def people(bot: Bot) -> Bot:
    """The bot, with what people do in Slack delivered to it as Slack delivers it."""
    bot.slack.deliver_events_to(bot.requests, bot.post_signed)
    return bot


def shortcut(bot: Bot, msg: Message, *, by: str) -> SignedRequest:
    uid = bot.user(by)
    return bot.requests.message_shortcut(
        ShortcutId.ADD_TO_TIMELINE,
        bot.slack.payload_message(msg),
        user_id=uid,
        user_name=by,
        channel_id=msg.channel,
        channel_name="somewhere",
        response_url=bot.slack.new_response_url(channel=msg.channel, user=uid),
    )


async def open_form(bot: Bot, msg: Message, *, by: str) -> dict[str, Any]:
    before = len(bot.slack.opened_views)
    status, body = await bot.post_signed(shortcut(bot, msg, by=by))
    assert (status, body) == (200, "")
    assert len(bot.slack.opened_views) == before + 1, bot.replies_to(by)
    return bot.slack.opened_views[-1]


def _select(view: dict[str, Any]) -> dict[str, Any]:
    [element] = [b["element"] for b in view["blocks"] if b["type"] == "input"]
    return element


def offered(view: dict[str, Any]) -> list[str]:
    return [o["text"]["text"] for o in _select(view)["options"]]


def preselected(view: dict[str, Any]) -> str | None:
    initial = _select(view).get("initial_option")
    return None if initial is None else str(initial["text"]["text"])


async def submit(bot: Bot, view: dict[str, Any], incident: str, *, by: str) -> tuple[int, str]:
    request = bot.requests.view_submission(
        view, {"incident": incident}, user_id=bot.user(by), user_name=by
    )
    return await bot.post_signed(request)


def form_errors(body: str) -> dict[str, str]:
    answer = json.loads(body)
    assert answer["response_action"] == "errors"
    return dict(answer["errors"])


# -- the form ------------------------------------------------------------------------------------


async def test_the_shortcut_is_acked_before_the_form_is_opened(people: Bot) -> None:
    bot = people
    await bot.command("declare Payments failing sev2", user="dana")
    msg = await bot.slack.user_says(WAR_ROOM, "erin", "502s", thread_ts=bot.card(1).ts)
    bot.slack.latency["views.open"] = 1.5
    request = shortcut(bot, msg, by="dana")
    started = time.monotonic()
    status, body = await bot.post(request)
    acked = time.monotonic() - started
    assert (status, body) == (200, "")
    assert acked < 1.0  # views.open takes 1.5 s: it runs after the ack
    await bot.settle()
    [call] = bot.slack.calls_to("views.open")
    payload = json.loads(parse_qs(request.body)["payload"][0])
    assert call.args["trigger_id"] == payload["trigger_id"]


async def test_the_form_offers_open_and_recently_resolved_incidents_and_preselects_the_thread(
    people: Bot,
) -> None:
    bot = people
    await bot.command("declare Ancient outage sev3", user="dana")
    await bot.command("resolve INC-1", user="dana")
    bot.clock.advance(days=8)  # INC-1 was resolved more than 7 days ago
    await bot.command("declare Payments failing sev2", user="dana")
    await bot.command("declare Ledger lagging sev3", user="dana")
    await bot.command("declare Yesterday's blip sev4", user="dana")
    await bot.command("resolve INC-4", user="dana")
    msg = await bot.slack.user_says(WAR_ROOM, "erin", "ledger lag 40k", thread_ts=bot.card(3).ts)
    view = await open_form(bot, msg, by="kim")
    assert view["callback_id"] == ViewId.ADD_TO_TIMELINE
    assert offered(view) == [
        "INC-3 Ledger lagging",
        "INC-2 Payments failing",
        "INC-4 Yesterday's blip (resolved)",
    ]
    assert preselected(view) == "INC-3 Ledger lagging"  # the thread the message is in
    assert json.loads(view["private_metadata"]) == {"channel": bot.channel, "ts": msg.ts}
    assert "ledger lag 40k" in json.dumps(view["blocks"])  # the message, quoted


async def test_a_message_elsewhere_preselects_the_only_open_incident_else_none(
    people: Bot,
) -> None:
    bot = people
    bot.slack.add_channel("payments-eng")
    await bot.command("declare Payments failing sev2", user="dana")
    msg = await bot.slack.user_says("payments-eng", "kim", "deploy 1.4.2 went out at 13:55")
    assert preselected(await open_form(bot, msg, by="dana")) == "INC-1 Payments failing"
    await bot.command("declare Ledger lagging sev3", user="dana")
    view = await open_form(bot, msg, by="dana")
    assert preselected(view) is None and len(offered(view)) == 2


@pytest.mark.parametrize("resolved_long_ago", [False, True])
async def test_with_no_incident_to_offer_the_shortcut_says_so_and_opens_no_form(
    people: Bot, resolved_long_ago: bool
) -> None:
    bot = people
    if resolved_long_ago:
        await bot.command("declare Ancient outage sev3", user="dana")
        await bot.command("resolve", user="dana")
        bot.clock.advance(days=8)
    msg = await bot.slack.user_says(WAR_ROOM, "erin", "is anything on fire?")
    status, body = await bot.post_signed(shortcut(bot, msg, by="erin"))
    assert (status, body) == (200, "")
    assert bot.slack.opened_views == []
    [told] = [e for e in bot.slack.ephemerals if e.user == bot.slack.user_id("erin")]
    assert told.via == "response_url" and "no incidents to add to" in told.text


# -- the submission ------------------------------------------------------------------------------


async def test_a_submission_makes_a_message_in_any_channel_a_key_event_of_the_chosen_incident(
    people: Bot,
) -> None:
    bot = people
    bot.slack.add_channel("payments-eng")
    await bot.command("declare Payments failing sev2", user="dana")
    msg = await bot.slack.user_says("payments-eng", "kim", "deploy 1.4.2 went out at 13:55")
    view = await open_form(bot, msg, by="dana")
    status, body = await submit(bot, view, "1", by="dana")
    assert (status, body) == (200, "")  # the form closes
    [pinned] = await entries(bot, "pinned")
    kim, dana = bot.slack.user_id("kim"), bot.slack.user_id("dana")
    assert pinned["incident_id"] == 1 and pinned["actor"] == dana
    assert pinned["data"]["author"] == kim
    assert pinned["data"]["text"] == "deploy 1.4.2 went out at 13:55"  # read from Slack
    channel = bot.slack.channel_id("payments-eng")
    assert f"/archives/{channel}/p" in pinned["data"]["permalink"]
    assert "pinned" in shown_text(bot.digests(1)[-1])  # noted in the thread's digest
    told = [e for e in bot.slack.ephemerals if e.user == dana]
    assert told[-1].channel == channel and "Added to *INC-1*'s timeline" in told[-1].text
    await bot.command("postmortem", user="dana")
    assert "Key event, pinned by" in bot.posted_files(1)[-1].text
    # Its deletion in that channel drops its words, as for a thread message.
    await delete(bot, msg)
    assert await bot.fetch("SELECT seq FROM timeline WHERE data::text LIKE '%13:55%'") == []
    assert (await bot.services.incidents.verify(1)).ok


async def test_pushpin_and_shortcut_on_one_message_make_one_key_event_in_either_order(
    people: Bot,
) -> None:
    bot = people
    await bot.command("declare Payments failing sev2", user="dana")
    first = await bot.slack.user_says(WAR_ROOM, "erin", "pool at 100%", thread_ts=bot.card(1).ts)
    second = await bot.slack.user_says(WAR_ROOM, "erin", "rev 41 is good", thread_ts=bot.card(1).ts)
    # 📌 then the shortcut, twice.
    await bot.slack.user_reacts(WAR_ROOM, first.ts, bot.user("dana"), "pushpin")
    for by in ("kim", "kim"):
        assert await submit(bot, await open_form(bot, first, by=by), "1", by=by) == (200, "")
    # The shortcut, then 📌.
    assert await submit(bot, await open_form(bot, second, by="kim"), "1", by="kim") == (200, "")
    await bot.slack.user_reacts(WAR_ROOM, second.ts, bot.user("dana"), "pushpin")
    pinned = await entries(bot, "pinned")
    assert [p["data"]["ts"] for p in pinned] == [first.ts, second.ts]
    assert [p["actor"] for p in pinned] == [bot.user("dana"), bot.user("kim")]
    told = bot.replies_to("kim")
    assert ["already a key event of *INC-1*" in t for t in told] == [True, True, False]
    assert "Added to *INC-1*'s timeline" in told[2]
    # Whoever pinned it, by either way, keeps it a key event until the last of them lets go.
    await bot.slack.user_reacts(WAR_ROOM, second.ts, bot.user("dana"), "pushpin", added=False)
    assert await entries(bot, "unpinned") == []


async def _another_incidents_message(bot: Bot) -> tuple[Message, str]:
    await bot.command("declare Ledger lagging sev3", user="dana")
    return await bot.slack.user_says(WAR_ROOM, "erin", "lag 40k", thread_ts=bot.card(1).ts), "2"


async def _deleted_meanwhile(bot: Bot) -> tuple[Message, str]:
    bot.slack.add_channel("payments-eng")
    msg = await bot.slack.user_says("payments-eng", "kim", "oops, wrong channel")
    bot.slack.messages[msg.channel].remove(msg)  # deleted after the form opened
    return msg, "1"


async def _resolved_long_ago(bot: Bot) -> tuple[Message, str]:
    await bot.command("resolve", user="dana")
    bot.clock.advance(days=8)
    await bot.command("declare Ledger lagging sev3", user="dana")
    return await bot.slack.user_says(WAR_ROOM, "erin", "lag 40k", thread_ts=bot.card(2).ts), "1"


async def _slack_failing(bot: Bot) -> tuple[Message, str]:
    bot.slack.add_channel("payments-eng")
    msg = await bot.slack.user_says("payments-eng", "kim", "deploy went out")
    bot.slack.fail("reactions.get", status=200, error="internal_error")
    return msg, "1"


STALE = {
    "another incident's message": (_another_incidents_message, "part of INC-1's timeline"),
    "message deleted": (_deleted_meanwhile, "no longer exists in Slack"),
    "incident resolved long ago": (_resolved_long_ago, "resolved more than 7 days ago"),
    "no such incident": (None, "INC-9 does not exist"),
    "slack failing": (_slack_failing, "Slack did not answer"),
}


@pytest.mark.parametrize("case", list(STALE))
async def test_a_stale_submission_is_refused_in_the_form_and_changes_nothing(
    people: Bot, case: str
) -> None:
    bot = people
    await bot.command("declare Payments failing sev2", user="dana")
    arrange, expected = STALE[case]
    if arrange is None:
        msg, choice = await bot.slack.user_says(WAR_ROOM, "erin", "x"), "9"
    else:
        msg, choice = await arrange(bot)
    view = _offering(await open_form(bot, msg, by="dana"), choice)
    kinds_before = await bot.kinds()
    status, body = await submit(bot, view, choice, by="dana")
    assert status == 200
    assert expected in form_errors(body)["incident"]
    assert await bot.kinds() == kinds_before
    assert await bot.fetch("SELECT 1 FROM captures WHERE pinned_by <> '{}'") == []
    assert not any("Added to" in text for text in bot.replies_to("dana"))


def _offering(view: dict[str, Any], value: str) -> dict[str, Any]:
    """The form as it was when `value` was offered (an incident may have gone since)."""
    options = _select(view)["options"]
    if not any(o["value"] == value for o in options):
        options.append({"text": {"type": "plain_text", "text": f"INC-{value}"}, "value": value})
    return view


@pytest.mark.parametrize(
    ("metadata", "choice"),
    [("", "1"), ("not json", "1"), ('{"channel": "C1"}', "1"), ('{"channel": "", "ts": ""}', "1"),
     (None, "not offered")],  # the last: no option chosen (selected_option null)
)  # fmt: skip
async def test_a_form_with_broken_metadata_or_no_choice_is_refused_in_the_form(
    people: Bot, metadata: str | None, choice: str
) -> None:
    bot = people
    await bot.command("declare Payments failing sev2", user="dana")
    msg = await bot.slack.user_says(WAR_ROOM, "erin", "x", thread_ts=bot.card(1).ts)
    view = await open_form(bot, msg, by="dana")
    if metadata is not None:
        view = {**view, "private_metadata": metadata}
    status, body = await submit(bot, view, choice, by="dana")
    assert status == 200
    assert "no longer valid" in form_errors(body)["incident"]
    assert await entries(bot, "pinned") == []


async def test_a_thread_message_pinned_by_shortcut_then_deleted_loses_its_words(
    people: Bot,
) -> None:
    bot = people
    await bot.command("declare Payments failing sev2", user="dana")
    msg = await bot.slack.user_says(WAR_ROOM, "erin", "token abc123", thread_ts=bot.card(1).ts)
    await submit(bot, await open_form(bot, msg, by="dana"), "1", by="dana")
    assert len(await entries(bot, "pinned")) == 1
    await delete(bot, msg)
    assert await bot.fetch("SELECT seq FROM timeline WHERE data::text LIKE '%abc123%'") == []
    blanked = await bot.fetch("SELECT text FROM timeline WHERE redacted_at IS NOT NULL")
    assert [r["text"] for r in blanked] == [timeline.REDACTED_TEXT]  # the captured message
    assert (await bot.services.incidents.verify(1)).ok


# -- the wire format -----------------------------------------------------------------------------


def _keys(path: Path) -> set[str]:
    return set(json.loads(path.read_text()))


def test_the_shortcut_payload_has_the_keys_slack_sends() -> None:
    requests = SlackRequests("secret")
    message = {"type": "message", "user": "U1", "text": "hi", "ts": "1.000100", "team": "T0001"}
    signed = requests.message_shortcut(
        "cb", message, user_id="U2", user_name="dana", channel_id="C1", channel_name="war",
        response_url="https://hooks.slack.com/app/T/1/x",
    )  # fmt: skip
    assert signed.headers["Content-Type"] == "application/x-www-form-urlencoded"
    payload = json.loads(parse_qs(signed.body)["payload"][0])
    bolt = _keys(SAMPLES / "bolt-python-test-payloads" / "shortcut_message.json")
    java = SAMPLES / "java-slack-sdk-json-logs" / "app-backend" / "interactive-components"
    assert bolt <= set(payload) <= _keys(java / "MessageShortcutPayload.json")
    assert payload["type"] == "message_action" and payload["message_ts"] == message["ts"]


def test_a_select_is_submitted_as_its_chosen_option() -> None:
    view = {
        "id": "V1", "type": "modal", "callback_id": "x",
        "blocks": [{"type": "input", "block_id": "incident", "label": {"text": "x"},
                    "element": {"type": "static_select", "action_id": "pick", "options": [
                        {"text": {"type": "plain_text", "text": "INC-1"}, "value": "1"}]}}],
    }  # fmt: skip
    signed = SlackRequests("secret").view_submission(
        view, {"incident": "1"}, user_id="U1", user_name="dana"
    )
    state = json.loads(parse_qs(signed.body)["payload"][0])["view"]["state"]["values"]
    assert state == {
        "incident": {
            "pick": {
                "type": "static_select",
                "selected_option": {"text": {"type": "plain_text", "text": "INC-1"}, "value": "1"},
            }
        }
    }
