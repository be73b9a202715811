"""`icbot shell`: the bot in a terminal.

The same Bolt app, domain code and PostgreSQL store as production; only the transport differs.
Lines typed here become signed Slack requests (the real wire format) given to the Bolt app;
what the bot sends goes over real HTTP, through slack_sdk, to a local Slack stand-in, and is
printed as it would appear in the channel. Works with stdin piped, for scripts.

People's side of Slack goes through the stand-in too: `/say` posts a message in an incident's
thread and `/pin` reacts to one, and the stand-in delivers them to the app as the signed Events
API requests Slack sends; `/shortcut` runs the "Add to incident timeline" message shortcut.
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

from bot.core.errors import UserError
from bot.core.ids import Metadata
from bot.core.mentions import mentioned
from bot.core.models import Clock, Incident, Status, utcnow
from bot.core.settings import Settings
from bot.delivery.outbox import ChannelPacer
from bot.domain.scribe import PIN_REACTION
from bot.runtime.directory import shell_users
from bot.runtime.services import open_services
from bot.runtime.terminal_text import terminal_text
from bot.store import captures as captures_sql
from bot.store.db import database
from commands.app import SHORTCUTS, SLASH_COMMANDS, build_slack_app
from commands.services import Services
from sandbox.shell_sandbox import ShellSandbox
from sandbox.slack_api import Ephemeral, FakeSlack, Message
from sandbox.slack_requests import SignedRequest, SlackRequests

MENTION_TYPED = re.compile(r"(?<![<\w])@([a-z0-9][a-z0-9._-]{0,40})", re.I)
USER_REF = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
CHANNEL_REF = re.compile(r"<#([A-Z0-9]+)(?:\|([^>]*))?>")
FILE_LINES = 60  # of a file shared in a thread, shown in the terminal; the rest is counted
SHELL_HELP = """Type Slack commands as you would in #{channel}:
  /ic declare Payments failing sev2    /ic assign @dana scribe    /ic status Mitigating
  /ic help lists every /ic command. Buttons are numbered: type the number or the label.
  /diagnose <playbook> [INC-n] runs a playbook's checks (/diagnose alone lists them);
  /rollback <deployment> [revision] asks for an approved rollback.
  /say [INC-n] <text> posts in the incident's thread (messages are numbered: [msg 1]).
  /pin [n], /unpin [n] add or take away your 📌 on message n (default: the last one);
  /shortcut [n] runs "Add to incident timeline" on it.
  /as @name acts as another person. /wait 5 lets 5 seconds pass. /quit (or Ctrl-D) leaves.
  /slack down, /slack up: Slack's API fails, then recovers (email fallback, with --sandbox)."""
INCIDENT_REF = re.compile(r"^INC-(\d+)\s*", re.I)


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
    elements: dict[str, dict[str, Any]] = field(default_factory=dict)  # block_id -> element

    @property
    def current(self) -> tuple[str, str, bool] | None:
        return next((f for f in self.fields if f[0] not in self.values), None)


