"""The sandbox: a simulated Waqiti platform (`sandbox/platform.py`) and its scenarios.

Two kinds of tests. `SimulatedPlatform` driven directly, with the bot's real adapters built by
`open_services` from the platform's settings overrides: each scenario is what the playbooks
see, and remediations change the platform. And, for every scenario, a script piped into
`python -m bot shell --sandbox --scenario NAME`, as the issue's "done when" says.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from bot.core.errors import ConfigError
from bot.integrations.kafka import KafkaLag
from bot.playbooks.diagnose import Report, run_playbook
from bot.playbooks.remediations import REMEDIATIONS
from bot.runtime.services import open_services
from commands.app import build_slack_app
from commands.services import Services
from sandbox.platform import LAG_WARNING, SimulatedPlatform
from sandbox.scenario import DEFAULT_SCENARIO, SCENARIOS_DIR, list_scenarios, load_scenario
from sandbox.shell_sandbox import ShellSandbox
from sandbox.slack_api import FakeSlack
from tests.conftest import make_settings, running_bot

SCENARIOS = ["alert-delivery", "audit-gap", "bad-deploy", "healthy", "saga-storm"]


# ---------------------------------------------------------------------- scenario files


def test_every_bundled_scenario_is_listed_and_valid() -> None:
    assert list_scenarios() == SCENARIOS
    assert DEFAULT_SCENARIO in SCENARIOS
    for name in SCENARIOS:
        scenario = load_scenario(name)
        assert scenario.name == name and scenario.title and scenario.hint
        assert {"payment-service", "payment-saga-consumer", "encryption-audit-service"} <= set(
            scenario.deployments
        )
        assert {"payment-saga", "encryption-audit"} <= set(scenario.streams)  # runbook groups
        assert scenario.intro().startswith(f"Scenario {name}: ")


def test_a_scenario_changes_only_what_it_names_on_top_of_its_base() -> None:
    healthy, storm = load_scenario("healthy"), load_scenario("saga-storm")
    assert storm.deployments["payment-service"].image.endswith(":1.4.3")
    assert storm.deployments["kafka"] == healthy.deployments["kafka"]
    assert storm.image("waqiti/payment-service:1.4.3").breakers == {"ledger": "OPEN"}
    gap = load_scenario("audit-gap")
    assert gap.services["encryption-audit-service"].breakers == {"kafka": "OPEN"}
    assert gap.services["payment-service"] == healthy.services["payment-service"]


def test_an_unknown_scenario_is_refused_with_the_list() -> None:
    with pytest.raises(ConfigError, match="no scenario 'nope'; scenarios: alert-delivery"):
        load_scenario("nope")


def _write(folder: Path, name: str, body: dict[str, Any]) -> None:
    (folder / f"{name}.yml").write_text(yaml.safe_dump({"name": name, **body}, sort_keys=False))


def test_invalid_scenarios_say_which_file_line_and_why(tmp_path: Path) -> None:
    base = yaml.safe_load((SCENARIOS_DIR / "healthy.yml").read_text())
    (tmp_path / "healthy.yml").write_text(yaml.safe_dump(base, sort_keys=False))
    _write(tmp_path, "typo", {"extends": "healthy", "deployments": {"x": {"imagee": "a:1"}}})
    with pytest.raises(ConfigError) as err:
        load_scenario("typo", tmp_path)
    assert f"{tmp_path / 'typo.yml'}:" in str(err.value) and "imagee" in str(err.value)
    _write(tmp_path, "loop", {"extends": "loop"})
    with pytest.raises(ConfigError, match="extends itself"):
        load_scenario("loop", tmp_path)
    _write(
        tmp_path,
        "dangling",
        {"extends": "healthy", "streams": {"g": {"topic": "t", "consumer": "ghost"}}},
    )
    with pytest.raises(ConfigError, match="unknown consumer deployment 'ghost'"):
        load_scenario("dangling", tmp_path)


# ---------------------------------------------------------------------- the platform


@asynccontextmanager
async def _services(
    platform: SimulatedPlatform, dsn: str, slack: FakeSlack
) -> AsyncIterator[Services]:
    settings = make_settings(slack, **platform.settings_overrides(), verify_timeout_seconds=15)
    async with open_services(settings, dsn=dsn, token=slack.token, run_workers=False) as services:
        yield services


async def _diagnose(services: Services, playbook: str) -> Report:
    return await run_playbook(services.diagnoser.playbook(playbook), services.probes)


def _bands(report: Report) -> dict[str, str]:
    return {f.id: f.band for f in report.findings}


async def _remediate(services: Services, action: str, **params: Any) -> Any:
    """What an approved request runs: the preview, then the action and its verification."""
    parsed = REMEDIATIONS[action].params.model_validate(params)
    preview = await services.remediator.preview(action, parsed)
    return await services.remediator.run(action, parsed, preview.data)


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "the platform did not get there in time"
        await asyncio.sleep(0.2)


async def test_the_platform_serves_on_loopback_only_and_the_overrides_point_there() -> None:
    async with SimulatedPlatform("healthy") as platform:
        overrides = platform.settings_overrides()
        urls = [
            overrides["service_url_template"],
            overrides["pagerduty_api_url"],
            f"tcp://{overrides['kafka_bootstrap_servers']}",
        ]
        kubeconfig = yaml.safe_load(overrides["kubeconfig"].read_text())
        urls.append(kubeconfig["clusters"][0]["cluster"]["server"])
        assert {urlsplit(u).hostname for u in urls} == {"127.0.0.1"}
        assert await asyncio.to_thread(Path(overrides["pagerduty_ca_bundle"]).is_file)
        for secret in ("pagerduty_api_token", "pagerduty_webhook_secret", "feature_flag_token"):
            assert len(overrides[secret].get_secret_value()) >= 16
        with pytest.raises(ValueError, match=r"only talks to 127\.0\.0\.1"):
            await platform.connect_webhooks("https://example.com/pagerduty/webhook")
        assert platform.healthy()
    assert not await asyncio.to_thread(overrides["kubeconfig"].exists)  # its temp dir is gone


async def test_healthy_platform_reads_normal_through_the_bots_real_adapters(
    dsn: str, slack: FakeSlack
) -> None:
    async with (
        SimulatedPlatform("healthy") as platform,
        _services(platform, dsn, slack) as services,
    ):
        for playbook in ("saga", "alert-delivery", "audit-gap"):
            report = await _diagnose(services, playbook)
            assert report.verdict == "All checks are within normal ranges.", (
                playbook,
                report.findings,
            )
        params = REMEDIATIONS["feature_flag"].params.model_validate(
            {"flag": "agent_safe_mode", "value": 1}
        )
        flags = await services.remediator.preview("feature_flag", params)
        assert "`agent_safe_mode`: 0 → 1" in flags.lines[0]


async def test_bad_deploy_is_critical_and_an_approved_rollback_makes_it_healthy(
    dsn: str, slack: FakeSlack
) -> None:
    async with (
        SimulatedPlatform("bad-deploy") as platform,
        _services(platform, dsn, slack) as services,
    ):
        before = _bands(await _diagnose(services, "saga"))
        assert before["pods"] == before["failed_sagas"] == "critical"
        assert before["compensation_rate"] == "critical"
        assert not platform.healthy()
        outcome = await _remediate(
            services, "rollback_deployment", namespace="waqiti", deployment="payment-service"
        )
        assert outcome.ok, outcome
        assert "successfully rolled out" in outcome.verification

        async def healed() -> bool:
            report = await _diagnose(services, "saga")
            return report.verdict == "All checks are within normal ranges."

        await _eventually(healed)
        assert platform.healthy()
        assert any("rolled out waqiti/payment-service:1.4.1" in n for n in platform.notices)


async def test_saga_storm_lag_grows_until_the_consumers_are_scaled_then_falls(
    dsn: str, slack: FakeSlack
) -> None:
    async with (
        SimulatedPlatform("saga-storm") as platform,
        KafkaLag(platform.kafka.bootstrap, request_timeout_ms=3000) as lag,
    ):

        async def total() -> int:
            lags = await lag.consumer_lag("payment-saga", None)
            return sum(v or 0 for v in lags.values())

        first = await total()
        assert first > 10_000
        await asyncio.sleep(1.0)
        assert await total() > first  # growing: two consumers cannot keep up
        async with _services(platform, dsn, slack) as services:
            report = _bands(await _diagnose(services, "saga"))
            assert report["saga_lag"] == report["compensation_rate"] == "critical"
            assert report["circuit_breakers"] == "warning"  # the ledger breaker is OPEN
            outcome = await _remediate(
                services,
                "scale_deployment",
                namespace="waqiti",
                deployment="payment-saga-consumer",
                replicas=6,
            )
            assert outcome.ok, outcome

            async def caught_up() -> bool:
                return await total() < LAG_WARNING

            await _eventually(caught_up)
            assert any("scaled 2 → 6 replicas" in n for n in platform.notices)
            assert any("payment-saga caught up" in n for n in platform.notices)
            # Rolling back the deploy that opened the breaker closes it, with fresh JVMs.
            rollback = await _remediate(
                services, "rollback_deployment", namespace="waqiti", deployment="payment-service"
            )
            assert rollback.ok, rollback

            async def calm() -> bool:
                bands = _bands(await _diagnose(services, "saga"))
                return bands["circuit_breakers"] == bands["compensation_rate"] == "normal"

            await _eventually(calm)
            assert platform.actuator.breaker("payment-service", "ledger").state == "CLOSED"


async def test_a_breaker_reset_closes_it_and_an_audit_restart_closes_the_gap(
    dsn: str, slack: FakeSlack
) -> None:
    async with (
        SimulatedPlatform("audit-gap") as platform,
        _services(platform, dsn, slack) as services,
    ):
        operations = ("compliance-service", "encryption.operations.total")
        records = ("encryption-audit-service", "encryption.audit.records.total")

        async def gap() -> float:
            ops, recs = await asyncio.gather(
                *(
                    services.probes.need_actuator().metric(s, m, {})
                    for s, m in (operations, records)
                )
            )
            return float(ops["measurements"][0]["value"] - recs["measurements"][0]["value"])

        assert await gap() >= 4800  # operations without an audit record
        assert _bands(await _diagnose(services, "audit-gap"))["kafka_breaker"] == "warning"
        outcome = await _remediate(
            services,
            "restart_deployment",
            namespace="waqiti",
            deployment="encryption-audit-service",
        )
        assert outcome.ok, outcome

        async def closed() -> bool:
            return await gap() < LAG_WARNING

        await _eventually(closed)
        assert platform.actuator.breaker("encryption-audit-service", "kafka").state == "CLOSED"
        assert any("encryption-audit consuming again" in n for n in platform.notices)
    async with (
        SimulatedPlatform("alert-delivery") as platform,
        _services(platform, dsn, slack) as services,
    ):
        assert _bands(await _diagnose(services, "alert-delivery"))["circuit_breakers"] == (
            "warning"
        )
        outcome = await _remediate(
            services, "circuit_breaker", service="unified-alerting-service", breaker="pagerduty"
        )
        assert outcome.ok and "CLOSED" in outcome.verification
        report = await _diagnose(services, "alert-delivery")
        assert report.verdict == "All checks are within normal ranges."
        assert "Actuator: unified-alerting-service circuit breaker pagerduty OPEN → CLOSED" in (
            platform.notices
        )


async def test_pagerduty_webhooks_flow_back_and_the_alert_declares_an_incident(
    dsn: str, slack: FakeSlack
) -> None:
    async with (
        SimulatedPlatform("saga-storm") as platform,
        running_bot(dsn, slack, **platform.settings_overrides()) as bot,
    ):
        await platform.connect_webhooks(f"{bot.base}/pagerduty/webhook")
        await bot.settle()
        rows = await bot.fetch("SELECT title, pagerduty_id FROM incidents")
        assert [r["title"] for r in rows] == [
            "SagaCompensationRateHigh: payment-service SAGA compensation rate 3.2% (> 1%)"
        ]
        pd_id = rows[0]["pagerduty_id"]
        assert platform.pagerduty.incidents[pd_id]["status"] == "triggered"
        await bot.command("resolve")
        await platform.pagerduty.drain_webhooks()
        assert platform.pagerduty.incidents[pd_id]["status"] == "resolved"
        assert "PagerDuty: incident #1 resolved by icbot" in platform.notices
        assert "PagerDuty: #1 resolved" in platform.status()


class _Shell:
    """What `ShellSandbox` needs of `bot.runtime.shell.Shell`: the services, the app, and output."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.app = build_slack_app(services)
        self.lines: list[str] = []
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1

    def print(self, text: str = "") -> None:
        self.lines.append(text)


