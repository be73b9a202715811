"""`icbot shell`: the bot in a terminal.

The same Bolt app, domain code and PostgreSQL store as production; only the transport differs.
Lines typed here become signed Slack requests (the real wire format) given to the Bolt app;
what the bot sends goes over real HTTP, through slack_sdk, to a local Slack stand-in, and is
printed as it would appear in the channel. Works with stdin piped, for scripts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.app import SLASH_COMMANDS, build_slack_app
from bot.ids import Metadata
from bot.outbox import ChannelPacer
from bot.sandbox.shell_sandbox import ShellSandbox
from bot.sandbox.slack_api import Ephemeral, FakeSlack, Message
from bot.sandbox.slack_requests import SlackRequests
from bot.services import Services, open_services
from bot.settings import Settings
from bot.store.db import database

MENTION_TYPED = re.compile(r"(?<![<\w])@([a-z0-9][a-z0-9._-]{0,40})", re.I)
USER_REF = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
CHANNEL_REF = re.compile(r"<#([A-Z0-9]+)(?:\|([^>]*))?>")
BOLD = re.compile(r"\*([^*\n]+)\*")
LINK_REF = re.compile(r"<(https?://[^|>]+)\|([^>]+)>")
EMOJI = {
    ":rotating_light:": "🚨", ":white_check_mark:": "✅", ":mag:": "🔍", ":dart:": "🎯",
    ":hammer_and_wrench:": "🛠", ":eyes:": "👀", ":adhesive_bandage:": "🩹", ":memo:": "📝",
    ":loudspeaker:": "📢", ":bust_in_silhouette:": "👤", ":chart_with_upwards_trend:": "📈",
    ":red_circle:": "🔴", ":large_orange_circle:": "🟠", ":large_yellow_circle:": "🟡",
    ":white_circle:": "⚪", ":warning:": "⚠️", ":small_blue_diamond:": "🔹",
    ":alarm_clock:": "⏰", ":telephone_receiver:": "📞", ":clipboard:": "📋",
    ":ballot_box_with_check:": "☑️", ":stethoscope:": "🩺", ":large_green_circle:": "🟢",
    ":information_source:": "💡", ":raised_hand:": "✋", ":x:": "❌", ":hourglass:": "⌛",
    ":grey_question:": "❔", ":pager:": "📟", ":gear:": "⚙️", ":no_entry:": "⛔",
    ":hourglass_flowing_sand:": "⏳", ":speech_balloon:": "💬", ":pushpin:": "📌",
    ":no_entry_sign:": "🚫",
}  # fmt: skip
SHELL_HELP = """Type Slack commands as you would in #{channel}:
  /ic declare Payments failing sev2    /ic assign @dana scribe    /ic status Mitigating
  /ic help lists every /ic command. Buttons are numbered: type the number or the label.
  /as @name acts as another person. /wait 5 lets 5 seconds pass. /quit (or Ctrl-D) leaves."""


@dataclass(frozen=True)
class Button:
    label: str
    action_id: str
    value: str
    block_id: str
    message: Message | None  # None for buttons in an ephemeral reply
    options: tuple[dict[str, Any], ...] = ()  # a checkbox: every option of its group


@dataclass
class Form:
    """A modal the bot opened, filled in one line per field."""

    view: dict[str, Any]
    fields: list[tuple[str, str, bool]]  # (block_id, label, optional)
    values: dict[str, str | None] = field(default_factory=dict)

    @property
    def current(self) -> tuple[str, str, bool] | None:
        return next((f for f in self.fields if f[0] not in self.values), None)


class Shell:
    def __init__(self, services: Services, app: AsyncApp, slack: FakeSlack, out: TextIO) -> None:
        self.services = services
        self.app = app
        self.slack = slack
        self.out = out
        self.requests = SlackRequests(signing_secret=secrets.token_hex(16))
        self.channel_name = services.settings.incident_channel.lstrip("#")
        self.channel_id = services.channel_id
        self.user_name = (
            re.sub(r"[^a-z0-9._-]", "", (os.environ.get("USER") or "you").lower()) or "you"
        )
        self.slack.add_user(self.user_name)
        self.buttons: list[Button] = []
        self.checked: dict[str, set[str]] = {}  # checkbox block_id -> ticked option values
        self.form: Form | None = None
        self.busy = asyncio.Lock()
        self._events: list[tuple[str, Any]] = []
        self._digest_lines: dict[str, set[str]] = {}  # digest message ts -> lines printed
        slack.on_change.append(lambda kind, obj: self._events.append((kind, obj)))

    # -- input -------------------------------------------------------------------------------

    async def handle(self, line: str) -> bool:
        """Run one line; False means quit."""
        async with self.busy:
            return await self._handle(line)

    async def _handle(self, line: str) -> bool:
        line = line.strip()
        if self.form is not None:
            await self._fill(line)
            return True
        if not line or line.startswith("#"):
            return True
        if line in ("/quit", "/exit"):
            return False
        if line in ("/help", "?"):
            self.print(SHELL_HELP.format(channel=self.channel_name))
            return True
        if line.startswith("/wait"):
            await self._wait(line[5:].strip())
            return True
        if line.startswith("/as"):
            name = line[3:].strip().lstrip("@").lower()
            if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,40}", name):
                self.print("usage: /as @name")
            else:
                self.user_name = name
                self.slack.add_user(name)
                self.print(f"(you are now @{name})")
            return True
        if line.startswith("/"):
            command, _, text = line.partition(" ")
            if command not in SLASH_COMMANDS:
                self.print(f"(Slack: {command} is not a command this app has; try /ic help)")
                return True
            await self._slash(command, self._mentions(text.strip()))
        else:
            await self._click(line)
        return True

    async def _wait(self, arg: str) -> None:
        """`/wait 5`: let time pass (for scripts), printing whatever the timers post."""
        try:
            seconds = float(arg or "1")
        except ValueError:
            self.print("usage: /wait <seconds>")
            return
        deadline = asyncio.get_running_loop().time() + max(0.0, min(seconds, 600.0))
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            await asyncio.sleep(min(left, 0.2))
            await self.services.outbox.drain()
            self.flush()

    def _mentions(self, text: str) -> str:
        """`@dana` typed in the terminal becomes the `<@U…|dana>` Slack sends for a picked name."""

        def escape(match: re.Match[str]) -> str:
            name = match.group(1).lower()
            return f"<@{self.slack.add_user(name)}|{name}>"

        return MENTION_TYPED.sub(escape, text)

    async def _slash(self, command: str, text: str) -> None:
        user_id = self.slack.add_user(self.user_name)
        request = self.requests.slash_command(
            command,
            text,
            user_id=user_id,
            user_name=self.user_name,
            channel_id=self.channel_id,
            channel_name=self.channel_name,
            response_url=self.slack.new_response_url(channel=self.channel_id, user=user_id),
        )
        await self._dispatch(request.body, request.headers)

    async def _click(self, choice: str) -> None:
        button = self._button(choice)
        if button is None:
            labels = ", ".join(f"{i}) {b.label}" for i, b in enumerate(self.buttons, 1))
            self.print(
                f"(no button {choice!r}; "
                f"{'choose ' + labels if labels else 'no buttons are showing'})"
            )
            return
        user_id = self.slack.add_user(self.user_name)
        selected = None
        if button.options:
            ticked = self.checked.setdefault(button.block_id, set())
            ticked.symmetric_difference_update({button.value})
            selected = [o for o in button.options if o["value"] in ticked]
        message = None
        if button.message is not None:
            message = {"type": "message", "ts": button.message.ts, "text": button.message.text,
                       "blocks": button.message.blocks}  # fmt: skip
        request = self.requests.block_action(
            action_id=button.action_id,
            value=button.value,
            label=button.label,
            block_id=button.block_id,
            user_id=user_id,
            user_name=self.user_name,
            channel_id=self.channel_id,
            channel_name=self.channel_name,
            response_url=self.slack.new_response_url(
                channel=self.channel_id,
                user=user_id,
                message_ts=button.message.ts if button.message else None,
            ),
            message=message,
            selected_options=selected,
        )
        await self._dispatch(request.body, request.headers)

    # -- modals ------------------------------------------------------------------------------

    def _open_form(self, view: dict[str, Any]) -> None:
        fields = [
            (b["block_id"], b["label"]["text"], bool(b.get("optional")))
            for b in view.get("blocks", [])
            if b.get("type") == "input"
        ]
        self.print(f"┌ {view['title']['text']} (one line per field; /cancel closes it)")
        for line in self._render(
            [b for b in view["blocks"] if b["type"] != "input"], "", message=None
        ):
            self.print(f"│ {line}")
        self.form = Form(view=view, fields=fields)
        self._ask()

    def _ask(self) -> None:
        assert self.form is not None
        current = self.form.current
        if current is not None:
            self.print(f"│ {current[1]}{' (optional, Enter skips)' if current[2] else ''}:")

    async def _fill(self, line: str) -> None:
        form = self.form
        assert form is not None
        if line == "/cancel":
            self.form = None
            self.print("└ (closed without posting)")
            return
        current = form.current
        assert current is not None
        block_id, label, optional = current
        if not line and not optional:
            self.print(f"│ {label} is required:")
            return
        form.values[block_id] = line or None
        if form.current is not None:
            self._ask()
            return
        user_id = self.slack.add_user(self.user_name)
        request = self.requests.view_submission(
            form.view, form.values, user_id=user_id, user_name=self.user_name
        )
        self.form = None
        self.print("└ submitted")
        await self._dispatch(request.body, request.headers, form=form)

    def _button(self, choice: str) -> Button | None:
        if choice.isdigit() and 1 <= int(choice) <= len(self.buttons):
            return self.buttons[int(choice) - 1]
        wanted = choice.lower()
        exact = [b for b in self.buttons if b.label.lower() == wanted]
        prefix = [b for b in self.buttons if b.label.lower().startswith(wanted)]
        if exact:
            return exact[0]
        return prefix[0] if len(prefix) == 1 else None

    async def _dispatch(self, body: str, headers: dict[str, str], form: Form | None = None) -> None:
        request = AsyncBoltRequest(body=body, headers={k: [v] for k, v in headers.items()})
        response = await self.app.async_dispatch(request)
        if response.status != 200:
            self.print(f"(Slack would show an error: HTTP {response.status})")
        elif response.body and form is not None:
            self._form_errors(form, response.body)
        elif response.body:
            self._ack_body(response.body)
        await self.services.inflight.idle()
        await self.services.outbox.drain()
        self.flush()

    def _form_errors(self, form: Form, body: str) -> None:
        """The app refused the modal: show the errors and ask those fields again."""
        errors = json.loads(body).get("errors") or {}
        for block_id, message in errors.items():
            form.values.pop(block_id, None)
            self.print(f"│ ✗ {message}")
        if errors:
            self.form = form
            self._ask()

    def _ack_body(self, body: str) -> None:
        try:
            data = json.loads(body)
        except ValueError:
            self.print(f"(only you) {body}")
            return
        self._events.append(("ack", Ephemeral(
            channel=self.channel_id, user=None, text=str(data.get("text", "")),
            blocks=list(data.get("blocks") or []), thread_ts=None, via="ack",
        )))  # fmt: skip

    # -- output ------------------------------------------------------------------------------

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def flush(self) -> None:
        events, self._events = self._events, []
        for kind, obj in events:
            if kind == "view" and isinstance(obj, dict):
                self._open_form(obj)
            elif isinstance(obj, Message):
                self._show_message(kind, obj)
            elif isinstance(obj, Ephemeral):
                self._show_ephemeral(obj)

    def _show_message(self, kind: str, message: Message) -> None:
        if message.user != self.slack.bot_user_id:
            return
        if message.thread_ts and message.thread_ts != message.ts:
            if (message.metadata or {}).get("event_type") == Metadata.DIGEST:
                self._show_digest(message)
                return
            lines = self._render_own(message.blocks, message.text, message=message)
            contexts = [b for b in message.blocks if b.get("type") == "context"]
            if len(lines) == 2 and len(contexts) == 1:  # an entry and its time: one line
                lines = [f"{lines[0]}  ({lines[1]})"]
            for line in lines:
                self.print(f"  ↳ {line}")
            return
        if kind == "update":
            self.print(f"  ✎ card updated: {self._plain(message.text)}")
            return
        if kind != "post":
            return
        self.print(f"[#{self.channel_name}] icbot:")
        lines = self._render_own(message.blocks, message.text, message=message)
        width = max((len(line) for line in lines), default=0)
        self.print("  ┌" + "─" * min(width + 2, 78))
        for line in lines:
            self.print(f"  │ {line}")
        self.print("  └" + "─" * min(width + 2, 78))

    def _show_digest(self, message: Message) -> None:
        """The digest is edited in place as chatter comes in: print only its lines not yet seen."""
        seen = self._digest_lines.setdefault(message.ts, set())
        body = [b for b in message.blocks if b.get("type") == "section"]
        for line in self._render(body, message.text, message=None):
            if line not in seen:
                seen.add(line)
                self.print(f"  ↳ · {line}")

    def _show_ephemeral(self, eph: Ephemeral) -> None:
        lines = self._render_own(eph.blocks, eph.text, message=None)
        prefix = "(only you) "
        for line in lines:
            self.print(prefix + line)
            prefix = "           "

    def _render_own(
        self, blocks: list[dict[str, Any]], fallback: str, *, message: Message | None
    ) -> list[str]:
        """Render a message; its buttons become the numbered ones. One without buttons (a reply
        posted by a timer or a webhook meanwhile) leaves the previous buttons clickable."""
        previous, self.buttons = self.buttons, []
        lines = self._render(blocks, fallback, message=message)
        if not self.buttons:
            self.buttons = previous
        return lines

    def _render(
        self, blocks: list[dict[str, Any]], fallback: str, *, message: Message | None
    ) -> list[str]:
        if not blocks:
            return self._plain(fallback).splitlines() or [""]
        lines: list[str] = []
        for block in blocks:
            kind = block.get("type")
            if kind == "header":
                lines.append(self._plain(block["text"]["text"]).upper())
            elif kind == "section":
                if "text" in block:
                    lines.extend(self._plain(block["text"]["text"]).splitlines())
                fields = [
                    self._plain(f["text"]).replace("\n", ": ", 1) for f in block.get("fields", [])
                ]
                for start in range(0, len(fields), 2):
                    lines.append("   ".join(f"{f:<36}" for f in fields[start : start + 2]).rstrip())
            elif kind == "context":
                lines.append(
                    " · ".join(self._plain(e.get("text", "")) for e in block.get("elements", []))
                )
            elif kind == "actions":
                for element in block.get("elements", []):
                    if element.get("type") == "checkboxes":
                        lines.extend(self._checkboxes(block, element, message))
                    if element.get("type") != "button":
                        continue
                    label = element["text"]["text"]
                    button = Button(
                        label=label,
                        action_id=element["action_id"],
                        value=element.get("value", ""),
                        block_id=block.get("block_id", ""),
                        message=message,
                    )
                    self.buttons.append(button)
                    lines.append(f"[{len(self.buttons)}] {label}")
            elif kind == "divider":
                lines.append("─" * 20)
        return lines

    def _checkboxes(
        self, block: dict[str, Any], element: dict[str, Any], message: Message | None
    ) -> list[str]:
        block_id = block.get("block_id", "")
        ticked = self.checked.get(block_id, set())
        options = tuple(element.get("options", []))
        lines = []
        for option in options:
            label = option["text"]["text"]
            self.buttons.append(
                Button(
                    label=label,
                    action_id=element["action_id"],
                    value=option["value"],
                    block_id=block_id,
                    message=message,
                    options=options,
                )
            )
            box = "☑" if option["value"] in ticked else "☐"
            lines.append(f"[{len(self.buttons)}] {box} {label}")
        return lines

    async def background(self) -> None:
        """Print what the timers post between commands (status prompts, reminders)."""
        while True:
            await asyncio.sleep(0.5)
            if self._events and not self.busy.locked():
                async with self.busy:
                    await self.services.outbox.drain()
                    self.flush()

    def _plain(self, text: str) -> str:
        text = USER_REF.sub(lambda m: "@" + (self.slack.user_name(m.group(1)) or m.group(1)), text)
        text = CHANNEL_REF.sub(lambda m: "#" + (m.group(2) or self._channel_name(m.group(1))), text)
        text = LINK_REF.sub(lambda m: f"{m.group(2)} ({m.group(1)})", text)
        for code, emoji in EMOJI.items():
            text = text.replace(code, emoji)
        return BOLD.sub(r"\1", text)

    def _channel_name(self, channel_id: str) -> str:
        return self.channel_name if channel_id == self.channel_id else channel_id


async def run_shell(
    settings: Settings,
    *,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    scenario: str | None = None,
) -> int:
    """`scenario`: also run the simulated platform (`icbot shell --sandbox`) with it loaded."""
    interactive = stdin.isatty()
    channel = settings.incident_channel.lstrip("#")
    async with FakeSlack(channels=(channel,)) as slack, ShellSandbox(scenario, out=out) as sandbox:
        shell_settings = settings.model_copy(
            update={"slack_api_url": slack.url, **sandbox.overrides}
        )
        dsn = settings.database_url.get_secret_value() if settings.database_url else None
        async with (
            database(dsn, settings.data_dir) as url,
            open_services(
                shell_settings,
                dsn=url,
                token=slack.token,
                pacer=ChannelPacer(per_second=0, burst=1),
            ) as services,
        ):
            shell = Shell(services, build_slack_app(services), slack, out)
            printer = asyncio.create_task(shell.background())
            if interactive:
                shell.print(SHELL_HELP.format(channel=channel))
            await sandbox.attach(shell)
            while True:
                if interactive:
                    out.write(f"@{shell.user_name}> ")
                    out.flush()
                line = await asyncio.to_thread(stdin.readline)
                if not line:
                    break
                if not interactive and line.strip():
                    shell.print(f"@{shell.user_name}> {line.rstrip()}")
                if not await shell.handle(line):
                    break
            await sandbox.detach()
            printer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await printer
    return 0
