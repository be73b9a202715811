"""`/diagnose <playbook> [INC-n]`, and the remediation buttons of its report."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot.core.errors import Ambiguous, UserError
from bot.playbooks.catalogue import Playbook
from bot.playbooks.remediations.runner import NotAvailable
from commands import blocks
from commands.choices import asking_which
from commands.edge import Respond, run_reporting
from commands.parsing import INCIDENT, MAX_COMMAND
from commands.services import Services


def parse(text: str) -> tuple[str | None, int | None]:
    """(playbook name or None for the list, incident number)."""
    words = text.split()
    number = None
    rest = []
    for word in words:
        match = INCIDENT.match(word)
        if match and number is None:
            number = int(match.group(1))
        else:
            rest.append(word)
    return (rest[0] if rest else None), number


class DiagnoseHandlers:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def command(self, ack: AsyncAck, command: dict[str, Any], respond: Respond) -> None:
        text = str(command.get("text") or "")[:MAX_COMMAND]
        name, number = parse(text)
        diagnoser = self.services.diagnoser
        if name is None:
            listing = blocks.playbook_list(list(self.services.catalogue.playbooks.values()))
            await ack(response_type="ephemeral", text=listing.text, blocks=listing.blocks)
            return
        try:
            playbook = diagnoser.playbook(name)
        except UserError as exc:
            await ack(response_type="ephemeral", text=str(exc))
            return
        await ack()
        user = str(command["user_id"])
        work = asking_which(
            self.services, lambda: self.run(playbook, number, user=user), user=user,
            command=f"/diagnose {text}",
        )  # fmt: skip
        async with self.services.inflight.track():
            await run_reporting(respond, work, command=f"/diagnose {playbook.name}")

    async def run(self, playbook: Playbook, number: int | None, *, user: str) -> blocks.Message:
        diagnoser = self.services.diagnoser
        incident = await diagnoser.incident(number)
        report = await diagnoser.diagnose(playbook, incident, actor=user)
        if incident is not None:
            return blocks.confirmation(
                f"Diagnosis `{playbook.name}` posted in *{incident.ref}*'s thread: {report.verdict}"
            )
        data = {
            **report.data(),
            "steps": playbook.steps,
            "remediations": [
                {"action": r.action, "label": r.label, "when": r.when}
                for r in playbook.remediations
            ],
            "escalation": playbook.escalation,
        }
        return blocks.Message(
            text=report.verdict,
            blocks=[
                *blocks.diagnosis_blocks(data),
                *blocks.confirmation(
                    "No incident is open, so this report is only shown to you."
                ).blocks,
            ],
        )

    async def remediation_clicked(
        self, ack: AsyncAck, body: dict[str, Any], respond: Respond
    ) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        user = str(body["user"]["id"])

        async def work() -> blocks.Message:
            try:
                choice = json.loads(action.get("value") or "")
                playbook = self.services.diagnoser.playbook(str(choice["playbook"]))
                remedy = playbook.remediations[int(choice["index"])]
                incident = int(choice["incident"]) if choice.get("incident") else None
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise UserError("That button is no longer valid; run `/diagnose` again.") from exc
            try:
                pending = await self.services.approvals.propose(
                    ref=incident, action=remedy.action, params=remedy.params,
                    label=remedy.label, actor=user,
                )  # fmt: skip
            except Ambiguous as exc:  # a report shown only to its caller: ask, then rerun this
                return blocks.choose_remediation_incident(
                    str(exc), exc.choices, playbook=playbook.name, index=int(choice["index"])
                )
            except NotAvailable as exc:
                raise UserError(
                    f"*{remedy.label}*: {exc} Do it by hand and record it with `/ic note`."
                ) from exc
            return blocks.confirmation(
                f"Asked for approval of *{remedy.label}* in the incident thread"
                f" (request #{pending.id})."
            )

        async with self.services.inflight.track():
            await run_reporting(respond, work, command="remediation")
