"""The post-mortem draft: the runbook's "Post-Mortem Template" filled from an incident's timeline.

`render(incident, entries)` is a pure function: no clock, no I/O, so the same timeline always
gives the same bytes (`icbot postmortem INC-n` prints the draft `/ic postmortem` posts as a
file). Times and figures come from the hash-chained entries, not from the incident row, so the
draft says what `icbot audit verify` can vouch for. What the timeline cannot know is left as the
template's own placeholders, for people to fill in.

Posting a draft is itself recorded (`Kind.POSTMORTEM_POSTED`), but a draft leaves those entries
out (`NOT_IN_DRAFT`): posting it does not change it, so the file in the thread and
`icbot postmortem` agree until the incident's timeline itself moves on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.core import wording
from bot.core.models import MITIGATED_STAGES, Incident, Status, TimelineEntry, who
from bot.core.text import inert
from bot.core.timefmt import human_duration
from bot.core.wording import Flavour
from bot.domain.incidents import stage_of
from bot.domain.scribe import CONTENT_KINDS, ScribeKind
from bot.domain.timeline import Kind

# Notes that prefill the Root Cause and Resolution sections: "Root cause: …", "resolution: …".
ROOT_CAUSE = re.compile(r"^\s*root cause\s*:\s*", re.I)
RESOLUTION = re.compile(r"^\s*resolution\s*:\s*", re.I)
MAX_LINE = 300  # characters of a quoted text on one timeline line

# Entries about the draft itself, which the draft does not count or show.
NOT_IN_DRAFT = frozenset({Kind.POSTMORTEM_POSTED})

# The template's placeholders, kept where the timeline has nothing to say.
SUMMARY = "[Brief description of what happened]"
IMPACT = "[# users affected, downtime]"
CAUSE = "[Technical root cause]"
RESOLVED_HOW = "[What was done to resolve]"
ACTION = "[Action item with owner]"


@dataclass(frozen=True)
class Event:
    at: datetime
    seq: int
    text: str


@dataclass(frozen=True)
class Pin:
    entry: TimelineEntry  # the `pinned` entry
    at: datetime  # when the message was said (its capture), else when it was pinned
    text: str | None  # its latest words; None if never captured
    deleted: bool


@dataclass(frozen=True)
class Figures:
    """The draft's headline figures, as its fields show them."""

    severity: str  # "SEV1 (declared as SEV2)"
    duration: str  # "14:00 - 15:11 UTC (1h 11m)"
    acknowledge: str  # time to acknowledge: "4m", or "not yet"
    mitigate: str
    resolve: str
    entries: int  # timeline entries the draft is built from

    def line(self) -> str:
        return (
            f"{self.severity} · time to acknowledge {self.acknowledge} · to mitigate"
            f" {self.mitigate} · to resolve {self.resolve}"
        )


@dataclass(frozen=True)
class _Moments:
    declared: TimelineEntry | None
    start: datetime
    ack: TimelineEntry | None
    mitigated: TimelineEntry | None
    resolved: TimelineEntry | None
    figures: Figures


def draft_entries(entries: Sequence[TimelineEntry]) -> list[TimelineEntry]:
    """The entries a draft is built from, in timeline order (`NOT_IN_DRAFT` left out)."""
    return sorted((e for e in entries if e.kind not in NOT_IN_DRAFT), key=lambda e: e.seq)


def figures(incident: Incident, entries: Sequence[TimelineEntry]) -> Figures:
    """The figures `render` puts at the top of the draft of the same entries."""
    return _moments(incident, draft_entries(entries)).figures


def _moments(incident: Incident, ordered: Sequence[TimelineEntry]) -> _Moments:
    declared = _first(ordered, Kind.DECLARED)
    start = declared.occurred_at if declared else incident.declared_at
    ack = _acknowledged(ordered)
    mitigated = _mitigated(ordered)
    resolved = _resolved(ordered)
    severity, first_severity = _severity(incident, ordered)

    def after(entry: TimelineEntry | None) -> str:
        if entry is None:
            return "not yet"
        return human_duration((entry.occurred_at - start).total_seconds())

    sev = severity.upper()
    if first_severity != severity:
        sev += f" (declared as {first_severity.upper()})"
    if resolved is not None:
        end = resolved.occurred_at
        crosses = end.astimezone(UTC).date() != start.astimezone(UTC).date()
        span = (
            f"{_time(start, with_date=crosses)} - {_time(end, with_date=crosses)} UTC"
            f" ({human_duration((end - start).total_seconds())})"
        )
    else:
        span = f"{_time(start, with_date=False)} UTC - ongoing (not resolved)"
    shown = Figures(
        severity=sev,
        duration=span,
        acknowledge=after(ack),
        mitigate=after(mitigated),
        resolve=after(resolved),
        entries=len(ordered),
    )
    return _Moments(declared, start, ack, mitigated, resolved, shown)


