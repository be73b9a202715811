"""What the sandbox shows agrees with itself: its scenario's words and the cards the bot posts."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from typing import Any

import pytest

from bot.playbooks.remediations import REMEDIATIONS
from sandbox.platform import SimulatedPlatform
from sandbox.slack_api import FakeSlack
from tests.conftest import _fresh_database
from tests.test_sandbox import _services


async def test_the_rollback_card_ages_the_bad_revision_as_the_scenario_tells_it(
    dsn: str, slack: FakeSlack
) -> None:
    """bad-deploy says 1.4.2 "went out 12 minutes ago" (`uptime: 12m`): the card agrees."""
    async with (
        SimulatedPlatform("bad-deploy") as platform,
        _services(platform, dsn, slack) as services,
    ):
        assert "went out 12 minutes ago" in platform.scenario.summary
        params = REMEDIATIONS["rollback_deployment"].params.model_validate(
            {"deployment": "payment-service"}
        )
        preview = await services.remediator.preview("rollback_deployment", params)
        text = " ".join(preview.lines)
        assert "revision 3: `waqiti/payment-service:1.4.2` (12m old)" in text, text
        assert "revision 2: `waqiti/payment-service:1.4.1` (1h 12m old)" in text, text


# ---------------------------------------------------------------------- one shell run, read often

SCRIPT = (
    "/ic declare Payments failing sev1\n/diagnose saga\n/rollback payment-service\n"
    "/as @dana\napprove\n/ic declare Second incident sev4\nfoo\n/ic resolve INC-1\n"
    "/ic postmortem INC-1\n"
)


@pytest.fixture(scope="module")
async def bad_deploy(pg_server: Any, pg_template: str) -> str:
    """bad-deploy, run once through `icbot shell --sandbox` with its output piped."""
    dsn = await _fresh_database(pg_server, pg_template)
    with tempfile.TemporaryDirectory(prefix="icbot-test-data-") as home:
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "bot", "shell", "--sandbox", "--scenario", "bad-deploy"],
            input=SCRIPT,
            env={**os.environ, "USER": "sam", "DATABASE_URL": dsn, "XDG_DATA_HOME": home},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def _between(out: str, start: str, end: str) -> str:
    assert start in out and end in out, out
    return out[out.index(start) : out.index(end)]


def test_the_shell_shows_slack_markup_as_readable_text(bad_deploy: str) -> None:
    out = bad_deploy.split("@dana> /ic postmortem")[0]  # then a Markdown file, shown as it is
    for raw in ("`", "_(", ")_", "_unassigned_", "<http", "<@U", ":link:", "&lt;", "&gt;", "↳ > "):
        assert raw not in out, (raw, [line for line in out.splitlines() if raw in line])
    assert "(normal <0.1%, warning 0.1-1%, critical >1%)" in out
    assert "Scribe: unassigned" in out
    assert "Diagnosis saga (Payment SAGA compensation storm)" in out
    assert "Incident page (timeline, picture, exports): http://" in out


def test_a_code_block_shows_as_indented_lines_without_its_fences(bad_deploy: str) -> None:
    shown = bad_deploy[bad_deploy.index("@dana> /ic postmortem INC-1") :]
    assert "```" not in shown
    assert "    # Incident Post-Mortem: INC-1 Payments failing" in shown, shown


def test_a_button_error_lists_no_buttons_of_an_incident_left_behind(bad_deploy: str) -> None:
    """After `/ic declare Second…`, the first incident's Approve/Deny are not the buttons."""
    error = _between(bad_deploy, "@dana> foo", "@dana> /ic resolve INC-1")
    assert "(no button 'foo'; no buttons are showing)" in error, error


def test_an_approval_card_is_printed_once_after_a_click(bad_deploy: str) -> None:
    clicked = _between(bad_deploy, "@dana> approve", "@dana> /ic declare Second")
    assert clicked.count("Done and verified (by @dana)") == 1, clicked
    assert clicked.count("requests Roll back payment-service") == 1, clicked


def test_measured_values_read_alike_in_the_shell(bad_deploy: str) -> None:
    diagnosis = _between(bad_deploy, "@sam> /diagnose saga", "@sam> /rollback")
    assert "warning 0.5-0.5" not in diagnosis and "warning at 0.5" in diagnosis
    rate = next(line for line in diagnosis.splitlines() if "SAGA compensation rate:" in line)
    value = rate.split(":")[1].split()[0]
    assert f"({value})" in diagnosis, (value, diagnosis)  # the detail line: "1299 of 28875 (4.5%)"


def test_the_second_incident_suggests_no_unrelated_playbook(bad_deploy: str) -> None:
    declared = _between(bad_deploy, "@dana> /ic declare Second", "@dana> foo")
    assert "Playbooks that may help" not in declared, declared
