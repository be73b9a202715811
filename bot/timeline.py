"""The scribe's one writer: `record(...)`, called inside the transaction of the change it describes.

Each entry stores the SHA-256 of its canonical content and `sha256(prev_hash + content_hash)`,
so editing or removing any entry breaks the chain (`verify`). The incident row keeps the
count and head hash too, so a removed last entry is caught as well. Every entry is queued in
the outbox in the same transaction, to be posted as a reply in the incident's thread.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.models import TimelineEntry
from bot.store import Conn
from bot.store import outbox as outbox_sql
from bot.store import timeline as timeline_sql


class Kind:
    """Timeline entry kinds (one place, never inline strings)."""

    DECLARED = "declared"
    ROLE = "role_assigned"
    SEVERITY = "severity_changed"
    STATUS = "status_update"
    NOTE = "note"
    RESOLVED = "resolved"
    PROMPT = "status_prompt"
    PROMPT_ESCALATED = "prompt_escalated"
    ESCALATED = "escalated"
    CHECKLIST = "checklist"
    CHECKLIST_TICK = "checklist_ticked"
    PAGERDUTY = "pagerduty"
    REOPENED = "reopened"
    PAGED = "paged"
    DIAGNOSIS_STARTED = "diagnosis_started"
    DIAGNOSIS = "diagnosis"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_GIVEN = "approval_given"
    APPROVED = "approved"
    APPROVAL_DENIED = "approval_denied"
    APPROVAL_EXPIRED = "approval_expired"
    REMEDIATION_STARTED = "remediation_started"
    REMEDIATION_RESULT = "remediation_result"


def content_hash(
    *,
    incident_id: int,
    seq: int,
    kind: str,
    actor: str,
    text: str,
    data: dict[str, Any],
    occurred_at: datetime,
) -> str:
    canonical = json.dumps(
        {
            "incident": incident_id,
            "seq": seq,
            "kind": kind,
            "actor": actor,
            "text": text,
            "data": data,
            "occurred_at": occurred_at.astimezone(UTC).isoformat(),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def chain_hash(prev_hash: str, content: str) -> str:
    return hashlib.sha256((prev_hash + content).encode("ascii")).hexdigest()


async def record(
    conn: Conn,
    *,
    incident_id: int,
    kind: str,
    text: str,
    actor: str,
    occurred_at: datetime,
    data: dict[str, Any] | None = None,
) -> TimelineEntry:
    """Append one entry to the incident's chain and queue it for the thread.

    Must run inside the caller's transaction: the change and its entry commit together.
    """
    if not conn.is_in_transaction():
        raise RuntimeError("timeline.record must run inside the transaction of its change")
    payload = dict(data or {})
    # Round-trip through JSON so what is hashed equals what jsonb gives back.
    payload = json.loads(json.dumps(payload))
    count, prev = await timeline_sql.head(conn, incident_id)
    seq = count + 1
    chash = content_hash(
        incident_id=incident_id,
        seq=seq,
        kind=kind,
        actor=actor,
        text=text,
        data=payload,
        occurred_at=occurred_at,
    )
    entry = await timeline_sql.append(
        conn,
        incident_id=incident_id,
        seq=seq,
        kind=kind,
        actor=actor,
        text=text,
        data=payload,
        occurred_at=occurred_at,
        content_hash=chash,
        prev_hash=prev,
        hash=chain_hash(prev, chash),
    )
    await outbox_sql.enqueue_reply(conn, incident_id=incident_id, timeline_id=entry.id, seq=seq)
    return entry


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    problems: list[str]


def verify_chain(entries: list[TimelineEntry], *, count: int, head: str) -> Verification:
    """Re-hash every entry; report edits, gaps, reordering and a removed tail."""
    problems: list[str] = []
    prev = ""
    expected_seq = 1
    for entry in entries:
        if entry.seq != expected_seq:
            problems.append(f"entry {expected_seq} is missing (next found is {entry.seq})")
            expected_seq = entry.seq
        recomputed = content_hash(
            incident_id=entry.incident_id,
            seq=entry.seq,
            kind=entry.kind,
            actor=entry.actor,
            text=entry.text,
            data=entry.data,
            occurred_at=entry.occurred_at,
        )
        if recomputed != entry.content_hash:
            problems.append(f"entry {entry.seq} ({entry.kind}) was edited: content hash differs")
        if entry.prev_hash != prev:
            problems.append(f"entry {entry.seq} does not follow the entry before it")
        if chain_hash(entry.prev_hash, entry.content_hash) != entry.hash:
            problems.append(f"entry {entry.seq} has a forged chain hash")
        prev = entry.hash
        expected_seq += 1
    last_seq = entries[-1].seq if entries else 0
    if count > last_seq:
        problems.append(f"entries after {last_seq} were removed (the incident recorded {count})")
    elif entries and head != entries[-1].hash:
        problems.append("the last entry is not the one the incident recorded")
    return Verification(ok=not problems, checked=len(entries), problems=problems)
