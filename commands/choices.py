"""The "Which incident?" question for any command: `/ic …`, `/rollback …`, `/diagnose …`.

The question's buttons carry only the chosen incident and the id of a row holding the original
command (a Slack button value holds 2,000 characters, a command more); the click runs that
command on the chosen incident (`IcHandlers.pick_incident`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.core.errors import Ambiguous
from bot.store import choices as choices_sql
from commands import blocks
from commands.services import Services

Work = Callable[[], Awaitable[blocks.Message]]


def asking_which(services: Services, work: Work, *, user: str, command: str) -> Work:
    """`work`, but an ambiguous incident becomes a question whose buttons re-run `command`."""

    async def run() -> blocks.Message:
        try:
            return await work()
        except Ambiguous as exc:
            async with services.pool.acquire() as conn:
                choice_id = await choices_sql.insert(
                    conn, user_id=user, command=command, now=services.clock()
                )
            return blocks.choose_incident_by_id(str(exc), exc.choices, choice_id=choice_id)

    return run


async def original_command(services: Services, choice_id: int, *, user: str) -> str | None:
    async with services.pool.acquire() as conn:
        return await choices_sql.get(conn, choice_id, user_id=user)
