"""The only module that knows Block Kit. Domain data in, (text, blocks) out."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.core import wording
from bot.core.errors import Choice, IntegrationError
from bot.core.ids import (
    ApprovalAction,
    ChecklistAction,
    IcAction,
    PromptAction,
    RemediationAction,
    ViewId,
)
from bot.core.logs import get_logger
from bot.core.models import (
    STANDARD_ROLES,
    Incident,
    OnCall,
    Status,
    TimelineEntry,
    incident_ref,
    who,
)
from bot.core.numfmt import measured, plural
from bot.core.text import compact, inert
from bot.core.timefmt import clock_time, human_duration, stamp
from bot.core.wording import Flavour
from bot.domain.history import (
    ON_TIME_GRACE_PERCENT,
    Gap,
    HistoryReport,
    IncidentFigures,
    SeverityFigures,
    Summary,
)
from bot.domain.policy import SeverityPolicy
from bot.domain.timeline import Kind

Block = dict[str, Any]
log = get_logger(__name__)

STATUS_EMOJI = {
    Status.INVESTIGATING: ":mag:",
    Status.IDENTIFIED: ":dart:",
    Status.MITIGATING: ":hammer_and_wrench:",
    Status.MONITORING: ":eyes:",
    Status.MITIGATED: ":adhesive_bandage:",
    Status.RESOLVED: ":white_check_mark:",
}
SEV_EMOJI = {
    "sev1": ":red_circle:",
    "sev2": ":large_orange_circle:",
    "sev3": ":large_yellow_circle:",
    "sev4": ":white_circle:",
}
ENTRY_EMOJI = {
    "declared": ":rotating_light:",
    "role_assigned": ":bust_in_silhouette:",
    "handover": ":handshake:",
    "severity_changed": ":chart_with_upwards_trend:",
    "status_update": ":loudspeaker:",
    "note": ":memo:",
    "resolved": ":white_check_mark:",
    "status_prompt": ":alarm_clock:",
    "prompt_escalated": ":rotating_light:",
    "escalated": ":telephone_receiver:",
    "checklist": ":clipboard:",
    "checklist_ticked": ":ballot_box_with_check:",
    "pagerduty": ":pager:",
    "paged": ":pager:",
    "reopened": ":leftwards_arrow_with_hook:",
    "diagnosis_started": ":stethoscope:",
    "diagnosis": ":stethoscope:",
    "approval_given": ":ballot_box_with_check:",
    "approved": ":white_check_mark:",
    "approval_denied": ":no_entry:",
    "approval_expired": ":alarm_clock:",
    "remediation_started": ":gear:",
    "remediation_result": ":clipboard:",
    "message": ":speech_balloon:",
    "message_edited": ":pencil2:",
    "message_deleted": ":wastebasket:",
    "pinned": ":pushpin:",
    "unpinned": ":pushpin:",
    "action_item": ":dart:",
    "alert_firing": ":bell:",
    "alert_resolved": ":white_check_mark:",
    "postmortem_posted": ":page_facing_up:",
    "jira_linked": ":ticket:",
    "action_item_done": ":ballot_box_with_check:",
    "jira": ":warning:",
}
# Slack's limits (https://docs.slack.dev/reference/block-kit/blocks and chat.postMessage)
TEXT_MAX = 40_000  # a message's `text`
MAX_BLOCKS = 50  # in a message
MODAL_BLOCKS_MAX = 100
SECTION_TEXT_MAX = 3000  # also any other text object
HEADER_MAX = 150
FIELDS_MAX = 10
FIELD_TEXT_MAX = 2000
ACTIONS_MAX = 25  # elements of an actions block
CONTEXT_MAX = 10  # elements of a context block
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
ID_MAX = 255  # action_id, block_id
OPTION_TEXT_MAX = 75  # an option's text (checkboxes, selects)
CHOICES_MAX = 10  # options of a checkbox group
MODAL_TEXT_MAX = 24  # a modal's title, submit and close
HISTORY_ROWS = 50  # incidents listed by `/ic list --all`; the figures cover them all
# Entries whose text is the bot's own words, posted as written: their mentions (a status
# prompt's `<!channel>` when nobody is commander, escalation contacts' `<!subteam^…>`) must
# ping, so whoever writes them passes the outside text inside (a title) through `inert`.
# Every other entry's text is outside text, or holds some, and is made inert when posted.
BOT_VOICE = frozenset({Kind.PROMPT, Kind.PROMPT_ESCALATED, Kind.ESCALATED, Kind.CHECKLIST})


@dataclass(frozen=True)
class Message:
    """What the bot sends: fallback `text` and `blocks`, fitted to Slack's limits on creation
    (see `fit`), so every message the bot builds is one Slack accepts."""

    text: str  # notification / fallback text
    blocks: list[Block]

    def __post_init__(self) -> None:
        text, blocks = fit(self.text, self.blocks)
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "blocks", blocks)


# -- Slack's limits, enforced in one place ---------------------------------------------------
#
# Renderers lay long content out themselves (the timeline in pages, checklists in groups,
# listings counted "and N more"); `fit` is the step every Message and modal passes through.
# What it can split it splits (a long section into several, more than 10 fields or 25 buttons
# into more blocks, more than 10 checkboxes into more groups); what it has to shorten (a
# label, a header, the fallback text) ends in "…" and is logged, never cut silently.


def _cut(text: str, limit: int, *, what: str) -> str:
    """`text` in at most `limit` characters, ending in "…" when shortened (and logged)."""
    if len(text) <= limit:
        return text
    log.warning("blocks.shortened", what=what, length=len(text), limit=limit)
    cut = text[: limit - 1]
    opened, closed = cut.rfind("<"), cut.rfind(">")
    if opened > closed and opened > 0:  # never leave half a <link> or <@mention>
        cut = cut[:opened]
    return cut.rstrip() + "…"


def split_text(text: str, limit: int = SECTION_TEXT_MAX) -> list[str]:
    """`text` as consecutive pieces of at most `limit` characters: cut at a line break, else at
    a space (which is dropped), never inside a `<…>` link or mention. Nothing else is lost."""
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[: limit + 1]
        cut = window.rfind("\n", 1)
        if cut < limit // 2:
            cut = window.rfind(" ", 1)
        if cut < limit // 2:
            cut = limit
        opened, closed = rest[:cut].rfind("<"), rest[:cut].rfind(">")
        if opened > closed and opened > 0:
            cut = opened
        if rest[:cut].strip():
            pieces.append(rest[:cut])
        rest = rest[cut + 1 :] if rest[cut] in " \n" else rest[cut:]
    if rest.strip() or not pieces:
        pieces.append(rest)
    return pieces


def _fit_text_object(obj: Any, limit: int, *, what: str) -> Any:
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        return {**obj, "text": _cut(obj["text"], limit, what=what)}
    return obj


def _fit_id(value: Any, *, what: str) -> Any:
    return _cut(value, ID_MAX, what=what) if isinstance(value, str) else value


def _fit_element(element: Any) -> Any:
    if not isinstance(element, dict):
        return element
    out = dict(element)
    if "action_id" in out:
        out["action_id"] = _fit_id(out["action_id"], what="action_id")
    if out.get("type") == "button":
        out["text"] = _fit_text_object(out.get("text"), BUTTON_TEXT_MAX, what="button text")
        if isinstance(out.get("value"), str) and len(out["value"]) > BUTTON_VALUE_MAX:
            out["value"] = _cut(out["value"], BUTTON_VALUE_MAX, what="button value")
    for key in ("options", "initial_options"):
        if isinstance(out.get(key), list):
            out[key] = [
                {**o, "text": _fit_text_object(o.get("text"), OPTION_TEXT_MAX, what="option")}
                if isinstance(o, dict)
                else o
                for o in out[key]
            ]
    if isinstance(out.get("initial_option"), dict):
        o = out["initial_option"]
        out["initial_option"] = {
            **o,
            "text": _fit_text_object(o.get("text"), OPTION_TEXT_MAX, what="option"),
        }
    return out


def _fit_section(block: Block) -> list[Block]:
    text = block.get("text")
    fields = block.get("fields")
    parts: list[str] = []
    if isinstance(text, dict) and isinstance(text.get("text"), str):
        parts = split_text(text["text"])
    out: list[Block] = []
    for n, part in enumerate(parts):
        piece: Block = {"type": "section", "text": {**text, "text": part}} if text else {}
        if n == 0:
            piece = {**block, "text": piece["text"]}
            piece.pop("fields", None)
        out.append(piece)
    if isinstance(fields, list) and fields:
        fitted = [_fit_text_object(f, FIELD_TEXT_MAX, what="field") for f in fields]
        groups = [fitted[i : i + FIELDS_MAX] for i in range(0, len(fitted), FIELDS_MAX)]
        if out:
            out[-1]["fields"] = groups.pop(0)
        else:  # the block_id (and accessory) stay on the first
            out.append({**block, "fields": groups.pop(0)})
        out += [{"type": "section", "fields": g} for g in groups]
    return out or [block]


def _fit_block(block: Block) -> list[Block]:
    """One block as one or more blocks within Slack's limits."""
    if not isinstance(block, dict):
        return [block]
    block = dict(block)
    if "block_id" in block:
        block["block_id"] = _fit_id(block["block_id"], what="block_id")
    kind = block.get("type")
    if kind == "section":
        if isinstance(block.get("accessory"), dict):
            block["accessory"] = _fit_element(block["accessory"])
        return _fit_section(block)
    if kind == "header":
        text = block.get("text")
        if isinstance(text, dict) and len(str(text.get("text") or "")) > HEADER_MAX:
            full = str(text["text"])
            short = {**block, "text": _fit_text_object(text, HEADER_MAX, what="header")}
            return [short, *_fit_section(_mrkdwn_block(f"*{full}*"))]
        return [block]
    if kind == "context":
        elements = [
            _fit_text_object(e, SECTION_TEXT_MAX, what="context")
            for e in block.get("elements") or []
        ]
        groups = [elements[i : i + CONTEXT_MAX] for i in range(0, len(elements), CONTEXT_MAX)]
        return [
            {**block, "elements": g} if n == 0 else {"type": "context", "elements": g}
            for n, g in enumerate(groups or [[]])
        ]
    if kind == "actions":
        return _fit_actions(block)
    if kind == "input" and isinstance(block.get("element"), dict):
        block["element"] = _fit_element(block["element"])
    return [block]


