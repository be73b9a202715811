"""SQL for pending remediation requests (approvals)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from bot.store import Conn

_COLUMNS = """id, incident_id, action, label, params, preview, requested_by, requested_at,
    expires_at, required, approvers, approvals, status, decided_by, decided_at, result, entry_id,
    target"""


@dataclass(frozen=True)
class PendingAction:
    id: int
    incident_id: int
    action: str
    label: str
    params: dict[str, Any]
    preview: dict[str, Any]
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    required: int
    approvers: list[str]
    approvals: list[str]
    status: str
    decided_by: str | None
    decided_at: datetime | None
    result: dict[str, Any] | None
    entry_id: int | None
    target: str | None  # what it changes: one run per target at a time


def _row(row: Any) -> PendingAction:
    return PendingAction(**dict(row))


async def insert(
    conn: Conn,
    *,
    incident_id: int,
    action: str,
    label: str,
    params: dict[str, Any],
    preview: dict[str, Any],
    requested_by: str,
    requested_at: datetime,
    expires_at: datetime,
    required: int,
    approvers: list[str],
    target: str | None = None,
) -> PendingAction:
    row = await conn.fetchrow(
        f"""INSERT INTO pending_actions (incident_id, action, label, params, preview, requested_by,
                requested_at, expires_at, required, approvers, target)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {_COLUMNS}""",
        incident_id,
        action,
        label,
        params,
        preview,
        requested_by,
        requested_at,
        expires_at,
        required,
        approvers,
        target,
    )
    return _row(row)


async def get(conn: Conn, action_id: int) -> PendingAction | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM pending_actions WHERE id = $1", action_id)
    return _row(row) if row else None


async def pending_for(conn: Conn, incident_id: int, *, now: datetime) -> list[PendingAction]:
    """The incident's requests still waiting for approval (not expired), oldest first."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM pending_actions
            WHERE incident_id = $1 AND status = 'pending' AND expires_at > $2
            ORDER BY requested_at, id""",
        incident_id,
        now,
    )
    return [_row(r) for r in rows]


async def set_entry(conn: Conn, action_id: int, entry_id: int) -> None:
    await conn.execute(
        "UPDATE pending_actions SET entry_id = $2 WHERE id = $1", action_id, entry_id
    )


async def add_approval(
    conn: Conn, action_id: int, *, user: str, now: datetime
) -> PendingAction | None:
    """The one conditional UPDATE that decides a click: only a pending, unexpired request, not
    the requester's own, not twice by one person. Returns the row after it, or None."""
    row = await conn.fetchrow(
        f"""UPDATE pending_actions
            SET approvals = approvals || jsonb_build_array($2::text),
                status = CASE WHEN jsonb_array_length(approvals) + 1 >= required
                              THEN 'approved' ELSE 'pending' END,
                decided_by = CASE WHEN jsonb_array_length(approvals) + 1 >= required
                                  THEN $2 ELSE decided_by END,
                decided_at = CASE WHEN jsonb_array_length(approvals) + 1 >= required
                                  THEN $3 ELSE decided_at END
            WHERE id = $1 AND status = 'pending' AND expires_at > $3
              AND requested_by <> $2 AND NOT approvals ? $2
            RETURNING {_COLUMNS}""",
        action_id,
        user,
        now,
    )
    return _row(row) if row else None


async def deny(conn: Conn, action_id: int, *, user: str, now: datetime) -> PendingAction | None:
    row = await conn.fetchrow(
        f"""UPDATE pending_actions SET status = 'denied', decided_by = $2, decided_at = $3
            WHERE id = $1 AND status = 'pending' AND expires_at > $3 RETURNING {_COLUMNS}""",
        action_id,
        user,
        now,
    )
    return _row(row) if row else None


async def transition(
    conn: Conn,
    action_id: int,
    *,
    from_status: str,
    to_status: str,
    result: dict[str, Any] | None = None,
) -> bool:
    done = await conn.fetchval(
        """UPDATE pending_actions SET status = $3, result = coalesce($4::jsonb, result)
           WHERE id = $1 AND status = $2 RETURNING true""",
        action_id,
        from_status,
        to_status,
        result,
    )
    return bool(done)


