"""The `Chat` capability the domain posts through (Slack in production and in the shell)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

from bot.core.models import Member


@dataclass(frozen=True)
class SharedFile:
    """A file the bot shared: its id, name, title and where people open it."""

    id: str
    name: str
    title: str
    permalink: str


class Chat(Protocol):
    async def post(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]],
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Post a message; returns its ts. Raises IntegrationError."""
        ...

    async def update(
        self, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]
    ) -> None: ...

    async def delete(self, *, channel: str, ts: str) -> None:
        """Delete a message the bot posted (gone already is fine). Raises IntegrationError."""
        ...

    async def find_posted(
        self, *, channel: str, thread_ts: str | None, event_type: str, key: str
    ) -> str | None:
        """The ts of a message the bot already posted with this metadata key, if any."""
        ...

    async def resolve_channel(self, name_or_id: str) -> str: ...

    async def share_file(
        self,
        *,
        channel: str,
        thread_ts: str | None,
        filename: str,
        title: str,
        content: str | bytes,
        comment: str,
    ) -> SharedFile:
        """Upload `content` (text as UTF-8, bytes as they are) as a file and share it in
        `channel` (in `thread_ts`'s thread), `comment` being the message that carries it.
        Raises IntegrationError."""
        ...

    async def delete_file(self, file_id: str) -> None:
        """Delete a file the bot shared (gone already is fine). Raises IntegrationError."""
        ...


class Directory(Protocol):
    """Who a Slack user id is (`users.info`, cached): names for text Slack will not render (a
    file, the terminal), emails for a Jira assignee and the email fallback."""

    async def names(self, user_ids: Collection[str]) -> dict[str, str]:
        """The display name of each of `user_ids` the workspace knows (others are left out).
        Raises IntegrationError."""
        ...

    async def member(self, user_id: str) -> Member:
        """The member's email and name (both None for an id the workspace does not know).
        Raises IntegrationError."""
        ...
