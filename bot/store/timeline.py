"""SQL for the timeline (hash-chained entries per incident)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from bot.core.models import TimelineEntry
from bot.store import Conn

COLUMNS = """id, incident_id, seq, kind, actor, text, data, occurred_at, content_hash,
    prev_hash, hash, redacted_at"""


def entry(row: asyncpg.Record) -> TimelineEntry:
    return TimelineEntry(**dict(row))


async def head(conn: Conn, incident_id: int) -> tuple[int, str]:
    """(count, hash of the last entry) as the incident row records them; lock the row first."""
    row = await conn.fetchrow(
        "SELECT timeline_count, timeline_head FROM incidents WHERE id = $1 FOR UPDATE",
        incident_id,
    )
    if row is None:
        raise LookupError(incident_id)
    return row["timeline_count"], row["timeline_head"]


async def append(
    conn: Conn,
    *,
    incident_id: int,
    seq: int,
    kind: str,
    actor: str,
    text: str,
    data: dict[str, Any],
    occurred_at: datetime,
    content_hash: str,
    prev_hash: str,
    hash: str,
) -> TimelineEntry:
    row = await conn.fetchrow(
        f"""INSERT INTO timeline (incident_id, seq, kind, actor, text, data, occurred_at,
                                 content_hash, prev_hash, hash)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}""",
        incident_id,
        seq,
        kind,
        actor,
        text,
        data,
        occurred_at,
        content_hash,
        prev_hash,
        hash,
    )
    await conn.execute(
        "UPDATE incidents SET timeline_count = $2, timeline_head = $3 WHERE id = $1",
        incident_id,
        seq,
        hash,
    )
    assert row is not None
    return entry(row)


async def entries(conn: Conn, incident_id: int) -> list[TimelineEntry]:
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM timeline WHERE incident_id = $1 ORDER BY seq", incident_id
    )
    return [entry(r) for r in rows]


async def since(conn: Conn, incident_id: int, *, at: datetime) -> list[TimelineEntry]:
    """The incident's entries that occurred at or after `at`, in order."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM timeline WHERE incident_id = $1 AND occurred_at >= $2 ORDER BY seq",
        incident_id,
        at,
    )
    return [entry(r) for r in rows]


async def of_kinds(
    conn: Conn,
    incident_id: int,
    kinds: Sequence[str] | frozenset[str],
    *,
    first: int = 1,
    before: int | None = None,
) -> list[TimelineEntry]:
    """The incident's entries of the given kinds, in order; `first` <= seq < `before`."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM timeline WHERE incident_id = $1 AND kind = ANY($2::text[])"
        " AND seq >= $3 AND ($4::int IS NULL OR seq < $4) ORDER BY seq",
        incident_id,
        sorted(kinds),
        first,
        before,
    )
    return [entry(r) for r in rows]


async def last_of_kind(conn: Conn, incident_id: int, kind: str) -> TimelineEntry | None:
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM timeline WHERE incident_id = $1 AND kind = $2"
        " ORDER BY seq DESC LIMIT 1",
        incident_id,
        kind,
    )
    return entry(row) if row else None


async def get(conn: Conn, entry_id: int) -> TimelineEntry | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM timeline WHERE id = $1", entry_id)
    return entry(row) if row else None


async def redact(conn: Conn, entry_ids: list[int], *, text: str, at: datetime) -> None:
    """Blank entries' content, keeping their hashes (see `timeline.redact`)."""
    await conn.execute(
        "UPDATE timeline SET text = $2, data = '{}'::jsonb, redacted_at = $3"
        " WHERE id = ANY($1::bigint[]) AND redacted_at IS NULL",
        entry_ids,
        text,
        at,
    )


async def entries_of_kinds(
    conn: Conn, incident_ids: list[int], kinds: list[str]
) -> dict[int, list[TimelineEntry]]:
    """The entries of these kinds of each incident, in order (every incident has a list)."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM timeline WHERE incident_id = ANY($1::bigint[])"
        " AND kind = ANY($2::text[]) ORDER BY incident_id, seq",
        incident_ids,
        kinds,
    )
    out: dict[int, list[TimelineEntry]] = {i: [] for i in incident_ids}
    for row in rows:
        out[row["incident_id"]].append(entry(row))
    return out


async def recorded_head(conn: Conn, incident_id: int) -> tuple[int, str] | None:
    """(count, head hash) as the incident row records them, without locking (for readers)."""
    row = await conn.fetchrow(
        "SELECT timeline_count, timeline_head FROM incidents WHERE id = $1", incident_id
    )
    return None if row is None else (row["timeline_count"], row["timeline_head"])