def _fit_actions(block: Block) -> list[Block]:
    """At most 25 elements a block, at most 10 options a checkbox group: more go into further
    actions blocks. A further row's block_id is the first's with `:<index of its first
    element>`; each part of a split checkbox group's, with `:<index of its first option>`
    (as `checklist_blocks` names its groups)."""
    block_id = block.get("block_id")
    rows: list[tuple[int | None, list[Any]]] = []  # (block_id suffix, elements)
    row: list[Any] = []
    start = 0
    for n, element in enumerate(_fit_element(e) for e in block.get("elements") or []):
        options = element.get("options") if isinstance(element, dict) else None
        checkboxes = isinstance(element, dict) and element.get("type") == "checkboxes"
        if checkboxes and isinstance(options, list) and len(options) > CHOICES_MAX:
            if row:
                rows.append((start or None, row))
            row, start = [], n + 1
            for at in range(0, len(options), CHOICES_MAX):
                rows.append((at, [{**element, "options": options[at : at + CHOICES_MAX]}]))
            continue
        if len(row) == ACTIONS_MAX:
            rows.append((start or None, row))
            row, start = [], n
        row.append(element)
    if row or not rows:
        rows.append((start or None, row))
    out: list[Block] = []
    for suffix, elements in rows:
        piece: Block = {**block, "elements": elements}
        if suffix is not None:
            if isinstance(block_id, str):
                piece["block_id"] = _fit_id(f"{block_id}:{suffix}", what="block_id")
            else:
                piece.pop("block_id", None)
        out.append(piece)
    return out


