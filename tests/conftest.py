"""Real parts for every test: PostgreSQL from pgserver, Slack as a local HTTP stand-in.

PostgreSQL starts once per session (data dir directly under /tmp, reused if already running,
stopped at the end); each test gets a fresh database cloned from a migrated template.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from bot.core.ids import Metadata
from bot.core.settings import Settings
from bot.delivery.outbox import ChannelPacer
from bot.runtime.services import open_services
from bot.runtime.web import build_web_app
from bot.store import db
from commands.app import build_slack_app
from commands.services import Services
from sandbox.pagerduty import FakePagerDuty
from sandbox.slack_api import FakeSlack, UploadedFile
from sandbox.slack_requests import SignedRequest, SlackRequests

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO.parent / "shared" / "specs"
SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
PAGERDUTY_WEBHOOK_SECRET = "pd-webhook-secret-0123456789"
# Per test session, so two runs on one machine (a developer's and CI's) never share it.
TEMPLATE = f"icbot_template_{os.getpid()}"
_db_names = itertools.count(1)


@pytest.fixture
def data_home() -> Iterator[Path]:
    """An XDG_DATA_HOME for an embedded PostgreSQL, removed afterwards. Not `tmp_path`: run as
    root, pgserver runs postgres as its own user, who cannot enter pytest's private folders."""
    with tempfile.TemporaryDirectory(prefix="icbot-test-data-", ignore_cleanup_errors=True) as d:
        os.chmod(d, 0o755)  # noqa: S103  (postgres, another user, must enter it)
        yield Path(d)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """One PostgreSQL for this test session, in a directory of its own that goes with it.

    Its data is thrown away at the end, so durability is switched off (no fsync, asynchronous
    commits, no full-page writes): tests get the same SQL semantics, and the per-test
    CREATE DATABASE ... TEMPLATE and every commit stop waiting on the disk.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(
            Path(f"/tmp/icbot-test-pg-{os.getuid()}-{os.getpid()}"), cleanup_mode="delete"
        )
    for setting in ("fsync = off", "synchronous_commit = off", "full_page_writes = off"):
        server.psql(f"ALTER SYSTEM SET {setting};")
    server.psql("SELECT pg_reload_conf();")
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
async def pg_template(pg_server: Any) -> AsyncIterator[str]:
    admin = await asyncpg.connect(pg_server.get_uri())
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(pg_server.get_uri(TEMPLATE))
    try:
        await db.migrate(conn)
    finally:
        await conn.close()
    yield TEMPLATE  # the session's server, databases and all, is deleted after the session


async def _fresh_database(pg_server: Any, template: str | None) -> str:
    name = f"icbot_test_{os.getpid()}_{next(_db_names)}"
    admin = await asyncpg.connect(pg_server.get_uri())
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        clause = f" TEMPLATE {template}" if template else ""
        await admin.execute(f"CREATE DATABASE {name}{clause}")
    finally:
        await admin.close()
    return str(pg_server.get_uri(name))


@pytest.fixture
async def dsn(pg_server: Any, pg_template: str) -> str:
    """A fresh, migrated database for this test."""
    return await _fresh_database(pg_server, pg_template)


@pytest.fixture
async def empty_dsn(pg_server: Any) -> str:
    """A fresh database with no tables at all (for migration tests)."""
    return await _fresh_database(pg_server, None)


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


def make_settings(slack: FakeSlack, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_api_url": slack.url,
        "slack_bot_token": slack.token,
        "slack_signing_secret": SIGNING_SECRET,
        "incident_channel": "waqiti-incidents",
        "data_dir": Path("/tmp/icbot-test-unused"),
        # The tests' Kafka is tansu (sandbox.kafka_broker): see these settings in bot.core.settings.
        "kafka_idempotent_producer": False,
        "kafka_clamp_negative_lag": True,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def shown_text(message: Any) -> str:
    """The text of every text object in a message's blocks (its `text` if it has none)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(message.blocks)
    return "\n".join(found) if found else str(message.text)


