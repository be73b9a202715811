"""What the outbox posts in the thread: `commands.blocks`, plus the incident page's link on
the resolved post (made here, not in `blocks`, because a link is minted with a key and a clock).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from bot.core.models import Clock, Incident, TimelineEntry
from bot.domain.policy import SeverityPolicy
from bot.domain.timeline import Kind
from bot.pages.links import Linker
from bot.store.actions import PendingAction
from commands import blocks

if TYPE_CHECKING:
    from bot.domain.ports import Renderer


class ThreadRenderer:
    """The outbox's `Renderer`: every message worded by `commands.blocks`; the resolved post
    also carries a fresh link to the incident page (the link maker is made on first use: with
    no secrets set, making it writes the laptop's key)."""

    def __init__(self, links: Callable[[], Linker], *, clock: Clock) -> None:
        self._make_links = links
        self._clock = clock

    @functools.cached_property
    def _links(self) -> Linker:
        return self._make_links()

    def incident_card(
        self, incident: Incident, policy: SeverityPolicy, *, now: datetime
    ) -> blocks.Message:
        return blocks.incident_card(incident, policy, now=now)

    def timeline_reply(self, entry: TimelineEntry) -> blocks.Message:
        message = blocks.timeline_reply(entry)
        if entry.kind == Kind.RESOLVED:
            url = self._links.url(entry.incident_id, now=self._clock())
            message = blocks.with_page_link(message, url)
        return message

    def approval_card(self, entry: TimelineEntry, pending: PendingAction) -> blocks.Message:
        return blocks.approval_card(entry, pending)

    def thread_digest(self, entries: Sequence[TimelineEntry]) -> blocks.Message:
        return blocks.thread_digest(entries)


if TYPE_CHECKING:  # mypy proves the renderer is the port (bot/domain/ports.py)

    def _conforms(renderer: ThreadRenderer) -> Renderer:
        return renderer
