"""PagerDuty V3 webhook events, applied to incidents. No HTTP here (see bot/web.py).

Each event is applied once (its `event.id` is recorded in the same transaction as nothing
else: a replayed delivery is a no-op), events the bot caused itself are ignored, and an
incident triggered in PagerDuty on our service with no Slack incident yet declares one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from bot.errors import Conflict, UserError
from bot.incidents import Incidents
from bot.logs import get_logger
from bot.models import Incident, PagerIncident
from bot.store import incidents as incidents_sql
from bot.timeline import Kind

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


def _names(refs: Any) -> str:
    return ", ".join(str(r.get("summary") or r.get("id")) for r in refs or []) or "nobody"


class PagerEvents:
    def __init__(
        self,
        incidents: Incidents,
        *,
        service_id: str,
        own_user_id: Callable[[], Awaitable[str | None]],
    ) -> None:
        self.incidents = incidents
        self.pool = incidents.pool
        self.service_id = service_id
        self.own_user_id = own_user_id

    async def apply(self, body: dict[str, Any]) -> str:
        """Apply one webhook body; returns what happened (for logs and tests)."""
        event = body.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("id"), str):
            raise UserError("not a PagerDuty V3 webhook")
        event_type = str(event.get("event_type") or "")
        if event_type not in HANDLED:
            return "ignored: event type"
        async with self.pool.acquire() as conn:
            fresh = await conn.fetchval(
                "INSERT INTO pagerduty_events (event_id) VALUES ($1)"
                " ON CONFLICT DO NOTHING RETURNING true",
                event["id"][:200],
            )
        if not fresh:
            return "ignored: already applied"
        agent = event.get("agent") or {}
        if agent.get("id") and agent.get("id") == await self.own_user_id():
            return "ignored: caused by icbot"
        data = event.get("data") or {}
        pd_incident = data.get("incident") if event_type == "incident.annotated" else data
        pd_id = str((pd_incident or {}).get("id") or "")
        async with self.pool.acquire() as conn:
            incident = await incidents_sql.by_pagerduty_id(conn, pd_id) if pd_id else None
        if incident is None:
            if event_type == "incident.triggered":
                return await self._declare(data)
            return "ignored: not one of ours"
        return await self._apply(incident, event_type, event, data, agent)

    async def _declare(self, data: dict[str, Any]) -> str:
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
            title=title, severity=_severity(data), actor="pagerduty", linked=linked
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
                at=_when(event.get("occurred_at")),
            )
            return "resolved"
        if action == "reopened":
            try:
                await self.incidents.reopen(incident.id, actor="pagerduty", reason=f"by {by}")
            except Conflict:
                return "ignored: not resolved"
            return "reopened"
        texts = {
            "triggered": (
                f"PagerDuty triggered #{data.get('number')} ({data.get('urgency')} urgency)."
            ),
            "acknowledged": f"Acknowledged in PagerDuty by {by}.",
            "unacknowledged": "PagerDuty: the acknowledgement timed out; paging again.",
            "escalated": f"PagerDuty escalated to {_names(data.get('assignees'))}.",
            "reassigned": f"PagerDuty reassigned to {_names(data.get('assignees'))} by {by}.",
            "delegated": f"PagerDuty delegated to {_names(data.get('assignees'))} by {by}.",
            "priority_updated": (
                f"PagerDuty priority set to {(data.get('priority') or {}).get('summary') or 'none'}"
                f" by {by}."
            ),
            "annotated": f"PagerDuty note by {by}: {str(data.get('content') or '')[:2000]}",
        }
        acknowledged_at = None
        if action == "acknowledged":
            acknowledged_at = _when(event.get("occurred_at"))
        await self.incidents.record_event(
            incident.id,
            kind=Kind.PAGERDUTY,
            actor="pagerduty",
            text=texts[action],
            data={"event": event_type, "event_id": event.get("id"), "agent": agent.get("id")},
            acknowledged_at=acknowledged_at,
        )
        return action


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
