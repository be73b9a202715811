"""`statuspage_update`: a public update on Atlassian Statuspage, behind an approval. No Slack here.

Customer-facing words go through the same gate as a remediation: `/ic statuspage` proposes, the
approval card shows the exact public text, the status and the components (its preview), someone
other than the requester approves (`approvals.yml`), and the approvals flow runs it exactly once.

The first update of an incident creates the Statuspage incident (named after the incident's
title, with a marker in its `metadata`); later ones update that incident. Its id is kept
(`statuspage_incidents`) as soon as Statuspage answers; if the bot stopped between the answer
and keeping it, the next update finds the incident by its marker rather than creating another.

Components come from the incident's playbooks (those `/diagnose` ran on it) that name some
(`statuspage: {components: [...]}`), matched by name or id against the page's components. While
the incident is open they show the playbook's `impact`, else one from the severity
(`SEVERITY_IMPACT`); a `resolved` update sets them operational.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from bot.core import guard
from bot.core.errors import IntegrationError, UserError
from bot.core.models import Incident
from bot.domain.ports import StatuspageApi
from bot.domain.timeline import Kind
from bot.domain.uow import UnitOfWork
from bot.playbooks.remediations.registry import _Params, remediation
from bot.playbooks.remediations.runner import Outcome, Preview, Remediator
from bot.store import incidents as incidents_sql
from bot.store import statuspage as statuspage_sql
from bot.store import timeline as timeline_sql

if TYPE_CHECKING:
    from bot.playbooks.catalogue import Catalogue

PublicStatus = Literal["investigating", "identified", "monitoring", "resolved"]
SEVERITY_IMPACT = {
    "sev1": "major_outage",
    "sev2": "partial_outage",
    "sev3": "degraded_performance",
    "sev4": "degraded_performance",
}
MAX_PUBLIC_TEXT = 3000
MARKER = "icbot"  # the metadata key of the bot's marker on a Statuspage incident
SEARCH_PAGES = 3  # how many pages of 100 incidents are searched for the marker


class StatuspageParams(_Params):
    incident_id: int = Field(ge=1)
    status: PublicStatus
    body: str = Field(min_length=1, max_length=MAX_PUBLIC_TEXT)


@dataclass(frozen=True)
class Component:
    id: str
    name: str
    status: str  # what the update sets it to


@dataclass(frozen=True)
class Plan:
    """What an update will do: shown on the card, and what the approved run does."""

    name: str
    existing: str | None  # the Statuspage incident it updates; None: it creates one
    components: list[Component]
    missing: list[str]  # component names the playbooks give that the page does not have


def refuse_secrets(text: str) -> None:
    """A card number or secret never goes to a public page (nor into the record)."""
    findings = guard.scan(text)
    if findings:
        raise UserError(
            f"That public text contains {guard.described(findings)}; it must never be"
            " published. Nothing was recorded: remove it and ask again."
        )


class StatusPages:
    """The bot's side of Statuspage: which incident, which components, create or update."""

    def __init__(
        self, api: StatuspageApi, uow: UnitOfWork, catalogue: Catalogue, *, channel_id: str
    ) -> None:
        self.api = api
        self.uow = uow
        self.catalogue = catalogue
        self.channel_id = channel_id  # with the incident number, the marker's key

    def marker(self, incident: Incident) -> dict[str, Any]:
        return {MARKER: {"incident": f"INC-{incident.id}", "channel": self.channel_id}}

    async def plan(self, incident_id: int, status: str) -> Plan:
        async with self.uow.connection() as conn:
            incident = await incidents_sql.get(conn, incident_id)
            diagnoses = await timeline_sql.of_kinds(conn, incident_id, [Kind.DIAGNOSIS])
        if incident is None:
            raise UserError(f"There is no incident INC-{incident_id}.")
        wanted: dict[str, str] = {}  # component name or id -> status while open
        for entry in diagnoses:
            playbook = self.catalogue.find(str(entry.data.get("playbook") or ""))
            if playbook is None or playbook.statuspage is None:
                continue
            impact = playbook.statuspage.impact or SEVERITY_IMPACT.get(
                incident.severity, "partial_outage"
            )
            for name in playbook.statuspage.components:
                wanted.setdefault(name, impact)
        components: list[Component] = []
        missing: list[str] = []
        if wanted:
            page = await self.api.components()
            for name, impact in wanted.items():
                found = next(
                    (c for c in page if name in (c.get("id"), c.get("name"))), None
                )  # fmt: skip
                if found is None:
                    missing.append(name)
                    continue
                chosen = "operational" if status == "resolved" else impact
                component = Component(str(found["id"]), str(found.get("name")), chosen)
                if component.id not in {c.id for c in components}:
                    components.append(component)
        return Plan(
            name=_name(incident),
            existing=await self.existing(incident),
            components=components,
            missing=missing,
        )

    async def existing(self, incident: Incident) -> str | None:
        """The Statuspage incident of this incident: kept, else found by its marker (an earlier
        run created it and stopped before keeping it), else None."""
        async with self.uow.connection() as conn:
            kept = await statuspage_sql.page_incident(conn, incident.id, self.api.page_id)
        if kept is not None:
            return kept
        mark = self.marker(incident)[MARKER]
        for page in range(1, SEARCH_PAGES + 1):
            # `q` searches names (the bot names it after the title): fewer pages to read.
            listed = await self.api.list_incidents(q=_name(incident), limit=100, page=page)
            for found in listed:
                if (found.get("metadata") or {}).get(MARKER) == mark:
                    await self._keep(incident.id, str(found["id"]))
                    return str(found["id"])
            if len(listed) < 100:
                break
        return None

    async def _keep(self, incident_id: int, page_incident_id: str) -> None:
        async with self.uow.transaction() as tx:
            await statuspage_sql.remember(
                tx.conn, incident_id=incident_id, page_id=self.api.page_id,
                page_incident_id=page_incident_id, now=tx.now,
            )  # fmt: skip

    async def publish(self, p: StatuspageParams, preview: dict[str, Any]) -> Outcome:
        async with self.uow.connection() as conn:
            incident = await incidents_sql.get(conn, p.incident_id)
        if incident is None:
            return Outcome(False, f"INC-{p.incident_id} is gone", "not run")
        components = [Component(**c) for c in preview.get("components") or []]
        fields: dict[str, Any] = {
            "status": p.status,
            "body": p.body,
            "component_ids": [c.id for c in components],
            "components": {c.id: c.status for c in components},
        }
        existing = await self.existing(incident)
        try:
            if existing is None:
                created = await self.api.create_incident(
                    {
                        "name": str(preview.get("name") or _name(incident)),
                        **fields,
                        "metadata": self.marker(incident),
                        "deliver_notifications": True,
                    }
                )
                page_incident = str(created["id"])
                await self._keep(incident.id, page_incident)
                done = f"created the public incident `{page_incident}` on the status page"
            else:
                page_incident = existing
                await self.api.update_incident(existing, fields)
                done = f"updated the public incident `{existing}` on the status page"
        except IntegrationError as exc:
            if exc.permanent:
                raise
            return await self._not_published(incident, p, exc)
        shown = await self.api.incident(page_incident)
        latest = (shown.get("incident_updates") or [{}])[0]
        ok = shown.get("status") == p.status and latest.get("body") == p.body
        link = shown.get("shortlink")
        verification = (
            f"the status page shows it as {shown.get('status')} with this text"
            if ok
            else f"the status page shows status {shown.get('status')} and another latest text"
        )
        return Outcome(ok, f"{done} ({p.status})" + (f": {link}" if link else ""), verification)

    async def _not_published(
        self, incident: Incident, p: StatuspageParams, exc: IntegrationError
    ) -> Outcome:
        """The write failed for a reason that may pass (5xx, timeout, 429 past the wait). Read
        the page back: if this exact update is not there, nothing was published and a fresh
        request may try again; if it is (the write went through after all), it is done. If
        the page cannot be read either, the effect is unknown: no retry offered."""
        try:
            page_incident = await self.existing(incident)
            shown = await self.api.incident(page_incident) if page_incident else None
        except IntegrationError as again:
            return Outcome(
                False,
                f"failed: {exc.message}; the status page could not be read back either"
                f" ({again.message}): check it before asking again",
                "not verified",
            )
        latest = ((shown or {}).get("incident_updates") or [{}])[0]
        if shown and shown.get("status") == p.status and latest.get("body") == p.body:
            link = shown.get("shortlink")
            return Outcome(
                True,
                f"published on the status page ({p.status}) although Statuspage answered"
                f" {exc.message}" + (f": {link}" if link else ""),
                "the status page shows it with this text",
            )
        return Outcome(
            False,
            f"not published: Statuspage answered {exc.message}; nothing was published"
            " (the status page does not show it); request it again",
            "not run",
            retryable=True,
        )


