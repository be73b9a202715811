"""SQL for action items' state (ticked, the Jira issue filed) and the `jira` outbox channel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.core import guard
from bot.store import Conn

CHANNEL = "jira"


@dataclass(frozen=True)
class ItemState:
    incident_id: int
    item_seq: int
    done_at: datetime | None
    done_by: str | None
    jira_key: str | None
    jira_url: str | None


_COLUMNS = "incident_id, item_seq, done_at, done_by, jira_key, jira_url"


async def enqueue(
    conn: Conn, *, incident_id: int, kind: str, key: str, payload: dict[str, Any]
) -> None:
    """A Jira write, queued with the change that causes it (`key` makes it idempotent)."""
    await conn.execute(
        """INSERT INTO outbox (incident_id, kind, dedupe_key, channel, payload)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (dedupe_key) DO NOTHING""",
        incident_id,
        kind,
        key,
        CHANNEL,
        guard.redact_value(payload)[0],  # Jira gets no card number or secret either
    )


async def get(conn: Conn, incident_id: int, item_seq: int) -> ItemState | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM action_items WHERE incident_id = $1 AND item_seq = $2",
        incident_id,
        item_seq,
    )
    return ItemState(**dict(row)) if row is not None else None


async def of_incident(conn: Conn, incident_id: int) -> list[ItemState]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM action_items WHERE incident_id = $1 ORDER BY item_seq",
        incident_id,
    )
    return [ItemState(**dict(r)) for r in rows]


async def by_jira_key(conn: Conn, jira_key: str) -> ItemState | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM action_items WHERE jira_key = $1", jira_key)
    return ItemState(**dict(row)) if row is not None else None


async def link(conn: Conn, *, incident_id: int, item_seq: int, key: str, url: str) -> bool:
    """Remember the Jira issue of an item; False if it was linked already (a repeat)."""
    linked = await conn.fetchval(
        """INSERT INTO action_items (incident_id, item_seq, jira_key, jira_url)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (incident_id, item_seq) DO UPDATE
               SET jira_key = excluded.jira_key, jira_url = excluded.jira_url
               WHERE action_items.jira_key IS NULL
           RETURNING true""",
        incident_id,
        item_seq,
        key,
        url,
    )
    return bool(linked)


async def tick(conn: Conn, *, incident_id: int, item_seq: int, by: str, now: datetime) -> bool:
    """Mark the item done; False if it was done already (the second tick is a no-op)."""
    ticked = await conn.fetchval(
        """INSERT INTO action_items (incident_id, item_seq, done_at, done_by)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (incident_id, item_seq) DO UPDATE
               SET done_at = excluded.done_at, done_by = excluded.done_by
               WHERE action_items.done_at IS NULL
           RETURNING true""",
        incident_id,
        item_seq,
        now,
        by,
    )
    return bool(ticked)