async def test_shell_sandbox_serves_the_webhook_route_and_reports_the_platform_at_the_end(
    dsn: str, slack: FakeSlack
) -> None:
    out = io.StringIO()
    async with ShellSandbox(None, out=out) as off:  # no scenario: nothing starts
        assert off.overrides == {} and off.platform is None
    async with ShellSandbox("audit-gap", out=out) as sandbox:
        assert sandbox.platform is not None
        settings = make_settings(slack, **sandbox.overrides)
        async with open_services(settings, dsn=dsn, token=slack.token) as services:
            shell = _Shell(services)
            await sandbox.attach(shell)
            assert shell.lines[0].startswith("Scenario audit-gap: Encryption audit trail gap.")
            rows = await services.pool.fetch("SELECT title FROM incidents")
            assert [r["title"] for r in rows] == [
                "EncryptionAuditGap: encryption operations > audit records"
                " (encryption-audit lag growing)"
            ]  # the page came back through POST /pagerduty/webhook, signature checked
            assert shell.flushes == 1
            await sandbox.detach()
        assert "Sandbox audit-gap: the platform is not healthy yet" in shell.lines
        assert "  Circuit breakers: encryption-audit-service/kafka OPEN" in shell.lines
    assert "  ⚙ sandbox: PagerDuty: incident #1 triggered on payments" in out.getvalue()


