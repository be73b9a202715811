"""Grafana annotations on resolve (issue 21), through the real app against the Grafana stand-in."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bot.core.settings import BUNDLED_PLAYBOOKS
from bot.domain.grafana import GrafanaKind
from bot.playbooks.catalogue import validate_dir
from bot.store import outbox as outbox_sql
from sandbox.actuator import FakeActuator
from sandbox.grafana import FakeGrafana
from sandbox.pagerduty import FakePagerDuty
from sandbox.slack_api import FakeSlack
from tests.conftest import PAGERDUTY_WEBHOOK_SECRET, Bot, pagerduty_settings, running_bot

ONCALL = "oncall@waqiti.example"


@pytest.fixture
async def grafana() -> AsyncIterator[FakeGrafana]:
    async with FakeGrafana() as fake:
        yield fake


@pytest.fixture
async def actuator() -> AsyncIterator[FakeActuator]:
    async with FakeActuator(services=["payment-service"]) as fake:
        yield fake


def grafana_settings(fake: FakeGrafana) -> dict[str, Any]:
    return {"grafana_url": fake.url, "grafana_token": fake.token}


@pytest.fixture
async def g_bot(
    dsn: str, slack: FakeSlack, grafana: FakeGrafana, actuator: FakeActuator
) -> AsyncIterator[Bot]:
    """The bot with Grafana configured (and an actuator, so `/diagnose saga` has answers)."""
    async with running_bot(
        dsn, slack, service_url_template=actuator.url_template, **grafana_settings(grafana)
    ) as running:
        yield running


async def settle(bot: Bot) -> None:
    """Everything delivered: Slack, PagerDuty and Grafana."""
    await bot.settle()
    if bot.services.grafana_queue is not None:
        await bot.services.grafana_queue.drain(timeout=20)
    await bot.settle()


async def diagnose(bot: Bot, playbook: str) -> None:
    await bot.post_signed(bot.command_request(playbook, command="/diagnose"))
    await bot.services.inflight.idle()


async def stamps(bot: Bot) -> dict[str, Any]:
    row = (await bot.fetch("SELECT declared_at, mitigated_at, resolved_at FROM incidents"))[0]
    return dict(row)


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


# -- playbooks ---------------------------------------------------------------------------


def test_playbooks_name_dashboards_as_one_mapping_or_a_list(tmp_path: Path) -> None:
    catalogue, errors = validate_dir(BUNDLED_PLAYBOOKS)
    assert not errors
    saga = catalogue.playbooks["saga"].grafana
    assert [(g.dashboard_uid, g.panel_id) for g in saga] == [
        ("waqiti-payments", 2),
        ("waqiti-payment-saga", 4),
    ]
    canary = catalogue.playbooks["canary-rollback"].grafana  # written as one mapping
    assert [(g.dashboard_uid, g.panel_id) for g in canary] == [("waqiti-deployments", 1)]


def test_a_bad_grafana_entry_is_refused_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "one.yml").write_text(
        "name: one\ntitle: One\nsummary: s\nsteps: [a]\n"
        'grafana: {dashboard_uid: "no spaces allowed", panel_id: 0}\n'
    )
    (tmp_path / "two.yml").write_text(
        "name: two\ntitle: Two\nsummary: s\nsteps: [a]\n"
        "grafana:\n  - {dashboard_uid: ok}\n  - dashboard_uid: fine\n    panel: 3\n"
    )
    _, errors = validate_dir(tmp_path)
    assert f"{tmp_path}/one.yml:5: grafana.0.dashboard_uid: String should match pattern" in (
        "\n".join(errors)
    )
    assert any(e.startswith(f"{tmp_path}/one.yml:5: grafana.0.panel_id:") for e in errors)
    assert f"{tmp_path}/two.yml:8: grafana.1.panel: Extra inputs are not permitted" in errors
    assert len(errors) == 3


# -- annotations -------------------------------------------------------------------------


async def test_resolve_annotates_the_diagnosed_playbooks_dashboards_over_the_impact_window(
    g_bot: Bot, grafana: FakeGrafana
) -> None:
    await g_bot.command("declare Payments failing sev2")
    await diagnose(g_bot, "saga")
    g_bot.clock.advance(minutes=10)
    await g_bot.command("status Mitigated: rolled back payment-service")
    g_bot.clock.advance(minutes=20)
    await g_bot.command("resolve bad deploy rolled back")
    await settle(g_bot)
    at = await stamps(g_bot)
    found = sorted(
        (a.dashboard_uid, a.panel_id, a.time, a.time_end) for a in grafana.annotations.values()
    )
    declared, mitigated, resolved = (
        ms(at[k]) for k in ("declared_at", "mitigated_at", "resolved_at")
    )
    # The test clock is real time plus the advances: the windows are 10 and 30 minutes long.
    assert 10 * 60_000 <= mitigated - declared < 11 * 60_000
    assert 30 * 60_000 <= resolved - declared < 31 * 60_000
    assert found == sorted(
        [
            ("waqiti-payments", 2, declared, mitigated),
            ("waqiti-payments", 2, declared, resolved),
            ("waqiti-payment-saga", 4, declared, mitigated),
            ("waqiti-payment-saga", 4, declared, resolved),
        ]
    )
    for a in grafana.annotations.values():
        assert a.tags[:3] == ["incident", "INC-1", "sev2"]
        assert "INC-1 SEV2" in a.text and "Payments failing" in a.text
        assert "Summary: bad deploy rolled back" in a.text
        assert f"{g_bot.services.settings.page_base_url}/incidents/INC-1?t=" in a.text
    create = grafana.calls_to("createAnnotation")[0]
    assert set(create.body) == {"dashboardUID", "panelId", "time", "timeEnd", "tags", "text"}
    thread = "\n".join(g_bot.thread_texts(1))
    assert "Grafana: annotating the impact window (`waqiti-payments` panel 2," in thread


async def test_the_annotation_text_escapes_outside_words_and_keeps_the_link(
    g_bot: Bot, grafana: FakeGrafana
) -> None:
    await g_bot.command("declare Checkout <b>down</b> & failing sev2")
    await g_bot.command("resolve " + "long summary " * 200)
    await settle(g_bot)
    [annotation] = grafana.annotations.values()
    assert "Checkout &lt;b&gt;down&lt;/b&gt; &amp; failing" in annotation.text
    assert len(annotation.text) < 2000
    assert annotation.text.endswith('">Incident page</a>')


async def test_with_no_playbook_dashboard_one_organisation_annotation_covers_the_incident(
    g_bot: Bot, grafana: FakeGrafana
) -> None:
    await g_bot.command("declare Payments failing sev3")
    g_bot.clock.advance(minutes=5)
    await g_bot.command("resolve false alarm")
    await settle(g_bot)
    at = await stamps(g_bot)
    [annotation] = grafana.annotations.values()
    assert annotation.dashboard_uid is None and annotation.panel_id == 0
    assert (annotation.time, annotation.time_end) == (ms(at["declared_at"]), ms(at["resolved_at"]))
    assert annotation.tags[:3] == ["incident", "INC-1", "sev3"]
    assert "organisation-wide annotation" in "\n".join(g_bot.thread_texts(1))


async def test_reopened_and_resolved_again_updates_the_annotations_instead_of_adding_more(
    dsn: str, slack: FakeSlack, grafana: FakeGrafana, pagerduty: FakePagerDuty
) -> None:
    async with running_bot(
        dsn, slack, **pagerduty_settings(pagerduty), **grafana_settings(grafana)
    ) as bot:
        pagerduty.subscribe(f"{bot.base}/pagerduty/webhook", PAGERDUTY_WEBHOOK_SECRET)
        await bot.command("declare Payments failing sev2")
        await pagerduty.drain_webhooks()
        await settle(bot)
        [pd_id] = pagerduty.incidents
        bot.clock.advance(minutes=5)
        await bot.command("status Monitoring: error rate back to normal")
        bot.clock.advance(minutes=5)
        await bot.command("resolve looked fixed")
        await settle(bot)
        first = {a.id: (a.time, a.time_end) for a in grafana.annotations.values()}
        assert len(first) == 2  # impact and incident, organisation-wide
        pagerduty.update_incident(pd_id, by=ONCALL, status="triggered")  # reopened there
        await pagerduty.drain_webhooks()
        await settle(bot)
        assert "reopened" in await bot.kinds()
        bot.clock.advance(minutes=30)
        await bot.command("resolve fixed for real this time")
        await settle(bot)
        at = await stamps(bot)
        after = {a.id: (a.time, a.time_end) for a in grafana.annotations.values()}
        assert set(after) == set(first)  # the same two annotations, no third or fourth
        assert len(grafana.calls_to("createAnnotation")) == 2
        assert len(grafana.calls_to("patchAnnotation")) == 2
        assert sorted(end for _, end in after.values()) == sorted(
            [ms(at["mitigated_at"]), ms(at["resolved_at"])]
        )
        assert ms(at["resolved_at"]) > max(end for _, end in first.values())
        texts = [a.text for a in grafana.annotations.values()]
        assert all("Summary: fixed for real this time" in t for t in texts)


async def test_resolving_in_pagerduty_annotates_too(
    dsn: str, slack: FakeSlack, grafana: FakeGrafana, pagerduty: FakePagerDuty
) -> None:
    async with running_bot(
        dsn, slack, **pagerduty_settings(pagerduty), **grafana_settings(grafana)
    ) as bot:
        pagerduty.subscribe(f"{bot.base}/pagerduty/webhook", PAGERDUTY_WEBHOOK_SECRET)
        await bot.command("declare Payments failing sev1")
        await pagerduty.drain_webhooks()
        await settle(bot)
        [pd_id] = pagerduty.incidents
        pagerduty.update_incident(pd_id, by=ONCALL, status="resolved")
        await pagerduty.drain_webhooks()
        await settle(bot)
        at = await stamps(bot)
        assert at["resolved_at"] is not None
        [annotation] = grafana.annotations.values()
        assert annotation.tags[:3] == ["incident", "INC-1", "sev1"]
        assert annotation.time_end == ms(at["resolved_at"])


async def test_a_crash_between_grafanas_answer_and_the_commit_leaves_one_annotation(
    g_bot: Bot, grafana: FakeGrafana
) -> None:
    queue = g_bot.services.grafana_queue
    assert queue is not None
    await g_bot.command("declare Payments failing sev2")
    await g_bot.command("resolve rolled back")  # only Slack is drained by `command`
    async with g_bot.services.pool.acquire() as conn:
        [item] = await outbox_sql.claim(
            conn, now=g_bot.clock(), lease=queue.lease, limit=5, channel="grafana"
        )
    assert item.kind == GrafanaKind.ANNOTATE
    body = {k: v for k, v in item.payload.items() if k in ("time", "timeEnd", "tags", "text")}
    await queue.annotator.create(body)  # Grafana made it; the replica died before the commit
    async with g_bot.services.pool.acquire() as conn:
        await conn.execute(
            "UPDATE outbox SET claimed_until = now() - interval '1 s' WHERE id = $1", item.id
        )
    await settle(g_bot)
    assert len(grafana.annotations) == 1
    assert len(grafana.calls_to("createAnnotation")) == 1
    rows = await g_bot.fetch("SELECT done_at, failed FROM outbox WHERE channel = 'grafana'")
    assert [(r["done_at"] is not None, r["failed"]) for r in rows] == [(True, False)]


async def test_grafana_rate_limit_is_waited_out_for_retry_after(
    g_bot: Bot, grafana: FakeGrafana
) -> None:
    grafana.fail("createAnnotation", status=429, retry_after=1, times=1)
    await g_bot.command("declare Payments failing sev2")
    started = time.monotonic()
    await g_bot.command("resolve rolled back")
    await settle(g_bot)
    assert time.monotonic() - started >= 1.0
    assert len(grafana.annotations) == 1
    creates = grafana.calls_to("createAnnotation")
    assert len(creates) == 2  # the refused one, then one after Retry-After


async def test_a_bad_token_is_refused_once_not_retried_and_said_in_the_thread(
    dsn: str, slack: FakeSlack, grafana: FakeGrafana
) -> None:
    async with running_bot(
        dsn, slack, grafana_url=grafana.url, grafana_token="glsa_wrong_token_123"
    ) as bot:
        await bot.command("declare Payments failing sev2")
        bot.clock.advance(minutes=3)
        await bot.command("status Mitigated: rolled back")
        bot.clock.advance(minutes=3)
        await bot.command("resolve rolled back")
        await settle(bot)
        rows = await bot.fetch("SELECT failed, last_error FROM outbox WHERE channel = 'grafana'")
        thread = "\n".join(bot.thread_texts(1))
    assert [r["failed"] for r in rows] == [True, True]  # impact and incident: each tried once
    assert "HTTP 401" in rows[0]["last_error"]
    assert not grafana.annotations and len(grafana.calls_to("findAnnotations")) == 2
    assert thread.count("Grafana refused the annotation") == 1
    assert "check GRAFANA_TOKEN" in thread


async def test_without_grafana_resolve_works_and_says_grafana_is_not_configured(
    dsn: str, slack: FakeSlack, actuator: FakeActuator
) -> None:
    async with running_bot(dsn, slack, service_url_template=actuator.url_template) as bot:
        assert bot.services.grafana_queue is None
        await bot.command("declare Payments failing sev2")
        await diagnose(bot, "saga")
        status, _ = await bot.command("resolve rolled back")
        assert status == 200
        rows = await bot.fetch("SELECT status FROM incidents")
        assert rows[0]["status"] == "resolved"
        assert not await bot.fetch("SELECT id FROM outbox WHERE channel = 'grafana'")
        thread = "\n".join(bot.thread_texts(1))
        assert "Grafana is not configured, so `waqiti-payments` panel 2" in thread


async def test_without_grafana_an_incident_with_no_dashboards_says_nothing_of_grafana(
    bot: Bot,
) -> None:
    await bot.command("declare Payments failing sev2")
    await bot.command("resolve rolled back")
    assert "Grafana" not in "\n".join(bot.thread_texts(1))


# -- the stand-in refuses what Grafana refuses ------------------------------------------------


async def test_the_grafana_stand_in_refuses_what_grafana_refuses(grafana: FakeGrafana) -> None:
    import aiohttp

    auth = {"Authorization": f"Bearer {grafana.token}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{grafana.url}/api/annotations", json={"text": "x"}) as resp:
            assert resp.status == 401 and "message" in await resp.json()
        async with http.post(
            f"{grafana.url}/api/annotations", data=b"{not json", headers=auth
        ) as resp:
            assert resp.status == 400 and await resp.json() == {"message": "bad request data"}
        async with http.post(
            f"{grafana.url}/api/annotations", json={"text": "x", "time": "soon"}, headers=auth
        ) as resp:
            assert resp.status == 400 and await resp.json() == {"message": "bad request data"}
        async with http.post(
            f"{grafana.url}/api/annotations", json={"text": ""}, headers=auth
        ) as resp:
            assert resp.status == 400
            assert await resp.json() == {"message": "Failed to save annotation"}
        async with http.patch(
            f"{grafana.url}/api/annotations/999", json={"text": "y"}, headers=auth
        ) as resp:
            assert resp.status == 404
    assert not grafana.annotations
