"""The post-mortem draft: the runbook's template filled from the timeline, byte for byte the same.

Unit tests feed `bot.domain.postmortem.render` hand-made timelines; the golden test scripts an
incident through the real app on a controlled clock (`UPDATE_GOLDEN=1 pytest …` rewrites the file).
`/ic postmortem` posts the draft as a Markdown file in the incident's thread: the tests at the
end drive that through the real app and the Slack stand-in's files_upload_v2 endpoints.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.core.models import Incident, Status, TimelineEntry
from bot.core.wording import Flavour, join
from bot.domain.drafts import comment, named
from bot.domain.postmortem import figures, render
from bot.domain.timeline import Kind
from commands import blocks
from sandbox.slack_api import FakeSlack
from tests.conftest import Bot, running_bot, shown_text
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


def test_a_posted_draft_entry_changes_no_draft() -> None:
    s = Script()
    s.declared()
    s.add(5, Kind.STATUS, "U0DANA", "x", text="Mitigated: rolled back", stage="mitigated")
    before = render(incident(), s.entries)
    s.add(6, Kind.POSTMORTEM_POSTED, "U0ERIN", "posted", name="postmortem-INC-7.md", upto=2)
    assert render(incident(), s.entries) == before
    assert "(2 entries)" in before
    assert figures(incident(), s.entries).entries == 2


def test_the_figures_line_says_what_the_drafts_fields_say() -> None:
    s = Script()
    s.declared("sev3")
    s.add(2, Kind.SEVERITY, "U0DANA", "x", **{"from": "sev3", "to": "sev2"})
    s.add(4, Kind.ROLE, "U0DANA", "x", role="scribe", user="U0ERIN", previous=None)
    draft = render(incident(), s.entries)
    shown = figures(incident(), s.entries)
    assert shown.line() == (
        "SEV2 (declared as SEV3) · time to acknowledge 4m · to mitigate not yet"
        " · to resolve not yet"
    )
    assert (shown.severity, shown.duration) == (
        _field(draft, "Severity"),
        _field(draft, "Duration"),
    )
    assert shown.acknowledge == _field(draft, "Time to acknowledge")


def test_the_drafts_comment_is_pieces_read_alike_in_slack_and_in_plain_text() -> None:
    s = Script()
    s.declared("sev3")
    shown = figures(incident(), s.entries)
    said = comment(incident(), actor="U0ERIN", shown=shown, picture="https://bot/INC-7.svg")
    assert join(said, Flavour.SLACK) == (
        ":page_facing_up: Post-mortem draft of *INC-7*, asked for by <@U0ERIN>."
        f" {shown.line()}. Built from 1 timeline entries; `/ic postmortem INC-7` posts a fresh"
        " one as the timeline grows. Timeline picture: <https://bot/INC-7.svg>"
    )
    assert join(said, Flavour.PLAIN) == (
        "Post-mortem draft of INC-7, asked for by @U0ERIN."  # no emoji in plain text
        f" {shown.line()}. Built from 1 timeline entries; /ic postmortem INC-7 posts a fresh"
        " one as the timeline grows. Timeline picture: https://bot/INC-7.svg"
    )


def test_the_requester_sees_a_short_preview_of_a_long_draft_within_slacks_limits() -> None:
    s = Script()
    s.declared()
    for n in range(60):
        s.add(n + 1, Kind.NOTE, "U0ERIN", "x", text=f"Root cause: part {n} " + "x" * 250)
    draft = render(incident(), s.entries)
    message = blocks.postmortem_posted(
        ref="INC-7", filename="postmortem-INC-7.md", permalink="https://f/1", draft=draft,
        figures_line=figures(incident(), s.entries).line(), entries=61,
    )  # fmt: skip
    shown = shown_text(message)
    assert "<https://f/1|postmortem-INC-7.md>" in shown
    assert "# Incident Post-Mortem: INC-7 Card payments failing" in shown
    assert "part 0" not in shown and "## Action Items" not in shown  # a preview, not the draft
    assert f"…and {draft.count(chr(10)) - blocks.PREVIEW_LINES} more lines in the file." in shown
    assert len(message.blocks) <= 4 and all(len(b.get("text", {}).get("text", "")) <= 3000
                                            for b in message.blocks)  # fmt: skip


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
    assert dana == "U0000000001"  # ids stay stable run after run (the file shows their names)


def _icbot(
    args: list[str], dsn: str, slack: FakeSlack | None = None
) -> subprocess.CompletedProcess[str]:
    """`slack`: the workspace the CLI asks for people's names (`users.info`)."""
    env = {**os.environ, "DATABASE_URL": dsn, "LOG_FORMAT": "console"}
    if slack is not None:
        env |= {"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.url}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], env=env, capture_output=True, text=True, timeout=120
    )


