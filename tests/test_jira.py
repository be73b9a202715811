"""Jira follow-ups, through the real app against the Jira stand-in (sandbox/jira.py).

An action item becomes one Jira issue (never two, even after a crash), its key shows in the
thread and the post-mortem, and a tick on either side (Slack or Jira) shows on both, once.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from bot.core.models import who
from bot.domain.jira import JiraQueue
from bot.domain.ports import JiraIssue
from bot.store.outbox import OutboxItem
from commands.parsing import ActionDone, ActionItem, parse_ic
from sandbox.jira import EMAIL, PROJECT, TOKEN, FakeJira, sign
from sandbox.slack_api import FakeSlack
from tests.conftest import Bot, running_bot

JIRA_WEBHOOK_SECRET = "jira-webhook-secret-0123456789"
DANA_EMAIL = "dana@waqiti.example"


@pytest.fixture
async def jira() -> AsyncIterator[FakeJira]:
    async with FakeJira() as fake:
        yield fake


def jira_settings(fake: FakeJira) -> dict[str, Any]:
    return {
        "jira_url": fake.url,
        "jira_email": EMAIL,
        "jira_api_token": TOKEN,
        "jira_project": PROJECT,
        "jira_webhook_secret": JIRA_WEBHOOK_SECRET,
    }


@pytest.fixture
async def jira_bot(dsn: str, slack: FakeSlack, jira: FakeJira) -> AsyncIterator[Bot]:
    """The bot with Jira configured, pointed at the Jira stand-in."""
    async with running_bot(dsn, slack, **jira_settings(jira)) as running:
        jira.subscribe(f"{running.base}/jira/webhook", JIRA_WEBHOOK_SECRET)
        yield running


async def settle(bot: Bot) -> None:
    """Deliver what the commands queued: Jira's writes, then the thread."""
    await bot.services.inflight.idle()
    assert bot.services.jira_queue is not None
    await bot.services.jira_queue.drain(timeout=20)
    await bot.settle()


async def item_with_owner(bot: Bot, jira: FakeJira, *, settle_jira: bool = True) -> str:
    """Declare, then `/ic action … @dana`, dana being a Jira user by her Slack email."""
    dana = bot.slack.add_user("dana", email=DANA_EMAIL)
    jira.add_user("Dana Scully", DANA_EMAIL)
    await bot.command("declare Checkout failing after deploy sev2")
    await bot.command(f"action Alert on DB pool saturation <@{dana}|dana>", drain=False)
    if settle_jira:
        await settle(bot)
    return dana


async def kinds_count(bot: Bot, kind: str) -> int:
    return len(await bot.fetch("SELECT 1 FROM timeline WHERE kind = $1", kind))


async def test_an_action_item_becomes_one_jira_issue_with_its_key_in_the_thread(
    jira_bot: Bot, jira: FakeJira
) -> None:
    await item_with_owner(jira_bot, jira)
    assert "being filed in Jira" in jira_bot.last_reply()
    [issue] = jira.issues.values()
    fields = issue.fields
    assert issue.key == f"{PROJECT}-1"
    assert fields["summary"] == "Alert on DB pool saturation"
    assert fields["issuetype"] == {"name": "Task"}
    assert fields["labels"][:2] == ["icbot", "inc-1"] and len(fields["labels"]) == 3
    assert fields["assignee"] == {"accountId": next(iter(jira.users))}
    description = json.dumps(fields["description"])
    assert "INC-1: Checkout failing after deploy" in description
    assert DANA_EMAIL in description and "/incidents/INC-1" in description  # owner, page link
    assert any(f"{PROJECT}-1" in text for text in jira_bot.thread_texts(1))
    row = (await jira_bot.fetch("SELECT jira_key, jira_url FROM action_items"))[0]
    assert row["jira_key"] == "PAY-1" and row["jira_url"] == f"{jira.url}/browse/PAY-1"


async def test_an_owner_jira_does_not_know_is_filed_without_an_assignee(
    jira_bot: Bot, jira: FakeJira
) -> None:
    kim = jira_bot.slack.add_user("kim", email="kim@elsewhere.example")
    await jira_bot.command("declare Checkout failing sev2")
    await jira_bot.command(f"action Write the runbook <@{kim}|kim>", drain=False)
    await settle(jira_bot)
    [issue] = jira.issues.values()
    assert "assignee" not in issue.fields
    assert "kim@elsewhere.example" in json.dumps(issue.fields["description"])