class Shell:
    def __init__(self, services: Services, app: AsyncApp, slack: FakeSlack, out: TextIO) -> None:
        self.services = services
        self.app = app
        self.slack = slack
        self.out = out
        # bold, italic and dim code on a terminal that shows them; plain text down a pipe
        self.styled = out.isatty() and not os.environ.get("NO_COLOR")
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
        self.said: list[Message] = []  # what people said, numbered [msg n] as printed
        self.thread_ts: str | None = None  # the incident thread the bot last posted in
        self.busy = asyncio.Lock()
        self.open_numbers: list[int] = []  # INC-n of the open incidents, for Tab completion
        self._events: list[tuple[str, Any]] = []
        self._digest_lines: dict[str, set[str]] = {}  # digest message ts -> lines printed
        self._printed: dict[str, list[str]] = {}  # message ts -> its lines as last printed
        self._acting = False  # a line typed here is being handled (not a timer's post)
        self._known: dict[str, str] = {}  # user id -> name, as users.info gave it
        self.platform_hint = False  # no sandbox: say once where /diagnose finds something
        slack.on_change.append(lambda kind, obj: self._events.append((kind, obj)))
        slack.deliver_events_to(self.requests, self._deliver)

    # -- input -------------------------------------------------------------------------------

    async def handle(self, line: str) -> bool:
        """Run one line; False means quit."""
        async with self.busy:
            self._acting = True
            try:
                return await self._handle(line)
            finally:
                self._acting = False

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
        if line.split(" ", 1)[0] == "/slack":
            self._slack_outage(line[6:].strip())
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
        command, _, rest = line.partition(" ")
        people = {"/say": self._say, "/pin": self._pin, "/unpin": self._unpin,
                  "/shortcut": self._shortcut}  # fmt: skip
        if command in people:
            await people[command](rest.strip())
            return True
        if line.startswith("/"):
            command, _, text = line.partition(" ")
            if command not in SLASH_COMMANDS:
                self.print(f"(Slack: {command} is not a command this app has; try /ic help)")
                return True
            await self._slash(command, self._mentions(text.strip()))
            if command == "/diagnose" and text.strip() and self.platform_hint:
                self.platform_hint = False
                self.print(
                    "(no platform runs beside this shell, so the checks reach nothing:"
                    " icbot shell --sandbox starts one where every playbook finds something)"
                )
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
            await self._drain()
            await self._flush()

    def _slack_outage(self, arg: str) -> None:
        """`/slack down`, `/slack up`: Slack's Web API answers 503 (the email fallback's drill)."""
        if arg == "down":
            self.slack.down()
            self.print(
                "(Slack's Web API now answers 503: the bot's posts wait in its outbox. After"
                " SLACK_DOWN_AFTER the incident's key events also go by email. /slack up ends it.)"
            )
        elif arg == "up":
            self.slack.up()
            self.print("(Slack answers again: the outbox posts what waited, with its back-off.)")
        else:
            self.print("usage: /slack down | /slack up")

    async def _drain(self) -> None:
        """Post what the outbox holds; while Slack is down (`/slack down`) it waits there."""
        if self.slack.outage is None:
            # After an outage some posts wait out their back-off (up to a minute): the outbox
            # worker posts them then, and `background` prints them.
            with contextlib.suppress(TimeoutError):
                await self.services.outbox.drain()

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

    # -- what people do in the channel ---------------------------------------------------------

    async def _say(self, text: str) -> None:
        """`/say [INC-n] <text>`: post as the current user in the incident's thread."""
        ref = INCIDENT_REF.match(text)
        text = text[ref.end() :] if ref else text
        if not text:
            self.print("usage: /say [INC-n] <text>")
            return
        try:
            thread_ts = await self._incident_thread(int(ref.group(1)) if ref else None)
        except UserError as exc:
            self.print(f"(nowhere to say it: {self._plain(str(exc))})")
            return
        user_id = self.slack.add_user(self.user_name)
        said = MENTION_TYPED.sub(lambda m: f"<@{self.slack.add_user(m.group(1).lower())}>", text)
        await self.slack.user_says(self.channel_id, user_id, said, thread_ts=thread_ts)
        await self._settle()

    async def _incident_thread(self, ref: int | None) -> str:
        """The thread of INC-`ref`; else of the incident the bot last posted about; else of the
        only open (or the latest) incident. Raises UserError."""
        if ref is None and self.thread_ts is not None:
            async with self.services.pool.acquire() as conn:
                found = await captures_sql.incident_for_thread(
                    conn, self.channel_id, self.thread_ts
                )
            if found is not None:
                return self.thread_ts
        incident = await self.services.incidents.get(ref)
        if incident.thread_ts is None:
            raise UserError(f"{incident.ref}'s card is not posted yet.")
        return incident.thread_ts

    def _message(self, arg: str, usage: str) -> Message | None:
        """Message `[msg n]`, or the last one said; None (with a word why) if there is none."""
        if arg and not arg.isdigit():
            self.print(f"usage: {usage}")
            return None
        if not self.said:
            self.print("(no messages yet: /say posts one)")
            return None
        if not arg:
            return self.said[-1]
        if not 1 <= int(arg) <= len(self.said):
            self.print(f"(no message {arg}; they are numbered 1-{len(self.said)})")
            return None
        return self.said[int(arg) - 1]

    async def _pin(self, arg: str) -> None:
        await self._react(arg, added=True)

    async def _unpin(self, arg: str) -> None:
        await self._react(arg, added=False)

    async def _react(self, arg: str, *, added: bool) -> None:
        """`/pin [n]` / `/unpin [n]`: add or take away your :pushpin: reaction."""
        message = self._message(arg, f"/{'pin' if added else 'unpin'} [n]")
        if message is None:
            return
        n = self.said.index(message) + 1
        user_id = self.slack.add_user(self.user_name)
        if (user_id in message.reactions.get(PIN_REACTION, [])) == added:
            self.print(f"(your 📌 is {'already' if added else 'not'} on msg {n})")
            return
        self.print(f"(📌 {'added to' if added else 'taken off'} msg {n})")
        await self.slack.user_reacts(
            message.channel, message.ts, user_id, PIN_REACTION, added=added
        )
        await self._settle()

    async def _shortcut(self, arg: str) -> None:
        """`/shortcut [n]`: the message shortcut on message n; its form is filled here."""
        message = self._message(arg, "/shortcut [n]")
        if message is None:
            return
        [callback_id] = [c for c, kind in SHORTCUTS.items() if kind == "message"]
        user_id = self.slack.add_user(self.user_name)
        request = self.requests.message_shortcut(
            callback_id,
            self.slack.payload_message(message),
            user_id=user_id,
            user_name=self.user_name,
            channel_id=message.channel,
            channel_name=self._channel_name(message.channel),
            response_url=self.slack.new_response_url(channel=message.channel, user=user_id),
        )
        await self._dispatch(request.body, request.headers)

    async def _deliver(self, request: SignedRequest) -> None:
        """The stand-in delivering an Events API request, as Slack POSTs it to the app."""
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
        elements = {
            b["block_id"]: b.get("element") or {}
            for b in view.get("blocks", [])
            if b.get("type") == "input"
        }
        self.form = Form(view=view, fields=fields, elements=elements)
        self._ask()

    def _ask(self) -> None:
        assert self.form is not None
        current = self.form.current
        if current is None:
            return
        options = self._options(current[0])
        if not options:
            self.print(f"│ {current[1]}{' (optional, Enter skips)' if current[2] else ''}:")
            return
        initial = self.form.elements[current[0]].get("initial_option")
        keeps = f" (Enter keeps {initial['text']['text']})" if initial else ""
        self.print(f"│ {current[1]}{keeps}, by number or name:")
        for n, option in enumerate(options, 1):
            self.print(f"│   {n}) {option['text']['text']}")

    def _options(self, block_id: str) -> list[dict[str, Any]]:
        """A select's options; [] for a text field."""
        assert self.form is not None
        element = self.form.elements.get(block_id) or {}
        if element.get("type") != "static_select":
            return []
        return list(element.get("options") or [])

    def _choose(self, block_id: str, line: str) -> str | None:
        """The option value a line picks: its number, its name (or the start of it), or the
        initial option for an empty line; None if it picks nothing."""
        assert self.form is not None
        options = self._options(block_id)
        if not line:
            initial = self.form.elements[block_id].get("initial_option")
            return str(initial["value"]) if initial else None
        if line.isdigit() and 1 <= int(line) <= len(options):
            return str(options[int(line) - 1]["value"])
        wanted = line.lower()
        named = [o for o in options if str(o["text"]["text"]).lower().startswith(wanted)]
        exact = [o for o in named if str(o["text"]["text"]).lower().split()[0] == wanted]
        picked = exact or named
        return str(picked[0]["value"]) if len(picked) == 1 else None

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
        if self._options(block_id):
            chosen = self._choose(block_id, line)
            if chosen is None and (line or not optional):
                self.print(f"│ {label}: choose one of 1-{len(self._options(block_id))}:")
                return
            form.values[block_id] = chosen
            if form.current is not None:
                self._ask()
                return
            await self._submit(form)
            return
        if not line and not optional:
            self.print(f"│ {label} is required:")
            return
        form.values[block_id] = line or None
        if form.current is not None:
            self._ask()
            return
        await self._submit(form)

    async def _submit(self, form: Form) -> None:
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
        await self._settle()

    async def _settle(self) -> None:
        await self.services.inflight.idle()
        await self._drain()
        await self._flush()

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

    async def _flush(self) -> None:
        """Print what happened, mentions named as Slack names them (`users.info`, cached)."""
        directory = self.services.directory
        if directory is not None and self._events:
            seen = json.dumps([_said(obj) for _, obj in self._events])
            unknown = mentioned(seen) - self._known.keys()
            if unknown:
                self._known.update(await directory.names(unknown))
        self.flush()

    def _user_name(self, user_id: str) -> str | None:
        return self._known.get(user_id) or self.slack.user_name(user_id)

    def flush(self) -> None:
        events, self._events = self._events, []
        # A message edited several times since the last flush is printed once, as it is now
        # (the stand-in's Message is edited in place: earlier edits would print the same).
        last_edit = {
            obj.ts: i for i, (kind, obj) in enumerate(events)
            if kind == "update" and isinstance(obj, Message)
        }  # fmt: skip
        for i, (kind, obj) in enumerate(events):
            if kind == "update" and isinstance(obj, Message) and last_edit[obj.ts] != i:
                continue
            if kind == "view" and isinstance(obj, dict):
                self._open_form(obj)
            elif isinstance(obj, Message):
                self._show_message(kind, obj)
            elif isinstance(obj, Ephemeral):
                self._show_ephemeral(obj)

    def _show_message(self, kind: str, message: Message) -> None:
        if message.user != self.slack.bot_user_id:
            if kind == "post":
                self._show_said(message)
            return
        if message.channel == self.channel_id:
            self.thread_ts = message.thread_ts or message.ts  # a reply, or a card
        if message.thread_ts and message.thread_ts != message.ts:
            if (message.metadata or {}).get("event_type") == Metadata.DIGEST:
                self._show_digest(message)
                return
            if message.files:
                if message.text or message.blocks:
                    for line in self._render_own(message.blocks, message.text, message=message):
                        self.print(f"  ↳ {line}")
                self._show_files(message, prefix="  ↳ ")
                return
            previous = self.buttons
            lines = self._render_own(message.blocks, message.text, message=message)
            if kind == "update" and self._printed.get(message.ts) == lines:
                self.buttons = previous  # an edit that changed nothing shown: not printed again
                return
            self._printed[message.ts] = lines
            contexts = [b for b in message.blocks if b.get("type") == "context"]
            if len(lines) >= 2 and len(contexts) == len(lines) - 1 == len(message.blocks) - 1:
                # an entry and its context lines (its time, a page link): one line
                lines = [f"{lines[0]}  ({' · '.join(lines[1:])})"]
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
        self._show_files(message, prefix="  ")

    def _show_files(self, message: Message, *, prefix: str) -> None:
        """Files shared with a message: name and title, then the text itself (mentions as
        @names), at most FILE_LINES lines of it."""
        for shared in message.files:
            upload = self.slack.files.get(str(shared.get("id")))
            text = upload.text if upload is not None else ""
            lines = text.rstrip("\n").split("\n") if text else []
            name, title = str(shared.get("name") or ""), str(shared.get("title") or "")
            about = f" · {title}" if title and title != name else ""
            if upload is not None and not _is_text(upload.content or b""):  # a ZIP: its size
                self.print(f"{prefix}┌ 📦 {name}{about} ({len(upload.content or b'')} bytes)")
                self.print(f"{prefix}└")
                continue
            self.print(f"{prefix}┌ 📄 {name}{about} ({len(lines)} lines)")
            for line in lines[:FILE_LINES]:
                self.print(f"{prefix}│ {self._names(line)}".rstrip())
            more = len(lines) - FILE_LINES
            self.print(f"{prefix}└ … {more} more lines not shown" if more > 0 else f"{prefix}└")

    def _show_digest(self, message: Message) -> None:
        """The digest is edited in place as chatter comes in: print only its lines not yet seen."""
        seen = self._digest_lines.setdefault(message.ts, set())
        body = [b for b in message.blocks if b.get("type") == "section"]
        for line in self._render(body, message.text, message=None):
            if line not in seen:
                seen.add(line)
                self.print(f"  ↳ · {line}")

    def _show_said(self, message: Message) -> None:
        """A person's message, numbered for /pin, /unpin and /shortcut."""
        self.said.append(message)
        author = self.slack.user_name(message.user) or message.user
        said = f"[msg {len(self.said)}] @{author}: {self._plain(message.text)}"
        if message.thread_ts and message.thread_ts != message.ts:
            self.print(f"  ↳ {said}")
        else:
            self.print(f"[#{self._channel_name(message.channel)}] {said}")

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
        posted by a timer or a webhook meanwhile) leaves the previous buttons clickable, unless
        what was typed moved on to another incident's thread (a new card, a reply elsewhere):
        the buttons left behind there are no longer the ones to choose from."""
        previous, self.buttons = self.buttons, []
        lines = self._render(blocks, fallback, message=message)
        if not self.buttons:
            moved_on = (
                self._acting
                and message is not None
                and any(b.message is not None and _thread(b.message) != _thread(message)
                        for b in previous)
            )  # fmt: skip
            self.buttons = [] if moved_on else previous
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
                    await self._drain()
                    await self._flush()

    def _names(self, text: str) -> str:
        """`<@U…>` and `<#C…>` as the @name and #channel a reader knows; nothing else changed."""
        text = USER_REF.sub(lambda m: "@" + (self._user_name(m.group(1)) or m.group(1)), text)
        return CHANNEL_REF.sub(lambda m: "#" + (m.group(2) or self._channel_name(m.group(1))), text)

    def _plain(self, text: str) -> str:
        """Slack mrkdwn as the terminal shows it (`bot/runtime/terminal_text.py`)."""
        return terminal_text(
            text,
            user_name=self._user_name,
            channel_name=self._channel_name,
            styled=self.styled,
        )

    def _channel_name(self, channel_id: str) -> str:
        return self.channel_name if channel_id == self.channel_id else channel_id


