"""`icbot` with no arguments: the terminal chat, end to end, as a newcomer runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = (
    "/ic declare Payments failing sev2\n"
    "/ic assign @dana scribe\n"
    "/ic status Mitigating\n"
    "/ic resolve\n"
    "/ic timeline\n"
)


def _run(stdin: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot"],
        input=stdin,
        env={**os.environ, "USER": "sam", **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_piped_script_prints_card_thread_replies_and_timeline(dsn: str) -> None:
    result = _run(SCRIPT, {"DATABASE_URL": dsn})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "INC-1 · SEV2 · PAYMENTS FAILING" in out  # the card
    replies = [line for line in out.splitlines() if line.startswith("  ↳")]
    assert len(replies) == 4
    assert "declared INC-1" in replies[0]
    assert "@dana is now scribe" in replies[1]
    assert "Status update from @sam: Mitigating" in replies[2]
    assert "resolved INC-1" in replies[3]
    assert "✎ card updated" in out
    timeline = out[out.index("Timeline of INC-1") :]
    assert "(4 entries)" in timeline
    for fragment in ("declared INC-1", "now scribe", "Mitigating", "resolved INC-1"):
        assert fragment in timeline
    assert "Traceback" not in result.stderr


def test_buttons_are_chosen_by_number_or_label(dsn: str) -> None:
    script = (
        "/ic declare First sev2\n/ic declare Second sev3\n/ic sev sev1\nINC-2 Second\n"
        "/ic note where am I\n1\n/ic timeline INC-1\n"
    )
    result = _run(script, {"DATABASE_URL": dsn})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Which one?" in out and "[1] INC-1 First" in out
    assert "INC-2 is now SEV1" in out
    assert "Noted in INC-1" in out


def test_as_switches_the_acting_user(dsn: str) -> None:
    result = _run("/ic declare Thing sev3\n/as @dana\n/ic status on it\n", {"DATABASE_URL": dsn})
    assert result.returncode == 0, result.stderr
    assert "@you are now" not in result.stdout
    assert "Status update from @dana: on it" in result.stdout


def test_without_database_url_an_embedded_postgres_starts_and_stops(tmp_path: Path) -> None:
    data_home = Path("/tmp") / f"icbot-shell-test-{os.getpid()}"
    data_home.mkdir(exist_ok=True)
    env = {"XDG_DATA_HOME": str(data_home), "DATABASE_URL": ""}
    first = _run("/ic declare Embedded sev3\n", env)
    assert first.returncode == 0, first.stderr
    assert "INC-1 · SEV3 · EMBEDDED" in first.stdout
    pgdata = data_home / "icbot" / "pgdata"
    assert (pgdata / "PG_VERSION").exists()
    assert not (pgdata / "postmaster.pid").exists()  # stopped on exit
    second = _run("/ic list\n", env)  # the data survives for the next run
    assert "INC-1" in second.stdout and "Embedded" in second.stdout


def test_a_status_prompt_button_opens_a_form_filled_line_by_line(dsn: str, tmp_path: Path) -> None:
    policy = (Path(__file__).resolve().parent.parent / "playbooks" / "severities.yml").read_text()
    (tmp_path / "severities.yml").write_text(
        policy.replace("status_every: 30m", "status_every: 1s")
    )
    script = (
        "/ic declare Payments failing sev2\n/wait 1.6\nPost update\n"
        "\nMitigating: rolled back\n8% of card payments\n\n/ic timeline\n"
    )
    result = _run(script, {"DATABASE_URL": dsn, "PLAYBOOKS_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "time for a status update on INC-1" in out and "[1] Post update" in out
    assert "Current status is required" in out  # the empty first answer was refused
    assert "└ submitted" in out
    assert "Status update from @sam: Mitigating: rolled back" in out
    assert "Impact: 8% of card payments" in out
