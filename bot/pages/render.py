"""The incident page as HTML: data gathered from one timeline snapshot, rendered by Jinja2.

Autoescape is on for every template, so whatever people typed (titles, updates, notes,
captured messages) is text on the page, never markup; Slack's mrkdwn is turned into readable
segments first (`bot.pages.text`). The page has no script at all and one small stylesheet.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jinja2

from bot.core import wording
from bot.core.models import Incident, TimelineEntry, who
from bot.core.numfmt import plural
from bot.core.timefmt import human_duration
from bot.core.wording import Flavour
from bot.domain import postmortem
from bot.domain.policy import SeverityPolicy
from bot.domain.timeline import FOLDED, Kind
from bot.pages import svg
from bot.pages.export import Snapshot
from bot.pages.text import Segment, plain, segments

APPROVAL_KINDS = frozenset(
    {
        Kind.APPROVAL_REQUESTED,
        Kind.APPROVAL_GIVEN,
        Kind.APPROVED,
        Kind.APPROVAL_DENIED,
        Kind.APPROVAL_EXPIRED,
        Kind.REMEDIATION_STARTED,
        Kind.REMEDIATION_RESULT,
    }
)


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bot.pages", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["plural"] = plural  # `3 gaps`, `1 problem`: counted nouns as people write them
    return env


@dataclass(frozen=True)
class Row:
    seq: int
    time: str
    kind: str
    label: str
    actor: str
    text: list[Segment]
    key: bool  # a key event (its own reply in the thread); chatter is folded
    redacted: bool


@dataclass(frozen=True)
class Fold:
    """A run of chatter, folded under one line (a `<details>`: opens without script)."""

    rows: list[Row]


@dataclass
class Approval:
    pending_id: str
    action: str
    requested_by: str = ""
    requested_at: str = ""
    preview: list[Segment] = field(default_factory=list)
    approvers: list[str] = field(default_factory=list)
    outcome: str = "pending"
    result: list[Segment] = field(default_factory=list)


@dataclass(frozen=True)
class Links:
    """The page's own links (each with its token)."""

    page: str
    svg: str
    markdown: str
    json: str
    expires: str


def _time(moment: datetime, *, with_date: bool) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def _person(actor: str) -> str:
    return plain(who(actor))


def timeline_rows(entries: Sequence[TimelineEntry]) -> list[Row | Fold]:
    """Every entry, in order; consecutive chatter grouped into a `Fold`."""
    days = {e.occurred_at.astimezone(UTC).date() for e in entries}
    items: list[Row | Fold] = []
    for e in sorted(entries, key=lambda e: e.seq):
        row = Row(
            seq=e.seq,
            time=_time(e.occurred_at, with_date=len(days) > 1),
            kind=e.kind,
            label=e.kind.replace("_", " "),
            actor=_person(e.actor),
            text=segments(wording.entry_text(e, Flavour.SLACK, typed=True)),
            key=e.kind not in FOLDED,
            redacted=e.redacted_at is not None,
        )
        if row.key:
            items.append(row)
        elif items and isinstance(items[-1], Fold):
            items[-1].rows.append(row)
        else:
            items.append(Fold([row]))
    return items


def approvals(entries: Sequence[TimelineEntry]) -> list[Approval]:
    """Each proposed action: who asked, what was shown, who approved, what happened."""
    found: dict[str, Approval] = {}
    for e in sorted(entries, key=lambda e: e.seq):
        if e.kind not in APPROVAL_KINDS or "pending_id" not in e.data:
            continue
        key = str(e.data["pending_id"])
        item = found.setdefault(key, Approval(pending_id=key, action=str(e.data.get("action", ""))))
        if e.kind == Kind.APPROVAL_REQUESTED:
            item.requested_by = _person(e.actor)
            item.requested_at = _time(e.occurred_at, with_date=True)
            item.preview = segments(wording.entry_text(e, Flavour.SLACK, typed=True))
        elif e.kind in (Kind.APPROVAL_GIVEN, Kind.APPROVED):
            item.approvers.append(_person(e.actor))
            item.outcome = "approved"
        elif e.kind == Kind.APPROVAL_DENIED:
            item.outcome = f"denied by {_person(e.actor)}"
        elif e.kind == Kind.APPROVAL_EXPIRED:
            item.outcome = "expired"
        elif e.kind == Kind.REMEDIATION_STARTED:
            item.outcome = "running"
        elif e.kind == Kind.REMEDIATION_RESULT:
            item.outcome = "done" if e.data.get("ok") is True else "failed"
            item.result = segments(wording.entry_text(e, Flavour.SLACK, typed=True))
    return list(found.values())


def card(incident: Incident, policy: SeverityPolicy, *, now: datetime) -> dict[str, Any]:
    level = policy.levels.get(incident.severity)
    end = incident.resolved_at or now
    took = human_duration((end - incident.declared_at).total_seconds())
    pd = incident.pagerduty_url or ""
    return {
        "ref": incident.ref,
        "title": plain(incident.title),
        "severity": incident.severity.upper(),
        "severity_key": incident.severity,
        "severity_name": level.name if level is not None else "",
        "status": incident.status.value,
        "declared": _time(incident.declared_at, with_date=True) + " UTC",
        "age": f"resolved after {took}" if incident.resolved_at else f"open for {took}",
        "roles": [(role, plain(who(user))) for role, user in sorted(incident.roles.items())],
        "pagerduty_url": pd if pd.startswith(("https://", "http://")) else None,
        "pagerduty_id": incident.pagerduty_id,
    }


def page_html(snapshot: Snapshot, policy: SeverityPolicy, *, now: datetime, links: Links) -> str:
    incident, entries = snapshot.incident, snapshot.entries
    picture = svg.picture(incident, entries, policy, now=now)
    return (
        environment()
        .get_template("incident.html")
        .render(
            card=card(incident, policy, now=now),
            svg=svg.render_svg(picture),
            picture=picture,
            rows=timeline_rows(entries),
            entry_count=len(entries),
            approvals=approvals(entries),
            draft=plain(postmortem.render(incident, entries)),
            verification=snapshot.verification,
            links=links,
            generated=_time(now, with_date=True) + " UTC",
        )
    )


def forbidden_html() -> str:
    """The page for a bad, expired or other-incident link: nothing of any incident on it."""
    return environment().get_template("forbidden.html").render()


def not_found_html() -> str:
    return environment().get_template("not_found.html").render()
