"""What people read of the timeline, rendered from its data in one place.

The domain records what happened as data (`kind` plus `data` fields: actor, role, severity,
label, counts…); this module turns an entry into text, in three flavours:

* `Flavour.SLACK`: Slack mrkdwn, as the thread, the card and `/ic timeline` show it. People are
  `<@U…>` mentions (Slack notifies them, as it did before), outside text goes through
  `bot.core.text.inert`.
* `Flavour.MARKDOWN`: the post-mortem draft (a Markdown file): `**bold**`, outside text inert,
  people written as the draft writes them (`bot.core.models.who`), no emoji codes.
* `Flavour.PLAIN`: no markup at all (page titles, the shell, e-mail): `@U…` for a person, a
  link as its target, no `*`, no backticks, no emoji codes.

**Versions.** An entry whose `data["v"]` is `VERSION` (2) is rendered from its data. Its stored
`text` is the Slack rendering at the time it was recorded, with outside text as typed
(`stored_text`): the hash covers it, the event stream and the evidence bundle carry it, and
readers that do not render still read what they always did. Older rows (v1: no `"v"`) are
their stored text, shown exactly as before; they hash and verify unchanged.

Renderers are keyed by the `Kind` values of `bot.domain.timeline` (this layer cannot import
the domain; `tests/test_wording.py` checks every key is a kind). A renderer never raises on odd
data: a missing or mistyped field reads as empty, so an entry always renders.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from string import Formatter
from typing import Any

from bot.core import guard
from bot.core.models import SYSTEM_ACTORS, TimelineEntry, incident_ref, who
from bot.core.numfmt import measured, plural
from bot.core.text import inert
from bot.core.timefmt import clock_time, human_duration

VERSION = 2  # data["v"] of an entry rendered from its data


class Flavour(StrEnum):
    SLACK = "slack"
    MARKDOWN = "markdown"
    PLAIN = "plain"


# -- pieces: what a renderer returns -----------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """A Slack user id or a system actor (`icbot`, `pagerduty:Ana Ruiz`)."""

    actor: str


@dataclass(frozen=True)
class Said:
    """Text that came from outside (typed, or from a vendor): inert wherever it is shown."""

    text: str


@dataclass(frozen=True)
class Strong:
    """A name that stands out (a remediation's label, an alert's name); outside text too."""

    text: str


@dataclass(frozen=True)
class Code:
    """A command, an action's name, a service: monospace; outside text too."""

    text: str


@dataclass(frozen=True)
class Emoji:
    """The bot's own mark at the start of a line (`warning`, `x`); Slack only, or a sign."""

    name: str


@dataclass(frozen=True)
class Ping:
    """Someone the bot calls on: a user or user-group id, `CHANNEL`, or a name as configured.
    A real ping in Slack (never made inert: these are the bot's own words), words elsewhere."""

    handle: str


@dataclass(frozen=True)
class Link:
    """A link the bot made (the incident page, its picture): `<url>` in Slack and Markdown,
    the address alone in plain text."""

    url: str


CHANNEL = "!channel"  # a ping of the whole channel (nobody is incident commander yet)

Piece = str | Person | Said | Strong | Code | Emoji | Ping | Link  # a str is the bot's own words

# The emoji the bot writes that have a plain sign; the others are left out of plain text.
SIGNS = {
    "white_check_mark": "✓", "x": "✗", "warning": "⚠", "heavy_check_mark": "✓", "pushpin": "📌",
}  # fmt: skip


def is_v2(data: Mapping[str, Any]) -> bool:
    return data.get("v") == VERSION


def data(**fields: Any) -> dict[str, Any]:
    """An entry's data in this version: `fields` plus the version mark."""
    return {"v": VERSION, **fields}


# -- rendering ---------------------------------------------------------------------------------