def _mrkdwn_block(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _unique_block_ids(blocks: list[Block]) -> list[Block]:
    seen: set[str] = set()
    out = []
    for block in blocks:
        block_id = block.get("block_id") if isinstance(block, dict) else None
        if isinstance(block_id, str):
            if block_id in seen:
                log.warning("blocks.duplicate_block_id", block_id=block_id)
                block = {**block}
                block.pop("block_id")
            else:
                seen.add(block_id)
        out.append(block)
    return out


def fit_blocks(blocks: Sequence[Block], *, limit: int = MAX_BLOCKS) -> list[Block]:
    """Blocks within Slack's limits: split where they can be, shortened visibly where not."""
    out = _unique_block_ids([piece for block in blocks for piece in _fit_block(block)])
    if len(out) > limit:
        log.warning("blocks.too_many", blocks=len(out), limit=limit)
        more = len(out) - (limit - 1)
        out = [*out[: limit - 1], _context(f"… {more} more blocks did not fit in one message.")]
    return out


def fit(text: str, blocks: Sequence[Block]) -> tuple[str, list[Block]]:
    """A message's fallback text and blocks within Slack's limits."""
    return _cut(text, TEXT_MAX, what="text"), fit_blocks(blocks)


def fit_modal(view: dict[str, Any]) -> dict[str, Any]:
    """A modal within Slack's limits: title, submit and close ≤ 24 characters, ≤ 100 blocks."""
    out = dict(view)
    for key in ("title", "submit", "close"):
        if isinstance(out.get(key), dict):
            out[key] = _fit_text_object(out[key], MODAL_TEXT_MAX, what=f"modal {key}")
    out["blocks"] = fit_blocks(out.get("blocks") or [], limit=MODAL_BLOCKS_MAX)
    return out


def _mrkdwn(text: str) -> Block:
    """A section of `text`; longer than Slack takes, `fit` splits it into several."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(*texts: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": t} for t in texts]}


def _posted(entry: TimelineEntry) -> str:
    """An entry's text as its own reply in the thread posts it."""
    text = wording.entry_text(entry, Flavour.SLACK)
    return text if entry.kind in BOT_VOICE else inert(text)


def _person(user: str | None) -> str:
    return who(user) if user else "_unassigned_"


def incident_card(incident: Incident, policy: SeverityPolicy, *, now: datetime) -> Message:
    level = policy.level(incident.severity)
    sev = incident.severity.upper()
    title = inert(incident.title)
    header = f"{incident.ref} · {sev} · {title}"
    status = incident.status
    end = incident.resolved_at or now
    fields = [
        f"*Status*\n{STATUS_EMOJI.get(status, '')} {status.value.capitalize()}",
        f"*Severity*\n{SEV_EMOJI.get(incident.severity, '')} {sev} · {level.name}",
        f"*Incident commander*\n{_person(incident.roles.get('incident commander'))}",
        f"*Scribe*\n{_person(incident.roles.get('scribe'))}",
        f"*Comms lead*\n{_person(incident.roles.get('comms lead'))}",
        f"*{'Duration' if incident.is_resolved else 'Open for'}*\n"
        f"{human_duration((end - incident.declared_at).total_seconds())}",
    ]
    if incident.pagerduty_url:
        fields.append(f"*PagerDuty*\n<{incident.pagerduty_url}|{incident.pagerduty_id}>")
    if incident.alert_count:
        fields.append(f"*Alerts*\n:bell: {incident.alert_count:,} received")
    if incident.card_number_seen:
        fields.append(
            "*Card data*\n:warning: A card number was posted in this thread (kept out of the"
            " record). Is it a PCI incident?"
        )
    others = [
        f"{role}: <@{user}>" for role, user in incident.roles.items() if role not in STANDARD_ROLES
    ]
    if others:
        fields.append("*Other roles*\n" + ", ".join(others))
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]
    if incident.last_status:
        when = clock_time(incident.last_status_at) if incident.last_status_at else ""
        blocks.append(_mrkdwn(f"*Latest update* ({when})\n{inert(incident.last_status)}"))
    if incident.summary:
        blocks.append(_mrkdwn(f"*Resolution*\n{inert(incident.summary)}"))
    milestones = [f"Declared {stamp(incident.declared_at)} by {who(incident.declared_by)}"]
    for label, moment in (
        ("acknowledged", incident.acknowledged_at),
        ("mitigated", incident.mitigated_at),
        ("resolved", incident.resolved_at),
    ):
        if moment is not None:
            milestones.append(f"{label} {clock_time(moment)}")
    blocks.append(_context(" · ".join(milestones)))
    blocks.append(
        _context(f"Timeline in this thread · `/ic status {incident.ref} <text>` to post an update")
    )
    text = f"{incident.ref} [{sev}] {title} — {status.value}"
    return Message(text=text, blocks=blocks)


def timeline_reply(entry: TimelineEntry) -> Message:
    if entry.kind == Kind.HANDOVER and isinstance(entry.data.get("summary"), dict):
        return handover_reply(entry)
    emoji = ENTRY_EMOJI.get(entry.kind, ":small_blue_diamond:")
    said = _posted(entry)
    blocks: list[Block] = [
        _mrkdwn(f"{emoji} {said}"),
        _context(f"{clock_time(entry.occurred_at)} · #{entry.seq}"),
    ]
    if entry.kind in (Kind.PROMPT, Kind.PROMPT_ESCALATED):
        button = {
            "type": "button",
            "action_id": PromptAction.POST_UPDATE,
            "text": {"type": "plain_text", "text": "Post update"},
            "style": "primary",
            "value": str(entry.incident_id),
        }
        blocks.append({"type": "actions", "block_id": f"prompt:{entry.seq}", "elements": [button]})
    elif entry.kind == Kind.DIAGNOSIS:
        return Message(
            text=said,
            blocks=diagnosis_blocks(
                entry.data, when=entry.occurred_at, incident_id=entry.incident_id
            ),
        )
    elif entry.kind == Kind.CHECKLIST:
        items = [str(item) for item in entry.data.get("items", [])]
        blocks += checklist_blocks(f"checklist:{entry.data.get('reminder')}", items)
    return Message(text=said, blocks=blocks)


# What the digest counts, by kind (the rest of the folded kinds count as "other events").
DIGEST_GROUPS = {
    "message": "message",
    "message_edited": "edit",
    "message_deleted": "deletion",
    "pinned": "pin",
    "unpinned": "unpin",
    "pagerduty": "PagerDuty event",
    "paged": "page",
    "checklist_ticked": "checklist tick",
    "action_item": "action item",
    "alert_firing": "alert",
    "alert_resolved": "alert",
    "postmortem_posted": "post-mortem draft",
    "action_item_done": "action item done",
}
DIGEST_LINES = 15  # the newest lines shown; `/ic timeline` has them all
DIGEST_LINE_MAX = 180


def thread_digest(entries: Sequence[TimelineEntry]) -> Message:
    """The thread's chatter since the last key event, as one message that is edited in place."""
    counts: dict[str, int] = {}
    for entry in entries:
        label = DIGEST_GROUPS.get(entry.kind, "other event")
        counts[label] = counts.get(label, 0) + 1
    summary = ", ".join(f"{n} {label}{'' if n == 1 else 's'}" for label, n in counts.items())
    shown = list(entries)[-DIGEST_LINES:]
    lines = []
    if len(entries) > len(shown):
        lines.append(f"_… {len(entries) - len(shown)} earlier; `/ic timeline` shows them_")
    for entry in shown:
        text = compact(inert(wording.entry_text(entry, Flavour.SLACK)), DIGEST_LINE_MAX)
        emoji = ENTRY_EMOJI.get(entry.kind, ":small_blue_diamond:")
        lines.append(f"`{clock_time(entry.occurred_at)}` {emoji} {text}")
    body = "\n".join(lines)  # over 3,000 characters, fit splits it into two sections
    blocks: list[Block] = [
        _context(f":card_index_dividers: *Timeline digest* · {summary or 'nothing yet'}"),
        _mrkdwn(body or "_nothing to show_"),
        _context("Kept up to date in place · `/ic timeline` shows every entry"),
    ]
    return Message(text=f"Timeline digest: {summary or 'nothing yet'}", blocks=blocks)


def _listing(head: str, lines: Sequence[str], *, more: int, more_line: str) -> Block:
    """A section of `head` and bullet lines; lines that would pass Slack's limit are counted
    into `more` (shown with `more_line`, formatted with `{n}`) rather than cut mid-way."""
    shown = list(lines)

    def text() -> str:
        tail = [more_line.format(n=more)] if more else []
        return "\n".join([head, *shown, *tail])

    while shown and len(text()) > SECTION_TEXT_MAX:
        shown.pop()
        more += 1
    return _mrkdwn(text())


def _ago(seconds: Any) -> str:
    return f"{human_duration(float(seconds))} ago"


