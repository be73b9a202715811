"""The asyncpg pool, migrations (advisory-locked), and the embedded PostgreSQL for laptops."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg

from bot.core.logs import get_logger
from bot.store import Conn

log = get_logger(__name__)

MIGRATIONS_LOCK = 0x1C_B0_7_0001  # pg_advisory_lock key shared by every replica


def _migration_files() -> list[tuple[str, str]]:
    folder = resources.files("bot.store") / "migrations"
    files = sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )
    return [(name.removesuffix(".sql"), sql) for name, sql in files]


async def _init_connection(conn: Conn) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, command_timeout=30
    )
    return pool


async def migrate(conn: Conn) -> list[str]:
    """Apply every migration not yet applied; safe to call from several replicas at once."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATIONS_LOCK)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version text PRIMARY KEY, checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {
            r["version"]: r["checksum"]
            for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        for version, sql in _migration_files():
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if version in done:
                if done[version] != checksum:
                    log.warning("migration.changed_after_apply", version=version)
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                    version,
                    checksum,
                )
            applied_now.append(version)
            log.info("migration.applied", version=version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATIONS_LOCK)
    return applied_now


async def pending_migrations(conn: Conn) -> list[str]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    done: set[str] = set()
    if exists:
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    return [version for version, _ in _migration_files() if version not in done]


class _PgserverAtDebug(logging.Filter):
    """pgserver logs every initdb/pg_ctl run, with its output, at INFO: that is debugging
    detail, shown only when LOG_LEVEL=DEBUG. Its warnings and errors keep their level."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def _quiet_pgserver() -> None:
    pgserver_log = logging.getLogger("pgserver")
    if not any(isinstance(f, _PgserverAtDebug) for f in pgserver_log.filters):
        pgserver_log.addFilter(_PgserverAtDebug())


class EmbeddedPostgres:
    """PostgreSQL from pgserver, data under the user's data directory, stopped on exit.

    pgserver shares one server between every process that opens the same data directory and
    stops it when the last one lets go, so `icbot shell` and `icbot serve` can run side by side.
    """

    def __init__(self, data_dir: Path, database: str = "icbot") -> None:
        self.pgdata = data_dir / "pgdata"
        self.database = database
        self._server: Any = None

    async def start(self) -> str:
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        _quiet_pgserver()
        self._server = await asyncio.to_thread(self._start_sync)
        admin_uri: str = self._server.get_uri()
        conn = await asyncpg.connect(admin_uri)
        try:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", self.database
            )
            if not exists:
                await conn.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await conn.close()
        uri: str = self._server.get_uri(self.database)
        return uri

    def _start_sync(self) -> Any:
        import warnings

        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
            warnings.simplefilter("ignore")
            from pgserver import get_server  # type: ignore[attr-defined]

            return get_server(self.pgdata, cleanup_mode="stop")

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await asyncio.to_thread(server.cleanup)


@asynccontextmanager
async def database(dsn: str | None, data_dir: Path) -> AsyncIterator[str]:
    """Yield a DSN: the configured one, or an embedded server's for as long as the block runs."""
    if dsn:
        yield dsn
        return
    embedded = EmbeddedPostgres(data_dir)
    uri = await embedded.start()
    try:
        yield uri
    finally:
        await embedded.stop()


async def wrote(conn: Conn) -> bool:
    """Whether the open transaction has written anything (it holds a transaction id)."""
    found: bool = await conn.fetchval("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")
    return found
