"""Public updates on Statuspage, behind an approval: `/ic statuspage` through the real app, the
approval card, and the Statuspage stand-in over real HTTP (issue 21)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.core.errors import UsageError
from bot.core.ids import ApprovalAction
from bot.core.settings import BUNDLED_PLAYBOOKS
from bot.playbooks.catalogue import validate_dir
from commands import parsing
from sandbox.slack_api import FakeSlack
from sandbox.statuspage import FakeStatuspage
from tests.conftest import Bot, running_bot, shown_text

PUBLIC = "We are investigating failed card payments at checkout."
PLAYBOOK = """\
name: payments-public
title: Payments failing for customers
summary: Card payments fail at checkout.
steps: [Check the payment provider's status page]
statuspage:
  components: [Payments API, Checkout, Fax gateway]
"""


def _policy(tmp_path: Path) -> Path:
    folder = tmp_path / "policy"
    folder.mkdir(exist_ok=True)
    for name in ("severities.yml", "approvals.yml"):
        (folder / name).write_text((BUNDLED_PLAYBOOKS / name).read_text())
    (folder / "payments-public.yml").write_text(PLAYBOOK)
    return folder


@pytest.fixture
async def statuspage() -> AsyncIterator[FakeStatuspage]:
    async with FakeStatuspage() as fake:
        yield fake


def statuspage_settings(fake: FakeStatuspage) -> dict[str, Any]:
    return {
        "statuspage_api_key": fake.api_key,
        "statuspage_page_id": fake.page_id,
        "statuspage_api_url": fake.url,
    }


@pytest.fixture
async def sbot(
    dsn: str, slack: FakeSlack, statuspage: FakeStatuspage, tmp_path: Path
) -> AsyncIterator[Bot]:
    async with running_bot(
        dsn, slack, playbooks_dir=_policy(tmp_path), **statuspage_settings(statuspage)
    ) as bot:
        yield bot


def _click(bot: Bot, user: str, action: str, value: str) -> Any:
    uid = bot.user(user)
    return bot.requests.block_action(
        action_id=action, value=value, label=action, block_id=f"approval:{value}", user_id=uid,
        user_name=user, channel_id=bot.channel, channel_name="waqiti-incidents",
        response_url=bot.slack.new_response_url(channel=bot.channel, user=uid),
    )  # fmt: skip


async def _incident(bot: Bot) -> None:
    """INC-1, declared by alice (incident commander), bob given comms, the playbook run."""
    await bot.command("declare Card payments failing sev2", user="alice")
    await bot.command(f"assign <@{bot.user('bob')}|bob> comms", user="alice")
    await bot.post_signed(bot.command_request("payments-public", command="/diagnose"))


async def _propose(bot: Bot, text: str = f"investigating {PUBLIC}", user: str = "alice") -> str:
    await bot.command(f"statuspage {text}", user=user)
    rows = await bot.fetch("SELECT id FROM pending_actions ORDER BY id DESC LIMIT 1")
    assert rows, bot.last_reply(user)
    return str(rows[0]["id"])


def _card(bot: Bot) -> str:
    card = next(m for m in reversed(bot.thread(1)) if "statuspage_update" in str(m.blocks))
    return shown_text(card)


async def test_the_proposal_card_shows_the_exact_public_text_status_and_components(
    sbot: Bot,
) -> None:
    await _incident(sbot)
    text = "We found the cause: a faulty release.\nPayments recover within *minutes* <!here>."
    await _propose(sbot, f"identified {text}")
    assert "Nothing is published until someone else approves" in sbot.last_reply("alice")
    card = _card(sbot)
    assert "status *identified*" in card
    assert "> We found the cause: a faulty release." in card
    assert "> Payments recover within *minutes*" in card
    assert "<!here>" not in card  # outside text is inert on the card
    assert "Components: Payments API → partial_outage, Checkout → partial_outage" in card
    assert "Not on the page, left out: Fax gateway" in card
    assert "Creates the public incident “Card payments failing”" in card
    assert "Approve" in card and "Deny" in card


async def test_nothing_reaches_the_status_page_until_a_second_person_approves(
    sbot: Bot, statuspage: FakeStatuspage
) -> None:
    await _incident(sbot)
    pending = await _propose(sbot)
    assert statuspage.writes() == []
    # Someone with no say in customer words (neither commander nor comms) cannot open the gate.
    await sbot.post_signed(_click(sbot, "carol", ApprovalAction.APPROVE, pending))
    assert "Only the incident commander or the comms lead may decide" in sbot.last_reply("carol")
    assert statuspage.writes() == []
    await sbot.post_signed(_click(sbot, "bob", ApprovalAction.APPROVE, pending))
    [create] = statuspage.writes()
    assert create.method == "POST" and create.path == f"/v1/pages/{statuspage.page_id}/incidents"
    incident = create.body["incident"]
    assert incident["name"] == "Card payments failing"
    assert incident["status"] == "investigating" and incident["body"] == PUBLIC
    assert incident["component_ids"] == ["pmtapi000001", "checkout0001"]
    assert incident["components"] == {
        "pmtapi000001": "partial_outage",
        "checkout0001": "partial_outage",
    }
    [public] = statuspage.incidents.values()
    assert public["incident_updates"][0]["body"] == PUBLIC
    rows = await sbot.fetch("SELECT status, result FROM pending_actions")
    assert rows[0]["status"] == "succeeded", rows[0]["result"]
    assert "shows it as investigating with this text" in rows[0]["result"]["verification"]
    kept = await sbot.fetch("SELECT page_incident_id FROM statuspage_incidents")
    assert [r["page_incident_id"] for r in kept] == [public["id"]]
    assert (await sbot.services.incidents.verify(1)).ok


async def test_the_requester_cannot_approve_their_own_public_update(
    sbot: Bot, statuspage: FakeStatuspage
) -> None:
    await _incident(sbot)
    pending = await _propose(sbot)
    await sbot.post_signed(_click(sbot, "alice", ApprovalAction.APPROVE, pending))
    assert "someone else has to approve" in sbot.last_reply("alice")
    assert (await sbot.fetch("SELECT status FROM pending_actions"))[0]["status"] == "pending"
    assert statuspage.writes() == []


async def test_a_second_update_patches_the_same_statuspage_incident(
    sbot: Bot, statuspage: FakeStatuspage
) -> None:
    await _incident(sbot)
    await sbot.post_signed(_click(sbot, "bob", ApprovalAction.APPROVE, await _propose(sbot)))
    [public_id] = statuspage.incidents
    second = await _propose(sbot, "resolved Card payments work again.")
    assert f"Updates the public incident `{public_id}`" in _card(sbot)
    await sbot.post_signed(_click(sbot, "bob", ApprovalAction.APPROVE, second))
    create, update = statuspage.writes()
    assert create.method == "POST"
    assert update.method == "PATCH"
    assert update.path == f"/v1/pages/{statuspage.page_id}/incidents/{public_id}"
    assert update.body["incident"]["status"] == "resolved"
    assert set(update.body["incident"]["components"].values()) == {"operational"}
    assert list(statuspage.incidents) == [public_id]
    public = statuspage.incidents[public_id]
    assert public["status"] == "resolved"
    assert [u["body"] for u in public["incident_updates"]] == ["Card payments work again.", PUBLIC]


async def test_a_card_number_in_the_public_text_is_refused_and_nothing_is_recorded(
    sbot: Bot, statuspage: FakeStatuspage
) -> None:
    await _incident(sbot)
    before = await sbot.fetch("SELECT count(*) AS n FROM timeline")
    await sbot.command("statuspage investigating Refund sent to card 4111 1111 1111 1111.")
    reply = sbot.last_reply("alice")
    assert "card number" in reply and "Nothing was recorded" in reply
    assert "4111 1111 1111 1111" not in reply
    assert await sbot.fetch("SELECT id FROM pending_actions") == []
    assert await sbot.fetch("SELECT count(*) AS n FROM timeline") == before
    stored = await sbot.fetch(
        "SELECT text::text AS t FROM timeline UNION ALL SELECT data::text FROM timeline"
    )
    assert not any("4111" in r["t"] for r in stored)
    assert statuspage.writes() == []


async def test_without_statuspage_settings_the_update_says_not_configured(
    dsn: str, slack: FakeSlack, tmp_path: Path
) -> None:
    async with running_bot(dsn, slack, playbooks_dir=_policy(tmp_path)) as bot:
        await bot.command("declare Card payments failing sev2", user="alice")
        await bot.command(f"statuspage investigating {PUBLIC}", user="alice")
        assert "Statuspage is not configured" in bot.last_reply("alice")
        assert await bot.fetch("SELECT id FROM pending_actions") == []


async def test_a_key_statuspage_refuses_gets_a_clear_message_and_records_nothing(
    dsn: str, slack: FakeSlack, statuspage: FakeStatuspage, tmp_path: Path
) -> None:
    settings = {**statuspage_settings(statuspage), "statuspage_api_key": "not-the-key"}
    async with running_bot(dsn, slack, playbooks_dir=_policy(tmp_path), **settings) as bot:
        await _incident(bot)
        await bot.command(f"statuspage investigating {PUBLIC}", user="alice")
        reply = bot.last_reply("alice")
        assert "Statuspage did not answer" in reply and "HTTP 401" in reply
        assert "not-the-key" not in reply
        assert await bot.fetch("SELECT id FROM pending_actions") == []
    assert statuspage.incidents == {}


async def test_approve_clicked_twice_publishes_one_update(
    dsn: str, slack: FakeSlack, statuspage: FakeStatuspage, tmp_path: Path
) -> None:
    policy = _policy(tmp_path)
    settings = statuspage_settings(statuspage)
    async with (
        running_bot(dsn, slack, playbooks_dir=policy, **settings) as one,
        running_bot(dsn, slack, playbooks_dir=policy, **settings) as two,
    ):
        await _incident(one)
        pending = await _propose(one)
        clicks = [_click(one, "bob", ApprovalAction.APPROVE, pending) for _ in range(2)]
        await asyncio.gather(one.post(clicks[0]), two.post(clicks[1]))
        await one.settle()
        await two.settle()
        await one.post_signed(_click(one, "bob", ApprovalAction.APPROVE, pending))
    assert len(statuspage.writes()) == 1
    assert len(statuspage.incidents) == 1


async def test_after_a_crash_between_create_and_commit_the_next_update_finds_the_incident(
    sbot: Bot, statuspage: FakeStatuspage
) -> None:
    """Statuspage created the incident, the bot stopped before keeping its id: the next update
    finds it by the marker in its metadata and updates it, rather than creating a second."""
    await _incident(sbot)
    earlier = statuspage.add_incident(
        name="Card payments failing", status="investigating", body=PUBLIC,
        metadata={"icbot": {"incident": "INC-1", "channel": sbot.channel}},
    )  # fmt: skip
    # Same name and number, another workspace's war room: not ours.
    statuspage.add_incident(
        name="Card payments failing", metadata={"icbot": {"incident": "INC-1", "channel": "C0"}}
    )
    pending = await _propose(sbot, "identified A faulty release; rolling back.")
    assert f"Updates the public incident `{earlier['id']}`" in _card(sbot)
    await sbot.post_signed(_click(sbot, "bob", ApprovalAction.APPROVE, pending))
    [update] = statuspage.writes()
    assert update.method == "PATCH" and update.path.endswith(f"/incidents/{earlier['id']}")
    assert len(statuspage.incidents) == 2


async def test_a_rate_limit_with_retry_after_is_waited_out(
    sbot: Bot, statuspage: FakeStatuspage
) -> None:
    await _incident(sbot)
    pending = await _propose(sbot)
    statuspage.fail(times=1, status=429, retry_after=1, method="POST")
    await sbot.post_signed(_click(sbot, "bob", ApprovalAction.APPROVE, pending))
    refused, retried = statuspage.writes()  # the same create, answered 429 then made
    assert refused.body == retried.body
    assert len(statuspage.incidents) == 1
    assert (await sbot.fetch("SELECT status FROM pending_actions"))[0]["status"] == "succeeded"


async def test_a_statuspage_5xx_offers_request_again_and_the_retry_publishes_once(
    sbot: Bot, statuspage: FakeStatuspage
) -> None:
    """Statuspage answers 503 to the approved create: the run fails, the card says nothing was
    published and offers Request again; the new request, approved, publishes exactly once."""
    await _incident(sbot)
    first = await _propose(sbot)
    statuspage.fail(times=1, status=503, method="POST")
    await sbot.post_signed(_click(sbot, "bob", ApprovalAction.APPROVE, first))
    assert statuspage.incidents == {}
    [row] = await sbot.fetch("SELECT status, result FROM pending_actions")
    assert row["status"] == "failed"
    assert "nothing was published" in row["result"]["summary"]
    card = _card(sbot)
    assert f"request #{first}" in card
    assert "nothing was published" in card
    assert "Request again" in card
    await sbot.post_signed(_click(sbot, "alice", ApprovalAction.REQUEST_AGAIN, first))
    second = await _propose_id(sbot)
    assert second != first
    assert "Creates the public incident" in _card(sbot)
    await sbot.post_signed(_click(sbot, "bob", ApprovalAction.APPROVE, second))
    refused, created = statuspage.writes()  # the 503'd create, then the one that was made
    assert refused.body == created.body
    [public] = statuspage.incidents.values()
    assert [u["body"] for u in public["incident_updates"]] == [PUBLIC]
    statuses = await sbot.fetch("SELECT status FROM pending_actions ORDER BY id")
    assert [r["status"] for r in statuses] == ["failed", "succeeded"]


async def test_an_update_made_despite_a_5xx_answer_counts_as_published_once(
    sbot: Bot, statuspage: FakeStatuspage
) -> None:
    """Statuspage made the incident but answered 502: the read-back finds it, so the run is
    done and verified, and no Request again invites a second publication."""
    await _incident(sbot)
    first = await _propose(sbot)
    statuspage.fail(times=1, status=502, method="POST", after=True)
    await sbot.post_signed(_click(sbot, "bob", ApprovalAction.APPROVE, first))
    [public] = statuspage.incidents.values()
    assert [u["body"] for u in public["incident_updates"]] == [PUBLIC]
    [row] = await sbot.fetch("SELECT status, result FROM pending_actions")
    assert row["status"] == "succeeded", row["result"]
    assert "although Statuspage answered" in row["result"]["summary"]
    assert "Request again" not in _card(sbot)
    assert len(statuspage.writes()) == 1


async def test_a_statuspage_refusal_is_final_and_offers_no_request_again(
    sbot: Bot, statuspage: FakeStatuspage
) -> None:
    """A 4xx other than a rate limit will answer the same again: no Request again."""
    await _incident(sbot)
    first = await _propose(sbot)
    statuspage.fail(times=1, status=403, method="POST")
    await sbot.post_signed(_click(sbot, "bob", ApprovalAction.APPROVE, first))
    [row] = await sbot.fetch("SELECT status, result FROM pending_actions")
    assert row["status"] == "failed"
    assert "Request again" not in _card(sbot)


async def _propose_id(bot: Bot) -> str:
    rows = await bot.fetch("SELECT id FROM pending_actions ORDER BY id DESC LIMIT 1")
    return str(rows[0]["id"])


# The stand-in refuses what Statuspage refuses.


async def test_the_stand_in_refuses_a_request_without_the_oauth_key(
    statuspage: FakeStatuspage,
) -> None:
    url = f"{statuspage.url}/v1/pages/{statuspage.page_id}/incidents"
    body = {"incident": {"name": "x", "status": "investigating"}}
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": f"Bearer {statuspage.api_key}"}):
            async with http.post(url, json=body, headers=headers) as resp:
                assert resp.status == 401
                assert await resp.json() == {"error": "Could not authenticate"}
    assert statuspage.incidents == {}


async def test_the_stand_in_refuses_bad_statuses_and_malformed_bodies(
    statuspage: FakeStatuspage,
) -> None:
    url = f"{statuspage.url}/v1/pages/{statuspage.page_id}/incidents"
    auth = {"Authorization": f"OAuth {statuspage.api_key}"}
    async with aiohttp.ClientSession(headers=auth) as http:
        bad_status = {"incident": {"name": "x", "status": "fixed"}}
        async with http.post(url, json=bad_status) as resp:
            assert resp.status == 422 and "Status 'fixed'" in (await resp.json())["error"]
        bad_component = {"incident": {"name": "x", "components": {"pmtapi000001": "down"}}}
        async with http.post(url, json=bad_component) as resp:
            assert resp.status == 422
        async with http.post(
            url, data=b"{not json", headers={"Content-Type": "application/json"}
        ) as resp:
            assert resp.status == 400 and "error" in await resp.json()
        async with http.post(url, json={"name": "x"}) as resp:
            assert resp.status == 400
    assert statuspage.incidents == {}


# The grammar and the playbook key.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "statuspage identified A fix is rolling out.",
            (None, "identified", "A fix is rolling out."),
        ),
        ("statuspage INC-4 Resolved All good.\nThanks.", (4, "resolved", "All good.\nThanks.")),
        ("status-page monitoring Watching it.", (None, "monitoring", "Watching it.")),
    ],
)
def test_statuspage_commands_parse_to_the_status_and_the_text_as_typed(
    text: str, expected: tuple[int | None, str, str]
) -> None:
    parsed = parsing.parse_ic(text)
    assert isinstance(parsed, parsing.StatuspageUpdate)
    assert (parsed.incident, parsed.status, parsed.text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("statuspage", "Give the public status and text."),
        ("statuspage identified", "Write the public text customers will read."),
        ("statuspage investigatng We look.", "Did you mean `investigating`?"),
        ("statuspage fixed All good.", "use investigating, identified, monitoring or resolved"),
    ],
)
def test_a_malformed_statuspage_command_gets_its_usage(text: str, says: str) -> None:
    with pytest.raises(UsageError) as exc:
        parsing.parse_ic(text)
    assert says in str(exc.value) and parsing.USAGE["statuspage"] in str(exc.value)


def test_the_help_lists_the_statuspage_command() -> None:
    assert parsing.USAGE["statuspage"] in parsing.HELP_LINES


def test_a_playbook_statuspage_key_with_an_unknown_field_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text(PLAYBOOK.replace("  components:", "  compnents:"))
    _, errors = validate_dir(tmp_path)
    assert errors and "p.yml:" in errors[0] and "statuspage" in errors[0]
