"""The `icbot` command line as a newcomer meets it: version, help, mistakes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path


def _icbot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**os.environ, "COLUMNS": "100"},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_version_prints_the_installed_version() -> None:
    result = _icbot("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"icbot {version('icbot')}"


def test_dash_h_is_help_and_leads_with_icbot_alone_opening_the_shell() -> None:
    result = _icbot("-h")
    assert result.returncode == 0, result.stderr
    description = result.stdout.split("Usage:", 1)[1].splitlines()[2]
    assert "`icbot` alone opens the shell" in description
    assert "--install-completion" in result.stdout  # typer's completion


def test_help_shows_no_type_tags_or_braces_in_usage_lines() -> None:
    for args in (["--help"], ["postmortem", "-h"], ["audit", "verify", "-h"], ["shell", "-h"]):
        out = _icbot(*args).stdout
        assert "<bool>" not in out and "{" not in out, (args, out)
    assert "Usage: icbot postmortem [OPTIONS] INC-n" in _icbot("postmortem", "-h").stdout


def test_a_mistyped_command_gets_did_you_mean_and_exit_2() -> None:
    result = _icbot("shel")
    assert result.returncode == 2
    assert "Did you mean 'shell'?" in result.stderr
    assert len(result.stderr.splitlines()) <= 4  # not the whole usage


def _icbot_in(
    data: Path, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**os.environ, "XDG_DATA_HOME": str(data), "DATABASE_URL": "", **env},
        capture_output=True,
        text=True,
        timeout=300,  # an embedded PostgreSQL is created first: slow on a busy box
        input=stdin,
    )


def test_migrate_says_what_it_did_in_one_line_without_pgserver_internals(data_home: Path) -> None:
    first = _icbot_in(data_home, "migrate")
    assert first.returncode == 0, first.stderr
    again = _icbot_in(data_home, "migrate")
    assert again.returncode == 0, again.stderr
    assert again.stdout == "applied 0 migrations\n"
    assert "initdb" not in first.stderr + again.stderr and "pg_ctl" not in again.stderr


def test_migrate_shows_pgserver_at_debug_when_asked(data_home: Path) -> None:
    result = _icbot_in(data_home, "migrate", LOG_LEVEL="DEBUG")
    assert result.returncode == 0, result.stderr
    assert "initdb" in result.stderr


def test_serve_with_slack_unreachable_fails_in_one_line_with_the_cause(dsn: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "serve"],
        env={
            **os.environ,
            "DATABASE_URL": dsn,
            "SLACK_BOT_TOKEN": "xoxb-1-unreachable",
            "SLACK_SIGNING_SECRET": "0123456789abcdef",
            "SLACK_API_URL": "http://127.0.0.1:9/api/",  # the discard port: nothing listens
            "PORT": "0",
        },
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("icbot: cannot start: slack: conversations.list")
    assert "127.0.0.1:9" in last  # the cause, not only its type


def test_reset_deletes_the_embedded_database_only_after_confirmation(data_home: Path) -> None:
    assert _icbot_in(data_home, "migrate").returncode == 0
    pgdata = data_home / "icbot" / "pgdata"
    assert pgdata.is_dir()
    refused = _icbot_in(data_home, "reset", stdin="n\n")
    assert refused.returncode == 1 and pgdata.is_dir()
    done = _icbot_in(data_home, "reset", stdin="y\n")
    assert done.returncode == 0, done.stderr
    assert not pgdata.exists() and "deleted" in done.stdout
    again = _icbot_in(data_home, "migrate")
    assert again.returncode == 0 and "applied 0" not in again.stdout  # a fresh database


def test_reset_sandbox_leaves_the_plain_shells_database_alone(data_home: Path) -> None:
    assert _icbot_in(data_home, "migrate").returncode == 0
    (data_home / "icbot" / "sandbox").mkdir()
    (data_home / "icbot" / "sandbox" / "pagerduty.json").write_text('{"incident": 3}')
    result = _icbot_in(data_home, "reset", "--sandbox", "--yes")
    assert result.returncode == 0, result.stderr
    assert not (data_home / "icbot" / "sandbox").exists()
    assert (data_home / "icbot" / "pgdata").is_dir()


def test_reset_refuses_a_configured_database(data_home: Path) -> None:
    result = _icbot_in(data_home, "reset", "--yes", DATABASE_URL="postgresql://db.example/icbot")
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr and "Traceback" not in result.stderr


def test_playbooks_validate_checks_approvals_yml_too(tmp_path: Path) -> None:
    folder = tmp_path / "playbooks"
    shutil.copytree(Path(__file__).parent.parent / "playbooks", folder)
    ok = _icbot("playbooks", "validate", str(folder))
    assert ok.returncode == 0 and "approvals.yml OK" in ok.stdout, ok.stdout
    (folder / "approvals.yml").write_text("defaults:\n  required: many\n")
    bad = _icbot("playbooks", "validate", str(folder))
    assert bad.returncode == 1
    assert "approvals.yml" in bad.stdout and "required" in bad.stdout, bad.stdout
