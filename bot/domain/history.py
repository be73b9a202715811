"""Incident history: MTTA, MTTR and status-update cadence. Pure: no I/O, no Slack.

The functions take incidents, their timeline entries, the severity policy and `now`, and return
dataclasses that `blocks.py` renders (`/ic list --all`, `/ic timeline`).

How the figures are counted (the README repeats this for users):

- **Severity.** An incident is reported under its severity now (the `incidents.severity`
  column); its gaps are judged by the severity in force when each gap began.
- **MTTA** (declared → acknowledged) uses the `acknowledged_at` column, which a role
  assignment, a status update or an acknowledgement in PagerDuty stamps (PagerDuty's own time).
  Resolving stamps it too when nothing did before; such an incident, like an open one nobody
  acknowledged, is counted as *never acknowledged* and left out of the mean and median
  (as PagerDuty's analytics do).
- **MTTR** (declared → resolved) counts resolved incidents only, to their last resolution
  (`resolved_at`): a resolved-then-reopened incident that is open again is not counted; once
  resolved again, the time between counts, as on its card.
- **Gaps.** While an incident is open, the time is cut at every status update: from declared (or
  reopened) to the first update, between consecutive updates, and from the last update to
  resolved, or to `now` while still open. The time it spent resolved before a reopen is in no
  gap. A gap is **on time** when it is no longer than the cadence (`status_every`) of the
  severity in force at its start, plus a grace of `ON_TIME_GRACE_PERCENT` (10%: an update that
  answers a prompt a minute after it came is on time); longer is **late**. A gap under a
  severity without a cadence (SEV4) is not judged. The gap still running on an open incident is
  judged only once it is late (until then nobody has missed anything) and counts towards the
  longest gap either way.
- **On-time rate** = on-time gaps / judged gaps (None when no gap was judged).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.core.models import Incident, TimelineEntry
from bot.domain.policy import SEVERITY_KEYS, SeverityPolicy
from bot.domain.timeline import Kind

ON_TIME_GRACE_PERCENT = 10  # whole percent, so limits are exact (30m → 33m)
# The timeline entries the figures need (the store fetches only these).
KINDS = (Kind.DECLARED, Kind.SEVERITY, Kind.STATUS, Kind.RESOLVED, Kind.REOPENED)


class Verdict(StrEnum):
    ON_TIME = "on time"
    LATE = "late"
    RUNNING = "running"  # still open and not late yet
    UNJUDGED = "no cadence"


@dataclass(frozen=True)
class Gap:
    """Time an open incident went without a status update."""

    start: datetime
    end: datetime
    severity: str  # in force at `start`
    cadence: float | None  # that severity's `status_every`, seconds; None = not judged
    running: bool = False  # ends at `now`: the incident is open and this gap goes on

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def limit(self) -> float | None:
        """The longest the gap may be and still be on time: the cadence plus the grace."""
        if self.cadence is None:
            return None
        return self.cadence * (100 + ON_TIME_GRACE_PERCENT) / 100

    @property
    def verdict(self) -> Verdict:
        if self.limit is None:
            return Verdict.UNJUDGED
        if self.seconds <= self.limit:
            return Verdict.RUNNING if self.running else Verdict.ON_TIME
        return Verdict.LATE


@dataclass(frozen=True)
class IncidentFigures:
    incident: Incident
    time_to_acknowledge: float | None  # seconds; None = never acknowledged
    time_to_resolve: float | None  # seconds; None = open
    open_seconds: float  # declared → resolved (or now), as the card's duration
    gaps: tuple[Gap, ...]

    def count(self, verdict: Verdict) -> int:
        return sum(1 for g in self.gaps if g.verdict is verdict)

    @property
    def on_time(self) -> int:
        return self.count(Verdict.ON_TIME)

    @property
    def late(self) -> int:
        return self.count(Verdict.LATE)

    @property
    def judged(self) -> int:
        return self.on_time + self.late

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.judged if self.judged else None

    @property
    def longest(self) -> Gap | None:
        return max(self.gaps, key=lambda g: g.seconds, default=None)


@dataclass(frozen=True)
class Summary:
    """Mean and median of some durations (seconds); None when there are none."""

    count: int
    mean: float | None
    median: float | None

    @staticmethod
    def of(values: Sequence[float]) -> Summary:
        if not values:
            return Summary(0, None, None)
        return Summary(len(values), statistics.fmean(values), statistics.median(values))


@dataclass(frozen=True)
class SeverityFigures:
    severity: str
    name: str
    cadence: float | None  # the policy's `status_every` for this severity, seconds
    incidents: int
    open: int
    mtta: Summary
    unacknowledged: int
    mttr: Summary
    gaps: int
    on_time: int
    late: int
    longest_gap: Gap | None
    longest_in: Incident | None

    @property
    def on_time_rate(self) -> float | None:
        judged = self.on_time + self.late
        return self.on_time / judged if judged else None


@dataclass(frozen=True)
class HistoryReport:
    since: datetime
    now: datetime
    incidents: tuple[IncidentFigures, ...]  # newest first
    severities: tuple[SeverityFigures, ...]  # SEV1 first; only severities with incidents

    @property
    def open(self) -> int:
        return sum(1 for f in self.incidents if not f.incident.is_resolved)


def cadence_of(policy: SeverityPolicy, severity: str) -> float | None:
    """The severity's status-update cadence in seconds; None if it has none (or is unknown)."""
    level = policy.levels.get(severity)
    every = level.status_every if level is not None else None
    return every if every is not None and every > 0 else None


