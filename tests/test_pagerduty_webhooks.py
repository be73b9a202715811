"""PagerDuty V3 webhooks into the bot: signed, applied once, written to the thread."""

from __future__ import annotations

import json

from sandbox.pagerduty import FakePagerDuty, sign_webhook
from tests.conftest import PAGERDUTY_WEBHOOK_SECRET, Bot

ONCALL = "oncall@waqiti.example"


def _hook(bot: Bot) -> str:
    return f"{bot.base}/pagerduty/webhook"


async def _declared(bot: Bot, pagerduty: FakePagerDuty, *, subscribe: bool = True) -> str:
    """Declare in Slack; with `subscribe`, PagerDuty sends its webhooks to the bot."""
    if subscribe:
        pagerduty.subscribe(_hook(bot), PAGERDUTY_WEBHOOK_SECRET)
    await bot.command("declare Payments failing sev2")
    await pagerduty.drain_webhooks()
    await bot.settle()
    [incident] = pagerduty.incidents.values()
    return str(incident["id"])


async def _deliver(bot: Bot, pagerduty: FakePagerDuty) -> None:
    await pagerduty.drain_webhooks()
    await bot.settle()


async def test_events_the_bot_caused_itself_are_ignored(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    await _declared(pd_bot, pagerduty)
    assert [w.event_type for w in pagerduty.webhooks][:1] == ["incident.triggered"]
    rows = await pd_bot.fetch("SELECT id FROM incidents")
    assert len(rows) == 1  # the bot's own create did not declare a second incident
    assert not any("PagerDuty triggered" in m for m in pd_bot.thread_texts(1))


async def test_acknowledgement_in_pagerduty_reaches_the_thread_and_stamps_the_incident(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    pd_id = await _declared(pd_bot, pagerduty)
    pagerduty.update_incident(pd_id, by=ONCALL, status="acknowledged")
    await _deliver(pd_bot, pagerduty)
    assert any("Acknowledged in PagerDuty by" in m for m in pd_bot.thread_texts(1))
    row = (await pd_bot.fetch("SELECT acknowledged_at FROM incidents"))[0]
    assert row["acknowledged_at"] is not None
    assert "acknowledged" in str(pd_bot.card(1).blocks)


async def test_a_note_added_in_pagerduty_appears_in_the_timeline(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    pd_id = await _declared(pd_bot, pagerduty)
    pagerduty.add_note(pd_id, "DB failover started", by=ONCALL)
    await _deliver(pd_bot, pagerduty)
    assert any("DB failover started" in m for m in pd_bot.thread_texts(1))


async def test_resolving_in_pagerduty_resolves_the_slack_incident_without_echo(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    pd_id = await _declared(pd_bot, pagerduty)
    puts_before = len(pagerduty.calls_to("updateIncident"))
    pagerduty.update_incident(pd_id, by=ONCALL, status="resolved")
    await _deliver(pd_bot, pagerduty)
    row = (await pd_bot.fetch("SELECT status, resolved_at FROM incidents"))[0]
    assert row["status"] == "resolved" and row["resolved_at"] is not None
    assert len(pagerduty.calls_to("updateIncident")) == puts_before  # not mirrored back
    pagerduty.update_incident(pd_id, by=ONCALL, status="triggered")  # reopened
    await _deliver(pd_bot, pagerduty)
    kinds = await pd_bot.kinds()
    assert kinds[-1] in ("reopened", "pagerduty") and "reopened" in kinds
    assert (await pd_bot.fetch("SELECT resolved_at FROM incidents"))[0]["resolved_at"] is None


async def test_an_incident_triggered_in_pagerduty_declares_one_in_the_war_room(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    pagerduty.subscribe(_hook(pd_bot), PAGERDUTY_WEBHOOK_SECRET)
    alert = pagerduty.trigger_alert("Checkout latency above 10s", severity="critical")
    await _deliver(pd_bot, pagerduty)
    rows = await pd_bot.fetch("SELECT title, severity, pagerduty_id FROM incidents")
    assert [(r["title"], r["pagerduty_id"]) for r in rows] == [
        ("Checkout latency above 10s", alert["id"])
    ]
    assert rows[0]["severity"] == "sev2"  # high urgency, no priority
    assert "PagerDuty declared INC-1" in pd_bot.thread(1)[0].text
    assert len(pagerduty.incidents) == 1  # adopted, not opened again
    assert pagerduty.calls_to("createIncident") == []


async def test_bad_signature_gets_401_and_changes_nothing(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    pd_id = await _declared(pd_bot, pagerduty)
    pagerduty.update_incident(pd_id, by=ONCALL, status="acknowledged")
    body = json.dumps(
        pagerduty.build_webhook("incident.acknowledged", pd_id, agent=ONCALL)
    ).encode()
    before = await pd_bot.kinds()
    for header in (sign_webhook(body, ["wrong-secret"]), "", "v0=abc"):
        async with pd_bot.http.post(
            _hook(pd_bot),
            data=body,
            headers={"X-PagerDuty-Signature": header, "Content-Type": "application/json"},
        ) as resp:
            assert resp.status == 401
    assert await pd_bot.kinds() == before


async def test_a_rotated_secret_does_not_break_delivery(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    pd_id = await _declared(pd_bot, pagerduty)
    body = json.dumps(
        pagerduty.build_webhook("incident.priority_updated", pd_id, agent=ONCALL)
    ).encode()
    header = sign_webhook(body, ["the-new-secret-not-known-yet", PAGERDUTY_WEBHOOK_SECRET])
    async with pd_bot.http.post(
        _hook(pd_bot),
        data=body,
        headers={"X-PagerDuty-Signature": header, "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 200


async def test_a_replayed_event_is_applied_once(pd_bot: Bot, pagerduty: FakePagerDuty) -> None:
    pd_id = await _declared(pd_bot, pagerduty, subscribe=False)
    pagerduty.add_note(pd_id, "only once please", by=ONCALL)
    body = json.dumps(pagerduty.build_webhook("incident.annotated", pd_id, agent=ONCALL)).encode()
    headers = {
        "X-PagerDuty-Signature": sign_webhook(body, [PAGERDUTY_WEBHOOK_SECRET]),
        "Content-Type": "application/json",
    }
    for _ in range(3):
        async with pd_bot.http.post(_hook(pd_bot), data=body, headers=headers) as resp:
            assert resp.status == 200
    await pd_bot.settle()
    assert sum("only once please" in m for m in pd_bot.thread_texts(1)) == 1


async def test_malformed_webhook_with_a_valid_signature_is_a_400_not_a_500(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    for body in (b"{not json", b"[]", b'{"event": "x"}'):
        headers = {"X-PagerDuty-Signature": sign_webhook(body, [PAGERDUTY_WEBHOOK_SECRET])}
        async with pd_bot.http.post(_hook(pd_bot), data=body, headers=headers) as resp:
            assert resp.status == 400, body


async def test_webhooks_are_refused_when_pagerduty_is_not_configured(bot: Bot) -> None:
    async with bot.http.post(f"{bot.base}/pagerduty/webhook", data=b"{}") as resp:
        assert resp.status == 401


# -- applied exactly once, malformed events, times and names (issue 17) ---------------------


async def _post_event(bot: Bot, envelope: dict[str, object]) -> tuple[int, str]:
    body = json.dumps(envelope).encode()
    headers = {
        "X-PagerDuty-Signature": sign_webhook(body, [PAGERDUTY_WEBHOOK_SECRET]),
        "Content-Type": "application/json",
    }
    async with bot.http.post(_hook(bot), data=body, headers=headers) as resp:
        result = resp.status, await resp.text()
    await bot.settle()
    return result


async def test_a_pagerduty_event_whose_apply_failed_is_applied_when_redelivered(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    from tests.test_once import _disarm, _fail_the_next_timeline_insert

    pd_id = await _declared(pd_bot, pagerduty, subscribe=False)
    pagerduty.add_note(pd_id, "DB failover started", by=ONCALL)
    envelope = pagerduty.build_webhook("incident.annotated", pd_id, agent=ONCALL)
    await _fail_the_next_timeline_insert(pd_bot)
    status, _ = await _post_event(pd_bot, envelope)
    assert status == 500  # not applied: PagerDuty delivers it again
    await _disarm(pd_bot)
    status, body = await _post_event(pd_bot, envelope)
    assert status == 200 and "already applied" not in body
    assert sum("DB failover started" in m for m in pd_bot.thread_texts(1)) == 1
    status, body = await _post_event(pd_bot, envelope)  # and then once only
    assert status == 200 and "already applied" in body
    assert sum("DB failover started" in m for m in pd_bot.thread_texts(1)) == 1


async def test_malformed_pagerduty_events_get_400_and_are_not_recorded(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    pd_id = await _declared(pd_bot, pagerduty, subscribe=False)
    pagerduty.update_incident(pd_id, by=ONCALL, status="acknowledged")
    good = pagerduty.build_webhook("incident.acknowledged", pd_id, agent=ONCALL)
    event = good["event"]
    no_tz = {**event, "occurred_at": "2026-12-07T10:00:00"}
    no_data_id = {**event, "data": {k: v for k, v in event["data"].items() if k != "id"}}
    no_id = {k: v for k, v in event.items() if k != "id"}
    bad_data = {**event, "data": "PIN0001"}
    triggered = pagerduty.build_webhook("incident.triggered", pd_id, agent=ONCALL)["event"]
    triggered_no_id = {
        **triggered, "data": {k: v for k, v in triggered["data"].items() if k != "id"}
    }  # fmt: skip
    for bad in (no_tz, no_data_id, no_id, bad_data, triggered_no_id):
        status, body = await _post_event(pd_bot, {"event": bad})
        assert status == 400, (bad, body)
    assert not any("Acknowledged in PagerDuty" in m for m in pd_bot.thread_texts(1))
    # Not recorded: the well-formed delivery of the same event is applied.
    status, body = await _post_event(pd_bot, good)
    assert status == 200 and "already applied" not in body
    assert any("Acknowledged in PagerDuty" in m for m in pd_bot.thread_texts(1))


async def test_an_incident_declared_from_pagerduty_names_pagerduty_and_its_user(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    alert = pagerduty.trigger_alert("Checkout latency above 10s", severity="critical")
    envelope = pagerduty.build_webhook("incident.triggered", alert["id"], agent=ONCALL)
    name = envelope["event"]["agent"]["summary"]
    status, _ = await _post_event(pd_bot, envelope)
    assert status == 200
    card = str(pd_bot.card(1).blocks)
    assert f"by PagerDuty ({name})" in card
    everything = card + "".join(pd_bot.thread_texts(1))
    assert "<@pagerduty" not in everything


async def test_an_incident_triggered_by_an_integration_names_pagerduty(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    pagerduty.subscribe(_hook(pd_bot), PAGERDUTY_WEBHOOK_SECRET)
    pagerduty.trigger_alert("Checkout latency above 10s", severity="critical")
    await _deliver(pd_bot, pagerduty)
    card = str(pd_bot.card(1).blocks)
    assert "by PagerDuty" in card and "<@pagerduty" not in card


def _earlier(iso: str, minutes: int) -> str:
    from datetime import datetime, timedelta

    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")) - timedelta(minutes=minutes)
    return moment.isoformat()


async def test_a_resolve_timed_before_the_declaration_is_stamped_no_earlier(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    alert = pagerduty.trigger_alert("Checkout latency above 10s", severity="critical")
    await _post_event(pd_bot, pagerduty.build_webhook("incident.triggered", alert["id"]))
    pagerduty.update_incident(alert["id"], by=ONCALL, status="resolved")
    envelope = pagerduty.build_webhook("incident.resolved", alert["id"], agent=ONCALL)
    envelope["event"]["occurred_at"] = _earlier(envelope["event"]["occurred_at"], 10)
    status, _ = await _post_event(pd_bot, envelope)
    assert status == 200
    [row] = await pd_bot.fetch("SELECT declared_at, resolved_at, mitigated_at FROM incidents")
    assert row["resolved_at"] is not None and row["resolved_at"] >= row["declared_at"]
    assert row["mitigated_at"] >= row["declared_at"]


async def test_an_acknowledgement_timed_before_the_declaration_counts_at_the_declaration(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    alert = pagerduty.trigger_alert("Checkout latency above 10s", severity="critical")
    await _post_event(pd_bot, pagerduty.build_webhook("incident.triggered", alert["id"]))
    pagerduty.update_incident(alert["id"], by=ONCALL, status="acknowledged")
    envelope = pagerduty.build_webhook("incident.acknowledged", alert["id"], agent=ONCALL)
    envelope["event"]["occurred_at"] = _earlier(envelope["event"]["occurred_at"], 10)
    status, _ = await _post_event(pd_bot, envelope)
    assert status == 200
    [row] = await pd_bot.fetch("SELECT declared_at, acknowledged_at FROM incidents")
    assert row["acknowledged_at"] == row["declared_at"]
    report = await pd_bot.services.incidents.history(days=1)
    assert [f.time_to_acknowledge for f in report.incidents] == [0.0]  # counted in MTTA


async def test_a_pagerduty_400_on_create_is_not_retried(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    pagerduty.fail("createIncident", status=400, times=5)
    await pd_bot.command("declare Payments failing sev2")
    assert len(pagerduty.calls_to("createIncident")) == 1
    assert pagerduty.incidents == {}
    assert any("PagerDuty refused to open an incident" in m for m in pd_bot.thread_texts(1))