def render(
    kind: str,
    *,
    actor: str,
    incident_id: int,
    data: Mapping[str, Any],
    flavour: Flavour,
    typed: bool = False,
) -> str | None:
    """The entry's text from its data, or None if no renderer knows its kind."""
    pieces = _pieces(kind, actor, incident_id, data)
    return None if pieces is None else join(pieces, flavour, typed=typed)


def stored_text(kind: str, *, actor: str, incident_id: int, data: Mapping[str, Any]) -> str:
    """What a v2 entry stores as its `text`: the Slack rendering, outside text as typed."""
    pieces = _pieces(kind, actor, incident_id, data)
    if pieces is None:
        raise ValueError(f"no wording for timeline entries of kind {kind!r}")
    return join(pieces, Flavour.SLACK, typed=True)


def entry_text(entry: TimelineEntry, flavour: Flavour, *, typed: bool = False) -> str:
    """What people read of `entry` in `flavour`.

    `typed`: outside text as it was typed (Slack flavour: the stored text exactly), for a
    reader that makes Slack text safe its own way (the incident page's `bot.pages.text`).

    v2: rendered from its data. v1 (and kinds without a renderer): its stored text, as before:
    Slack gets it unchanged (the caller makes it inert as it always did), Markdown inert and
    without a leading emoji code, plain text without any markup the bot put there.
    """
    if is_v2(entry.data) and entry.redacted_at is None:
        text = render(
            entry.kind,
            actor=entry.actor,
            incident_id=entry.incident_id,
            data=entry.data,
            flavour=flavour,
            typed=typed,
        )
        if text is not None:
            return text
    if flavour is Flavour.SLACK:
        return entry.text
    if flavour is Flavour.MARKDOWN:
        return inert(_LEADING_EMOJI.sub("", entry.text))
    return plain(_LEADING_EMOJI.sub("", entry.text))


def join(pieces: Sequence[Piece], flavour: Flavour, *, typed: bool = False) -> str:
    """Pieces as one text. `typed`: outside text as it was typed (what the row stores)."""
    out: list[str] = []
    skip_space = False
    for piece in pieces:
        if isinstance(piece, Emoji):
            sign = SIGNS.get(piece.name)
            if flavour is Flavour.SLACK:
                out.append(f":{piece.name}:")
            elif sign is not None:
                out.append(sign)
            else:
                skip_space = True  # the emoji and the space after it
            continue
        text = _piece(piece, flavour, typed=typed)
        if skip_space:
            text, skip_space = text.removeprefix(" "), False
        out.append(text)
    return "".join(out)


def _piece(piece: Piece, flavour: Flavour, *, typed: bool) -> str:
    if isinstance(piece, str):
        return piece
    if isinstance(piece, Person):
        return plain_who(piece.actor) if flavour is Flavour.PLAIN else who(piece.actor)
    if isinstance(piece, Ping):
        return _ping(piece, flavour)
    if isinstance(piece, Emoji):  # `join` places emoji; here only for completeness
        return f":{piece.name}:" if flavour is Flavour.SLACK else SIGNS.get(piece.name, "")
    if isinstance(piece, Link):
        return piece.url if flavour is Flavour.PLAIN else f"<{piece.url}>"
    outside = piece.text
    if flavour is Flavour.PLAIN:
        return plain(outside)
    shown = outside if typed else inert(outside)
    if isinstance(piece, Strong):
        return f"*{shown}*" if flavour is Flavour.SLACK else f"**{shown}**"
    if isinstance(piece, Code):
        return f"`{shown}`"
    return shown


def plain_who(actor: str) -> str:
    """`@U123`, or the system's name (`PagerDuty (Ana Ruiz)`), without markup."""
    system, _, person = actor.partition(":")
    if person and system in SYSTEM_ACTORS:
        return f"{SYSTEM_ACTORS[system]} ({person})"
    return SYSTEM_ACTORS.get(actor) or f"@{actor}"


