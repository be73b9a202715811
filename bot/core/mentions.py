"""`<@U…>` mentions as the names people read, for text Slack does not render (a file, a
terminal). The stored text keeps the ids (the timeline is hashed); names are put in when the
text is rendered, from a `Directory` (`bot/domain/ports.py`)."""

from __future__ import annotations

import re
from collections.abc import Mapping

MENTION = re.compile(r"<@([UW][A-Z0-9]{2,20})(?:\|([^>]*))?>")


def mentioned(text: str) -> set[str]:
    """The user ids `text` mentions."""
    return {m.group(1) for m in MENTION.finditer(text)}


def with_names(text: str, names: Mapping[str, str]) -> str:
    """Each `<@U…>` as `@name`; one whose name is unknown keeps its label, else its id."""

    def name(match: re.Match[str]) -> str:
        uid, label = match.group(1), match.group(2)
        return "@" + (names.get(uid) or (label or "").lstrip("@") or uid)

    return MENTION.sub(name, text)
