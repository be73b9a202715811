"""The incident as a picture: an SVG timeline drawn by the server (no script, no fonts fetched).

Rows, left to right over the incident's life (declared → resolved, or now):

- **severity**: a band coloured by the severity in force;
- **updates**: a tick per status update, over the gaps between them coloured by
  `bot.domain.history`'s verdict against the severity's `status_every` (on time, late, running,
  no cadence) — the same gaps `/ic timeline` counts;
- **events**: remediation results (green done, red failed) and PagerDuty events as markers.

Colours are presentation attributes, so the picture looks the same inline in the page and
served alone as `INC-n.svg` (where no stylesheet applies); each element also has a class and a
`<title>` (a tooltip, and what a screen reader says).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from markupsafe import Markup

from bot.core import wording
from bot.core.models import Incident, TimelineEntry
from bot.core.timefmt import human_duration
from bot.core.wording import Flavour
from bot.domain import history
from bot.domain.policy import SeverityPolicy
from bot.domain.timeline import Kind
from bot.pages.text import plain

WIDTH = 960
LEFT, RIGHT = 70, 16  # room for the row labels, and for the last marker
SEVERITY_COLOURS = {"sev1": "#b91c1c", "sev2": "#ea580c", "sev3": "#ca8a04", "sev4": "#2563eb"}
VERDICT_COLOURS = {
    history.Verdict.ON_TIME: "#16a34a",
    history.Verdict.LATE: "#dc2626",
    history.Verdict.RUNNING: "#9ca3af",
    history.Verdict.UNJUDGED: "#d1d5db",
}
OTHER_SEVERITY = "#6b7280"
MIN_SPAN = 60.0  # seconds: a picture of a one-second incident is still readable


@dataclass(frozen=True)
class Band:
    x: float
    width: float
    severity: str
    colour: str
    title: str


@dataclass(frozen=True)
class GapBar:
    x: float
    width: float
    verdict: str
    colour: str
    title: str


@dataclass(frozen=True)
class Mark:
    x: float
    kind: str  # css class: "tick", "remediation ok", "remediation failed", "pagerduty"
    colour: str
    title: str


@dataclass(frozen=True)
class Picture:
    width: int
    bands: list[Band]
    gaps: list[GapBar]
    ticks: list[Mark]
    markers: list[Mark]
    start_label: str
    end_label: str
    title: str


def _said(entry: TimelineEntry) -> str:
    return plain(wording.entry_text(entry, Flavour.SLACK, typed=True))


def _label(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _severity_spans(
    incident: Incident, ordered: Sequence[TimelineEntry]
) -> list[tuple[datetime, str]]:
    """(from when, severity) in order: the declared severity, then each change."""
    first = next((e for e in ordered if e.kind == Kind.DECLARED), None)
    initial = str(first.data.get("severity") or incident.severity) if first else None
    if initial is None:
        change = next((e for e in ordered if e.kind == Kind.SEVERITY), None)
        initial = str(change.data.get("from") or incident.severity) if change else incident.severity
    spans = [(incident.declared_at, initial)]
    for entry in ordered:
        if entry.kind == Kind.SEVERITY and entry.data.get("to"):
            spans.append((max(entry.occurred_at, incident.declared_at), str(entry.data["to"])))
    return spans


def picture(
    incident: Incident,
    entries: Sequence[TimelineEntry],
    policy: SeverityPolicy,
    *,
    now: datetime,
) -> Picture:
    """Where everything goes, in SVG user units (a pure function of the timeline and `now`)."""
    ordered = sorted(entries, key=lambda e: e.seq)
    start = incident.declared_at
    end = max(incident.resolved_at or now, start)
    span = max((end - start).total_seconds(), MIN_SPAN)
    inner = WIDTH - LEFT - RIGHT

    def x(moment: datetime) -> float:
        offset = min(max((moment - start).total_seconds(), 0.0), span)
        return round(LEFT + inner * offset / span, 2)

    spans = _severity_spans(incident, ordered)
    bands = []
    for i, (since, severity) in enumerate(spans):
        until = spans[i + 1][0] if i + 1 < len(spans) else end
        name = policy.levels[severity].name if severity in policy.levels else severity
        bands.append(
            Band(
                x=x(since),
                width=max(x(until) - x(since), 0.5),
                severity=severity,
                colour=SEVERITY_COLOURS.get(severity, OTHER_SEVERITY),
                title=f"{severity.upper()} ({name}) from {_label(since)}",
            )
        )
    figures = history.incident_figures(incident, ordered, policy, now=now)
    gaps = []
    for gap in figures.gaps:
        every = (
            f" ({gap.severity.upper()} expects one every {human_duration(gap.cadence)})"
            if gap.cadence
            else ""
        )
        gaps.append(
            GapBar(
                x=x(gap.start),
                width=max(x(gap.end) - x(gap.start), 0.5),
                verdict=gap.verdict.value,
                colour=VERDICT_COLOURS[gap.verdict],
                title=f"{human_duration(gap.seconds)} without a status update"
                f"{every}: {gap.verdict.value}",
            )
        )
    ticks = [
        Mark(x(e.occurred_at), "tick", "#111827", f"{_label(e.occurred_at)} status: {_said(e)}")
        for e in ordered
        if e.kind == Kind.STATUS
    ]
    markers = []
    for e in ordered:
        if e.kind == Kind.REMEDIATION_RESULT:
            ok = e.data.get("ok") is True
            markers.append(
                Mark(
                    x(e.occurred_at),
                    "remediation ok" if ok else "remediation failed",
                    "#16a34a" if ok else "#dc2626",
                    f"{_label(e.occurred_at)} remediation: {_said(e)}",
                )
            )
        elif e.kind == Kind.PAGERDUTY:
            markers.append(
                Mark(
                    x(e.occurred_at),
                    "pagerduty",
                    "#047857",
                    f"{_label(e.occurred_at)} PagerDuty: {_said(e)}",
                )
            )
    return Picture(
        width=WIDTH,
        bands=bands,
        gaps=gaps,
        ticks=ticks,
        markers=markers,
        start_label=_label(start),
        end_label=_label(end) if incident.resolved_at else f"{_label(end)} (open)",
        title=f"{incident.ref}: {plain(incident.title)}",
    )


def render_svg(pic: Picture) -> Markup:
    """The picture as SVG markup (a Jinja2 template with autoescape: titles are text)."""
    from bot.pages.render import environment

    return Markup(environment().get_template("timeline.svg").render(p=pic))  # noqa: S704
