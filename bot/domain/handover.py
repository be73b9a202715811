"""The briefing a role's new holder gets with `/ic handover`. Pure functions, no I/O, no Slack.

`briefing(...)` turns the incident as it is at the handover, the timeline entries of the last
30 minutes, its action items and its pending approvals into plain JSON data. That data is stored
in the handover's own timeline entry (so it is hash-chained, and what was briefed can be shown
again byte for byte later); `blocks.handover_reply` renders it in the thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.core import wording
from bot.core.models import IC, STANDARD_ROLES, Incident, TimelineEntry, who
from bot.core.text import compact
from bot.core.wording import Code, Flavour, Person, Piece
from bot.domain.timeline import Kind, ScribeKind
from bot.store.actions import PendingAction

WINDOW = timedelta(minutes=30)
MAX_RECENT = 12  # entries of the window listed; the rest are counted ("and N more")
MAX_ACTIONS = 10
MAX_APPROVALS = 5
MAX_ITEM = 160  # characters of one listed entry, action item or status text line
MAX_STATUS = 600  # characters of the last status update quoted

# How much an entry of the window matters to someone taking over (lower first). Changes to the
# incident's state and decisions first; people's own words next; the bot's routine last.
RELEVANCE: dict[str, int] = {
    Kind.SEVERITY: 0, Kind.STATUS: 0, Kind.RESOLVED: 0, Kind.REOPENED: 0, Kind.DECLARED: 0,
    Kind.ROLE: 0, Kind.HANDOVER: 0, Kind.REMEDIATION_RESULT: 0, Kind.APPROVED: 0,
    Kind.APPROVAL_DENIED: 0, ScribeKind.PINNED: 0,
    Kind.ESCALATED: 1, Kind.PROMPT_ESCALATED: 1, Kind.PAGED: 1, Kind.DIAGNOSIS: 1,
    Kind.APPROVAL_REQUESTED: 1, Kind.APPROVAL_EXPIRED: 1, Kind.REMEDIATION_STARTED: 1,
    Kind.PAGERDUTY: 1, Kind.ALERT_FIRING: 1, Kind.ALERT_RESOLVED: 1, Kind.NOTE: 1,
    ScribeKind.ACTION_ITEM: 1,
    ScribeKind.MESSAGE: 2, ScribeKind.MESSAGE_EDITED: 2, Kind.APPROVAL_GIVEN: 2,
    Kind.DIAGNOSIS_STARTED: 2, Kind.CHECKLIST_TICK: 2,
    Kind.PROMPT: 3, Kind.CHECKLIST: 3, ScribeKind.UNPINNED: 3, ScribeKind.MESSAGE_DELETED: 3,
}  # fmt: skip
UNRANKED = 2
# An item, and what closes one (ticked in Slack or resolved in Jira: data["item"] = its seq).
ACTION_ITEM_KINDS = (ScribeKind.ACTION_ITEM, Kind.ACTION_ITEM_DONE)

# The word to type for a role (`/ic handover @x ic`): the parser reads one word.
ROLE_WORDS = {IC: "ic", "comms lead": "comms"}


def role_word(role: str) -> str:
    return ROLE_WORDS.get(role, role.replace(" ", "-"))


def roles_held(incident: Incident, user: str) -> list[str]:
    """The roles `user` holds, incident commander first, then the other standard roles."""
    held = [role for role, holder in incident.roles.items() if holder == user]
    rank = {role: i for i, role in enumerate(STANDARD_ROLES)}
    return sorted(held, key=lambda role: rank.get(role, len(rank)))


def roles_to_name(incident: Incident) -> list[Piece]:
    """Every role one could hand over, with its holder, as wording pieces: in Slack
    `` `ic` (held by <@U1>), `scribe` (nobody) ``."""
    names = [*STANDARD_ROLES, *(r for r in incident.roles if r not in STANDARD_ROLES)]
    shown: list[Piece] = []
    for role in names:
        holder = incident.roles.get(role)
        if shown:
            shown.append(", ")
        shown += [Code(role_word(role)), " ("]
        shown += ["held by ", Person(holder), ")"] if holder else ["nobody)"]
    return shown


# People's own words (which a deletion in Slack must be able to take back) are not copied into
# the briefing: it is stored in a hash-chained entry and posted as a reply nobody re-renders.
# The briefing names the message instead; its words stay in the thread and the timeline only.
WORDLESS: dict[str, str] = {
    ScribeKind.MESSAGE: "wrote in the thread",
    ScribeKind.MESSAGE_EDITED: "edited a message in the thread",
}


def _line(entry: TimelineEntry) -> str:
    said = WORDLESS.get(entry.kind)
    if said is not None:
        return f"{who(entry.actor)} {said} (#{entry.seq})"
    return compact(wording.entry_text(entry, Flavour.SLACK), MAX_ITEM)


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())


def briefing(
    incident: Incident,
    *,
    severity_name: str,
    window: Sequence[TimelineEntry],
    action_items: Sequence[TimelineEntry],
    pending: Sequence[PendingAction],
    now: datetime,
) -> dict[str, Any]:
    """What the new holder needs, as JSON data. `incident` is as it is after the handover;
    `window` holds the entries of the last `WINDOW` before it."""
    roles = [[role, incident.roles.get(role)] for role in STANDARD_ROLES]
    roles += [[role, user] for role, user in incident.roles.items() if role not in STANDARD_ROLES]
    last_status = None
    if incident.last_status and incident.last_status_at is not None:
        last_status = {
            "text": compact(incident.last_status, MAX_STATUS),
            "ago_s": _seconds(now - incident.last_status_at),
        }
    done = {e.data.get("item") for e in action_items if e.kind == Kind.ACTION_ITEM_DONE}
    items = [
        e
        for e in action_items
        if e.kind == ScribeKind.ACTION_ITEM and e.redacted_at is None and e.seq not in done
    ]
    recent = [e for e in window if e.redacted_at is None and now - e.occurred_at <= WINDOW]
    ranked = sorted(recent, key=lambda e: (RELEVANCE.get(e.kind, UNRANKED), e.seq))
    return {
        "title": incident.title,
        "severity": incident.severity,
        "severity_name": severity_name,
        "status": incident.status.value,
        "open_s": _seconds(now - incident.declared_at),
        "last_status": last_status,
        "next_prompt_in_s": (
            _seconds(incident.next_prompt_at - now) if incident.next_prompt_at else None
        ),
        "unanswered": incident.unanswered,
        "roles": roles,
        "window_s": _seconds(WINDOW),
        "recent": [
            {
                "seq": e.seq,
                "kind": e.kind,
                "ago_s": _seconds(now - e.occurred_at),
                "text": _line(e),
            }
            for e in ranked[:MAX_RECENT]
        ],
        "recent_total": len(ranked),
        "actions": [
            {
                "seq": e.seq,
                "text": compact(
                    str(e.data.get("text") or wording.entry_text(e, Flavour.SLACK)), MAX_ITEM
                ),
                "owner": e.data.get("owner"),
            }
            for e in items[:MAX_ACTIONS]
        ],
        "actions_total": len(items),
        "approvals": [
            {
                "id": p.id,
                "label": compact(p.label, MAX_ITEM),
                "action": p.action,
                "requested_by": p.requested_by,
                "approvals": len(p.approvals),
                "required": p.required,
                "expires_in_s": _seconds(p.expires_at - now),
            }
            for p in pending[:MAX_APPROVALS]
        ],
        "approvals_total": len(pending),
    }