def handover_reply(entry: TimelineEntry) -> Message:
    """A handover in the thread: who takes over, then the briefing stored with the entry."""
    s: dict[str, Any] = entry.data["summary"]
    ref = incident_ref(entry.incident_id)
    sev = str(s.get("severity") or "")
    try:
        status = Status(str(s.get("status")))
        status_text = f"{STATUS_EMOJI.get(status, '')} {status.value.capitalize()}"
    except ValueError:
        status_text = str(s.get("status"))
    headline = (
        f"*Briefing for {_person(entry.data.get('user'))}:* {SEV_EMOJI.get(sev, '')}"
        f" *{ref} · {sev.upper()} · {s.get('severity_name')}* · {inert(str(s.get('title')))}\n"
        f"*Status:* {status_text} · open for {human_duration(float(s.get('open_s') or 0))}"
    )
    last = s.get("last_status")
    if isinstance(last, dict):
        update = (
            f"*Last status update* ({_ago(last.get('ago_s'))}):\n> {inert(str(last.get('text')))}"
        )
    else:
        update = "*No status update yet.*"
    next_in = s.get("next_prompt_in_s")
    if next_in is None:
        update += "\nNo status prompts at this severity."
    elif int(next_in) > 0:
        update += f"\nNext status prompt due in {human_duration(float(next_in))}."
    else:
        update += "\nA status prompt is due now."
    if s.get("unanswered"):
        update += f" {_plural(s['unanswered'], 'prompt')} unanswered."
    roles = " · ".join(f"{role}: {_person(user)}" for role, user in s.get("roles") or [])
    minutes = int(s.get("window_s") or 0) // 60
    recent = [
        f"• `{_ago(e.get('ago_s'))}` {ENTRY_EMOJI.get(str(e.get('kind')), '•')}"
        f" {inert(str(e.get('text')))}"
        for e in s.get("recent") or []
    ]
    out: list[Block] = [
        _mrkdwn(f":handshake: {inert(wording.entry_text(entry, Flavour.SLACK))}"),
        _mrkdwn(headline),
        _mrkdwn(update),
        _mrkdwn(f"*Roles:* {roles}"),
    ]
    if recent:
        out.append(
            _listing(
                f"*Last {minutes} minutes* (most relevant first):",
                recent,
                more=int(s.get("recent_total") or 0) - len(recent),
                more_line=f"…and {{n}} more (`/ic timeline {ref}`)",
            )
        )
    else:
        out.append(_mrkdwn(f"*Last {minutes} minutes:* nothing was recorded."))
    actions = [
        f"• {inert(str(a.get('text')))} —"
        f" {who(str(a['owner'])) if a.get('owner') else 'no owner yet'}"
        for a in s.get("actions") or []
    ]
    if actions:
        out.append(
            _listing(
                f"*Open action items* ({s.get('actions_total')}):",
                actions,
                more=int(s.get("actions_total") or 0) - len(actions),
                more_line=f"…and {{n}} more (`/ic postmortem {ref}`)",
            )
        )
    else:
        out.append(_mrkdwn("*Open action items:* none."))
    approvals = [
        f"• *{p.get('label')}* (`{p.get('action')}`) requested by"
        f" {who(str(p.get('requested_by')))}: {p.get('approvals')}/{p.get('required')}"
        f" approvals, expires in {human_duration(float(p.get('expires_in_s') or 0))}"
        for p in s.get("approvals") or []
    ]
    if approvals:
        out.append(
            _listing(
                f"*Pending approvals* ({s.get('approvals_total')}):",
                approvals,
                more=int(s.get("approvals_total") or 0) - len(approvals),
                more_line="…and {n} more",
            )
        )
    out.append(_context(f"{clock_time(entry.occurred_at)} · #{entry.seq}"))
    return Message(text=inert(entry.text), blocks=out)


BAND_EMOJI = {
    "critical": ":red_circle:",
    "warning": ":large_yellow_circle:",
    "normal": ":large_green_circle:",
    "info": ":information_source:",
    "error": ":x:",
    "timed out": ":hourglass:",
    "no data": ":grey_question:",
}


def checklist_blocks(block_id: str, items: Sequence[str]) -> list[Block]:
    """A tickable checklist with every step in full. Steps that fit an option's text (75) are
    the boxes' labels; otherwise the steps are listed numbered above and each box is labelled
    with its number and the step's start. More than 10 steps make several groups, block_id
    `<block_id>:<index of the group's first step>`; option values are the steps' indexes."""
    steps = [str(item) for item in items]
    numbered = any(len(step) > OPTION_TEXT_MAX for step in steps)
    out: list[Block] = []
    if numbered:
        out.append(_mrkdwn("\n".join(f"*{n}.* {step}" for n, step in enumerate(steps, 1))))
    grouped = len(steps) > CHOICES_MAX
    for start in range(0, len(steps), CHOICES_MAX):
        options = [
            {
                "text": {
                    "type": "plain_text",
                    "text": compact(f"{i + 1}. {steps[i]}", OPTION_TEXT_MAX)
                    if numbered
                    else steps[i],
                },
                "value": str(i),
            }
            for i in range(start, min(start + CHOICES_MAX, len(steps)))
        ]
        out.append(
            {
                "type": "actions",
                "block_id": f"{block_id}:{start}" if grouped else block_id,
                "elements": [
                    {"type": "checkboxes", "action_id": ChecklistAction.TICK, "options": options}
                ],
            }
        )
    return out


def checklist_group(block_id: str) -> tuple[int, range | None]:
    """The reminder id and the steps a checklist group covers, from its block_id (None: all
    steps, a checklist of one group). Raises ValueError for a block_id that is not one."""
    reminder, _, start = block_id.removeprefix("checklist:").partition(":")
    if not start:
        return int(reminder), None
    first = int(start)
    return int(reminder), range(first, first + CHOICES_MAX)


def diagnosis_blocks(
    data: dict[str, Any], *, when: datetime | None = None, incident_id: int | None = None
) -> list[Block]:
    """A diagnosis report: verdict, one line per finding, manual steps, remediation buttons."""
    emoji = BAND_EMOJI.get(str(data.get("worst")), ":stethoscope:")
    head = (
        f"{emoji} *Diagnosis `{data.get('playbook')}`* ({data.get('title')}): {data.get('verdict')}"
    )
    lines = []
    for f in data.get("findings", []):
        unit = str(f.get("unit") or "")
        spaced = unit if unit in ("%", "") else f" {unit}"
        value = f" *{measured(f['value'])}{spaced}*" if f.get("value") is not None else ""
        threshold = f" _({f['threshold']})_" if f.get("threshold") else ""
        lines.append(
            f"{BAND_EMOJI.get(f['band'], '•')} {f['title']}:{value} {f['band']}{threshold}"
            f"\n      {inert(str(f['detail']))}"
        )
    blocks: list[Block] = [_mrkdwn(head)]
    if lines:
        blocks.append(_mrkdwn("\n".join(lines)))
    took = f"checks took {int(data.get('elapsed_ms', 0))} ms"
    blocks.append(_context(f"{clock_time(when)} · {took}" if when else took))
    steps = [str(s) for s in data.get("steps") or []]
    if steps:
        blocks.append(_mrkdwn("*Manual steps* (tick as you go; ticks are recorded):"))
        if data.get("reminder") is not None:
            blocks += checklist_blocks(f"checklist:{data['reminder']}", steps)
        else:
            blocks.append(_mrkdwn("\n".join(f"• {s}" for s in steps)))
    escalation = [str(s) for s in data.get("escalation") or []]
    if escalation:
        blocks.append(_mrkdwn("*Escalation:* " + " · ".join(escalation)))
    remedies = data.get("remediations") or []
    if remedies:
        buttons = [
            {
                "type": "button",
                "action_id": f"{RemediationAction.REQUEST}:{i}",
                "text": {"type": "plain_text", "text": str(r["label"])},
                "value": json.dumps(
                    {"playbook": data.get("playbook"), "index": i, "incident": incident_id}
                ),
            }
            for i, r in enumerate(remedies)
        ]
        blocks.append(_mrkdwn("*Remediations* (each needs an approval):"))
        for start in range(0, len(buttons), 5):
            blocks.append({"type": "actions", "elements": buttons[start : start + 5]})
    return blocks


