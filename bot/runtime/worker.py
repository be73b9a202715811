"""`icbot worker`: the background loops alone, in a process of their own.

The loops (outbox, prompts, PagerDuty queue, incident events, alert intake) are the ones
``icbot serve`` runs beside the Slack app by default; ``icbot serve --no-worker`` leaves them
out, and one ``icbot worker`` process (or several: each loop leases its rows) delivers for
every web replica. Work reaches the worker through the database: the loops poll it, so
nothing is lost while no worker runs, only delayed.

Shutdown on SIGTERM (or SIGINT): deliver what is queued, best effort for a few seconds (the
rest is posted by the next worker, exactly once), then stop the loops and close the pool.
"""

from __future__ import annotations

from bot.core.logs import get_logger
from bot.core.settings import Settings
from bot.runtime.secrets import DEFAULT_INTERVAL, open_secrets
from bot.runtime.serve import (
    DEFAULT_GRACE,
    OUTBOX_FLUSH,
    Stop,
    background,
    dsn_setting,
    flush_outboxes,
    follow_rotation,
)

WORKER_SECRETS = ("slack_bot_token",)


async def run_worker(
    settings: Settings,
    *,
    grace: float = DEFAULT_GRACE,
    secrets_interval: float = DEFAULT_INTERVAL,
) -> None:
    """`icbot worker`: secrets, database, services with their loops; no HTTP listener."""
    from bot.runtime.services import open_services
    from bot.store.db import database

    worker_log = get_logger("icbot.worker")
    stop = Stop().install()
    async with open_secrets(settings, required=WORKER_SECRETS, interval=secrets_interval) as live:
        assert settings.slack_bot_token is not None  # required above
        token = settings.slack_bot_token.get_secret_value()
        async with (
            database(dsn_setting(settings), settings.data_dir) as dsn,
            open_services(settings, dsn=dsn, token=token, run_workers=True) as services,
        ):
            follow_rotation(live, services)
            async with background(live.run_forever()):
                worker_log.info("worker.started", channel=services.channel_id)
                await stop.wait()
                worker_log.info("worker.stopping")
                await flush_outboxes(services, min(grace, OUTBOX_FLUSH))
        worker_log.info("worker.stopped")
