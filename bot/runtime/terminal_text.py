"""Slack's mrkdwn as a terminal shows it: what a person would see in Slack, as plain text.

`*bold*`, `_italic_` and `` `code` `` lose their marks (or, on a terminal that wants it, become
bold, italic and dim); a code block loses its fences and is indented; `<@U…>` is the person's
@name, `<#C…>` the #channel, `<url|label>` is `label (url)`, `<url>` the bare url; `> ` quotes
are a bar; `&lt;`, `&gt;` and `&amp;` are the characters they stand for; known `:emoji:` codes
are the emoji. See https://api.slack.com/reference/surfaces/formatting
"""

from __future__ import annotations

import re
from collections.abc import Callable

FENCE = re.compile(r"```\n?(.*?)\n?```", re.S)
CODE = re.compile(r"`([^`\n]+)`")
BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")
ITALIC = re.compile(r"(?<![\w_])_([^_\n]+)_(?![\w_])")
STRIKE = re.compile(r"(?<![\w~])~([^~\n]+)~(?![\w~])")
# Only what Slack reads as a control sequence: a mention, a channel, a special, a link.
CONTROL = re.compile(r"<((?:[@#!]|[a-z][a-z0-9+.-]*:)[^<>\s|]*(?:\|[^<>\n]*)?)>", re.I)
QUOTE = re.compile(r"^(?:>|&gt;) ?", re.M)
EMOJI_CODE = re.compile(r":([a-z0-9_+-]+):")
EMOJI = {
    "rotating_light": "🚨", "white_check_mark": "✅", "mag": "🔍", "dart": "🎯",
    "hammer_and_wrench": "🛠", "eyes": "👀", "adhesive_bandage": "🩹", "memo": "📝",
    "loudspeaker": "📢", "bust_in_silhouette": "👤", "chart_with_upwards_trend": "📈",
    "red_circle": "🔴", "large_orange_circle": "🟠", "large_yellow_circle": "🟡",
    "white_circle": "⚪", "warning": "⚠️", "small_blue_diamond": "🔹",
    "alarm_clock": "⏰", "telephone_receiver": "📞", "clipboard": "📋",
    "ballot_box_with_check": "☑️", "stethoscope": "🩺", "large_green_circle": "🟢",
    "information_source": "💡", "raised_hand": "✋", "x": "❌", "hourglass": "⌛",
    "grey_question": "❔", "pager": "📟", "gear": "⚙️", "no_entry": "⛔",
    "hourglass_flowing_sand": "⏳", "speech_balloon": "💬", "pushpin": "📌",
    "no_entry_sign": "🚫", "page_facing_up": "📄", "link": "🔗", "package": "📦",
    "bell": "🔔", "calendar": "📅", "lock": "🔒", "fire": "🔥", "arrows_counterclockwise": "🔄",
    "ticket": "🎫",
}  # fmt: skip
# ANSI styles for a terminal; the empty pair for a pipe.
STYLES = {"bold": ("\x1b[1m", "\x1b[22m"), "italic": ("\x1b[3m", "\x1b[23m"),
          "code": ("\x1b[2m", "\x1b[22m")}  # fmt: skip
PLAIN = {"bold": ("", ""), "italic": ("", ""), "code": ("", "")}


def terminal_text(
    text: str,
    *,
    user_name: Callable[[str], str | None],
    channel_name: Callable[[str], str],
    styled: bool = False,
) -> str:
    """`text` (Slack mrkdwn) as a terminal shows it. `user_name`: a user id's name, if known."""
    style = STYLES if styled else PLAIN
    blocks: list[str] = []

    def keep(match: re.Match[str]) -> str:  # a code block: nothing inside it is markup
        body = match.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        blocks.append("\n".join("    " + line for line in body.split("\n")))
        return f"\x00{len(blocks) - 1}\x00"

    text = FENCE.sub(lambda m: "\n" + keep(m) + "\n", text)
    codes: list[str] = []

    def code(match: re.Match[str]) -> str:
        on, off = style["code"]
        codes.append(on + _entities(match.group(1)) + off)
        return f"\x01{len(codes) - 1}\x01"

    text = CODE.sub(code, text)
    text = QUOTE.sub("│ ", text)
    text = CONTROL.sub(lambda m: _control(m.group(1), user_name, channel_name), text)
    on, off = style["bold"]
    text = BOLD.sub(lambda m: on + m.group(1) + off, text)
    on, off = style["italic"]
    text = ITALIC.sub(lambda m: on + m.group(1) + off, text)
    text = STRIKE.sub(r"\1", text)
    text = EMOJI_CODE.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text)
    text = _entities(text)
    text = re.sub(r"\x01(\d+)\x01", lambda m: codes[int(m.group(1))], text)
    text = re.sub(r"\n*\x00(\d+)\x00\n*", lambda m: "\n" + blocks[int(m.group(1))] + "\n", text)
    return text.strip("\n") if blocks else text


def _entities(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _control(
    body: str, user_name: Callable[[str], str | None], channel_name: Callable[[str], str]
) -> str:
    target, _, label = body.partition("|")
    if target.startswith("@"):
        return "@" + (user_name(target[1:]) or label or target[1:])
    if target.startswith("#"):
        return "#" + (label or channel_name(target[1:]))
    if target.startswith("!"):  # <!here>, <!subteam^S…|@group>, <!date^…|fallback>
        keyword = target[1:].split("^", 1)[0]
        if keyword in ("here", "channel", "everyone"):
            return "@" + keyword
        return label or "@" + keyword
    if target.startswith("mailto:"):
        return label or target.removeprefix("mailto:")
    if not label or label == target:
        return target
    return f"{label} ({target})"
