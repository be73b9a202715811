"""Who Slack user ids are: `users.info`, cached (https://api.slack.com/methods/users.info), or,
with no Slack to ask, a `users.list` answer saved to a file (the shell's workspace).

One `Directory` (bot/domain/ports.py) for everything that needs a member: names for text Slack
will not render (post-mortem files, the terminal), the email that picks a Jira assignee, the
emails the fallback writes to while Slack is down (which caches them in PostgreSQL itself).

The name shown is the one Slack shows: `profile.display_name`, else `profile.real_name`
(`real_name`), else the handle (`name`). The email needs the scope `users:read.email`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import ConfigError
from bot.core.models import Member
from bot.integrations.slack import _error_name, _wrap

if TYPE_CHECKING:
    from bot.domain.ports import Directory

TTL = 3600.0  # an hour: names and emails change rarely, and a change shows within the hour
# What `users.info` answers for an id it will not describe: no such member, for this bot.
NOT_FOUND = ("user_not_found", "users_not_found", "user_not_visible", "account_inactive")


def shown_name(user: dict[str, Any]) -> str | None:
    """The name Slack shows for a `users.info` / `users.list` user object."""
    profile = user.get("profile") or {}
    for name in (profile.get("display_name"), profile.get("real_name"), user.get("real_name"),
                 user.get("name")):  # fmt: skip
        if isinstance(name, str) and name.strip():
            return name.strip()
    return None


def _member(user_id: str, user: Any) -> Member:
    if not isinstance(user, dict):
        return Member(user_id, None, None)
    email = (user.get("profile") or {}).get("email")
    return Member(user_id, str(email) if email else None, shown_name(user))


class SlackDirectory:
    """`users.info` per id, each answer kept for `ttl` seconds (unknown ids too)."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        ttl: float = TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[Member, float]] = {}  # id -> (member, fetched at)

    async def member(self, user_id: str) -> Member:
        cached = self._cache.get(user_id)
        now = self.clock()
        if cached is not None and now - cached[1] <= self.ttl:
            return cached[0]
        found = await self._info(user_id)
        self._cache[user_id] = (found, now)
        return found

    async def names(self, user_ids: Collection[str]) -> dict[str, str]:
        wanted = sorted(set(user_ids))
        members = await asyncio.gather(*(self.member(u) for u in wanted))
        return {m.user_id: m.name for m in members if m.name is not None}

    async def _info(self, user_id: str) -> Member:
        try:
            response = await self.client.users_info(user=user_id)
        except SlackApiError as exc:
            if _error_name(exc) in NOT_FOUND:
                return Member(user_id, None, None)
            raise _wrap(exc, "users.info") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _wrap(exc, "users.info") from exc
        data = response.data if isinstance(response.data, dict) else {}
        return _member(user_id, data.get("user"))


class ExportedDirectory:
    """Members from a `users.list` answer saved as JSON (`{"members": [...]}`); no file, none."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def names(self, user_ids: Collection[str]) -> dict[str, str]:
        found = await self._members()
        return {u: name for u in user_ids if (m := found.get(u)) and (name := m.name)}

    async def member(self, user_id: str) -> Member:
        return (await self._members()).get(user_id) or Member(user_id, None, None)

    async def _members(self) -> dict[str, Member]:
        members = await asyncio.to_thread(self._read)
        return {
            str(m.get("id")): _member(str(m.get("id")), m) for m in members if isinstance(m, dict)
        }

    def _read(self) -> list[Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []  # no shell has run here: mentions keep their ids
        except ValueError as exc:
            raise ConfigError(f"{self.path} is not a users.list answer: {exc}") from exc
        members = data.get("members") if isinstance(data, dict) else None
        return members if isinstance(members, list) else []


if TYPE_CHECKING:  # mypy proves the adapters are the port (bot/domain/ports.py)

    def _conforms(
        slack: SlackDirectory, exported: ExportedDirectory
    ) -> tuple[Directory, Directory]:
        return slack, exported
