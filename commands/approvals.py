"""Approve / Deny on an approval card, and `/rollback`."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.core import wording
from bot.core.errors import UsageError, UserError
from bot.core.logs import get_logger
from bot.core.wording import Flavour
from bot.domain.approvals import Decision
from bot.playbooks.remediations.registry import DeploymentTarget
from commands import blocks
from commands.choices import asking_which
from commands.edge import Respond, run_reporting
from commands.parsing import INCIDENT, MAX_COMMAND, refuse_control_characters
from commands.services import Services

log = get_logger(__name__)

ROLLBACK_USAGE = (
    "Usage: `/rollback <deployment> [revision] [--namespace ns] [INC-n]`"
    " or `/rollback <deployment> --history`"
)


def parse_rollback(text: str) -> tuple[str, int | None, str | None, int | None, bool]:
    """(deployment, revision, namespace or None, incident, history?) or UsageError."""
    if len(text) > MAX_COMMAND:
        raise UsageError(ROLLBACK_USAGE)
    refuse_control_characters(text)
    words = text.split()
    namespace: str | None = None
    revision, incident, history = None, None, False
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


def _pending_id(value: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise UserError("That button is not valid.") from exc


def _beside(respond: Respond) -> Respond:
    """`respond`, answering ephemerally beside the card a button is on (never replacing it)."""

    async def send(**kwargs: Any) -> Any:
        return await respond(**{**kwargs, "replace_original": False})

    return send


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
        beside = _beside(respond)
        decided: list[Decision] = []

        async def decide() -> blocks.Message:
            decision = await approvals.decide(_pending_id(value), user=user, approve=approve)
            decided.append(decision)
            return blocks.confirmation(wording.entry_text(decision.entry, Flavour.SLACK))

        async def run() -> blocks.Message | None:
            after = await approvals.run(decided[0].action.id)
            if after.status == "changed":
                summary = (after.result or {}).get("summary")
                return blocks.confirmation(
                    f":warning: Nothing was run: {summary}. *Request again* on the card asks"
                    " for a fresh approval."
                )
            return None

        async with self.services.inflight.track():
            # Every click gets an answer, the database down included (an error id, as a
            # command gets); the card the click came from is never replaced.
            await run_reporting(beside, decide, command="approval")
            if decided and decided[0].run:
                await run_reporting(beside, run, command="approval (run)")

    async def request_again(self, ack: AsyncAck, body: dict[str, Any], respond: Respond) -> None:
        """ "Request again" on a request that did not run: a fresh request, fresh preview."""
        await ack()
        user = str(body["user"]["id"])
        value = str(((body.get("actions") or [{}])[0]).get("value") or "")

        async def work() -> blocks.Message:
            pending = await self.services.approvals.request_again(_pending_id(value), actor=user)
            return blocks.confirmation(
                f"Asked for approval again in the incident thread (request #{pending.id}): "
                + "; ".join(str(line) for line in pending.preview.get("lines", []))
            )

        async with self.services.inflight.track():
            await run_reporting(_beside(respond), work, command="request again")

    async def rollback(self, ack: AsyncAck, command: dict[str, Any], respond: Respond) -> None:
        text = str(command.get("text") or "")
        try:
            parse_rollback(text)
        except UsageError as exc:
            await ack(response_type="ephemeral", text=str(exc))
            return
        await ack()
        user = str(command["user_id"])
        work = asking_which(
            self.services, lambda: self.rollback_work(text, user=user), user=user,
            command=f"/rollback {text}",
        )  # fmt: skip
        async with self.services.inflight.track():
            await run_reporting(respond, work, command="/rollback")

    async def rollback_work(
        self, text: str, *, user: str, incident: int | None = None
    ) -> blocks.Message:
        """`/rollback <text>` for `user`; `incident` overrides one named in the text."""
        deployment, revision, namespace, named, history = parse_rollback(text)
        namespace = namespace or self.services.remediator.namespace
        if history:
            return await self._history(namespace, deployment)
        pending = await self.services.approvals.propose(
            ref=incident if incident is not None else named,
            action="rollback_deployment",
            params={"namespace": namespace, "deployment": deployment, "revision": revision},
            label=f"Roll back {deployment}",
            actor=user,
        )
        return blocks.confirmation(
            f"Asked for approval in the incident thread (request #{pending.id}): "
            + "; ".join(str(line) for line in pending.preview.get("lines", []))
        )

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
