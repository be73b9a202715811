"""PagerDuty V3 webhook events, applied to incidents. No HTTP here (see bot/runtime/web.py).

Each event is applied once: its `event.id` is claimed (`bot.domain.once`) in the transaction of its
effect, so a replayed delivery is a no-op and a failed apply is applied when PagerDuty delivers
it again. Malformed events are refused before anything is recorded. Events the bot caused itself
are ignored, and an incident triggered in PagerDuty on our service with no Slack incident yet
declares one, naming PagerDuty (and the PagerDuty user, when the event names one) as declarer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from bot.core import wording
from bot.core.errors import Conflict, Repeated, UserError
from bot.core.logs import get_logger
from bot.core.models import Incident, PagerIncident
from bot.domain import once
from bot.domain.incidents import Incidents
from bot.domain.timeline import Kind
from bot.domain.uow import UnitOfWork
from bot.store import incidents as incidents_sql

log = get_logger(__name__)

HANDLED = {
    "incident.triggered",
    "incident.acknowledged",
    "incident.unacknowledged",
    "incident.escalated",
    "incident.reassigned",
    "incident.delegated",
    "incident.annotated",
    "incident.priority_updated",
    "incident.resolved",
    "incident.reopened",
}


def _severity(data: dict[str, Any]) -> str:
    """P1-P4 map to SEV1-SEV4; without a priority, high urgency is SEV2 and low SEV3."""
    priority = str((data.get("priority") or {}).get("summary") or "")
    if priority in ("P1", "P2", "P3", "P4"):
        return f"sev{priority[1]}"
    return "sev2" if data.get("urgency") == "high" else "sev3"


class PagerEvents:
    def __init__(
        self,
        uow: UnitOfWork,
        incidents: Incidents,
        *,
        service_id: str,
        own_user_id: Callable[[], Awaitable[str | None]],
    ) -> None:
        self.uow = uow
        self.incidents = incidents
        self.service_id = service_id
        self.own_user_id = own_user_id

    async def apply(self, body: dict[str, Any]) -> str:
        """Apply one webhook body; returns what happened (for logs and tests).

        Raises UserError for a malformed event (nothing is recorded: the HTTP edge answers
        400). The event is claimed (`bot.domain.once`, by `event.id`) in the transaction of its
        effect, so a failed apply records nothing and PagerDuty's redelivery applies it;
        an event ignored changes nothing and is ignored again if it comes again.
        """
        event = _checked(body)
        event_type = str(event["event_type"])
        if event_type not in HANDLED:
            return "ignored: event type"
        request = once.Request(
            once.pagerduty_key(event["id"]), self.uow.clock(), once.PAGERDUTY_WINDOW
        )
        if await once.seen(self.uow.pool, request):
            return "ignored: already applied"
        try:
            with once.scope(request, pool=self.uow.pool):
                return await self._applied(event)
        except Repeated:
            return "ignored: already applied"

    async def _applied(self, event: dict[str, Any]) -> str:
        event_type = str(event["event_type"])
        agent = event.get("agent") or {}
        if agent.get("id") and agent.get("id") == await self.own_user_id():
            return "ignored: caused by icbot"
        data = event["data"]
        pd_incident = data.get("incident") if event_type == "incident.annotated" else data
        pd_id = str((pd_incident or {}).get("id") or "")
        async with self.uow.connection() as conn:
            incident = await incidents_sql.by_pagerduty_id(conn, pd_id) if pd_id else None
        if incident is None:
            if event_type == "incident.triggered":
                return await self._declare(data, agent)
            return "ignored: not one of ours"
        return await self._apply(incident, event_type, event, data, agent)

    async def _declare(self, data: dict[str, Any], agent: dict[str, Any]) -> str:
        if (data.get("service") or {}).get("id") != self.service_id:
            return "ignored: another service"
        linked = PagerIncident(
            id=str(data["id"]),
            number=int(data.get("number") or 0),
            html_url=str(data.get("html_url") or ""),
            status=str(data.get("status") or "triggered"),
        )
        title = str(data.get("title") or f"PagerDuty incident #{linked.number}")[:150]
        change = await self.incidents.declare(
            title=title,
            severity=_severity(data),
            actor=pagerduty_actor(agent),
            linked=linked,
            commander=False,  # PagerDuty commands nobody: the prompts ask the channel
        )
        return f"declared {change.incident.ref}"

    async def _apply(
        self,
        incident: Incident,
        event_type: str,
        event: dict[str, Any],
        data: dict[str, Any],
        agent: dict[str, Any],
    ) -> str:
        by = str(agent.get("summary") or "PagerDuty")
        action = event_type.removeprefix("incident.")
        if action == "resolved":
            if incident.is_resolved:
                return "ignored: already resolved"
            await self.incidents.resolve(
                ref=incident.id,
                summary=f"Resolved in PagerDuty by {by}",
                actor="pagerduty",
                mirror=False,
                at=_when(event["occurred_at"]),
            )
            return "resolved"
        if action == "reopened":
            try:
                await self.incidents.reopen(incident.id, actor="pagerduty", reason=f"by {by}")
            except Conflict:
                return "ignored: not resolved"
            return "reopened"
        acknowledged_at = None
        if action == "acknowledged":
            acknowledged_at = _when(event["occurred_at"])
        await self.incidents.record_event(
            incident.id,
            kind=Kind.PAGERDUTY,
            actor="pagerduty",
            data=wording.data(
                event=event_type,
                event_id=event.get("id"),
                agent=agent.get("id"),
                by=by,
                number=data.get("number"),
                urgency=data.get("urgency"),
                assignees=data.get("assignees"),
                priority=(data.get("priority") or {}).get("summary"),
                content=str(data.get("content") or "")[:2000],
            ),
            acknowledged_at=acknowledged_at,
        )
        return action


def pagerduty_actor(agent: dict[str, Any]) -> str:
    """The timeline actor for PagerDuty acting (as `who` writes it: "PagerDuty (Ana Ruiz)"):
    with the PagerDuty user the event names, if it names one."""
    if agent.get("type") in ("user_reference", "user") and agent.get("summary"):
        return f"pagerduty:{agent['summary']}"
    return "pagerduty"


def _checked(body: dict[str, Any]) -> dict[str, Any]:
    """The body's event, or UserError saying what is malformed about it."""
    event = body.get("event")
    if not isinstance(event, dict):
        raise UserError("not a PagerDuty V3 webhook: no event")
    if not isinstance(event.get("id"), str) or not event["id"]:
        raise UserError("the event has no id")
    if not isinstance(event.get("event_type"), str):
        raise UserError("the event has no event_type")
    if str(event["event_type"]) not in HANDLED:
        return event
    data = event.get("data")
    if not isinstance(data, dict):
        raise UserError("the event's data is not an object")
    if event["event_type"] == "incident.annotated":
        data = data.get("incident")
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        raise UserError("the event names no incident (data.id)")
    if _when(event.get("occurred_at")) is None:
        raise UserError("occurred_at is not an ISO 8601 time with a time zone")
    agent = event.get("agent")
    if agent is not None and not isinstance(agent, dict):
        raise UserError("the event's agent is not an object")
    return event


def _when(value: Any) -> datetime | None:
    """An ISO 8601 time with its time zone; None for anything else."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
