"""Email when Slack is down (issue 21): through the real app, Slack's stand-in answering 503, and
a real SMTP server (aiosmtpd, sandbox.smtp) receiving what aiosmtplib sends.

The threshold is SLACK_DOWN_AFTER as configured (2 minutes); the tests move the bot's clock
instead of waiting.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import structlog

from bot.core import logs
from bot.core.errors import ErrorCode, IntegrationError
from bot.core.settings import Settings
from bot.domain.email_fallback import EmailQueue, counts_as_down
from bot.domain.timeline import Kind
from bot.integrations.smtp import SmtpMailer, parse_smtp_url
from sandbox.slack_api import FakeSlack
from sandbox.smtp import FakeSmtp, ReceivedMail
from sandbox.tls import LocalTLS, make_local_tls
from tests.conftest import Bot, running_bot

FALLBACK = "oncall@waqiti.example"
ALICE = "alice@waqiti.example"
SMTP_USER = "icbot@waqiti.example"
SMTP_PASSWORD = "s3cret-smtp-pass-4f9a"


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSmtp]:
    async with FakeSmtp() as server:
        yield server


@pytest.fixture
def tls() -> Iterator[LocalTLS]:
    material = make_local_tls()
    yield material
    material.cleanup()


def email_settings(server: FakeSmtp, **more: Any) -> dict[str, Any]:
    return {"smtp_url": server.url(), "fallback_emails": FALLBACK, **more}


@pytest.fixture
async def bot(dsn: str, slack: FakeSlack, smtp: FakeSmtp) -> AsyncIterator[Bot]:
    slack.add_user("alice", email=ALICE)
    async with running_bot(dsn, slack, **email_settings(smtp)) as running:
        yield running


def queue(bot: Bot) -> EmailQueue:
    assert bot.services.email_queue is not None
    return bot.services.email_queue


async def email_round(bot: Bot) -> None:
    """What the email worker does each round (in every replica), then everything it queued."""
    await queue(bot).run_round()
    await queue(bot).drain(timeout=10)


async def slack_attempt(bot: Bot) -> None:
    """The Slack outbox tries what is due (and fails while the stand-in is down)."""
    bot.clock.advance(seconds=61)  # past any back-off
    await bot.services.outbox.process_once()


async def slack_goes_down(bot: Bot) -> None:
    """The stand-in answers 503; the next post (a note) fails, which starts the clock."""
    bot.slack.down()
    await bot.command("note Slack looks down from here", drain=False)
    await slack_attempt(bot)


async def declared(bot: Bot) -> None:
    await bot.command("declare Payments are failing sev1")
    await email_round(bot)  # Slack answers: the commander's email is cached


def texts(mails: list[ReceivedMail]) -> str:
    return "\n".join(f"{m.subject}\n{m.body}" for m in mails)


async def kinds(bot: Bot, kind: Kind) -> int:
    rows = await bot.fetch("SELECT count(*) AS n FROM timeline WHERE kind = $1", kind)
    return int(rows[0]["n"])


async def test_slack_down_past_the_threshold_emails_key_events_and_says_so_once(
    bot: Bot, smtp: FakeSmtp
) -> None:
    await declared(bot)
    assert smtp.messages == []  # Slack answers: nothing by email
    bot.slack.down()
    await bot.command("status Rolled back checkout to r41", drain=False)
    await slack_attempt(bot)
    bot.clock.advance(minutes=2)
    await slack_attempt(bot)
    await email_round(bot)

    mails = smtp.messages
    assert mails, "Slack failed every post for 2 minutes: the key events go by email"
    assert all(set(m.recipients) == {ALICE, FALLBACK} for m in mails)
    assert all(not m.message.is_multipart() for m in mails)  # plain text
    assert "Rolled back checkout to r41" in texts(mails)
    assert "Slack unreachable since" in texts(mails)
    assert "/incidents/INC-1?t=" in mails[0].body  # the incident page's link
    assert await kinds(bot, Kind.SLACK_UNREACHABLE) == 1
    unreachable = (
        await bot.fetch("SELECT text FROM timeline WHERE kind = $1", Kind.SLACK_UNREACHABLE)
    )[0]["text"]
    assert (
        unreachable.startswith("Slack unreachable since ") and "notifying by email" in unreachable
    )

    # Later rounds, in this replica or another, neither say it again nor email anything twice.
    sent = len(mails)
    await email_round(bot)
    await email_round(bot)
    assert len(smtp.messages) == sent
    assert await kinds(bot, Kind.SLACK_UNREACHABLE) == 1
    assert len({m.message_id for m in smtp.messages}) == sent

    # A status prompt comes due while Slack is still down: it is emailed too.
    bot.clock.advance(minutes=16)
    await bot.services.prompter.tick()
    await email_round(bot)
    prompts = [m for m in smtp.messages[sent:] if "status update needed" in m.subject]
    assert len(prompts) == 1 and "@alice" in prompts[0].body  # the mention, by name


async def test_slack_back_records_reachable_again_and_stops_emailing(
    bot: Bot, smtp: FakeSmtp
) -> None:
    await declared(bot)
    bot.slack.down()
    await bot.command("note Second note while Slack is down", drain=False)
    await slack_attempt(bot)  # fails: the clock starts
    bot.clock.advance(minutes=3)
    await slack_attempt(bot)
    await email_round(bot)
    assert "Second note while Slack is down" in texts(smtp.messages)

    bot.slack.up()
    bot.clock.advance(minutes=2)
    await bot.services.outbox.drain(timeout=20)
    assert await kinds(bot, Kind.SLACK_REACHABLE) == 1
    await email_round(bot)
    assert "Slack is reachable again" in smtp.messages[-1].subject
    sent = len(smtp.messages)

    await bot.command("note After Slack came back")
    await email_round(bot)
    assert len(smtp.messages) == sent, "Slack answers: no more email"
    assert "After Slack came back" in "\n".join(bot.thread_texts())
    assert any("Slack reachable again" in t for t in bot.thread_texts())


async def test_slack_failing_for_less_than_the_threshold_sends_no_email(
    bot: Bot, smtp: FakeSmtp
) -> None:
    await declared(bot)
    bot.slack.down()
    await bot.command("note Slack blips", drain=False)
    await slack_attempt(bot)
    bot.clock.advance(seconds=50)  # 50 s + the attempt's 61 s: under 2 minutes
    await email_round(bot)
    bot.slack.up()
    await bot.services.outbox.drain(timeout=20)
    bot.clock.advance(minutes=10)
    await email_round(bot)
    assert smtp.messages == []
    assert await kinds(bot, Kind.SLACK_UNREACHABLE) == 0
    assert await kinds(bot, Kind.SLACK_REACHABLE) == 0
    health = (await bot.fetch("SELECT failing_since, down_since FROM slack_health"))[0]
    assert health["failing_since"] is None and health["down_since"] is None


async def test_posts_slack_refused_and_gave_up_on_are_emailed_too(bot: Bot, smtp: FakeSmtp) -> None:
    """A revoked token: Slack answers, refusing every post; the outbox gives each one up."""
    await declared(bot)
    bot.slack.fail("chat.postMessage", status=200, error="account_inactive", times=50)
    bot.slack.fail("conversations.replies", status=200, error="account_inactive", times=50)
    await bot.command("note Posted while the token is revoked", drain=False)
    for _ in range(5):
        await slack_attempt(bot)
    given_up = await bot.fetch("SELECT failed FROM outbox WHERE channel = 'slack' AND failed")
    assert given_up, "the refused post was given up"
    await email_round(bot)
    assert "Posted while the token is revoked" in texts(smtp.messages)
    assert await kinds(bot, Kind.SLACK_UNREACHABLE) == 1


async def test_an_smtp_server_answering_4xx_gets_the_email_again_later_once(
    bot: Bot, smtp: FakeSmtp
) -> None:
    await declared(bot)
    await slack_goes_down(bot)
    bot.clock.advance(minutes=3)
    smtp.fail("451 4.3.0 Mail server temporarily rejected message", times=1)
    await queue(bot).run_round()
    assert smtp.messages == []
    retry = await bot.fetch(
        "SELECT last_error FROM outbox WHERE channel = 'email' AND last_error IS NOT NULL"
    )
    assert "answered 451" in retry[0]["last_error"]
    bot.clock.advance(seconds=5)
    await queue(bot).drain(timeout=10)
    ids = [m.message_id for m in smtp.messages]
    assert ids and len(ids) == len(set(ids))
    assert "Slack looks down from here" in texts(smtp.messages)


async def test_a_rate_limited_slack_is_not_down() -> None:
    busy = IntegrationError("slack", ErrorCode.RATE_LIMITED, "rate limited", retry_after=30)
    outage = IntegrationError("slack", ErrorCode.UNAVAILABLE, "failed with HTTP 503")
    refused = IntegrationError("slack", ErrorCode.DENIED, "invalid_auth", reason="invalid_auth")
    too_long = IntegrationError("slack", ErrorCode.REFUSED, "x", reason="msg_too_long")
    assert not counts_as_down(busy) and not counts_as_down(too_long)
    assert counts_as_down(outage) and counts_as_down(refused)


async def test_two_replicas_record_the_outage_once_and_email_each_event_once(
    dsn: str, slack: FakeSlack, smtp: FakeSmtp
) -> None:
    slack.add_user("alice", email=ALICE)
    async with (
        running_bot(dsn, slack, **email_settings(smtp)) as one,
        running_bot(dsn, slack, **email_settings(smtp)) as two,
    ):
        await declared(one)
        await slack_goes_down(one)
        one.clock.advance(minutes=3)
        two.clock.advance(minutes=3 + 1)
        await asyncio.gather(queue(one).run_round(), queue(two).run_round())
        await asyncio.gather(queue(one).drain(timeout=10), queue(two).drain(timeout=10))
        assert await kinds(one, Kind.SLACK_UNREACHABLE) == 1
        ids = [m.message_id for m in smtp.messages]
        assert ids and len(ids) == len(set(ids))


async def test_an_email_resent_after_a_crash_keeps_its_message_id(bot: Bot, smtp: FakeSmtp) -> None:
    await declared(bot)
    await slack_goes_down(bot)
    bot.clock.advance(minutes=3)
    email = queue(bot)
    await email.watch.check()
    # The worker sends, and dies before marking the item done: its lease runs out.
    async with bot.services.pool.acquire() as conn:
        from bot.store import outbox as outbox_sql

        items = await outbox_sql.claim(
            conn, now=bot.clock(), lease=email.lease, limit=1, channel="email"
        )
    await email._send(items[0])
    bot.clock.advance(seconds=email.lease.total_seconds() + 1)
    await email.drain(timeout=10)
    first, again = smtp.messages[0], smtp.messages[1]
    assert first.subject == again.subject
    assert first.message_id == again.message_id  # receivers deduplicate on it


async def test_smtp_auth_over_starttls_delivers(dsn: str, slack: FakeSlack, tls: LocalTLS) -> None:
    async with FakeSmtp(username=SMTP_USER, password=SMTP_PASSWORD, tls=tls) as server:
        slack.add_user("alice", email=ALICE)
        settings = email_settings(server, smtp_ca_bundle=tls.ca_path)
        async with running_bot(dsn, slack, **settings) as bot:
            await declared(bot)
            await slack_goes_down(bot)
            bot.clock.advance(minutes=3)
            await email_round(bot)
        assert server.messages
        assert all(m.tls and m.login == SMTP_USER for m in server.messages)
        assert all(m.sender == SMTP_USER for m in server.messages)  # From: the SMTP user


async def test_smtps_implicit_tls_without_credentials_delivers(tls: LocalTLS) -> None:
    async with FakeSmtp(tls=tls, implicit_tls=True) as server:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, smtp_url=server.url(), smtp_ca_bundle=tls.ca_path
        )
        mailer = SmtpMailer.from_settings(settings)
        assert mailer is not None and server.url().startswith("smtps://")
        await mailer.send(to=[FALLBACK], subject="s", body="b", key="k1", thread="t1")
        assert server.messages[0].tls and server.messages[0].login is None


async def test_smtp_without_starttls_refuses_to_send_a_password(smtp: FakeSmtp) -> None:
    """A server that offers no STARTTLS never sees our password: the send is refused first."""
    url = f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{smtp.port}"
    mailer = SmtpMailer(parse_smtp_url(url), sender=SMTP_USER)
    with pytest.raises(IntegrationError) as caught:
        await mailer.send(to=[FALLBACK], subject="s", body="b", key="k", thread="t")
    assert caught.value.permanent and "STARTTLS" in str(caught.value)
    assert SMTP_PASSWORD not in str(caught.value)
    assert smtp.messages == []


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


async def test_the_smtp_password_is_never_in_logs_errors_or_the_record(
    dsn: str,
    slack: FakeSlack,
    tls: LocalTLS,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    logs.configure("json", "DEBUG")
    async with FakeSmtp(username=SMTP_USER, password=SMTP_PASSWORD, tls=tls) as server:
        wrong = "wrong-" + SMTP_PASSWORD
        settings = {
            "smtp_url": server.url(password=wrong),
            "smtp_ca_bundle": tls.ca_path,
            "fallback_emails": FALLBACK,
        }
        async with running_bot(dsn, slack, **settings) as bot:
            logs.get_logger("test").info("settings", settings=repr(bot.services.settings))
            await declared(bot)
            await slack_goes_down(bot)
            bot.clock.advance(minutes=3)
            await queue(bot).run_round()
            for _ in range(4):  # refused: retried, then given up
                bot.clock.advance(minutes=2)
                await queue(bot).process_once()
            rows = await bot.fetch("SELECT last_error, failed FROM outbox WHERE channel = 'email'")
            record = json.dumps(
                [dict(r) for r in await bot.fetch("SELECT * FROM timeline")], default=str
            )
        assert server.failed_logins and server.messages == []
        errors = [r["last_error"] for r in rows]
        assert any("refused the SMTP_URL credentials" in (e or "") for e in errors)
        assert any(r["failed"] for r in rows)  # refused three times: given up
    err = capsys.readouterr().err
    assert "email.retry" in err
    for text in (err, json.dumps(errors), record):
        assert wrong not in text and SMTP_PASSWORD not in text


def test_email_settings_parse_and_refuse_without_echoing_the_password() -> None:
    on = Settings(  # type: ignore[call-arg]
        _env_file=None, smtp_url="smtp://ops%40waqiti.example:p%40ss@mail.example:2525",
        fallback_emails=" a@waqiti.example, b@waqiti.example ", slack_down_after="90s",
    )  # fmt: skip
    assert on.email_enabled and on.slack_down_after == 90.0
    assert on.fallback_email_list == ["a@waqiti.example", "b@waqiti.example"]
    assert "p%40ss" not in repr(on) and "p%40ss" not in str(on)
    target = parse_smtp_url(on.smtp_url.get_secret_value())  # type: ignore[union-attr]
    assert (target.host, target.port, target.username) == (
        "mail.example",
        2525,
        "ops@waqiti.example",
    )
    assert target.password is not None and target.password.get_secret_value() == "p@ss"
    assert parse_smtp_url("smtps://mail.example").port == 465
    assert parse_smtp_url("smtp://mail.example").port == 587

    off = Settings(_env_file=None)  # type: ignore[call-arg]
    assert not off.email_enabled and off.slack_down_after == 120.0

    for bad in ("http://u:hunter22@mail.example", "smtp://u:hunter22@:25", "smtp://:hunter22@h"):
        with pytest.raises(ValueError) as caught:
            Settings(_env_file=None, smtp_url=bad)  # type: ignore[call-arg]
        assert "SMTP_URL" in str(caught.value) and "hunter22" not in str(caught.value)
    with pytest.raises(ValueError, match="not an email address"):
        Settings(_env_file=None, fallback_emails="ops@waqiti.example, nobody")  # type: ignore[call-arg]


async def test_without_smtp_url_nothing_watches_or_emails(dsn: str, slack: FakeSlack) -> None:
    async with running_bot(dsn, slack) as plain:
        assert plain.services.email_queue is None
        assert plain.services.outbox.watchers == []


async def test_the_shell_takes_slack_down_and_up_and_the_email_goes_out(dsn: str) -> None:
    """`/slack down` in `icbot shell`, with SMTP_URL set in the environment as an operator would."""
    async with FakeSmtp() as server:
        script = (
            "/ic declare Payments failing sev2\n/slack down\n/ic note Checkout errors at 30%\n"
            "/wait 5\n/slack up\n/wait 4\n"
        )
        env = {
            **os.environ, "USER": "sam", "DATABASE_URL": dsn, "SMTP_URL": server.url(),
            "FALLBACK_EMAILS": FALLBACK, "SLACK_DOWN_AFTER": "2s",
        }  # fmt: skip
        shell = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        out, err = await asyncio.wait_for(shell.communicate(script.encode()), timeout=120)
    assert shell.returncode == 0, err.decode()
    assert "Checkout errors at 30%" in texts(server.messages)
    assert all(FALLBACK in m.recipients for m in server.messages)
    assert "Slack reachable again" in out.decode()  # posted in the thread once Slack answered
    assert "Traceback" not in err.decode()
