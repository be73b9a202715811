"""The scribe's one writer: `record(...)`, called inside the transaction of the change it describes.

Each entry stores the SHA-256 of its canonical content and `sha256(prev_hash + content_hash)`,
so editing or removing any entry breaks the chain (`verify`). The incident row keeps the
count and head hash too, so a removed last entry is caught as well. Every entry is queued in
the outbox in the same transaction, to be shown in the incident's thread: key events as a
reply each, chatter (`FOLDED`) as a line of the thread's digest (`Outbox._digest`).

The guard (`bot/core/guard.py`) runs in `record` itself, on the text and on every string in
`data`, before anything is hashed or stored: whatever the caller passed, a card number or a
secret is stored only as `[redacted: …]`. Each entry that needed it is followed by a key event
(`Kind.REDACTED`, "card number redacted from <@U>'s message", no digits), counted in
`icbot_redactions_total{kind}`, and noted for the edge (`notices`), which tells the author.

Redaction (`redact(...)`, for a Slack message deleted after it was captured) blanks an entry's
text and data but keeps its hashes; a new entry records what was blanked (seq, kind, actor,
time, content hash), so `verify_chain` still vouches for the blanked row, and blanking a row
by hand, or editing a redacted one, is still caught.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bot.core import guard, wording
from bot.core.metrics import REDACTIONS
from bot.core.models import TimelineEntry
from bot.domain import once
from bot.store import Conn
from bot.store import incidents as incidents_sql
from bot.store import outbox as outbox_sql
from bot.store import timeline as timeline_sql
from bot.store.outbox import OutboxKind


class Kind(StrEnum):
    """Timeline entry kinds (one place, never inline strings).

    The values are what rows store and what entries hash (``content_hash``): never change one,
    or old rows stop verifying; add new kinds instead.
    """

    DECLARED = "declared"
    ROLE = "role_assigned"
    HANDOVER = "handover"  # a role moved, with a briefing for its new holder (data["summary"])
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
    ALERT_FIRING = "alert_firing"
    ALERT_RESOLVED = "alert_resolved"
    # The post-mortem draft was posted as a file in the thread (data: file, request, upto…);
    # left out of drafts themselves (bot/domain/postmortem.py NOT_IN_DRAFT), so posting one changes
    # none.
    POSTMORTEM_POSTED = "postmortem_posted"
    REDACTED = "redacted"  # the guard kept a card number or secret out of the entry before it
    # The kinds the scribe writes (bot/domain/scribe.py).
    MESSAGE = "message"  # a person's message in the incident's thread
    MESSAGE_EDITED = "message_edited"  # its new text; data["edits"] = seq of the original
    MESSAGE_DELETED = "message_deleted"  # records the redaction of the message's entries
    PINNED = "pinned"  # a key event; data["ts"] names the message
    UNPINNED = "unpinned"
    ACTION_ITEM = "action_item"  # data: text, owner (Slack user id or None)
    # Email when Slack is down (bot/domain/email_fallback.py): key events, data["since"] = the
    # outage's start (ISO); once per outage and incident each.
    SLACK_UNREACHABLE = "slack_unreachable"
    SLACK_REACHABLE = "slack_reachable"
    # Jira follow-ups (issue 21, bot/domain/jira.py); data["item"] is the item's entry seq.
    JIRA_LINKED = "jira_linked"  # the item's Jira issue was filed: data key, url, item, number
    ACTION_ITEM_DONE = "action_item_done"  # ticked in Slack or resolved in Jira: data via
    JIRA = "jira"  # Jira refused the issue or a transition (said once, so someone looks)
    GRAFANA = "grafana"  # Grafana refused an annotation (issue 21); data: refused, resolution


ScribeKind = Kind  # the scribe's kinds are members of Kind; this name stays for their callers


# Chatter: in the thread these are folded into one digest message, edited in place, rather
# than posted one reply each (a thread people read must not drown in bot posts). Every other
# kind is a key event and gets its own reply. `/ic timeline` shows everything.
FOLDED = frozenset(
    {
        Kind.PAGERDUTY,
        Kind.PAGED,
        Kind.CHECKLIST_TICK,
        Kind.DIAGNOSIS_STARTED,
        Kind.APPROVAL_GIVEN,
        Kind.REMEDIATION_STARTED,
        Kind.ALERT_FIRING,
        Kind.ALERT_RESOLVED,
        Kind.POSTMORTEM_POSTED,
        ScribeKind.MESSAGE,
        ScribeKind.MESSAGE_EDITED,
        ScribeKind.MESSAGE_DELETED,
        ScribeKind.PINNED,
        ScribeKind.UNPINNED,
        ScribeKind.ACTION_ITEM,
        Kind.ACTION_ITEM_DONE,
    }
)


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
    kind: Kind,
    actor: str,
    occurred_at: datetime,
    text: str | None = None,
    data: dict[str, Any] | None = None,
    announce: bool = True,
) -> TimelineEntry:
    """Append one entry to the incident's chain and (if `announce`) queue it for the thread:
    a reply of its own, or a line of the thread's digest if its kind is `FOLDED`.

    The entry's words: either `text` (v1, the caller's own), or none and `data` made with
    `wording.data(...)` (v2): the wording module renders the text from the data, and stores
    its Slack rendering (`wording.stored_text`) so the row's hashed shape stays one text.

    Must run inside the caller's transaction: the change and its entry commit together.
    """
    if not isinstance(kind, Kind):
        raise TypeError(f"timeline.record takes a Kind, not {kind!r}")
    if text is None:
        if not wording.is_v2(data or {}):
            raise TypeError("timeline.record needs text, or data made with wording.data(...)")
        text = wording.stored_text(kind, actor=actor, incident_id=incident_id, data=data or {})
    if not conn.is_in_transaction():
        raise RuntimeError("timeline.record must run inside the transaction of its change")
    await once.claim(conn)  # the Slack request making this change, if any: exactly once
    # Round-trip through JSON so what is hashed equals what jsonb gives back.
    raw: dict[str, Any] = json.loads(json.dumps(dict(data or {})))
    guarded = guard.redact(text)
    cleaned, in_data = guard.redact_value(raw)
    assert isinstance(cleaned, dict)
    text, payload, findings = guarded.text, cleaned, guarded.findings + in_data
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
    if announce:
        await outbox_sql.enqueue_reply(
            conn, incident_id=incident_id, timeline_id=entry.id, seq=seq,
            kind=OutboxKind.DIGEST if kind in FOLDED else OutboxKind.REPLY,
        )  # fmt: skip
    if findings and kind != Kind.REDACTED:
        await _record_redaction(
            conn, entry, author=str(payload.get("author") or actor), findings=findings
        )
    return entry


@dataclass(frozen=True)
class Notice:
    """What the guard took out of someone's words, for the edge to tell them privately."""

    incident_id: int
    author: str  # whose words (a Slack user id, or a system actor)
    findings: tuple[guard.Finding, ...]

    @property
    def has_card(self) -> bool:
        return any(f.kind.is_card for f in self.findings)

    def summary(self) -> str:
        """`a card number and a Slack bot token`."""
        return guard.Guarded("", self.findings).summary()