async def start_run(conn: Conn, action_id: int, *, now: datetime) -> bool:
    """approved -> running, once: the one step that may start a remediation. False if it is
    not waiting to run, or if another run holds its target (the partial unique index
    `pending_actions_one_run_per_target` decides races between replicas)."""
    try:
        async with conn.transaction():
            started = await conn.fetchval(
                """UPDATE pending_actions SET status = 'running', started_at = $2,
                       heartbeat_at = $2
                   WHERE id = $1 AND status = 'approved' RETURNING true""",
                action_id,
                now,
            )
    except asyncpg.UniqueViolationError:
        return False
    return bool(started)


async def running_on(conn: Conn, target: str) -> PendingAction | None:
    """The run that holds `target` now, if any."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM pending_actions WHERE target = $1 AND status = 'running'",
        target,
    )
    return _row(row) if row else None


async def heartbeat(conn: Conn, action_id: int, *, now: datetime) -> bool:
    """The running process is alive; False once the run is no longer running."""
    beat = await conn.fetchval(
        """UPDATE pending_actions SET heartbeat_at = $2
           WHERE id = $1 AND status = 'running' RETURNING true""",
        action_id,
        now,
    )
    return bool(beat)


async def cancel_open(
    conn: Conn, incident_id: int, *, now: datetime, result: dict[str, Any]
) -> list[PendingAction]:
    """End the incident's requests that have not started (its resolution): no click counts
    after this, and reopening the incident does not bring them back."""
    rows = await conn.fetch(
        f"""UPDATE pending_actions SET status = 'cancelled', decided_at = $2, result = $3::jsonb
            WHERE incident_id = $1 AND status IN ('pending', 'approved')
            RETURNING {_COLUMNS}""",
        incident_id,
        now,
        result,
    )
    return [_row(r) for r in rows]


async def finish_interrupted(
    conn: Conn, action_id: int, *, status: str, result: dict[str, Any]
) -> bool:
    """A run the sweeper marked interrupted did finish: record its real outcome."""
    done = await conn.fetchval(
        """UPDATE pending_actions SET status = $2, result = $3::jsonb
           WHERE id = $1 AND status = 'failed' AND (result ->> 'interrupted')::boolean
           RETURNING true""",
        action_id,
        status,
        result,
    )
    return bool(done)


async def claim_interrupted(
    conn: Conn,
    *,
    approved_before: datetime,
    running_before: datetime,
    results: dict[str, dict[str, Any]],
    limit: int,
) -> list[tuple[PendingAction, str]]:
    """Fail requests whose process died: approved but never started, or running with no
    heartbeat since `running_before`.

    Returns each with the status it was found in; `results[status]` becomes its result.
    """
    rows = await conn.fetch(
        f"""WITH stale AS (
                SELECT id, status AS was FROM pending_actions
                WHERE (status = 'approved' AND decided_at <= $1)
                   OR (status = 'running' AND coalesce(heartbeat_at, started_at) <= $2)
                ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED)
            UPDATE pending_actions p
            SET status = 'failed',
                result = CASE WHEN stale.was = 'running' THEN $4::jsonb ELSE $3::jsonb END
            FROM stale WHERE p.id = stale.id
            RETURNING {", ".join(f"p.{c.strip()}" for c in _COLUMNS.split(","))}, stale.was""",
        approved_before,
        running_before,
        results["approved"],
        results["running"],
        limit,
    )
    out = []
    for row in rows:
        data = dict(row)
        was = str(data.pop("was"))
        out.append((PendingAction(**data), was))
    return out


async def claim_expired(conn: Conn, *, now: datetime, limit: int) -> list[PendingAction]:
    rows = await conn.fetch(
        f"""UPDATE pending_actions SET status = 'expired', decided_at = $1
            WHERE id IN (SELECT id FROM pending_actions WHERE status = 'pending'
                         AND expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
            RETURNING {_COLUMNS}""",
        now,
        limit,
    )
    return [_row(r) for r in rows]


async def for_incident(conn: Conn, incident_id: int) -> list[PendingAction]:
    """Every request of the incident, oldest first (the evidence bundle's change records)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM pending_actions WHERE incident_id = $1 ORDER BY id",
        incident_id,
    )
    return [_row(r) for r in rows]