async def test_scripted_incident_postmortem_matches_the_golden_file(dsn: str) -> None:
    # Slack's message ts (in the permalinks) from a stopped clock, so they repeat run after run.
    async with FakeSlack(clock=T0.timestamp) as slack, running_bot(dsn, slack) as bot:
        await scripted_incident(bot)
        await bot.command("postmortem INC-1", user="erin")
        [posted] = bot.posted_files(1)
        assert posted.content is not None
        draft = posted.content.decode("utf-8")
        if os.environ.get("UPDATE_GOLDEN"):
            GOLDEN.parent.mkdir(exist_ok=True)
            GOLDEN.write_text(draft, encoding="utf-8")
        assert draft == GOLDEN.read_text(encoding="utf-8")
        # The CLI prints the same bytes (posting the draft, recorded since, changed none of
        # it), and the chain behind them verifies.
        assert (await bot.kinds())[-1] == Kind.POSTMORTEM_POSTED
        printed = await asyncio.to_thread(_icbot, ["postmortem", "INC-1"], dsn, slack)
        assert printed.returncode == 0, printed.stderr
        assert printed.stdout.encode("utf-8") == posted.content
        assert (await bot.services.incidents.verify(1)).ok


async def test_postmortem_cli_reports_an_unknown_incident(bot: Bot, dsn: str) -> None:
    result = _icbot(["postmortem", "INC-9"], dsn)
    assert result.returncode == 2
    assert "INC-9 does not exist" in result.stderr


# -- `/ic postmortem` posts the draft as a file in the incident's thread --------------------------


async def _draft_now(bot: Bot, number: int = 1) -> str:
    """The draft as a file shows it: rendered from the timeline, people named."""
    incident, entries = await bot.services.incidents.timeline(number)
    return await named(render(incident, entries), bot.services.directory)


async def _posted_entries(bot: Bot) -> list[Any]:
    return await bot.fetch(
        "SELECT * FROM timeline WHERE kind = $1 ORDER BY seq", Kind.POSTMORTEM_POSTED
    )


async def _an_incident(bot: Bot) -> None:
    erin = bot.user("erin")
    await bot.command("declare Card payments failing sev2", user="dana")
    await bot.command(f"assign <@{erin}|erin> scribe", user="dana")
    await bot.command("status Mitigated: rolled back", user="dana")


async def test_the_draft_is_uploaded_as_a_markdown_file_into_the_incidents_thread(bot: Bot) -> None:
    await _an_incident(bot)
    expected = await _draft_now(bot)
    await bot.command("postmortem INC-1", user="erin")
    [message] = [m for m in bot.thread(1) if m.files]
    [file] = message.files
    assert message.thread_ts == bot.card(1).ts and message.user == bot.slack.bot_user_id
    assert (file["name"], file["title"]) == ("postmortem-INC-1.md", "INC-1 post-mortem draft")
    assert file["filetype"] == "markdown"
    [posted] = bot.posted_files(1)
    assert posted.content == expected.encode("utf-8")  # render(...) of the timeline, byte for byte
    # The message carrying it says who asked, and the figures.
    erin = bot.slack.user_id("erin")
    shown = figures(*(await bot.services.incidents.timeline(1)))
    assert f"asked for by <@{erin}>" in message.text
    assert shown.line() in message.text and "time to mitigate" not in message.text.lower()[:5]
    # Uploaded through files_upload_v2's three steps, into the thread.
    steps = [c.method for c in bot.slack.calls if c.method.startswith("files.") or
             c.method == "upload_url"]  # fmt: skip
    assert steps == ["files.getUploadURLExternal", "upload_url", "files.completeUploadExternal"]
    done = bot.slack.calls_to("files.completeUploadExternal")[0].args
    assert (done["channel_id"], done["thread_ts"]) == (bot.channel, bot.card(1).ts)


async def test_the_requester_is_told_where_the_draft_is_with_a_short_preview(bot: Bot) -> None:
    await _an_incident(bot)
    await bot.command("postmortem", user="erin")
    [file] = [f for m in bot.thread(1) for f in m.files]
    erin = bot.slack.user_id("erin")
    [told] = [e for e in bot.slack.ephemerals if e.user == erin and "post-mortem" in shown_text(e)]
    text = shown_text(told)
    assert told.via == "response_url"
    assert f"<{file['permalink']}|postmortem-INC-1.md>" in text
    assert "# Incident Post-Mortem: INC-1 Card payments failing" in text
    assert "**Time to mitigate**: " in text  # the figures are in the preview
    assert "## Action Items" not in text and "## Timeline" not in text  # not the whole draft