def render(incident: Incident, entries: Sequence[TimelineEntry]) -> str:
    """The draft in Markdown, ending with a newline."""
    ordered = draft_entries(entries)
    m = _moments(incident, ordered)
    start, f = m.start, m.figures
    events = _events(ordered, declared=m.declared, ack=m.ack, mitigated=m.mitigated)
    with_dates = any(e.at.astimezone(UTC).date() != start.astimezone(UTC).date() for e in events)

    def when(moment: datetime) -> str:
        return _time(moment, with_date=with_dates)

    summary = _summary(m.resolved)
    lines = [
        f"# Incident Post-Mortem: {incident.ref} {inert(incident.title)}",
        "",
        f"**Date**: {start.astimezone(UTC).date().isoformat()}",
        f"**Severity**: {f.severity}",
        f"**Duration**: {f.duration}",
        f"**Time to acknowledge**: {f.acknowledge}",
        f"**Time to mitigate**: {f.mitigate}",
        f"**Time to resolve**: {f.resolve}",
        f"**Impact**: {IMPACT}",
        "",
        "## Summary",
        inert(summary) if summary else SUMMARY,
        "",
        "## Timeline",
        "All times UTC.",
        *[f"- {when(e.at)} - {e.text}" for e in events],
        "",
        "## Root Cause",
        _marked_notes(ordered, ROOT_CAUSE) or CAUSE,
        "",
        "## Resolution",
        _marked_notes(ordered, RESOLUTION) or RESOLVED_HOW,
        "",
        "## Impact",
        "- Users affected: [number]",
        "- Services impacted: [list]",
        "- Data loss: [yes/no]",
        _regulatory(ordered),
        "",
        "## Action Items",
        *(_action_items(ordered) or [f"1. [ ] {ACTION}", f"2. [ ] {ACTION}"]),
        "",
        "## Lessons Learned",
        "- What went well",
        "- What could be improved",
        "",
        "## Prevention",
        "[How to prevent this in future]",
        "",
        "---",
        f"_Draft generated by icbot from the timeline of {incident.ref} ({f.entries} entries);"
        f" `icbot audit verify {incident.ref}` checks that timeline._",
    ]
    return "\n".join(lines) + "\n"


# -- the key moments ---------------------------------------------------------------------------


def _regulatory(entries: Sequence[TimelineEntry]) -> str:
    """Yes, with the reason, when a card number was kept out of the record (PCI DSS 12.10.7:
    a card number where it is not expected is an incident of its own)."""
    cards = sum(1 for e in entries if e.kind == Kind.REDACTED and e.data.get("card"))
    if not cards:
        return "- Regulatory impact: [yes/no]"
    times = "once" if cards == 1 else f"{cards} times"
    return (
        f"- Regulatory impact: yes — a card number was posted in the incident's thread ({times});"
        " it was kept out of the record but stays in Slack until deleted: assess it under"
        " PCI DSS 12.10.7"
    )


def _first(entries: Sequence[TimelineEntry], kind: str) -> TimelineEntry | None:
    return next((e for e in entries if e.kind == kind), None)


def _acknowledged(entries: Sequence[TimelineEntry]) -> TimelineEntry | None:
    """The first sign of a response, as `Incidents` stamps it: a role given or handed over, an
    update, a resolve, or an acknowledgement in PagerDuty."""
    for entry in entries:
        if entry.kind in (Kind.ROLE, Kind.HANDOVER, Kind.STATUS, Kind.RESOLVED):
            return entry
        if entry.kind == Kind.PAGERDUTY and entry.data.get("event") == "incident.acknowledged":
            return entry
    return None


def _stage(entry: TimelineEntry) -> Status | None:
    if entry.kind != Kind.STATUS:
        return None
    stage = entry.data.get("stage")
    try:
        return Status(stage) if isinstance(stage, str) else None
    except ValueError:
        return None


