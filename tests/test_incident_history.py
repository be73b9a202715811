"""`/ic list --all` and `/ic timeline` of resolved incidents, through the real app.

The clock is the bot's `FakeClock`: moved forward between commands, so the figures are exact to
the minute (`human_duration` drops the milliseconds the commands themselves take).
"""

from __future__ import annotations

import json
import time
from typing import Any

from sandbox.pagerduty import FakePagerDuty
from sandbox.slack_api import FakeSlack
from tests.conftest import PAGERDUTY_WEBHOOK_SECRET, Bot, pagerduty_settings, running_bot


def _texts(blocks: list[dict[str, Any]]) -> str:
    """Every text a user sees in the blocks (section texts and fields, contexts, headers)."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block.get("text"), dict):
            out.append(block["text"]["text"])
        out += [f["text"] for f in block.get("fields", [])]
        out += [e["text"] for e in block.get("elements", []) if isinstance(e.get("text"), str)]
    return "\n".join(out)


async def _sev2_raised_to_sev1_with_one_late_update(bot: Bot) -> None:
    """INC-1: SEV2, acknowledged after 10m, SEV1 at 30m, an update 45m after the first (late
    for the SEV2 cadence it began under: 30m + 10%), resolved at 1h."""
    await bot.command("declare Payments failing sev2", user="dana")
    bot.clock.advance(minutes=10)
    await bot.command("status Investigating the gateway", user="dana")
    bot.clock.advance(minutes=20)
    await bot.command("sev sev1", user="dana")
    bot.clock.advance(minutes=25)
    await bot.command("status Mitigating: rolled back payment-service", user="dana")
    bot.clock.advance(minutes=5)
    await bot.command("resolve bad deploy", user="dana")


async def test_list_all_reports_mtta_mttr_and_update_cadence_per_severity(bot: Bot) -> None:
    await _sev2_raised_to_sev1_with_one_late_update(bot)
    await bot.command("declare Dashboard glitch sev4", user="erin")
    bot.clock.advance(hours=2)
    status, _ = await bot.command("list --all")
    assert status == 200
    reply = bot.slack.ephemerals[-1]
    assert len(reply.blocks) <= 50
    shown = _texts(reply.blocks)
    assert "Incident history: the last 30 days" in shown
    assert "*2 incidents* declared since" in shown and "1 still open" in shown
    sev1, sev4 = (b for b in reply.blocks if b["type"] == "section" and "fields" in b)
    assert "SEV1 · Critical* — 1 incident · updates every 15m" in sev1["text"]["text"]
    assert [f["text"] for f in sev1["fields"]] == [
        "*MTTA* (declared → acknowledged)\nmedian 10m · mean 10m",
        "*MTTR* (declared → resolved)\nmedian 1h 00m · mean 1h 00m\n1 resolved",
        "*Status updates on time*\n2 of 3 gaps (67%)",
        "*Longest gap without an update*\n45m in INC-1 (SEV2, every 30m)",
    ]
    assert "SEV4 · Low* — 1 incident, 1 open · no update cadence" in sev4["text"]["text"]
    assert [f["text"] for f in sev4["fields"]] == [
        "*MTTA* (declared → acknowledged)\n—\n1 never acknowledged",
        "*MTTR* (declared → resolved)\n—\nnone resolved yet",
        "*Status updates on time*\nno cadence",
        "*Longest gap without an update*\n2h 00m in INC-2 (SEV4, no cadence)",
    ]
    rows = [line for line in shown.splitlines() if line.count("*INC-")]
    assert [row.split("*")[1] for row in rows] == ["INC-2", "INC-1"]  # newest first
    assert "investigating, open for 2h 00m" in rows[0]
    assert "resolved after 1h 00m · updates 2/3 on time" in rows[1]
    assert "INC-1" in reply.text and "MTTA" in reply.text  # the notification text has it too


async def test_timeline_of_a_resolved_incident_shows_its_duration_and_missed_cadence(
    bot: Bot,
) -> None:
    await _sev2_raised_to_sev1_with_one_late_update(bot)
    await bot.command("declare Another one sev3")  # so INC-1 must be named
    await bot.command("timeline INC-1")
    listing = bot.last_reply()
    assert "Timeline of INC-1: Payments failing* (5 entries)" in listing
    assert "*Duration* 1h 00m (resolved" in listing
    assert "*Acknowledged* after 10m" in listing
    assert "Missed its status cadence once*: 2 of 3 gaps between updates on time" in listing
    assert "longest 45m (SEV2, every 30m)" in listing
    assert listing.index("declared") < listing.index("resolved INC-1")


async def test_list_all_covers_the_window_while_plain_list_keeps_its_seven_days(
    bot: Bot,
) -> None:
    await bot.command("declare Payments failing sev2")
    bot.clock.advance(minutes=20)
    await bot.command("resolve")
    bot.clock.advance(days=10)
    await bot.command("list")
    assert bot.last_reply() == "No open incidents, and none resolved in the last 7 days."
    await bot.command("list --all")
    assert "*INC-1* [SEV2] Payments failing" in bot.last_reply()
    await bot.command("list --all --days 9")
    assert bot.last_reply() == "No incidents were declared in the last 9 days."


async def test_bad_list_arguments_get_the_usage_line_and_no_listing(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2")
    before = len(bot.slack.ephemerals)
    status, body = await bot.command("list --all --days 400")
    assert status == 200
    assert "from 1 to 365" in body and "/ic list [--all] [--days N]" in json.loads(body)["text"]
    assert len(bot.slack.ephemerals) == before  # answered in the ack; nothing listed


async def test_mtta_counts_to_the_acknowledgement_at_pagerduty_s_time_not_the_webhook_s(
    dsn: str, slack: FakeSlack
) -> None:
    pagerduty_minutes = [0.0]  # PagerDuty's clock runs ahead of real time by this much

    def pagerduty_clock() -> float:
        return time.time() + pagerduty_minutes[0] * 60

    async with (
        FakePagerDuty(clock=pagerduty_clock) as pagerduty,
        running_bot(dsn, slack, **pagerduty_settings(pagerduty)) as bot,
    ):
        pagerduty.subscribe(f"{bot.base}/pagerduty/webhook", PAGERDUTY_WEBHOOK_SECRET)
        await bot.command("declare Payments failing sev2")
        await pagerduty.drain_webhooks()
        await bot.settle()
        [pd_incident] = pagerduty.incidents.values()
        pagerduty_minutes[0] = 4  # acknowledged in PagerDuty 4 minutes after declaring…
        bot.clock.advance(minutes=9)  # …and the webhook reaches the bot 9 minutes after
        pagerduty.update_incident(
            str(pd_incident["id"]), by="oncall@waqiti.example", status="acknowledged"
        )
        await pagerduty.drain_webhooks()
        await bot.settle()
        await bot.command("list --all")
        [sev2] = (b for b in bot.slack.ephemerals[-1].blocks if "fields" in b)
        assert sev2["fields"][0]["text"] == (
            "*MTTA* (declared → acknowledged)\nmedian 4m · mean 4m"
        )
