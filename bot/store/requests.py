"""SQL for `slack_requests`: the Slack requests (and events) already handled, by key."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.store import Conn


async def claim(conn: Conn, *, key: str, owner: str, at: datetime, window: timedelta) -> bool:
    """Claim `key` for `owner`; False if another delivery holds it (claimed within `window`).

    Claiming again for the same owner is a no-op that succeeds. Inside a transaction the claim
    commits or rolls back with it; a concurrent claim of the same key waits for that outcome.
    """
    claimed: bool | None = await conn.fetchval(
        """INSERT INTO slack_requests AS r (key, owner, claimed_at) VALUES ($1, $2, $3)
           ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, claimed_at = EXCLUDED.claimed_at
           WHERE r.owner = EXCLUDED.owner OR r.claimed_at < ($3::timestamptz - $4::interval)
           RETURNING true""",
        key,
        owner,
        at,
        window,
    )
    return bool(claimed)


async def is_claimed(conn: Conn, *, key: str, at: datetime, window: timedelta) -> bool:
    """Whether a (committed) claim of `key` within `window` before `at` exists."""
    found: bool | None = await conn.fetchval(
        "SELECT true FROM slack_requests WHERE key = $1"
        " AND claimed_at >= ($2::timestamptz - $3::interval)",
        key,
        at,
        window,
    )
    return bool(found)


async def prune(conn: Conn, *, before: datetime, limit: int = 10_000) -> int:
    """Forget claims made before `before`; returns how many."""
    deleted: int = await conn.fetchval(
        """WITH old AS (SELECT key FROM slack_requests WHERE claimed_at < $1 LIMIT $2)
           , gone AS (DELETE FROM slack_requests r USING old WHERE r.key = old.key RETURNING 1)
           SELECT count(*) FROM gone""",
        before,
        limit,
    )
    return deleted
