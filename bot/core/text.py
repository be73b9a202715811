"""Text for Slack: outside text made inert, and one-line clips that never cut a `<...>` in half.

`inert` is the one way text that came from outside (slash command arguments, form fields,
captured messages, PagerDuty, alerts, Kubernetes logs, actuator values) becomes Slack text.
The renderers (`commands.blocks`, `bot.domain.postmortem`) call it on outside text as they build
what the bot posts; the timeline keeps what was typed. The bot's own words (a status prompt's
`<!channel>`, an escalation's `<!subteam^…>`) are never passed through it.
"""

from __future__ import annotations

import re
import unicodedata

# A Slack control sequence `<…>` (never nested), or a `<` / `>` that opens or closes none.
_CONTROL = re.compile(r"<([^<>]*)>|[<>]")
_USER = re.compile(r"@[UW][A-Z0-9]{2,20}(?:\|[^|]*)?")
_CHANNEL = re.compile(r"#C[A-Z0-9]{2,20}(?:\|[^|]*)?")
_LINK_TARGET = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s|]+")  # `scheme:…`, as Slack links
_BROADCASTS = ("channel", "here", "everyone")
# Characters PostgreSQL or Slack refuse or that only garble text: C0/C1 controls (but tab,
# newline and carriage return), and lone surrogates.
_ALLOWED_CONTROLS = frozenset("\t\n\r")


def _special(body: str) -> str:
    """`<!…>` (a broadcast, a user group, a date) as the words Slack would show, inert."""
    keyword, _, label = body.partition("|")
    name = keyword.split("^", 1)[0].lower()
    if name in _BROADCASTS:
        return f"@{name}"
    if name == "subteam":
        group = label.strip() or keyword.split("^", 1)[-1]
        return "@" + group.lstrip("@")
    return label.strip() or keyword


def _inert_sequence(match: re.Match[str]) -> str:
    body = match.group(1)
    if body is None:  # a lone angle bracket: escaped, so it cannot start or end a sequence
        return "&lt;" if match.group(0) == "<" else "&gt;"
    if _USER.fullmatch(body) or _CHANNEL.fullmatch(body):
        return match.group(0)  # how people name each other (and channels): kept
    if body.startswith("!"):
        return _special(body[1:])
    if body.startswith("@") or body.startswith("#"):
        return body  # not a real user or channel id: shown as typed, links nothing
    target, bar, label = body.partition("|")
    if not _LINK_TARGET.fullmatch(target):  # not a link (`a < b > c`): shown as typed
        return f"&lt;{body}&gt;"
    if not bar or label.strip() in ("", target):
        return f"<{target}>"
    return f"{label} (<{target}>)"  # a masked link shows where it really goes


def inert(text: str) -> str:
    """`text` from outside as Slack text that mentions no crowd and hides no link target.

    Broadcast mentions (`<!channel>`, `<!here>`, `<!everyone>`, `<!subteam^…>`, with or
    without a `|label`) become the visible words `@channel`...; a masked link
    `<url|label>` becomes `label (<url>)`; user mentions `<@U…>` and channel links `<#C…>`
    stay. Angle brackets that open or close no sequence are escaped (`&lt;`, `&gt;`), so
    outside text cannot open a sequence that the bot's own words around it would close.
    Idempotent: `inert(inert(t)) == inert(t)`.
    """
    return _CONTROL.sub(_inert_sequence, text)


def control_character(text: str) -> str | None:
    """The first character of `text` that typed text must not hold (a NUL or other control
    character, a lone surrogate), as `U+XXXX`; None if there is none."""
    for char in text:
        if char in _ALLOWED_CONTROLS:
            continue
        if unicodedata.category(char) in ("Cc", "Cs"):
            return f"U+{ord(char):04X}"
    return None


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """`text` with what PostgreSQL cannot store (NUL, lone surrogates) shown as U+FFFD: for
    text no usage line can answer, such as a message people post in an incident's thread."""
    return _UNSTORABLE.sub("\ufffd", text)


def compact(text: str, limit: int) -> str:
    """One line of at most `limit` characters, never cut inside a `<…>` link or mention."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    opened, closed = cut.rfind("<"), cut.rfind(">")
    if opened > closed:
        cut = cut[:opened]
    return cut.rstrip() + "…"
