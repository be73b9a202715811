"""SQL for the incident-events stream: per-incident high-water marks over the timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.core import guard
from bot.core.models import TimelineEntry
from bot.store import Conn
from bot.store import timeline as timeline_sql


@dataclass(frozen=True)
class Claim:
    incident_id: int
    published_seq: int
    claim_token: str
    attempts: int


async def claim(conn: Conn, *, now: datetime, lease: timedelta, limit: int) -> list[Claim]:
    """Lease incidents whose timeline has entries beyond their mark (creating missing marks)."""
    await conn.execute(
        """INSERT INTO incident_event_marks (incident_id)
           SELECT i.id FROM incidents i
           WHERE i.timeline_count > 0
             AND NOT EXISTS (SELECT 1 FROM incident_event_marks m WHERE m.incident_id = i.id)
           ON CONFLICT (incident_id) DO NOTHING"""
    )
    rows = await conn.fetch(
        """UPDATE incident_event_marks
           SET claimed_until = $1::timestamptz + $2::interval,
               claim_token = md5(random()::text || clock_timestamp()::text)
           WHERE incident_id IN (
               SELECT m.incident_id FROM incident_event_marks m
               JOIN incidents i ON i.id = m.incident_id
               WHERE i.timeline_count > m.published_seq AND m.next_attempt_at <= $1
                 AND (m.claimed_until IS NULL OR m.claimed_until < $1)
               ORDER BY m.incident_id LIMIT $3 FOR UPDATE OF m SKIP LOCKED)
           RETURNING incident_id, published_seq, claim_token, attempts""",
        now,
        lease,
        limit,
    )
    return sorted((Claim(**dict(r)) for r in rows), key=lambda c: c.incident_id)


async def entries_after(
    conn: Conn, incident_id: int, seq: int, *, limit: int
) -> list[TimelineEntry]:
    rows = await conn.fetch(
        f"""SELECT {timeline_sql.COLUMNS} FROM timeline
            WHERE incident_id = $1 AND seq > $2 ORDER BY seq LIMIT $3""",
        incident_id,
        seq,
        limit,
    )
    return [timeline_sql.entry(r) for r in rows]


async def renew(conn: Conn, c: Claim, *, now: datetime, lease: timedelta) -> bool:
    renewed = await conn.fetchval(
        """UPDATE incident_event_marks SET claimed_until = $3::timestamptz + $4::interval
           WHERE incident_id = $1 AND claim_token = $2 RETURNING true""",
        c.incident_id,
        c.claim_token,
        now,
        lease,
    )
    return bool(renewed)


async def advance(conn: Conn, c: Claim, *, seq: int, now: datetime) -> None:
    """Everything up to `seq` was acknowledged by the broker; release the lease."""
    await conn.execute(
        """UPDATE incident_event_marks
           SET published_seq = GREATEST(published_seq, $2), published_at = $3,
               attempts = CASE WHEN claim_token = $4 THEN 0 ELSE attempts END,
               last_error = CASE WHEN claim_token = $4 THEN NULL ELSE last_error END,
               claimed_until = CASE WHEN claim_token = $4 THEN NULL ELSE claimed_until END
           WHERE incident_id = $1""",
        c.incident_id,
        seq,
        now,
        c.claim_token,
    )


async def retry_later(conn: Conn, c: Claim, *, at: datetime, error: str) -> None:
    await conn.execute(
        """UPDATE incident_event_marks
           SET attempts = attempts + 1, next_attempt_at = $3, last_error = $4,
               claimed_until = NULL
           WHERE incident_id = $1 AND claim_token = $2""",
        c.incident_id,
        c.claim_token,
        at,
        guard.redact(error).text[:500],  # an exception's words may quote an entry
    )


async def backlog(conn: Conn) -> tuple[int, int]:
    """(entries not yet published, incidents they belong to)."""
    row = await conn.fetchrow(
        """SELECT COALESCE(sum(i.timeline_count - COALESCE(m.published_seq, 0)), 0)::bigint AS n,
                  count(*) AS incidents
           FROM incidents i LEFT JOIN incident_event_marks m ON m.incident_id = i.id
           WHERE i.timeline_count > COALESCE(m.published_seq, 0)"""
    )
    assert row is not None
    return int(row["n"]), int(row["incidents"])


async def next_due(conn: Conn) -> datetime | None:
    due: datetime | None = await conn.fetchval(
        """SELECT NULLIF(min(GREATEST(m.next_attempt_at,
                                       COALESCE(m.claimed_until, m.next_attempt_at))),
                         '-infinity')
           FROM incident_event_marks m JOIN incidents i ON i.id = m.incident_id
           WHERE i.timeline_count > m.published_seq"""
    )
    return due


async def marks(conn: Conn) -> dict[int, int]:
    rows = await conn.fetch("SELECT incident_id, published_seq FROM incident_event_marks")
    return {r["incident_id"]: r["published_seq"] for r in rows}
