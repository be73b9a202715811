"""SQL for the alert intake: alert groups, the per-partition offset fence, the alert counter."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.core import guard
from bot.store import Conn

# pg_advisory_xact_lock(namespace, hashtext(service)): one intake transaction per service.
SERVICE_LOCK_NAMESPACE = 0x1CB0_0012

TopicPartition = tuple[str, int]


@dataclass
class GroupRow:
    """One row of `alert_groups`, as the intake reads and then rewrites it."""

    id: int | None  # None until inserted
    service: str
    fingerprint: str
    window_start: datetime
    incident_id: int | None
    alert_name: str
    source: str
    severity: str
    summary: str
    labels: dict[str, str]
    status: str
    firing: int
    resolved: int
    first_at: datetime
    last_firing_at: datetime
    resolved_at: datetime | None
    incident_open: bool = True


async def fences(
    conn: Conn, group_id: str, partitions: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    """The first offset not yet stored, per partition (absent: nothing stored yet). No lock."""
    rows = await conn.fetch(
        """SELECT topic, partition, next_offset FROM kafka_offsets
           WHERE group_id = $1 AND (topic, partition) IN
                 (SELECT * FROM unnest($2::text[], $3::int[]))""",
        group_id,
        [t for t, _ in partitions],
        [p for _, p in partitions],
    )
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def lock_fences(
    conn: Conn, group_id: str, partitions: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    """Like `fences`, but creates missing rows and holds their row locks until commit.

    Two consumers that both believe they own a partition (a rebalance in progress) queue here;
    the second then sees what the first stored and skips it.
    """
    ordered = sorted(set(partitions))
    rows = await conn.fetch(
        """INSERT INTO kafka_offsets (group_id, topic, partition, next_offset)
           SELECT $1, t, p, 0 FROM unnest($2::text[], $3::int[]) AS u(t, p)
           ON CONFLICT (group_id, topic, partition)
           DO UPDATE SET next_offset = kafka_offsets.next_offset
           RETURNING topic, partition, next_offset""",
        group_id,
        [t for t, _ in ordered],
        [p for _, p in ordered],
    )
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def advance_fences(
    conn: Conn, group_id: str, offsets: Mapping[TopicPartition, int], *, now: datetime
) -> None:
    """Record that everything before `offsets` is stored (never moves a fence back)."""
    items = sorted(offsets.items())
    await conn.execute(
        """UPDATE kafka_offsets k SET next_offset = GREATEST(k.next_offset, u.o), updated_at = $5
           FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u(t, p, o)
           WHERE k.group_id = $1 AND k.topic = u.t AND k.partition = u.p""",
        group_id,
        [t for (t, _), _ in items],
        [p for (_, p), _ in items],
        [o for _, o in items],
        now,
    )


async def drop_fence(conn: Conn, group_id: str, tp: TopicPartition) -> None:
    await conn.execute(
        "DELETE FROM kafka_offsets WHERE group_id = $1 AND topic = $2 AND partition = $3",
        group_id,
        tp[0],
        tp[1],
    )


async def lock_services(conn: Conn, services: Iterable[str]) -> None:
    """Serialise intake transactions per service (every replica, every partition).

    Taken in one statement, in a fixed order, so two batches never wait on each other in a
    cycle.
    """
    await conn.execute(
        """SELECT pg_advisory_xact_lock($1, k)
           FROM (SELECT DISTINCT hashtext(s) AS k FROM unnest($2::text[]) AS s ORDER BY 1) AS ks""",
        SERVICE_LOCK_NAMESPACE,
        sorted(set(services)),
    )


_GROUP_COLUMNS = """g.id, g.service, g.fingerprint, g.window_start, g.incident_id, g.alert_name,
    g.source, g.severity, g.summary, g.labels, g.status, g.firing, g.resolved, g.first_at,
    g.last_firing_at, g.resolved_at,
    (i.id IS NOT NULL AND i.resolved_at IS NULL) AS incident_open"""


async def latest_groups(
    conn: Conn, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], GroupRow]:
    """The newest group of each (service, fingerprint), with whether its incident is open."""
    wanted = sorted(set(keys))
    rows = await conn.fetch(
        f"""SELECT {_GROUP_COLUMNS}
            FROM unnest($1::text[], $2::text[]) AS k(service, fingerprint)
            CROSS JOIN LATERAL (
                SELECT * FROM alert_groups
                WHERE service = k.service AND fingerprint = k.fingerprint
                ORDER BY window_start DESC LIMIT 1) AS g
            LEFT JOIN incidents i ON i.id = g.incident_id""",
        [s for s, _ in wanted],
        [f for _, f in wanted],
    )
    return {(r["service"], r["fingerprint"]): GroupRow(**dict(r)) for r in rows}


async def open_incidents(conn: Conn, services: Iterable[str]) -> dict[str, int]:
    """The newest open incident that alerts of each service were attached to."""
    rows = await conn.fetch(
        """SELECT k.service, o.incident_id
           FROM unnest($1::text[]) AS k(service)
           CROSS JOIN LATERAL (
               SELECT g.incident_id FROM alert_groups g JOIN incidents i ON i.id = g.incident_id
               WHERE g.service = k.service AND i.resolved_at IS NULL
               ORDER BY g.incident_id DESC LIMIT 1) AS o""",
        sorted(set(services)),
    )
    return {r["service"]: r["incident_id"] for r in rows}


def _guarded(text: str) -> str:
    """An alert's words as stored: the guard's backstop (bot/core/guard.py)."""
    return guard.redact(text).text


def _columns(rows: Sequence[GroupRow]) -> list[list[Any]]:
    return [
        [r.service for r in rows],
        [r.fingerprint for r in rows],
        [r.window_start for r in rows],
        [r.incident_id for r in rows],
        [_guarded(r.alert_name) for r in rows],
        [r.source for r in rows],
        [r.severity for r in rows],
        [_guarded(r.summary) for r in rows],
        [json.dumps(guard.redact_value(r.labels)[0]) for r in rows],
        [r.status for r in rows],
        [r.firing for r in rows],
        [r.resolved for r in rows],
        [r.first_at for r in rows],
        [r.last_firing_at for r in rows],
        [r.resolved_at for r in rows],
    ]


async def insert_groups(conn: Conn, rows: Sequence[GroupRow]) -> None:
    """Insert new groups (ids are filled in on the given rows)."""
    if not rows:
        return
    inserted = await conn.fetch(
        """INSERT INTO alert_groups (service, fingerprint, window_start, incident_id, alert_name,
                                     source, severity, summary, labels, status, firing, resolved,
                                     first_at, last_firing_at, resolved_at)
           SELECT s, f, w, i, n, src, sev, summ, l::jsonb, st, fi, re, fa, la, ra
           FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::text[],
                       $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::int[],
                       $12::int[], $13::timestamptz[], $14::timestamptz[], $15::timestamptz[])
                AS u(s, f, w, i, n, src, sev, summ, l, st, fi, re, fa, la, ra)
           RETURNING id, service, fingerprint, window_start""",
        *_columns(rows),
    )
    ids = {(r["service"], r["fingerprint"], r["window_start"]): r["id"] for r in inserted}
    for row in rows:
        row.id = ids[(row.service, row.fingerprint, row.window_start)]


async def update_groups(conn: Conn, rows: Sequence[GroupRow]) -> None:
    """Write back the state of existing groups (absolute values: the caller holds the lock)."""
    if not rows:
        return
    await conn.execute(
        """UPDATE alert_groups g
           SET incident_id = u.i, status = u.st, firing = u.fi, resolved = u.re,
               last_firing_at = u.la, resolved_at = u.ra
           FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::int[], $5::int[],
                       $6::timestamptz[], $7::timestamptz[]) AS u(id, i, st, fi, re, la, ra)
           WHERE g.id = u.id""",
        [r.id for r in rows],
        [r.incident_id for r in rows],
        [r.status for r in rows],
        [r.firing for r in rows],
        [r.resolved for r in rows],
        [r.last_firing_at for r in rows],
        [r.resolved_at for r in rows],
    )


async def add_alerts(conn: Conn, incident_id: int, count: int, *, now: datetime) -> int:
    """Add to the incident's alert counter and bump its card version; returns the version."""
    version: int = await conn.fetchval(
        """UPDATE incidents SET alert_count = alert_count + $2,
                                card_version = card_version + 1, updated_at = $3
           WHERE id = $1 RETURNING card_version""",
        incident_id,
        count,
        now,
    )
    return version


async def waiting_card(conn: Conn, incident_id: int) -> int | None:
    """A card refresh of the incident queued and not picked up by the outbox yet (its id)."""
    found: int | None = await conn.fetchval(
        """SELECT id FROM outbox
           WHERE incident_id = $1 AND channel = 'slack' AND kind = 'card' AND done_at IS NULL
             AND claimed_until IS NULL
           ORDER BY id LIMIT 1""",
        incident_id,
    )
    return found


async def card_still_waiting(conn: Conn, item_id: int) -> bool:
    """Not yet picked up by the outbox (neither leased nor done)."""
    waiting = await conn.fetchval(
        "SELECT true FROM outbox WHERE id = $1 AND done_at IS NULL AND claimed_until IS NULL",
        item_id,
    )
    return bool(waiting)