# Slack's `<…>` forms: a mention, channel, special mention, or a link with a scheme.
_TOKEN = re.compile(
    r"<([@#!][^<>\s|]*(?:\|[^<>]*)?|[A-Za-z][A-Za-z0-9+.-]*:[^<>\s|]+(?:\|[^<>]*)?)>"
)
_LEADING_EMOJI = re.compile(r"^(:[a-z0-9_+-]+:\s*)+")
_BOT_MARKUP = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])|`([^`\n]+)`")


def _plain_token(match: re.Match[str]) -> str:
    target, _, label = match.group(1).partition("|")
    if target[0] in "@#":
        return target[0] + (label.lstrip(target[0]) or target[1:])
    if target[0] == "!":
        name = target[1:].split("^", 1)[0]
        return f"@{name}" if name in ("here", "channel", "everyone") else label or f"@{name}"
    return f"{label} ({target})" if label and label != target else target


def plain(text: str) -> str:
    """Slack text without its markup: mentions as `@U1`, links as their target, `&lt;` as `<`;
    the bot's `*bold*` and `` `code` `` as their words."""
    text = _BOT_MARKUP.sub(lambda m: m.group(1) or m.group(2), text)
    text = _TOKEN.sub(_plain_token, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# -- field readers that never raise --------------------------------------------------------------


def _s(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return "" if value is None else str(value)


def _n(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return int(value)


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    return value if isinstance(value, list) else []


def _map(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


# -- the kinds ---------------------------------------------------------------------------------

Renderer = Callable[[str, int, Mapping[str, Any]], list[Piece]]
RENDERERS: dict[str, Renderer] = {}


def _renders(*kinds: str) -> Callable[[Renderer], Renderer]:
    def register(fn: Renderer) -> Renderer:
        for kind in kinds:
            RENDERERS[kind] = fn
        return fn

    return register


def _pieces(kind: str, actor: str, incident_id: int, data: Mapping[str, Any]) -> list[Piece] | None:
    renderer = RENDERERS.get(kind)
    return None if renderer is None else renderer(actor, incident_id, data)


@_renders("status_update")
def _status(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    return ["Status update from ", Person(actor), ": ", Said(_s(d, "text"))]


@_renders("note")
def _note(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    return ["Note from ", Person(actor), ": ", Said(_s(d, "text"))]


@_renders("role_assigned")
def _role(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    previous = _s(d, "previous")
    replacing: list[Piece] = [", replacing ", Person(previous)] if previous else []
    return [
        Person(_s(d, "user")), " is now ", Said(_s(d, "role")), *replacing,
        " (assigned by ", Person(actor), ").",
    ]  # fmt: skip


@_renders("severity_changed")
def _severity(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    frm, to = _s(d, "from").upper(), _s(d, "to").upper()
    alert = _map(d, "alert")
    by: list[Piece] = (
        [
            "by alert ", Strong(_s(alert, "name")), " on ", Code(_s(alert, "service")),
            " (severity ", Said(_s(alert, "severity")), ")",
        ]
        if alert
        else ["by ", Person(actor)]
    )  # fmt: skip
    return [f"Severity {frm} → {to} (", Said(_s(d, "name")), ") ", *by, "."]


@_renders("declared")
def _declared(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    sev = _s(d, "severity").upper()
    lead: list[Piece] = (
        [" ", Person(actor), " is incident commander until reassigned."]
        if d.get("commander")
        else [" Nobody is incident commander yet: ", Code("/ic assign @you ic"), "."]
    )
    paging = _s(d, "paging")
    if paging == "linked":
        said = f" Triggered in PagerDuty as #{_n(d, 'pagerduty_number')}."
    elif paging == "opening":
        said = " Opening a PagerDuty incident."
    else:
        said = " PagerDuty is not configured, so nobody was paged."
    return [
        Person(actor), f" declared {incident_ref(incident)} ({sev} · ", Said(_s(d, "name")),
        "): ", Said(_s(d, "title")), ".", *lead, said,
    ]  # fmt: skip


@_renders("resolved")
def _resolved(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    out: list[Piece] = [
        Person(actor),
        f" resolved {incident_ref(incident)} after {human_duration(_n(d, 'duration_s'))}.",
    ]
    if _s(d, "summary"):
        out += [" Summary: ", Said(_s(d, "summary"))]
    cancelled = [c for c in _list(d, "cancelled_requests") if isinstance(c, dict)]
    if cancelled:
        out.append("\nCancelled pending requests: ")
        for i, request in enumerate(cancelled):
            out += [", " if i else "", Strong(_s(request, "label")), f" (#{_n(request, 'id')})"]
    grafana = _map(d, "grafana")
    if grafana:
        out += ["\n", *_grafana(grafana)]
    return out


def _grafana(g: Mapping[str, Any]) -> list[Piece]:
    """What a resolve did about Grafana (bot/domain/grafana.py): annotating, or why not."""
    named: list[Piece] = []
    for panel in (p for p in _list(g, "dashboards") if isinstance(p, dict) and _s(p, "uid")):
        named += [", " if named else "", Code(_s(panel, "uid"))]
        named += [f" panel {_n(panel, 'panel_id')}"] if _n(panel, "panel_id") else []
    if not g.get("configured", True):
        return ["Grafana is not configured, so ", *named, " got no annotation."]
    where = named or ["an organisation-wide annotation"]
    again = " (updating the annotations of the first resolve)" if _n(g, "resolution") > 1 else ""
    return ["Grafana: annotating the impact window (", *where, f"){again}."]


@_renders("handover")
def _handover(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    user, previous, role = _s(d, "user"), _s(d, "previous"), Said(_s(d, "role"))
    ref = incident_ref(incident)
    if previous and previous == actor:
        return [Person(actor), " handed ", role, f" of {ref} over to ", Person(user), "."]
    since: list[Piece] = [" from ", Person(previous)] if previous else [" (nobody held it)"]
    by: list[Piece] = [] if actor == user else [", handed over by ", Person(actor)]
    return [Person(user), " takes over as ", role, f" of {ref}", *since, *by, "."]


@_renders("reopened")
def _reopened(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    return [Person(actor), f" reopened {incident_ref(incident)}: ", Said(_s(d, "reason"))]


@_renders("paged")
def _paged(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    message = _s(d, "message")
    tail: list[Piece] = [": ", Said(message)] if message else []
    return [Person(actor), " paged ", Said(_s(d, "who")), " through PagerDuty", *tail]


@_renders("checklist_ticked")
def _ticked(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    out: list[Piece] = [Person(actor), " "]
    steps = [("ticked", s) for s in _list(d, "ticked")]
    steps += [("unticked", s) for s in _list(d, "unticked")]
    for i, (verb, step) in enumerate(steps):
        out += [", " if i else "", f"{verb} “", Said(str(step)), "”"]
    done = f"{_n(d, 'done')}/{_n(d, 'of')} done"
    return [*out, " — ", Said(_s(d, "title")), f" ({done})."]


# -- approvals and remediations ----------------------------------------------------------------

APPROVER_WORDS = {
    "anyone": "anyone",
    "incident_commander": "the incident commander",
    "oncall": "whoever is on call in PagerDuty",
}


def approvers(rules: Sequence[Any]) -> list[Piece]:
    """Who may approve (`approvals.yml` rules): "anyone or <@U1> or the dba"."""
    out: list[Piece] = []
    for i, rule in enumerate(str(r) for r in rules):
        kind, _, rest = rule.partition(":")
        out.append(" or " if i else "")
        if rule in APPROVER_WORDS:
            out.append(APPROVER_WORDS[rule])
        elif kind == "user":
            out.append(Person(rest))
        elif kind == "group":  # the bot's own ping of a user group, inert where posted
            out.append(Said(f"<!subteam^{rest}>"))
        else:
            out += ["the ", Said(rest)]
    return out


@_renders("approval_requested")
def _requested(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    preview = "; ".join(str(line) for line in _list(d, "preview"))
    return [
        Person(actor), " requests ", Strong(_s(d, "label")), " (", Code(_s(d, "action")),
        f"), needing {plural(_n(d, 'required'), 'approval')} from ",
        *approvers(_list(d, "approvers")),
        ": ", Said(preview),
    ]  # fmt: skip


@_renders("approval_given", "approved", "approval_denied")
def _decided(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    label = Strong(_s(d, "label"))
    decision = _s(d, "decision")
    if decision == "denied":
        return [Person(actor), " denied ", label, "; nothing was done."]
    if decision == "approved":
        return [Person(actor), " approved ", label, "; running it now."]
    counted = f" ({_n(d, 'approvals')} of {_n(d, 'required')}); waiting for another approver."
    return [Person(actor), " approved ", label, counted]


@_renders("approval_expired")
def _expired(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    return [Strong(_s(d, "label")), " expired without enough approvals; nothing was done."]


@_renders("remediation_started")
def _started(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    return ["Running ", Strong(_s(d, "label")), "…"]


@_renders("remediation_result")
def _result(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    label, summary = _s(d, "label"), _s(d, "summary")
    late = " (it finished after it had been reported interrupted)" if d.get("late") else ""
    if d.get("changed"):
        return [
            Emoji("warning"), " ", Strong(label), " was not run: ", Said(summary),
            ". Nothing was done; ", Strong("Request again"), " asks for a fresh approval.", late,
        ]  # fmt: skip
    if d.get("ok") is True or d.get("ran"):
        mark = Emoji("white_check_mark" if d.get("ok") is True else "x")
        verification = _s(d, "verification")
        return [mark, " ", Said(label), ": ", Said(summary), ". Verification: ",
                Said(verification), late]  # fmt: skip
    return [Emoji("x"), " ", Said(label), ": ", Said(summary), ".", late]


# -- alerts ------------------------------------------------------------------------------------

MAX_LISTED = 5  # alerts named in one entry's words; the rest are counted


def _alert(alert: Mapping[str, Any]) -> list[Piece]:
    return [Strong(_s(alert, "alert_name")), " on ", Code(_s(alert, "service"))]


def _alerts(d: Mapping[str, Any], *, again: bool) -> list[Piece]:
    """The first MAX_LISTED alerts named, "and N more" of the `count`."""
    alerts = [a for a in _list(d, "alerts") if isinstance(a, dict)]
    out: list[Piece] = []
    for i, alert in enumerate(alerts[:MAX_LISTED]):
        repeat = " (again)" if again and alert.get("again") else ""
        out += [", " if i else "", *_alert(alert), repeat]
    more = max(_n(d, "count"), len(alerts)) - MAX_LISTED
    return [*out, f" and {more} more" if more > 0 else ""]


@_renders("alert_firing")
def _firing(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    alerts = [a for a in _list(d, "alerts") if isinstance(a, dict)]
    fired = _map(d, "fired")
    if _n(d, "count") == 1 and alerts and fired:
        again = " again" if alerts[0].get("again") else ""
        return [
            "Alert ", *_alert(alerts[0]), f" is firing{again} (", Said(_s(fired, "source")),
            ", severity ", Said(_s(fired, "severity")), f" → {_s(fired, 'mapped').upper()}): ",
            Said(_s(fired, "summary")),
        ]  # fmt: skip
    return [f"{_n(d, 'count')} alerts are firing: ", *_alerts(d, again=True), "."]


@_renders("alert_resolved")
def _alert_resolved(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    alerts = [a for a in _list(d, "alerts") if isinstance(a, dict)]
    if _n(d, "count") == 1 and alerts:
        n = _n(alerts[0], "firing")
        counted = f" ({n:,} firing notification{'s' if n != 1 else ''} in its window)."
        return ["Alert ", *_alert(alerts[0]), " resolved", counted]
    return [f"{_n(d, 'count')} alerts resolved: ", *_alerts(d, again=False), "."]


# -- the bot's own pings: status prompts, escalations, checklists --------------------------------

_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")


def _ping(piece: Ping, flavour: Flavour) -> str:
    bare = piece.handle.lstrip("@")
    if piece.handle == CHANNEL:
        return "<!channel>" if flavour is Flavour.SLACK else "@channel"
    if _USER_ID.match(bare):
        return f"@{bare}" if flavour is Flavour.PLAIN else f"<@{bare}>"
    if _GROUP_ID.match(bare):
        return f"<!subteam^{bare}>" if flavour is Flavour.SLACK else f"@{bare}"
    return piece.handle if flavour is Flavour.SLACK else plain(inert(piece.handle))


def _pings(handles: Sequence[Any]) -> list[Piece]:
    out: list[Piece] = []
    for i, handle in enumerate(handles):
        out += [", " if i else "", Ping(str(handle or ""))]
    return out


def _who(d: Mapping[str, Any]) -> Ping:
    return Ping(_s(d, "who") or CHANNEL)


_PAGING = {
    "off": "PagerDuty is not configured, so this mention is the page.",
    "no_ids": "PagerDuty has no ids for them, so this mention is the page.",
    "paged": "Paging them through PagerDuty.",
}


@_renders("status_prompt")
def _prompt(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    fields: dict[str, Piece] = {
        "who": _who(d), "ref": incident_ref(incident), "title": Said(_s(d, "title")),
        "severity": _s(d, "severity").upper(), "since": _s(d, "since"),
    }  # fmt: skip
    out: list[Piece] = ["Reminder — "] if d.get("reminder") else []
    try:
        parsed = list(Formatter().parse(_s(d, "template")))
    except ValueError:  # a template that never formatted (the policy loader checks them)
        return [*out, Said(_s(d, "template"))]
    for literal, field, _, _ in parsed:
        out.append(literal)
        if field is not None:
            out.append(fields.get(field, "{" + field + "}"))
    return out


@_renders("prompt_escalated")
def _prompt_escalated(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    ref = incident_ref(incident)
    return [
        f"No status update on {ref} for {_s(d, 'since')} after two prompts. Escalating to ",
        *_pings(_list(d, "pings") or [CHANNEL]), ". ", _who(d), ", please post one. ",
        _PAGING.get(_s(d, "paging"), ""),
    ]  # fmt: skip


@_renders("escalated")
def _escalated(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    after = d.get("after_s")
    when = f"after {human_duration(_n(d, 'after_s'))}" if after else "at once"
    return [
        f"{_s(d, 'policy').upper()} policy escalates {when}: ", *_pings(_list(d, "pings")),
        f", you are needed on {incident_ref(incident)} (", Said(_s(d, "title")), "). ",
        _PAGING.get(_s(d, "paging"), ""),
    ]  # fmt: skip


@_renders("checklist")
def _checklist(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    return [
        _who(d), f": post-incident checklist for {incident_ref(incident)} — ",
        Said(_s(d, "title")), ".",
    ]  # fmt: skip


@_renders("redacted")
def _redacted(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    found = guard.listed([str(name) for name in _list(d, "found")])
    return [found, " redacted from ", Person(_s(d, "author")), "'s message."]


# -- diagnosis and the post-mortem draft ---------------------------------------------------------


@_renders("diagnosis_started")
def _diagnosing(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    return [
        Person(actor), " is diagnosing ", Code(_s(d, "playbook")), " (", Said(_s(d, "title")),
        ")…",
    ]  # fmt: skip


@_renders("postmortem_posted")
def _draft_posted(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    counts = f" ({_n(d, 'lines')} lines, from {_n(d, 'entries')} timeline entries)."
    return [
        Person(actor), " posted the post-mortem draft in the thread: ", Said(_s(d, "name")),
        counts,
    ]  # fmt: skip


# -- PagerDuty ---------------------------------------------------------------------------------


def _names(refs: Any) -> list[Piece]:
    """PagerDuty's assignees (`[{"summary": …, "id": …}]`) as their names, or "nobody"."""
    names = [
        str(r.get("summary") or r.get("id")) for r in (refs if isinstance(refs, list) else [])
        if isinstance(r, dict)
    ]  # fmt: skip
    return [Said(", ".join(names) or "nobody")]


@_renders("pagerduty")
def _pagerduty(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    what, by = _s(d, "what"), Said(_s(d, "by") or "PagerDuty")
    if what == "opened":
        link = f"<{_s(d, 'url')}|{_s(d, 'pagerduty_id')}>"
        return [f"PagerDuty incident #{_n(d, 'number')} opened: ", Said(link)]
    if what == "refused":
        return [
            "PagerDuty refused to open an incident (", Said(_s(d, "why")),
            "), so nobody was paged through PagerDuty: page by hand, or fix its settings.",
        ]  # fmt: skip
    if what == "lagging":
        return [
            "PagerDuty is lagging (", Said(_s(d, "reason")),
            f"): {plural(_n(d, 'pending'), 'update')} queued, retrying with back-off."
            " Slack commands keep working.",
        ]  # fmt: skip
    if what == "caught_up":
        return ["PagerDuty caught up: queued updates delivered."]
    event = _s(d, "event").removeprefix("incident.")
    if event == "triggered":
        return [f"PagerDuty triggered #{_s(d, 'number')} (", Said(_s(d, "urgency")), " urgency)."]
    if event == "acknowledged":
        return ["Acknowledged in PagerDuty by ", by, "."]
    if event == "unacknowledged":
        return ["PagerDuty: the acknowledgement timed out; paging again."]
    if event in ("escalated", "reassigned", "delegated"):
        tail: list[Piece] = ["."] if event == "escalated" else [" by ", by, "."]
        return [f"PagerDuty {event} to ", *_names(d.get("assignees")), *tail]
    if event == "priority_updated":
        return ["PagerDuty priority set to ", Said(_s(d, "priority") or "none"), " by ", by, "."]
    if event == "annotated":
        return ["PagerDuty note by ", by, ": ", Said(_s(d, "content"))]
    return ["PagerDuty: ", Said(_s(d, "event") or "an update"), "."]


# -- the scribe: messages of the incident's thread, key events, action items --------------------


def _files(d: Mapping[str, Any]) -> str:
    n = _n(d, "files")
    return f" (+{n} file{'s' if n != 1 else ''})" if n else ""


@_renders("message")
def _message(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    return [Person(actor), ": ", Said(_s(d, "text")), _files(d)]


@_renders("message_edited")
def _edited(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    edits = f" edited their message (#{_n(d, 'edits')}): "
    return [Person(actor), edits, Said(_s(d, "text")), _files(d)]


@_renders("message_deleted")
def _deleted(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    seqs = ", ".join(f"#{_n(r, 'seq')}" for r in _list(d, "redacts") if isinstance(r, dict))
    out: list[Piece] = [
        "A message by ", Person(_s(d, "author")),
        f" was deleted in Slack; its text was removed from the timeline ({seqs}).",
    ]  # fmt: skip
    drafts = len(_list(d, "drafts_removed"))
    if drafts:
        which = "drafts that could quote it were" if drafts > 1 else "draft that could quote it was"
        out += [f" {drafts} post-mortem {which} removed from the thread; ", Code("/ic postmortem"),
                " posts a fresh one."]  # fmt: skip
    return out


@_renders("pinned")
def _pinned(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    link = Said(f"<{_s(d, 'permalink')}|a message>")
    return [Person(actor), " pinned ", link, " by ", Person(_s(d, "author")), " as a key event."]


@_renders("unpinned")
def _unpinned(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    return [
        Person(actor), " removed the ", Emoji("pushpin"), " from a message by ",
        Person(_s(d, "author")), "; it is no longer a key event.",
    ]  # fmt: skip


@_renders("action_item")
def _action_item(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    owner = _s(d, "owner")
    owned: list[Piece] = [" (owner ", Person(owner), ")"] if owner else [" (no owner yet)"]
    return ["Action item from ", Person(actor), ": ", Said(_s(d, "text")), *owned]


# -- issue 21's follow-ups: Jira, Grafana, email while Slack is down ------------------------------


def _link(d: Mapping[str, Any], *, url: str, label: str) -> Said:
    """A vendor's link as Slack writes it (`<url|label>`): outside text, so inert where shown."""
    return Said(f"<{_s(d, url)}|{_s(d, label)}>")


@_renders("jira_linked")
def _jira_linked(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    filed = f" filed for action item {_n(d, 'number')}: "
    return ["Jira ", _link(d, url="url", label="key"), filed, Said(_s(d, "text"))]


@_renders("action_item_done")
def _item_done(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    number, key, text = _n(d, "number"), _s(d, "key"), Said(_s(d, "text"))
    if _s(d, "via") == "jira":
        return [f"Action item {number} was resolved in Jira (", Said(key), "): ", text]
    keyed: list[Piece] = [" (", Said(key), ")"] if key else []
    return [Person(actor), f" ticked action item {number}: ", text, *keyed]


@_renders("jira")
def _jira(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    number = _s(d, "number")
    what = (
        f"file a Jira issue for action item {number}"
        if d.get("filing")
        else f"move action item {number}'s Jira issue to Done"
    )
    return [f"Jira refused to {what} (", Said(_s(d, "why")),
            "); do it by hand, or fix its settings."]  # fmt: skip


@_renders("grafana")
def _grafana_refused(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    return [
        "Grafana refused the annotation on ", Code(_s(d, "where")), " (", Said(_s(d, "why")),
        "), so the impact window is not annotated: check GRAFANA_TOKEN and the playbooks'"
        " dashboard uids.",
    ]  # fmt: skip


def _clock(d: Mapping[str, Any], key: str) -> str:
    try:
        return clock_time(datetime.fromisoformat(_s(d, key)))
    except (ValueError, OverflowError):  # odd data reads as a time nobody knows
        return "an unknown time"


@_renders("slack_unreachable")
def _slack_down(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    return [f"Slack unreachable since {_clock(d, 'since')}, notifying by email."]


@_renders("slack_reachable")
def _slack_up(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    lasted = human_duration(_n(d, "lasted_s"))
    return [f"Slack reachable again (unreachable since {_clock(d, 'since')}, {lasted}):"
            " no more email."]  # fmt: skip


# -- diagnosis: the report, one line per finding --------------------------------------------------


def _measured(finding: Mapping[str, Any]) -> str:
    value, unit = finding.get("value"), _s(finding, "unit")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return ""
    return f" = {measured(value)}{unit if unit in ('%', '') else f' {unit}'}"


@_renders("diagnosis")
def _diagnosis(actor: str, incident: int, d: Mapping[str, Any]) -> list[Piece]:
    out: list[Piece] = [
        "Diagnosis ", Code(_s(d, "playbook")), " (", Said(_s(d, "title")), "): ",
        Said(_s(d, "verdict")),
    ]  # fmt: skip
    for f in (f for f in _list(d, "findings") if isinstance(f, dict)):
        out += ["\n• ", Said(_s(f, "title")), _measured(f), " [", Said(_s(f, "band")), "] ",
                Said(_s(f, "detail"))]  # fmt: skip
    return out
