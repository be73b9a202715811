"""The `/ic` grammar. Any text gives a command or a `UsageError`, never another exception."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from bot.core.errors import UsageError
from bot.core.models import normalise_role
from bot.core.text import control_character

SEVERITY = re.compile(r"^sev-?([1-4])$", re.I)
BARE_SEVERITY = re.compile(r"^([1-4])$")  # `/ic sev 1`; a title ending in a number keeps it
INCIDENT = re.compile(r"^inc-?([0-9]{1,9})$", re.I)  # ASCII digits: `int` refuses some others
# Slack escapes mentions in slash commands as <@U123|name> (or <@U123> without the name).
MENTION = re.compile(r"^<@([UW][A-Z0-9]{2,20})(?:\|[^>]*)?>$")
MAX_COMMAND = 4000
DASHES = re.compile(r"^[\u2013\u2014]")
HISTORY_DAYS = 30  # `/ic list --all` without `--days`
MAX_HISTORY_DAYS = 365

USAGE = {
    "declare": "/ic declare <title> [sev1|sev2|sev3|sev4]",
    "assign": "/ic assign [INC-n] @user <ic|scribe|comms|role>",
    "handover": "/ic handover [INC-n] @user [role]",
    "sev": "/ic sev [INC-n] <sev1|sev2|sev3|sev4>",
    "status": "/ic status [INC-n] <text>",
    "note": "/ic note [INC-n] <text>",
    "action": "/ic action [INC-n] <text> [@owner]",
    "resolve": "/ic resolve [INC-n] [summary]",
    "timeline": "/ic timeline [INC-n] [--page N]",
    "postmortem": "/ic postmortem [INC-n]",
    "export": "/ic export [INC-n]",
    "oncall": "/ic oncall",
    "page": "/ic page [INC-n] <contact> [message]",
    "statuspage": (
        "/ic statuspage [INC-n] <investigating|identified|monitoring|resolved> <public text>"
    ),
    "list": "/ic list [--all] [--days N]",
    "help": "/ic help",
}
OTHER_COMMANDS = (
    "/diagnose <playbook> [INC-n]  (alone: the playbooks)",
    "/rollback <deployment> [revision] [INC-n]  (or --history)",
)
ACTION_DONE_USAGE = "/ic action [INC-n] done <n>"  # a form of `action`, listed after it
HELP_LINES = (
    *(line for sub, text in USAGE.items()
      for line in ((text, ACTION_DONE_USAGE) if sub == "action" else (text,))),
    *OTHER_COMMANDS,
)  # fmt: skip
ALIASES = {
    "severity": "sev", "update": "status", "close": "resolve", "ls": "list", "todo": "action",
    "pm": "postmortem", "post-mortem": "postmortem", "handoff": "handover",
    "status-page": "statuspage",
}  # fmt: skip
PUBLIC_STATUSES = ("investigating", "identified", "monitoring", "resolved")  # Statuspage's


def usage(sub: str | None = None) -> str:
    if sub in USAGE:
        return f"Usage: `{USAGE[sub]}`"
    return "Usage: " + " · ".join(f"`{line}`" for line in USAGE.values())


@dataclass(frozen=True)
class Declare:
    title: str
    severity: str | None


@dataclass(frozen=True)
class Assign:
    incident: int | None
    user: str
    role: str


@dataclass(frozen=True)
class Handover:
    incident: int | None
    user: str
    role: str | None  # None: the role the requester holds


@dataclass(frozen=True)
class SetSeverity:
    incident: int | None
    severity: str


@dataclass(frozen=True)
class Status:
    incident: int | None
    text: str


@dataclass(frozen=True)
class Note:
    incident: int | None
    text: str


@dataclass(frozen=True)
class Resolve:
    incident: int | None
    summary: str | None


@dataclass(frozen=True)
class Timeline:
    incident: int | None
    page: int = 1  # 1: the newest entries


@dataclass(frozen=True)
class ListIncidents:
    """Open incidents and those resolved lately; with `history`, every incident declared in the
    last `days` (open and resolved) and their figures (`/ic list --all [--days N]`)."""

    history: bool = False
    days: int = HISTORY_DAYS


@dataclass(frozen=True)
class OnCall:
    pass


@dataclass(frozen=True)
class Page:
    incident: int | None
    who: str
    message: str | None


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class ActionItem:
    incident: int | None
    text: str
    owner: str | None  # Slack user id


@dataclass(frozen=True)
class ActionDone:
    """`/ic action [INC-n] done <n>`: tick action item n (and its Jira issue, if filed)."""

    incident: int | None
    number: int


@dataclass(frozen=True)
class Postmortem:
    incident: int | None


@dataclass(frozen=True)
class Export:
    """The evidence bundle of a resolved incident, posted in its thread."""

    incident: int | None


@dataclass(frozen=True)
class StatuspageUpdate:
    """A public update on the status page, proposed for approval (issue 21)."""

    incident: int | None
    status: str  # one of PUBLIC_STATUSES
    text: str


IcCommand = (
    Declare | Assign | Handover | SetSeverity | Status | Note | Resolve | Timeline | ListIncidents
    | Help | OnCall | Page | ActionItem | Postmortem | Export | ActionDone | StatuspageUpdate
)  # fmt: skip


def severity_key(token: str) -> str | None:
    match = SEVERITY.match(token)
    return f"sev{match.group(1)}" if match else None


def _sev_argument(token: str) -> str | None:
    match = BARE_SEVERITY.match(token)
    return f"sev{match.group(1)}" if match else severity_key(token)


def _incident(token: str) -> int | None:
    match = INCIDENT.match(token)
    return int(match.group(1)) if match else None


def _split_incident(words: list[str]) -> tuple[int | None, list[str]]:
    if words:
        number = _incident(words[0])
        if number is not None:
            return number, words[1:]
    return None, words


def _rest(text: str, skip: int) -> str:
    """The text after the first `skip` words, with its own spacing kept."""
    remainder = text.strip()
    for _ in range(skip):
        parts = remainder.split(maxsplit=1)
        remainder = parts[1] if len(parts) > 1 else ""
    return remainder.strip()


def refuse_control_characters(text: str) -> None:
    """A NUL or other control character cannot be stored (PostgreSQL refuses NUL in text)
    and only garbles a message: say which, before anything is done."""
    found = control_character(text)
    if found is not None:
        raise UsageError(
            f"That text holds a control character ({found}), which I cannot record;"
            " remove it and send it again."
        )


def parse_ic(text: str) -> IcCommand:
    if len(text) > MAX_COMMAND:
        raise UsageError(f"That command is {len(text)} characters; keep it under {MAX_COMMAND}.")
    refuse_control_characters(text)
    words = text.split()
    if not words:
        return Help()
    sub = words[0].lower()
    sub = ALIASES.get(sub, sub)
    args = words[1:]
    if sub == "help":
        return Help()
    if sub == "list":
        return _list(args)
    if sub == "oncall":
        if args:
            raise UsageError(usage("oncall"))
        return OnCall()
    if sub == "declare":
        severity = severity_key(args[-1]) if args else None
        title_words = args[:-1] if severity else args
        title = " ".join(title_words)
        if not title:
            raise UsageError("Give the incident a title. " + usage("declare"))
        return Declare(title=title, severity=severity)
    number, rest = _split_incident(args)
    skipped = 1 + (len(args) - len(rest))
    if sub == "assign":
        return _assign(number, rest)
    if sub == "handover":
        return _handover(number, rest)
    if sub == "sev":
        severity = _sev_argument(rest[0]) if len(rest) == 1 else None
        if severity is None:
            raise UsageError(usage("sev"))
        return SetSeverity(incident=number, severity=severity)
    if sub == "status":
        body = _rest(text, skipped)
        if not body:
            raise UsageError("Say what the status is. " + usage("status"))
        return Status(incident=number, text=body)
    if sub == "note":
        body = _rest(text, skipped)
        if not body:
            raise UsageError("Say what to note. " + usage("note"))
        return Note(incident=number, text=body)
    if sub == "resolve":
        return Resolve(incident=number, summary=_rest(text, skipped) or None)
    if sub == "page":
        if not rest:
            raise UsageError("Say who to page. " + usage("page"))
        who = rest[0].lstrip("@").lower()
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,60}", who):
            raise UsageError(f"`{rest[0][:40]}` is not a contact name. " + usage("page"))
        return Page(incident=number, who=who, message=_rest(text, skipped + 1) or None)
    if sub == "timeline":
        return Timeline(incident=number, page=_page(rest))
    if sub == "statuspage":
        return _statuspage(number, rest, _rest(text, skipped + 1))
    if sub == "action":
        if len(rest) == 2 and rest[0].lower() == "done" and ITEM_NUMBER.fullmatch(rest[1]):
            return ActionDone(incident=number, number=int(rest[1].lstrip("#")))
        return _action(number, _rest(text, skipped))
    if sub == "postmortem":
        if rest:
            raise UsageError(usage("postmortem"))
        return Postmortem(incident=number)
    if sub == "export":
        if rest:
            raise UsageError(usage("export"))
        return Export(incident=number)
    raise UsageError(f"`/ic {words[0][:40]}` is not a command I know. {usage()}")


MAX_PAGE = 10_000
ITEM_NUMBER = re.compile(r"#?[1-9][0-9]{0,3}")  # `/ic action done 3` (or `#3`)


def _page(args: list[str]) -> int:
    """`[--page N|--page=N]` of `/ic timeline` (1 when absent)."""
    if not args:
        return 1
    flag, equals, value = DASHES.sub("--", args[0].lower()).partition("=")
    if flag != "--page" or len(args) != (1 if equals else 2):
        raise UsageError(usage("timeline"))
    value = value if equals else args[1]
    if not re.fullmatch(r"[0-9]{1,5}", value) or not 1 <= int(value) <= MAX_PAGE:
        raise UsageError(f"`--page` takes a page number from 1. {usage('timeline')}")
    return int(value)


def _list(args: list[str]) -> ListIncidents:
    """`[--all|all] [--days N|--days=N]`, in any order; `--days` alone implies `--all`."""
    history = False
    days: int | None = None
    words = iter(args)
    for word in words:
        # Smart punctuation (macOS, iOS) turns a typed `--all` into an em or en dash.
        flag, equals, value = DASHES.sub("--", word.lower()).partition("=")
        if flag in ("--all", "all") and not equals:
            history = True
        elif flag == "--days" and days is None:
            value = value if equals else next(words, "")
            if not re.fullmatch(r"[0-9]{1,3}", value) or not 1 <= int(value) <= MAX_HISTORY_DAYS:
                raise UsageError(
                    f"`--days` takes a number of days from 1 to {MAX_HISTORY_DAYS}. "
                    + usage("list")
                )
            days = int(value)
        else:
            raise UsageError(usage("list"))
    if days is not None:
        return ListIncidents(history=True, days=days)
    return ListIncidents(history=history)


def _action(number: int | None, body: str) -> ActionItem:
    """`<text> [@owner]`: a mention at the very end names the owner."""
    words = body.split()
    owner = MENTION.match(words[-1]) if words else None
    if owner is not None:
        body = body[: body.rstrip().rfind(words[-1])].strip()
    if not body:
        raise UsageError("Say what needs doing. " + usage("action"))
    return ActionItem(incident=number, text=body, owner=owner.group(1) if owner else None)


def _statuspage(number: int | None, rest: list[str], body: str) -> StatuspageUpdate:
    """`<investigating|identified|monitoring|resolved> <public text>`."""
    if not rest:
        raise UsageError("Give the public status and text. " + usage("statuspage"))
    status = rest[0].lower()
    if status not in PUBLIC_STATUSES:
        close = difflib.get_close_matches(status, PUBLIC_STATUSES, n=1)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise UsageError(
            f"`{rest[0][:40]}` is not a status page status: use investigating, identified,"
            f" monitoring or resolved.{hint} " + usage("statuspage")
        )
    if not body:
        raise UsageError("Write the public text customers will read. " + usage("statuspage"))
    return StatuspageUpdate(incident=number, status=status, text=body)


def _mention_and_role(rest: list[str], sub: str) -> tuple[str, str | None]:
    """`@user <role>` or `<role> @user` (and `@user` alone): the user id and the role word."""
    mentions = [MENTION.match(word) for word in rest]
    found = next((m for m in mentions if m is not None), None)
    if found is None:
        if any(word.startswith("@") for word in rest):
            raise UsageError(
                "Mention the person so Slack links them (type @ and pick a name). " + usage(sub)
            )
        raise UsageError(usage(sub))
    others = [word for word, m in zip(rest, mentions, strict=True) if m is not found]
    return found.group(1), others[0] if others else None


def _role(word: str) -> str:
    role = normalise_role(word)
    if role is None:
        raise UsageError(
            f"`{word[:40]}` is not a role name: use ic, scribe, comms or a short word such as dba."
        )
    return role


def _assign(number: int | None, rest: list[str]) -> Assign:
    if len(rest) != 2:
        raise UsageError(usage("assign"))
    user, role_word = _mention_and_role(rest, "assign")
    assert role_word is not None
    return Assign(incident=number, user=user, role=_role(role_word))


def _handover(number: int | None, rest: list[str]) -> Handover:
    """`@user [role]`: without a role, the requester's own (decided with the incident)."""
    if not rest:
        raise UsageError("Say who takes over. " + usage("handover"))
    if len(rest) > 2:
        raise UsageError(usage("handover"))
    user, role_word = _mention_and_role(rest, "handover")
    return Handover(
        incident=number, user=user, role=_role(role_word) if role_word is not None else None
    )
