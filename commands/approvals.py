"""Approve / Deny on an approval card, and `/rollback`."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from slack_bolt.context.ack.async_ack import AsyncAck

from bot import blocks
from bot.errors import UsageError, UserError
from bot.logs import get_logger
from bot.remediation.registry import DeploymentTarget
from bot.services import Services
from commands.edge import Respond, reply, run_reporting
from commands.parsing import INCIDENT, MAX_COMMAND, refuse_control_characters

log = get_logger(__name__)

ROLLBACK_USAGE = (
    "Usage: `/rollback <deployment> [revision] [--namespace ns] [INC-n]`"
    " or `/rollback <deployment> --history`"
)


def parse_rollback(text: str) -> tuple[str, int | None, str, int | None, bool]:
    """(deployment, revision, namespace, incident, history?) or UsageError."""
    if len(text) > MAX_COMMAND:
        raise UsageError(ROLLBACK_USAGE)
    refuse_control_characters(text)
    words = text.split()
    namespace, revision, incident, history = "waqiti", None, None, False
    rest: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("--namespace", "-n"):
            if i + 1 >= len(words):
                raise UsageError(ROLLBACK_USAGE)
            namespace, i = words[i + 1], i + 2
            continue
        if word.startswith("--namespace="):
            namespace = word.split("=", 1)[1]
        elif word == "--history":
            history = True
        elif INCIDENT.match(word):
            incident = int(INCIDENT.match(word).group(1))  # type: ignore[union-attr]
        elif word.isascii() and word.isdigit() and rest:  # `int("²")` fails though "²".isdigit()
            revision = int(word)
        else:
            rest.append(word)
        i += 1
    if len(rest) != 1:
        raise UsageError(ROLLBACK_USAGE)
    return rest[0].removeprefix("deployment/"), revision, namespace, incident, history


class ApprovalHandlers:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def approve(self, ack: AsyncAck, body: dict[str, Any], respond: Respond) -> None:
        await self._decide(ack, body, respond, approve=True)

    async def deny(self, ack: AsyncAck, body: dict[str, Any], respond: Respond) -> None:
        await self._decide(ack, body, respond, approve=False)

    async def _decide(
        self, ack: AsyncAck, body: dict[str, Any], respond: Respond, *, approve: bool
    ) -> None:
        await ack()
        user = str(body["user"]["id"])
        value = str(((body.get("actions") or [{}])[0]).get("value") or "")
        approvals = self.services.approvals
        async with self.services.inflight.track():
            try:
                decision = await approvals.decide(int(value), user=user, approve=approve)
            except (UserError, ValueError) as exc:
                text = str(exc) if isinstance(exc, UserError) else "That button is not valid."
                await reply(respond, blocks.confirmation(f":no_entry_sign: {text}"),
                            response_type="ephemeral", replace_original=False)  # fmt: skip
                return
            await reply(respond, blocks.confirmation(decision.message),
                        response_type="ephemeral", replace_original=False)  # fmt: skip
            if decision.run:
                await approvals.run(decision.action.id)

    async def rollback(self, ack: AsyncAck, command: dict[str, Any], respond: Respond) -> None:
        try:
            deployment, revision, namespace, incident, history = parse_rollback(
                str(command.get("text") or "")
            )
        except UsageError as exc:
            await ack(response_type="ephemeral", text=str(exc))
            return
        await ack()
        user = str(command["user_id"])

        async def work() -> blocks.Message:
            if history:
                return await self._history(namespace, deployment)
            pending = await self.services.approvals.propose(
                ref=incident,
                action="rollback_deployment",
                params={"namespace": namespace, "deployment": deployment, "revision": revision},
                label=f"Roll back {deployment}",
                actor=user,
            )
            return blocks.confirmation(
                f"Asked for approval in the incident thread (request #{pending.id}): "
                + "; ".join(str(line) for line in pending.preview.get("lines", []))
            )

        async with self.services.inflight.track():
            await run_reporting(respond, work, command="/rollback")

    async def _history(self, namespace: str, deployment: str) -> blocks.Message:
        try:
            target = DeploymentTarget(namespace=namespace, deployment=deployment)
        except ValidationError as exc:
            raise UsageError(f"`{deployment[:60]}` is not a deployment name.") from exc
        revisions = await self.services.remediator.history(target)
        lines = [f"*Rollout history of `{namespace}/{deployment}`* (newest first):"]
        for n, r in enumerate(revisions):
            mark = " ← current" if n == 0 else ""
            lines.append(f"• revision {r.number}: `{r.image}`{mark}")
        lines.append("`/rollback " + deployment + " <revision>` asks to roll back to one of them.")
        return blocks.confirmation("\n".join(lines))