async def test_posting_is_recorded_as_chatter_in_the_digest_and_changes_no_draft(bot: Bot) -> None:
    await _an_incident(bot)
    before = await _draft_now(bot)
    await bot.command("postmortem", user="erin")
    [entry] = await _posted_entries(bot)
    [posted] = bot.posted_files(1)
    assert entry["data"]["file"] == posted.id and entry["data"]["name"] == "postmortem-INC-1.md"
    assert entry["data"]["sha256"] == hashlib.sha256(before.encode()).hexdigest()
    assert await _draft_now(bot) == before  # the new entry is not in the draft
    # A line of the thread's digest, not a reply of its own.
    assert "posted the post-mortem draft" in shown_text(bot.digests(1)[-1])
    replies = [shown_text(m) for m in bot.thread(1) if m not in bot.digests(1) and not m.files]
    assert not any("posted the post-mortem draft" in text for text in replies)
    assert (await bot.services.incidents.verify(1)).ok


async def test_the_posted_draft_can_be_rebuilt_from_the_timeline_alone(bot: Bot) -> None:
    await _an_incident(bot)
    await bot.command("postmortem", user="erin")
    await bot.command("note Root cause: the pool was halved", user="erin")  # the timeline moves on
    incident, entries = await bot.services.incidents.timeline(1)
    [entry] = [e for e in entries if e.kind == Kind.POSTMORTEM_POSTED]
    upto = [e for e in entries if e.seq <= entry.data["upto"]]
    rebuilt = await named(render(incident, upto), bot.services.directory)
    [posted] = bot.posted_files(1)
    assert rebuilt.encode("utf-8") == posted.content
    assert render(incident, entries) != render(incident, upto)


async def test_asking_again_posts_a_fresh_draft_as_the_timeline_grows(bot: Bot) -> None:
    await _an_incident(bot)
    await bot.command("postmortem", user="erin")
    await bot.command("note Root cause: the pool was halved", user="erin")
    await bot.command("postmortem", user="dana")
    first, second = bot.posted_files(1)
    assert first.id != second.id
    assert "the pool was halved" in second.text and "the pool was halved" not in first.text
    assert "(3 entries)" in first.text and "(4 entries)" in second.text  # posts not counted
    assert len(await _posted_entries(bot)) == 2


async def test_a_retry_of_the_same_request_posts_the_draft_once(bot: Bot) -> None:
    await _an_incident(bot)
    request = bot.command_request("postmortem", user="erin")
    await bot.post_signed(request)
    await bot.post(request, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "timeout"})
    await bot.settle()
    assert len(bot.posted_files(1)) == 1
    assert len(await _posted_entries(bot)) == 1
    erin = bot.slack.user_id("erin")
    # The retry is acknowledged and does nothing, not even a second answer (bot.domain.once).
    [answer] = [shown_text(e) for e in bot.slack.ephemerals if e.user == erin][-1:]
    assert "Posted the post-mortem draft of *INC-1*" in answer
    assert len(bot.replies_to("erin")) == 1


async def test_a_retry_arriving_while_the_first_still_uploads_posts_nothing(bot: Bot) -> None:
    await _an_incident(bot)
    bot.slack.latency["files.completeUploadExternal"] = 0.5  # the first is mid-upload
    request = bot.command_request("postmortem", user="erin")
    await asyncio.gather(bot.post(request), bot.post(request))
    await bot.settle()
    assert len(bot.posted_files(1)) == 1
    assert len(bot.slack.calls_to("files.getUploadURLExternal")) == 1
    assert len(await _posted_entries(bot)) == 1


@pytest.mark.parametrize(
    ("step", "fault", "told"),
    [
        ("files.getUploadURLExternal", {"status": 429, "retry_after": 7},
         "Slack is rate limiting file uploads; try `/ic postmortem INC-1` again in 7 s."),
        ("upload_url", {"status": 500}, "Slack refused the upload (slack: uploading"
         " postmortem-INC-1.md failed with HTTP 500)"),
        ("files.completeUploadExternal", {"status": 200, "error": "channel_not_found"},
         "Slack refused the upload (slack: files.completeUploadExternal: channel_not_found)"),
        ("files.getUploadURLExternal", {"status": 200, "error": "missing_scope"},
         "the app needs the files:write scope"),
    ],
)  # fmt: skip
async def test_a_failed_upload_tells_the_requester_and_records_nothing(
    bot: Bot, step: str, fault: dict[str, Any], told: str
) -> None:
    await _an_incident(bot)
    kinds = await bot.kinds()
    bot.slack.fail(step, **fault)
    await bot.command("postmortem", user="erin")
    reply = bot.last_reply("erin")
    assert reply.startswith(":warning: The post-mortem draft of *INC-1* was not posted")
    assert "nothing was recorded" in reply and told in reply
    assert bot.posted_files(1) == [] and not any(m.files for m in bot.thread(1))
    assert await bot.kinds() == kinds  # no entry, so no digest line either
    # Asking again once Slack is back posts it.
    await bot.command("postmortem", user="erin")
    assert len(bot.posted_files(1)) == 1


