"""Every reply fits Slack: long content is paged or split, never refused and never silently cut.

The Slack stand-in refuses what Slack refuses (slack_sdk's Block Kit models plus the documented
limits, `sandbox/block_kit.py`), so a reply that would not fit shows up here as a refused
call and a user who got nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.ids import ChecklistAction
from bot.core.models import TimelineEntry
from bot.core.settings import BUNDLED_PLAYBOOKS
from commands.blocks import Message, fit_modal, status_modal, thread_digest
from sandbox.actuator import FakeActuator
from sandbox.block_kit import message_problems, view_problems
from sandbox.kubernetes import FakeKubernetes
from sandbox.slack_api import Ephemeral, FakeSlack
from tests.conftest import Bot, running_bot, shown_text


def _buttons(message: Any) -> dict[str, dict[str, Any]]:
    """The message's buttons by their label."""
    return {
        e["text"]["text"]: e
        for b in message.blocks
        if b.get("type") == "actions"
        for e in b["elements"]
        if e.get("type") == "button"
    }


async def _notes(bot: Bot, count: int, *, size: int = 600) -> list[str]:
    """`count` notes in INC-1, each `size` characters and numbered, oldest first."""
    alice = bot.user("alice")
    texts = []
    for n in range(1, count + 1):
        text = f"note-{n:03d} " + ("lorem ipsum " * (size // 12 + 1))[: size - 9]
        await bot.services.incidents.add_note(ref=1, text=text, actor=alice)
        texts.append(text)
    await bot.settle()
    return texts


def _words(text: str) -> str:
    """Text as a reader takes it in: a message split into several sections reads as one."""
    return " ".join(text.split())


def _shown_notes(reply: Ephemeral) -> list[str]:
    return re.findall(r"note-(\d{3})", shown_text(reply))


async def _click(bot: Bot, button: dict[str, Any], *, user: str = "alice") -> Ephemeral:
    uid = bot.user(user)
    before = len(bot.slack.ephemerals)
    click = bot.requests.block_action(
        action_id=button["action_id"], value=button["value"], label=button["text"]["text"],
        block_id="timeline", user_id=uid, user_name=user, channel_id=bot.channel,
        channel_name="waqiti-incidents",
        response_url=bot.slack.new_response_url(channel=bot.channel, user=uid),
    )  # fmt: skip
    status, _ = await bot.post_signed(click)
    assert status == 200
    assert len(bot.slack.ephemerals) == before + 1, "the click got no reply"
    return bot.slack.ephemerals[-1]


# ---------------------------------------------------------------------- the timeline, paged


async def test_timeline_of_a_long_incident_shows_the_newest_entries_with_show_older(
    bot: Bot,
) -> None:
    await bot.command("declare Payments failing sev2")
    await _notes(bot, 150)
    await bot.command("timeline INC-1")
    assert [c for c in bot.slack.calls_to("response_url") if c.status != 200] == []
    reply = bot.slack.ephemerals[-1]
    assert len(reply.text) <= 40_000
    shown = _shown_notes(reply)
    assert shown and shown[-1] == "150", "the newest entry is shown"
    assert shown == sorted(shown), "oldest first within the page"
    assert "Show older" in _buttons(reply)
    assert "older entries cut" not in shown_text(reply)


async def test_show_older_pages_back_through_every_entry_once(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2")
    notes = await _notes(bot, 150)
    await bot.command("timeline")
    reply = bot.slack.ephemerals[-1]
    pages = [_shown_notes(reply)]
    while "Show older" in _buttons(reply):
        reply = await _click(bot, _buttons(reply)["Show older"])
        assert reply.replace_original
        pages.append(_shown_notes(reply))
    assert len(pages) > 1
    seen = [n for page in reversed(pages) for n in page]
    assert seen == [f"{n:03d}" for n in range(1, 151)], "every entry, once, in order"
    assert "Show newer" in _buttons(reply)
    # Each note in full: the oldest page shows note 1 word for word.
    assert _words(notes[0]) in _words(shown_text(reply))


async def test_timeline_page_2_by_command_continues_where_page_1_stops(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2")
    await _notes(bot, 150)
    await bot.command("timeline INC-1")
    first = _shown_notes(bot.slack.ephemerals[-1])
    await bot.command("timeline INC-1 --page 2")
    second = _shown_notes(bot.slack.ephemerals[-1])
    assert second and int(second[-1]) == int(first[0]) - 1
    await bot.command("timeline INC-1 --page 99")
    assert "page" in bot.last_reply().lower() and "99" in bot.last_reply()


async def test_a_page_past_the_end_says_how_many_pages_in_words(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2")
    await bot.command("timeline INC-1 --page 2")
    assert "The timeline of INC-1 has 1 page; there is no page 2." in bot.last_reply()


async def test_a_note_of_3000_characters_is_shown_in_full_in_the_thread_and_timeline(
    bot: Bot,
) -> None:
    await bot.command("declare Payments failing sev2")
    words = " ".join(f"w{n:04d}" for n in range(500))[:3000]
    await bot.command(f"note {words}")
    assert [c for c in bot.slack.calls if c.status != 200] == []
    assert any(words in _words(text) for text in bot.thread_texts(1)), "the reply has it all"
    await bot.command("timeline")
    assert words in _words(shown_text(bot.slack.ephemerals[-1]))


# ---------------------------------------------------------------------- checklists


SERVICE = "payment-service"


@pytest.fixture
async def diag_bot(dsn: str, slack: FakeSlack, tmp_path: Path) -> AsyncIterator[Bot]:
    async with FakeActuator(services=[SERVICE]) as actuator, FakeKubernetes() as kube:
        kube.add_deployment("waqiti", SERVICE, "payments:1.4.2", replicas=3)
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
        async with running_bot(
            dsn, slack, service_url_template=actuator.url_template, kubeconfig=kubeconfig
        ) as bot:
            yield bot


def _steps() -> list[str]:
    text = (BUNDLED_PLAYBOOKS / "capability-ops.yml").read_text()
    steps: list[str] = yaml.safe_load(text)["steps"]
    return steps


async def _tick(bot: Bot, group: dict[str, Any], options: list[dict[str, Any]]) -> None:
    dana = bot.user("dana")
    tick = bot.requests.block_action(
        action_id=group["elements"][0]["action_id"], value="", label="",
        block_id=group["block_id"], user_id=dana, user_name="dana", channel_id=bot.channel,
        channel_name="waqiti-incidents",
        response_url=bot.slack.new_response_url(channel=bot.channel, user=dana),
        selected_options=options,
    )  # fmt: skip
    await bot.post_signed(tick)


async def test_every_checklist_step_is_shown_in_full_and_each_can_be_ticked(
    diag_bot: Bot,
) -> None:
    steps = _steps()
    assert len(steps) > 10 and any(len(s) > 75 for s in steps)
    await diag_bot.command("declare Stripe onboarding blockers sev2")
    await diag_bot.post_signed(diag_bot.command_request("capability-ops", command="/diagnose"))
    assert [c for c in diag_bot.slack.calls if c.status != 200] == []
    report = diag_bot.thread(1)[-1]
    shown = shown_text(report)
    for step in steps:
        assert step in shown, f"step not shown in full: {step}"
    groups = [
        b
        for b in report.blocks
        if b["type"] == "actions"
        and any(e.get("action_id") == ChecklistAction.TICK for e in b["elements"])
    ]
    options = [o for g in groups for o in g["elements"][0]["options"]]
    assert len(options) == len(steps), "one box per step"
    assert len(groups) == 2
    # Tick step 11 (in the second group), then step 1 (in the first): both stay ticked.
    await _tick(diag_bot, groups[1], [groups[1]["elements"][0]["options"][0]])
    await _tick(diag_bot, groups[0], [groups[0]["elements"][0]["options"][0]])
    rows = await diag_bot.fetch(
        "SELECT text FROM timeline WHERE kind = 'checklist_ticked' ORDER BY seq"
    )
    assert len(rows) == 2
    assert steps[10] in rows[0]["text"]
    assert steps[0] in rows[1]["text"] and "unticked" not in rows[1]["text"]
    assert "2/14 done" in rows[1]["text"]


async def test_a_report_without_an_incident_lists_every_step(diag_bot: Bot) -> None:
    await diag_bot.post_signed(diag_bot.command_request("capability-ops", command="/diagnose"))
    shown = shown_text(diag_bot.slack.ephemerals[-1])
    for step in _steps():
        assert step in shown


# ---------------------------------------------------------------------- forms


async def test_post_update_form_refuses_over_long_input_in_the_form(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    incident = await bot.services.incidents.get(1)
    view = {**status_modal(incident), "id": "V1"}
    inputs = [b["element"] for b in view["blocks"] if b["type"] == "input"]
    limits = [e.get("max_length") for e in inputs]
    assert all(limits) and sum(limits) + 40 <= 3000, "what the form takes always fits"
    dana = bot.user("dana")
    submit = bot.requests.view_submission(
        view, {"status": "s" * 1000, "impact": "i" * 1000, "next": "n" * 1000},
        user_id=dana, user_name="dana",
    )  # fmt: skip
    status, body = await bot.post_signed(submit)
    assert status == 200
    answer = json.loads(body)
    assert answer["response_action"] == "errors", "the form stays open with what was typed"
    assert answer["errors"]
    assert await bot.fetch("SELECT * FROM timeline WHERE kind = 'status_update'") == []
    assert bot.slack.ephemerals == [] or "too long" not in bot.slack.ephemerals[-1].text


# ---------------------------------------------------------------------- refused replies


async def test_a_reply_slack_refuses_is_logged_and_the_user_gets_a_short_fallback(
    bot: Bot,
) -> None:
    await bot.command("declare Payments failing sev2")
    bot.slack.fail("response_url", status=400, error="invalid_blocks")
    with structlog.testing.capture_logs() as logs:
        await bot.command("timeline")
    refused = [e for e in logs if e["event"] == "reply.refused"]
    assert refused and refused[0]["error"] == "invalid_blocks"
    reply = bot.slack.ephemerals[-1]
    assert reply.blocks == [] and "could not be shown" in reply.text
    assert len(reply.text) < 300


# ---------------------------------------------------------------------- fit, the one step


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


@given(
    st.lists(
        st.text(alphabet=st.sampled_from("ab <@U1>\n"), min_size=1, max_size=9000).filter(
            lambda t: t.strip()
        ),
        min_size=1,
        max_size=4,
    )
)
@settings(max_examples=60, deadline=None)
def test_any_section_text_is_split_into_sections_slack_takes_and_none_is_lost(
    texts: list[str],
) -> None:
    message = Message(text="t", blocks=[_section(t) for t in texts])
    assert message_problems(message.blocks) == []
    shown = "".join(b["text"]["text"] for b in message.blocks)
    assert "".join("".join(texts).split()) == "".join(shown.split())
    assert Message(text=message.text, blocks=message.blocks) == message, "fit is idempotent"


def test_everything_over_a_limit_is_split_or_visibly_shortened_and_slack_takes_it() -> None:
    button = {"type": "button", "action_id": "b", "text": {"type": "plain_text", "text": "x"}}
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "H" * 200}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"f{i}"} for i in range(23)]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 12},
        {"type": "actions", "block_id": "row", "elements": [
            {**button, "action_id": f"b{i}", "text": {"type": "plain_text", "text": "L" * 90}}
            for i in range(30)]},
        {"type": "actions", "block_id": "boxes", "elements": [
            {"type": "checkboxes", "action_id": "tick", "options": [
                {"text": {"type": "plain_text", "text": f"step {i} " + "s" * 80},
                 "value": str(i)} for i in range(23)]}]},
        *[_section("s")] * 60,
    ]  # fmt: skip
    with structlog.testing.capture_logs() as logs:
        message = Message(text="x" * 50_000, blocks=blocks)
    assert message_problems(message.blocks) == []
    assert len(message.text) == 40_000 and message.text.endswith("…")
    assert "H" * 200 in shown_text(message), "a long header is also shown in full"
    fields = [f["text"] for b in message.blocks for f in b.get("fields", [])]
    assert fields == [f"f{i}" for i in range(23)]
    ids = [b.get("block_id") for b in message.blocks if b["type"] == "actions"]
    assert ids == ["row", "row:25", "boxes:0", "boxes:10", "boxes:20"]
    assert len(message.blocks) == 50 and "did not fit" in shown_text(message)
    shortened = {e["what"] for e in logs if e["event"] == "blocks.shortened"}
    assert shortened == {"text", "header", "button text", "option"}
    assert any(e["event"] == "blocks.too_many" for e in logs)


def test_modals_fit_their_title_submit_and_close() -> None:
    view = fit_modal({
        "type": "modal", "title": {"type": "plain_text", "text": "Update INC-123456789012345"},
        "submit": {"type": "plain_text", "text": "Post this update right now"},
        "close": {"type": "plain_text", "text": "Cancel"}, "blocks": [_section("s")],
    })  # fmt: skip
    assert view_problems(view) == []
    assert view["title"]["text"].endswith("…") and len(view["title"]["text"]) == 24


def _entry(seq: int, text: str) -> TimelineEntry:
    return TimelineEntry(
        id=seq, incident_id=1, seq=seq, kind="message", actor="U1", text=text, data={},
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC), content_hash="", prev_hash="", hash="",
    )  # fmt: skip


def test_the_digest_shows_its_newest_lines_all_even_when_they_pass_one_section() -> None:
    entries = [_entry(n, f"line-{n:02d} " + "m" * 200) for n in range(1, 21)]
    message = thread_digest(entries)
    assert message_problems(message.blocks) == []
    shown = shown_text(message)
    assert "5 earlier" in shown
    assert re.findall(r"line-(\d\d)", shown) == [f"{n:02d}" for n in range(6, 21)]
