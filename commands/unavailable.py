"""Slash commands the manifest declares whose engines are not in this build yet.

They answer honestly (ephemeral, nothing changed) instead of failing or staying silent.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

MESSAGES = {
    "/rollback": (
        "`/rollback` needs approved remediations, which this build of icbot does not have yet."
        " Roll back by hand (`kubectl rollout undo`) and record it with `/ic note`."
    ),
}


async def not_yet(ack: AsyncAck, command: dict[str, Any]) -> None:
    await ack(
        response_type="ephemeral", text=MESSAGES.get(str(command.get("command")), "Not available.")
    )
