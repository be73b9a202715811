"""Grafana annotations at resolve: the impact window on the dashboards of the incident's playbooks.

On resolve (from Slack or from PagerDuty) `GrafanaAnnotations.on_resolve` queues, in the resolve
transaction, one outbox item per annotation in the `grafana` channel:

* targets: each `grafana: {dashboard_uid, panel_id}` of every playbook diagnosed in the incident
  (in the order first diagnosed, each dashboard/panel once); with none, one organisation
  annotation (no dashboard: shown on any dashboard that displays annotations by tag);
* windows: ``impact`` (declared → mitigated) when the incident was mitigated before it was
  resolved, and ``incident`` (declared → resolved) always;
* tags ``incident``, ``INC-n``, ``sevN`` and a key tag of our own,
  ``icbot:<channel>:INC-n:<window>``, that names the annotation.

`GrafanaQueue` delivers an item by first looking for the annotation by its key tag (and its
dashboard and panel): found, it is patched; not found, created. So a crash between Grafana's
answer and the commit, or a reopened incident resolved again, changes the one annotation
instead of adding a second. A 429 waits `Retry-After` (the outbox's own retry planning).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from bot.core import wording
from bot.core.errors import ErrorCode, IntegrationError
from bot.core.logs import get_logger
from bot.core.models import Incident
from bot.delivery.outbox import LEASE, LeasedQueue
from bot.domain.ports import Annotator
from bot.domain.timeline import Kind
from bot.domain.uow import Tx, UnitOfWork
from bot.store import outbox as outbox_sql
from bot.store import timeline as timeline_sql
from bot.store.outbox import OutboxItem

log = get_logger(__name__)

CHANNEL = "grafana"
MAX_TEXT = 2000  # of an annotation's text: a tooltip, not a report
MAX_SUMMARY = 1000  # of the summary quoted in it


class GrafanaKind(StrEnum):
    """What a Grafana outbox row asks for (the outbox's ``kind`` column, channel grafana)."""

    ANNOTATE = "grafana_annotate"  # create the annotation, or update the one already there


class Window(StrEnum):
    IMPACT = "impact"  # declared → mitigated
    INCIDENT = "incident"  # declared → resolved


@dataclass(frozen=True)
class Dashboard:
    """Where to annotate: a dashboard (and panel), or the organisation (uid None)."""

    uid: str | None = None
    panel_id: int | None = None


def key_tag(channel_id: str, number: int, window: Window) -> str:
    """The tag that names one of our annotations (found again by it, never made twice)."""
    return f"icbot:{channel_id}:INC-{number}:{window.value}"


def epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def targets(
    diagnosed: Sequence[str], dashboards: Mapping[str, Sequence[Dashboard]]
) -> list[Dashboard]:
    """The dashboards the diagnosed playbooks name, each once, in order; else the organisation."""
    found: list[Dashboard] = []
    for playbook in diagnosed:
        for dashboard in dashboards.get(playbook, ()):
            if dashboard not in found:
                found.append(dashboard)
    return found or [Dashboard()]


def windows(incident: Incident) -> list[tuple[Window, datetime]]:
    """(window, end) of a resolved incident: impact when mitigated before resolving."""
    assert incident.resolved_at is not None
    found = []
    mitigated = incident.mitigated_at
    if mitigated is not None and incident.declared_at <= mitigated < incident.resolved_at:
        found.append((Window.IMPACT, mitigated))
    found.append((Window.INCIDENT, incident.resolved_at))
    return found


def annotation_text(
    incident: Incident, *, window: Window, severity_name: str, link: str | None
) -> str:
    """Grafana shows the text as (sanitised) HTML: outside words are escaped, the link is one.
    A long summary is cut (the incident page has it whole), never the link."""
    what = "impact (declared → mitigated)" if window is Window.IMPACT else "declared → resolved"
    title = html.escape(incident.title)
    lines = [
        f"{incident.ref} {incident.severity.upper()} ({severity_name}): {title}",
        f"Window: {what}",
    ]
    if incident.summary:
        summary = incident.summary
        if len(summary) > MAX_SUMMARY:
            summary = summary[: MAX_SUMMARY - 1] + "…"
        lines.append(f"Summary: {html.escape(summary)}")
    if link:
        lines.append(f'<a href="{html.escape(link)}">Incident page</a>')
    text = "\n".join(lines)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _named(found: Sequence[Dashboard]) -> list[dict[str, Any]]:
    """The dashboards (and panels) of a resolve's annotations, as the timeline entry keeps them."""
    return [{"uid": d.uid, "panel_id": d.panel_id} for d in found if d.uid]


class GrafanaAnnotations:
    """Plans the annotations of a resolve (called inside the resolve's transaction).

    `enabled=False` (no GRAFANA_URL/GRAFANA_TOKEN): nothing is queued; the resolve says
    "Grafana is not configured" when the incident's playbooks name a dashboard.
    """

    def __init__(
        self,
        *,
        enabled: bool,
        dashboards: Mapping[str, Sequence[Dashboard]],
        severity_name: Callable[[str], str],
        link: Callable[[int], str | None],
    ) -> None:
        self.enabled = enabled
        self.dashboards = dashboards
        self.severity_name = severity_name
        self.link = link

    async def on_resolve(
        self, tx: Tx, incident: Incident, *, resolution: int
    ) -> dict[str, Any] | None:
        conn = tx.conn
        diagnoses = await timeline_sql.of_kinds(conn, incident.id, [Kind.DIAGNOSIS])
        diagnosed = [str(e.data.get("playbook")) for e in diagnoses if e.data.get("playbook")]
        found = targets(diagnosed, self.dashboards)
        if not self.enabled:
            if any(d.uid for d in found):  # worded by bot/core/wording.py (`_grafana`)
                return {"grafana": {"configured": False, "dashboards": _named(found)}}
            return None
        link = self.link(incident.id)
        for dashboard in found:
            for window, end in windows(incident):
                tag = key_tag(incident.channel_id, incident.id, window)
                payload = {
                    "key_tag": tag,
                    "window": window.value,
                    "dashboardUID": dashboard.uid,
                    "panelId": dashboard.panel_id,
                    "time": epoch_ms(incident.declared_at),
                    "timeEnd": epoch_ms(end),
                    "tags": ["incident", incident.ref, incident.severity, tag],
                    "text": annotation_text(
                        incident, window=window, link=link,
                        severity_name=self.severity_name(incident.severity),
                    ),
                }  # fmt: skip
                where = f"{dashboard.uid or 'org'}:{dashboard.panel_id or 0}"
                await outbox_sql.enqueue_channel(
                    conn, channel=CHANNEL, incident_id=incident.id, kind=GrafanaKind.ANNOTATE,
                    key=f"inc{incident.id}:grafana:r{resolution}:{where}:{window.value}",
                    payload=payload,
                )  # fmt: skip

        return {
            "grafana": {"configured": True, "dashboards": _named(found), "resolution": resolution}
        }


class GrafanaQueue(LeasedQueue):
    channel = CHANNEL
    name = "grafana"
    # Grafana's 4xx answers (but 429) refuse the request itself: asking again gets the same.
    permanent_attempts = 1

    def __init__(
        self,
        uow: UnitOfWork,
        annotator: Annotator,
        *,
        poll_interval: float = 1.0,
        lease: timedelta = LEASE,
    ) -> None:
        super().__init__(uow.pool, clock=uow.clock, poll_interval=poll_interval, lease=lease)
        self.uow = uow
        self.annotator = annotator

    async def _send(self, item: OutboxItem) -> str | None:
        if item.kind != GrafanaKind.ANNOTATE:
            raise IntegrationError(
                "grafana", ErrorCode.REFUSED, f"unknown item {item.kind}", permanent=True
            )
        p = item.payload
        uid = p.get("dashboardUID") or None
        panel = p.get("panelId") or None
        existing = [
            f
            for f in await self.annotator.find(
                tags=[p["key_tag"]], dashboard_uid=uid, panel_id=panel
            )
            if (f.dashboard_uid or None) == uid and (f.panel_id or None) == panel
        ]
        body = {k: p[k] for k in ("time", "timeEnd", "tags", "text")}
        await self._ready(item)
        if existing:
            annotation_id = existing[0].id
            await self.annotator.patch(annotation_id, body)
            log.info("grafana.updated", item=item.dedupe_key, annotation=annotation_id)
        else:
            if uid is not None:
                body["dashboardUID"] = uid
            if panel is not None:
                body["panelId"] = panel
            annotation_id = await self.annotator.create(body)
            log.info("grafana.created", item=item.dedupe_key, annotation=annotation_id)
        return str(annotation_id)

    async def _on_failure(self, item: OutboxItem, exc: IntegrationError) -> None:
        """Grafana refused (a bad token, a body it will not take): say so in the thread, once
        per resolve; outages and 429s are only retried."""
        if not exc.permanent:
            return
        resolution = item.dedupe_key.split(":")[2]  # inc<id>:grafana:r<n>:...
        where = item.payload.get("dashboardUID") or "the organisation's annotations"
        async with self.uow.transaction() as tx:
            said = await timeline_sql.of_kinds(tx.conn, item.incident_id, [Kind.GRAFANA])
            if any(e.data.get("resolution") == resolution for e in said):
                return
            await tx.record(
                incident_id=item.incident_id,
                kind=Kind.GRAFANA,
                actor="icbot",
                data=wording.data(
                    refused=str(exc), resolution=resolution, where=where, why=exc.message
                ),
            )
