"""SQL for email when Slack is down: the shared Slack health row, cached emails, email items."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.core import guard
from bot.core.models import Member
from bot.store import Conn

EMAIL_CHANNEL = "email"


@dataclass(frozen=True)
class SlackHealth:
    failing_since: datetime | None
    down_since: datetime | None


async def health(conn: Conn, *, lock: bool = False) -> SlackHealth:
    row = await conn.fetchrow(
        "SELECT failing_since, down_since FROM slack_health" + (" FOR UPDATE" if lock else "")
    )
    assert row is not None  # the migration inserts it
    return SlackHealth(row["failing_since"], row["down_since"])


async def post_failed(conn: Conn, *, now: datetime, error: str) -> None:
    """A Slack post failed: the failures started now unless they had started already."""
    await conn.execute(
        "UPDATE slack_health SET failing_since = coalesce(failing_since, $1), last_error = $2",
        now,
        guard.redact(error).text[:500],
    )


async def post_succeeded(conn: Conn) -> datetime | bool | None:
    """A Slack post went through: no failures any more, no outage.

    Returns False if nothing was failing (the usual case: no write at all), else the outage's
    start (None if the failures had not lasted long enough to be one).
    """
    row = await conn.fetchrow(
        """UPDATE slack_health h SET failing_since = NULL, down_since = NULL, last_error = NULL
           FROM (SELECT down_since FROM slack_health FOR UPDATE) old
           WHERE h.failing_since IS NOT NULL OR h.down_since IS NOT NULL
           RETURNING old.down_since"""
    )
    if row is None:
        return False
    since: datetime | None = row["down_since"]
    return since


async def mark_down(conn: Conn, *, now: datetime, after: timedelta) -> datetime | None:
    """Declare the outage if the failures have lasted `after`; its start, once (else None)."""
    since: datetime | None = await conn.fetchval(
        """UPDATE slack_health SET down_since = failing_since
           WHERE down_since IS NULL AND failing_since <= $1::timestamptz - $2::interval
           RETURNING down_since""",
        now,
        after,
    )
    return since


async def open_incidents_noticed(
    conn: Conn, *, kind: str, since: datetime, noticed: bool = True
) -> list[int]:
    """Open incidents whose timeline has (`noticed`) or lacks a `kind` entry for the outage
    that began `since` (its `data.since`)."""
    rows = await conn.fetch(
        """SELECT i.id FROM incidents i
           WHERE i.resolved_at IS NULL AND $3 = EXISTS (
               SELECT 1 FROM timeline t WHERE t.incident_id = i.id AND t.kind = $1
                 AND t.data ->> 'since' = $2)
           ORDER BY i.id""",
        kind,
        since.isoformat(),
        noticed,
    )
    return [r["id"] for r in rows]


async def enqueue_email(conn: Conn, *, incident_id: int, timeline_id: int, kind: str) -> None:
    """Email one timeline entry (idempotent: one email per entry, whoever queues it)."""
    await conn.execute(
        """INSERT INTO outbox (incident_id, kind, dedupe_key, timeline_id, channel)
           VALUES ($1, $2, $3, $4, 'email') ON CONFLICT (dedupe_key) DO NOTHING""",
        incident_id,
        kind,
        f"inc{incident_id}:email:{timeline_id}",
        timeline_id,
    )


async def enqueue_unposted(conn: Conn, *, kind: str, reply_kind: str, since: datetime) -> int:
    """Email every key event the Slack outbox has not posted: still queued, or given up on
    since `since` (Slack refusing everything ends in give-ups). Returns how many were queued."""
    status = await conn.execute(
        """INSERT INTO outbox (incident_id, kind, dedupe_key, timeline_id, channel)
           SELECT o.incident_id, $1, 'inc' || o.incident_id || ':email:' || o.timeline_id,
                  o.timeline_id, 'email'
           FROM outbox o
           WHERE o.channel = 'slack' AND o.kind = $2 AND o.timeline_id IS NOT NULL
             AND (o.done_at IS NULL OR (o.failed AND o.done_at >= $3))
           ORDER BY o.id
           ON CONFLICT (dedupe_key) DO NOTHING""",
        kind,
        reply_kind,
        since,
    )
    return int(status.split()[-1])


async def people(conn: Conn, user_ids: list[str]) -> dict[str, Member]:
    rows = await conn.fetch(
        "SELECT user_id, email, name FROM user_emails WHERE user_id = ANY($1)", user_ids
    )
    return {r["user_id"]: Member(r["user_id"], r["email"], r["name"]) for r in rows}


async def uncached_role_holders(conn: Conn, *, stale_before: datetime, limit: int) -> list[str]:
    """Role holders of open incidents whose email is not cached (or was cached long ago)."""
    rows = await conn.fetch(
        """SELECT DISTINCT r.user_id FROM incident_roles r
           JOIN incidents i ON i.id = r.incident_id AND i.resolved_at IS NULL
           LEFT JOIN user_emails e ON e.user_id = r.user_id
           WHERE e.user_id IS NULL OR e.fetched_at < $1
           ORDER BY r.user_id LIMIT $2""",
        stale_before,
        limit,
    )
    return [r["user_id"] for r in rows]


async def remember(conn: Conn, person: Member, *, now: datetime) -> None:
    await conn.execute(
        """INSERT INTO user_emails (user_id, email, name, fetched_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (user_id) DO UPDATE
           SET email = EXCLUDED.email, name = EXCLUDED.name, fetched_at = EXCLUDED.fetched_at""",
        person.user_id,
        person.email,
        person.name,
        now,
    )
