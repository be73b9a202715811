"""Names for Slack user ids: `users.info`, cached (https://api.slack.com/methods/users.info),
or, with no Slack to ask, a `users.list` answer saved to a file (the shell's workspace).

The name shown is the one Slack shows: `profile.display_name`, else `profile.real_name`
(`real_name`), else the handle (`name`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import ConfigError
from bot.integrations.slack import _error_name, _wrap

NOT_FOUND = ("user_not_found", "users_not_found")


def shown_name(user: dict[str, Any]) -> str | None:
    """The name Slack shows for a `users.info` / `users.list` user object."""
    profile = user.get("profile") or {}
    for name in (profile.get("display_name"), profile.get("real_name"), user.get("real_name"),
                 user.get("name")):  # fmt: skip
        if isinstance(name, str) and name.strip():
            return name.strip()
    return None


class SlackDirectory:
    """`users.info` per id, each answer kept for `ttl` seconds (unknown ids too)."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[str | None, float]] = {}  # id -> (name, fetched at)

    async def names(self, user_ids: Collection[str]) -> dict[str, str]:
        now = self.clock()
        wanted = [u for u in set(user_ids) if now - self._cache.get(u, (None, -1e18))[1] > self.ttl]
        fetched = await asyncio.gather(*(self._info(u) for u in wanted))
        for uid, name in zip(wanted, fetched, strict=True):
            self._cache[uid] = (name, now)
        found = {u: self._cache[u][0] for u in user_ids if u in self._cache}
        return {u: name for u, name in found.items() if name is not None}

    async def _info(self, user_id: str) -> str | None:
        try:
            response = await self.client.users_info(user=user_id)
        except SlackApiError as exc:
            if _error_name(exc) in NOT_FOUND:
                return None
            raise _wrap(exc, "users.info") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _wrap(exc, "users.info") from exc
        user = response.data.get("user") if isinstance(response.data, dict) else None
        return shown_name(user) if isinstance(user, dict) else None


class ExportedDirectory:
    """Names from a `users.list` answer saved as JSON (`{"members": [...]}`); no file, no names."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def names(self, user_ids: Collection[str]) -> dict[str, str]:
        members = await asyncio.to_thread(self._members)
        found = {str(m.get("id")): shown_name(m) for m in members if isinstance(m, dict)}
        return {u: name for u in user_ids if (name := found.get(u))}

    def _members(self) -> list[Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []  # no shell has run here: mentions keep their ids
        except ValueError as exc:
            raise ConfigError(f"{self.path} is not a users.list answer: {exc}") from exc
        members = data.get("members") if isinstance(data, dict) else None
        return members if isinstance(members, list) else []
