"""Which `Directory` names people for a one-shot command (`icbot postmortem`): Slack's
`users.info` when SLACK_BOT_TOKEN is set, else the workspace the shell keeps in the data
directory (`slack-users.json`, a `users.list` answer), else none (mentions keep their ids)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient

from bot.core.settings import Settings
from bot.domain.ports import Directory
from bot.integrations.slack_directory import ExportedDirectory, SlackDirectory

SHELL_USERS = "slack-users.json"  # the shell's Slack stand-in keeps its members here


def shell_users(data_dir: Path) -> Path:
    return data_dir / SHELL_USERS


@asynccontextmanager
async def open_directory(settings: Settings) -> AsyncIterator[Directory]:
    if settings.slack_bot_token is None:
        yield ExportedDirectory(shell_users(settings.data_dir))
        return
    client = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=10,
    )
    try:
        yield SlackDirectory(client)
    finally:
        if client.session is not None:
            await client.session.close()
