"""manifest.yml's bot scopes are exactly what the code needs: every Web API method it calls (and
every event and slash command it takes) has its scope, and no scope is asked for without one."""

from __future__ import annotations

import ast
import functools
import inspect
import re
from pathlib import Path

import yaml
from slack_sdk.web.async_client import AsyncWebClient

from commands.app import EVENTS, SLASH_COMMANDS

REPO = Path(__file__).resolve().parents[2]
MANIFEST = yaml.safe_load((REPO / "manifest.yml").read_text())
BOT_SCOPES = set(MANIFEST["oauth_config"]["scopes"]["bot"])

# Bot-token scopes of each Web API method (docs.slack.dev/reference/methods/<method>). The
# war room may be a private channel, so channel reads need the groups:* scope too. A method the
# code starts calling must be added here: the test fails until someone decides its scope.
METHOD_SCOPES: dict[str, set[str]] = {
    "auth.test": set(),
    "chat.postMessage": {"chat:write"},
    "chat.update": {"chat:write"},
    "chat.postEphemeral": {"chat:write"},
    "chat.delete": {"chat:write"},
    "chat.getPermalink": set(),
    "conversations.join": {"channels:join"},
    "conversations.list": {"channels:read", "groups:read"},
    "conversations.info": {"channels:read", "groups:read"},
    "conversations.history": {"channels:history", "groups:history"},
    "conversations.replies": {"channels:history", "groups:history"},
    "usergroups.users.list": {"usergroups:read"},
    "usergroups.list": {"usergroups:read"},
    "users.info": {"users:read"},
    "users.list": {"users:read"},
    "users.lookupByEmail": {"users:read", "users:read.email"},
    "reactions.get": {"reactions:read"},
    "reactions.add": {"reactions:write"},
    "pins.add": {"pins:write"},
    "views.open": set(),
    "views.update": set(),
    "views.push": set(),
    "files.getUploadURLExternal": {"files:write"},
    "files.completeUploadExternal": {"files:write"},
    "files.delete": {"files:write"},
    # Socket Mode: the app-level token's connections:write, set on the app's Basic Information
    # page, not a bot scope.
    "apps.connections.open": set(),
}
EVENT_SCOPES: dict[str, set[str]] = {
    "app_mention": {"app_mentions:read"},
    "message.channels": {"channels:history"},
    "message.groups": {"groups:history"},
    "reaction_added": {"reactions:read"},
    "reaction_removed": {"reactions:read"},
    "member_joined_channel": {"channels:read", "groups:read"},
}
# Bolt itself: `say()` posts with chat.postMessage; the single-workspace authorisation calls
# auth.test once; `respond()` posts to a response_url (no scope).
IMPLICIT = {"auth.test"}


@functools.cache
def client_methods() -> dict[str, set[str]]:
    """AsyncWebClient method name -> Web API methods it calls (`chat_postMessage` -> ...).

    A helper that calls no method itself but others of the client (`files_upload_v2` runs
    files.getUploadURLExternal, POSTs the bytes, then files.completeUploadExternal) stands for
    the methods those call."""
    direct: dict[str, str] = {}
    helpers: dict[str, list[str]] = {}
    for name, member in inspect.getmembers(AsyncWebClient, inspect.iscoroutinefunction):
        if name.startswith("_"):
            continue
        source = inspect.getsource(member)
        match = re.search(r'api_call\(\s*"([\w.]+)"', source)
        if match:
            direct[name] = match.group(1)
        else:
            helpers[name] = re.findall(r"await self\.(\w+)\(", source)
    found = {name: {method} for name, method in direct.items()}
    for name, calls in helpers.items():
        methods = {direct[c] for c in calls if c in direct}
        if methods:
            found[name] = methods
    return found


def _sources() -> list[Path]:
    return [
        path
        for root in ("bot", "commands")
        for path in sorted((REPO / root).rglob("*.py"))
        if "sandbox" not in path.parts and "__pycache__" not in path.parts
    ]


@functools.cache
def called_methods() -> dict[str, set[str]]:
    """Web API method -> the files that call it (through the SDK client, `_call` or `say`)."""
    methods = client_methods()
    found: dict[str, set[str]] = {m: {"slack_bolt"} for m in IMPLICIT}
    for path in _sources():
        where = path.relative_to(REPO).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called: set[str] = set()
            if isinstance(func, ast.Attribute):
                receiver = ast.unparse(func.value)
                if func.attr in methods and "client" in receiver.lower():
                    called = methods[func.attr]
                elif func.attr == "_call" and node.args:
                    first = node.args[0]
                    if isinstance(first, ast.Constant) and isinstance(first.value, str):
                        called = {first.value}
            elif isinstance(func, ast.Name) and func.id == "say":
                called = {"chat.postMessage"}
            for method in called:
                found.setdefault(method, set()).add(where)
    return found


def needed_scopes() -> set[str]:
    scopes: set[str] = set()
    for method in called_methods():
        scopes |= METHOD_SCOPES[method]
    for event in MANIFEST["settings"]["event_subscriptions"]["bot_events"]:
        scopes |= EVENT_SCOPES[event]
    if MANIFEST["features"].get("slash_commands") or MANIFEST["features"].get("shortcuts"):
        scopes.add("commands")  # slash commands and shortcuts both need it
    return scopes


def test_the_scan_finds_the_calls_the_bot_is_known_to_make() -> None:
    called = called_methods()
    for method in ("chat.postMessage", "chat.update", "chat.postEphemeral", "conversations.list",
                   "conversations.join", "usergroups.users.list", "views.open"):  # fmt: skip
        assert method in called, method
    assert "bot/integrations/slack.py" in called["conversations.history"]
    # files_upload_v2 calls no method itself: it stands for the two it runs.
    assert client_methods()["files_upload_v2"] == {
        "files.getUploadURLExternal", "files.completeUploadExternal"
    }  # fmt: skip
    assert "bot/integrations/slack.py" in called["files.completeUploadExternal"]


def test_every_called_method_has_a_known_scope() -> None:
    unknown = sorted(set(called_methods()) - set(METHOD_SCOPES))
    assert not unknown, f"add the bot scopes of {unknown} to METHOD_SCOPES (Slack's reference)"


def test_every_subscribed_event_has_a_known_scope() -> None:
    events = MANIFEST["settings"]["event_subscriptions"]["bot_events"]
    unknown = sorted(set(events) - set(EVENT_SCOPES))
    assert not unknown, f"add the scopes of {unknown} to EVENT_SCOPES (Slack's event reference)"
    assert set(events) == set(EVENTS)


def test_every_web_api_method_the_code_calls_has_its_scope_in_the_manifest() -> None:
    missing = {
        method: sorted(METHOD_SCOPES[method] - BOT_SCOPES)
        for method in called_methods()
        if METHOD_SCOPES.get(method, set()) - BOT_SCOPES
    }
    assert not missing, f"add to manifest.yml oauth_config.scopes.bot: {missing}"
    assert needed_scopes() <= BOT_SCOPES


def test_the_manifest_asks_for_no_scope_the_code_does_not_use() -> None:
    extra = BOT_SCOPES - needed_scopes()
    assert not extra, f"remove from manifest.yml (nothing calls for them): {sorted(extra)}"


def test_slash_commands_and_socket_mode_settings() -> None:
    declared = {c["command"] for c in MANIFEST["features"]["slash_commands"]}
    assert declared == set(SLASH_COMMANDS) and "commands" in BOT_SCOPES
    assert all(c.get("usage_hint") for c in MANIFEST["features"]["slash_commands"])
    assert MANIFEST["settings"]["socket_mode_enabled"] is False  # HTTP by default