async def test_ticking_an_item_in_slack_moves_its_issue_to_done_once(
    jira_bot: Bot, jira: FakeJira
) -> None:
    await item_with_owner(jira_bot, jira)
    await jira_bot.command("action done 1", drain=False)
    await settle(jira_bot)
    assert "is done" in jira_bot.last_reply() and "PAY-1" in jira_bot.last_reply()
    assert jira.issues["PAY-1"].history == ["To Do", "Done"]
    # Jira tells the bot about the change it made itself: nothing more happens.
    assert await jira.deliver_webhooks() == [200]
    await settle(jira_bot)
    assert await kinds_count(jira_bot, "action_item_done") == 1
    await jira_bot.command("action done 1", drain=False)
    assert "done already" in jira_bot.last_reply()
    assert len(jira.calls_to("POST", "/rest/api/3/issue/PAY-1/transitions")) == 1


async def test_resolving_the_issue_in_jira_ticks_the_item_once(
    jira_bot: Bot, jira: FakeJira
) -> None:
    await item_with_owner(jira_bot, jira)
    jira.resolve("PAY-1", by="Dana Scully")
    jira.pending_webhooks.append(jira.pending_webhooks[0])  # Jira delivers it twice
    assert await jira.deliver_webhooks() == [200, 200]
    await settle(jira_bot)
    assert await kinds_count(jira_bot, "action_item_done") == 1
    assert [json.loads(h.body)["issue"]["key"] for h, _ in jira.delivered] == ["PAY-1"] * 2
    assert any("resolved in Jira (PAY-1)" in text for text in jira_bot.thread_texts(1))
    [done] = await jira_bot.fetch("SELECT actor FROM timeline WHERE kind = 'action_item_done'")
    assert who(done["actor"]) == "Jira (Dana Scully)"
    assert not jira.calls_to("POST", "/rest/api/3/issue/PAY-1/transitions")  # no echo
    await jira_bot.command("action done 1", drain=False)
    assert "done already" in jira_bot.last_reply()


async def test_the_postmortem_shows_each_items_jira_key_and_tick(
    jira_bot: Bot, jira: FakeJira
) -> None:
    await item_with_owner(jira_bot, jira)
    await jira_bot.command("action Add config diffs to the deploy checklist", drain=False)
    await settle(jira_bot)
    jira.resolve("PAY-1")
    await jira.deliver_webhooks()
    await settle(jira_bot)
    await jira_bot.command("postmortem")
    draft = jira_bot.posted_files(1)[-1].content.decode()
    assert "1. [x] Alert on DB pool saturation — @dana" in draft  # the file names people
    assert f"([PAY-1]({jira.url}/browse/PAY-1))" in draft
    assert (
        f"2. [ ] Add config diffs to the deploy checklist — [owner] ([PAY-2]({jira.url}/browse/PAY-2))"
        in draft
    )


async def _post_hook(bot: Bot, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with bot.http.post(f"{bot.base}/jira/webhook", data=body, headers=headers) as resp:
        return resp.status, await resp.text()


@pytest.mark.parametrize(
    ("signature", "expected"),
    [
        (None, 401),
        ("sha256=" + "0" * 64, 401),
        ("sha1=abcdef", 401),
        ("sha256=ünicode", 401),
    ],
)
async def test_a_webhook_without_the_right_signature_is_refused_and_changes_nothing(
    jira_bot: Bot, jira: FakeJira, signature: str | None, expected: int
) -> None:
    await item_with_owner(jira_bot, jira)
    jira.resolve("PAY-1")
    hook = jira.pending_webhooks.pop()
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature"] = signature
    status, _ = await _post_hook(jira_bot, hook.body, headers)
    assert status == expected
    assert await kinds_count(jira_bot, "action_item_done") == 0


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"issue": {"key": "PAY-1"}}',
     b'{"webhookEvent": "jira:issue_updated", "issue": {"fields": {}}}'],
)  # fmt: skip
async def test_a_malformed_signed_webhook_is_a_400_and_changes_nothing(
    jira_bot: Bot, jira: FakeJira, body: bytes
) -> None:
    await item_with_owner(jira_bot, jira)
    status, text = await _post_hook(
        jira_bot, body, {"X-Hub-Signature": sign(body, JIRA_WEBHOOK_SECRET)}
    )
    assert status == 400 and "malformed" in text
    assert await kinds_count(jira_bot, "action_item_done") == 0


