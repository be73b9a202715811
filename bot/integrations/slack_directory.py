"""`Directory` over Slack's `users.info`: a member's email (needs `users:read.email`) and name.

The email fallback caches what this returns while Slack answers (bot/domain/email_fallback.py).
"""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import ErrorCode, IntegrationError
from bot.store.fallback import Person


class SlackDirectory:
    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def person(self, user_id: str) -> Person:
        try:
            response = await self.client.users_info(user=user_id)
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error", "unknown_error"))
            if error == "user_not_found":
                return Person(user_id, None, None)
            code = ErrorCode.for_status(status) if status >= 400 else ErrorCode.REFUSED
            raise IntegrationError("slack", code, f"users.info: {error}", reason=error) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise IntegrationError(
                "slack", ErrorCode.for_exception(exc), f"users.info: {type(exc).__name__}"
            ) from exc
        user = response.get("user") or {}
        profile = user.get("profile") or {}
        email = profile.get("email")
        name = profile.get("display_name") or profile.get("real_name") or user.get("name")
        return Person(user_id, str(email) if email else None, str(name) if name else None)
