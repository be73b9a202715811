"""Text for Slack: one-line clips that never cut a `<...>` link or mention in half."""

from __future__ import annotations


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
