"""Migrations: tracked, applied once, safe from several replicas at once."""

from __future__ import annotations

import asyncio

import asyncpg

from bot.store import db


async def test_migrations_from_three_replicas_at_once_apply_each_once(empty_dsn: str) -> None:
    conns = [await asyncpg.connect(empty_dsn) for _ in range(3)]
    try:
        results = await asyncio.gather(*(db.migrate(c) for c in conns))
        applied = [v for r in results for v in r]
        expected = [version for version, _ in db._migration_files()]
        assert sorted(applied) == sorted(expected)  # each applied by exactly one replica
        rows = await conns[0].fetch("SELECT version FROM schema_migrations")
        assert sorted(r["version"] for r in rows) == sorted(expected)
        assert await db.pending_migrations(conns[0]) == []
    finally:
        for c in conns:
            await c.close()


async def test_migrate_twice_applies_nothing_the_second_time(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await db.migrate(conn)
        assert await db.migrate(conn) == []
    finally:
        await conn.close()


async def test_pending_migrations_on_an_empty_database_lists_them_all(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await db.pending_migrations(conn) == [v for v, _ in db._migration_files()]
    finally:
        await conn.close()
