"""SQL for the scribe: the Slack messages it knows (captured or pinned) and their entries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.core.models import TimelineEntry
from bot.store import Conn
from bot.store import timeline as timeline_sql


@dataclass(frozen=True)
class Capture:
    channel_id: str
    message_ts: str
    incident_id: int
    author: str
    captured: bool
    pinned_by: list[str]
    deleted_at: datetime | None


async def get(
    conn: Conn, channel_id: str, message_ts: str, *, lock: bool = False
) -> Capture | None:
    row = await conn.fetchrow(
        "SELECT channel_id, message_ts, incident_id, author, captured, pinned_by, deleted_at"
        " FROM captures WHERE channel_id = $1 AND message_ts = $2"
        + (" FOR UPDATE" if lock else ""),
        channel_id,
        message_ts,
    )
    if row is None:
        return None
    return Capture(**{**dict(row), "pinned_by": list(row["pinned_by"])})


async def insert(
    conn: Conn,
    *,
    channel_id: str,
    message_ts: str,
    incident_id: int,
    author: str,
    captured: bool,
    deleted_at: datetime | None = None,
) -> bool:
    """Remember a message; False if it was already known (a repeat, or seen deleted)."""
    fresh = await conn.fetchval(
        """INSERT INTO captures (channel_id, message_ts, incident_id, author, captured, deleted_at)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (channel_id, message_ts) DO NOTHING RETURNING true""",
        channel_id,
        message_ts,
        incident_id,
        author,
        captured,
        deleted_at,
    )
    return bool(fresh)


async def set_pinned_by(conn: Conn, channel_id: str, message_ts: str, *, users: list[str]) -> None:
    await conn.execute(
        "UPDATE captures SET pinned_by = $3 WHERE channel_id = $1 AND message_ts = $2",
        channel_id,
        message_ts,
        users,
    )


async def mark_deleted(conn: Conn, channel_id: str, message_ts: str, *, at: datetime) -> None:
    await conn.execute(
        "UPDATE captures SET deleted_at = $3 WHERE channel_id = $1 AND message_ts = $2",
        channel_id,
        message_ts,
        at,
    )


async def incident_for_thread(conn: Conn, channel_id: str, thread_ts: str) -> int | None:
    """The incident whose thread (card) is `thread_ts` in that channel."""
    incident_id: int | None = await conn.fetchval(
        "SELECT id FROM incidents WHERE channel_id = $1 AND thread_ts = $2",
        channel_id,
        thread_ts,
    )
    return incident_id


async def incident_for_bot_post(conn: Conn, channel_id: str, ts: str) -> int | None:
    """The incident of a message the bot posted (its card, or a timeline reply)."""
    incident_id: int | None = await conn.fetchval(
        """SELECT i.id FROM incidents i
           WHERE i.channel_id = $1 AND (i.thread_ts = $2 OR EXISTS (
               SELECT 1 FROM outbox o WHERE o.incident_id = i.id AND o.channel = 'slack'
                                        AND o.posted_ts = $2))
           ORDER BY i.id LIMIT 1""",
        channel_id,
        ts,
    )
    return incident_id


async def open_incidents(conn: Conn, channel_id: str) -> list[int]:
    rows = await conn.fetch(
        "SELECT id FROM incidents WHERE channel_id = $1 AND resolved_at IS NULL ORDER BY id",
        channel_id,
    )
    return [r["id"] for r in rows]


async def content_entries(
    conn: Conn, incident_id: int, message_ts: str, *, kinds: Sequence[str]
) -> list[TimelineEntry]:
    """The unredacted entries that carry this message's words, oldest first."""
    ids = await conn.fetch(
        """SELECT id FROM timeline
           WHERE incident_id = $1 AND kind = ANY($3::text[]) AND data->>'ts' = $2
             AND data ? 'text' AND redacted_at IS NULL
           ORDER BY seq""",
        incident_id,
        message_ts,
        list(kinds),
    )
    entries = [await timeline_sql.get(conn, r["id"]) for r in ids]
    return [e for e in entries if e is not None]
