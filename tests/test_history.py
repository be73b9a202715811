"""Incident history figures (`bot.domain.history`): exact figures on hand-built timelines,
invariants on generated ones, and the Block Kit they render to."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.models import Incident, Status, TimelineEntry
from bot.core.settings import BUNDLED_PLAYBOOKS
from bot.domain.history import (
    ON_TIME_GRACE_PERCENT,
    Gap,
    IncidentFigures,
    Verdict,
    incident_figures,
    report,
)
from bot.domain.policy import SEVERITY_KEYS, load_severity_policy
from bot.domain.timeline import Kind
from commands import blocks

POLICY = load_severity_policy(BUNDLED_PLAYBOOKS)  # SEV1 15m, SEV2 30m, SEV3 1h, SEV4 none
T0 = datetime(2040, 3, 6, 14, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def incident(number: int = 1, **overrides: Any) -> Incident:
    values: dict[str, Any] = {
        "id": number, "title": "Card payments failing", "severity": "sev2",
        "status": Status.INVESTIGATING, "declared_by": "U0DANA", "channel_id": "C0WAR",
        "thread_ts": "1.000100", "declared_at": T0, "acknowledged_at": None,
        "mitigated_at": None, "resolved_at": None, "summary": None, "last_status": None,
        "last_status_at": None, "card_version": 1, "roles": {"incident commander": "U0DANA"},
    }  # fmt: skip
    values.update(overrides)
    return Incident(**values)


class Script:
    """A timeline written entry by entry, as `Incidents` would record it."""

    def __init__(self, incident_id: int = 1, severity: str = "sev2", start: datetime = T0) -> None:
        self.incident_id = incident_id
        self.entries: list[TimelineEntry] = []
        self.add(Kind.DECLARED, start, severity=severity)

    def add(self, kind: str, at: datetime, **data: Any) -> datetime:
        seq = len(self.entries) + 1
        self.entries.append(
            TimelineEntry(
                id=seq,
                incident_id=self.incident_id,
                seq=seq,
                kind=kind,
                actor="U0DANA",
                text=kind,
                data=data,
                occurred_at=at,
                content_hash="",
                prev_hash="",
                hash="",
            )
        )
        return at


def spans(figures: IncidentFigures) -> list[tuple[timedelta, timedelta, str, Verdict]]:
    return [(g.start - T0, g.end - T0, g.severity, g.verdict) for g in figures.gaps]


# -- exact figures on hand-built timelines ---------------------------------------------------


def test_gaps_are_judged_by_the_severity_in_force_when_they_began_with_a_ten_percent_grace() -> (
    None
):
    s = Script(severity="sev2")
    s.add(Kind.ROLE, T0 + 3 * MIN, role="scribe")
    s.add(Kind.STATUS, T0 + 20 * MIN, text="Investigating")
    s.add(Kind.SEVERITY, T0 + 25 * MIN, **{"from": "sev2", "to": "sev1"})
    s.add(Kind.STATUS, T0 + 52 * MIN, text="Identified")  # 32m, begun under SEV2: 30m + 10%
    s.add(Kind.NOTE, T0 + 60 * MIN, text="a note does not reset the clock")
    s.add(Kind.STATUS, T0 + 70 * MIN, text="Mitigating")  # 18m under SEV1: 15m + 10% = 16.5m
    s.add(Kind.RESOLVED, T0 + 74 * MIN)
    figures = incident_figures(
        incident(
            severity="sev1",
            status=Status.RESOLVED,
            acknowledged_at=T0 + 3 * MIN,
            resolved_at=T0 + 74 * MIN,
        ),
        s.entries,
        POLICY,
        now=T0 + 600 * MIN,
    )
    assert spans(figures) == [
        (0 * MIN, 20 * MIN, "sev2", Verdict.ON_TIME),
        (20 * MIN, 52 * MIN, "sev2", Verdict.ON_TIME),
        (52 * MIN, 70 * MIN, "sev1", Verdict.LATE),
        (70 * MIN, 74 * MIN, "sev1", Verdict.ON_TIME),
    ]
    assert (figures.on_time, figures.late, figures.on_time_rate) == (3, 1, 0.75)
    assert figures.longest is not None and figures.longest.seconds == 32 * 60
    assert figures.time_to_acknowledge == 3 * 60
    assert figures.time_to_resolve == figures.open_seconds == 74 * 60


def test_grace_is_ten_percent_of_the_cadence_and_not_a_second_more() -> None:
    assert ON_TIME_GRACE_PERCENT == 10
    at_limit = Gap(T0, T0 + timedelta(seconds=1980), "sev2", 1800.0)
    past_limit = Gap(T0, T0 + timedelta(seconds=1981), "sev2", 1800.0)
    assert at_limit.limit == past_limit.limit == 1980
    assert at_limit.verdict is Verdict.ON_TIME
    assert past_limit.verdict is Verdict.LATE


def test_a_reopened_incident_has_no_gap_while_it_was_resolved_and_its_open_gap_runs_to_now() -> (
    None
):
    s = Script(severity="sev3")
    s.add(Kind.RESOLVED, T0 + 30 * MIN)
    s.add(Kind.REOPENED, T0 + 120 * MIN)
    s.add(Kind.STATUS, T0 + 170 * MIN, text="Investigating again")
    figures = incident_figures(
        # Resolving stamped acknowledged_at; reopening cleared resolved_at.
        incident(severity="sev3", acknowledged_at=T0 + 30 * MIN),
        s.entries,
        POLICY,
        now=T0 + 300 * MIN,
    )
    assert spans(figures) == [
        (0 * MIN, 30 * MIN, "sev3", Verdict.ON_TIME),
        (120 * MIN, 170 * MIN, "sev3", Verdict.ON_TIME),
        (170 * MIN, 300 * MIN, "sev3", Verdict.LATE),  # still open, 2h 10m > 1h 06m
    ]
    assert figures.gaps[-1].running
    assert figures.time_to_resolve is None  # open again: no MTTR
    assert figures.time_to_acknowledge is None  # only the resolution "acknowledged" it
    assert figures.open_seconds == 300 * 60


def test_an_open_gap_within_its_cadence_is_not_judged_yet() -> None:
    s = Script(severity="sev1")
    figures = incident_figures(incident(severity="sev1"), s.entries, POLICY, now=T0 + 10 * MIN)
    assert spans(figures) == [(0 * MIN, 10 * MIN, "sev1", Verdict.RUNNING)]
    assert (figures.on_time, figures.late, figures.on_time_rate) == (0, 0, None)


def test_gaps_under_a_severity_without_cadence_are_not_judged() -> None:
    s = Script(severity="sev4")
    s.add(Kind.STATUS, T0 + 300 * MIN, text="Still cosmetic")
    s.add(Kind.SEVERITY, T0 + 310 * MIN, **{"from": "sev4", "to": "sev3"})
    s.add(Kind.RESOLVED, T0 + 400 * MIN)
    figures = incident_figures(
        incident(severity="sev3", resolved_at=T0 + 400 * MIN), s.entries, POLICY, now=T0
    )
    # The second gap began under SEV4, so the SEV3 cadence does not apply to it.
    assert [g.verdict for g in figures.gaps] == [Verdict.UNJUDGED, Verdict.UNJUDGED]
    assert figures.on_time_rate is None


def test_acknowledgement_in_pagerduty_counts_from_its_own_time_and_never_negative() -> None:
    s = Script(severity="sev2")
    s.add(Kind.PAGERDUTY, T0 + 9 * MIN, event="incident.acknowledged")
    early = incident_figures(
        incident(acknowledged_at=T0 + 7 * MIN), s.entries, POLICY, now=T0 + 60 * MIN
    )
    assert early.time_to_acknowledge == 7 * 60
    skewed = incident_figures(
        incident(acknowledged_at=T0 - 2 * MIN), s.entries, POLICY, now=T0 + 60 * MIN
    )
    assert skewed.time_to_acknowledge == 0


def test_a_pagerduty_resolve_stamped_before_the_last_update_makes_no_negative_gap() -> None:
    s = Script(severity="sev2")
    s.add(Kind.STATUS, T0 + 20 * MIN, text="Mitigating")
    s.add(Kind.RESOLVED, T0 + 18 * MIN)  # PagerDuty's own (earlier) time
    figures = incident_figures(
        incident(resolved_at=T0 + 18 * MIN), s.entries, POLICY, now=T0 + 60 * MIN
    )
    assert [g.seconds for g in figures.gaps] == [20 * 60, 0]


def test_report_groups_by_current_severity_with_mean_and_median() -> None:
    incidents, entries = [], {}
    # SEV2: acknowledged after 2m, 4m, 12m; resolved after 30m, 60m; one still open.
    for number, ack, resolved in ((1, 2, 30), (2, 4, 60), (3, 12, None)):
        s = Script(number, "sev2")
        s.add(Kind.STATUS, T0 + ack * MIN, text="Investigating")
        if resolved:
            s.add(Kind.RESOLVED, T0 + resolved * MIN)
        incidents.append(
            incident(
                number,
                acknowledged_at=T0 + ack * MIN,
                resolved_at=T0 + resolved * MIN if resolved else None,
            )
        )
        entries[number] = s.entries
    # SEV1, declared later: resolved without anybody acknowledging it.
    s = Script(4, "sev1", start=T0 + 60 * MIN)
    s.add(Kind.RESOLVED, T0 + 90 * MIN)
    incidents.append(
        incident(
            4,
            severity="sev1",
            declared_at=T0 + 60 * MIN,
            acknowledged_at=T0 + 90 * MIN,
            resolved_at=T0 + 90 * MIN,
        )
    )
    entries[4] = s.entries
    result = report(incidents, entries, POLICY, since=T0 - 30 * 1440 * MIN, now=T0 + 100 * MIN)
    assert [f.incident.id for f in result.incidents] == [4, 3, 2, 1]  # newest first
    assert [s.severity for s in result.severities] == ["sev1", "sev2"]
    sev1, sev2 = result.severities
    assert (sev2.incidents, sev2.open, sev2.unacknowledged) == (3, 1, 0)
    assert (sev2.mtta.count, sev2.mtta.mean, sev2.mtta.median) == (3, 6 * 60, 4 * 60)
    assert (sev2.mttr.count, sev2.mttr.mean, sev2.mttr.median) == (2, 45 * 60, 45 * 60)
    assert sev2.longest_in is not None and sev2.longest_in.id == 3  # 12m → now (100m): 88m
    assert sev2.longest_gap is not None and sev2.longest_gap.seconds == 88 * 60
    assert (sev1.incidents, sev1.unacknowledged, sev1.mtta.count) == (1, 1, 0)
    assert sev1.mttr.median == 30 * 60
    assert result.open == 1


def test_no_incidents_in_the_window_gives_an_empty_report() -> None:
    result = report([], {}, POLICY, since=T0, now=T0)
    assert result.incidents == () and result.severities == ()


# -- invariants on generated timelines ---------------------------------------------------------


@dataclass
class Generated:
    incident: Incident
    entries: list[TimelineEntry]
    now: datetime
    expected: list[tuple[datetime, datetime, str]] = field(default_factory=list)


ACTIONS = st.sampled_from(["status", "status", "sev", "resolve", "reopen", "note"])


@st.composite
def generated(draw: st.DrawFn, number: int = 1) -> Generated:
    """A coherent timeline, and the gaps it should have (worked out as the events happen)."""
    start = T0 + timedelta(seconds=draw(st.integers(0, 10 * 86400)))
    severity = draw(st.sampled_from(SEVERITY_KEYS))
    script = Script(number, severity, start=start)
    expected: list[tuple[datetime, datetime, str]] = []
    at = start
    gap_start: datetime | None = start
    gap_severity = severity
    resolved_at: datetime | None = None
    first_resolve: datetime | None = None
    first_answer: datetime | None = None
    for action in draw(st.lists(ACTIONS, max_size=20)):
        at += timedelta(seconds=draw(st.integers(0, 3 * 3600)))
        if action == "status" and gap_start is not None:
            script.add(Kind.STATUS, at, text="update")
            expected.append((gap_start, at, gap_severity))
            gap_start, gap_severity = at, severity
            first_answer = first_answer or at
        elif action == "sev" and gap_start is not None:
            to = draw(st.sampled_from([k for k in SEVERITY_KEYS if k != severity]))
            script.add(Kind.SEVERITY, at, **{"from": severity, "to": to})
            severity = to
        elif action == "resolve" and gap_start is not None:
            script.add(Kind.RESOLVED, at)
            expected.append((gap_start, at, gap_severity))
            gap_start, resolved_at = None, at
            first_resolve = first_resolve or at
        elif action == "reopen" and gap_start is None:
            script.add(Kind.REOPENED, at)
            gap_start, gap_severity, resolved_at = at, severity, None
        elif action == "note":
            script.add(Kind.NOTE, at, text="note")
    now = at + timedelta(seconds=draw(st.integers(0, 6 * 3600)))
    if gap_start is not None:
        expected.append((gap_start, now, gap_severity))
    pagerduty_ack = start + timedelta(seconds=draw(st.integers(-60, 3600)))
    acknowledged = draw(st.sampled_from([first_answer, first_resolve, pagerduty_ack, None]))
    return Generated(
        incident=incident(
            number,
            severity=severity,
            status=Status.RESOLVED if resolved_at else Status.INVESTIGATING,
            declared_at=start,
            acknowledged_at=acknowledged,
            resolved_at=resolved_at,
        ),
        entries=script.entries,
        now=now,
        expected=expected,
    )


@given(generated())
@settings(max_examples=300, deadline=None)
def test_gaps_cover_exactly_the_open_time_each_under_the_severity_it_began_with(
    g: Generated,
) -> None:
    figures = incident_figures(g.incident, g.entries, POLICY, now=g.now)
    assert [(gap.start, gap.end, gap.severity) for gap in figures.gaps] == g.expected
    assert all(gap.seconds >= 0 for gap in figures.gaps)
    for earlier, later in zip(figures.gaps, figures.gaps[1:], strict=False):
        assert earlier.end <= later.start  # no overlap: time while resolved is in no gap


@given(generated())
@settings(max_examples=300, deadline=None)
def test_incident_figures_add_up_and_stay_in_range(g: Generated) -> None:
    figures = incident_figures(g.incident, g.entries, POLICY, now=g.now)
    verdicts = [gap.verdict for gap in figures.gaps]
    assert sum(verdicts.count(v) for v in Verdict) == len(figures.gaps)
    assert figures.judged == figures.on_time + figures.late <= len(figures.gaps)
    rate = figures.on_time_rate
    assert (rate is None) == (figures.judged == 0)
    assert rate is None or 0 <= rate <= 1
    longest = figures.longest
    assert all(longest is not None and longest.seconds >= gap.seconds for gap in figures.gaps)
    running = [gap for gap in figures.gaps if gap.running]
    assert len(running) <= 1 and (not running or figures.gaps[-1].running)
    assert not running or not g.incident.is_resolved
    assert all(gap.verdict is not Verdict.ON_TIME for gap in running)
    assert sum(gap.seconds for gap in figures.gaps) <= figures.open_seconds
    assert (figures.time_to_resolve is None) == (not g.incident.is_resolved)
    if figures.time_to_acknowledge is not None:
        assert figures.time_to_acknowledge >= 0


@given(
    st.lists(st.integers(1, 10_000), unique=True, max_size=8).flatmap(
        lambda ids: st.tuples(*[generated(number=n) for n in ids])
    )
)
@settings(max_examples=150, deadline=None)
def test_report_counts_add_up_per_severity(cases: tuple[Generated, ...]) -> None:
    now = max((c.now for c in cases), default=T0)
    result = report(
        [c.incident for c in cases],
        {c.incident.id: c.entries for c in cases},
        POLICY,
        since=T0,
        now=now,
    )
    assert len(result.incidents) == len(cases)
    assert sum(s.incidents for s in result.severities) == len(cases)
    order = [s.severity for s in result.severities]
    assert order == [k for k in SEVERITY_KEYS if k in order]
    assert all(s.incidents > 0 for s in result.severities)
    declared = [f.incident.declared_at for f in result.incidents]
    assert declared == sorted(declared, reverse=True)
    for sev in result.severities:
        mine = [f for f in result.incidents if f.incident.severity == sev.severity]
        assert sev.mtta.count + sev.unacknowledged == sev.incidents == len(mine)
        assert sev.mttr.count + sev.open == sev.incidents
        assert sev.on_time + sev.late <= sev.gaps == sum(len(f.gaps) for f in mine)
        rate = sev.on_time_rate
        assert rate is None or 0 <= rate <= 1
        gaps = [gap.seconds for f in mine for gap in f.gaps]
        assert sev.longest_gap is not None and sev.longest_gap.seconds == max(gaps)
        assert sev.longest_in is not None and sev.longest_in.severity == sev.severity
        for stat in (sev.mtta, sev.mttr):
            if stat.count:
                assert stat.mean is not None and stat.median is not None
        values = [f.time_to_resolve for f in mine if f.time_to_resolve is not None]
        if values:
            assert sev.mttr.mean is not None and sev.mttr.median is not None
            assert min(values) <= sev.mttr.mean <= max(values)
            assert min(values) <= sev.mttr.median <= max(values)


# -- rendering -------------------------------------------------------------------------------


def _section_texts(message: blocks.Message) -> list[str]:
    out = []
    for block in message.blocks:
        if block["type"] == "section":
            out.append(block["text"]["text"])
            out += [f["text"] for f in block.get("fields", [])]
    return out


def test_history_of_many_long_incidents_fits_slack_limits_and_says_how_many_more() -> None:
    incidents, entries = [], {}
    for number in range(1, 121):
        s = Script(number, SEVERITY_KEYS[number % 4])
        incidents.append(
            incident(number, severity=SEVERITY_KEYS[number % 4], title="x" * 150 + str(number))
        )
        entries[number] = s.entries
    message = blocks.incident_history(
        report(incidents, entries, POLICY, since=T0, now=T0 + 600 * MIN), days=30
    )
    assert len(message.blocks) <= blocks.MAX_BLOCKS
    for block in message.blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= blocks.SECTION_TEXT_MAX
            assert len(block.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
    texts = "\n".join(_section_texts(message))
    assert texts.count("*INC-") == blocks.HISTORY_ROWS
    assert "… and 70 more" in json.dumps(message.blocks, ensure_ascii=False)


def test_history_figures_are_humanised_per_severity() -> None:
    s = Script(1, "sev2")
    s.add(Kind.STATUS, T0 + 4 * MIN, text="Investigating")
    s.add(Kind.STATUS, T0 + 76 * MIN, text="Mitigating")
    s.add(Kind.RESOLVED, T0 + 80 * MIN)
    one = incident(1, acknowledged_at=T0 + 4 * MIN, resolved_at=T0 + 80 * MIN)
    message = blocks.incident_history(
        report([one], {1: s.entries}, POLICY, since=T0, now=T0 + 90 * MIN), days=30
    )
    texts = "\n".join(_section_texts(message))
    assert "SEV2 · High* — 1 incident · updates every 30m" in texts
    assert "median 4m · mean 4m" in texts
    assert "median 1h 20m · mean 1h 20m" in texts
    assert "2 of 3 gaps (67%)" in texts
    assert "1h 12m in INC-1 (SEV2, every 30m)" in texts
    assert "resolved after 1h 20m · updates 2/3 on time" in texts


def test_an_empty_window_says_no_incidents_were_declared() -> None:
    message = blocks.incident_history(report([], {}, POLICY, since=T0, now=T0), days=7)
    assert message.text == "No incidents were declared in the last 7 days."


def test_the_timeline_of_a_resolved_incident_shows_its_duration_and_cadence_verdict() -> None:
    s = Script(1, "sev1")
    s.add(Kind.STATUS, T0 + 20 * MIN, text="Investigating")
    s.add(Kind.RESOLVED, T0 + 25 * MIN)
    one = incident(1, severity="sev1", acknowledged_at=T0 + 20 * MIN, resolved_at=T0 + 25 * MIN)
    figures = incident_figures(one, s.entries, POLICY, now=T0 + 600 * MIN)
    message = blocks.timeline_listing(one, s.entries, figures)
    assert "*Duration* 25m (resolved 2040-03-06 14:25 UTC)" in message.text
    assert "*Acknowledged* after 20m" in message.text
    assert "Missed its status cadence once*: 1 of 2 gaps" in message.text
    assert "longest 20m (SEV1, every 15m)" in message.text


def test_an_open_incident_whose_first_update_is_not_due_says_so() -> None:
    s = Script(1, "sev1")
    one = incident(1, severity="sev1")
    figures = incident_figures(one, s.entries, POLICY, now=T0 + 10 * MIN)
    summary = blocks.incident_summary(figures)
    assert summary.startswith("*Open for* 10m (investigating) · *Not acknowledged yet*\n")
    assert summary.endswith(
        ":hourglass: *No update due yet*: 10m without one; SEV1 expects one every 15m"
    )


def test_an_incident_resolved_with_no_acknowledgement_says_so_and_met_its_cadence() -> None:
    s = Script(1, "sev3")
    s.add(Kind.RESOLVED, T0 + 50 * MIN)
    one = incident(1, severity="sev3", acknowledged_at=T0 + 50 * MIN, resolved_at=T0 + 50 * MIN)
    summary = blocks.incident_summary(incident_figures(one, s.entries, POLICY, now=T0))
    assert "*Resolved without an acknowledgement*" in summary
    assert ":white_check_mark: *Met its status cadence*: 1 of 1 gaps" in summary