STATUS_LINE = {
    "pending": ":hourglass_flowing_sand: Waiting for approval",
    "approved": ":white_check_mark: Approved; running",
    "running": ":gear: Running",
    "succeeded": ":white_check_mark: Done and verified",
    "failed": ":x: Failed",
    "denied": ":no_entry: Denied",
    "expired": ":alarm_clock: Expired",
    "cancelled": ":no_entry_sign: Cancelled",
    "changed": ":warning: Not run: the target changed since this was requested",
}


def approval_card(entry: TimelineEntry, pending: Any) -> Message:
    """The approval request in the thread: what will happen, who decided, what came of it."""
    lines = [inert(str(line)) for line in pending.preview.get("lines", [])]
    head = (
        f":raised_hand: <@{pending.requested_by}> requests *{pending.label}* (`{pending.action}`)"
    )
    who = ", ".join(f"<@{u}>" for u in pending.approvals) or "nobody yet"
    status = STATUS_LINE.get(pending.status, pending.status)
    result = pending.result or {}
    if (
        pending.decided_by
        and pending.status in ("denied", "approved", "running", "succeeded", "failed")
        and not result.get("interrupted")  # the bot's restart did that, not the approver
    ):
        status += f" (by <@{pending.decided_by}>)"
    context = (
        f"Approvals {len(pending.approvals)}/{pending.required}: {who} · expires"
        f" {clock_time(pending.expires_at)} · request #{pending.id}"
    )
    out: list[Block] = [
        _mrkdwn(head + "\n" + "\n".join(f"> {line}" for line in lines)),
        _mrkdwn(f"*{status}*"),
    ]
    if result:
        out.append(_approval_result(result))
    out.append(_context(context))
    if pending.status == "changed" or result.get("busy") or result.get("retryable"):
        out.append(_request_again(pending.id))
    if pending.status == "pending":
        out.append(
            {
                "type": "actions",
                "block_id": f"approval:{pending.id}",
                "elements": [
                    {
                        "type": "button",
                        "action_id": ApprovalAction.APPROVE,
                        "text": {"type": "plain_text", "text": "Approve"},
                        "style": "primary",
                        "value": str(pending.id),
                    },
                    {
                        "type": "button",
                        "action_id": ApprovalAction.DENY,
                        "text": {"type": "plain_text", "text": "Deny"},
                        "style": "danger",
                        "value": str(pending.id),
                    },
                ],
            }
        )
    text = f"{pending.label}: {STATUS_LINE.get(pending.status, pending.status)}"
    return Message(text=text, blocks=out)


def _approval_result(result: dict[str, Any]) -> Block:
    summary = inert(str(result.get("summary"))[:2500])
    verification = result.get("verification")
    if verification is None:
        return _mrkdwn(summary)
    return _mrkdwn(f"{summary}\n_Verification:_ {inert(str(verification)[:400])}")


def _request_again(pending_id: int) -> Block:
    """A request that could not run as approved: ask afresh, with a fresh preview."""
    return {
        "type": "actions",
        "block_id": f"again:{pending_id}",
        "elements": [
            {
                "type": "button",
                "action_id": ApprovalAction.REQUEST_AGAIN,
                "text": {"type": "plain_text", "text": "Request again"},
                "value": str(pending_id),
            }
        ],
    }


def choose_incident_by_id(question: str, choices: Sequence[Choice], *, choice_id: int) -> Message:
    """ "Which incident?" for a command kept server-side (row `choice_id`): each button carries
    only the incident and that id, so a command of any length fits a button's 2,000 characters."""
    buttons = [
        {
            "type": "button",
            "action_id": f"{IcAction.PICK_INCIDENT}:{c.value}",
            "text": {"type": "plain_text", "text": c.label[:75], "emoji": True},
            "value": json.dumps({"incident": int(c.value), "choice": choice_id}),
        }
        for c in choices[:25]
    ]
    blocks: list[Block] = [_mrkdwn(question)]
    for start in range(0, len(buttons), 5):
        blocks.append({"type": "actions", "elements": buttons[start : start + 5]})
    return Message(text=question, blocks=blocks)


def playbook_list(playbooks: Sequence[Any]) -> Message:
    lines = ["*Playbooks* — `/diagnose <name> [INC-n]` runs one:"]
    lines += [f"• `{p.name}` — {p.title}" for p in sorted(playbooks, key=lambda p: p.name)]
    text = "\n".join(lines)
    return Message(text=text, blocks=[_mrkdwn(text)])


# The "Post update" form's fields and the most each takes: together, composed into one update
# (`compose_status`), they stay within an update's 3000 characters.
STATUS_FIELDS_MAX = {"status": 1000, "impact": 980, "next": 980}


def status_modal(incident: Incident) -> dict[str, Any]:
    """The "Post update" modal: current status (required), impact, next steps."""

    def field(block_id: str, label: str, placeholder: str, *, optional: bool) -> Block:
        return {
            "type": "input",
            "block_id": block_id,
            "optional": optional,
            "label": {"type": "plain_text", "text": label},
            "element": {
                "type": "plain_text_input",
                "action_id": "value",
                "multiline": True,
                "max_length": STATUS_FIELDS_MAX[block_id],
                "placeholder": {"type": "plain_text", "text": placeholder},
            },
        }

    return fit_modal({
        "type": "modal",
        "callback_id": ViewId.STATUS_UPDATE,
        "private_metadata": str(incident.id),
        "title": {"type": "plain_text", "text": f"Update {incident.ref}"},
        "submit": {"type": "plain_text", "text": "Post update"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            _context(f"*{incident.ref}* · {incident.severity.upper()} · {inert(incident.title)}"),
            field("status", "Current status", "Mitigating: rolled back the deploy", optional=False),
            field("impact", "Impact", "Card payments failing for ~8% of users", optional=True),
            field("next", "Next steps", "Watch the error rate for 15 minutes", optional=True),
        ],
    })  # fmt: skip


KEY_EVENT_FIELD = "incident"  # the block_id and action_id of the shortcut form's select
QUOTE_MAX = 280  # characters of the message quoted in the form


def _incident_option(incident: Incident) -> Block:
    state = " (resolved)" if incident.is_resolved else ""
    title = inert(incident.title)
    room = OPTION_TEXT_MAX - len(f"{incident.ref}  {state}")
    if len(title) > room:
        title = title[: room - 1] + "…"
    return {
        "text": {"type": "plain_text", "text": f"{incident.ref} {title}{state}", "emoji": True},
        "value": str(incident.id),
    }


