"""Issue 19's scenario: a card number and a Slack token posted in an incident's thread never
enter the record, through the real app, PostgreSQL and a tansu Kafka broker.

Searched for afterwards: every text, jsonb and text[] column of every table (found through
information_schema, so a table added later is searched too), the thread and its digest, the
events topic, the post-mortem posted in Slack and `icbot postmortem`'s output. The author is
told privately; `icbot audit verify` still passes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from prometheus_client import generate_latest

from bot.core.metrics import REGISTRY
from bot.pages import export
from sandbox.kafka_broker import TansuBroker
from sandbox.slack_api import FakeSlack
from tests.conftest import Bot, running_bot, shown_text
from tests.integrations.test_incident_events import read_topic
from tests.test_scribe import say

CARD = "4111 1111 1111 1111"  # Visa's test number: Luhn-valid, a Visa prefix
TOKEN = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
NEEDLES = ("4111111111111111", "xoxb-1234", "AbCdEfGhIjKlMnOpQrStUvWx")


def leaked(text: str) -> list[str]:
    """The needles found in `text`, with spaces and dashes between digits ignored."""
    squeezed = text.replace(" ", "").replace("-", "")
    return [n for n in NEEDLES if n in text or n.replace("-", "") in squeezed]


async def columns_holding_secrets(bot: Bot) -> list[str]:
    columns = await bot.fetch(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public'"
        " AND (data_type IN ('text', 'jsonb', 'json', 'character varying', 'bytea')"
        "      OR udt_name IN ('_text', '_varchar'))"
    )
    assert len(columns) > 20  # the search really looked at the schema
    found = []
    for col in columns:
        table, column = col["table_name"], col["column_name"]
        rows = await bot.fetch(f'SELECT "{column}"::text AS v FROM "{table}"')
        for row in rows:
            if row["v"] is not None and leaked(row["v"]):
                found.append(f"{table}.{column}")
    return found


def _icbot(args: list[str], dsn: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": dsn, "LOG_FORMAT": "console"}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], env=env, capture_output=True, text=True, timeout=120
    )


async def test_a_card_number_and_a_slack_token_in_a_thread_never_enter_the_record(
    dsn: str, slack: FakeSlack, capfd: pytest.CaptureFixture[str]
) -> None:
    async with TansuBroker() as broker:
        topic = f"incident-events-{uuid.uuid4().hex[:8]}"
        await broker.create_topic(topic, partitions=1)
        settings = {"kafka_bootstrap_servers": broker.bootstrap, "kafka_events_topic": topic}
        async with running_bot(dsn, slack, **settings) as bot:
            await bot.command("declare Payments failing sev2", user="dana")
            await say(bot, "erin", f"customer card {CARD} declined, try with {TOKEN}")
            await say(bot, "erin", "pool at 100%")  # chatter: the digest holds both lines
            frank = bot.user("frank")
            await bot.command(f"handover <@{frank}|frank> ic", user="dana")  # a briefing
            await bot.command("postmortem", user="dana")
            await bot.settle()
            events = bot.services.incident_events
            assert events is not None
            await events.drain(timeout=30)
            count = (await bot.fetch("SELECT timeline_count FROM incidents"))[0][0]
            records = await read_topic(broker.bootstrap, topic, 1, expect=count)

            assert await columns_holding_secrets(bot) == []
            ours = [m for m in bot.thread(1) if m.user == bot.slack.bot_user_id]  # not erin's own
            thread = [shown_text(m) for m in ours] + [shown_text(bot.card(1))]
            assert [t for t in thread if leaked(t)] == []
            assert bot.digests(1), "the capture is chatter, folded into a digest"
            assert [r.value for r in records if leaked(r.value.decode())] == []
            assert len(records) == count
            posted = [f.content.decode() for f in bot.posted_files(1) if f.content]
            assert posted and [p for p in posted if leaked(p)] == []
            snapshot = await export.load(bot.services.pool, 1)
            assert snapshot is not None
            page_json = json.dumps(export.timeline_export(snapshot, exported_at=bot.clock()))
            assert leaked(page_json) == [] and "[redacted: Slack bot token]" in page_json
            briefing = (await bot.fetch("SELECT data FROM timeline WHERE kind = 'handover'"))[0]
            assert leaked(json.dumps(briefing["data"])) == []
            assert leaked(generate_latest(REGISTRY).decode()) == []
            assert all(leaked(e.text) == [] for e in bot.slack.ephemerals)
            printed = _icbot(["postmortem", "INC-1"], dsn)
            assert printed.returncode == 0, printed.stderr
            assert leaked(printed.stdout + printed.stderr) == []

            # What is kept instead, and who was told.
            message = (await bot.fetch("SELECT text, data FROM timeline WHERE kind = 'message'"))[0]
            assert "[redacted: card number ending 1111]" in message["text"]
            assert "[redacted: Slack bot token]" in message["text"]
            stored = message["data"]["text"]
            assert "[redacted: card number ending 1111]" in stored
            erin = bot.slack.user_id("erin")
            key = await bot.fetch("SELECT text, data FROM timeline WHERE kind = 'redacted'")
            assert [k["text"] for k in key] == [
                f"card number and Slack bot token redacted from <@{erin}>'s message."
            ]
            told = [e for e in bot.slack.ephemerals if e.user == erin]
            assert len(told) == 1
            assert told[0].text.startswith(
                ":lock: Your message contained a card number and a Slack bot token;"
                " it was not recorded. Please delete it"
            )
            assert told[0].thread_ts == bot.card(1).ts
            assert "card number" in shown_text(bot.card(1)).lower()
            assert "Regulatory impact: yes" in posted[-1]
        verified = _icbot(["audit", "verify", "INC-1"], dsn)
        assert verified.returncode == 0, verified.stdout + verified.stderr
    logged = capfd.readouterr()
    assert "scribe.captured" in logged.out + logged.err  # the bot's log lines were captured
    assert leaked(logged.out + logged.err) == []