async def test_the_webhook_is_refused_when_jira_is_not_configured(bot: Bot) -> None:
    body = b'{"webhookEvent": "jira:issue_updated"}'
    status, text = await _post_hook(bot, body, {"X-Hub-Signature": sign(body, "anything")})
    assert status == 401 and "Jira is not configured" in text


class CrashAfterJiraAnswers(JiraQueue):
    """The process dies after Jira filed the issue, before our commit (once)."""

    crashed = False

    async def record_link(self, item: OutboxItem, issue: JiraIssue) -> None:
        if not self.crashed:
            type(self).crashed = True
            raise ConnectionResetError("the database went away")
        await super().record_link(item, issue)


async def test_a_crash_between_jiras_answer_and_the_commit_files_nothing_twice(
    jira_bot: Bot, jira: FakeJira
) -> None:
    await item_with_owner(jira_bot, jira, settle_jira=False)
    real = jira_bot.services.jira_queue
    assert real is not None
    crashing = CrashAfterJiraAnswers(jira_bot.services.uow, real.tracker, real.directory)
    with pytest.raises(ConnectionResetError):
        await crashing.process_once()
    assert len(jira.issues) == 1  # Jira has it; we do not know yet
    assert not await jira_bot.fetch("SELECT 1 FROM action_items")
    jira_bot.clock.advance(seconds=real.lease.total_seconds() + 1)  # the lease runs out
    await settle(jira_bot)  # another replica picks the item up
    assert len(jira.issues) == 1
    assert len(jira.calls_to("POST", "/rest/api/3/search/jql")) == 1
    assert len(jira.calls_to("POST", "/rest/api/3/issue")) == 1
    assert await kinds_count(jira_bot, "jira_linked") == 1
    assert sum("PAY-1" in text for text in jira_bot.thread_texts(1)) == 1


class CrashAfterOurCommit(JiraQueue):
    """The process dies after the link was committed, before the outbox row was marked done."""

    crashed = False

    async def _send(self, item: OutboxItem) -> str | None:
        sent = await super()._send(item)
        if not self.crashed:
            type(self).crashed = True
            raise ConnectionResetError("killed")
        return sent


async def test_a_crash_after_our_commit_but_before_the_outbox_knew_records_nothing_twice(
    jira_bot: Bot, jira: FakeJira
) -> None:
    await item_with_owner(jira_bot, jira, settle_jira=False)
    real = jira_bot.services.jira_queue
    assert real is not None
    crashing = CrashAfterOurCommit(jira_bot.services.uow, real.tracker, real.directory)
    with pytest.raises(ConnectionResetError):
        await crashing.process_once()
    jira_bot.clock.advance(seconds=real.lease.total_seconds() + 1)
    await settle(jira_bot)
    assert len(jira.issues) == 1
    assert await kinds_count(jira_bot, "jira_linked") == 1
    assert not jira.calls_to("POST", "/rest/api/3/search/jql")  # our own record sufficed


async def test_a_429_from_jira_waits_for_its_retry_after(jira_bot: Bot, jira: FakeJira) -> None:
    await item_with_owner(jira_bot, jira, settle_jira=False)
    queue = jira_bot.services.jira_queue
    assert queue is not None
    jira.rate_limit(times=1, retry_after=30)
    before = jira_bot.clock()
    assert await queue.process_once() == 1
    assert not jira.issues
    [row] = await jira_bot.fetch(
        "SELECT next_attempt_at, last_error FROM outbox WHERE channel = 'jira'"
    )
    assert row["next_attempt_at"] >= before + timedelta(seconds=29)
    assert "rate limited" in row["last_error"]
    jira_bot.clock.advance(seconds=20)
    assert await queue.process_once() == 0  # still inside Retry-After: nothing asked
    assert len(jira.calls) == 1
    jira_bot.clock.advance(seconds=11)
    assert await queue.process_once() == 1
    assert list(jira.issues) == ["PAY-1"]


async def test_an_issue_jira_refuses_is_said_in_the_thread_and_not_retried(
    dsn: str, slack: FakeSlack, jira: FakeJira
) -> None:
    async with running_bot(dsn, slack, **jira_settings(jira), jira_issue_type="Epic-ish") as bot:
        await bot.command("declare Checkout failing sev2")
        await bot.command("action Write the runbook", drain=False)
        await settle(bot)
        assert not jira.issues
        assert any("Jira refused to file a Jira issue for action item 1" in t
                   for t in bot.thread_texts(1))  # fmt: skip
        assert any("issuetype: Specify an issue type" in t for t in bot.thread_texts(1))
        [row] = await bot.fetch("SELECT failed FROM outbox WHERE channel = 'jira'")
        assert row["failed"] is True


