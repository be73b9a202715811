"""Status prompts' "Post update" button and modal, and the post-incident checklist ticks."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import Repeated, UserError
from bot.core.logs import get_logger
from bot.core.text import control_character
from bot.domain import once, timeline
from bot.domain.incidents import MAX_TEXT
from commands import blocks
from commands.edge import Respond, reply, run_reporting
from commands.services import Services

log = get_logger(__name__)


def _value(view: dict[str, Any], block_id: str) -> str:
    state = (view.get("state") or {}).get("values") or {}
    return str(((state.get(block_id) or {}).get("value") or {}).get("value") or "").strip()


class PromptHandlers:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def post_update_clicked(
        self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: Respond
    ) -> None:
        """Open the status modal. The trigger_id lives 3 seconds: open it right away."""
        await ack()
        action = (body.get("actions") or [{}])[0]
        async with self.services.inflight.track():
            try:
                incident = await self.services.incidents.get(int(action.get("value") or 0))
                if incident.is_resolved:
                    raise UserError(f"{incident.ref} is resolved; no update is needed.")
                await once.claim_first()  # one form per click, however often it arrives
                await client.views_open(
                    trigger_id=body["trigger_id"], view=blocks.status_modal(incident)
                )
            except UserError as exc:
                await once.claim_first()  # an answer: a repeat of this click gets none
                await reply(respond, blocks.confirmation(str(exc)), response_type="ephemeral")
            except Repeated:
                raise
            except Exception:
                log.exception("prompts.open_modal_failed")
                await reply(
                    respond,
                    blocks.confirmation("Could not open the form; use `/ic status <text>`."),
                    response_type="ephemeral",
                )

    async def status_submitted(
        self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        values = {k: _value(view, k) for k in blocks.STATUS_FIELDS_MAX}
        status, impact, next_steps = values["status"], values["impact"], values["next"]
        errors = {}
        if not status:
            errors["status"] = "Say what the status is."
        for key, text in values.items():
            if len(text) > blocks.STATUS_FIELDS_MAX[key]:
                errors[key] = f"Keep it under {blocks.STATUS_FIELDS_MAX[key]} characters."
            found = control_character(text)
            if found is not None:
                errors[key] = f"Remove the control character ({found}); it cannot be recorded."
        composed = len(blocks.compose_status(status, impact, next_steps))
        if not errors and composed > MAX_TEXT:
            # Checked here, while the form is open: nothing typed is lost.
            longest = max(values, key=lambda k: len(values[k]))
            errors[longest] = (
                f"The update comes to {composed} characters; an update takes at most"
                f" {MAX_TEXT}. Shorten this by {composed - MAX_TEXT}."
            )
        try:
            incident_id = int(view.get("private_metadata") or "")
        except ValueError:
            errors["status"] = "This form is no longer valid; use `/ic status`."
            incident_id = 0
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        user = str(body["user"]["id"])
        text = blocks.compose_status(status, impact, next_steps)
        async with self.services.inflight.track():
            try:
                with timeline.notices() as redacted:
                    await self.services.incidents.post_status(
                        ref=incident_id, text=text, actor=user
                    )
                if redacted:  # the form is closed: tell them beside the thread
                    summary = timeline.summary_of(redacted)
                    await self._tell(client, user, blocks.redaction_notice(summary, posted=False))
            except UserError as exc:
                await once.claim_first()  # an answer: a repeat of this form gets none
                await self._tell(client, user, str(exc))
            except Repeated:
                raise
            except Exception:
                log.exception("prompts.submit_failed", incident=incident_id)
                await self._tell(client, user, "Your update could not be saved; use `/ic status`.")

    async def _tell(self, client: AsyncWebClient, user: str, text: str) -> None:
        try:
            await client.chat_postEphemeral(channel=self.services.channel_id, user=user, text=text)
        except Exception:
            log.exception("prompts.tell_failed")

    async def checklist_ticked(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        await ack()
        user = str(body["user"]["id"])
        block_id = str(action.get("block_id") or "")
        async with self.services.inflight.track():

            async def work() -> blocks.Message:
                try:
                    reminder_id, among = blocks.checklist_group(block_id)
                    ticked = [int(o["value"]) for o in action.get("selected_options") or []]
                except (ValueError, KeyError, TypeError) as exc:
                    raise UserError("That checklist could not be read.") from exc
                change = await self.services.incidents.tick_checklist(
                    reminder_id=reminder_id, ticked=ticked, actor=user, among=among
                )
                if change is None:
                    return blocks.confirmation("Already recorded.")
                return blocks.confirmation(f"Recorded in {change.incident.ref}'s timeline.")

            await run_reporting(respond, work, command="checklist")