def key_event_modal(
    *,
    channel: str,
    ts: str,
    author: str | None,
    text: str,
    choices: Sequence[Incident],
    selected: Incident | None,
) -> dict[str, Any]:
    """The message shortcut's form: which incident the message becomes a key event of."""
    quote = " ".join(inert(text).split()) or "(no text)"
    if len(quote) > QUOTE_MAX:
        quote = quote[: QUOTE_MAX - 1] + "…"
    element: Block = {
        "type": "static_select",
        "action_id": KEY_EVENT_FIELD,
        "placeholder": {"type": "plain_text", "text": "Choose an incident"},
        "options": [_incident_option(i) for i in choices[:100]],
    }
    if selected is not None:
        element["initial_option"] = _incident_option(selected)
    return fit_modal({
        "type": "modal",
        "callback_id": ViewId.ADD_TO_TIMELINE,
        "private_metadata": json.dumps({"channel": channel, "ts": ts}),
        "title": {"type": "plain_text", "text": "Add to timeline"},
        "submit": {"type": "plain_text", "text": "Add"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            _context(f"{who(author) if author else 'A message'}: {quote}"),
            {
                "type": "input",
                "block_id": KEY_EVENT_FIELD,
                "label": {"type": "plain_text", "text": "Key event of"},
                "element": element,
            },
        ],
    })  # fmt: skip


def compose_status(status: str, impact: str | None, next_steps: str | None) -> str:
    parts = [status.strip()]
    if impact and impact.strip():
        parts.append(f"*Impact:* {impact.strip()}")
    if next_steps and next_steps.strip():
        parts.append(f"*Next:* {next_steps.strip()}")
    return "\n".join(parts)


def confirmation(text: str) -> Message:
    return Message(text=text, blocks=[_mrkdwn(text)])


def redaction_notice(summary: str, *, posted: bool) -> str:
    """To the author, privately, when the guard kept `summary` ("a card number") out of the
    record. `posted`: their words are a Slack message, which only they can delete."""
    if posted:
        return (
            f":lock: Your message contained {summary}; it was not recorded. Please delete it"
            " — Slack keeps it until you do."
        )
    return (
        f":lock: What you typed contained {summary}; it was not recorded"
        " (the timeline says `[redacted: …]` in its place)."
    )


def with_notice(message: Message | None, notice: str) -> Message:
    """`message` with `notice` above it (or the notice alone)."""
    if message is None:
        return confirmation(notice)
    return Message(text=f"{notice}\n{message.text}", blocks=[_mrkdwn(notice), *message.blocks])


PREVIEW_LINES = 9  # of the post-mortem draft, to its requester: the title and the figures
PREVIEW_LINE_MAX = 200


def postmortem_posted(
    *,
    ref: str,
    filename: str,
    permalink: str,
    draft: str,
    figures_line: str,
    entries: int,
) -> Message:
    """To whoever asked: where the draft file is, the figures, and the top of the draft."""
    lines = draft.rstrip("\n").split("\n")
    link = f"<{permalink}|{filename}>" if permalink else f"`{filename}`"
    head = (
        f":page_facing_up: Posted the post-mortem draft of *{ref}* in its thread as {link}"
        f" ({len(lines)} lines, from {entries} timeline entries)."
        f" `icbot postmortem {ref}` prints the same Markdown."
    )
    shown = [
        line if len(line) <= PREVIEW_LINE_MAX else line[: PREVIEW_LINE_MAX - 1] + "…"
        for line in lines[:PREVIEW_LINES]
    ]
    rest = len(lines) - len(shown)
    preview = "\n".join(shown)
    blocks = [
        _mrkdwn(head),
        _context(figures_line),
        _mrkdwn(f"```{preview}```"),
    ]
    if rest > 0:
        blocks.append(_context(f"…and {rest} more lines in the file."))
    return Message(
        text=f"Post-mortem draft of {ref} posted in its thread: {filename}", blocks=blocks
    )


def with_page_link(message: Message, url: str) -> Message:
    """`message` with the incident page's link under its first block (the link shows its
    target; the token in it opens that incident's page only, until it expires)."""
    line = _context(f":link: Incident page (timeline, picture, exports): <{url}>")
    shown = [*message.blocks[:1], line, *message.blocks[1:]]
    if len(shown) > MAX_BLOCKS:
        del shown[-2]  # a timeline chunk goes; the last block says entries were cut
    return Message(text=f"{message.text}\nIncident page: {url}", blocks=shown)


def postmortem_not_posted(ref: str, error: IntegrationError) -> Message:
    """The upload failed: nothing was posted or recorded; say why and what to do."""
    if error.retry_after is not None:
        why = (
            f"Slack is rate limiting file uploads; try `/ic postmortem {ref}` again in"
            f" {max(1, math.ceil(error.retry_after))} s."
        )
    elif error.reason in ("missing_scope", "not_allowed_token_type"):
        why = (
            f"Slack refused the upload ({error}): the app needs the files:write scope;"
            " reinstall it from manifest.yml."
        )
    else:
        why = f"Slack refused the upload ({error}); try `/ic postmortem {ref}` again shortly."
    return confirmation(
        f":warning: The post-mortem draft of *{ref}* was not posted, and nothing was"
        f" recorded. {why}"
    )


def export_posted(
    *, ref: str, filename: str, permalink: str, entries: int, changes: int, digest: str
) -> Message:
    """To whoever asked: where the evidence bundle is, and how to check it."""
    link = f"<{permalink}|{filename}>" if permalink else f"`{filename}`"
    return confirmation(
        f":lock: Posted the evidence bundle of *{ref}* in its thread as {link}: {entries}"
        f" timeline entries with their hashes, {plural(changes, 'change record')}. Bundle SHA-256"
        f" `{digest}`; `icbot audit verify --bundle {filename}` checks it offline."
    )


def export_not_posted(ref: str, error: IntegrationError) -> Message:
    """The upload failed: nothing was posted; say why and what to do."""
    if error.retry_after is not None:
        why = (
            f"Slack is rate limiting file uploads; try `/ic export {ref}` again in"
            f" {max(1, math.ceil(error.retry_after))} s."
        )
    else:
        why = f"Slack refused the upload ({error}); try `/ic export {ref}` again shortly."
    return confirmation(f":warning: The evidence bundle of *{ref}* was not posted. {why}")


def _chunked(lines: Sequence[str]) -> list[Block]:
    """Lines as few sections as fit (whole lines; a section's text is at most 3000 chars)."""
    blocks: list[Block] = []
    chunk: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) + 1 > SECTION_TEXT_MAX - 10 and chunk:
            blocks.append(_mrkdwn("\n".join(chunk)))
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        blocks.append(_mrkdwn("\n".join(chunk)))
    return blocks


TIMELINE_PAGE_ENTRIES = 50  # at most, on one page of `/ic timeline`
TIMELINE_PAGE_CHARS = 12_000  # of entries on one page (at least one entry, however long)


def _timeline_line(entry: TimelineEntry) -> str:
    emoji = ENTRY_EMOJI.get(entry.kind, "•")
    said = inert(wording.entry_text(entry, Flavour.SLACK))
    return f"{clock_time(entry.occurred_at)}  {emoji} {said}"