def _name(incident: Incident) -> str:
    """The public incident's name: the incident's title (Statuspage allows 255 characters)."""
    return incident.title[:255]


def _preview_lines(p: StatuspageParams, plan: Plan) -> list[str]:
    what = (
        f"Updates the public incident `{plan.existing}` “{plan.name}”"
        if plan.existing
        else f"Creates the public incident “{plan.name}”"
    )
    lines = [f"Public update on the status page (Statuspage), status *{p.status}*", what]
    if plan.components:
        shown = ", ".join(f"{c.name} → {c.status}" for c in plan.components)
        lines.append(f"Components: {shown}")
    else:
        lines.append("Components: none (no playbook run on this incident names any)")
    if plan.missing:
        lines.append("Not on the page, left out: " + ", ".join(plan.missing))
    lines.append("Public text, exactly as it will be published:")
    lines += [line or " " for line in p.body.splitlines()]
    return lines


@remediation("statuspage_update", StatuspageParams, "Publish an update on the public status page")
class StatuspageUpdate:
    @staticmethod
    def target(p: StatuspageParams) -> str:
        return f"status page of INC-{p.incident_id}"

    @staticmethod
    def backout(p: StatuspageParams, preview: dict[str, Any]) -> str:
        return (
            "A published update cannot be taken back; publish a correcting update"
            " (`/ic statuspage` with the right status and text)"
        )

    @staticmethod
    async def preview(p: StatuspageParams, r: Remediator) -> Preview:
        refuse_secrets(p.body)
        pages = r.statuspage_ops()
        plan = await pages.plan(p.incident_id, p.status)
        state = {
            "existing": plan.existing,
            "components": [c.__dict__ for c in plan.components],
        }
        return Preview(
            lines=_preview_lines(p, plan),
            data={
                "name": plan.name,
                "status": p.status,
                "text": p.body,
                "components": [c.__dict__ for c in plan.components],
            },
            subject="The status page",
            state=state,
            state_text=(
                f"public incident `{plan.existing}`" if plan.existing else "no public incident"
            )
            + f", components {', '.join(c.name for c in plan.components) or 'none'}",
        )

    @staticmethod
    async def run(p: StatuspageParams, preview: dict[str, Any], r: Remediator) -> Outcome:
        return await r.statuspage_ops().publish(p, preview)
