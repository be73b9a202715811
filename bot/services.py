"""The composition root: everything the bot needs, built from one `Settings`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg
from slack_sdk.web.async_client import AsyncWebClient

from bot.incidents import Incidents
from bot.inflight import Inflight
from bot.integrations.slack import SlackChat
from bot.logs import get_logger
from bot.models import Clock, utcnow
from bot.outbox import ChannelPacer, Outbox
from bot.policy import SeverityPolicy, load_severity_policy
from bot.prompts import Prompter
from bot.settings import Settings
from bot.store import db

log = get_logger(__name__)


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    policy: SeverityPolicy
    client: AsyncWebClient
    chat: SlackChat
    channel_id: str
    incidents: Incidents
    outbox: Outbox
    prompter: Prompter
    clock: Clock
    inflight: Inflight = field(default_factory=Inflight)


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    dsn: str,
    token: str,
    clock: Clock = utcnow,
    pacer: ChannelPacer | None = None,
    run_workers: bool = True,
) -> AsyncIterator[Services]:
    """Open the pool, apply migrations, resolve the war room, start the outbox worker."""
    policy = load_severity_policy(settings.playbooks_dir)
    pool = await db.create_pool(dsn)
    workers: list[asyncio.Task[None]] = []
    try:
        async with pool.acquire() as conn:
            await db.migrate(conn)
        client = AsyncWebClient(token=token, base_url=settings.slack_api_url, timeout=10)
        chat = SlackChat(client)
        channel_id = await chat.resolve_channel(settings.incident_channel)
        outbox = Outbox(
            pool,
            chat,
            policy,
            clock=clock,
            pacer=pacer,
            lease=timedelta(seconds=settings.outbox_lease_seconds),
        )
        incidents = Incidents(
            pool, policy, channel_id=channel_id, clock=clock, on_change=outbox.kick
        )
        prompter = Prompter(
            pool,
            policy,
            clock=clock,
            on_change=outbox.kick,
            poll_interval=settings.timer_poll_seconds,
        )
        services = Services(
            settings=settings,
            pool=pool,
            policy=policy,
            client=client,
            chat=chat,
            channel_id=channel_id,
            incidents=incidents,
            outbox=outbox,
            prompter=prompter,
            clock=clock,
        )
        if run_workers:
            workers.append(asyncio.create_task(outbox.run_forever(), name="outbox"))
            workers.append(asyncio.create_task(prompter.run_forever(), name="prompter"))
        yield services
    finally:
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await pool.close()