def timeline_pages(entries: Sequence[TimelineEntry]) -> list[range]:
    """The timeline in pages, page 1 the newest: each a range of indexes into `entries` (oldest
    first), of whole entries, at most TIMELINE_PAGE_ENTRIES and TIMELINE_PAGE_CHARS."""
    sizes = [len(_timeline_line(e)) + 1 for e in entries]
    pages: list[range] = []
    end = len(entries)
    while end > 0:
        start, size = end - 1, sizes[end - 1]
        while (
            start > 0
            and end - start < TIMELINE_PAGE_ENTRIES
            and size + sizes[start - 1] <= TIMELINE_PAGE_CHARS
        ):
            start -= 1
            size += sizes[start]
        pages.append(range(start, end))
        end = start
    return pages or [range(0, 0)]


def _page_button(label: str, action: IcAction, *, incident: Incident, page: int) -> Block:
    return {
        "type": "button",
        "action_id": action,
        "text": {"type": "plain_text", "text": label},
        "value": json.dumps({"incident": incident.id, "page": page}),
    }


def timeline_listing(
    incident: Incident,
    entries: Sequence[TimelineEntry],
    figures: IncidentFigures | None = None,
    *,
    page: int = 1,
) -> Message:
    """One page of the timeline (page 1: the newest entries), oldest first within the page,
    every entry in full, with *Show older* / *Show newer* buttons between pages."""
    pages = timeline_pages(entries)
    page = min(max(page, 1), len(pages))
    shown = [entries[i] for i in pages[page - 1]]
    lines = [_timeline_line(e) for e in shown]
    counted = plural(len(entries), "entry", "entries")
    title = f"*Timeline of {incident.ref}: {inert(incident.title)}* ({counted})"
    if len(pages) > 1:
        title += f" · page {page} of {len(pages)}: #{shown[0].seq} to #{shown[-1].seq}"
    blocks: list[Block] = [_mrkdwn(title)]
    summary = incident_summary(figures) if figures is not None and page == 1 else ""
    if summary:
        blocks.append(_mrkdwn(summary))
    blocks += _chunked(lines)
    if len(pages) > 1:
        older = (
            f"`/ic timeline {incident.ref} --page {page + 1}` shows older entries"
            if page < len(pages)
            else "These are the oldest entries"
        )
        blocks.append(_context(f"Newest first, a page at a time · {older}"))
        buttons = []
        if page < len(pages):
            buttons.append(
                _page_button("Show older", IcAction.SHOW_OLDER, incident=incident, page=page + 1)
            )
        if page > 1:
            buttons.append(
                _page_button("Show newer", IcAction.SHOW_NEWER, incident=incident, page=page - 1)
            )
        blocks.append({"type": "actions", "block_id": "timeline_pages", "elements": buttons})
    head = f"{title}\n{summary}" if summary else title
    text = head + "\n" + "\n".join(lines)
    if len(text) > TEXT_MAX:  # the blocks show it all; the notification needs only the head
        text = head
    return Message(text=text, blocks=blocks)


def incident_summary(figures: IncidentFigures) -> str:
    """Duration, time to acknowledge and whether status updates kept the severity's cadence."""
    i = figures.incident
    took = human_duration(figures.open_seconds)
    if i.resolved_at is not None:
        duration = f"*Duration* {took} (resolved {stamp(i.resolved_at)})"
    else:
        duration = f"*Open for* {took} ({i.status.value})"
    ack = figures.time_to_acknowledge
    if ack is not None:
        acknowledged = f"*Acknowledged* after {human_duration(ack)}"
    elif i.resolved_at is not None:
        acknowledged = "*Resolved without an acknowledgement*"
    else:
        acknowledged = "*Not acknowledged yet*"
    return f"{duration} · {acknowledged}\n{_cadence_verdict(figures)}"


def _cadence_verdict(figures: IncidentFigures) -> str:
    gaps = (
        f"{figures.on_time} of {figures.judged} gaps between updates on time;"
        f" longest {_gap(figures.longest)}"
    )
    if figures.late:
        late = "once" if figures.late == 1 else f"{figures.late} times"
        return f":warning: *Missed its status cadence {late}*: {gaps}"
    if figures.on_time:
        so_far = "" if figures.incident.is_resolved else " so far"
        return f":white_check_mark: *Met its status cadence{so_far}*: {gaps}"
    last = figures.gaps[-1] if figures.gaps else None
    if last is not None and last.running and last.cadence is not None:
        return (
            f":hourglass: *No update due yet*: {human_duration(last.seconds)} without one;"
            f" {last.severity.upper()} expects one every {human_duration(last.cadence)}"
        )
    return f"No status cadence for {figures.incident.severity.upper()}; updates are not judged"


def _gap(gap: Gap | None, incident: Incident | None = None) -> str:
    if gap is None:
        return "none"
    where = f" in {incident.ref}" if incident is not None else ""
    every = f"every {human_duration(gap.cadence)}" if gap.cadence else "no cadence"
    return f"{human_duration(gap.seconds)}{where} ({gap.severity.upper()}, {every})"


def _summary(stat: Summary) -> str:
    if stat.mean is None or stat.median is None:
        return "—"
    return f"median {human_duration(stat.median)} · mean {human_duration(stat.mean)}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _severity_section(sev: SeverityFigures) -> tuple[Block, str]:
    every = f"updates every {human_duration(sev.cadence)}" if sev.cadence else "no update cadence"
    open_now = f", {sev.open} open" if sev.open else ""
    head = (
        f"{SEV_EMOJI.get(sev.severity, '')} *{sev.severity.upper()} · {sev.name}* —"
        f" {_plural(sev.incidents, 'incident')}{open_now} · {every}"
    )
    mtta = _summary(sev.mtta)
    if sev.unacknowledged:
        mtta += f"\n{sev.unacknowledged} never acknowledged"
    mttr = _summary(sev.mttr)
    mttr += f"\n{sev.mttr.count} resolved" if sev.mttr.count else "\nnone resolved yet"
    rate = sev.on_time_rate
    if rate is not None:
        on_time = f"{sev.on_time} of {sev.on_time + sev.late} gaps ({rate:.0%})"
    else:
        on_time = "no cadence" if sev.cadence is None else "nothing to judge yet"
    fields = [
        f"*MTTA* (declared → acknowledged)\n{mtta}",
        f"*MTTR* (declared → resolved)\n{mttr}",
        f"*Status updates on time*\n{on_time}",
        f"*Longest gap without an update*\n{_gap(sev.longest_gap, sev.longest_in)}",
    ]
    block = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": head},
        "fields": [{"type": "mrkdwn", "text": f} for f in fields],
    }
    plain = (
        f"{head}: MTTA {mtta}; MTTR {mttr}; on time {on_time};"
        f" longest gap {_gap(sev.longest_gap, sev.longest_in)}"
    ).replace("\n", ", ")
    return block, plain


