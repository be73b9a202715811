"""Slack users' emails, from `users.info` (scope `users:read.email`), cached for an hour.

Used to find a Jira assignee by the owner's email (bot/domain/jira.py `Directory`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import ErrorCode, IntegrationError

TTL = 3600.0
GONE = {"user_not_found", "user_not_visible", "account_inactive"}


class SlackEmails:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        ttl: float = TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def email(self, user_id: str) -> str | None:
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        try:
            response = await self.client.users_info(user=user_id)
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown_error"))
            if error not in GONE:
                raise IntegrationError(
                    "slack", ErrorCode.for_status(exc.response.status_code)
                    if exc.response.status_code >= 400 else ErrorCode.REFUSED,
                    f"users.info: {error}", reason=error,
                ) from exc  # fmt: skip
            found = None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise IntegrationError(
                "slack", ErrorCode.for_exception(exc), f"users.info: {type(exc).__name__}"
            ) from exc
        else:
            profile = (response.get("user") or {}).get("profile") or {}
            found = str(profile["email"]) if profile.get("email") else None
        self._cache[user_id] = (self._clock() + self.ttl, found)
        return found