async def _piped(shell: Shell, stdin: TextIO) -> None:
    """Lines from a script, each echoed after the prompt as if typed."""
    while True:
        line = await asyncio.to_thread(stdin.readline)
        if not line:
            return
        if line.strip():
            shell.print(f"@{shell.user_name}> {line.rstrip()}")
        if not await shell.handle(line):
            return


async def _interactive(shell: Shell, settings: Settings, sandbox: ShellSandbox) -> None:
    """A terminal: prompt_toolkit's line editor (`bot/runtime/shell_prompt.py`)."""
    from bot.runtime.shell_prompt import ShellCompleter, read_loop

    platform = sandbox.platform
    completer = ShellCompleter(
        playbooks=lambda: shell.services.catalogue.playbooks,
        deployments=lambda: platform.scenario.deployments if platform else (),
        users=shell.slack.user_names,
        incidents=lambda: shell.open_numbers,
    )

    async def open_incidents() -> list[Incident]:
        found = await shell.services.incidents.list_recent(
            days=1
        )  # every open one, and a day of resolved
        shell.open_numbers = [i.id for i in found if i.status is not Status.RESOLVED]
        return found

    def attach() -> None:
        shell.out = sys.stdout  # patched: prints land above the prompt

    out = shell.out
    try:
        await read_loop(
            prompt=lambda: f"@{shell.user_name}> ",
            handle=shell.handle,
            completer=completer,
            history=settings.data_dir / "shell_history",
            open_incidents=open_incidents,
            attach=attach,
        )
    finally:
        shell.out = out  # the prompt is gone: what follows (the sandbox's summary) prints plainly