def summary_of(notices: Sequence[Notice]) -> str:
    """`a card number and a Slack bot token`: what several notices found, each kind once."""
    return guard.Guarded("", tuple(f for n in notices for f in n.findings)).summary()


_notices: contextvars.ContextVar[list[Notice] | None] = contextvars.ContextVar(
    "guard_notices", default=None
)


@contextmanager
def notices() -> Iterator[list[Notice]]:
    """Collect the redactions of the work run inside (the edge's request): the list fills as
    `record` redacts, so the edge can tell each author once the work is done."""
    found: list[Notice] = []
    token = _notices.set(found)
    try:
        yield found
    finally:
        _notices.reset(token)


async def _record_redaction(
    conn: Conn, entry: TimelineEntry, *, author: str, findings: tuple[guard.Finding, ...]
) -> None:
    kinds = list(dict.fromkeys(f.kind for f in findings))
    for kind in kinds:
        REDACTIONS.labels(kind=kind.value).inc()
    await record(
        conn, incident_id=entry.incident_id, kind=Kind.REDACTED, actor="icbot",
        occurred_at=entry.occurred_at,
        data=wording.data(kinds=[k.value for k in kinds], card=any(k.is_card for k in kinds),
                          author=author, entry=entry.seq, found=guard.found_names(findings)),
    )  # fmt: skip
    if any(k.is_card for k in kinds):  # the card says so (`Incident.card_number_seen`)
        version = await incidents_sql.update(conn, entry.incident_id, now=entry.occurred_at)
        await outbox_sql.enqueue_card(conn, incident_id=entry.incident_id, version=version)
    collected = _notices.get()
    if collected is not None:
        collected.append(Notice(entry.incident_id, author, findings))