def _mitigated(entries: Sequence[TimelineEntry]) -> TimelineEntry | None:
    """The first update saying the bleeding stopped; resolving without one mitigates too."""
    for entry in entries:
        if _stage(entry) in MITIGATED_STAGES or entry.kind == Kind.RESOLVED:
            return entry
    return None


def _resolved(entries: Sequence[TimelineEntry]) -> TimelineEntry | None:
    """The last resolution, unless the incident was reopened after it."""
    last: TimelineEntry | None = None
    for entry in entries:
        if entry.kind == Kind.RESOLVED:
            last = entry
        elif entry.kind == Kind.REOPENED:
            last = None
    return last


def _severity(incident: Incident, entries: Sequence[TimelineEntry]) -> tuple[str, str]:
    """(severity now, severity when declared)."""
    declared = _first(entries, Kind.DECLARED)
    first = str(declared.data.get("severity") or incident.severity) if declared else None
    current = first
    for entry in entries:
        if entry.kind == Kind.SEVERITY and entry.data.get("to"):
            current = str(entry.data["to"])
            first = first or str(entry.data.get("from") or current)
    return current or incident.severity, first or incident.severity


def _summary(resolved: TimelineEntry | None) -> str | None:
    if resolved is None or not resolved.data.get("summary"):
        return None
    return str(resolved.data["summary"]).strip()


# -- the timeline section ----------------------------------------------------------------------


def _events(
    entries: Sequence[TimelineEntry],
    *,
    declared: TimelineEntry | None,
    ack: TimelineEntry | None,
    mitigated: TimelineEntry | None,
) -> list[Event]:
    events: list[Event] = []

    def add(entry: TimelineEntry, text: str, at: datetime | None = None) -> None:
        events.append(Event(at or entry.occurred_at, entry.seq, text))

    if declared is not None:
        sev = str(declared.data.get("severity") or "").upper()
        title = _line(str(declared.data.get("title") or ""))
        add(declared, f"Declared by {who(declared.actor)} as {sev}: {title}")
    if ack is not None:
        how = _line(_said(ack)).rstrip(".") if ack.kind == Kind.PAGERDUTY else who(ack.actor)
        add(ack, f"Acknowledged ({how}): response started")
    diagnosis = _first(entries, Kind.DIAGNOSIS)
    if diagnosis is not None:
        d = diagnosis.data
        add(
            diagnosis,
            f"First diagnosis `{d.get('playbook')}` ({_line(str(d.get('title') or ''))}):"
            f" {_line(str(d.get('verdict') or ''))}",
        )
    identified = next((e for e in entries if _stage(e) is Status.IDENTIFIED), None)
    if identified is not None:
        add(identified, _status_line("Root cause identified", identified, Status.IDENTIFIED))
    for entry in entries:
        if entry.kind == Kind.SEVERITY:
            frm, to = str(entry.data.get("from") or "?"), str(entry.data.get("to") or "?")
            add(entry, f"Severity {frm.upper()} → {to.upper()} by {who(entry.actor)}")
        elif entry.kind == Kind.REMEDIATION_RESULT:
            add(entry, f"Remediation: {_line(_said(entry))}")
        elif entry.kind == Kind.REDACTED:  # its text names kinds and a person, never the data
            add(entry, _line(_said(entry)).rstrip(".").capitalize())
        elif entry.kind == Kind.REOPENED:
            add(entry, f"Reopened by {who(entry.actor)}: {_line(str(entry.data.get('reason')))}")
        elif entry.kind == Kind.RESOLVED:
            summary = _summary(entry)
            add(
                entry,
                f"Resolved by {who(entry.actor)}" + (f": {_line(summary)}" if summary else ""),
            )
    if mitigated is not None and mitigated.kind == Kind.STATUS:
        add(mitigated, _status_line("Mitigated", mitigated, Status.MITIGATED))
    for pin in _pins(entries):
        add(pin.entry, _pin_line(pin), at=pin.at)
    return sorted(events, key=lambda e: (e.at, e.seq))