# ---------------------------------------------------------------------- the shell, piped


def _shell(
    script: str, dsn: str, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    # A data directory of its own: the sandbox keeps PagerDuty's numbers there between runs.
    with tempfile.TemporaryDirectory(prefix="icbot-test-data-") as home:
        return subprocess.run(
            [sys.executable, "-m", "bot", "shell", *args],
            input=script,
            env={**os.environ, "USER": "sam", "DATABASE_URL": dsn, "XDG_DATA_HOME": home},
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def _after(out: str, marker: str) -> str:
    assert marker in out, out
    return out[out.index(marker) :]


def test_bad_deploy_rollback_approved_by_another_user_heals_the_platform(dsn: str) -> None:
    script = (
        "/ic declare Payments failing sev1\n/diagnose saga\n/rollback payment-service\n"
        # /wait: the platform notices the finished rollout on its next beat (every 0.25 s)
        "/as @dana\napprove\n/wait 2\n/diagnose saga\n/ic resolve\n"
    )
    result = _shell(script, dsn, "--sandbox", "--scenario", "bad-deploy")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Scenario bad-deploy: A bad payment-service deploy." in out  # the guided hint
    assert "Try: /ic declare Payments failing sev1" in out
    assert "PagerDuty: incident #1 triggered on payments" in out  # opened in the stand-in
    assert "PagerDuty incident #1 opened" in out
    first = _after(out, "@sam> /diagnose saga")
    assert "CRITICAL: SAGA compensation rate, payment-service pods not ready" in first
    assert "(CrashLoopBackOff)" in first
    card = _after(out, "@sam> /rollback payment-service")
    assert "to revision 2: waqiti/payment-service:1.4.1" in card
    approved = _after(out, "@dana> approve")
    assert "Done and verified (by @dana)" in approved
    assert "successfully rolled out (3/3 ready)" in approved
    again = _after(out, "@dana> /diagnose saga")
    assert "All checks are within normal ranges." in again.split("@dana> /ic resolve")[0]
    end = _after(out, "@dana> /ic resolve")
    assert "resolved INC-1" in end
    assert "PagerDuty: incident #1 resolved by icbot" in end  # resolved in the stand-in
    assert "Sandbox bad-deploy: the platform is healthy ✓" in end
    assert "PagerDuty: #1 resolved" in end
    assert "Traceback" not in result.stderr


def test_saga_storm_is_paged_then_rollback_and_scaling_calm_it(dsn: str) -> None:
    script = (
        "/diagnose saga\nRoll back payment-service\n/as @dana\napprove\n/diagnose saga\n"
        "Scale payment-saga consumers to 6\n/as @erin\napprove\n/wait 6\n/diagnose saga\n"
        "/ic resolve\n"
    )
    result = _shell(script, dsn, "--scenario", "saga-storm")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    intro = out.split("@sam> ")[0]
    assert "INC-1 · SEV2 · SAGACOMPENSATIONRATEHIGH" in intro  # declared from the PagerDuty page
    first = _after(out, "@sam> /diagnose saga")
    assert "CRITICAL: SAGA compensation rate, payment-saga consumer lag" in first
    assert "ledger OPEN" in first
    assert "circuit breaker ledger OPEN → CLOSED" in _after(out, "@dana> approve")
    second = _after(out, "@dana> /diagnose saga").split("@dana> Scale")[0]
    assert "CRITICAL: payment-saga consumer lag." in second  # the rollback calmed the rest
    assert "scaled 2 → 6 replicas" in _after(out, "@erin> approve")
    assert "Kafka: group payment-saga caught up" in out
    last = _after(out, "@erin> /diagnose saga")
    assert "All checks are within normal ranges." in last
    assert "PagerDuty: incident #1 resolved by icbot" in last
    assert "Sandbox saga-storm: the platform is healthy ✓" in last


def test_alert_delivery_breaker_reset_restores_delivery(dsn: str) -> None:
    script = (
        "/ic declare Alerts not reaching PagerDuty sev2\n/diagnose alert-delivery\n"
        "Reset the pagerduty circuit breaker\n/as @dana\napprove\n/diagnose alert-delivery\n"
        "/ic resolve\n"
    )
    result = _shell(script, dsn, "--sandbox", "--scenario", "alert-delivery")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    first = _after(out, "@sam> /diagnose alert-delivery")
    assert "warning: pagerduty / slack circuit breakers open" in first
    assert "pagerduty OPEN, slack CLOSED" in first
    approved = _after(out, "@dana> approve")
    assert "unified-alerting-service circuit breaker pagerduty OPEN → CLOSED" in approved
    assert "the breaker now reports CLOSED" in approved
    last = _after(out, "@dana> /diagnose alert-delivery")
    assert "All checks are within normal ranges." in last
    assert "Sandbox alert-delivery: the platform is healthy ✓" in last


def test_audit_gap_restart_resumes_the_audit_trail(dsn: str) -> None:
    script = (
        "/diagnose audit-gap\nRestart encryption-audit-service\n/as @dana\napprove\n/wait 3\n"
        "/diagnose audit-gap\n/ic resolve\n"
    )
    result = _shell(script, dsn, "--sandbox", "--scenario", "audit-gap")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "INC-1 · SEV2 · ENCRYPTIONAUDITGAP" in out.split("@sam> ")[0]
    first = _after(out, "@sam> /diagnose audit-gap")
    assert "encryption-audit-service: kafka OPEN" in first
    approved = _after(out, "@dana> approve")
    assert "encryption-audit-service circuit breaker kafka OPEN → CLOSED" in approved
    assert "Kafka: group encryption-audit consuming again" in approved
    last = _after(out, "@dana> /diagnose audit-gap")
    assert "All checks are within normal ranges." in last
    assert "Sandbox audit-gap: the platform is healthy ✓" in last


def test_healthy_platform_diagnoses_normal_and_a_drill_rollback_stays_healthy(dsn: str) -> None:
    script = (
        "/diagnose saga\n/diagnose alert-delivery\n/diagnose audit-gap\n"
        "/rollback payment-service --history\n/ic declare Drill sev3\n/rollback payment-service\n"
        "/as @dana\napprove\n/ic resolve\n"
    )
    result = _shell(script, dsn, "--sandbox", "--scenario", "healthy")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Scenario healthy: All quiet." in out
    for playbook in ("saga", "alert-delivery", "audit-gap"):
        section = _after(out, f"@sam> /diagnose {playbook}").split("\n@sam> ")[0]
        assert "All checks are within normal ranges." in section, section
    assert "revision 3: waqiti/payment-service:1.4.1 ← current" in out
    assert "Done and verified (by @dana)" in _after(out, "@dana> approve")
    assert "Sandbox healthy: the platform is healthy ✓" in out


def test_sandbox_defaults_to_bad_deploy_and_an_unknown_scenario_is_refused(dsn: str) -> None:
    result = _shell("", dsn, "--sandbox")
    assert result.returncode == 0, result.stderr
    assert "Scenario bad-deploy:" in result.stdout
    assert "Sandbox bad-deploy: the platform is not healthy yet" in result.stdout
    assert "payment-service 0/3 ready (waqiti/payment-service:1.4.2)" in result.stdout
    refused = _shell("", dsn, "--scenario", "nope")
    assert refused.returncode == 2
    assert "no scenario 'nope'; scenarios: alert-delivery, audit-gap, bad-deploy" in (
        refused.stderr
    )


def test_two_sandbox_runs_in_a_row_on_one_data_dir_each_link_their_pagerduty_incident(
    data_home: Path,
) -> None:
    """The stand-in's ids survive a restart (no `PIN0001` twice), and the sandbox keeps its own
    data directory, apart from the plain shell's database."""
    env = {**os.environ, "USER": "sam", "DATABASE_URL": "", "XDG_DATA_HOME": str(data_home)}
    for run in (1, 2):
        result = subprocess.run(
            [sys.executable, "-m", "bot", "shell", "--sandbox"],
            input="/ic declare Payments failing sev1\n",
            env=env,
            capture_output=True,
            text=True,
            timeout=300,  # each run starts its own embedded PostgreSQL: slow on a busy box
        )
        assert result.returncode == 0, result.stderr
        both = result.stdout + result.stderr
        assert "Traceback" not in both and "UniqueViolation" not in both, (run, both)
        assert "round_failed" not in both, (run, both)
        assert f"PagerDuty incident #{run} opened" in result.stdout, (run, result.stdout)
    assert (data_home / "icbot" / "sandbox" / "pgdata").is_dir()
    assert not (data_home / "icbot" / "pgdata").exists()
