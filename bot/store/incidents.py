"""SQL for incidents and their roles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from bot.core import guard
from bot.core.models import Incident, Status
from bot.store import Conn
from bot.store import outbox as outbox_sql

_COLUMNS = """id, title, severity, status, declared_by, channel_id, thread_ts, declared_at,
    acknowledged_at, mitigated_at, resolved_at, summary, last_status, last_status_at,
    card_version, next_prompt_at, prompt_seq, unanswered, escalate_at, escalated_at,
    pagerduty_id, pagerduty_url, alert_count,
    EXISTS (SELECT 1 FROM timeline t WHERE t.incident_id = incidents.id AND t.kind = 'redacted'
            AND t.data @> '{"card": true}') AS card_number_seen"""
# Columns of people's words: the guard's backstop (bot/core/guard.py) runs on them here too.
_GUARDED = frozenset({"title", "summary", "last_status"})


async def _roles(conn: Conn, incident_ids: list[int]) -> dict[int, dict[str, str]]:
    rows = await conn.fetch(
        "SELECT incident_id, role, user_id FROM incident_roles WHERE incident_id = ANY($1)"
        " ORDER BY assigned_at",
        incident_ids,
    )
    out: dict[int, dict[str, str]] = {i: {} for i in incident_ids}
    for row in rows:
        out[row["incident_id"]][row["role"]] = row["user_id"]
    return out


def _incident(row: asyncpg.Record, roles: dict[str, str]) -> Incident:
    data: dict[str, Any] = dict(row)
    data["status"] = Status(data["status"])
    return Incident(**data, roles=roles)


async def get(conn: Conn, incident_id: int, *, lock: bool = False) -> Incident | None:
    sql = f"SELECT {_COLUMNS} FROM incidents WHERE id = $1" + (" FOR UPDATE" if lock else "")
    row = await conn.fetchrow(sql, incident_id)
    if row is None:
        return None
    return _incident(row, (await _roles(conn, [incident_id]))[incident_id])


async def list_open(conn: Conn) -> list[Incident]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM incidents WHERE resolved_at IS NULL ORDER BY id"
    )
    roles = await _roles(conn, [r["id"] for r in rows])
    return [_incident(r, roles[r["id"]]) for r in rows]


async def latest(conn: Conn) -> Incident | None:
    incident_id = await conn.fetchval("SELECT max(id) FROM incidents")
    return None if incident_id is None else await get(conn, incident_id)


async def list_recent(conn: Conn, *, resolved_since: datetime) -> list[Incident]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM incidents WHERE resolved_at IS NULL OR resolved_at >= $1"
        " ORDER BY resolved_at IS NOT NULL, id DESC LIMIT 50",
        resolved_since,
    )
    roles = await _roles(conn, [r["id"] for r in rows])
    return [_incident(r, roles[r["id"]]) for r in rows]


async def insert(
    conn: Conn,
    *,
    title: str,
    severity: str,
    declared_by: str,
    channel_id: str,
    now: datetime,
    pagerduty_id: str | None = None,
    pagerduty_url: str | None = None,
) -> int:
    incident_id: int = await conn.fetchval(
        """INSERT INTO incidents (title, severity, declared_by, channel_id, declared_at, updated_at,
                                  pagerduty_id, pagerduty_url)
           VALUES ($1, $2, $3, $4, $5, $5, $6, $7) RETURNING id""",
        guard.redact(title).text,
        severity,
        declared_by,
        channel_id,
        now,
        pagerduty_id,
        pagerduty_url,
    )
    return incident_id


async def by_pagerduty_id(conn: Conn, pagerduty_id: str) -> Incident | None:
    incident_id = await conn.fetchval(
        "SELECT id FROM incidents WHERE pagerduty_id = $1", pagerduty_id
    )
    return None if incident_id is None else await get(conn, incident_id, lock=True)


async def update(conn: Conn, incident_id: int, *, now: datetime, **fields: Any) -> int:
    """Set the given columns and bump the card version; returns the new card version."""
    allowed = {
        "severity", "status", "acknowledged_at", "mitigated_at", "resolved_at", "summary",
        "last_status", "last_status_at", "title",
    }  # fmt: skip
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    fields = {k: guard.redact(v).text if k in _GUARDED and isinstance(v, str) else v
              for k, v in fields.items()}  # fmt: skip
    names = list(fields)
    assignments = ", ".join(f"{name} = ${i + 3}" for i, name in enumerate(names))
    sql = (
        f"UPDATE incidents SET {assignments}{', ' if names else ''}"
        "card_version = card_version + 1, updated_at = $2 WHERE id = $1 RETURNING card_version"
    )
    version: int = await conn.fetchval(sql, incident_id, now, *(fields[n] for n in names))
    return version


async def bump(conn: Conn, incident_id: int, *, now: datetime, **fields: Any) -> int:
    """`update` and queue the card at its new version: the one place a change of the incident
    row reaches its card. Returns the new card version."""
    version = await update(conn, incident_id, now=now, **fields)
    await outbox_sql.enqueue_card(conn, incident_id=incident_id, version=version)
    return version


async def link_pagerduty(
    conn: Conn, incident_id: int, *, pagerduty_id: str, url: str, now: datetime
) -> bool:
    """Link the incident to the PagerDuty incident opened for it (a link made stays) and bump
    its card; False if it was linked already."""
    linked = await conn.fetchval(
        "UPDATE incidents SET pagerduty_id = $2, pagerduty_url = $3"
        " WHERE id = $1 AND pagerduty_id IS NULL RETURNING true",
        incident_id,
        pagerduty_id,
        url,
    )
    if not linked:
        return False
    await bump(conn, incident_id, now=now)
    return True


async def set_pagerduty_lagging(conn: Conn, incident_id: int, *, lagging: bool) -> bool:
    """Mark PagerDuty lagging (or caught up) for the incident; False if it already was."""
    changed = await conn.fetchval(
        "UPDATE incidents SET pagerduty_lagging = $2 WHERE id = $1"
        " AND pagerduty_lagging <> $2 RETURNING true",
        incident_id,
        lagging,
    )
    return bool(changed)


async def set_role(
    conn: Conn,
    incident_id: int,
    *,
    role: str,
    user_id: str,
    assigned_by: str,
    now: datetime,
    how: str = "assigned",
) -> str | None:
    """Give `role` to `user_id`; returns who held it before (None if nobody).

    `how`: "declared" (the declarer becomes incident commander), "assigned" or "handover".
    """
    previous: str | None = await conn.fetchval(
        "SELECT user_id FROM incident_roles WHERE incident_id = $1 AND role = $2",
        incident_id,
        role,
    )
    await conn.execute(
        """INSERT INTO incident_roles (incident_id, role, user_id, assigned_by, assigned_at, how)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (incident_id, role) DO UPDATE
           SET user_id = EXCLUDED.user_id, assigned_by = EXCLUDED.assigned_by,
               assigned_at = EXCLUDED.assigned_at, how = EXCLUDED.how""",
        incident_id,
        role,
        user_id,
        assigned_by,
        now,
        how,
    )
    return previous


@dataclass(frozen=True)
class Grant:
    """Who holds a role, since when, and how they got it."""

    user_id: str
    assigned_by: str
    assigned_at: datetime
    how: str

    @property
    def self_given(self) -> bool:
        """Given to themselves (`/ic assign @self`, a handover to oneself), not by declaring."""
        return self.assigned_by == self.user_id and self.how != "declared"


async def grants(conn: Conn, incident_id: int) -> dict[str, Grant]:
    rows = await conn.fetch(
        "SELECT role, user_id, assigned_by, assigned_at, how FROM incident_roles"
        " WHERE incident_id = $1",
        incident_id,
    )
    return {
        r["role"]: Grant(r["user_id"], r["assigned_by"], r["assigned_at"], r["how"]) for r in rows
    }


async def set_thread(conn: Conn, incident_id: int, *, thread_ts: str) -> None:
    await conn.execute(
        "UPDATE incidents SET thread_ts = $2 WHERE id = $1 AND thread_ts IS NULL",
        incident_id,
        thread_ts,
    )


async def mark_card_posted(conn: Conn, incident_id: int, *, version: int) -> None:
    await conn.execute(
        "UPDATE incidents SET card_posted_version = GREATEST(card_posted_version, $2)"
        " WHERE id = $1",
        incident_id,
        version,
    )


async def card_posted_version(conn: Conn, incident_id: int) -> int:
    version: int = await conn.fetchval(
        "SELECT card_posted_version FROM incidents WHERE id = $1", incident_id
    )
    return version


async def declared_since(conn: Conn, since: datetime) -> list[Incident]:
    """Every incident declared at or after `since`, open or resolved, newest first."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM incidents WHERE declared_at >= $1"
        " ORDER BY declared_at DESC, id DESC",
        since,
    )
    roles = await _roles(conn, [r["id"] for r in rows])
    return [_incident(r, roles[r["id"]]) for r in rows]