def incident_figures(
    incident: Incident,
    entries: Sequence[TimelineEntry],
    policy: SeverityPolicy,
    *,
    now: datetime,
) -> IncidentFigures:
    """One incident's figures from its timeline (entries of other kinds are ignored)."""
    ordered = sorted(entries, key=lambda e: e.seq)
    declared = incident.declared_at
    end = incident.resolved_at or now
    return IncidentFigures(
        incident=incident,
        time_to_acknowledge=_time_to_acknowledge(incident, ordered),
        time_to_resolve=(
            max(0.0, (incident.resolved_at - declared).total_seconds())
            if incident.resolved_at is not None
            else None
        ),
        open_seconds=max(0.0, (end - declared).total_seconds()),
        gaps=tuple(_gaps(incident, ordered, policy, now=now)),
    )


def report(
    incidents: Sequence[Incident],
    entries: Mapping[int, Sequence[TimelineEntry]],
    policy: SeverityPolicy,
    *,
    since: datetime,
    now: datetime,
) -> HistoryReport:
    """The figures of `incidents` (those declared since `since`), per severity."""
    figures = sorted(
        (incident_figures(i, entries.get(i.id, ()), policy, now=now) for i in incidents),
        key=lambda f: (f.incident.declared_at, f.incident.id),
        reverse=True,
    )
    present = {f.incident.severity for f in figures}
    order = [k for k in SEVERITY_KEYS if k in present] + sorted(present - set(SEVERITY_KEYS))
    return HistoryReport(
        since=since,
        now=now,
        incidents=tuple(figures),
        severities=tuple(
            _severity_figures(key, [f for f in figures if f.incident.severity == key], policy)
            for key in order
        ),
    )


def _severity_figures(
    key: str, figures: Sequence[IncidentFigures], policy: SeverityPolicy
) -> SeverityFigures:
    acknowledged = [f.time_to_acknowledge for f in figures if f.time_to_acknowledge is not None]
    resolved = [f.time_to_resolve for f in figures if f.time_to_resolve is not None]
    longest: tuple[Gap, Incident] | None = None
    for f in figures:
        gap = f.longest
        if gap is not None and (longest is None or gap.seconds > longest[0].seconds):
            longest = (gap, f.incident)
    level = policy.levels.get(key)
    return SeverityFigures(
        severity=key,
        name=level.name if level is not None else key.upper(),
        cadence=cadence_of(policy, key),
        incidents=len(figures),
        open=sum(1 for f in figures if not f.incident.is_resolved),
        mtta=Summary.of(acknowledged),
        unacknowledged=len(figures) - len(acknowledged),
        mttr=Summary.of(resolved),
        gaps=sum(len(f.gaps) for f in figures),
        on_time=sum(f.on_time for f in figures),
        late=sum(f.late for f in figures),
        longest_gap=longest[0] if longest else None,
        longest_in=longest[1] if longest else None,
    )


def _time_to_acknowledge(incident: Incident, ordered: Sequence[TimelineEntry]) -> float | None:
    ack = incident.acknowledged_at
    if ack is None:
        return None
    # Resolving stamps `acknowledged_at` with the resolve time when nothing acknowledged it.
    if any(e.kind == Kind.RESOLVED and e.occurred_at == ack for e in ordered):
        return None
    return max(0.0, (ack - incident.declared_at).total_seconds())


def _initial_severity(incident: Incident, ordered: Sequence[TimelineEntry]) -> str:
    for entry in ordered:
        if entry.kind == Kind.DECLARED and entry.data.get("severity"):
            return str(entry.data["severity"])
        if entry.kind == Kind.SEVERITY and entry.data.get("from"):
            return str(entry.data["from"])
    return incident.severity


def _gaps(
    incident: Incident,
    ordered: Sequence[TimelineEntry],
    policy: SeverityPolicy,
    *,
    now: datetime,
) -> list[Gap]:
    severity = _initial_severity(incident, ordered)
    gaps: list[Gap] = []
    # Times are clamped to never run backwards (a PagerDuty resolve carries PagerDuty's own,
    # possibly earlier, time), so no gap is negative.
    cursor = incident.declared_at
    gap_start: datetime | None = incident.declared_at  # None while resolved
    gap_severity = severity

    def close(at: datetime, *, running: bool = False) -> None:
        assert gap_start is not None
        gaps.append(
            Gap(
                start=gap_start,
                end=at,
                severity=gap_severity,
                cadence=cadence_of(policy, gap_severity),
                running=running,
            )
        )

    for entry in ordered:
        cursor = max(cursor, entry.occurred_at)
        if entry.kind == Kind.SEVERITY and entry.data.get("to"):
            severity = str(entry.data["to"])
        elif entry.kind == Kind.STATUS and gap_start is not None:
            close(cursor)
            gap_start, gap_severity = cursor, severity
        elif entry.kind == Kind.RESOLVED and gap_start is not None:
            close(cursor)
            gap_start = None
        elif entry.kind == Kind.REOPENED and gap_start is None:
            gap_start, gap_severity = cursor, severity
    if gap_start is not None:
        if incident.resolved_at is not None:  # resolved, though its entry is missing
            close(max(gap_start, incident.resolved_at))
        else:
            close(max(gap_start, now), running=True)
    return gaps
