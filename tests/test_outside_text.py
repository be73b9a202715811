"""Outside text is inert when the bot posts it: no crowd is pinged, no link hides its target.

Through the real app: what people type, what PagerDuty, alerts, Kubernetes and the actuator
say, re-posted by the bot, never carries `<!channel>`, `<!here>`, `<!everyone>`,
`<!subteam^…>` or a masked link; the timeline keeps what was typed.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.models import Incident, Status, TimelineEntry
from bot.core.text import inert
from bot.domain import postmortem
from bot.domain.timeline import Kind
from commands import blocks
from sandbox.actuator import FakeActuator
from sandbox.kubernetes import FakeKubernetes
from sandbox.pagerduty import FakePagerDuty
from sandbox.slack_api import FakeSlack
from tests.conftest import PAGERDUTY_WEBHOOK_SECRET, Bot, running_bot
from tests.test_scribe import say

EVIL_TARGET = "https://evil.example/x"
EVIL = (
    "<!channel> <!here> <!everyone|everyone> <!subteam^S0EVIL|@oncall>"
    f" <{EVIL_TARGET}|https://bank.example/login>"
)
# What Slack would act on: a broadcast, or a link whose label is not its target.
BROADCAST = re.compile(r"<!(?:channel|here|everyone|subteam)[^<>]*>")
MASKED_EVIL = re.compile(r"<https://evil\.example/x\|")


def sent(fake: FakeSlack) -> str:
    """Everything the bot sent to Slack (Web API calls and response_url posts) as one text."""
    return "\n".join(json.dumps(call.args, ensure_ascii=False) for call in fake.calls)


def assert_inert(fake: FakeSlack) -> None:
    out = sent(fake)
    assert not BROADCAST.findall(out), BROADCAST.findall(out)
    assert not MASKED_EVIL.search(out)


# -- the function ------------------------------------------------------------------------------

LINKISH = st.sampled_from(
    ["<", ">", "|", "!", "@", "#", "^", "channel", "here", "everyone", "subteam", "U0ABC",
     "https://a.example", "mailto:x@y", " ", "&lt;", "&gt;", "\n", "C0DEF", "date",
     "<!channel>", "<!here|here>", "<!subteam^S0X|@sre>", "<https://a.example|b>", "<@U0ABC|x>",
     "<#C0DEF>", "<!date^1^{date}|x>"]
)  # fmt: skip
TOKENS = re.compile(r"<([^<>]*)>")


def _dangerous(text: str) -> list[str]:
    """Control sequences in `text` that broadcast or whose label differs from the target."""
    found = []
    for body in TOKENS.findall(text):
        if body.startswith("!"):
            found.append(body)
        elif "|" in body and not re.fullmatch(r"[@#][UWC][A-Z0-9]{2,20}\|[^|]*", body):
            target, _, label = body.partition("|")
            if label != target:
                found.append(body)
    return found


@given(st.one_of(st.text(), st.lists(LINKISH, max_size=30).map("".join)))
@settings(max_examples=500, deadline=None)
def test_inert_text_has_no_broadcast_and_no_masked_link(text: str) -> None:
    out = inert(text)
    assert _dangerous(out) == []
    assert inert(out) == out  # idempotent: rendering twice changes nothing


@given(st.one_of(st.text(), st.lists(LINKISH, max_size=30).map("".join)))
@settings(max_examples=200, deadline=None)
def test_rendered_outside_text_has_no_broadcast_and_no_masked_link(text: str) -> None:
    """Whatever a title, a note or a resolution says, the bot's messages carry no broadcast."""
    incident = _incident(title=text, last_status=text, summary=text)
    note = _entry(Kind.NOTE, f"Note from <@U0ALICE>: {text}")
    for message in (
        blocks.incident_card(incident, _policy(), now=incident.declared_at),
        blocks.timeline_reply(note),
        blocks.thread_digest([note]),
        blocks.timeline_listing(incident, [note]),
        blocks.incident_list([incident], now=incident.declared_at),
    ):
        rendered = message.text + json.dumps(message.blocks, ensure_ascii=False)
        assert not BROADCAST.search(rendered)
        for body in TOKENS.findall(message.text) + TOKENS.findall(" ".join(_texts(message.blocks))):
            assert not body.startswith("!"), body
            if "|" in body and not body.startswith(("@", "#")):
                target, _, label = body.partition("|")
                assert label == target, body


def test_broadcasts_become_visible_words_and_masked_links_show_their_target() -> None:
    assert inert("Payments down <!channel> now") == "Payments down @channel now"
    assert inert("<!here|here> <!everyone>") == "@here @everyone"
    assert inert("<!subteam^S0SRE|@sre> and <!subteam^S0DBA>") == "@sre and @S0DBA"
    assert inert(f"<{EVIL_TARGET}|https://bank.example/login>") == (
        f"https://bank.example/login (<{EVIL_TARGET}>)"
    )
    assert inert("see <https://a.example|https://a.example>") == "see <https://a.example>"
    assert inert("ask <@U0DANA|dana> in <#C0WAR|war-room>") == (
        "ask <@U0DANA|dana> in <#C0WAR|war-room>"
    )
    assert inert("a < b > c") == "a &lt; b &gt; c"  # from PagerDuty or logs: not Slack-escaped
    assert inert("<<!channel>>") == "&lt;@channel&gt;"


