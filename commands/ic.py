"""`/ic`: the incident lifecycle commands. Parse, ack, call the domain, reply."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bot.core.errors import IntegrationError, UsageError
from bot.core.logs import get_logger
from bot.core.numfmt import plural
from bot.domain import handover, history
from bot.domain.drafts import Drafts
from bot.pages.bundle import Exports
from bot.pages.links import Linker
from commands import blocks, parsing
from commands.approvals import ApprovalHandlers
from commands.choices import asking_which, original_command
from commands.diagnose import DiagnoseHandlers
from commands.diagnose import parse as parse_diagnose
from commands.edge import Respond, run_reporting
from commands.parsing import (
    HELP_LINES,
    ActionItem,
    Assign,
    Declare,
    Export,
    Handover,
    Help,
    IcCommand,
    ListIncidents,
    Note,
    Postmortem,
    Resolve,
    SetSeverity,
    Status,
    StatuspageUpdate,
    Timeline,
)
from commands.services import Services

log = get_logger(__name__)


class IcHandlers:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.scribe = services.scribe
        self.drafts = Drafts(
            services.uow,
            services.incidents,
            services.chat,
            picture_link=lambda i: self.links.url(i.id, now=services.clock(), suffix=".svg"),
            directory=services.directory,
        )
        self.exports = Exports(services.pool, services.chat, clock=services.clock)

    @property
    def links(self) -> Linker:
        """The incident-page links (made on first use: without secrets, that writes a key)."""
        return self.services.links()

    def page_link(self, message: blocks.Message, incident_id: int) -> blocks.Message:
        url = self.links.url(incident_id, now=self.services.clock())
        return blocks.with_page_link(message, url)

    async def command(self, ack: AsyncAck, command: dict[str, Any], respond: Respond) -> None:
        text = str(command.get("text") or "")
        try:
            parsed = parsing.parse_ic(text)
        except UsageError as exc:
            await ack(response_type="ephemeral", text=str(exc))
            return
        await ack()
        user = str(command["user_id"])
        work = asking_which(
            self.services, lambda: self.execute(parsed, user=user), user=user,
            command=f"/ic {text}",
        )  # fmt: skip
        async with self.services.inflight.track():
            await run_reporting(respond, work, command=f"/ic {text}")

    async def pick_incident(self, ack: AsyncAck, body: dict[str, Any], respond: Respond) -> None:
        """A click on a "Which incident?" button: run the original command on that incident."""
        await ack()
        user = str(body["user"]["id"])
        action = (body.get("actions") or [{}])[0]
        async with self.services.inflight.track():

            async def work() -> blocks.Message:
                try:
                    choice = json.loads(action.get("value") or "")
                    number = int(choice["incident"])
                    if "choice" in choice:
                        command = await original_command(
                            self.services, int(choice["choice"]), user=user
                        )
                    else:  # a button from before commands were kept server-side
                        command = str(choice["command"])
                    if command is None:
                        raise KeyError("choice")
                except (ValueError, KeyError, TypeError) as exc:
                    raise UsageError(
                        "That button is no longer valid; run the command again."
                    ) from exc
                return await self.run_chosen(command, number, user=user)

            await run_reporting(respond, work, command="/ic (choice)", replace_original=True)

    async def run_chosen(self, command: str, number: int, *, user: str) -> blocks.Message:
        """Run the command a "Which incident?" question was asked for, on incident `number`."""
        name, _, text = command.strip().partition(" ")
        if name == "/rollback":
            return await ApprovalHandlers(self.services).rollback_work(
                text, user=user, incident=number
            )
        if name == "/diagnose":
            diagnose = DiagnoseHandlers(self.services)
            playbook_name, _ = parse_diagnose(text)
            playbook = self.services.diagnoser.playbook(playbook_name or "")
            return await diagnose.run(playbook, number, user=user)
        parsed = parsing.parse_ic(text if name == "/ic" else command.strip())
        if isinstance(parsed, parsing.Declare | ListIncidents | Help | parsing.OnCall):
            raise UsageError("That command does not take an incident.")
        chosen: IcCommand = dataclasses.replace(parsed, incident=number)
        return await self.execute(chosen, user=user)

    async def timeline_page(self, ack: AsyncAck, body: dict[str, Any], respond: Respond) -> None:
        """*Show older* / *Show newer* under `/ic timeline`: that page, in place of this one."""
        await ack()
        user = str(body["user"]["id"])
        action = (body.get("actions") or [{}])[0]
        async with self.services.inflight.track():

            async def work() -> blocks.Message:
                try:
                    choice = json.loads(action.get("value") or "")
                    wanted = Timeline(incident=int(choice["incident"]), page=int(choice["page"]))
                except (ValueError, KeyError, TypeError) as exc:
                    raise UsageError(
                        "That button is no longer valid; run `/ic timeline` again."
                    ) from exc
                return await self.execute(wanted, user=user)

            await run_reporting(respond, work, command="/ic timeline", replace_original=True)

    async def execute(self, parsed: IcCommand, *, user: str) -> blocks.Message:
        """Run one command for `user` (a repeat of its Slack request is dropped:
        bot.domain.once)."""
        s = self.services
        incidents = s.incidents
        match parsed:
            case Help():
                return blocks.help_text(list(HELP_LINES))
            case ListIncidents(history=True, days=days):
                report = await incidents.history(days=days)
                return blocks.incident_history(report, days=days)
            case ListIncidents():
                return blocks.incident_list(await incidents.list_recent(), now=s.clock())
            case Timeline(incident=ref, page=page):
                incident, entries = await incidents.timeline(ref)
                pages = len(blocks.timeline_pages(entries))
                if page > pages:
                    raise UsageError(
                        f"The timeline of {incident.ref} has {plural(pages, 'page')};"
                        f" there is no page {page}. `/ic timeline {incident.ref}` shows the"
                        " newest entries."
                    )
                figures = history.incident_figures(incident, entries, s.policy, now=s.clock())
                listing = blocks.timeline_listing(incident, entries, figures, page=page)
                return self.page_link(listing, incident.id)
            case Declare(title=title, severity=severity):
                change = await incidents.declare(title=title, severity=severity, actor=user)
                i = change.incident
                hints = s.catalogue.suggest(title)
                tip = (
                    " Playbooks that may help: "
                    + ", ".join(f"`/diagnose {p.name}` ({p.title})" for p in hints)
                    if hints
                    else ""
                )
                return blocks.confirmation(
                    f":rotating_light: Declared *{i.ref}* ({i.severity.upper()})"
                    f" in <#{i.channel_id}>."
                    f" You are incident commander; `/ic assign @someone ic` hands it over.{tip}"
                )
            case Assign(incident=ref, user=who, role=role):
                change = await incidents.assign(ref=ref, user=who, role=role, actor=user)
                return blocks.confirmation(f"<@{who}> is now {role} of *{change.incident.ref}*.")
            case Handover(incident=ref, user=who, role=role):
                change = await incidents.handover(ref=ref, user=who, role=role, actor=user)
                moved = str(change.entry.data["role"])
                kept = handover.roles_held(change.incident, user)
                still = f" You are still {', '.join(kept)}." if kept else ""
                return blocks.confirmation(
                    f":handshake: <@{who}> is now {moved} of *{change.incident.ref}*; they are"
                    f" mentioned in its thread with a briefing of the last 30 minutes.{still}"
                )
            case SetSeverity(incident=ref, severity=severity):
                change = await incidents.set_severity(ref=ref, severity=severity, actor=user)
                return blocks.confirmation(
                    f"*{change.incident.ref}* is now {severity.upper()}"
                    f" ({s.policy.level(severity).name})."
                )
            case Status(incident=ref, text=body):
                change = await incidents.post_status(ref=ref, text=body, actor=user)
                return blocks.confirmation(f"Status update posted to *{change.incident.ref}*.")
            case Note(incident=ref, text=body):
                change = await incidents.add_note(ref=ref, text=body, actor=user)
                return blocks.confirmation(f"Noted in *{change.incident.ref}*'s timeline.")
            case ActionItem(incident=ref, text=body, owner=owner):
                change = await self.scribe.add_action_item(
                    ref=ref, text=body, owner=owner, actor=user
                )
                if s.followups is None:
                    return blocks.confirmation(
                        f"Action item added to *{change.incident.ref}*; the post-mortem lists it."
                    )
                number = await s.followups.number(change)
                return blocks.action_item_added(
                    change.incident.ref, number=number, jira=s.jira_queue is not None
                )
            case parsing.ActionDone(incident=ref, number=number):
                if s.followups is None:
                    raise UsageError("Action items cannot be ticked here.")
                change = await s.followups.tick(ref=ref, number=number, actor=user)
                return blocks.action_item_ticked(
                    change.incident.ref, number=number, key=change.entry.data.get("key"),
                    jira=s.jira_queue is not None,
                )  # fmt: skip
            case Postmortem(incident=ref):
                incident = await incidents.get(ref)
                try:
                    posted = await self.drafts.post(incident.id, actor=user)
                except IntegrationError as exc:
                    log.warning("postmortem.not_posted", incident=incident.ref, error=str(exc))
                    return blocks.postmortem_not_posted(incident.ref, exc)
                return blocks.postmortem_posted(
                    ref=posted.incident.ref,
                    filename=posted.filename,
                    permalink=posted.permalink,
                    draft=posted.draft,
                    figures_line=posted.figures.line(),
                    entries=posted.figures.entries,
                )
            case Export(incident=ref):
                incident = await incidents.get(ref)
                try:
                    exported = await self.exports.post(incident.id, actor=user)
                except IntegrationError as exc:
                    log.warning("export.not_posted", incident=incident.ref, error=str(exc))
                    return blocks.export_not_posted(incident.ref, exc)
                return blocks.export_posted(
                    ref=incident.ref,
                    filename=exported.shared.name,
                    permalink=exported.shared.permalink,
                    entries=exported.checked,
                    changes=exported.changes,
                    digest=exported.bundle.digest,
                )
            case parsing.OnCall():
                if s.pager is None:
                    return blocks.confirmation("PagerDuty is not configured, so I cannot say.")
                return blocks.oncall_list(await s.pager.oncalls())
            case parsing.Page(incident=ref, who=who, message=message):
                change = await incidents.page(ref=ref, who=who, message=message, actor=user)
                return blocks.confirmation(f"Paging {who} on *{change.incident.ref}*.")
            case StatuspageUpdate(incident=ref, status=status, text=body):
                incident = await incidents.get(ref, allow_resolved=False)
                pending = await s.approvals.propose(
                    ref=incident.id,
                    action="statuspage_update",
                    params={"incident_id": incident.id, "status": status, "body": body},
                    label=blocks.statuspage_label(status),
                    actor=user,
                )
                return blocks.statuspage_proposed(pending.id, incident.ref)
            case Resolve(incident=ref, summary=summary):
                change = await incidents.resolve(ref=ref, summary=summary, actor=user)
                done = blocks.confirmation(
                    f":white_check_mark: *{change.incident.ref}* resolved."
                    " Notes can still be added with `/ic note`."
                )
                return self.page_link(done, change.incident.id)
        raise UsageError(parsing.usage())
