"""The guard wired in: card numbers and secrets never enter the record, whichever way they come.

One test per surface (commands, forms of text, thread edits, PagerDuty in and out, alert groups,
the timeline's own backstop, logs, metrics), through the real app where there is one. The end to
end scenario (every column of PostgreSQL, the thread, Kafka, the post-mortem) is
`tests/integrations/test_guard_scenario.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.core.guard import FindingKind
from bot.core.logs import redact_text
from bot.core.metrics import REDACTIONS, REGISTRY
from bot.domain import timeline
from bot.store import alerts as alerts_sql
from commands import blocks
from sandbox.actuator import FakeActuator
from sandbox.kubernetes import FakeKubernetes
from sandbox.pagerduty import FakePagerDuty
from sandbox.slack_api import FakeSlack
from tests.conftest import PAGERDUTY_WEBHOOK_SECRET, Bot, running_bot, shown_text
from tests.test_scribe import edit, say

CARD = "5555-5555-5555-4444"  # Mastercard's test number, in dashed groups
DIGITS = "5555555555554444"
TOKEN = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"


def clean(text: str) -> bool:
    squeezed = text.replace(" ", "").replace("-", "")
    return DIGITS not in squeezed and TOKEN not in text


async def stored_text(bot: Bot) -> str:
    """Everything the incident tables and the timeline hold, as one text."""
    rows = await bot.fetch(
        "SELECT (SELECT coalesce(string_agg(i::text, ' '), '') FROM incidents i)"
        " || (SELECT coalesce(string_agg(t::text, ' '), '') FROM timeline t)"
        " || (SELECT coalesce(string_agg(o::text, ' '), '') FROM outbox o) AS everything"
    )
    return str(rows[0]["everything"])


async def redactions(bot: Bot) -> list[Any]:
    return await bot.fetch("SELECT text, data FROM timeline WHERE kind = 'redacted' ORDER BY seq")


def counted(kind: FindingKind) -> float:
    return REGISTRY.get_sample_value("icbot_redactions_total", {"kind": kind.value}) or 0.0


async def test_a_card_number_in_a_declared_title_is_stored_redacted_and_the_declarer_told(
    bot: Bot,
) -> None:
    await bot.command(f"declare Customer card {CARD} declined sev2", user="dana")
    [row] = await bot.fetch("SELECT title FROM incidents")
    assert row["title"] == "Customer card [redacted: card number ending 4444] declined"
    assert clean(await stored_text(bot))
    reply = bot.last_reply("dana")
    assert "contained a card number; it was not recorded" in reply
    assert DIGITS not in reply.replace("-", "")
    assert all(clean(shown_text(m)) for m in bot.thread(1))
    assert "Card data" in shown_text(bot.card(1))


async def test_status_note_action_and_resolve_text_are_redacted_before_they_are_stored(
    bot: Bot,
) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    before = counted(FindingKind.GITHUB_TOKEN)
    await bot.command(f"status Identified: deploy used {TOKEN}", user="dana")
    await bot.command(f"note card {CARD} in the logs", user="dana")
    await bot.command("action rotate password=hunter22 @dana", user="dana")
    await bot.command(f"resolve rotated {TOKEN}", user="dana")
    assert clean(await stored_text(bot))
    assert "password=hunter22" not in await stored_text(bot)
    [row] = await bot.fetch("SELECT last_status, summary FROM incidents")
    assert row["last_status"] == "Identified: deploy used [redacted: GitHub token]"
    assert row["summary"] == "rotated [redacted: GitHub token]"
    dana = bot.slack.user_id("dana")
    assert [r["text"] for r in await redactions(bot)] == [
        f"GitHub token redacted from <@{dana}>'s message.",
        f"card number redacted from <@{dana}>'s message.",
        f"password redacted from <@{dana}>'s message.",
        f"GitHub token redacted from <@{dana}>'s message.",
    ]
    assert counted(FindingKind.GITHUB_TOKEN) == before + 2
    assert sum("it was not recorded" in r for r in bot.replies_to("dana")) == 4
    assert all(clean(shown_text(m)) for m in bot.thread(1))


async def test_an_edit_that_adds_a_card_number_is_redacted_and_its_author_told_in_the_thread(
    bot: Bot,
) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    msg = await say(bot, "erin", "customer card declined")
    assert bot.replies_to("erin") == []
    await edit(bot, msg, f"customer card {CARD} declined")
    [edited] = await bot.fetch("SELECT text, data FROM timeline WHERE kind = 'message_edited'")
    assert clean(edited["text"]) and clean(str(edited["data"]))
    [told] = [e for e in bot.slack.ephemerals if e.user == bot.slack.user_id("erin")]
    assert "Please delete it" in told.text and told.thread_ts == bot.card(1).ts
    await edit(bot, msg, f"customer card {CARD} declined")  # an unfurl: nothing new
    assert len(await bot.fetch("SELECT 1 FROM timeline WHERE kind = 'message_edited'")) == 1


async def test_a_pinned_message_names_its_author_not_the_pinner_and_the_author_is_told(
    bot: Bot,
) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    msg = await say(bot, "erin", f"token {TOKEN}", thread=None)  # in the war room: not captured
    assert await redactions(bot) == []
    await bot.post_signed(
        bot.requests.event(
            {
                "type": "reaction_added", "user": bot.slack.user_id("dana"),
                "reaction": "pushpin", "item_user": msg.user, "event_ts": msg.ts,
                "item": {"type": "message", "channel": msg.channel, "ts": msg.ts},
            }
        )
    )  # fmt: skip
    erin = bot.slack.user_id("erin")
    assert [r["data"]["author"] for r in await redactions(bot)] == [erin]
    assert clean(await stored_text(bot))
    [told] = bot.replies_to("erin")
    assert "contained a GitHub token; it was not recorded. Please delete it" in told
    assert not any("GitHub token" in r for r in bot.replies_to("dana"))


async def test_the_post_update_form_is_redacted_and_its_author_told(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    incident = await bot.services.incidents.get(1)
    view = {**blocks.status_modal(incident), "id": "V1"}
    dana = bot.user("dana")
    submit = bot.requests.view_submission(
        view,
        {"status": "Mitigating: refunds", "impact": f"card {CARD} charged twice", "next": None},
        user_id=dana,
        user_name="dana",
    )
    status, _ = await bot.post_signed(submit)
    assert status == 200
    [row] = await bot.fetch("SELECT data FROM timeline WHERE kind = 'status_update'")
    assert "[redacted: card number ending 4444] charged twice" in row["data"]["text"]
    assert clean(await stored_text(bot))
    assert "contained a card number; it was not recorded" in bot.last_reply("dana")


async def test_pagerduty_titles_and_notes_are_redacted_both_ways(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    pagerduty.subscribe(f"{pd_bot.base}/pagerduty/webhook", PAGERDUTY_WEBHOOK_SECRET)
    alert = pagerduty.trigger_alert(f"Card {CARD} refused by issuer", severity="critical")
    await pagerduty.drain_webhooks()
    await pd_bot.settle()
    pagerduty.add_note(str(alert["id"]), f"retry with {TOKEN}", by="oncall@waqiti.example")
    await pagerduty.drain_webhooks()
    await pd_bot.settle()
    await pd_bot.command(f"note INC-1 card {CARD} again")
    [row] = await pd_bot.fetch("SELECT title FROM incidents")
    assert row["title"] == "Card [redacted: card number ending 4444] refused by issuer"
    assert clean(await stored_text(pd_bot))
    notes = [n["content"] for notes in pagerduty.notes.values() for n in notes]
    ours = [n for n in notes if n.startswith("Note (Slack user")]  # not the one made there
    assert ours and all(clean(n) for n in ours)  # what the bot mirrors back is redacted
    assert len(await redactions(pd_bot)) == 3


async def test_the_timeline_backstop_redacts_nested_data_whatever_the_caller_passed(
    bot: Bot,
) -> None:
    await bot.command("declare Payments failing sev2", user="dana")
    async with bot.services.pool.acquire() as conn, conn.transaction():
        entry = await timeline.record(
            conn, incident_id=1, kind=timeline.Kind.DIAGNOSIS, actor="icbot",
            occurred_at=datetime.now(UTC), text="log_search found 2 lines",
            data={"findings": [{"check": "kubernetes.log_search",
                                "lines": [f"charge card={DIGITS} failed", "ok"]},
                               {"check": "actuator.env", "value": f"AKIAIOSFODNN7EXAMPLE {TOKEN}"}]},
        )  # fmt: skip
    assert clean(str(entry.data)) and "AKIAIOSFODNN7EXAMPLE" not in str(entry.data)
    lines = entry.data["findings"][0]["lines"]
    assert lines == ["charge card=[redacted: card number ending 4444] failed", "ok"]
    [key] = await redactions(bot)
    assert key["data"]["entry"] == entry.seq and key["data"]["card"] is True
    assert key["text"] == (
        "card number, AWS access key id and GitHub token redacted from icbot's message."
    )
    verified = await bot.services.incidents.verify(1)
    assert verified.ok, verified.problems


async def test_alert_group_summaries_and_labels_are_stored_redacted(bot: Bot) -> None:
    now = datetime.now(UTC)
    row = alerts_sql.GroupRow(
        id=None, service="checkout", fingerprint="f1", window_start=now, incident_id=None,
        alert_name=f"CardDeclined {DIGITS}", source="alertmanager", severity="critical",
        summary=f"card {CARD} declined", labels={"pan": DIGITS, "token": TOKEN},
        status="firing", firing=1, resolved=0, first_at=now, last_firing_at=now,
        resolved_at=None,
    )  # fmt: skip
    async with bot.services.pool.acquire() as conn:
        await alerts_sql.insert_groups(conn, [row])
    [stored] = await bot.fetch("SELECT alert_name, summary, labels::text AS l FROM alert_groups")
    assert all(clean(str(v)) for v in stored.values())


def test_debug_logs_use_the_guards_rules() -> None:
    line = redact_text(f"charging {CARD} with {TOKEN}")
    assert clean(line)
    assert "[redacted: card number ending 4444]" in line and "[redacted: GitHub token]" in line


def test_the_redaction_counter_is_labelled_by_kind_only() -> None:
    REDACTIONS.labels(kind=FindingKind.JWT.value).inc(0)
    assert REGISTRY.get_sample_value("icbot_redactions_total", {"kind": "jwt"}) is not None


async def test_check_outputs_are_redacted_before_they_are_stored_or_shown(
    dsn: str, slack: FakeSlack, tmp_path: Path
) -> None:
    async with FakeActuator(services=["payment-service"]) as actuator, FakeKubernetes() as kube:
        kube.add_deployment("waqiti", "payment-service", "payments:1.4.2", replicas=1)
        for pod in kube.pods("waqiti", "payment-service"):
            kube.append_log(
                "waqiti", pod["metadata"]["name"], f"SAGA_FAILED charge {CARD} auth {TOKEN}"
            )
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
        async with running_bot(
            dsn, slack, service_url_template=actuator.url_template, kubeconfig=kubeconfig
        ) as bot:
            await bot.post_signed(bot.command_request("saga", command="/diagnose"))
            alone = bot.slack.ephemerals[-1]  # no incident: shown only to the caller
            assert "SAGA_FAILED" in shown_text(alone) and clean(shown_text(alone))
            assert "[redacted: card number ending 4444]" in shown_text(alone)
            await bot.command("declare Payments failing sev2")
            await bot.post_signed(bot.command_request("saga", command="/diagnose"))
            assert clean(await stored_text(bot))
            assert all(clean(shown_text(m)) for m in bot.thread(1))
            assert all(clean(e.text) and clean(str(e.blocks)) for e in bot.slack.ephemerals)


async def test_generated_card_numbers_of_every_network_and_grouping_never_enter_the_record(
    bot: Bot,
) -> None:
    """Every network (tests/test_guard.py NETWORK_SAMPLES) in each way people group digits, as
    thread messages and as notes: none is stored, posted or told back in full (a seeded draw,
    so a failure names the number)."""
    import random

    from tests.test_guard import NETWORK_SAMPLES, complete_luhn

    draw = random.Random(19)
    cards: list[tuple[str, str]] = []  # (digits, as written)
    for network in sorted(NETWORK_SAMPLES):
        for prefix, length in NETWORK_SAMPLES[network]:
            body = "".join(draw.choices("0123456789", k=length - 1 - len(prefix)))
            digits = complete_luhn(prefix + body)
            sep = draw.choice([" ", "-", ""])
            groups = [digits[i : i + 4] for i in range(0, len(digits), 4)]
            cards.append((digits, sep.join(groups) if sep else digits))
    await bot.command("declare Card declines sev2", user="dana")
    for n, (_, written) in enumerate(cards):
        if n % 2:
            await say(bot, "erin", f"customer {n} card {written} declined twice")
        else:
            await bot.command(f"note card {written} from ticket {n}", user="erin")
    await bot.settle()
    seen = [
        await stored_text(bot),
        # what the bot posted (people's own messages stay in Slack until they delete them)
        *(shown_text(m) for m in bot.thread(1) if m.user == bot.slack.bot_user_id),
        *(e.text for e in bot.slack.ephemerals),
        *(str(b) for e in bot.slack.ephemerals for b in e.blocks),
    ]
    squeezed = " ".join(t.replace(" ", "").replace("-", "") for t in seen)
    leaked = [written for digits, written in cards if digits in squeezed]
    assert leaked == []
    assert len(await redactions(bot)) == len(cards)
