"""SQL for the Slack outbox: queued posts, claimed with leases, strictly ordered per incident."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from bot.core import guard
from bot.store import Conn


class OutboxKind(StrEnum):
    """What a Slack outbox row asks for (its ``kind`` column; PagerDuty rows: ``PagerKind``)."""

    CARD = "card"  # post or update the incident's card (the thread's root)
    REPLY = "reply"  # a timeline entry as a reply of its own
    DIGEST = "digest"  # a timeline entry as a line of the thread's digest
    REFRESH = "refresh"  # re-render a reply already posted (an approval card) with its state now
    FILE_DELETE = "file_delete"  # delete a file the bot shared in the thread


@dataclass(frozen=True)
class OutboxItem:
    id: int
    incident_id: int
    kind: str
    dedupe_key: str
    timeline_id: int | None
    attempts: int
    claim_token: str
    channel: str = "slack"
    payload: dict[str, Any] = field(default_factory=dict)


async def enqueue_reply(
    conn: Conn,
    *,
    incident_id: int,
    timeline_id: int,
    seq: int,
    kind: OutboxKind = OutboxKind.REPLY,
) -> None:
    """Queue entry `seq` for the thread: a `reply` of its own, or a line of the `digest`."""
    await conn.execute(
        """INSERT INTO outbox (incident_id, kind, dedupe_key, timeline_id)
           VALUES ($1, $2, $3, $4) ON CONFLICT (dedupe_key) DO NOTHING""",
        incident_id,
        kind,
        f"inc{incident_id}:entry{seq}",
        timeline_id,
    )


async def pending_for(conn: Conn, incident_id: int, *, channel: str) -> int:
    """Items for `channel` (such as 'pagerduty') the incident still has to deliver."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM outbox WHERE incident_id = $1 AND channel = $2 AND done_at IS NULL",
        incident_id,
        channel,
    )
    return count


async def enqueue_card(conn: Conn, *, incident_id: int, version: int) -> None:
    await conn.execute(
        """INSERT INTO outbox (incident_id, kind, dedupe_key)
           VALUES ($1, $2, $3) ON CONFLICT (dedupe_key) DO NOTHING""",
        incident_id,
        OutboxKind.CARD,
        f"inc{incident_id}:card{version}",
    )


async def enqueue_refresh(conn: Conn, *, incident_id: int, timeline_id: int, version: str) -> None:
    """Re-render a reply already posted for `timeline_id` (an approval card) with its state now."""
    await conn.execute(
        """INSERT INTO outbox (incident_id, kind, dedupe_key, timeline_id)
           VALUES ($1, $2, $3, $4) ON CONFLICT (dedupe_key) DO NOTHING""",
        incident_id,
        OutboxKind.REFRESH,
        f"inc{incident_id}:refresh{timeline_id}:{version}",
        timeline_id,
    )


async def enqueue_file_delete(conn: Conn, *, incident_id: int, file_id: str) -> None:
    """Delete a file the bot shared in the incident's thread (a draft quoting deleted words)."""
    await conn.execute(
        """INSERT INTO outbox (incident_id, kind, dedupe_key, payload)
           VALUES ($1, $2, $3, $4) ON CONFLICT (dedupe_key) DO NOTHING""",
        incident_id,
        OutboxKind.FILE_DELETE,
        f"inc{incident_id}:filedel:{file_id}",
        {"file": file_id},
    )


async def later_refresh(conn: Conn, item: OutboxItem) -> bool:
    """Is another refresh of the same reply queued after this one (so this one can be skipped)?"""
    found = await conn.fetchval(
        """SELECT true FROM outbox
           WHERE incident_id = $1 AND kind = $4 AND timeline_id = $2 AND id > $3
             AND done_at IS NULL LIMIT 1""",
        item.incident_id,
        item.timeline_id,
        item.id,
        OutboxKind.REFRESH,
    )
    return bool(found)


async def posted_ts(conn: Conn, timeline_id: int) -> str | None:
    ts: str | None = await conn.fetchval(
        "SELECT posted_ts FROM outbox WHERE timeline_id = $1 AND kind = $2 AND done_at IS NOT NULL",
        timeline_id,
        OutboxKind.REPLY,
    )
    return ts