async def test_a_draft_waits_for_the_incidents_thread(bot: Bot) -> None:
    await bot.command("declare Card payments failing sev2", user="dana", drain=False)
    await bot.command("postmortem", user="dana", drain=False)  # the card is not posted yet
    assert "its thread has no place for the draft; try again in a moment" in bot.last_reply("dana")
    assert bot.slack.files == {}
    await bot.settle()
    await bot.command("postmortem", user="dana")
    assert len(bot.posted_files(1)) == 1


async def test_with_two_open_incidents_the_chosen_ones_thread_gets_the_draft_once(
    bot: Bot,
) -> None:
    await bot.command("declare First sev2", user="dana")
    await bot.command("declare Second sev3", user="dana")
    await bot.command("postmortem", user="dana")
    assert bot.slack.files == {}  # asked which one first
    question = bot.slack.ephemerals[-1]
    [second] = [
        e for b in question.blocks if b["type"] == "actions" for e in b["elements"]
        if e["text"]["text"] == "INC-2 Second"
    ]  # fmt: skip
    dana = bot.user("dana")
    click = bot.requests.block_action(
        action_id=second["action_id"], value=second["value"], label=second["text"]["text"],
        block_id="b1", user_id=dana, user_name="dana", channel_id=bot.channel,
        channel_name="waqiti-incidents",
        response_url=bot.slack.new_response_url(channel=bot.channel, user=dana),
    )  # fmt: skip
    await bot.post_signed(click)
    await bot.post_signed(click)  # the same click delivered again
    assert bot.posted_files(1) == []
    [posted] = bot.posted_files(2)
    assert posted.text.startswith("# Incident Post-Mortem: INC-2 Second\n")
    assert posted.content == (await _draft_now(bot, 2)).encode("utf-8")


async def test_a_deleted_message_takes_the_drafts_that_could_quote_it_out_of_the_thread(
    bot: Bot,
) -> None:
    from tests.test_scribe import delete, pin, say

    await _an_incident(bot)
    early = await _draft_now(bot)
    await bot.command("postmortem", user="erin")  # before the message: it stays
    msg = await say(bot, "erin", "root cause: the db password hunter2 expired")
    await pin(bot, msg, by="dana")
    await bot.command("postmortem", user="erin")  # quotes the pinned message
    before, quoting = bot.posted_files(1)
    assert b"hunter2" in quoting.content and b"hunter2" not in before.content
    await delete(bot, msg)
    await bot.settle()
    assert quoting.deleted and quoting.content == b""
    assert not before.deleted and before.content == early.encode()
    [carrier] = [m for m in bot.thread(1) if any(f["id"] == quoting.id for f in m.files)]
    assert carrier.files == [{"id": quoting.id, "mode": "tombstone"}]
    [note] = await bot.fetch("SELECT text, data FROM timeline WHERE kind = 'message_deleted'")
    assert "1 post-mortem draft that could quote it was removed" in note["text"]
    assert note["data"]["drafts_removed"] == [quoting.id]
    assert all("hunter2" not in text for text in bot.thread_texts(1))
    assert (await bot.services.incidents.verify(1)).ok


async def test_the_posted_draft_names_people_where_the_timeline_has_their_ids(bot: Bot) -> None:
    """Slack shows a file as it is: `<@U…>` in it would be raw ids. The timeline keeps them."""
    await _an_incident(bot)
    await bot.command("postmortem INC-1", user="erin")
    [posted] = bot.posted_files(1)
    draft = (posted.content or b"").decode("utf-8")
    assert "<@U" not in draft, draft
    assert "Declared by @dana as SEV2" in draft and "Mitigated (@dana): rolled back" in draft
    texts = [r["text"] for r in await bot.fetch("SELECT text FROM timeline ORDER BY seq")]
    assert any(f"<@{bot.slack.user_id('dana')}>" in text for text in texts)  # stored unchanged
    assert (await bot.services.incidents.verify(1)).ok


async def test_names_come_from_users_info_asked_once_per_person(bot: Bot) -> None:
    await _an_incident(bot)
    await bot.command("postmortem INC-1", user="erin")
    await bot.command("postmortem INC-1", user="dana")
    asked = [c.args.get("user") for c in bot.slack.calls_to("users.info")]
    assert asked == [bot.slack.user_id("dana")], asked  # the second draft's names were cached


async def test_postmortem_cli_names_people_from_slack(bot: Bot, dsn: str) -> None:
    await _an_incident(bot)
    printed = await asyncio.to_thread(_icbot, ["postmortem", "INC-1"], dsn, bot.slack)
    assert printed.returncode == 0, printed.stderr
    assert "<@U" not in printed.stdout and "@dana" in printed.stdout, printed.stdout