class FakeClock:
    """Real time plus an offset that tests move forward: timers come due without sleeping."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


class Bot:
    """The real app served over real HTTP on 127.0.0.1, with helpers to talk to it as Slack."""

    def __init__(
        self,
        services: Services,
        slack: FakeSlack,
        base: str,
        http: aiohttp.ClientSession,
        clock: FakeClock,
    ) -> None:
        self.services = services
        self.clock = clock
        self.slack = slack
        self.base = base
        self.http = http
        self.requests = SlackRequests(signing_secret=SIGNING_SECRET, team_id=slack.team_id)
        self.channel = slack.channel_id("waqiti-incidents")

    def user(self, name: str) -> str:
        return self.slack.add_user(name)

    def command_request(
        self, text: str, *, user: str = "alice", command: str = "/ic", **kw: Any
    ) -> SignedRequest:
        uid = self.user(user)
        return self.requests.slash_command(
            command,
            text,
            user_id=uid,
            user_name=user,
            channel_id=self.channel,
            channel_name="waqiti-incidents",
            response_url=self.slack.new_response_url(channel=self.channel, user=uid),
            **kw,
        )

    async def post(
        self, request: SignedRequest, *, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        async with self.http.post(
            f"{self.base}/slack/events",
            data=request.body.encode(),
            headers={**request.headers, **(headers or {})},
        ) as resp:
            return resp.status, await resp.text()

    async def command(
        self, text: str, *, user: str = "alice", drain: bool = True
    ) -> tuple[int, str]:
        """Send `/ic <text>` as `user` and wait for its work; `drain` also waits for the posts."""
        result = await self.post(self.command_request(text, user=user))
        await self.services.inflight.idle()
        if drain:
            await self.settle()
        return result

    async def settle(self) -> None:
        await self.services.inflight.idle()
        if self.services.pager_queue is not None:
            await self.services.pager_queue.drain(timeout=20)
        await self.services.outbox.drain(timeout=20)

    async def kinds(self) -> list[str]:
        return [r["kind"] for r in await self.fetch("SELECT kind FROM timeline ORDER BY seq")]

    async def tick(self) -> int:
        """Run the timer loop once (as any replica would) and post what it queued."""
        handled = await self.services.prompter.tick()
        await self.settle()
        return handled

    async def post_signed(self, request: SignedRequest) -> tuple[int, str]:
        result = await self.post(request)
        await self.settle()
        return result

    def replies_to(self, user: str) -> list[str]:
        uid = self.slack.user_id(user)
        return [e.text for e in self.slack.ephemerals if e.user == uid]

    def last_reply(self, user: str = "alice") -> str:
        replies = self.replies_to(user)
        assert replies, f"{user} got no reply"
        return replies[-1]

    def card(self, number: int = 1) -> Any:
        roots = self.slack.roots("waqiti-incidents")
        return roots[number - 1]

    def thread(self, number: int = 1) -> list[Any]:
        return self.slack.thread("waqiti-incidents", self.card(number).ts)

    def thread_texts(self, number: int = 1) -> list[str]:
        """Each thread message's words as a reader sees them: its blocks' text, or its text."""
        return [shown_text(m) for m in self.thread(number)]

    def posted_files(self, number: int = 1) -> list[UploadedFile]:
        """The files the bot shared in incident `number`'s thread, oldest first, with their bytes."""
        return [
            self.slack.files[f["id"]]
            for m in self.thread(number)
            if m.user == self.slack.bot_user_id
            for f in m.files
        ]

    def digests(self, number: int = 1) -> list[Any]:
        """The thread's digest messages (chatter folded into one message, edited in place)."""
        return [
            m for m in self.thread(number)
            if (m.metadata or {}).get("event_type") == Metadata.DIGEST
        ]  # fmt: skip

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self.services.pool.acquire() as conn:
            return list(await conn.fetch(sql, *args))


@pytest.fixture
async def pagerduty() -> AsyncIterator[FakePagerDuty]:
    async with FakePagerDuty() as fake:
        yield fake


def pagerduty_settings(fake: FakePagerDuty) -> dict[str, Any]:
    return {
        "pagerduty_api_token": fake.api_key,
        "pagerduty_from_email": "icbot@waqiti.example",
        "pagerduty_service_id": "PSVC001",
        "pagerduty_api_url": fake.url,
        "pagerduty_ca_bundle": fake.ca_path,
        "pagerduty_webhook_secret": PAGERDUTY_WEBHOOK_SECRET,
    }


@asynccontextmanager
async def running_bot(dsn: str, slack: FakeSlack, **overrides: Any) -> AsyncIterator[Bot]:
    """The real app on 127.0.0.1 with its own services (a fresh "process" of the bot)."""
    settings = make_settings(slack, **overrides)
    clock = FakeClock()
    async with open_services(
        settings,
        dsn=dsn,
        token=slack.token,
        clock=clock,
        pacer=ChannelPacer(per_second=0, burst=1),
        run_workers=False,
    ) as services:
        app = build_web_app(services, build_slack_app(services), signing_secret=SIGNING_SECRET)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as http:
            yield Bot(services, slack, f"http://127.0.0.1:{port}", http, clock)
        await runner.cleanup()
        # Let Bolt's background listener tasks finish before the pool closes.
        await asyncio.sleep(0)


@pytest.fixture
async def bot(dsn: str, slack: FakeSlack) -> AsyncIterator[Bot]:
    async with running_bot(dsn, slack) as running:
        yield running


@pytest.fixture
async def pd_bot(dsn: str, slack: FakeSlack, pagerduty: FakePagerDuty) -> AsyncIterator[Bot]:
    """The bot with PagerDuty configured, pointed at the PagerDuty stand-in."""
    async with running_bot(dsn, slack, **pagerduty_settings(pagerduty)) as running:
        yield running
