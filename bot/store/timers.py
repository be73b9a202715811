"""SQL for status-prompt and escalation timers, and post-incident reminders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.store import Conn

_TIMER_FIELDS = {"next_prompt_at", "prompt_seq", "unanswered", "escalate_at", "escalated_at"}


async def set_timers(conn: Conn, incident_id: int, **fields: Any) -> None:
    """Change timer columns only (the card does not show them, so no card refresh)."""
    unknown = set(fields) - _TIMER_FIELDS
    if unknown:
        raise ValueError(f"not timer fields: {sorted(unknown)}")
    names = list(fields)
    assignments = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(names))
    await conn.execute(
        f"UPDATE incidents SET {assignments} WHERE id = $1",
        incident_id,
        *(fields[n] for n in names),
    )


async def claim_due_prompts(conn: Conn, *, now: datetime, limit: int) -> list[int]:
    """Lock open incidents whose prompt is due; other replicas skip them (SKIP LOCKED)."""
    rows = await conn.fetch(
        """SELECT id FROM incidents
           WHERE resolved_at IS NULL AND next_prompt_at IS NOT NULL AND next_prompt_at <= $1
           ORDER BY next_prompt_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
        now,
        limit,
    )
    return [r["id"] for r in rows]


async def claim_due_escalations(conn: Conn, *, now: datetime, limit: int) -> list[int]:
    rows = await conn.fetch(
        """SELECT id FROM incidents
           WHERE resolved_at IS NULL AND escalate_at IS NOT NULL AND escalate_at <= $1
           ORDER BY escalate_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
        now,
        limit,
    )
    return [r["id"] for r in rows]


async def schedule_reminder(conn: Conn, *, incident_id: int, stage: str, due_at: datetime) -> None:
    await conn.execute(
        """INSERT INTO reminders (incident_id, stage, due_at) VALUES ($1, $2, $3)
           ON CONFLICT (incident_id, stage) DO NOTHING""",
        incident_id,
        stage,
        due_at,
    )


async def claim_due_reminders(
    conn: Conn, *, now: datetime, limit: int
) -> list[tuple[int, int, str]]:
    """(reminder id, incident id, stage) of due reminders, locked."""
    rows = await conn.fetch(
        """SELECT id, incident_id, stage FROM reminders
           WHERE posted_at IS NULL AND due_at <= $1
           ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
        now,
        limit,
    )
    return [(r["id"], r["incident_id"], r["stage"]) for r in rows]


async def mark_reminder_posted(
    conn: Conn, reminder_id: int, *, now: datetime, entry_id: int | None
) -> None:
    await conn.execute(
        "UPDATE reminders SET posted_at = $2, entry_id = $3 WHERE id = $1",
        reminder_id,
        now,
        entry_id,
    )


@dataclass(frozen=True)
class Checklist:
    incident_id: int
    stage: str
    ticked: list[int]
    title: str | None  # set for checklists that do not come from the severity policy
    items: list[str] | None


async def lock_reminder(conn: Conn, reminder_id: int) -> Checklist | None:
    row = await conn.fetchrow(
        "SELECT incident_id, stage, ticked, title, items FROM reminders WHERE id = $1 FOR UPDATE",
        reminder_id,
    )
    if row is None:
        return None
    return Checklist(
        incident_id=row["incident_id"],
        stage=row["stage"],
        ticked=list(row["ticked"]),
        title=row["title"],
        items=list(row["items"]) if row["items"] is not None else None,
    )


async def add_checklist(
    conn: Conn, *, incident_id: int, key: str, title: str, items: list[str], now: datetime
) -> int:
    """A checklist posted now (not on a timer), e.g. a playbook's manual steps.

    The same `key` may come again (a playbook diagnosed twice in one incident): the later
    checklists are stored as `key#2`, `key#3`, ...
    """
    attempt = 1
    while True:
        stage = key if attempt == 1 else f"{key}#{attempt}"
        reminder_id: int | None = await conn.fetchval(
            """INSERT INTO reminders (incident_id, stage, due_at, posted_at, title, items)
               VALUES ($1, $2, $3, $3, $4, $5)
               ON CONFLICT (incident_id, stage) DO NOTHING RETURNING id""",
            incident_id,
            stage,
            now,
            title,
            items,
        )
        if reminder_id is not None:
            return reminder_id
        attempt += 1


async def set_checklist_entry(conn: Conn, reminder_id: int, entry_id: int) -> None:
    await conn.execute("UPDATE reminders SET entry_id = $2 WHERE id = $1", reminder_id, entry_id)


async def set_ticked(conn: Conn, reminder_id: int, ticked: list[int]) -> None:
    await conn.execute("UPDATE reminders SET ticked = $2 WHERE id = $1", reminder_id, ticked)


async def next_due(conn: Conn) -> datetime | None:
    due: datetime | None = await conn.fetchval(
        """SELECT min(t) FROM (
             SELECT min(next_prompt_at) AS t FROM incidents WHERE resolved_at IS NULL
             UNION ALL SELECT min(escalate_at) FROM incidents WHERE resolved_at IS NULL
             UNION ALL SELECT min(due_at) FROM reminders WHERE posted_at IS NULL) AS due"""
    )
    return due
