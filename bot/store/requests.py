"""SQL for `handled_requests`: the requests from outside (Slack, PagerDuty) already handled."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.store import Conn


async def claim(conn: Conn, *, key: str, owner: str, at: datetime, window: timedelta) -> bool:
    """Claim `key` for `owner` until `at + window`; False if another delivery holds it.

    Claiming again for the same owner is a no-op that succeeds; an expired claim is taken
    over. Inside a transaction the claim commits or rolls back with it, and a concurrent claim
    of the same key waits for that outcome.
    """
    claimed: bool | None = await conn.fetchval(
        """INSERT INTO handled_requests AS r (key, owner, claimed_at, expires_at)
           VALUES ($1, $2, $3, $3::timestamptz + $4::interval)
           ON CONFLICT (key) DO UPDATE
               SET owner = EXCLUDED.owner, claimed_at = EXCLUDED.claimed_at,
                   expires_at = EXCLUDED.expires_at
               WHERE r.owner = EXCLUDED.owner OR r.expires_at <= EXCLUDED.claimed_at
           RETURNING true""",
        key,
        owner,
        at,
        window,
    )
    return bool(claimed)


async def is_claimed(conn: Conn, *, key: str, at: datetime) -> bool:
    """Whether a (committed) claim of `key` still counts at `at`."""
    found: bool | None = await conn.fetchval(
        "SELECT true FROM handled_requests WHERE key = $1 AND expires_at > $2", key, at
    )
    return bool(found)


async def prune(conn: Conn, *, now: datetime, limit: int = 10_000) -> int:
    """Forget claims that no longer count; returns how many."""
    deleted: int = await conn.fetchval(
        """WITH old AS (SELECT key FROM handled_requests WHERE expires_at <= $1 LIMIT $2),
                gone AS (DELETE FROM handled_requests r USING old WHERE r.key = old.key
                         RETURNING 1)
           SELECT count(*) FROM gone""",
        now,
        limit,
    )
    return deleted
