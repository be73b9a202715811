"""The post-mortem draft: the runbook's template filled from the timeline, byte for byte the same.

Unit tests feed `bot.postmortem.render` hand-made timelines; the golden test scripts an incident
through the real app on a controlled clock (`UPDATE_GOLDEN=1 pytest …` rewrites the file).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot import blocks
from bot.models import Incident, Status, TimelineEntry
from bot.postmortem import render
from bot.sandbox.slack_api import FakeSlack
from bot.timeline import Kind
from tests.conftest import Bot, running_bot
from tests.test_scribe import delete, edit, pin, say, unpin

GOLDEN = Path(__file__).parent / "golden" / "postmortem_inc1.md"
# In the future: the outbox only posts what is due by the (controlled) clock, so the clock must
# not be set back.
T0 = datetime(2040, 3, 6, 14, 0, tzinfo=UTC)


def incident(**overrides: Any) -> Incident:
    values: dict[str, Any] = {
        "id": 7, "title": "Card payments failing", "severity": "sev2",
        "status": Status.INVESTIGATING, "declared_by": "U0DANA", "channel_id": "C0WAR",
        "thread_ts": "1.000100", "declared_at": T0, "acknowledged_at": None,
        "mitigated_at": None, "resolved_at": None, "summary": None, "last_status": None,
        "last_status_at": None, "card_version": 1,
    }  # fmt: skip
    values.update(overrides)
    return Incident(**values)


class Script:
    """Hand-made timeline entries, one per call, minutes after T0."""

    def __init__(self) -> None:
        self.entries: list[TimelineEntry] = []

    def add(
        self, minute: float, kind: str, actor: str, shown: str, /, **data: Any
    ) -> TimelineEntry:
        seq = len(self.entries) + 1
        entry = TimelineEntry(
            id=100 + seq, incident_id=7, seq=seq, kind=kind, actor=actor, text=shown, data=data,
            occurred_at=T0 + timedelta(minutes=minute), content_hash="", prev_hash="", hash="",
        )  # fmt: skip
        self.entries.append(entry)
        return entry

    def declared(self, sev: str = "sev2") -> None:
        self.add(
            0, Kind.DECLARED, "U0DANA", "declared", title="Card payments failing", severity=sev
        )


def _section(draft: str, title: str) -> str:
    return draft.split(f"## {title}\n", 1)[1].split("\n\n", 1)[0]


def _field(draft: str, name: str) -> str:
    return draft.split(f"**{name}**: ", 1)[1].split("\n", 1)[0]


def test_same_timeline_same_bytes_whatever_the_order_entries_come_in() -> None:
    s = Script()
    s.declared()
    s.add(3, Kind.ROLE, "U0DANA", "erin scribe", role="scribe", user="U0ERIN", previous=None)
    s.add(20, Kind.STATUS, "U0DANA", "x", text="Mitigated: rolled back", stage="mitigated")
    s.add(50, Kind.RESOLVED, "U0DANA", "x", summary="Bad deploy", duration_s=3000)
    shuffled = list(s.entries)
    random.Random(4).shuffle(shuffled)
    first = render(incident(), s.entries)
    assert render(incident(), shuffled) == first
    assert first.endswith("\n") and not first.endswith("\n\n")


def test_figures_count_from_the_declaration() -> None:
    s = Script()
    s.declared()
    s.add(2, Kind.NOTE, "U0KIM", "x", text="looking")  # a note is not an acknowledgement
    s.add(4, Kind.ROLE, "U0DANA", "x", role="scribe", user="U0ERIN", previous=None)
    s.add(9, Kind.STATUS, "U0DANA", "x", text="Mitigating: rolling back", stage="mitigating")
    s.add(25, Kind.STATUS, "U0DANA", "x", text="Monitoring the error rate", stage="monitoring")
    s.add(30, Kind.STATUS, "U0DANA", "x", text="Mitigated", stage="mitigated")
    s.add(70, Kind.RESOLVED, "U0DANA", "x", summary=None, duration_s=4200)
    draft = render(incident(), s.entries)
    assert _field(draft, "Time to acknowledge") == "4m"
    assert _field(draft, "Time to mitigate") == "25m"  # the first update saying it stopped
    assert _field(draft, "Time to resolve") == "1h 10m"
    assert _field(draft, "Duration") == "14:00 - 15:10 UTC (1h 10m)"
    assert "- 14:25 - Mitigated (<@U0DANA>): Monitoring the error rate" in draft


def test_a_pagerduty_acknowledgement_is_the_response_starting() -> None:
    s = Script()
    s.declared()
    s.add(1, Kind.PAGERDUTY, "pagerduty", "PagerDuty triggered #4.", event="incident.triggered")
    s.add(
        2, Kind.PAGERDUTY, "pagerduty", "Acknowledged in PagerDuty by Dana.",
        event="incident.acknowledged",
    )  # fmt: skip
    draft = render(incident(), s.entries)
    assert _field(draft, "Time to acknowledge") == "2m"
    assert "- 14:02 - Acknowledged (Acknowledged in PagerDuty by Dana): response started" in draft


def test_a_handover_starts_the_response_as_an_assignment_does_and_adds_no_line_of_its_own() -> None:
    s = Script()
    s.declared()
    s.add(1, Kind.NOTE, "U0KIM", "x", text="looking")  # a note is not an acknowledgement
    s.add(
        3, Kind.HANDOVER, "U0DANA", "<@U0DANA> handed incident commander of INC-7 over to <@U0ERIN>.",
        role="incident commander", user="U0ERIN", previous="U0DANA", summary={"recent": []},
    )  # fmt: skip
    s.add(20, Kind.RESOLVED, "U0ERIN", "x", summary=None, duration_s=1200)
    draft = render(incident(), s.entries)
    assert _field(draft, "Time to acknowledge") == "3m"
    assert "- 14:03 - Acknowledged (<@U0DANA>): response started" in draft
    # Role changes have no line of their own in the draft's timeline; a handover neither.
    assert "handed" not in draft


def test_resolving_without_a_mitigation_update_mitigates_at_the_resolution() -> None:
    s = Script()
    s.declared()
    s.add(15, Kind.RESOLVED, "U0DANA", "x", summary=None, duration_s=900)
    draft = render(incident(), s.entries)
    assert _field(draft, "Time to acknowledge") == "15m"
    assert _field(draft, "Time to mitigate") == "15m"
    assert _field(draft, "Time to resolve") == "15m"
    assert "Mitigated (" not in draft


def test_an_open_incident_keeps_the_templates_placeholders() -> None:
    s = Script()
    s.declared()
    draft = render(incident(), s.entries)
    assert _field(draft, "Duration") == "14:00 UTC - ongoing (not resolved)"
    assert _field(draft, "Time to resolve") == "not yet"
    assert _field(draft, "Impact") == "[# users affected, downtime]"
    assert _section(draft, "Summary") == "[Brief description of what happened]"
    assert _section(draft, "Root Cause") == "[Technical root cause]"
    assert _section(draft, "Resolution") == "[What was done to resolve]"
    assert _section(draft, "Action Items") == (
        "1. [ ] [Action item with owner]\n2. [ ] [Action item with owner]"
    )
    for heading in ("Impact", "Lessons Learned", "Prevention"):
        assert f"\n## {heading}\n" in draft


def test_root_cause_and_resolution_come_from_notes_marked_so_in_any_case() -> None:
    s = Script()
    s.declared()
    s.add(5, Kind.NOTE, "U0ERIN", "x", text="the pool looks small")
    s.add(6, Kind.NOTE, "U0ERIN", "x", text="ROOT CAUSE: pool halved by\nthe 13:55 deploy")
    s.add(7, Kind.NOTE, "U0ERIN", "x", text="root cause:  and a missing alert")
    s.add(8, Kind.NOTE, "U0ERIN", "x", text="Resolution: rolled back to rev 41")
    s.add(9, Kind.STATUS, "U0ERIN", "x", text="Root cause: not a note", stage=None)
    draft = render(incident(), s.entries)
    assert _section(draft, "Root Cause") == (
        "- pool halved by the 13:55 deploy\n- and a missing alert"
    )
    assert _section(draft, "Resolution") == "rolled back to rev 41"


def test_action_items_are_listed_with_their_owners() -> None:
    s = Script()
    s.declared()
    s.add(40, "action_item", "U0DANA", "x", text="Alert on pool saturation", owner="U0ERIN")
    s.add(41, "action_item", "U0DANA", "x", text="Deploy checklist: config diff", owner=None)
    draft = render(incident(), s.entries)
    assert _section(draft, "Action Items") == (
        "1. [ ] Alert on pool saturation — <@U0ERIN>\n2. [ ] Deploy checklist: config diff — [owner]"
    )


def test_the_timeline_holds_the_key_events_in_time_order() -> None:
    s = Script()
    s.declared("sev3")
    s.add(1, Kind.ROLE, "U0DANA", "x", role="scribe", user="U0ERIN", previous=None)
    s.add(2, Kind.SEVERITY, "U0DANA", "x", **{"from": "sev3", "to": "sev1"})
    s.add(3, Kind.DIAGNOSIS_STARTED, "U0DANA", "x", playbook="payment-saga")
    s.add(
        4, Kind.DIAGNOSIS, "U0DANA", "x", playbook="payment-saga", title="SAGA storm",
        verdict="compensations at 7%", worst="critical",
    )  # fmt: skip
    s.add(5, Kind.DIAGNOSIS, "U0DANA", "x", playbook="db", title="DB", verdict="fine")
    s.add(6, Kind.STATUS, "U0DANA", "x", text="Identified: the 13:55 deploy", stage="identified")
    s.add(7, Kind.STATUS, "U0DANA", "x", text="Investigating more", stage="investigating")
    s.add(
        9, Kind.REMEDIATION_RESULT, "icbot",
        ":white_check_mark: Roll back payment-service: rolled back to rev 41. Verification: ok",
        ok=True,
    )  # fmt: skip
    s.add(
        10, "message", "U0ERIN", "x", ts="5.000001", text="error rate 0.1%", permalink="https://l/1"
    )
    s.add(
        11, "message", "U0KIM", "x", ts="5.000002", text="unpinned later", permalink="https://l/2"
    )
    s.add(
        12,
        "pinned",
        "U0DANA",
        "x",
        ts="5.000001",
        by="U0DANA",
        author="U0ERIN",
        permalink="https://l/1",
    )
    s.add(
        13,
        "pinned",
        "U0DANA",
        "x",
        ts="5.000002",
        by="U0DANA",
        author="U0KIM",
        permalink="https://l/2",
    )
    s.add(14, "unpinned", "U0DANA", "x", ts="5.000002", by="U0DANA")
    s.add(15, "message_edited", "U0ERIN", "x", ts="5.000001", text="error rate 0.05%", edits=10)
    s.add(20, Kind.STATUS, "U0DANA", "x", text="Mitigated: rolled back", stage="mitigated")
    s.add(30, Kind.RESOLVED, "U0DANA", "x", summary="Bad deploy\nrolled back", duration_s=1800)
    draft = render(incident(severity="sev1"), s.entries)
    assert _field(draft, "Severity") == "SEV1 (declared as SEV3)"
    assert _section(draft, "Timeline").split("\n") == [
        "All times UTC.",
        "- 14:00 - Declared by <@U0DANA> as SEV3: Card payments failing",
        "- 14:01 - Acknowledged (<@U0DANA>): response started",
        "- 14:02 - Severity SEV3 → SEV1 by <@U0DANA>",
        "- 14:04 - First diagnosis `payment-saga` (SAGA storm): compensations at 7%",
        "- 14:06 - Root cause identified (<@U0DANA>): the 13:55 deploy",
        "- 14:09 - Remediation: Roll back payment-service: rolled back to rev 41. Verification: ok",
        "- 14:10 - Key event, pinned by <@U0DANA>: “error rate 0.05%” — <@U0ERIN>"
        " ([message](https://l/1))",
        "- 14:20 - Mitigated (<@U0DANA>): rolled back",
        "- 14:30 - Resolved by <@U0DANA>: Bad deploy rolled back",
    ]
    assert _section(draft, "Summary") == "Bad deploy\nrolled back"


def test_a_pinned_message_deleted_later_shows_as_deleted() -> None:
    s = Script()
    s.declared()
    s.add(5, "pinned", "U0DANA", "x", ts="5.1", by="U0DANA", author="U0ERIN", permalink="https://l")
    s.add(6, "message_deleted", "icbot", "x", ts="5.1", author="U0ERIN", redacts=[])
    draft = render(incident(), s.entries)
    assert "- 14:05 - Key event, pinned by <@U0DANA>: (message deleted) — <@U0ERIN>\n" in draft


def test_a_reopened_incident_is_resolved_only_by_its_last_resolution() -> None:
    s = Script()
    s.declared()
    s.add(10, Kind.RESOLVED, "U0DANA", "x", summary=None, duration_s=600)
    s.add(20, Kind.REOPENED, "pagerduty", "x", reason="by Dana")
    draft = render(incident(), s.entries)
    assert _field(draft, "Time to resolve") == "not yet"
    s.add(45, Kind.RESOLVED, "U0DANA", "x", summary=None, duration_s=2700)
    draft = render(incident(), s.entries)
    assert _field(draft, "Time to resolve") == "45m"
    assert "- 14:20 - Reopened by PagerDuty: by Dana" in draft


def test_an_incident_across_midnight_dates_its_times() -> None:
    s = Script()
    s.add(9 * 60 + 50, Kind.DECLARED, "U0DANA", "x", title="Late", severity="sev3")
    s.add(10 * 60 + 20, Kind.RESOLVED, "U0DANA", "x", summary=None, duration_s=1800)
    draft = render(incident(declared_at=T0 + timedelta(hours=9, minutes=50)), s.entries)
    assert _field(draft, "Date") == "2040-03-06"
    assert _field(draft, "Duration") == "2040-03-06 23:50 - 2040-03-07 00:20 UTC (30m)"
    assert "- 2040-03-07 00:20 - Resolved by <@U0DANA>" in draft


def test_a_long_draft_is_split_into_code_blocks_of_whole_lines_within_slacks_limits() -> None:
    s = Script()
    s.declared()
    for n in range(60):
        s.add(n + 1, Kind.NOTE, "U0ERIN", "x", text=f"Root cause: part {n} " + "x" * 150)
    draft = render(incident(), s.entries)
    message = blocks.markdown_document("Post-mortem draft for INC-7", draft)
    assert message.text == draft
    sections = [b["text"]["text"] for b in message.blocks[1:]]
    assert len(sections) > 1 and all(len(t) <= 3000 for t in sections)
    assert all(t.startswith("```") and t.endswith("```") for t in sections)
    assert "\n".join(t.strip("`") for t in sections) + "\n" == draft


# -- a scripted incident through the real app, against the golden file -------------------------


async def scripted_incident(bot: Bot) -> None:
    """Declare, assign, talk, pin, update, note, resolve: times on the controlled clock."""
    bot.clock.offset = T0 - datetime.now(UTC)
    dana, erin = bot.user("dana"), bot.user("erin")
    await bot.command("declare Card payments failing sev2", user="dana")
    bot.clock.advance(minutes=4)
    await bot.command(f"assign <@{erin}|erin> scribe", user="dana")
    bot.clock.advance(minutes=3)
    finding = await say(bot, "erin", "Gateway returns 502 for ~8% of card payments since 13:55")
    bot.clock.advance(minutes=1)
    aside = await say(bot, "kim", "is this the ledger thing again?")
    bot.clock.advance(minutes=1)
    await bot.command("sev sev1", user="dana")
    bot.clock.advance(minutes=3)
    await bot.command(
        "status Identified: the 13:55 payment-service deploy halved the DB pool", user="dana"
    )
    bot.clock.advance(minutes=1)
    await pin(bot, finding, by="dana")
    await pin(bot, aside, by="kim")
    bot.clock.advance(minutes=1)
    await unpin(bot, aside, by="kim")  # not a key event after all
    await edit(bot, finding, "Gateway returns 502 for ~8% of card payments since the 13:55 deploy")
    secret = await say(bot, "kim", "db password is hunter2")
    await delete(bot, secret)
    bot.clock.advance(minutes=6)
    await bot.command("status Mitigating: rolling back payment-service to revision 41", user="dana")
    bot.clock.advance(minutes=9)
    await bot.command("status Mitigated: rollback done, error rate under 0.1%", user="dana")
    bot.clock.advance(minutes=2)
    await bot.command(
        "note Root cause: the deploy set the DB pool size to 10 (was 20)", user="erin"
    )
    await bot.command("note Resolution: rolled back payment-service to revision 41", user="erin")
    await bot.command(f"action Alert on DB pool saturation <@{erin}|erin>", user="dana")
    await bot.command("action Add config diffs to the deploy checklist", user="dana")
    bot.clock.advance(minutes=40)
    await bot.command(
        "resolve Bad deploy halved the DB pool; rolled back to revision 41", user="dana"
    )
    assert dana == "U0000000001"  # the golden file names people by these ids


def _icbot(args: list[str], dsn: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": dsn, "LOG_FORMAT": "console"}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], env=env, capture_output=True, text=True, timeout=120
    )


async def test_scripted_incident_postmortem_matches_the_golden_file(dsn: str) -> None:
    # Slack's message ts (in the permalinks) from a stopped clock, so they repeat run after run.
    async with FakeSlack(clock=T0.timestamp) as slack, running_bot(dsn, slack) as bot:
        await scripted_incident(bot)
        await bot.command("postmortem INC-1", user="erin")
        draft = bot.last_reply("erin")
        if os.environ.get("UPDATE_GOLDEN"):
            GOLDEN.parent.mkdir(exist_ok=True)
            GOLDEN.write_text(draft, encoding="utf-8")
        assert draft == GOLDEN.read_text(encoding="utf-8")
        # The CLI prints the same bytes, and the chain behind them verifies.
        printed = _icbot(["postmortem", "INC-1"], dsn)
        assert printed.returncode == 0, printed.stderr
        assert printed.stdout == draft
        assert (await bot.services.incidents.verify(1)).ok


async def test_postmortem_cli_reports_an_unknown_incident(bot: Bot, dsn: str) -> None:
    result = _icbot(["postmortem", "INC-9"], dsn)
    assert result.returncode == 2
    assert "INC-9 does not exist" in result.stderr