async def enqueue_pager(
    conn: Conn, *, incident_id: int, kind: str, key: str, payload: dict[str, Any]
) -> None:
    """A PagerDuty write, queued with the change that causes it (`key` makes it idempotent)."""
    await conn.execute(
        """INSERT INTO outbox (incident_id, kind, dedupe_key, channel, payload)
           VALUES ($1, $2, $3, 'pagerduty', $4) ON CONFLICT (dedupe_key) DO NOTHING""",
        incident_id,
        kind,
        key,
        guard.redact_value(payload)[0],  # PagerDuty gets no card number or secret either
    )


async def enqueue_channel(
    conn: Conn, *, channel: str, incident_id: int, kind: str, key: str, payload: dict[str, Any]
) -> None:
    """A write to another outside system (`channel`, e.g. 'grafana'), queued with the change
    that causes it; `key` makes it idempotent."""
    await conn.execute(
        """INSERT INTO outbox (incident_id, kind, dedupe_key, channel, payload)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (dedupe_key) DO NOTHING""",
        incident_id,
        kind,
        key,
        channel,
        guard.redact_value(payload)[0],  # no card number or secret leaves either
    )


async def claim(
    conn: Conn, *, now: datetime, lease: timedelta, limit: int, channel: str = "slack"
) -> list[OutboxItem]:
    """Lease the oldest unfinished item of each incident in `channel` (one per incident)."""
    rows = await conn.fetch(
        """WITH heads AS (
               -- the oldest unfinished item of each incident: one pass over the pending index
               SELECT DISTINCT ON (incident_id) id FROM outbox
               WHERE channel = $4 AND done_at IS NULL
               ORDER BY incident_id, id)
           UPDATE outbox SET claimed_until = $1 + $2::interval, attempts = attempts + 1,
                             claim_token = md5(random()::text || clock_timestamp()::text)
           WHERE id IN (
               SELECT o.id FROM outbox o JOIN heads h ON h.id = o.id
               WHERE o.next_attempt_at <= $1
                 AND (o.claimed_until IS NULL OR o.claimed_until < $1)
               ORDER BY o.id LIMIT $3 FOR UPDATE OF o SKIP LOCKED)
           RETURNING id, incident_id, kind, dedupe_key, timeline_id, attempts, claim_token,
                     channel, payload""",
        now,
        lease,
        limit,
        channel,
    )
    return sorted((OutboxItem(**dict(r)) for r in rows), key=lambda item: item.id)


async def renew(conn: Conn, item: OutboxItem, *, now: datetime, lease: timedelta) -> bool:
    """Extend our lease on `item`; False if it is no longer ours (or already done)."""
    renewed = await conn.fetchval(
        """UPDATE outbox SET claimed_until = $3::timestamptz + $4::interval
           WHERE id = $1 AND claim_token = $2 AND done_at IS NULL RETURNING true""",
        item.id,
        item.claim_token,
        now,
        lease,
    )
    return bool(renewed)


async def complete(conn: Conn, item_id: int, *, now: datetime, posted_ts: str | None) -> None:
    await conn.execute(
        "UPDATE outbox SET done_at = $2, posted_ts = $3, claimed_until = NULL, last_error = NULL"
        " WHERE id = $1",
        item_id,
        now,
        posted_ts,
    )


async def retry_later(conn: Conn, item_id: int, *, at: datetime, error: str) -> None:
    await conn.execute(
        "UPDATE outbox SET next_attempt_at = $2, claimed_until = NULL, last_error = $3"
        " WHERE id = $1",
        item_id,
        at,
        guard.redact(error).text[:500],  # an exception's words may quote a payload
    )


async def give_up(conn: Conn, item_id: int, *, now: datetime, error: str) -> None:
    await conn.execute(
        "UPDATE outbox SET done_at = $2, failed = true, claimed_until = NULL, last_error = $3"
        " WHERE id = $1",
        item_id,
        now,
        guard.redact(error).text[:500],  # an exception's words may quote a payload
    )


async def pending_count(conn: Conn, channel: str = "slack") -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM outbox WHERE done_at IS NULL AND channel = $1", channel
    )
    return count


async def next_due(conn: Conn, channel: str = "slack") -> datetime | None:
    due: datetime | None = await conn.fetchval(
        "SELECT min(greatest(next_attempt_at, coalesce(claimed_until, next_attempt_at)))"
        " FROM outbox WHERE done_at IS NULL AND channel = $1",
        channel,
    )
    return due
