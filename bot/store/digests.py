"""SQL for the thread digest: segments (one Slack message each) and the entries they show."""

from __future__ import annotations

from dataclasses import dataclass

from bot.store import Conn


@dataclass(frozen=True)
class Segment:
    incident_id: int
    first_seq: int
    last_seq: int
    ts: str
    closed: bool


_SEGMENT = "incident_id, first_seq, last_seq, ts, closed"


async def open_segment(conn: Conn, incident_id: int) -> Segment | None:
    row = await conn.fetchrow(
        f"SELECT {_SEGMENT} FROM thread_digests WHERE incident_id = $1 AND NOT closed",
        incident_id,
    )
    return Segment(**dict(row)) if row else None


async def covering(conn: Conn, incident_id: int, seqs: list[int]) -> list[Segment]:
    """The segments whose messages show any of `seqs` (to re-render after a redaction)."""
    rows = await conn.fetch(
        f"""SELECT {_SEGMENT} FROM thread_digests d
            WHERE incident_id = $1
              AND EXISTS (SELECT 1 FROM unnest($2::int[]) s WHERE s BETWEEN d.first_seq
                                                                      AND d.last_seq)
            ORDER BY first_seq""",
        incident_id,
        seqs,
    )
    return [Segment(**dict(r)) for r in rows]


async def save(conn: Conn, *, incident_id: int, first_seq: int, last_seq: int, ts: str) -> str:
    """Remember a segment's message, or how far it now reaches (never backwards). Returns the
    segment's message: the first one saved, if another worker posted one before us."""
    kept: str = await conn.fetchval(
        """INSERT INTO thread_digests (incident_id, first_seq, last_seq, ts)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (incident_id, first_seq) DO UPDATE
           SET last_seq = GREATEST(thread_digests.last_seq, EXCLUDED.last_seq)
           RETURNING ts""",
        incident_id,
        first_seq,
        last_seq,
        ts,
    )
    return kept


async def forget(conn: Conn, incident_id: int, first_seq: int) -> None:
    """The segment's message is gone from Slack (someone deleted it)."""
    await conn.execute(
        "DELETE FROM thread_digests WHERE incident_id = $1 AND first_seq = $2",
        incident_id,
        first_seq,
    )


async def close(conn: Conn, incident_id: int) -> None:
    """A key event was posted below the open segment: the next chatter starts a new one."""
    await conn.execute(
        "UPDATE thread_digests SET closed = true WHERE incident_id = $1 AND NOT closed",
        incident_id,
    )


async def next_reply_seq(conn: Conn, incident_id: int, after: int) -> int | None:
    """The seq of the next key event still waiting to be posted after entry `after`."""
    seq: int | None = await conn.fetchval(
        """SELECT min(t.seq) FROM outbox o JOIN timeline t ON t.id = o.timeline_id
           WHERE o.incident_id = $1 AND o.channel = 'slack' AND o.kind = 'reply'
             AND o.done_at IS NULL AND t.seq > $2""",
        incident_id,
        after,
    )
    return seq
