"""PagerDuty, both ways: opened, mirrored and resolved through the real `pagerduty` client."""

from __future__ import annotations

import re
import time
from pathlib import Path

from bot.core.settings import BUNDLED_PLAYBOOKS
from bot.domain.pager import PagerKind
from bot.store import outbox as outbox_sql
from sandbox.pagerduty import FakePagerDuty
from sandbox.slack_api import FakeSlack
from tests.conftest import Bot, pagerduty_settings, running_bot, shown_text


def _only_incident(pagerduty: FakePagerDuty) -> dict[str, object]:
    assert len(pagerduty.incidents) == 1, pagerduty.incidents
    return next(iter(pagerduty.incidents.values()))


async def test_declare_opens_one_pagerduty_incident_with_urgency_from_the_severity(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    await pd_bot.command("declare Payments failing sev2")
    incident = _only_incident(pagerduty)
    assert incident["urgency"] == "high"
    assert incident["title"] == "INC-1: Payments failing"
    assert str(incident["incident_key"]).endswith(":INC-1")
    create = pagerduty.calls_to("createIncident")[0]
    assert create.headers["From"] == "icbot@waqiti.example"
    rows = await pd_bot.fetch("SELECT pagerduty_id, pagerduty_url FROM incidents")
    assert rows[0]["pagerduty_id"] == incident["id"]
    assert str(incident["html_url"]) in str(pd_bot.card(1).blocks)  # the card links to it
    assert any("PagerDuty incident #" in t for t in pd_bot.thread_texts(1))


async def test_sev3_and_sev4_page_with_low_urgency(pd_bot: Bot, pagerduty: FakePagerDuty) -> None:
    await pd_bot.command("declare Slow dashboard sev3")
    assert _only_incident(pagerduty)["urgency"] == "low"


async def test_severity_status_note_and_resolve_are_mirrored(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    await pd_bot.command("declare Payments failing sev3")
    await pd_bot.command("sev sev1")
    await pd_bot.command("status Mitigating: rolled back")
    await pd_bot.command("note error rate falling")
    await pd_bot.command("resolve bad deploy rolled back")
    incident = _only_incident(pagerduty)
    assert incident["urgency"] == "high"
    assert (incident.get("priority") or {})["summary"] == "P1"  # type: ignore[index]
    notes = [n["content"] for n in pagerduty.notes[str(incident["id"])]]
    assert any("Mitigating: rolled back" in n for n in notes)
    assert any("error rate falling" in n for n in notes)
    assert incident["status"] == "resolved"


async def test_a_retried_create_adopts_the_incident_the_first_attempt_opened(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    """The create reached PagerDuty but the answer was lost (the replica died)."""
    queue = pd_bot.services.pager_queue
    assert queue is not None
    await pd_bot.command("declare Payments failing sev2", drain=False)
    async with pd_bot.services.pool.acquire() as conn:
        [item] = await outbox_sql.claim(
            conn, now=pd_bot.clock(), lease=queue.lease, limit=5, channel="pagerduty"
        )
        assert item.kind == PagerKind.CREATE
    await queue.pager.create_incident(**item.payload)  # lands; nothing is recorded
    async with pd_bot.services.pool.acquire() as conn:
        await conn.execute(
            "UPDATE outbox SET claimed_until = now() - interval '1 s' WHERE id = $1", item.id
        )
    await pd_bot.settle()
    incident = _only_incident(pagerduty)
    rows = await pd_bot.fetch("SELECT pagerduty_id FROM incidents")
    assert rows[0]["pagerduty_id"] == incident["id"]


async def test_pagerduty_down_delays_pages_but_slack_answers_and_nothing_is_lost(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    pagerduty.fail("createIncident", status=503, times=3)
    started = time.monotonic()
    status, _ = await pd_bot.command("declare Payments failing sev1", drain=False)
    assert status == 200 and time.monotonic() - started < 2.0
    await pd_bot.services.outbox.drain()
    assert len(pd_bot.slack.roots("waqiti-incidents")) == 1  # Slack did not wait for PagerDuty
    await pd_bot.command("note still down", drain=False)
    queue = pd_bot.services.pager_queue
    assert queue is not None
    await queue.drain(timeout=30)
    await pd_bot.services.outbox.drain()
    incident = _only_incident(pagerduty)
    assert any("still down" in n["content"] for n in pagerduty.notes[str(incident["id"])])
    thread = "\n".join(pd_bot.thread_texts(1))
    assert thread.count("PagerDuty is lagging") == 1  # said once, not on every retry
    assert thread.index("PagerDuty is lagging") < thread.index("PagerDuty caught up")
    assert re.search(r"\b(1 update|[02-9]\d* updates) queued", thread), thread


async def test_rate_limited_by_pagerduty_retries_after_retry_after(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    pagerduty.fail("createIncident", status=429, retry_after=1, times=2)
    started = time.monotonic()
    await pd_bot.command("declare Payments failing sev2")
    assert time.monotonic() - started >= 1.0
    _only_incident(pagerduty)


async def test_restart_while_pagerduty_was_down_opens_exactly_one_incident(
    dsn: str, slack: FakeSlack, pagerduty: FakePagerDuty
) -> None:
    pagerduty.fail("createIncident", status=503, times=50)
    async with running_bot(dsn, slack, **pagerduty_settings(pagerduty)) as first:
        await first.command("declare Payments failing sev1", drain=False)
        await first.command("note investigating", drain=False)
        queue = first.services.pager_queue
        assert queue is not None
        await queue.process_once()
    assert pagerduty.incidents == {}
    pagerduty._faults.clear()  # PagerDuty is back
    async with running_bot(dsn, slack, **pagerduty_settings(pagerduty)) as second:
        async with second.services.pool.acquire() as conn:
            await conn.execute("UPDATE outbox SET next_attempt_at = now(), claimed_until = NULL")
        await second.settle()
        incident = _only_incident(pagerduty)
        assert [n["content"] for n in pagerduty.notes[str(incident["id"])]][-1].endswith(
            "investigating"
        )
        kinds = await second.kinds()
        assert kinds[:2] == ["declared", "note"] and "pagerduty" in kinds
        assert (await second.services.incidents.verify(1)).ok


async def test_without_pagerduty_the_thread_says_it_is_not_configured(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2")
    assert "PagerDuty is not configured" in bot.thread(1)[0].text
    assert await bot.fetch("SELECT * FROM outbox WHERE channel = 'pagerduty'") == []


def _policy_with_pagerduty_ids(tmp_path: Path) -> Path:
    text = (BUNDLED_PLAYBOOKS / "severities.yml").read_text()
    text = text.replace(
        'eng-manager: {slack: "@eng-manager", pagerduty_user: null}',
        'eng-manager: {slack: "@eng-manager", pagerduty_user: PUSR002}',
    ).replace(
        'cto: {slack: "@cto", pagerduty_user: null}',
        'cto: {slack: "@cto", pagerduty_user: PUSR003}',
    )
    (tmp_path / "severities.yml").write_text(text)
    return tmp_path


async def test_sev1_policy_pages_the_engineering_manager_and_cto_through_pagerduty(
    dsn: str, slack: FakeSlack, pagerduty: FakePagerDuty, tmp_path: Path
) -> None:
    settings = {
        **pagerduty_settings(pagerduty),
        "playbooks_dir": _policy_with_pagerduty_ids(tmp_path),
    }
    async with running_bot(dsn, slack, **settings) as bot:
        await bot.command("declare Everything down sev1")
        await bot.tick()
        [request] = pagerduty.calls_to("createIncidentResponderRequest")
        targets = [
            t["responder_request_target"]["id"] for t in request.body["responder_request_targets"]
        ]
        assert targets == ["PUSR002", "PUSR003"]
        assert request.body["requester_id"] == "PUSR004"  # icbot's own PagerDuty user
        escalated = await bot.fetch("SELECT text FROM timeline WHERE kind = 'escalated'")
        assert "Paging them through PagerDuty" in escalated[0]["text"]


async def test_page_adds_a_responder_by_hand_and_records_it(
    dsn: str, slack: FakeSlack, pagerduty: FakePagerDuty, tmp_path: Path
) -> None:
    settings = {
        **pagerduty_settings(pagerduty),
        "playbooks_dir": _policy_with_pagerduty_ids(tmp_path),
    }
    async with running_bot(dsn, slack, **settings) as bot:
        await bot.command("declare Payments failing sev3")
        await bot.command("page cto the ledger looks wrong")
        [request] = pagerduty.calls_to("createIncidentResponderRequest")
        assert request.body["message"] == "the ledger looks wrong"
        assert "paged cto through PagerDuty: the ledger looks wrong" in shown_text(
            bot.thread(1)[-1]
        )
        await bot.command("page nobody-known")
        assert "not a contact" in bot.last_reply()
        await bot.command("page oncall")  # a contact without PagerDuty ids
        assert "no PagerDuty user" in bot.last_reply()


async def test_page_without_pagerduty_says_to_mention_them(bot: Bot) -> None:
    await bot.command("declare Payments failing sev3")
    await bot.command("page eng-manager")
    assert "PagerDuty is not configured; mention @eng-manager" in bot.last_reply()


async def test_oncall_lists_who_is_on_call_for_the_services_policy(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    await pd_bot.command("oncall")
    reply = pd_bot.last_reply()
    assert "Level 1: Ola Oncall" in reply and "Level 2: Erin Manager" in reply


async def test_oncall_when_pagerduty_is_down_says_so_without_an_error_id(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    pagerduty.fail("*", status=503, times=5)
    await pd_bot.command("oncall")
    assert "Pagerduty did not answer" in pd_bot.last_reply()


async def test_declare_note_resolve_make_exactly_the_matching_pagerduty_calls(
    pd_bot: Bot, pagerduty: FakePagerDuty
) -> None:
    await pd_bot.command("declare Payments failing sev2")
    await pd_bot.command("note gateway timeouts")
    await pd_bot.command("resolve rolled back")
    writes = [c.operation for c in pagerduty.calls if c.method != "GET"]
    # The note, then the resolve's summary note (issue 21), then the resolve itself.
    assert writes == [
        "createIncident",
        "createIncidentNote",
        "createIncidentNote",
        "updateIncident",
    ]
    resolve = pagerduty.calls_to("updateIncident")[0].body["incident"]
    assert resolve["status"] == "resolved" and resolve["resolution"] == "rolled back"
