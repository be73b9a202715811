"""SQL for "Which incident?" questions: the original command, kept server-side by id."""

from __future__ import annotations

from datetime import datetime

from bot.store import Conn


async def insert(conn: Conn, *, user_id: str, command: str, now: datetime) -> int:
    choice_id: int = await conn.fetchval(
        "INSERT INTO incident_choices (user_id, command, created_at) VALUES ($1, $2, $3)"
        " RETURNING id",
        user_id,
        command,
        now,
    )
    return choice_id


async def get(conn: Conn, choice_id: int, *, user_id: str) -> str | None:
    """The command behind a choice, for the person who was asked (None if not theirs)."""
    command: str | None = await conn.fetchval(
        "SELECT command FROM incident_choices WHERE id = $1 AND user_id = $2",
        choice_id,
        user_id,
    )
    return command


async def prune(conn: Conn, *, before: datetime) -> int:
    """Forget questions asked before `before` (nobody answers a day-old one); returns how many."""
    deleted: int = await conn.fetchval(
        """WITH gone AS (DELETE FROM incident_choices WHERE created_at < $1 RETURNING 1)
           SELECT count(*) FROM gone""",
        before,
    )
    return deleted