def _policy() -> Any:
    from bot.domain.policy import load_severity_policy

    return load_severity_policy(Path(__file__).parent.parent / "playbooks")


def _incident(**fields: Any) -> Incident:
    from datetime import UTC, datetime

    base: dict[str, Any] = {
        "id": 1, "title": "t", "severity": "sev2", "status": Status.MITIGATING,
        "declared_by": "U0ALICE", "channel_id": "C1", "thread_ts": "1.1",
        "declared_at": datetime(2026, 1, 1, tzinfo=UTC), "acknowledged_at": None,
        "mitigated_at": None, "resolved_at": None, "summary": None, "last_status": None,
        "last_status_at": None, "card_version": 1,
    }  # fmt: skip
    base.update(fields)
    return Incident(**base)


def _entry(kind: str, text: str, data: dict[str, Any] | None = None) -> TimelineEntry:
    from datetime import UTC, datetime

    return TimelineEntry(
        id=1, incident_id=1, seq=1, kind=kind, actor="U0ALICE", text=text, data=data or {},
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC), content_hash="", prev_hash="", hash="",
    )  # fmt: skip


def _texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["text"]] if isinstance(node.get("text"), str) else []
        return own + [t for v in node.values() for t in _texts(v)]
    if isinstance(node, list):
        return [t for v in node for t in _texts(v)]
    return []


# -- through the real app ----------------------------------------------------------------------


async def test_typed_broadcasts_in_commands_are_posted_inert_and_kept_in_the_timeline(
    bot: Bot,
) -> None:
    await bot.command(f"declare Payments down {EVIL} sev2")
    await bot.command(f"status Mitigating {EVIL}")
    await bot.command(f"note {EVIL}")
    await bot.command(f"action fix it {EVIL}")
    await bot.command(f"resolve {EVIL}")
    await bot.command("timeline")
    await bot.command("list")
    await bot.command("list --all")
    assert_inert(bot.slack)
    card = json.dumps(bot.card(1).blocks)
    assert "@channel" in card and EVIL_TARGET in card  # shown, as words and the real target
    texts = [r["text"] for r in await bot.fetch("SELECT text FROM timeline ORDER BY seq")]
    assert sum(EVIL in t for t in texts) == 5  # the timeline keeps what was typed
    assert (await bot.fetch("SELECT title FROM incidents"))[0]["title"] == f"Payments down {EVIL}"


async def test_postmortem_preview_and_draft_show_outside_text_inert(bot: Bot) -> None:
    await bot.command(f"declare Payments down {EVIL} sev2")
    await bot.command(f"note Root cause: {EVIL}")
    await bot.command(f"action fix it {EVIL}")
    await bot.command(f"resolve {EVIL}")
    await bot.command("postmortem INC-1")
    assert_inert(bot.slack)
    [draft] = bot.posted_files(1)
    assert not BROADCAST.search(draft.text) and not MASKED_EVIL.search(draft.text)
    assert "@channel" in draft.text and EVIL_TARGET in draft.text


