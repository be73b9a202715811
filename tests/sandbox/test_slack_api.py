"""The Slack Web API stand-in, driven through the real slack_sdk AsyncWebClient over HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from sandbox.slack_api import FakeSlack, Message
from sandbox.slack_requests import SignedRequest, SlackRequests

SPECS = Path(__file__).resolve().parents[1] / "specs"  # vendored, MIT: tests/specs/README.md
SAMPLES = SPECS / "slack" / "java-slack-sdk-json-logs" / "api"
EVENT_SAMPLES = SPECS / "slack" / "java-slack-sdk-json-logs" / "events"
BOLT_SAMPLES = SPECS / "slack" / "bolt-python-test-payloads"
WRAPPER_SCHEMA = SPECS / "slack" / "slack_common_event_wrapper_schema.json"
OPENAPI = SPECS / "slack" / "slack_web_openapi_v2.json"

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*SEV1* payments down"}}
META = {"event_type": "incident_opened", "event_payload": {"incident_id": "INC-7", "sev": 1}}


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.token, base_url=slack.url)


async def _error_of(call: Awaitable[Any]) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await call
    return info.value


# ---------------------------------------------------------------------- auth and plumbing


async def test_stand_in_binds_loopback_and_auth_test_reports_bot_identity(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    assert slack.url.startswith("http://127.0.0.1:") and slack.url.endswith("/api/")
    resp = await client.auth_test()
    assert resp.status_code == 200
    assert resp["user_id"] == "UBOT00001"
    assert resp["team_id"] == "T0001"
    assert resp["bot_id"].startswith("B")


async def test_wrong_token_is_invalid_auth(slack: FakeSlack) -> None:
    err = await _error_of(AsyncWebClient(token="xoxb-wrong", base_url=slack.url).auth_test())
    assert err.response.status_code == 200
    assert err.response["error"] == "invalid_auth"


async def test_missing_token_is_not_authed(slack: FakeSlack) -> None:
    err = await _error_of(AsyncWebClient(base_url=slack.url).auth_test())
    assert err.response["error"] == "not_authed"


async def test_unknown_method_is_unknown_method(client: AsyncWebClient) -> None:
    err = await _error_of(client.api_call("chat.teleport", json={"channel": "x"}))
    assert err.response["error"] == "unknown_method"


async def test_token_as_form_field_and_query_string_args_are_accepted_and_token_not_recorded(
    slack: FakeSlack,
) -> None:
    cid = slack.channel_id("waqiti-incidents")
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            slack.url + "chat.postMessage",
            params={"channel": cid},
            data={"token": slack.token, "text": "from a form"},
        ) as res,
    ):
        body = await res.json()
    assert body["ok"] is True
    assert slack.roots(cid)[0].text == "from a form"
    assert all("token" not in c.args for c in slack.calls)


# ---------------------------------------------------------------------- posting


async def test_post_message_by_channel_name_is_recorded_with_blocks_and_metadata(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    resp = await client.chat_postMessage(
        channel="#waqiti-incidents", text="SEV1 payments down", blocks=[SECTION], metadata=META
    )
    cid = slack.channel_id("waqiti-incidents")
    assert resp["channel"] == cid == "C0000000001"
    assert resp["message"]["text"] == "SEV1 payments down"
    assert resp["message"]["metadata"] == META
    [msg] = slack.messages[cid]
    assert (msg.ts, msg.user, msg.blocks, msg.metadata) == (
        resp["ts"],
        "UBOT00001",
        [SECTION],
        META,
    )
    assert slack.calls_to("chat.postMessage")[0].args["blocks"] == [SECTION]


async def test_post_message_to_a_user_id_goes_to_the_bots_dm_with_them(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    alice = slack.add_user("alice")
    resp = await client.chat_postMessage(channel=alice, text="you are on call")
    assert resp["channel"] == slack.dm_id(alice)
    assert resp["channel"].startswith("D")
    assert [m.text for m in slack.messages[resp["channel"]]] == ["you are on call"]


async def test_ts_values_are_unique_and_increasing(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    stamps = [
        (await client.chat_postMessage(channel="waqiti-incidents", text=str(i)))["ts"]
        for i in range(3)
    ]
    assert len(set(stamps)) == 3
    assert [float(t) for t in stamps] == sorted(float(t) for t in stamps)
    assert all(len(t.split(".")[1]) == 6 for t in stamps)


async def test_form_encoded_post_decodes_blocks_and_metadata_from_json_strings(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    await client.api_call(
        "chat.postMessage",
        data={
            "channel": "waqiti-incidents",
            "text": "form post",
            "blocks": json.dumps([SECTION]),
            "metadata": json.dumps(META),
        },
    )
    [msg] = slack.roots("waqiti-incidents")
    assert msg.blocks == [SECTION]
    assert msg.metadata == META
    assert slack.calls[-1].args["metadata"] == META


async def test_post_message_without_text_or_blocks_is_no_text(client: AsyncWebClient) -> None:
    with pytest.warns(UserWarning, match="`text` argument is missing"):
        err = await _error_of(client.chat_postMessage(channel="waqiti-incidents"))
    assert err.response["error"] == "no_text"


async def test_post_message_longer_than_40000_chars_is_msg_too_long(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    err = await _error_of(client.chat_postMessage(channel="waqiti-incidents", text="x" * 40_001))
    assert err.response["error"] == "msg_too_long"
    assert slack.roots("waqiti-incidents") == []


async def test_post_message_to_unknown_channel_is_channel_not_found(
    client: AsyncWebClient,
) -> None:
    err = await _error_of(client.chat_postMessage(channel="#nope", text="hi"))
    assert err.response["error"] == "channel_not_found"


async def test_post_message_with_malformed_blocks_is_invalid_blocks(client: AsyncWebClient) -> None:
    err = await _error_of(
        client.chat_postMessage(channel="waqiti-incidents", text="t", blocks=[{"text": "no type"}])
    )
    assert err.response["error"] == "invalid_blocks"


def _text(kind: str, n: int) -> dict[str, Any]:
    return {"type": kind, "text": "x" * n}


def _button(**over: Any) -> dict[str, Any]:
    return {"type": "button", "action_id": "a", "text": _text("plain_text", 5), "value": "v",
            **over}  # fmt: skip


def _boxes(options: int, text: int = 5) -> dict[str, Any]:
    return {"type": "checkboxes", "action_id": "c", "options": [
        {"text": _text("plain_text", text), "value": str(i)} for i in range(options)]}  # fmt: skip


# What Slack refuses in a message's blocks, and the JSON pointer it names.
REFUSED_BLOCKS = {
    "51-blocks": ([SECTION] * 51, "/blocks"),
    "section-text-3001": ([{"type": "section", "text": _text("mrkdwn", 3001)}], "/blocks/0"),
    "header-151": ([{"type": "header", "text": _text("plain_text", 151)}], "/blocks/0"),
    "11-fields": ([{"type": "section", "fields": [_text("mrkdwn", 3)] * 11}], "/blocks/0"),
    "field-2001": ([{"type": "section", "fields": [_text("mrkdwn", 2001)]}], "/blocks/0/fields/0"),
    "26-buttons": ([{"type": "actions", "elements": [
        _button(action_id=f"a{i}") for i in range(26)]}], "/blocks/0"),
    "11-context-elements": ([{"type": "context", "elements": [_text("mrkdwn", 3)] * 11}],
                            "/blocks/0"),
    "button-text-76": ([{"type": "actions", "elements": [
        _button(text=_text("plain_text", 76))]}], "/blocks/0"),
    "button-value-2001": ([{"type": "actions", "elements": [_button(value="v" * 2001)]}],
                          "/blocks/0"),
    "action-id-256": ([{"type": "actions", "elements": [_button(action_id="a" * 256)]}],
                      "/blocks/0"),
    "block-id-256": ([{**SECTION, "block_id": "b" * 256}], "/blocks/0"),
    "11-checkboxes": ([{"type": "actions", "elements": [_boxes(11)]}], "/blocks/0/elements/0"),
    "option-text-76": ([{"type": "actions", "elements": [_boxes(2, text=76)]}], "/blocks/0"),
    "duplicate-block-id": ([{**SECTION, "block_id": "x"}, {**SECTION, "block_id": "x"}],
                           "/blocks/1/block_id"),
    "duplicate-action-id": ([{"type": "actions", "elements": [_button(), _button()]}],
                            "/blocks/0/elements/1/action_id"),
    "unknown-type": ([{"type": "sectoin", "text": _text("mrkdwn", 3)}], "/blocks/0/type"),
    "empty-text": ([{"type": "section", "text": _text("mrkdwn", 0)}], "/blocks/0/text/text"),
    "unknown-property": ([{"type": "actions", "elements": [_button(colour="red")]}],
                         "/blocks/0/elements/0/colour"),
}  # fmt: skip


@pytest.mark.parametrize(("blocks", "pointer"), REFUSED_BLOCKS.values(), ids=REFUSED_BLOCKS)
async def test_blocks_slack_would_refuse_are_invalid_blocks_with_a_json_pointer(
    slack: FakeSlack, client: AsyncWebClient, blocks: list[dict[str, Any]], pointer: str
) -> None:
    err = await _error_of(client.chat_postMessage(channel="waqiti-incidents", text="t",
                                                  blocks=blocks))  # fmt: skip
    assert err.response["error"] == "invalid_blocks"
    [message] = err.response["response_metadata"]["messages"]
    assert f"[json-pointer:{pointer}" in message
    assert slack.roots("waqiti-incidents") == []


async def test_blocks_at_slacks_limits_are_accepted(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    blocks = [
        {"type": "header", "text": _text("plain_text", 150)},
        {"type": "section", "text": _text("mrkdwn", 3000), "fields": [_text("mrkdwn", 2000)] * 10},
        {"type": "actions", "elements": [_button(action_id=f"{i}" * 255 if i < 10 else str(i),
                                                 text=_text("plain_text", 75), value="v" * 2000)
                                         for i in range(25)]},
        {"type": "actions", "block_id": "b" * 255, "elements": [_boxes(10, text=75)]},
        {"type": "context", "elements": [_text("mrkdwn", 3)] * 10},
        *[SECTION] * 45,
    ]  # fmt: skip
    await client.chat_postMessage(channel="waqiti-incidents", text="x" * 40_000, blocks=blocks)
    assert len(slack.roots("waqiti-incidents")[0].blocks) == 50


async def test_update_and_ephemeral_refuse_what_post_refuses(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    bad = [{"type": "section", "text": _text("mrkdwn", 3001)}]
    posted = await client.chat_postMessage(channel="waqiti-incidents", text="t")
    err = await _error_of(client.chat_update(channel=posted["channel"], ts=posted["ts"],
                                             text="t", blocks=bad))  # fmt: skip
    assert err.response["error"] == "invalid_blocks"
    assert slack.roots("waqiti-incidents")[0].blocks == []
    alice = slack.add_user("alice")
    err = await _error_of(client.chat_postEphemeral(channel="waqiti-incidents", user=alice,
                                                    text="t", blocks=bad))  # fmt: skip
    assert err.response["error"] == "invalid_blocks"
    assert slack.ephemerals == []


async def test_response_url_refuses_invalid_blocks_and_over_long_text_with_400(
    slack: FakeSlack,
) -> None:
    alice = slack.add_user("alice")
    hook = AsyncWebhookClient(slack.new_response_url(channel="waqiti-incidents", user=alice))
    resp = await hook.send(text="t", blocks=[{"type": "header", "text": _text("plain_text", 151)}])
    assert resp.status_code == 400 and json.loads(resp.body)["error"] == "invalid_blocks"
    resp = await hook.send(text="x" * 40_001)
    assert resp.status_code == 400 and json.loads(resp.body)["error"] == "msg_too_long"
    assert slack.ephemerals == []


async def test_post_message_in_thread_is_listed_by_conversations_replies(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    root = await client.chat_postMessage(channel="waqiti-incidents", text="root")
    cid = root["channel"]
    r1 = await client.chat_postMessage(channel=cid, text="one", thread_ts=root["ts"])
    # a reply to a reply lands in the root's thread, as in Slack
    r2 = await client.chat_postMessage(channel=cid, text="two", thread_ts=r1["ts"])
    assert r1["message"]["thread_ts"] == root["ts"]
    assert r1["message"]["parent_user_id"] == "UBOT00001"

    replies = await client.conversations_replies(channel=cid, ts=root["ts"])
    assert [m["text"] for m in replies["messages"]] == ["root", "one", "two"]
    head = replies["messages"][0]
    assert (head["reply_count"], head["latest_reply"]) == (2, r2["ts"])
    assert head["reply_users"] == ["UBOT00001"]
    assert replies["has_more"] is False
    assert [m.text for m in slack.thread(cid, root["ts"])] == ["one", "two"]
    assert [m.text for m in slack.roots(cid)] == ["root"]


async def test_conversations_replies_pages_and_unknown_thread_is_thread_not_found(
    client: AsyncWebClient,
) -> None:
    root = await client.chat_postMessage(channel="waqiti-incidents", text="root")
    cid = root["channel"]
    for i in range(3):
        await client.chat_postMessage(channel=cid, text=f"r{i}", thread_ts=root["ts"])
    first = await client.conversations_replies(channel=cid, ts=root["ts"], limit=2)
    assert [m["text"] for m in first["messages"]] == ["root", "r0"]
    assert first["has_more"] is True
    cursor = first["response_metadata"]["next_cursor"]
    rest = await client.conversations_replies(channel=cid, ts=root["ts"], cursor=cursor)
    assert [m["text"] for m in rest["messages"]] == ["r1", "r2"]

    err = await _error_of(client.conversations_replies(channel=cid, ts="1.000001"))
    assert err.response["error"] == "thread_not_found"


async def test_reply_broadcast_shows_in_history_but_not_as_root(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    root = await client.chat_postMessage(channel="waqiti-incidents", text="root")
    await client.chat_postMessage(
        channel=root["channel"], text="resolved", thread_ts=root["ts"], reply_broadcast=True
    )
    history = await client.conversations_history(channel=root["channel"])
    assert [m["text"] for m in history["messages"]] == ["resolved", "root"]
    assert history["messages"][0]["subtype"] == "thread_broadcast"
    assert [m.text for m in slack.roots(root["channel"])] == ["root"]


# ---------------------------------------------------------------------- update / delete


async def test_update_changes_text_blocks_metadata_and_marks_edited(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    post = await client.chat_postMessage(channel="waqiti-incidents", text="SEV2", metadata=META)
    meta2 = {"event_type": "incident_updated", "event_payload": {"sev": 1}}
    resp = await client.chat_update(
        channel=post["channel"], ts=post["ts"], text="SEV1", blocks=[SECTION], metadata=meta2
    )
    assert (resp["channel"], resp["ts"], resp["text"]) == (post["channel"], post["ts"], "SEV1")
    assert resp["message"]["edited"]["ts"] > post["ts"]
    msg = slack.find(post["channel"], post["ts"])
    assert msg is not None
    assert (msg.text, msg.blocks, msg.metadata, msg.edited) == ("SEV1", [SECTION], meta2, True)


async def test_update_of_unknown_ts_is_message_not_found_and_of_human_message_is_refused(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    cid = slack.channel_id("waqiti-incidents")
    err = await _error_of(client.chat_update(channel=cid, ts="1700000000.000001", text="x"))
    assert err.response["error"] == "message_not_found"
    human = slack.post_user_message(cid, "alice", "hello")
    err = await _error_of(client.chat_update(channel=cid, ts=human.ts, text="x"))
    assert err.response["error"] == "cant_update_message"
    err = await _error_of(client.chat_update(channel="waqiti-incidents", ts=human.ts, text="x"))
    assert err.response["error"] == "channel_not_found"  # chat.update takes ids only


async def test_delete_removes_message_and_fires_on_change(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    seen: list[tuple[str, Any]] = []
    slack.on_change.append(lambda kind, obj: seen.append((kind, obj)))
    post = await client.chat_postMessage(channel="waqiti-incidents", text="oops")
    resp = await client.chat_delete(channel=post["channel"], ts=post["ts"])
    assert (resp["channel"], resp["ts"]) == (post["channel"], post["ts"])
    assert slack.find(post["channel"], post["ts"]) is None
    assert [kind for kind, _ in seen] == ["post", "delete"]
    assert isinstance(seen[1][1], Message)


# ---------------------------------------------------------------------- history


async def test_history_is_newest_first_and_includes_metadata_only_when_asked(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    cid = slack.channel_id("waqiti-incidents")
    await client.chat_postMessage(channel=cid, text="first", metadata=META)
    slack.post_user_message(cid, "alice", "second")
    plain = await client.conversations_history(channel=cid)
    assert [m["text"] for m in plain["messages"]] == ["second", "first"]
    assert all("metadata" not in m for m in plain["messages"])
    assert "bot_id" not in plain["messages"][0] and plain["messages"][1]["bot_id"]
    with_meta = await client.conversations_history(channel=cid, include_all_metadata=True)
    assert with_meta["messages"][1]["metadata"] == META


async def test_history_pages_with_limit_and_cursor_and_honours_oldest_latest(
    client: AsyncWebClient,
) -> None:
    ts = [
        (await client.chat_postMessage(channel="waqiti-incidents", text=f"m{i}"))["ts"]
        for i in range(5)
    ]
    cid = "C0000000001"
    page1 = await client.conversations_history(channel=cid, limit=2)
    assert [m["text"] for m in page1["messages"]] == ["m4", "m3"]
    assert page1["has_more"] is True
    page2 = await client.conversations_history(
        channel=cid, limit=2, cursor=page1["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in page2["messages"]] == ["m2", "m1"]
    window = await client.conversations_history(channel=cid, oldest=ts[1], latest=ts[3])
    assert [m["text"] for m in window["messages"]] == ["m2"]
    window = await client.conversations_history(
        channel=cid, oldest=ts[1], latest=ts[3], inclusive=True
    )
    assert [m["text"] for m in window["messages"]] == ["m3", "m2", "m1"]


# ---------------------------------------------------------------------- ephemeral / response_url


async def test_post_ephemeral_is_recorded_not_posted(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    alice = slack.add_user("alice")
    resp = await client.chat_postEphemeral(
        channel="waqiti-incidents", user=alice, text="only you", blocks=[SECTION]
    )
    assert resp["message_ts"]
    [eph] = slack.ephemerals
    assert (eph.channel, eph.user, eph.text, eph.via) == (
        "C0000000001",
        alice,
        "only you",
        "chat.postEphemeral",
    )
    assert eph.blocks == [SECTION]
    assert slack.roots("waqiti-incidents") == []


async def test_response_url_records_ephemeral_and_in_channel_posts_as_bot(
    slack: FakeSlack,
) -> None:
    alice = slack.add_user("alice")
    url = slack.new_response_url(channel="waqiti-incidents", user=alice)
    assert url.startswith(slack.root + "/response/")
    hook = AsyncWebhookClient(url)
    resp = await hook.send(text="just you", response_type="ephemeral")
    assert resp.status_code == 200
    [eph] = slack.ephemerals
    assert (eph.via, eph.user, eph.text, eph.response_type) == (
        "response_url",
        alice,
        "just you",
        "ephemeral",
    )
    await hook.send(text="everyone", response_type="in_channel", blocks=[SECTION])
    [msg] = slack.roots("waqiti-incidents")
    assert (msg.text, msg.user, msg.blocks) == ("everyone", "UBOT00001", [SECTION])
    assert len(slack.ephemerals) == 1


async def test_response_url_replace_and_delete_original_act_on_the_message(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    post = await client.chat_postMessage(channel="waqiti-incidents", text="[Ack]")
    url = slack.new_response_url(
        channel="waqiti-incidents", user="U0000000009", message_ts=post["ts"]
    )
    hook = AsyncWebhookClient(url)
    await hook.send(text="Acked by alice", replace_original=True)
    msg = slack.find("waqiti-incidents", post["ts"])
    assert msg is not None and msg.text == "Acked by alice"
    assert slack.ephemerals[-1].replace_original is True
    await hook.send(delete_original=True)
    assert slack.find("waqiti-incidents", post["ts"]) is None
    assert slack.ephemerals[-1].delete_original is True


# ---------------------------------------------------------------------- permalink, channels, users


async def test_permalink_of_root_and_of_reply_carries_thread_ts_and_cid(
    client: AsyncWebClient,
) -> None:
    root = await client.chat_postMessage(channel="waqiti-incidents", text="root")
    cid = root["channel"]
    reply = await client.chat_postMessage(channel=cid, text="r", thread_ts=root["ts"])
    link = await client.chat_getPermalink(channel=cid, message_ts=root["ts"])
    assert link["channel"] == cid
    assert link["permalink"] == (
        f"https://example.slack.com/archives/{cid}/p{root['ts'].replace('.', '')}"
    )
    link = await client.chat_getPermalink(channel=cid, message_ts=reply["ts"])
    assert link["permalink"].endswith(
        f"/p{reply['ts'].replace('.', '')}?thread_ts={root['ts']}&cid={cid}"
    )
    err = await _error_of(client.chat_getPermalink(channel=cid, message_ts="1.000001"))
    assert err.response["error"] == "message_not_found"


async def test_conversations_list_paginates_with_next_cursor_and_limit(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    for name in ("inc-1", "inc-2", "inc-3", "inc-4"):
        slack.add_channel(name)
    names: list[str] = []
    cursor = None
    pages = 0
    while True:
        resp = await client.conversations_list(limit=2, cursor=cursor)
        assert len(resp["channels"]) <= 2
        names += [c["name"] for c in resp["channels"]]
        pages += 1
        cursor = resp["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert names == ["waqiti-incidents", "inc-1", "inc-2", "inc-3", "inc-4"]
    assert pages == 3
    err = await _error_of(client.conversations_list(cursor="garbage!"))
    assert err.response["error"] == "invalid_cursor"


async def test_conversations_info_and_join_report_membership(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    cid = slack.channel_id("waqiti-incidents")
    info = await client.conversations_info(channel=cid)
    assert (info["channel"]["id"], info["channel"]["name"]) == (cid, "waqiti-incidents")
    joined = await client.conversations_join(channel=cid)
    assert joined["channel"]["is_member"] is True
    assert joined["warning"] == "already_in_channel"
    err = await _error_of(client.conversations_info(channel="C9999999999"))
    assert err.response["error"] == "channel_not_found"


async def test_users_info_list_and_user_not_found(slack: FakeSlack, client: AsyncWebClient) -> None:
    alice = slack.add_user("alice", real_name="Alice Liddell")
    assert slack.add_user("alice") == alice
    assert (slack.user_id("alice"), slack.user_name(alice)) == (alice, "alice")
    user = (await client.users_info(user=alice))["user"]
    assert (user["id"], user["name"], user["real_name"], user["is_bot"]) == (
        alice,
        "alice",
        "Alice Liddell",
        False,
    )
    assert user["profile"]["display_name"] == "alice"
    assert user["profile"]["real_name"] == "Alice Liddell"
    bot = (await client.users_info(user="UBOT00001"))["user"]
    assert bot["is_bot"] is True
    members = (await client.users_list())["members"]
    assert {m["id"] for m in members} == {alice, "UBOT00001"}
    err = await _error_of(client.users_info(user="U404"))
    assert err.response["error"] == "user_not_found"


# ---------------------------------------------------------------------- reactions and pins


async def test_reactions_add_get_remove_and_already_reacted(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    post = await client.chat_postMessage(channel="waqiti-incidents", text="x")
    cid, ts = post["channel"], post["ts"]
    await client.reactions_add(channel=cid, timestamp=ts, name=":eyes:")
    msg = slack.find(cid, ts)
    assert msg is not None and msg.reactions == {"eyes": ["UBOT00001"]}
    err = await _error_of(client.reactions_add(channel=cid, timestamp=ts, name="eyes"))
    assert err.response["error"] == "already_reacted"
    got = await client.reactions_get(channel=cid, timestamp=ts)
    assert got["message"]["reactions"] == [{"name": "eyes", "users": ["UBOT00001"], "count": 1}]
    await client.reactions_remove(channel=cid, timestamp=ts, name="eyes")
    assert msg.reactions == {}
    err = await _error_of(client.reactions_remove(channel=cid, timestamp=ts, name="eyes"))
    assert err.response["error"] == "no_reaction"


async def test_pins_add_and_remove_are_recorded(slack: FakeSlack, client: AsyncWebClient) -> None:
    post = await client.chat_postMessage(channel="waqiti-incidents", text="summary")
    await client.pins_add(channel=post["channel"], timestamp=post["ts"])
    assert slack.pins[post["channel"]] == [post["ts"]]
    err = await _error_of(client.pins_add(channel=post["channel"], timestamp=post["ts"]))
    assert err.response["error"] == "already_pinned"
    await client.pins_remove(channel=post["channel"], timestamp=post["ts"])
    assert slack.pins[post["channel"]] == []
    assert [c.method for c in slack.calls if c.method.startswith("pins.")] == ["pins.add"] * 2 + [
        "pins.remove"
    ]


# ---------------------------------------------------------------------- people's events to the app


@pytest.fixture
def delivered(slack: FakeSlack) -> list[SignedRequest]:
    """What the stand-in delivers to the app, signed with "secret"."""
    got: list[SignedRequest] = []

    async def sink(request: SignedRequest) -> None:
        got.append(request)

    slack.deliver_events_to(SlackRequests("secret", team_id=slack.team_id), sink)
    return got


def _opened(request: SignedRequest) -> dict[str, Any]:
    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert SignatureVerifier("secret").is_valid(
        request.body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    )
    envelope: dict[str, Any] = json.loads(request.body)
    return envelope


async def test_a_person_saying_something_is_delivered_as_a_signed_message_event(
    slack: FakeSlack, delivered: list[SignedRequest]
) -> None:
    cid = slack.channel_id("waqiti-incidents")
    root = slack.post_user_message(cid, "dana", "root")
    dana, erin = slack.user_id("dana"), slack.add_user("erin")
    msg = await slack.user_says(cid, "erin", f"ask <@{dana}>", thread_ts=root.ts)
    [request] = delivered
    envelope = _opened(request)
    assert envelope["type"] == "event_callback" and envelope["team_id"] == slack.team_id
    assert envelope["authorizations"][0]["user_id"] == slack.bot_user_id
    event = envelope["event"]
    assert event == {
        "client_msg_id": msg.client_msg_id, "type": "message", "text": f"ask <@{dana}>",
        "user": erin, "ts": msg.ts, "blocks": msg.blocks, "team": slack.team_id,
        "thread_ts": root.ts, "parent_user_id": dana, "channel": cid, "event_ts": msg.ts,
        "channel_type": "channel",
    }  # fmt: skip
    [section] = msg.blocks[0]["elements"]
    assert section["elements"] == [
        {"type": "text", "text": "ask "},
        {"type": "user", "user_id": dana},
    ]
    assert slack.find(cid, msg.ts) is msg  # and it is in the channel


async def test_reactions_of_people_are_delivered_only_when_they_change_something(
    slack: FakeSlack, client: AsyncWebClient, delivered: list[SignedRequest]
) -> None:
    cid = slack.channel_id("waqiti-incidents")
    msg = slack.post_user_message(cid, "erin", "pool at 100%")
    dana = slack.add_user("dana")
    assert await slack.user_reacts(cid, msg.ts, dana, ":pushpin:")
    assert not await slack.user_reacts(cid, msg.ts, dana, "pushpin")  # already there
    got = await client.reactions_get(channel=cid, timestamp=msg.ts)
    assert got["message"]["reactions"] == [{"name": "pushpin", "users": [dana], "count": 1}]
    assert await slack.user_reacts(cid, msg.ts, dana, "pushpin", added=False)
    assert not await slack.user_reacts(cid, msg.ts, dana, "pushpin", added=False)
    assert msg.reactions == {}
    added, removed = (_opened(r)["event"] for r in delivered)
    assert added == {
        "type": "reaction_added", "user": dana, "reaction": "pushpin", "item_user": msg.user,
        "item": {"type": "message", "channel": cid, "ts": msg.ts}, "event_ts": added["event_ts"],
    }  # fmt: skip
    assert removed["type"] == "reaction_removed" and removed["item"] == added["item"]


async def test_without_somewhere_to_deliver_people_cannot_act(slack: FakeSlack) -> None:
    with pytest.raises(RuntimeError, match="deliver_events_to"):
        await slack.user_says("waqiti-incidents", "erin", "hello?")


async def test_delivered_events_have_the_keys_slack_sends(
    slack: FakeSlack, delivered: list[SignedRequest]
) -> None:
    cid = slack.channel_id("waqiti-incidents")
    root = slack.post_user_message(cid, "dana", "root")
    reply = await slack.user_says(cid, "erin", "in the thread", thread_ts=root.ts)
    await slack.user_reacts(cid, reply.ts, "dana", "pushpin")
    message, reaction = (_opened(r) for r in delivered)
    java = json.loads((EVENT_SAMPLES / "MessagePayload.json").read_text())
    schema = json.loads(WRAPPER_SCHEMA.read_text())
    bolt_message = json.loads((BOLT_SAMPLES / "event_message.json").read_text())
    bolt_reaction = json.loads((BOLT_SAMPLES / "event_reaction_added.json").read_text())
    for envelope in (message, reaction):
        assert set(schema["required"]) <= set(envelope) <= set(java) | {"authed_users"}
        assert len(envelope["authed_users"]) >= 1  # the schema's minItems
    assert set(bolt_message["event"]) <= set(message["event"]) <= set(java["event"])
    assert set(reaction["event"]) == set(bolt_reaction["event"])


# ---------------------------------------------------------------------- views


def _modal(**element: Any) -> dict[str, Any]:
    option = {"text": {"type": "plain_text", "text": "INC-1 Payments failing"}, "value": "1"}
    select = {"type": "static_select", "action_id": "incident", "options": [option], **element}
    return {
        "type": "modal", "callback_id": "add_to_timeline_modal",
        "title": {"type": "plain_text", "text": "Add to timeline"},
        "private_metadata": '{"channel": "C1", "ts": "1.1"}',
        "blocks": [{"type": "input", "block_id": "incident",
                    "label": {"type": "plain_text", "text": "Key event of"}, "element": select}],
    }  # fmt: skip


async def test_views_open_answers_with_the_view_in_slacks_shape(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    option = _modal()["blocks"][0]["element"]["options"][0]
    resp = await client.views_open(trigger_id="1.1.trigger", view=_modal(initial_option=option))
    assert resp["view"]["id"].startswith("V") and slack.opened_views == [resp["view"]]
    assert resp["view"]["private_metadata"] == '{"channel": "C1", "ts": "1.1"}'
    shape = _reference_shape("views.open")
    # The Java sample masks `state` to {}; bolt's view_submission sample shows `state.values`.
    view = {**shape["view"], "blocks": None, "state": {"values": None}}
    assert _unknown_keys(resp.data, {**shape, "view": view}) == []


@pytest.mark.parametrize(
    ("element", "why"),
    [
        ({"initial_option": {"text": {"type": "plain_text", "text": "INC-2"}, "value": "2"}},
         "initial_option"),
        ({"options": []}, "options"),
        ({"options": [{"text": {"type": "plain_text", "text": "x" * 76}, "value": "1"}]},
         "options/0"),
    ],
    ids=["initial-option-not-offered", "no-options", "option-text-too-long"],
)  # fmt: skip
async def test_views_open_refuses_a_select_slack_would_refuse(
    slack: FakeSlack, client: AsyncWebClient, element: dict[str, Any], why: str
) -> None:
    err = await _error_of(client.views_open(trigger_id="1.1.trigger", view=_modal(**element)))
    assert err.response["error"] == "invalid_arguments"
    assert why in err.response["response_metadata"]["messages"][0]
    assert slack.opened_views == []


async def test_views_open_refuses_private_metadata_over_3000_characters(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    view = {**_modal(), "private_metadata": "x" * 3001}
    err = await _error_of(client.views_open(trigger_id="1.1.trigger", view=view))
    assert err.response["error"] == "invalid_arguments"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"title": {"type": "plain_text", "text": "x" * 25}}, "title"),
        ({"submit": {"type": "plain_text", "text": "x" * 25}}, "submit"),
        ({"close": {"type": "plain_text", "text": "x" * 25}}, "close"),
        ({"blocks": [{"type": "section", "text": _text("mrkdwn", 3)}] * 101}, "blocks"),
        ({"blocks": [{"type": "section", "text": _text("mrkdwn", 3001)}]}, "/view/blocks/0"),
    ],
    ids=["title-25", "submit-25", "close-25", "101-blocks", "section-3001"],
)
async def test_views_open_refuses_a_view_over_slacks_limits(
    slack: FakeSlack, client: AsyncWebClient, change: dict[str, Any], why: str
) -> None:
    err = await _error_of(client.views_open(trigger_id="1.1.trigger", view={**_modal(), **change}))
    assert err.response["error"] == "invalid_arguments"
    assert why in err.response["response_metadata"]["messages"][0]
    assert slack.opened_views == []


# ---------------------------------------------------------------------- files

DRAFT = "# Post-mortem\n\n- 14:00 - Declared — “SEV2”\n" + "".join(
    f"- line {i}\n" for i in range(8)
)


async def _upload_ticket(client: AsyncWebClient, data: bytes, name: str = "pm.md") -> Any:
    return await client.files_getUploadURLExternal(filename=name, length=len(data))


async def test_files_upload_v2_shares_the_bytes_in_the_thread_as_a_message_with_files(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    root = await client.chat_postMessage(channel="waqiti-incidents", text="card")
    cid, ts = root["channel"], root["ts"]
    resp = await client.files_upload_v2(
        channel=cid, thread_ts=ts, filename="postmortem-INC-7.md", title="INC-7 draft",
        content=DRAFT, initial_comment="The draft, asked for by <@U0000000001>",
    )  # fmt: skip
    file = resp["file"]
    assert [c.method for c in slack.calls[1:]] == [
        "files.getUploadURLExternal", "upload_url", "files.completeUploadExternal"
    ]  # fmt: skip
    stored = slack.files[file["id"]]
    assert stored.content == DRAFT.encode() and stored.length == len(DRAFT.encode())
    assert (file["name"], file["title"], file["size"]) == (
        "postmortem-INC-7.md", "INC-7 draft", len(DRAFT.encode())
    )  # fmt: skip
    assert (file["filetype"], file["lines"], file["lines_more"]) == ("markdown", 11, 6)
    [shared] = slack.thread(cid, ts)
    assert shared.user == slack.bot_user_id and shared.text.startswith("The draft, asked for")
    assert [f["id"] for f in shared.files] == [file["id"]]
    assert (
        file["shares"]["public"][cid][0] | {"ts": shared.ts, "thread_ts": ts}
        == (file["shares"]["public"][cid][0])
    )
    assert file["channels"] == [cid] and slack.roots(cid) == [slack.find(cid, ts)]
    # Read back as Slack lists a thread: the reply carries the file object.
    replies = await client.conversations_replies(channel=cid, ts=ts)
    [head, reply] = replies["messages"]
    assert head["reply_count"] == 1
    assert reply["files"][0]["id"] == file["id"] and reply["thread_ts"] == ts
    assert reply["upload"] is False and reply["display_as_bot"] is False


async def test_the_upload_url_takes_raw_bytes_or_a_multipart_form_and_answers_ok_with_the_size(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    data = DRAFT.encode()
    raw, form = await _upload_ticket(client, data), await _upload_ticket(client, data)
    async with aiohttp.ClientSession() as session:
        async with session.post(raw["upload_url"], data=data) as res:
            assert (res.status, await res.text()) == (200, f"OK - {len(data)}")
        multipart = aiohttp.FormData()
        multipart.add_field("filename", data, filename="pm.md")
        async with session.post(form["upload_url"], data=multipart) as res:
            assert (res.status, await res.text()) == (200, f"OK - {len(data)}")
        async with session.post(f"{slack.root}/upload/v1/no-such-ticket", data=data) as res:
            assert res.status == 404
    assert slack.files[raw["file_id"]].content == slack.files[form["file_id"]].content == data
    assert raw["upload_url"].startswith(slack.root + "/upload/v1/")
    assert raw["file_id"] != form["file_id"] and raw["file_id"].startswith("F")


@pytest.mark.parametrize(
    ("args", "detail"),
    [
        ({"length": 10}, "missing required field: filename"),
        ({"filename": "pm.md"}, "missing required field: length"),
        ({"filename": "pm.md", "length": "ten"}, "length must be an integer"),
    ],
)
async def test_get_upload_url_without_filename_or_with_a_bad_length_is_invalid_arguments(
    args: dict[str, Any], detail: str, slack: FakeSlack, client: AsyncWebClient
) -> None:
    err = await _error_of(client.api_call("files.getUploadURLExternal", params=args))
    assert err.response["error"] == "invalid_arguments"
    assert detail in err.response["response_metadata"]["messages"][0]
    assert slack.files == {}


async def test_completing_an_unknown_unsent_or_completed_file_is_file_not_found(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    cid = slack.channel_id("waqiti-incidents")
    unknown = await _error_of(
        client.files_completeUploadExternal(files=[{"id": "F0000009999"}], channel_id=cid)
    )
    assert unknown.response["error"] == "file_not_found"
    ticket = await _upload_ticket(client, b"# x\n")
    unsent = await _error_of(
        client.files_completeUploadExternal(files=[{"id": ticket["file_id"]}], channel_id=cid)
    )
    assert unsent.response["error"] == "file_not_found"  # its bytes never reached the URL
    done = await client.files_upload_v2(channel=cid, filename="a.md", content="# a\n")
    again = await _error_of(
        client.files_completeUploadExternal(files=[{"id": done["file"]["id"]}], channel_id=cid)
    )
    assert again.response["error"] == "file_not_found"  # completed once, never twice
    assert len(slack.roots(cid)) == 1


async def test_completing_into_a_missing_channel_or_without_files_is_refused_and_shares_nothing(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    ticket = await _upload_ticket(client, b"# x\n")
    async with (
        aiohttp.ClientSession() as session,
        session.post(ticket["upload_url"], data=b"# x\n"),
    ):
        pass
    files = [{"id": ticket["file_id"], "title": "x"}]
    missing = await _error_of(
        client.files_completeUploadExternal(files=files, channel_id="C0000009999")
    )
    assert missing.response["error"] == "channel_not_found"
    user = await _error_of(
        client.files_completeUploadExternal(files=files, channel_id=slack.add_user("dana"))
    )
    assert user.response["error"] == "invalid_arguments"  # a user id: Slack wants the D… id
    assert "[json-pointer:/channel_id]" in user.response["response_metadata"]["messages"][0]
    for bad in ("", "[]", "not json", json.dumps([{"title": "no id"}])):
        err = await _error_of(client.api_call("files.completeUploadExternal", data={"files": bad}))
        assert err.response["error"] == "invalid_arguments", bad
    assert all(not msgs for msgs in slack.messages.values())
    assert slack.files[ticket["file_id"]].completed is False  # still completable


async def test_completing_without_a_channel_keeps_the_file_private(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    resp = await client.files_upload_v2(filename="notes.md", content="# private\n")
    assert resp["file"]["channels"] == [] and resp["file"]["shares"] == {}
    assert resp["file"]["is_public"] is False
    assert all(not msgs for msgs in slack.messages.values())
    assert slack.files[resp["file"]["id"]].completed


async def test_forced_failures_of_each_upload_step_share_nothing(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    cid = slack.channel_id("waqiti-incidents")
    slack.fail("files.getUploadURLExternal", status=429, retry_after=3)
    err = await _error_of(client.files_upload_v2(channel=cid, filename="a.md", content="# a\n"))
    assert (err.response.status_code, err.response.headers["Retry-After"]) == (429, "3")
    slack.fail("upload_url", status=500)
    with pytest.raises(SlackRequestError, match="status: 500"):
        await client.files_upload_v2(channel=cid, filename="a.md", content="# a\n")
    slack.fail("files.completeUploadExternal", status=200, error="file_uploads_disabled")
    err = await _error_of(client.files_upload_v2(channel=cid, filename="a.md", content="# a\n"))
    assert err.response["error"] == "file_uploads_disabled"
    assert slack.messages[cid] == []
    assert [f.completed for f in slack.files.values()] == [False, False]
    assert [c.status for c in slack.calls_to("upload_url")] == [500, 200]


# ---------------------------------------------------------------------- failure injection


async def test_forced_429_carries_retry_after_header(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.fail("chat.postMessage", status=429, retry_after=7)
    err = await _error_of(client.chat_postMessage(channel="waqiti-incidents", text="x"))
    assert err.response.status_code == 429
    assert err.response.headers["Retry-After"] == "7"
    assert err.response["error"] == "ratelimited"
    assert slack.calls_to("chat.postMessage")[-1].status == 429
    assert slack.roots("waqiti-incidents") == []
    # only the next call fails
    await client.chat_postMessage(channel="waqiti-incidents", text="x")
    assert len(slack.roots("waqiti-incidents")) == 1


async def test_forced_503_is_a_slack_api_error_for_the_given_number_of_calls(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.fail("conversations.history", status=503, times=2)
    for _ in range(2):
        err = await _error_of(client.conversations_history(channel="C0000000001"))
        assert err.response.status_code == 503
    assert (await client.conversations_history(channel="C0000000001"))["ok"] is True
    assert [c.status for c in slack.calls_to("conversations.history")] == [503, 503, 200]


async def test_forced_error_with_status_200_is_ok_false_with_that_error(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.fail("chat.postMessage", status=200, error="channel_not_found")
    err = await _error_of(client.chat_postMessage(channel="waqiti-incidents", text="x"))
    assert err.response.status_code == 200
    assert err.response["error"] == "channel_not_found"


async def test_forced_response_url_failure_is_seen_by_webhook_client(slack: FakeSlack) -> None:
    slack.fail("response_url", status=500)
    url = slack.new_response_url(channel="waqiti-incidents", user="U0000000009")
    resp = await AsyncWebhookClient(url).send(text="x")
    assert resp.status_code == 500
    assert slack.ephemerals == []


async def test_wait_for_returns_when_true_and_raises_timeout_error(slack: FakeSlack) -> None:
    await slack.wait_for(lambda: True, timeout=0.1)
    with pytest.raises(TimeoutError):
        await slack.wait_for(lambda: False, timeout=0.05)


# ---------------------------------------------------------------------- shapes vs Slack's samples

OPAQUE = {"blocks", "attachments", "event_payload"}  # caller-supplied content, echoed verbatim
# Objects keyed by a channel id (a file's shares): every value has the shape of any sample value.
BY_CHANNEL = {"public", "private"}


def _merge(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = _merge(out[k], v) if k in out else v
        return out
    if isinstance(a, list) and isinstance(b, list):
        items = [x for x in [*a, *b] if isinstance(x, dict | list)]
        merged: Any = None
        for x in items:
            merged = x if merged is None else _merge(merged, x)
        return [merged] if merged is not None else []
    return a if a is not None else b


def _openapi_shape(schema: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> Any:
    """A key-shape (like the Java samples) of an OpenAPI 2 schema; None means 'any'."""
    if depth > 8:
        return None
    if "$ref" in schema:
        return _openapi_shape(defs[schema["$ref"].rsplit("/", 1)[1]], defs, depth + 1)
    shape: Any = None
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key, []):
            shape = _merge(shape, _openapi_shape(sub, defs, depth + 1))
    if "properties" in schema:
        props = {k: _openapi_shape(v, defs, depth + 1) for k, v in schema["properties"].items()}
        shape = _merge(shape, props)
    if "items" in schema:
        items = schema["items"]
        if isinstance(items, dict) and "items" in items and "type" not in items:
            items = items[
                "items"
            ]  # conversations.replies: a tuple schema [root, reply] nested once
        items = items if isinstance(items, list) else [items]
        item_shape: Any = None
        for sub in items:
            item_shape = _merge(item_shape, _openapi_shape(sub, defs, depth + 1))
        shape = _merge(shape, [item_shape] if item_shape is not None else [])
    return shape


def _reference_shape(method: str) -> Any:
    sample = SAMPLES / f"{method}.json"
    if sample.is_file():
        return json.loads(sample.read_text())
    # The Java SDK keeps no sample for conversations.history/replies: use the official OpenAPI
    # success schema, with message objects widened by the OpenAPI message object and the Java
    # chat.* message samples (the same message objects, seen by other methods).
    spec = json.loads(OPENAPI.read_text())
    schema = spec["paths"][f"/{method}"]["get"]["responses"]["200"]["schema"]
    shape = _openapi_shape(schema, spec["definitions"])
    message_object = _openapi_shape({"$ref": "#/definitions/objs_message"}, spec["definitions"])
    shape["messages"] = _merge(shape["messages"], [message_object])
    for source in ("chat.postMessage", "chat.update"):
        message = json.loads((SAMPLES / f"{source}.json").read_text())["message"]
        shape["messages"] = _merge(shape["messages"], [message])
    # A message that shares a file, as the Java SDK saw one (a message shortcut's payload).
    shortcut = (
        SAMPLES.parent / "app-backend" / "interactive-components" / "MessageShortcutPayload.json"
    )
    shape["messages"] = _merge(shape["messages"], [json.loads(shortcut.read_text())["message"]])
    return shape


def _unknown_keys(actual: Any, shape: Any, path: str = "") -> list[str]:
    if shape is None:
        return []
    if isinstance(actual, dict) and isinstance(shape, dict):
        missing: list[str] = []
        for key, value in actual.items():
            if key not in shape:
                missing.append(f"{path}.{key}")
            elif key in BY_CHANNEL and isinstance(value, dict) and isinstance(shape[key], dict):
                any_channel = _merge([], list(shape[key].values()))[0]
                for channel, shares in value.items():
                    missing += _unknown_keys(shares, any_channel, f"{path}.{key}.{channel}")
            elif key not in OPAQUE:
                missing += _unknown_keys(value, shape[key], f"{path}.{key}")
        return missing
    if isinstance(actual, list) and isinstance(shape, list) and shape:
        merged = _merge([], shape) if len(shape) > 1 else shape
        item_shape = merged[0] if merged else None  # a list of scalars: nothing to check
        return [
            k for i, x in enumerate(actual) for k in _unknown_keys(x, item_shape, f"{path}[{i}]")
        ]
    return []


async def _exercise(method: str, slack: FakeSlack, client: AsyncWebClient) -> list[dict[str, Any]]:
    """Responses of ``method`` for a busy thread (blocks, metadata, replies, edits, reactions)."""
    root = await client.chat_postMessage(
        channel="waqiti-incidents", text="SEV1", blocks=[SECTION], metadata=META
    )
    cid, ts = root["channel"], root["ts"]
    reply = await client.chat_postMessage(
        channel=cid, text="update", thread_ts=ts, reply_broadcast=True, metadata=META
    )
    slack.post_user_message(cid, "alice", "on it", thread_ts=ts)
    update = await client.chat_update(channel=cid, ts=ts, text="SEV1 (edited)", blocks=[SECTION])
    await client.reactions_add(channel=cid, timestamp=ts, name="eyes")
    # A file shared in the thread, step by step, keeping each step's answer.
    ticket = await _upload_ticket(client, DRAFT.encode())
    async with (
        aiohttp.ClientSession() as session,
        session.post(ticket["upload_url"], data=DRAFT.encode()),
    ):
        pass
    completed = await client.files_completeUploadExternal(
        files=[{"id": ticket["file_id"], "title": "draft"}], channel_id=cid, thread_ts=ts,
        initial_comment="the draft",
    )  # fmt: skip
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "auth.test": client.auth_test,
        "chat.postEphemeral": lambda: client.chat_postEphemeral(
            channel=cid, user=slack.add_user("alice"), text="psst", blocks=[SECTION]
        ),
        "chat.getPermalink": lambda: client.chat_getPermalink(channel=cid, message_ts=ts),
        "conversations.replies": lambda: client.conversations_replies(
            channel=cid, ts=ts, include_all_metadata=True
        ),
        "conversations.history": lambda: client.conversations_history(
            channel=cid, include_all_metadata=True
        ),
        "conversations.info": lambda: client.conversations_info(channel=cid),
        "users.info": lambda: client.users_info(user=slack.add_user("alice")),
    }
    if method == "chat.postMessage":
        return [root.data, reply.data]  # type: ignore[list-item]
    if method == "chat.update":
        return [update.data]  # type: ignore[list-item]
    if method == "files.getUploadURLExternal":
        return [ticket.data]
    if method == "files.completeUploadExternal":
        return [completed.data]
    resp = await calls[method]()
    return [resp.data]


@pytest.mark.parametrize(
    "method",
    [
        "chat.postMessage",
        "chat.update",
        "chat.postEphemeral",
        "chat.getPermalink",
        "conversations.replies",
        "conversations.history",
        "conversations.info",
        "users.info",
        "auth.test",
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ],
)
async def test_response_keys_appear_in_slack_sample_shape(
    method: str, slack: FakeSlack, client: AsyncWebClient
) -> None:
    shape = _reference_shape(method)
    for body in await _exercise(method, slack, client):
        assert body["ok"] is True
        assert _unknown_keys(body, shape) == [], f"{method} returned keys Slack never sends"


async def test_file_answers_carry_the_keys_slack_s_samples_show(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    """Not only no key Slack never sends: the keys a client reads are there, typed as Slack's."""
    [ticket] = await _exercise("files.getUploadURLExternal", slack, client)
    [completed] = await _exercise("files.completeUploadExternal", slack, client)
    sample_url = json.loads((SAMPLES / "files.getUploadURLExternal.json").read_text())
    sample_done = json.loads((SAMPLES / "files.completeUploadExternal.json").read_text())
    for key in ("upload_url", "file_id"):
        assert type(ticket[key]) is type(sample_url[key]), key
    [sample_file] = sample_done["files"]
    [file] = completed["files"]
    wanted = {
        "id",
        "title",
        "name",
        "created",
        "timestamp",
        "mimetype",
        "filetype",
        "user",
        "size",
        "url_private",
        "permalink",
        "shares",
        "channels",
        "lines",
        "preview",
    }
    assert wanted <= file.keys()
    for key in wanted:
        assert type(file[key]) is type(sample_file[key]), key
    [(channel, [share])] = file["shares"]["public"].items()
    [sample_share] = list(sample_file["shares"]["public"].values())[:1]
    assert {"ts", "thread_ts", "channel_name", "team_id", "share_user_id"} <= share.keys()
    assert all(type(v) is type(sample_share[0][k]) for k, v in share.items())
    assert channel == slack.channel_id("waqiti-incidents")
