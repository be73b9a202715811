"""`icbot` with no arguments: the terminal chat, end to end, as a newcomer runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPT = (
    "/ic declare Payments failing sev2\n"
    "/ic assign @dana scribe\n"
    "/ic status Mitigating\n"
    "/ic resolve\n"
    "/ic timeline\n"
)


def _run(stdin: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # A data directory of its own unless the test gives one: the shell keeps its people there.
    with tempfile.TemporaryDirectory(prefix="icbot-test-data-") as home:
        return subprocess.run(
            [sys.executable, "-m", "bot"],
            input=stdin,
            env={**os.environ, "USER": "sam", "XDG_DATA_HOME": home, **env},
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


def test_without_database_url_an_embedded_postgres_starts_and_stops(data_home: Path) -> None:
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


def test_people_say_pin_unpin_and_use_the_shortcut_from_the_shell(dsn: str) -> None:
    script = (
        "/say anyone there?\n/help\n/ic declare Payments failing sev2\n/as @dana\n"
        "/say pool at 100% since the deploy\n/pin\n/pin 1\n/unpin 1\n/as @erin\n"
        "/say rolled back, errors gone\n/shortcut\n\n/shortcut 2\nINC-1\n/pin 9\n/ic timeline\n"
    )
    result = _run(script, {"DATABASE_URL": dsn})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "(nowhere to say it: There is no open incident." in out
    for command in ("/say [INC-n] <text>", "/pin [n], /unpin [n]", "/shortcut [n]"):
        assert command in out  # /help
    assert "  ↳ [msg 1] @dana: pool at 100% since the deploy" in out
    pinned = out[out.index("@dana> /pin\n") : out.index("@dana> /pin 1")]
    assert "(📌 added to msg 1)" in pinned and "📌 @dana pinned a message" in pinned
    assert "(your 📌 is already on msg 1)" in out
    unpinned = out[out.index("@dana> /unpin 1") : out.index("@dana> /as @erin")]
    assert "(📌 taken off msg 1)" in unpinned and "it is no longer a key event" in unpinned
    form = out[out.index("@erin> /shortcut\n") : out.index("@erin> /shortcut 2")]
    assert "┌ Add to timeline" in form and "│ @erin: rolled back, errors gone" in form
    assert "│ Key event of (Enter keeps INC-1 Payments failing), by number or name:" in form
    assert "│   1) INC-1 Payments failing" in form and "└ submitted" in form
    assert "(only you) 📌 Added to INC-1's timeline as a key event." in form
    again = out[out.index("@erin> /shortcut 2") : out.index("@erin> /pin 9")]
    assert "(only you) 📌 That message is already a key event of INC-1." in again
    assert "(no message 9; they are numbered 1-2)" in out
    timeline = out[out.index("Timeline of INC-1") :]
    assert timeline.count("pinned a message") == 2 and "no longer a key event" in timeline
    assert "Traceback" not in result.stderr


def test_a_file_the_bot_shares_shows_in_the_thread_with_its_text_capped_at_60_lines(
    dsn: str,
) -> None:
    notes = "".join(f"/ic note Root cause: finding {n}\n" for n in range(1, 26))
    script = f"/ic declare Payments failing sev2\n/ic assign @dana scribe\n{notes}/ic postmortem\n"
    result = _run(script, {"DATABASE_URL": dsn})
    assert result.returncode == 0, result.stderr
    out = result.stdout[result.stdout.index("@sam> /ic postmortem") :]
    lines = out.splitlines()
    [head] = [n for n, line in enumerate(lines) if "┌ 📄 postmortem-INC-1.md" in line]
    assert lines[head - 1].startswith("  ↳ 📄 Post-mortem draft of INC-1, asked for by @sam.")
    assert lines[head].endswith("postmortem-INC-1.md · INC-1 post-mortem draft (67 lines)")
    shown = lines[head + 1 : head + 61]
    assert all(line.startswith("  ↳ │") for line in shown)
    assert shown[0] == "  ↳ │ # Incident Post-Mortem: INC-1 Payments failing"
    assert any("Declared by @sam as SEV2" in line for line in shown)  # <@U…> shown as @sam
    assert "  ↳ │ **Severity**: SEV2" in shown  # the Markdown as it is
    assert lines[head + 61] == "  ↳ └ … 7 more lines not shown"
    assert "(only you) 📄 Posted the post-mortem draft of INC-1 in its thread" in out


def test_shell_help_lists_diagnose_and_rollback(dsn: str) -> None:
    result = _run("/help\n", {"DATABASE_URL": dsn})
    assert result.returncode == 0, result.stderr
    assert "/diagnose" in result.stdout and "/rollback" in result.stdout
