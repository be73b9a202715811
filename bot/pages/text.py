"""Slack text made readable on a web page, as data the template escapes.

What the bot stored is Slack mrkdwn: `<@U123>` mentions, `<#C1|name>` channels, `<!here>`,
`<https://target|label>` links, and `&lt;`-style escapes. On the page a mention reads `@U123`
(or its name), a special mention `@here`, and a link shows its real target (never a label
that could hide it); only http(s) targets become anchors. Nothing here produces HTML: the
template's autoescape turns every segment into text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Slack's own `<…>` forms only: a mention, channel or special mention, or a URL with a scheme;
# any other `<` (typed text such as `<script>`) stays text.
_TOKEN = re.compile(
    r"<([@#!][^<>\s|]*(?:\|[^<>]*)?|[A-Za-z][A-Za-z0-9+.-]*:[^<>\s|]+(?:\|[^<>]*)?)>"
)
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))
_EMOJI = re.compile(r":[a-z0-9_+-]+:")
# The emoji codes the bot itself writes: a mark that any font has, or nothing (a browser
# without an emoji font would show boxes); other `:codes:` are left as typed.
EMOJI = {":white_check_mark:": "✓", ":x:": "✗", ":warning:": "⚠", ":heavy_check_mark:": "✓"}
BOT_EMOJI = frozenset(
    {
        ":rotating_light:", ":loudspeaker:", ":memo:", ":page_facing_up:", ":pushpin:", ":gear:",
        ":stethoscope:", ":pager:", ":alarm_clock:", ":no_entry:", ":handshake:", ":link:",
        ":bust_in_silhouette:", ":large_green_circle:", ":large_yellow_circle:", ":red_circle:",
        ":chart_with_upwards_trend:", ":telephone_receiver:", ":clipboard:", ":bell:", ":dart:",
        ":ballot_box_with_check:", ":leftwards_arrow_with_hook:", ":speech_balloon:",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Segment:
    text: str
    href: str | None = None  # set only for http(s) link targets


def _unescape(text: str) -> str:
    for entity, char in _ENTITIES:
        text = text.replace(entity, char)
    return _EMOJI.sub(_emoji, text)


def _emoji(match: re.Match[str]) -> str:
    code = match.group(0)
    return EMOJI.get(code, "" if code in BOT_EMOJI else code)


def _token(inner: str) -> Segment:
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return Segment("@" + (label.lstrip("@") or target[1:]))
    if target.startswith("#"):
        return Segment("#" + (label.lstrip("#") or target[1:]))
    if target.startswith("!"):
        name = target[1:].split("^", 1)[0]
        if name in ("here", "channel", "everyone"):
            return Segment(f"@{name}")
        return Segment(label or f"@{name}")  # subteams and dates: their fallback text
    real = _unescape(target)
    if re.match(r"^https?://", real, re.I):
        return Segment(real, href=real)
    return Segment(real)  # mailto:, tel: and the rest: shown, not linked


def segments(text: str) -> list[Segment]:
    """`text` as plain segments and links (see the module docstring)."""
    found: list[Segment] = []
    at = 0
    for match in _TOKEN.finditer(text):
        if match.start() > at:
            found.append(Segment(_unescape(text[at : match.start()])))
        found.append(_token(match.group(1)))
        at = match.end()
    if at < len(text):
        found.append(Segment(_unescape(text[at:])))
    return found


def plain(text: str) -> str:
    """The same, as one string (for titles and tooltips)."""
    return "".join(s.text for s in segments(text))