def _status_line(label: str, entry: TimelineEntry, stage: Status) -> str:
    """`Mitigated (<@U>): rolled back` from the update "Mitigated: rolled back"."""
    text = str(entry.data.get("text") or "")
    if stage_of(text) is stage:
        parts = text.strip().split(maxsplit=1)
        text = parts[1].lstrip(".:;,!-— ") if len(parts) > 1 else ""
    tail = f": {_line(text)}" if text.strip() else ""
    return f"{label} ({who(entry.actor)}){tail}"


def _pins(entries: Sequence[TimelineEntry]) -> list[Pin]:
    """Messages pinned and not unpinned since, with their latest words."""
    active: dict[str, TimelineEntry] = {}
    for entry in entries:
        ts = str(entry.data.get("ts") or "")
        if entry.kind == ScribeKind.PINNED:
            active.setdefault(ts, entry)
        elif entry.kind == ScribeKind.UNPINNED:
            active.pop(ts, None)
    pins: list[Pin] = []
    for ts, pinned in active.items():
        said = [e for e in entries if e.data.get("ts") == ts and e.kind in CONTENT_KINDS]
        words = [e for e in said if "text" in e.data]  # a redacted entry has no data left
        captured = next((e for e in said if e.kind == ScribeKind.MESSAGE), None)
        deleted = any(
            e.kind == ScribeKind.MESSAGE_DELETED and e.data.get("ts") == ts for e in entries
        )
        pins.append(
            Pin(
                entry=pinned,
                at=captured.occurred_at if captured else pinned.occurred_at,
                text=str(words[-1].data["text"]) if words else None,
                deleted=deleted,
            )
        )
    return pins


def _pin_line(pin: Pin) -> str:
    data: dict[str, Any] = pin.entry.data
    if pin.deleted:
        said = "(message deleted)"
    elif pin.text is None:
        said = "(its text was not captured)"
    else:
        said = f"“{_line(pin.text)}”"
    link = f" ([message]({data['permalink']}))" if data.get("permalink") and not pin.deleted else ""
    author = who(str(data.get("author") or "icbot"))
    return f"Key event, pinned by {who(pin.entry.actor)}: {said} — {author}{link}"


# -- sections prefilled from notes ---------------------------------------------------------------


def marked_notes(entries: Sequence[TimelineEntry], marker: re.Pattern[str]) -> list[str]:
    """The words after `marker` (`Root cause:`, `Resolution:`) of each note that has some."""
    found: list[str] = []
    for entry in entries:
        if entry.kind != Kind.NOTE:
            continue
        text = str(entry.data.get("text") or "")
        match = marker.match(text)
        if match and text[match.end() :].strip():
            found.append(text[match.end() :].strip())
    return found


def _marked_notes(entries: Sequence[TimelineEntry], marker: re.Pattern[str]) -> str | None:
    found = [inert(text) for text in marked_notes(entries, marker)]
    if not found:
        return None
    if len(found) == 1:
        return found[0]
    return "\n".join(f"- {' '.join(text.split())}" for text in found)


def _action_items(entries: Sequence[TimelineEntry]) -> list[str]:
    """Each item with its owner, ticked when done, and its Jira issue when one was filed."""
    done = {e.data.get("item") for e in entries if e.kind == Kind.ACTION_ITEM_DONE}
    filed = {e.data.get("item"): e.data for e in entries if e.kind == Kind.JIRA_LINKED}
    items: list[str] = []
    for entry in entries:
        if entry.kind != ScribeKind.ACTION_ITEM:
            continue
        owner = entry.data.get("owner")
        whose = who(str(owner)) if owner else "[owner]"
        tick = "x" if entry.seq in done else " "
        jira = filed.get(entry.seq)
        issue = f" ([{_line(str(jira['key']))}]({jira['url']}))" if jira else ""
        text = _line(str(entry.data.get("text") or ""))
        items.append(f"{len(items) + 1}. [{tick}] {text} — {whose}{issue}")
    return items


# -- formatting ----------------------------------------------------------------------------------


def _said(entry: TimelineEntry) -> str:
    """The entry's words as the draft writes them (Markdown; no leading emoji)."""
    return wording.entry_text(entry, Flavour.MARKDOWN)


def _line(text: str) -> str:
    """Outside text as one inert line of at most MAX_LINE characters."""
    flat = " ".join(inert(text).split())
    return flat if len(flat) <= MAX_LINE else flat[: MAX_LINE - 1] + "…"


def _time(moment: datetime, *, with_date: bool) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M")
