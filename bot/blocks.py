"""The only module that knows Block Kit. Domain data in, (text, blocks) out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.errors import Choice
from bot.ids import IcAction
from bot.models import STANDARD_ROLES, Incident, Status, TimelineEntry
from bot.policy import SeverityPolicy
from bot.timefmt import clock_time, human_duration, stamp

Block = dict[str, Any]

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
    "severity_changed": ":chart_with_upwards_trend:",
    "status_update": ":loudspeaker:",
    "note": ":memo:",
    "resolved": ":white_check_mark:",
}
# Block Kit limits (https://api.slack.com/reference/block-kit/blocks)
SECTION_TEXT_MAX = 3000
MAX_BLOCKS = 50


@dataclass(frozen=True)
class Message:
    text: str  # notification / fallback text
    blocks: list[Block]


def _mrkdwn(text: str) -> Block:
    if len(text) > SECTION_TEXT_MAX:
        text = text[: SECTION_TEXT_MAX - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(*texts: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": t} for t in texts]}


def _person(user: str | None) -> str:
    return f"<@{user}>" if user else "_unassigned_"


def incident_card(incident: Incident, policy: SeverityPolicy, *, now: datetime) -> Message:
    level = policy.level(incident.severity)
    sev = incident.severity.upper()
    header = f"{incident.ref} · {sev} · {incident.title}"
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
    others = [
        f"{role}: <@{user}>" for role, user in incident.roles.items() if role not in STANDARD_ROLES
    ]
    if others:
        fields.append("*Other roles*\n" + ", ".join(others))
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": header[:150], "emoji": True}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields[:10]]},
    ]
    if incident.last_status:
        when = clock_time(incident.last_status_at) if incident.last_status_at else ""
        blocks.append(_mrkdwn(f"*Latest update* ({when})\n{incident.last_status}"))
    if incident.summary:
        blocks.append(_mrkdwn(f"*Resolution*\n{incident.summary}"))
    milestones = [f"Declared {stamp(incident.declared_at)} by <@{incident.declared_by}>"]
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
    text = f"{incident.ref} [{sev}] {incident.title} — {status.value}"
    return Message(text=text, blocks=blocks)


def timeline_reply(entry: TimelineEntry) -> Message:
    emoji = ENTRY_EMOJI.get(entry.kind, ":small_blue_diamond:")
    return Message(
        text=entry.text,
        blocks=[
            _mrkdwn(f"{emoji} {entry.text}"),
            _context(f"{clock_time(entry.occurred_at)} · #{entry.seq}"),
        ],
    )


def confirmation(text: str) -> Message:
    return Message(text=text, blocks=[_mrkdwn(text)])


def timeline_listing(incident: Incident, entries: Sequence[TimelineEntry]) -> Message:
    lines = [
        f"{clock_time(e.occurred_at)}  {ENTRY_EMOJI.get(e.kind, '•')} {e.text}" for e in entries
    ]
    title = f"*Timeline of {incident.ref}: {incident.title}* ({len(entries)} entries)"
    blocks: list[Block] = [_mrkdwn(title)]
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
    if len(blocks) > MAX_BLOCKS:
        blocks = [
            *blocks[: MAX_BLOCKS - 1],
            _context("… older entries cut; `icbot audit verify` has them all"),
        ]
    return Message(text=title + "\n" + "\n".join(lines), blocks=blocks)


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
            f"{SEV_EMOJI.get(i.severity, '')} *{i.ref}* [{i.severity.upper()}] {i.title} — {state}"
            f" · IC {_person(i.commander)}"
        )
    text = "\n".join(lines)
    return Message(text=text, blocks=[_mrkdwn(text)])


def choose_incident(question: str, choices: Sequence[Choice], *, command: str) -> Message:
    buttons = [
        {
            "type": "button",
            "action_id": f"{IcAction.PICK_INCIDENT}:{c.value}",
            "text": {"type": "plain_text", "text": c.label[:75], "emoji": True},
            "value": json.dumps({"incident": int(c.value), "command": command})[:2000],
        }
        for c in choices[:25]
    ]
    blocks: list[Block] = [_mrkdwn(question)]
    for start in range(0, len(buttons), 5):  # an actions block holds at most 25; keep rows short
        blocks.append({"type": "actions", "elements": buttons[start : start + 5]})
    return Message(text=question, blocks=blocks)


def help_text(usage_lines: Sequence[str]) -> Message:
    lines = [
        "*icbot* — run incidents from Slack. Commands act on `INC-n`, or the only open incident."
    ]
    lines += [f"• `{line}`" for line in usage_lines]
    text = "\n".join(lines)
    return Message(text=text, blocks=[_mrkdwn(text)])


def error_text(error_id: str) -> str:
    return (
        f":warning: Something went wrong on my side (error id `{error_id}`)."
        " Check the incident thread before trying again, and give the bot's owners the id."
    )
