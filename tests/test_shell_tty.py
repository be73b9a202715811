"""The shell on a terminal (a pseudo-terminal, driven by pexpect): line editing as people use it."""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

import pexpect
import pyte
import pytest

UP = "\x1b[A"
CTRL_C = "\x03"
CTRL_D = "\x04"


@pytest.fixture
def tty_shell(dsn: str, tmp_path: Path) -> pexpect.spawn:
    env = {**os.environ, "USER": "sam", "DATABASE_URL": dsn, "XDG_DATA_HOME": str(tmp_path),
           "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"}  # fmt: skip
    child = pexpect.spawn(
        sys.executable, ["-m", "bot"], env=env, encoding="utf-8", timeout=30, dimensions=(40, 200)
    )
    child.expect("sam>")
    yield child
    if child.isalive():
        child.terminate(force=True)


def _leave(child: pexpect.spawn) -> float:
    """Ctrl-C twice; seconds until the process ended."""
    child.send(CTRL_C)
    child.expect("Ctrl-C again")
    started = time.monotonic()
    child.send(CTRL_C)
    child.expect(pexpect.EOF, timeout=20)
    child.close()
    return time.monotonic() - started


def test_up_arrow_recalls_the_last_command(tty_shell: pexpect.spawn) -> None:
    tty_shell.sendline("/ic declare Payments failing sev2")
    tty_shell.expect("declared INC-1")
    tty_shell.expect("sam>")
    tty_shell.send(UP)
    tty_shell.send("\r")
    tty_shell.expect("declared INC-2")  # the same line, sent again
    _leave(tty_shell)


def test_tab_completes_commands_and_playbooks(tty_shell: pexpect.spawn) -> None:
    tty_shell.send("/diag")
    tty_shell.expect("/diag")
    tty_shell.send("\t")
    tty_shell.expect("nose")  # the terminal gets only what changed on the line
    tty_shell.send("alert-deliv")
    tty_shell.expect("alert-deliv")
    tty_shell.send("\t")
    tty_shell.expect("ery")
    tty_shell.send(CTRL_C)  # clears the line: the shell stays
    tty_shell.expect("Ctrl-C again")
    tty_shell.send("/ic he\t\r")
    tty_shell.expect("/ic help")
    tty_shell.expect("/ic declare <title>")  # the help, so the completed line ran
    _leave(tty_shell)


def test_two_ctrl_c_leave_at_once_cleanly_with_exit_0(tty_shell: pexpect.spawn) -> None:
    tty_shell.send("/ic status half typed")
    seconds = _leave(tty_shell)
    assert seconds < 5
    assert tty_shell.exitstatus == 0
    assert "Traceback" not in (tty_shell.before or "")


def test_ctrl_d_leaves_with_exit_0(tty_shell: pexpect.spawn) -> None:
    tty_shell.send(CTRL_D)
    tty_shell.expect(pexpect.EOF, timeout=20)
    tty_shell.close()
    assert tty_shell.exitstatus == 0


def test_ctrl_c_during_a_sandbox_command_leaves_at_once_with_130_and_no_traceback(
    dsn: str, tmp_path: Path
) -> None:
    """The terminal's SIGINT reaches icbot only: the Kafka broker it runs is stopped after its
    clients, not killed under them (which printed NodeNotReadyError for 40 s)."""
    env = {**os.environ, "USER": "sam", "DATABASE_URL": dsn, "XDG_DATA_HOME": str(tmp_path),
           "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"}  # fmt: skip
    child = pexpect.spawn(
        sys.executable, ["-m", "bot", "shell", "--sandbox"], env=env, encoding="utf-8",
        timeout=60, dimensions=(40, 200),
    )  # fmt: skip
    child.expect("sam>")
    child.sendline("/wait 30")
    child.expect("/wait 30")
    time.sleep(1)
    child.sendintr()
    started = time.monotonic()
    child.expect(pexpect.EOF, timeout=30)
    child.close()
    assert time.monotonic() - started < 5
    assert child.exitstatus == 130
    assert "Traceback" not in child.before and "NodeNotReady" not in child.before


def test_late_output_is_printed_above_the_prompt_on_its_own_line(dsn: str, tmp_path: Path) -> None:
    """A post from the timer loop while the prompt waits with nothing typed (SEV1 escalates at
    once: about a second after the declare) gets a line of its own, and the prompt is drawn
    again under it; never `@sam>   ↳ 📞 SEV1 policy escalates…` on one line. The terminal's
    bytes are replayed in a terminal emulator (pyte) to see the screen a person would see."""
    env = {**os.environ, "USER": "sam", "DATABASE_URL": dsn, "XDG_DATA_HOME": str(tmp_path),
           "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"}  # fmt: skip
    columns = 240  # the escalation fits on one line, with or without a prompt before it
    child = pexpect.spawn(
        sys.executable, ["-m", "bot"], env=env, encoding="utf-8", timeout=30,
        dimensions=(40, columns),
    )  # fmt: skip
    transcript = io.StringIO()
    child.logfile_read = transcript
    child.expect("sam>")
    child.sendline("/ic declare Payments failing sev1")
    child.expect("declared INC-1")
    child.expect("sam>")  # the prompt is shown; nothing is typed from here on
    child.expect("SEV1 policy escalates")  # late: the timer loop's post
    child.expect(["sam>", pexpect.TIMEOUT], timeout=5)  # the prompt, drawn again (checked below)
    time.sleep(0.5)  # let the redraw finish before reading the screen
    screen = pyte.Screen(columns, 40)
    pyte.Stream(screen).feed(transcript.getvalue())
    lines = [line.rstrip() for line in screen.display]
    [late] = [n for n, line in enumerate(lines) if "SEV1 policy escalates" in line]
    assert lines[late].startswith("  ↳ 📞 SEV1 policy escalates at once"), lines[late]
    assert lines[late + 1] == "@sam>", lines[late : late + 2]
    typed = lines.index("@sam> /ic declare Payments failing sev1")
    prompts = [line for line in lines[typed + 1 :] if "sam>" in line]
    assert prompts == ["@sam>"], prompts  # the one prompt, alone on its line, at the bottom
    _leave(child)
