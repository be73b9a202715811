"""SQL for the Statuspage incident behind an incident's public updates."""

from __future__ import annotations

from datetime import datetime

from bot.store import Conn


async def page_incident(conn: Conn, incident_id: int, page_id: str) -> str | None:
    value = await conn.fetchval(
        "SELECT page_incident_id FROM statuspage_incidents WHERE incident_id = $1 AND page_id = $2",
        incident_id,
        page_id,
    )
    return str(value) if value is not None else None


async def remember(
    conn: Conn, *, incident_id: int, page_id: str, page_incident_id: str, now: datetime
) -> None:
    """Keep the first one found or created (a later write for the same incident is a no-op)."""
    await conn.execute(
        """INSERT INTO statuspage_incidents (incident_id, page_id, page_incident_id, created_at)
           VALUES ($1, $2, $3, $4) ON CONFLICT (incident_id, page_id) DO NOTHING""",
        incident_id,
        page_id,
        page_incident_id,
        now,
    )
