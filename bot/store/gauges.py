"""SQL for the gauges of shared state (`bot.core.metrics.refresh_from_database`)."""

from __future__ import annotations

from bot.store import Conn

# One round trip: every gauge of shared state. `now()` is the database's clock, as the timers use.
_STATE_SQL = """
SELECT 'open' AS series, severity AS label, count(*)::float8 AS value
  FROM incidents WHERE resolved_at IS NULL GROUP BY severity
UNION ALL
SELECT 'overdue', severity, count(*)::float8
  FROM incidents WHERE resolved_at IS NULL AND unanswered > 0 GROUP BY severity
UNION ALL
SELECT 'due', severity, count(*)::float8
  FROM incidents
 WHERE resolved_at IS NULL AND next_prompt_at IS NOT NULL AND next_prompt_at <= now()
 GROUP BY severity
UNION ALL
SELECT 'depth', channel, count(*)::float8 FROM outbox WHERE done_at IS NULL GROUP BY channel
UNION ALL
SELECT 'oldest', channel, COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8
  FROM outbox WHERE done_at IS NULL GROUP BY channel
"""


async def shared_state(conn: Conn) -> dict[tuple[str, str], float]:
    """{(series, label): value}: open, overdue and due incidents by severity; outbox depth
    and oldest item's age (seconds) by channel."""
    rows = await conn.fetch(_STATE_SQL)
    return {(str(r["series"]), str(r["label"])): float(r["value"]) for r in rows}
