"""Issue 21's "Done when", as one drill: `icbot shell --sandbox --scenario bad-deploy`, piped,
ends with a Jira key in the thread, impact annotations in the Grafana stand-in, a PagerDuty
summary note and an approved status-page update. One subprocess (about 40 s) instead of one
per integration."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

SCRIPT = (
    "/ic declare Payments failing sev1\n"
    "/ic assign @dana comms\n"
    "/ic action Add a canary step to deploys @dana\n"
    "/diagnose saga\n"
    "/rollback payment-service\n"
    "/as @dana\napprove\n/wait 2\n"
    "/as @sam\n"
    "/ic statuspage investigating Some card payments are failing; we are on it.\n"
    "/as @dana\napprove\n"
    "/as @sam\n"
    "/ic note Root cause: payments 1.4.2 broke the ledger client\n"
    "/ic action done 1\n"
    "/ic resolve rolled back payment-service\n"
)


def test_the_sandbox_bad_deploy_drill_reaches_jira_grafana_pagerduty_and_the_status_page(
    dsn: str,
) -> None:
    with tempfile.TemporaryDirectory(prefix="icbot-test-data-") as home:
        result = subprocess.run(
            [sys.executable, "-m", "bot", "shell", "--sandbox", "--scenario", "bad-deploy"],
            input=SCRIPT,
            env={**os.environ, "USER": "sam", "DATABASE_URL": dsn, "XDG_DATA_HOME": home},
            capture_output=True, text=True, timeout=150,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout

    # Jira: the action item is filed, its key shown in the thread, moved to Done when ticked.
    assert "Jira: PAY-1 created: Add a canary step to deploys (assignee Dana)" in out
    assert "🎫 Jira PAY-1" in out  # the key, in the incident's thread
    assert "Jira: PAY-1 moved to Done by icbot" in out
    assert "Jira: PAY-1 [Done] Add a canary step to deploys" in out  # the summary at the end

    # The status page: the card shows the exact public text; comms approves; published once.
    proposed = out[out.index("@sam> /ic statuspage") :]
    assert "Some card payments are failing; we are on it." in proposed
    assert "Components: Payments API → major_outage, Transfers → major_outage" in proposed
    approved = proposed[proposed.index("@dana> approve") :]
    assert "Status page: “Payments failing” published, investigating" in approved
    assert "created the public incident" in approved
    assert out.count("published, investigating") == 1
    assert "Status page: “Payments failing” investigating" in out  # the platform's summary

    # Grafana and PagerDuty at the resolve. No "Mitigated" update: mitigated at the resolve, so
    # one window (declared → resolved) on each dashboard.
    assert "Grafana: annotating the impact window (waqiti-payments panel 2" in out
    assert (
        "Grafana annotations: waqiti-payments panel 2 (INC-1), waqiti-payment-saga panel 4 (INC-1)"
    ) in out
    assert "PagerDuty summary notes: #1\n" in out
    assert "PagerDuty: #1 resolved" in out