async def run_shell(
    settings: Settings,
    *,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    scenario: str | None = None,
    clock: Clock = utcnow,
) -> int:
    """`scenario`: also run the simulated platform (`icbot shell --sandbox`) with it loaded.
    `clock`: the bot's time (tests script an incident's minutes with it)."""
    interactive = stdin.isatty()
    channel = settings.incident_channel.lstrip("#")
    async with (
        FakeSlack(channels=(channel,), users_file=shell_users(settings.data_dir)) as slack,
        ShellSandbox(scenario, out=out, state_dir=settings.data_dir) as sandbox,
    ):
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
                clock=clock,
                pacer=ChannelPacer(per_second=0, burst=1),
            ) as services,
        ):
            shell = Shell(services, build_slack_app(services), slack, out)
            shell.platform_hint = sandbox.platform is None
            printer = asyncio.create_task(shell.background())
            if interactive:
                shell.print(SHELL_HELP.format(channel=channel))
            await sandbox.attach(shell)
            if interactive:
                await _interactive(shell, settings, sandbox)
            else:
                await _piped(shell, stdin)
            await sandbox.detach()
            printer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await printer
    return 0


def _said(obj: Any) -> Any:
    """What a printed event says (text and blocks), for the mentions in it."""
    if isinstance(obj, Message | Ephemeral):
        return [obj.text, obj.blocks]
    return obj if isinstance(obj, dict) else None


def _thread(message: Message) -> str:
    """The ts of the thread a message is in (a card is its own thread)."""
    return message.thread_ts or message.ts


def _is_text(content: bytes) -> bool:
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