def _history_row(f: IncidentFigures) -> str:
    i = f.incident
    if i.resolved_at is not None and f.time_to_resolve is not None:
        state = f"resolved after {human_duration(f.time_to_resolve)}"
    else:
        state = f"{i.status.value}, open for {human_duration(f.open_seconds)}"
    updates = f" · updates {f.on_time}/{f.judged} on time" if f.judged else ""
    return (
        f"{SEV_EMOJI.get(i.severity, '')} *{i.ref}* [{i.severity.upper()}] {inert(i.title)} —"
        f" {stamp(i.declared_at)} · {state}{updates} · IC {_person(i.commander)}"
    )


def incident_history(report: HistoryReport, *, days: int, rows: int = HISTORY_ROWS) -> Message:
    """`/ic list --all`: figures per severity, then every incident of the window, newest first."""
    window = "the last day" if days == 1 else f"the last {days} days"
    title = f"Incident history: {window}"
    header: Block = {"type": "header", "text": {"type": "plain_text", "text": title}}
    if not report.incidents:
        text = f"No incidents were declared in {window}."
        return Message(text=text, blocks=[header, _mrkdwn(text)])
    count = len(report.incidents)
    open_now = f", {report.open} still open" if report.open else ""
    intro = (
        f"*{_plural(count, 'incident')}* declared since {stamp(report.since)}{open_now}."
        f" A gap between status updates is on time when it is no longer than the cadence of the"
        f" severity in force when it began, plus {ON_TIME_GRACE_PERCENT}%."
    )
    blocks: list[Block] = [header, _mrkdwn(intro)]
    plain = [title, intro]
    for sev in report.severities:
        block, line = _severity_section(sev)
        blocks.append(block)
        plain.append(line)
    shown = report.incidents[:rows]
    lines = [_history_row(f) for f in shown]
    blocks.append({"type": "divider"})
    blocks += _chunked(["*Incidents*, newest first:", *lines])
    more = count - len(shown)
    if more:
        blocks.append(_context(f"… and {more} more (the newest {len(shown)} are shown)."))
        lines.append(f"… and {more} more")
    if len(blocks) > MAX_BLOCKS:
        blocks = [*blocks[: MAX_BLOCKS - 1], _context("… cut to fit one message")]
    return Message(text="\n".join([*plain, *lines]), blocks=blocks)


def incident_list(incidents: Sequence[Incident], *, now: datetime) -> Message:
    if not incidents:
        text = "No open incidents, and none resolved in the last 7 days."
        return Message(text=text, blocks=[_mrkdwn(text)])
    lines = []
    for i in incidents:
        state = (
            f"resolved {stamp(i.resolved_at)}"
            if i.resolved_at
            else f"{i.status.value}, open for {human_duration((now - i.declared_at).total_seconds())}"  # noqa: E501
        )
        lines.append(
            f"{SEV_EMOJI.get(i.severity, '')} *{i.ref}* [{i.severity.upper()}] {inert(i.title)}"
            f" — {state}"
            f" · IC {_person(i.commander)}"
        )
    text = "\n".join(lines)
    return Message(text=text, blocks=_chunked(lines))


def oncall_list(oncalls: Sequence[OnCall]) -> Message:
    if not oncalls:
        text = "Nobody is on call for the service's escalation policy right now."
        return Message(text=text, blocks=[_mrkdwn(text)])
    lines = ["*On call now* (PagerDuty escalation policy of the service):"]
    lines += [
        f"• Level {o.level}: {o.name}" + (f" ({o.email})" if o.email else "") for o in oncalls
    ]
    text = "\n".join(lines)
    return Message(text=text, blocks=[_mrkdwn(text)])


def choose_remediation_incident(
    question: str, choices: Sequence[Choice], *, playbook: str, index: int
) -> Message:
    """ "Which incident?" for a remediation button of a report shown to one person: each button
    is that remediation's button again, with the incident chosen."""
    buttons = [
        {
            "type": "button",
            # action_ids are unique within a message; the handler matches on the prefix.
            "action_id": f"{RemediationAction.REQUEST}:{index}:{c.value}",
            "text": {"type": "plain_text", "text": c.label[:75], "emoji": True},
            "value": json.dumps({"playbook": playbook, "index": index, "incident": int(c.value)}),
        }
        for c in choices[:25]
    ]
    blocks: list[Block] = [_mrkdwn(question)]
    for start in range(0, len(buttons), 5):
        blocks.append({"type": "actions", "elements": buttons[start : start + 5]})
    return Message(text=question, blocks=blocks)


def name_the_incident(question: str, choices: Sequence[Choice]) -> Message:
    """ "Which incident?" where no button can carry the work: ask for `INC-n` in words."""
    shown = ", ".join(inert(c.label) for c in choices[:10])
    more = f" and {len(choices) - 10} more" if len(choices) > 10 else ""
    return confirmation(f"{question} Open: {shown}{more}. Say which with `INC-n`.")


def help_text(usage_lines: Sequence[str]) -> Message:
    lines = [
        "*icbot* — run incidents from Slack. Commands act on `INC-n`, or the only open incident."
    ]
    lines += [f"• `{line}`" for line in usage_lines]
    text = "\n".join(lines)
    return Message(text=text, blocks=[_mrkdwn(text)])


def refused_reply(error: str) -> Message:
    """Slack refused a reply: say so in a few words (text only, nothing that could be refused)."""
    text = (
        f":warning: That reply could not be shown: Slack refused it (`{error[:60]}`)."
        " It is logged for the bot's owners; `/ic timeline` and the incident thread still work."
    )
    return Message(text=text, blocks=[])


def error_text(error_id: str) -> str:
    return (
        f":warning: Something went wrong on my side (error id `{error_id}`)."
        " Check the incident thread before trying again, and give the bot's owners the id."
    )


# -- Jira follow-ups (issue 21) -------------------------------------------------------------------

JIRA_OFF = "Jira is not configured, so no Jira issue is filed."


def action_item_added(ref: str, *, number: int, jira: bool) -> Message:
    """`/ic action …`: recorded as item `number`; filed in Jira, or why not."""
    filed = " It is being filed in Jira; its key will appear in the thread." if jira else (
        f" {JIRA_OFF}"
    )  # fmt: skip
    return confirmation(
        f"Action item added to *{ref}*; the post-mortem lists it."
        f" It is item {number}: `/ic action {ref} done {number}` ticks it.{filed}"
    )


def action_item_ticked(ref: str, *, number: int, key: object, jira: bool) -> Message:
    """`/ic action done n`: ticked; its Jira issue (if one was filed) goes to Done."""
    if key:
        then = f" Its Jira issue {key} is being moved to Done."
    elif jira:
        then = " If a Jira issue is still being filed for it, it is moved to Done once filed."
    else:
        then = f" {JIRA_OFF.replace('is filed', 'was filed')}"
    return confirmation(f":ballot_box_with_check: Action item {number} of *{ref}* is done.{then}")


# The public status page (issue 21).


def statuspage_label(status: str) -> str:
    """The name of a public update's approval request."""
    return f"Status page update ({status})"


def statuspage_proposed(pending_id: int, ref: str) -> Message:
    return confirmation(
        f"Asked for approval in *{ref}*'s thread (request #{pending_id}). Nothing is published"
        " until someone else approves the exact text shown on the card."
    )
