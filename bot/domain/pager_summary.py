"""The runbooks' "Summarize incident in PagerDuty with root cause and remediation", done at resolve.

`PagerSummary.on_resolve` queues, in the resolve transaction and ahead of the resolve itself,
one note on the linked PagerDuty incident (the `pagerduty` outbox channel, `PagerKind.NOTE`):
the summary, the root cause (notes starting "Root cause:", else the "Identified: …" status
update), the resolution (notes starting "Resolution:", else the resolve's summary), each
remediation's result and the playbooks diagnosed, with a link to the incident page.

Once per resolution: the outbox key is the resolution's number, so a retried or repeated
delivery posts it once; an incident reopened and resolved again gets a second note, for the
second resolution (what changed is worth saying in PagerDuty too).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from bot.core import wording
from bot.core.models import Incident, Status, TimelineEntry
from bot.core.timefmt import human_duration
from bot.domain import pager
from bot.domain.incidents import stage_of
from bot.domain.postmortem import RESOLUTION, ROOT_CAUSE, marked_notes
from bot.domain.timeline import Kind
from bot.domain.uow import Tx
from bot.store import timeline as timeline_sql

MAX_NOTE = pager.MAX_NOTE  # PagerDuty refuses a longer note ("Note content is too long")
CUT = "\n… (cut to fit PagerDuty's note limit; the incident page has everything)"


def _marked(entries: Sequence[TimelineEntry], marker: re.Pattern[str]) -> list[str]:
    return [" ".join(text.split()) for text in marked_notes(entries, marker)]


def _bullets(items: Sequence[str]) -> str:
    if len(items) == 1:
        return items[0]
    return "".join(f"\n- {item}" for item in items)


def summary_note(
    incident: Incident,
    entries: Sequence[TimelineEntry],
    *,
    severity_name: str,
    resolution: int,
    link: str | None,
) -> str:
    """The note's text (at most MAX_NOTE characters)."""
    assert incident.resolved_at is not None
    took = human_duration((incident.resolved_at - incident.declared_at).total_seconds())
    again = f" again (resolution {resolution})" if resolution > 1 else ""
    lines = [
        f"Incident summary (icbot): {incident.ref} resolved{again} after {took}.",
        f"{incident.severity.upper()} ({severity_name}): {incident.title}",
        f"Summary: {incident.summary or 'none given at resolve'}",
    ]
    causes = _marked(entries, ROOT_CAUSE)
    if not causes:
        identified = [
            str(e.data.get("text") or "")
            for e in entries
            if e.kind == Kind.STATUS
            and stage_of(str(e.data.get("text") or "")) is Status.IDENTIFIED
        ]
        causes = identified[-1:]
    lines.append(
        "Root cause: " + (_bullets(causes) if causes else "not recorded (a note `Root cause: …`)")
    )
    resolutions = _marked(entries, RESOLUTION) or ([incident.summary] if incident.summary else [])
    lines.append("Resolution: " + (_bullets(resolutions) if resolutions else "not recorded"))
    results = [
        " ".join(wording.entry_text(e, wording.Flavour.PLAIN).split())
        for e in entries
        if e.kind == Kind.REMEDIATION_RESULT
    ]
    lines.append("Remediations: " + (_bullets(results) if results else "none run through icbot"))
    diagnosed: list[str] = []
    for e in entries:
        name = str(e.data.get("playbook") or "") if e.kind == Kind.DIAGNOSIS else ""
        if name and name not in diagnosed:
            diagnosed.append(name)
    if diagnosed:
        lines.append("Playbooks diagnosed: " + ", ".join(diagnosed))
    if link:
        lines.append(f"Incident page: {link}")
    text = "\n".join(lines)
    if len(text) > MAX_NOTE:
        tail = f"\nIncident page: {link}" if link else ""
        text = text[: MAX_NOTE - len(CUT) - len(tail)] + CUT + tail
    return text


class PagerSummary:
    """Queues the summary note of a resolve (called inside the resolve's transaction)."""

    def __init__(
        self, *, severity_name: Callable[[str], str], link: Callable[[int], str | None]
    ) -> None:
        self.severity_name = severity_name
        self.link = link

    async def on_resolve(
        self, tx: Tx, incident: Incident, *, resolution: int
    ) -> dict[str, Any] | None:
        entries = await timeline_sql.entries(tx.conn, incident.id)
        text = summary_note(
            incident, entries, severity_name=self.severity_name(incident.severity),
            resolution=resolution, link=self.link(incident.id),
        )  # fmt: skip
        await pager.enqueue(
            tx.conn, incident.id, pager.PagerKind.NOTE, key=f"summary{resolution}",
            payload={"text": text},
        )  # fmt: skip
        return None  # the thread needs no word of it: PagerDuty's lag is reported anyway
