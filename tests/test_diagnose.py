"""`/diagnose saga` through the real app, against the actuator and Kubernetes stand-ins."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.core.errors import NotFound
from bot.core.ids import RemediationAction
from bot.core.settings import BUNDLED_PLAYBOOKS
from bot.core.wording import Flavour
from sandbox.actuator import FakeActuator
from sandbox.kubernetes import FakeKubernetes
from sandbox.slack_api import FakeSlack
from tests.conftest import Bot, running_bot

SERVICE = "payment-service"


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[tuple[FakeActuator, FakeKubernetes, Path]]:
    async with FakeActuator(services=[SERVICE]) as actuator, FakeKubernetes() as kube:
        kube.add_deployment(
            "waqiti", SERVICE, "payments:1.4.2", replicas=3, history=["payments:1.4.1"]
        )
        actuator.set_metric(SERVICE, "saga.started.total", {"COUNT": 100_000})
        actuator.set_metric(SERVICE, "saga.compensated.total", {"COUNT": 50})
        actuator.set_breaker(SERVICE, "fraud-check", "CLOSED")
        actuator.set_breaker(SERVICE, "ledger", "CLOSED")
        actuator.set_component(SERVICE, "db", "UP", {"database": "PostgreSQL"})
        yield actuator, kube, kube.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
async def diag_bot(
    dsn: str, slack: FakeSlack, platform: tuple[FakeActuator, FakeKubernetes, Path]
) -> AsyncIterator[Bot]:
    actuator, _, kubeconfig = platform
    async with running_bot(
        dsn, slack, service_url_template=actuator.url_template, kubeconfig=kubeconfig
    ) as bot:
        yield bot


async def _report(bot: Bot) -> dict[str, Any]:
    rows = await bot.fetch(
        "SELECT data FROM timeline WHERE kind = 'diagnosis' ORDER BY seq DESC LIMIT 1"
    )
    data: dict[str, Any] = rows[0]["data"]
    return data


async def test_diagnose_alone_lists_the_playbooks(diag_bot: Bot) -> None:
    status, body = await diag_bot.post_signed(diag_bot.command_request("", command="/diagnose"))
    assert status == 200 and "`saga`" in body and "`alert-delivery`" in body


async def test_an_unknown_playbook_gets_the_list_and_runs_nothing(diag_bot: Bot) -> None:
    status, body = await diag_bot.post_signed(
        diag_bot.command_request("sagaa", command="/diagnose")
    )
    assert status == 200 and "no playbook `sagaa`" in body and "saga" in body


async def test_a_mistyped_playbook_gets_did_you_mean(diag_bot: Bot) -> None:
    status, body = await diag_bot.post_signed(
        diag_bot.command_request("alert-delivry", command="/diagnose")
    )
    assert status == 200 and "Did you mean `alert-delivery`?" in body


async def test_an_unknown_playbook_is_echoed_inert(diag_bot: Bot) -> None:
    status, body = await diag_bot.post_signed(
        diag_bot.command_request("<!channel>", command="/diagnose")
    )
    assert status == 200 and "There is no playbook `@channel`." in body
    assert "<!channel>" not in body
    with pytest.raises(NotFound) as refused:
        diag_bot.services.diagnoser.playbook("sagaa")
    assert refused.value.text(Flavour.PLAIN).startswith("There is no playbook sagaa. Did you")


async def test_healthy_platform_reports_every_check_normal(diag_bot: Bot) -> None:
    await diag_bot.command("declare Payments failing sev2")
    started = time.monotonic()
    await diag_bot.post_signed(diag_bot.command_request("saga", command="/diagnose"))
    assert time.monotonic() - started < 2.0
    texts = diag_bot.thread_texts(1)
    assert any("is diagnosing `saga`" in t for t in texts)  # "diagnosing…" first, in the digest
    report = await _report(diag_bot)
    bands = {f["id"]: f["band"] for f in report["findings"]}
    assert bands["compensation_rate"] == "normal"
    assert bands["circuit_breakers"] == "normal"
    assert bands["database"] == "normal"
    assert bands["pods"] == "normal"
    assert bands["failed_sagas"] == "normal"
    assert bands["saga_lag"] == "error"  # Kafka is not configured here, and says so
    lag = next(f for f in report["findings"] if f["id"] == "saga_lag")
    assert "Kafka is not configured" in lag["detail"]
    assert "Diagnosis `saga` posted in *INC-1*'s thread" in diag_bot.last_reply()


async def test_compensation_storm_is_critical_with_the_threshold_shown(
    diag_bot: Bot, platform: tuple[FakeActuator, FakeKubernetes, Path]
) -> None:
    actuator, kube, _ = platform
    actuator.set_metric(SERVICE, "saga.compensated.total", {"COUNT": 3_200})
    actuator.set_breaker(SERVICE, "fraud-check", "OPEN")
    actuator.set_breaker(SERVICE, "ledger", "OPEN")
    actuator.set_breaker(SERVICE, "wallet", "HALF_OPEN")
    pod = kube.pods("waqiti", SERVICE)[0]["metadata"]["name"]
    for n in range(60):
        kube.append_log(
            "waqiti", pod, f"ERROR SAGA_FAILED saga={n} step=debit COMPENSATION started"
        )
    await diag_bot.command("declare Payments failing sev2")
    await diag_bot.post_signed(diag_bot.command_request("saga", command="/diagnose"))
    report = await _report(diag_bot)
    by_id = {f["id"]: f for f in report["findings"]}
    assert by_id["compensation_rate"]["band"] == "critical"
    assert abs(by_id["compensation_rate"]["value"] - 3.2) < 1e-9
    assert by_id["compensation_rate"]["threshold"] == "normal <0.1%, warning 0.1-1%, critical >1%"
    assert (
        by_id["circuit_breakers"]["band"] == "critical" and by_id["circuit_breakers"]["value"] == 3
    )
    assert by_id["failed_sagas"]["band"] == "critical"
    assert report["worst"] == "critical"
    assert report["verdict"].startswith("CRITICAL: SAGA compensation rate")
    message = diag_bot.thread(1)[-1]
    rendered = str(message.blocks)
    assert (
        "3.2%" in rendered and "Manual steps" in rendered and "Restart payment-service" in rendered
    )


async def test_a_hanging_check_times_out_and_the_report_still_arrives(
    dsn: str, slack: FakeSlack, platform: tuple[FakeActuator, FakeKubernetes, Path], tmp_path: Path
) -> None:
    actuator, _, kubeconfig = platform
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "severities.yml").write_text((BUNDLED_PLAYBOOKS / "severities.yml").read_text())
    saga = (BUNDLED_PLAYBOOKS / "saga.yml").read_text()
    saga = saga.replace(
        "    params: {service: payment-service}\n",
        "    params: {service: payment-service}\n    timeout: 1s\n",
        1,
    )
    (folder / "saga.yml").write_text(saga)
    actuator.slow(SERVICE, "circuitbreakers", delay=30)
    async with running_bot(
        dsn, slack, service_url_template=actuator.url_template, kubeconfig=kubeconfig,
        playbooks_dir=folder,
    ) as bot:  # fmt: skip
        await bot.command("declare Payments failing sev2")
        started = time.monotonic()
        await bot.post_signed(bot.command_request("saga", command="/diagnose"))
        assert time.monotonic() - started < 1.0 + 1.0  # the check's timeout plus 1 second
        report = await _report(bot)
        by_id = {f["id"]: f for f in report["findings"]}
        assert by_id["circuit_breakers"]["band"] == "timed out"
        assert by_id["compensation_rate"]["band"] == "normal"  # the others still answered
        assert "could not run" in report["verdict"]


async def test_manual_steps_are_a_checklist_whose_ticks_are_recorded(diag_bot: Bot) -> None:
    await diag_bot.command("declare Payments failing sev2")
    await diag_bot.post_signed(diag_bot.command_request("saga", command="/diagnose"))
    message = diag_bot.thread(1)[-1]
    [group] = [b for b in message.blocks if b.get("block_id", "").startswith("checklist:")]
    options = group["elements"][0]["options"]
    dana = diag_bot.user("dana")
    tick = diag_bot.requests.block_action(
        action_id=group["elements"][0]["action_id"], value="", label="", block_id=group["block_id"],
        user_id=dana, user_name="dana", channel_id=diag_bot.channel, channel_name="waqiti-incidents",
        response_url=diag_bot.slack.new_response_url(channel=diag_bot.channel, user=dana),
        selected_options=[options[0]],
    )  # fmt: skip
    await diag_bot.post_signed(tick)
    rows = await diag_bot.fetch("SELECT text FROM timeline WHERE kind = 'checklist_ticked'")
    assert (
        len(rows) == 1 and "Database slow?" in rows[0]["text"] and "manual steps" in rows[0]["text"]
    )


async def test_remediation_buttons_ask_for_approval_and_change_nothing_yet(diag_bot: Bot) -> None:
    await diag_bot.command("declare Payments failing sev2")
    await diag_bot.post_signed(diag_bot.command_request("saga", command="/diagnose"))
    message = diag_bot.thread(1)[-1]
    button = next(
        e for b in message.blocks if b["type"] == "actions" for e in b["elements"]
        if e.get("action_id", "").startswith(RemediationAction.REQUEST)
    )  # fmt: skip
    dana = diag_bot.user("dana")
    click = diag_bot.requests.block_action(
        action_id=button["action_id"], value=button["value"], label=button["text"]["text"],
        block_id="r", user_id=dana, user_name="dana", channel_id=diag_bot.channel,
        channel_name="waqiti-incidents",
        response_url=diag_bot.slack.new_response_url(channel=diag_bot.channel, user=dana),
    )  # fmt: skip
    await diag_bot.post_signed(click)
    assert "Asked for approval" in diag_bot.replies_to("dana")[-1]
    assert (await diag_bot.kinds())[-1] == "approval_requested"
    rows = await diag_bot.fetch("SELECT status, requested_by FROM pending_actions")
    assert [(r["status"], r["requested_by"]) for r in rows] == [("pending", dana)]


async def test_without_an_open_incident_the_report_is_shown_only_to_the_caller(
    diag_bot: Bot,
) -> None:
    await diag_bot.post_signed(diag_bot.command_request("saga", command="/diagnose"))
    reply = diag_bot.slack.ephemerals[-1]
    assert "Diagnosis `saga`" in str(reply.blocks) and "only shown to you" in str(reply.blocks)
    assert await diag_bot.fetch("SELECT * FROM timeline") == []


async def test_a_remediation_from_a_private_report_asks_which_incident_and_runs_on_the_pick(
    diag_bot: Bot,
) -> None:
    await diag_bot.post_signed(diag_bot.command_request("saga", command="/diagnose"))
    report = diag_bot.slack.ephemerals[-1]
    button = next(
        e for b in report.blocks if b["type"] == "actions" for e in b["elements"]
        if e.get("action_id", "").startswith(RemediationAction.REQUEST)
    )  # fmt: skip
    await diag_bot.command("declare Payments failing sev2")
    await diag_bot.command("declare Refunds slow sev3")
    dana = diag_bot.user("dana")

    def click(pressed: dict[str, Any]) -> Any:
        return diag_bot.requests.block_action(
            action_id=pressed["action_id"], value=pressed["value"],
            label=pressed["text"]["text"], block_id="r", user_id=dana, user_name="dana",
            channel_id=diag_bot.channel, channel_name="waqiti-incidents",
            response_url=diag_bot.slack.new_response_url(channel=diag_bot.channel, user=dana),
        )  # fmt: skip

    await diag_bot.post_signed(click(button))
    question = diag_bot.slack.ephemerals[-1]
    picks = [e for b in question.blocks if b["type"] == "actions" for e in b["elements"]]
    assert [p["text"]["text"] for p in picks] == ["INC-1 Payments failing", "INC-2 Refunds slow"]
    assert await diag_bot.fetch("SELECT id FROM pending_actions") == []
    await diag_bot.post_signed(click(picks[1]))
    rows = await diag_bot.fetch("SELECT incident_id, requested_by FROM pending_actions")
    assert [(r["incident_id"], r["requested_by"]) for r in rows] == [(2, dana)]
    assert "Asked for approval" in diag_bot.replies_to("dana")[-1]


async def test_declaring_suggests_matching_playbooks(diag_bot: Bot) -> None:
    await diag_bot.command("declare SAGA compensation storm on payments sev2")
    assert "Playbooks that may help: `/diagnose saga`" in diag_bot.last_reply()
    await diag_bot.command("declare Printer on fire sev4")
    assert "Playbooks that may help" not in diag_bot.last_reply()


async def test_a_database_that_is_down_is_critical_not_a_warning(
    diag_bot: Bot, platform: tuple[FakeActuator, FakeKubernetes, Path]
) -> None:
    actuator, _, _ = platform
    actuator.set_component(
        SERVICE, "db", "DOWN", {"error": "SQLTransientConnectionException: timeout"}
    )
    await diag_bot.command("declare Payments failing sev2")
    await diag_bot.post_signed(diag_bot.command_request("saga", command="/diagnose"))
    by_id = {f["id"]: f for f in (await _report(diag_bot))["findings"]}
    assert by_id["database"]["band"] == "critical"
    assert "SQLTransientConnectionException" in by_id["database"]["detail"]
