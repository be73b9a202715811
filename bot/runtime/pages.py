"""`icbot web`: only the incident pages, read-only, on the local (or configured) database.

For a laptop: `icbot shell` records incidents in the embedded PostgreSQL, and `icbot web`
serves their pages on PORT, where the shell's links (PUBLIC_URL's default,
http://localhost:PORT) point. Nothing here writes: no migrations, read-only transactions.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from bot.core.errors import ConfigError
from bot.core.logs import get_logger
from bot.core.models import utcnow
from bot.core.settings import Settings
from bot.domain.policy import load_severity_policy
from bot.pages import routes
from bot.store import db

log = get_logger("icbot.web")


async def serve_pages(
    settings: Settings,
    *,
    host: str,
    port: int,
    links_for: list[int],
    say: Callable[[str], None],
) -> None:
    """Serve until SIGINT/SIGTERM; `say` each of `links_for`'s page links when ready."""
    from bot.runtime.directory import open_directory
    from bot.runtime.serve import Stop, start_http
    from bot.runtime.web import request_context

    stop = Stop().install()
    policy = load_severity_policy(settings.playbooks_dir)
    dsn_setting = settings.database_url.get_secret_value() if settings.database_url else None
    async with db.database(dsn_setting, settings.data_dir) as dsn:
        pool = await db.create_pool(dsn, min_size=1, max_size=4)
        try:
            async with pool.acquire() as conn:
                pending = await db.pending_migrations(conn)
            if pending:
                raise ConfigError(
                    "the database has no incident tables yet (migrations pending:"
                    f" {', '.join(pending)}); run `icbot shell` or `icbot migrate` first"
                )
            async with open_directory(settings) as directory:
                site = routes.site(
                    settings, pool=pool, policy=policy, clock=utcnow, directory=directory
                )
                app = web.Application(middlewares=[request_context])
                routes.add_routes(app, site)
                runner = await start_http(app, port=port, host=host)
                try:
                    say(f"icbot web: incident pages (read-only) on http://{host}:{port}/incidents/")
                    for number in links_for:
                        say(site.linker.url(number, now=utcnow()))
                    log.info("web.started", host=host, port=port)
                    await stop.wait()
                finally:
                    await runner.cleanup()
        finally:
            await pool.close()
