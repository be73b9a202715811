"""An incident's timeline as data: read in one snapshot, verified, and exported as JSON.

`timeline_export` is what `icbot audit export` will write as the bundle's timeline (the
command can reuse it as is): the incident, every entry with its hashes, the chain head the
incident row records, and whether the chain verifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bot.core.models import Incident, TimelineEntry
from bot.domain import timeline
from bot.store import Conn
from bot.store import incidents as incidents_sql
from bot.store import timeline as timeline_sql

FORMAT = "icbot-timeline/1"


@dataclass(frozen=True)
class Snapshot:
    """An incident and its timeline as one transaction saw them."""

    incident: Incident
    entries: list[TimelineEntry]
    count: int  # entries the incident row records
    head: str  # the chain head it records
    verification: timeline.Verification


async def read(conn: Conn, incident_id: int) -> Snapshot | None:
    """The incident's snapshot, in the caller's (repeatable-read) transaction; None if there
    is no such incident."""
    incident = await incidents_sql.get(conn, incident_id)
    recorded = await timeline_sql.recorded_head(conn, incident_id)
    if incident is None or recorded is None:
        return None
    entries = await timeline_sql.entries(conn, incident_id)
    count, head = recorded
    verification = timeline.verify_chain(entries, count=count, head=head)
    return Snapshot(incident, entries, count, head, verification)


async def load(pool: asyncpg.Pool, incident_id: int) -> Snapshot | None:
    """The incident's snapshot (read-only, repeatable read); None if there is no such incident."""
    async with (
        pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        return await read(conn, incident_id)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def incident_record(incident: Incident) -> dict[str, Any]:
    return {
        "ref": incident.ref,
        "id": incident.id,
        "title": incident.title,
        "severity": incident.severity,
        "status": incident.status.value,
        "declared_by": incident.declared_by,
        "declared_at": _iso(incident.declared_at),
        "acknowledged_at": _iso(incident.acknowledged_at),
        "mitigated_at": _iso(incident.mitigated_at),
        "resolved_at": _iso(incident.resolved_at),
        "summary": incident.summary,
        "roles": dict(sorted(incident.roles.items())),
        "pagerduty_id": incident.pagerduty_id,
        "pagerduty_url": incident.pagerduty_url,
    }


def entry_record(entry: TimelineEntry) -> dict[str, Any]:
    """An entry with exactly what its content hash covers, plus its chain hashes."""
    return {
        "seq": entry.seq,
        "kind": entry.kind,
        "actor": entry.actor,
        "text": entry.text,
        "data": entry.data,
        "occurred_at": _iso(entry.occurred_at),
        "content_hash": entry.content_hash,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
        "redacted_at": _iso(entry.redacted_at),
    }


def timeline_export(snapshot: Snapshot, *, exported_at: datetime) -> dict[str, Any]:
    """The JSON document of the incident's timeline (see the module docstring)."""
    v = snapshot.verification
    return {
        "format": FORMAT,
        "exported_at": _iso(exported_at),
        "incident": incident_record(snapshot.incident),
        "entries": [entry_record(e) for e in snapshot.entries],
        "chain": {
            "count": snapshot.count,
            "head": snapshot.head,
            "verified": v.ok,
            "checked": v.checked,
            "problems": list(v.problems),
        },
    }