async def test_post_update_form_text_is_posted_inert(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    incident = await bot.services.incidents.get(1)
    view = {**blocks.status_modal(incident), "id": "V1"}
    dana = bot.user("dana")
    submit = bot.requests.view_submission(
        view, {"status": f"Mitigating {EVIL}", "impact": EVIL, "next": EVIL},
        user_id=dana, user_name="dana",
    )  # fmt: skip
    status, _ = await bot.post_signed(submit)
    assert status == 200
    assert (await bot.fetch("SELECT count(*) AS n FROM timeline WHERE kind = 'status_update'"))[0][
        "n"
    ] == 1
    assert_inert(bot.slack)
    assert any("Mitigating @channel" in t for t in bot.thread_texts(1))


async def test_captured_messages_are_reposted_inert_in_the_digest_and_the_briefing(
    bot: Bot,
) -> None:
    await bot.command("declare Payments failing sev2")
    await say(bot, "erin", f"look {EVIL}")
    dana = bot.user("dana")
    await bot.command(f"handover <@{dana}|dana>")
    assert any("look" in json.dumps(d.blocks) for d in bot.digests(1))
    assert any("Briefing for" in json.dumps(m.blocks) for m in bot.thread(1))
    assert_inert(bot.slack)


async def test_a_status_prompt_still_broadcasts_when_nobody_is_commander(bot: Bot) -> None:
    """The bot's own `<!channel>` is its words, not outside text: it still works."""
    await bot.command(f"declare Payments down {EVIL} sev2")
    await bot.command("assign <@U0NOBODY|x> scribe")
    await bot.fetch("DELETE FROM incident_roles WHERE role = 'incident commander'")
    bot.clock.advance(minutes=31)
    await bot.tick()
    prompt = bot.thread(1)[-1]
    assert "<!channel>" in json.dumps(prompt.blocks)
    assert "<!here>" not in json.dumps(prompt.blocks)  # the title inside it is inert
    assert "<!channel>" in prompt.text


async def test_pagerduty_titles_and_notes_are_posted_inert(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    pagerduty.subscribe(f"{pd_bot.base}/pagerduty/webhook", PAGERDUTY_WEBHOOK_SECRET)
    pagerduty.trigger_alert(f"Checkout down {EVIL}", severity="critical")
    await pagerduty.drain_webhooks()
    await pd_bot.settle()
    [incident] = pagerduty.incidents.values()
    pagerduty.add_note(str(incident["id"]), f"failover {EVIL}", by="oncall@waqiti.example")
    await pagerduty.drain_webhooks()
    await pd_bot.settle()
    assert any("failover" in t for t in pd_bot.thread_texts(1))
    assert_inert(pd_bot.slack)


# -- diagnosis: actuator values and Kubernetes log lines ---------------------------------------

SERVICE = "unified-alerting-service"


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[tuple[FakeActuator, FakeKubernetes, Path]]:
    async with FakeActuator(services=[SERVICE]) as actuator, FakeKubernetes() as kube:
        image = "alerting:2.0.0"
        kube.set_image_behaviour(image, logs=[f"ERROR delivery failed {EVIL}"])
        kube.add_deployment("waqiti", SERVICE, image, replicas=1, history=["alerting:1.9.0"])
        actuator.set_breaker(SERVICE, "pagerduty", "OPEN")
        actuator.set_breaker(SERVICE, "slack", "CLOSED")
        yield actuator, kube, kube.write_kubeconfig(tmp_path / "kubeconfig")


async def test_kubernetes_log_lines_are_posted_inert(
    dsn: str, slack: FakeSlack, platform: tuple[FakeActuator, FakeKubernetes, Path]
) -> None:
    actuator, kube, kubeconfig = platform
    kube.tick()
    async with running_bot(
        dsn, slack, service_url_template=actuator.url_template, kubeconfig=kubeconfig
    ) as bot:
        await bot.command("declare Alerts not delivered sev2")
        await bot.post_signed(bot.command_request("alert-delivery", command="/diagnose"))
        await bot.settle()
        rows = await bot.fetch("SELECT data FROM timeline WHERE kind = 'diagnosis'")
        details = json.dumps(rows[0]["data"])
        assert "<!channel>" in details  # what the platform said is kept
        assert_inert(bot.slack)


def test_actuator_values_in_a_diagnosis_are_shown_inert() -> None:
    finding = {
        "title": "db health", "band": "critical", "value": 1.0, "unit": "down",
        "threshold": "≥ 1", "detail": f"payments db DOWN ({EVIL})",
    }  # fmt: skip
    data = {"playbook": "saga", "title": "Saga", "verdict": "bad", "worst": "critical",
            "findings": [finding], "elapsed_ms": 3}  # fmt: skip
    entry = _entry(Kind.DIAGNOSIS, f"Diagnosis saga: {EVIL}", data)
    message = blocks.timeline_reply(entry)
    rendered = message.text + json.dumps(message.blocks)
    assert not BROADCAST.search(rendered) and not MASKED_EVIL.search(rendered)
    assert EVIL_TARGET in rendered


def test_postmortem_markdown_shows_outside_text_inert() -> None:
    incident = _incident(title=f"Payments {EVIL}")
    entries = [
        _entry(Kind.DECLARED, "declared", {"title": f"Payments {EVIL}", "severity": "sev2"}),
        _entry(
            Kind.NOTE, f"Note from <@U0ALICE>: Root cause: {EVIL}", {"text": f"Root cause: {EVIL}"}
        ),
    ]
    draft = postmortem.render(incident, entries)
    assert not BROADCAST.search(draft) and not MASKED_EVIL.search(draft)


def test_an_approval_card_shows_kubernetes_values_inert() -> None:
    """The preview and outcome of a remediation quote Kubernetes (images, rollout messages)."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    pending = SimpleNamespace(
        id=1, requested_by="U0ALICE", label="Roll back", action="kubernetes.rollback",
        preview={"lines": [f"image payments:{EVIL}"]}, approvals=[], required=1,
        status="failed", decided_by="U0BOB", expires_at=datetime(2026, 1, 1, tzinfo=UTC),
        result={"summary": f"rollout stuck: {EVIL}", "verification": EVIL},
    )  # fmt: skip
    message = blocks.approval_card(_entry(Kind.APPROVAL_REQUESTED, "requested"), pending)
    rendered = message.text + json.dumps(message.blocks)
    assert not BROADCAST.search(rendered) and not MASKED_EVIL.search(rendered)
    assert "payments:@channel" in rendered