async def test_without_jira_the_item_is_recorded_and_the_reply_says_jira_is_off(bot: Bot) -> None:
    await bot.command("declare Checkout failing sev2")
    await bot.command("action Write the runbook")
    assert "Jira is not configured" in bot.last_reply()
    assert await kinds_count(bot, "action_item") == 1
    assert not await bot.fetch("SELECT 1 FROM outbox WHERE channel = 'jira'")
    await bot.command("action done 1")
    assert "is done" in bot.last_reply() and "Jira is not configured" in bot.last_reply()
    assert await kinds_count(bot, "action_item_done") == 1
    await bot.command("action done 2")
    assert "INC-1 has 1 action item; there is no item 2." in bot.last_reply()


async def test_the_stand_in_refuses_calls_without_basic_auth(jira: FakeJira) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{jira.url}/rest/api/3/issue", json={"fields": {}}) as resp:
            assert resp.status == 401
            assert set(await resp.json()) == {"errorMessages", "errors"}
        wrong = {"Authorization": aiohttp.encode_basic_auth(EMAIL, "not-the-token")}
        async with http.get(f"{jira.url}/rest/api/3/user/search?query=a", headers=wrong) as resp:
            assert resp.status == 401
    assert not jira.issues


async def test_the_stand_in_refuses_a_description_that_is_not_adf(jira: FakeJira) -> None:
    auth = {"Authorization": aiohttp.encode_basic_auth(EMAIL, TOKEN)}
    fields = {"project": {"key": PROJECT}, "issuetype": {"name": "Task"}, "summary": "x",
              "description": "plain text is not ADF", "labels": ["two words"]}  # fmt: skip
    async with (
        aiohttp.ClientSession(headers=auth) as http,
        http.post(f"{jira.url}/rest/api/3/issue", json={"fields": fields}) as resp,
    ):
        assert resp.status == 400
        body = await resp.json()
    assert body["errorMessages"] == []
    assert set(body["errors"]) == {"description", "labels"}
    assert not jira.issues


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("action done 3", ActionDone(incident=None, number=3)),
        ("action INC-2 done #1", ActionDone(incident=2, number=1)),
        ("todo done 12", ActionDone(incident=None, number=12)),
        ("action done with the migration", ActionItem(None, "done with the migration", None)),
        ("action done 0", ActionItem(None, "done 0", None)),
        ("action done 3 <@U0DANA001|dana>", ActionItem(None, "done 3", "U0DANA001")),
    ],
)
def test_action_done_takes_an_item_number_and_anything_else_is_an_item(
    text: str, parsed: object
) -> None:
    assert parse_ic(text) == parsed


async def test_a_handover_briefing_lists_only_the_items_still_open(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    await bot.command("action Alert on DB pool saturation", user="dana")
    await bot.command("action Add config diffs to the deploy checklist", user="dana")
    await bot.command("action done 1", user="dana")
    await bot.command(f"handover <@{bot.user('kim')}|kim>", user="dana")
    [handover] = await bot.fetch("SELECT data FROM timeline WHERE kind = 'handover'")
    data = json.loads(handover["data"]) if isinstance(handover["data"], str) else handover["data"]
    actions = data["summary"]["actions"]
    assert [a["text"] for a in actions] == ["Add config diffs to the deploy checklist"]
    assert data["summary"]["actions_total"] == 1


async def test_a_card_number_or_secret_in_an_item_never_reaches_jira(
    jira_bot: Bot, jira: FakeJira
) -> None:
    await jira_bot.command("declare Checkout failing sev2")
    await jira_bot.command(
        "action rotate password=hunter22 and purge card 4111 1111 1111 1111", drain=False
    )
    await settle(jira_bot)
    [issue] = jira.issues.values()
    sent = json.dumps(issue.fields)
    assert "hunter22" not in sent and "4111" not in sent
    assert "[redacted: password]" in issue.fields["summary"]


async def test_the_webhook_is_refused_when_its_secret_is_not_set(
    dsn: str, slack: FakeSlack, jira: FakeJira
) -> None:
    settings = {**jira_settings(jira), "jira_webhook_secret": None}
    async with running_bot(dsn, slack, **settings) as bot:
        body = b'{"webhookEvent": "jira:issue_updated"}'
        status, text = await _post_hook(bot, body, {"X-Hub-Signature": sign(body, "")})
        assert status == 401 and "Jira webhooks are not configured" in text
