"""Issue 10's "done when": a scripted incident in the shell, on the sandbox, gives a post-mortem
whose timeline and figures match the script, on a timeline `icbot audit verify` accepts.

The shell runs in-process (`bot.runtime.shell.run_shell`, `--sandbox --scenario bad-deploy`) with
lines fed as piped stdin would feed them. Each line carries the minute of the incident it is typed
at: the bot's clock stands still at that minute while the line runs, so every time and figure in
the draft is known in advance.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.settings import Settings
from bot.runtime.shell import run_shell

# The incident's minutes and what is typed at each (who types is the last /as).
SCRIPT: list[tuple[int, str]] = [
    (0, "/ic declare Payments failing sev2"),
    (3, "/ic assign @dana scribe"),
    (5, "/diagnose saga"),
    (6, "/as @dana"),
    (6, "/say payment-service 1.4.2 pods crash-loop: NullPointerException in debit-wallet"),
    (7, "/pin"),
    (8, "/as @sam"),
    (8, "/ic status Identified: the 1.4.2 deploy crash-loops payment-service"),
    (9, "/rollback payment-service"),
    (11, "/as @dana"),
    (11, "approve"),
    (12, "/say SAGAs completing again, compensation rate falling"),
    (15, "/as @sam"),
    (15, "/ic status Mitigated: rolled back to 1.4.1"),
    (28, "/ic resolve Bad 1.4.2 deploy rolled back"),
    (28, "/ic postmortem"),
]


class SteppedClock:
    """The bot's clock: stands at the minute of the line being run."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class ScriptedStdin(io.StringIO):
    """Piped stdin whose every line moves the clock to that line's minute first."""

    def __init__(self, script: list[tuple[int, str]], clock: SteppedClock) -> None:
        super().__init__()
        self.lines = list(script)
        self.clock = clock

    def isatty(self) -> bool:
        return False

    def readline(self, size: int | None = -1) -> str:
        if not self.lines:
            return ""
        minute, line = self.lines.pop(0)
        moment = self.clock.start + timedelta(minutes=minute)
        assert moment >= self.clock.now, "the script's minutes must not go back"
        self.clock.now = moment
        return line + "\n"


def _draft(out: str) -> list[str]:
    """The post-mortem draft as the shell printed it: the Markdown file the bot shared in the
    incident's thread, every line of it (the shell names people, `@sam` for `<@U…>`)."""
    [start] = [m.start() for m in re.finditer(r"  ↳ ┌ 📄 postmortem-INC-1\.md · ", out)]
    head, *body = out[start:].splitlines()
    size = int(re.findall(r"\((\d+) lines\)$", head)[0])
    lines = []
    for line in body:
        if not line.startswith("  ↳ │"):
            assert line == "  ↳ └", f"the shell cut the draft: {line}"
            break
        lines.append(line.removeprefix("  ↳ │").removeprefix(" "))
    assert len(lines) == size
    return lines


def _field(draft: list[str], name: str) -> str:
    [line] = [x for x in draft if x.startswith(f"**{name}**: ")]
    return line.split(": ", 1)[1]


def _timeline(draft: list[str]) -> list[str]:
    start = draft.index("## Timeline") + 2  # after "All times UTC."
    return draft[start : draft.index("", start)]


async def test_scripted_shell_incident_gives_the_postmortem_the_script_implies_and_verifies(
    dsn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("USER", "sam")
    # A whole minute, ahead of the real clock (what the stand-ins stamp must never be "later").
    t0 = (datetime.now(UTC) + timedelta(minutes=2)).replace(second=0, microsecond=0)
    if (t0 + timedelta(minutes=40)).date() != t0.date():  # the draft dates a span past midnight
        t0 = (t0 + timedelta(days=1)).replace(hour=0, minute=1)
    clock = SteppedClock(t0)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=dsn,
        incident_channel="waqiti-incidents",
        data_dir=tmp_path,  # the sandbox keeps PagerDuty's numbers there
    )
    out = io.StringIO()
    code = await run_shell(
        settings, stdin=ScriptedStdin(SCRIPT, clock), out=out, scenario="bad-deploy", clock=clock
    )
    assert code == 0
    printed = out.getvalue()
    assert "Done and verified (by @dana)" in printed  # the rollback ran, approved by dana
    assert "Sandbox bad-deploy: the platform is healthy ✓" in printed

    def at(minute: int) -> str:
        return (t0 + timedelta(minutes=minute)).strftime("%H:%M")

    draft = _draft(printed)
    assert _field(draft, "Time to acknowledge") == "3m"  # the scribe assigned
    assert _field(draft, "Time to mitigate") == "15m"  # "Mitigated: …"
    assert _field(draft, "Time to resolve") == "28m"
    assert _field(draft, "Duration") == f"{at(0)} - {at(28)} UTC (28m)"
    events = _timeline(draft)
    when = [e.removeprefix("- ").split(" - ", 1) for e in events]
    assert [re.sub(r":.*", "", what) for _, what in when] == [
        "Declared by @sam as SEV2",
        "Acknowledged (@sam)",
        "First diagnosis `saga` (Payment SAGA compensation storm)",
        "Key event, pinned by @dana",
        "Root cause identified (@sam)",
        "Remediation",
        "Mitigated (@sam)",
        "Resolved by @sam",
    ]
    assert [time for time, _ in when] == [
        at(0), at(3), at(5), at(6), at(8), at(11), at(15), at(28)
    ]  # fmt: skip
    # The pinned message is placed when it was said (minute 6), not when it was pinned (7).
    assert "“payment-service 1.4.2 pods crash-loop: NullPointerException" in events[3]
    assert "— @dana" in events[3]
    assert "rolled back waqiti/payment-service to revision 2" in events[5]
    assert "SAGAs completing again" not in "\n".join(events)  # said, but not pinned
    assert "Resolved by @sam: Bad 1.4.2 deploy rolled back" in events[7]

    verified = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", "audit", "verify", "INC-1"],
        env={**os.environ, "DATABASE_URL": dsn, "LOG_FORMAT": "console"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "timeline intact" in verified.stdout
