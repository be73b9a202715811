"""The shell's line editor on a terminal (prompt_toolkit): history, ↑/↓, Tab completion,
output printed above the prompt, a bottom toolbar with the open incidents.

Ctrl-C clears the line; a second Ctrl-C in a row, or Ctrl-D, leaves. With stdin piped the shell
reads plain lines instead (`bot/runtime/shell.py`), so scripts never meet prompt_toolkit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory
from prompt_toolkit.patch_stdout import patch_stdout

from bot.core.models import Incident, Status, incident_ref
from commands.parsing import ALIASES, USAGE

SHELL_COMMANDS = ("/ic", "/diagnose", "/rollback", "/say", "/pin", "/unpin", "/shortcut", "/as",
                  "/wait", "/help", "/quit")  # fmt: skip
TOOLBAR_REFRESH = 2.0  # seconds between reads of the open incidents
LEAVE_HINT = "(Ctrl-C again, or Ctrl-D, leaves the shell)"


class ShellCompleter(Completer):
    """Commands, `/ic` subcommands, playbooks, deployments, @users and INC-n, by position."""

    def __init__(
        self,
        *,
        playbooks: Callable[[], Iterable[str]],
        deployments: Callable[[], Iterable[str]],
        users: Callable[[], Iterable[str]],
        incidents: Callable[[], Iterable[int]],
    ) -> None:
        self.playbooks = playbooks
        self.deployments = deployments
        self.users = users
        self.incidents = incidents

    def candidates(self, words: list[str], current: str) -> Iterable[str]:
        """What may stand at `current`, the word being typed after `words`."""
        if current.startswith("@"):
            return [f"@{name}" for name in self.users()]
        if current.upper().startswith("INC"):
            return [incident_ref(n) for n in self.incidents()]
        if not words:
            return SHELL_COMMANDS
        command = words[0]
        if command == "/ic" and len(words) == 1:
            return [*USAGE, *ALIASES]
        if command == "/diagnose" and len(words) == 1:
            return sorted(self.playbooks())
        if command == "/rollback" and len(words) == 1:
            return sorted(self.deployments())
        return []

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        before = document.text_before_cursor
        words = before.split()
        current = "" if not words or before.endswith(" ") else words.pop()
        for candidate in self.candidates(words, current):
            if candidate.lower().startswith(current.lower()):
                yield Completion(candidate + " ", start_position=-len(current), display=candidate)


def open_incidents_line(incidents: Iterable[Incident]) -> str:
    """` INC-2 SEV1 Payments failing · INC-3 SEV3 Slow search `, or that none is open."""
    shown = [
        f"{incident_ref(i.id)} {i.severity.upper()} {i.title[:30]}"
        for i in incidents
        if i.status is not Status.RESOLVED
    ]
    return " " + (" · ".join(shown) if shown else "no open incident") + " "


async def read_loop(
    *,
    prompt: Callable[[], str],
    handle: Callable[[str], Awaitable[bool]],
    completer: ShellCompleter,
    history: Path,
    open_incidents: Callable[[], Awaitable[list[Incident]]],
    attach: Callable[[], None],
) -> None:
    """Read and run lines until /quit, Ctrl-D, or two Ctrl-C in a row. `attach` is called
    once stdout prints above the prompt (the shell should write to `sys.stdout` from then)."""
    history.parent.mkdir(parents=True, exist_ok=True)
    toolbar = [" open incidents: … "]

    async def refresh_toolbar() -> None:
        while True:
            toolbar[0] = " open: " + open_incidents_line(await open_incidents()).strip() + " "
            session.app.invalidate()
            await asyncio.sleep(TOOLBAR_REFRESH)

    session: PromptSession[str] = PromptSession(
        history=FileHistory(str(history)),
        completer=completer,
        complete_while_typing=False,
        bottom_toolbar=lambda: toolbar[0],
    )
    interrupted_at: float | None = None
    with patch_stdout(raw=True):
        attach()
        refresher = asyncio.create_task(refresh_toolbar())
        try:
            while True:
                try:
                    line = await session.prompt_async(prompt())
                except KeyboardInterrupt:
                    now = time.monotonic()
                    if interrupted_at is not None:
                        return
                    interrupted_at = now
                    print(LEAVE_HINT)
                    continue
                except EOFError:
                    return
                interrupted_at = None
                if not await handle(line):
                    return
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
