"""What the email fallback sends when Slack is down: plain text, worded here like the thread.

Timeline text is Slack text (`<@U…>` mentions, `<url|label>` links, `&lt;` escapes); email is
plain, so `plain` turns each sequence into what a reader of the thread would see: a person's
name (`@ana`, from the cached Slack profile), `label (url)`, `#channel`, `@channel`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bot.core.models import Incident, TimelineEntry
from bot.core.timefmt import clock_time, stamp
from bot.domain.ports import Mail
from bot.domain.timeline import Kind

if TYPE_CHECKING:
    from bot.domain.ports import MailRenderer as MailRendererPort

_SEQUENCE = re.compile(r"<([^<>]*)>")
SUBJECT_CHARS = 120

# What the subject says the email is about, by kind (else the entry's first line).
SUBJECTS = {
    Kind.SLACK_UNREACHABLE: "Slack is unreachable: updates by email",
    Kind.SLACK_REACHABLE: "Slack is reachable again",
    Kind.PROMPT: "status update needed",
    Kind.PROMPT_ESCALATED: "no status update: escalated",
}

FOOTER_DOWN = (
    "Slack is unreachable, so icbot sends the incident's key events and status prompts by email"
    " too, until Slack answers again. The incident's timeline keeps everything."
)
FOOTER_BACK = "Slack answers again: icbot stops emailing. The thread has every update."


def plain(text: str, *, names: dict[str, str]) -> str:
    """Slack text as plain text (see the module's doc)."""

    def one(match: re.Match[str]) -> str:
        body = match.group(1)
        target, _, label = body.partition("|")
        if target.startswith("@"):
            user = target[1:]
            return "@" + (names.get(user) or label or user)
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            keyword = target[1:].split("^", 1)[0]
            return "@" + (label.lstrip("@") or keyword)
        return f"{label} ({target})" if label and label != target else target

    out = _SEQUENCE.sub(one, text)
    return out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= SUBJECT_CHARS else line[: SUBJECT_CHARS - 1] + "…"


class MailRenderer:
    """The email queue's `MailRenderer`."""

    def entry_mail(
        self, incident: Incident, entry: TimelineEntry, *, names: dict[str, str], link: str | None
    ) -> Mail:
        said = plain(entry.text, names=names)
        about = SUBJECTS.get(entry.kind)  # type: ignore[call-overload]
        sev = incident.severity.upper()
        title = plain(incident.title, names=names)
        subject = f"[{incident.ref} {sev}] {title}: {about or _first_line(said)}"
        lines = [
            f"{incident.ref} · {sev} · {title} ({incident.status.value})",
            "",
            f"{clock_time(entry.occurred_at)}  {said}",
            "",
        ]
        if link:
            lines += [f"Incident page: {link}", ""]
        lines += [
            FOOTER_BACK if entry.kind == Kind.SLACK_REACHABLE else FOOTER_DOWN,
            f"(entry #{entry.seq}, {stamp(entry.occurred_at)})",
        ]
        return Mail(subject=subject[:250], body="\n".join(lines) + "\n")


if TYPE_CHECKING:  # mypy proves the renderer is the port (bot/domain/ports.py)

    def _conforms(renderer: MailRenderer) -> MailRendererPort:
        return renderer