REDACTED_TEXT = "(deleted)"


def redaction_ref(entry: TimelineEntry) -> dict[str, Any]:
    """What the redacting entry records about a blanked one: all that is left to check."""
    return {
        "seq": entry.seq,
        "kind": entry.kind,
        "actor": entry.actor,
        "occurred_at": entry.occurred_at.astimezone(UTC).isoformat(),
        "content_hash": entry.content_hash,
    }


async def redact(
    conn: Conn,
    *,
    incident_id: int,
    targets: list[TimelineEntry],
    kind: Kind,
    actor: str,
    occurred_at: datetime,
    text: str | None = None,
    data: dict[str, Any] | None = None,
    announce: bool = False,
) -> TimelineEntry:
    """Blank `targets` (text and data dropped, hashes kept) and record that in a new entry
    (its words: `text`, or none and versioned `data`, as `record` takes them).

    The new entry's data lists every target (`redacts`), which is what lets `verify_chain`
    accept the blanked rows. Same transaction rule as `record`; returns the new entry.
    """
    if not targets or any(
        t.incident_id != incident_id or t.redacted_at is not None for t in targets
    ):
        raise ValueError("redact needs unredacted entries of this incident")
    payload = {**(data or {}), "redacts": [redaction_ref(t) for t in targets]}
    entry = await record(
        conn, incident_id=incident_id, kind=kind, text=text, actor=actor,
        occurred_at=occurred_at, data=payload, announce=announce,
    )  # fmt: skip
    await timeline_sql.redact(conn, [t.id for t in targets], text=REDACTED_TEXT, at=occurred_at)
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
    redactions = _recorded_redactions(entries)
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
        if entry.redacted_at is not None:
            problems.extend(_redaction_problems(entry, redactions.get(entry.seq)))
        elif recomputed != entry.content_hash:
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


def _redaction_problems(
    entry: TimelineEntry, recorded: tuple[int, dict[str, Any]] | None
) -> list[str]:
    """A blanked entry's content can't be re-hashed: trust its stored content hash only if a
    later entry recorded this very redaction, and the row shows nothing but the marker."""
    if recorded is None or recorded[0] <= entry.seq or recorded[1] != redaction_ref(entry):
        return [f"entry {entry.seq} ({entry.kind}) was blanked without a recorded redaction"]
    if entry.text != REDACTED_TEXT or entry.data:
        return [f"entry {entry.seq} ({entry.kind}) was edited after its redaction"]
    return []


def _recorded_redactions(entries: list[TimelineEntry]) -> dict[int, tuple[int, dict[str, Any]]]:
    """seq of a blanked entry -> (seq of the entry that recorded it, what that entry recorded)."""
    found: dict[int, tuple[int, dict[str, Any]]] = {}
    for entry in entries:
        refs = entry.data.get("redacts") if entry.redacted_at is None else None
        for ref in refs if isinstance(refs, list) else []:
            if isinstance(ref, dict) and isinstance(ref.get("seq"), int):
                found.setdefault(ref["seq"], (entry.seq, ref))
    return found
