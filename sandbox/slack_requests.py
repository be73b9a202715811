"""Signed requests *into* the bot, shaped as Slack sends them (see ../shared/specs/slack/).

Used by the shell, the tests and the benchmark, so all three speak the real wire format:
slash commands as urlencoded forms, interactivity (buttons, modal submissions, message
shortcuts) as `payload=<json>`, events as JSON, each signed
`v0=HMAC-SHA256(secret, "v0:<ts>:<body>")`. The Slack stand-in (`FakeSlack.deliver_events_to`)
uses `event` to deliver what people do in its channels.
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier


@dataclass(frozen=True)
class SignedRequest:
    body: str
    headers: dict[str, str]


@dataclass
class SlackRequests:
    signing_secret: str
    team_id: str = "T0001"
    api_app_id: str = "A0ICBOT01"
    bot_user_id: str = "UBOT00001"  # the installation events are delivered to (FakeSlack's)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _trigger_id(self, n: int) -> str:
        """Unique like Slack's (`13345224609.738474920.8088930838d88f008e0`), even across
        shell sessions on one database: the bot tells a retried request by it."""
        return f"{n}.{int(time.time())}.{secrets.token_hex(10)}"

    def sign(self, body: str, *, content_type: str, timestamp: int | None = None) -> SignedRequest:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = SignatureVerifier(self.signing_secret).generate_signature(
            timestamp=ts, body=body
        )
        assert signature is not None
        return SignedRequest(
            body=body,
            headers={
                "Content-Type": content_type,
                "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": signature,
            },
        )

    def slash_command(
        self,
        command: str,
        text: str,
        *,
        user_id: str,
        user_name: str,
        channel_id: str,
        channel_name: str,
        response_url: str,
        timestamp: int | None = None,
    ) -> SignedRequest:
        n = next(self._ids)
        form = {
            "token": "unused-verification-token",
            "team_id": self.team_id,
            "team_domain": "waqiti",
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": self._trigger_id(n),
        }
        return self.sign(
            urlencode(form), content_type="application/x-www-form-urlencoded", timestamp=timestamp
        )

    def block_action(
        self,
        *,
        action_id: str,
        value: str,
        label: str,
        block_id: str,
        user_id: str,
        user_name: str,
        channel_id: str,
        channel_name: str,
        response_url: str,
        message: dict[str, Any] | None = None,
        timestamp: int | None = None,
        selected_options: list[dict[str, Any]] | None = None,
    ) -> SignedRequest:
        """A click on a button, or (with `selected_options`) a change of a checkbox group."""
        n = next(self._ids)
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {
                "id": user_id,
                "username": user_name,
                "name": user_name,
                "team_id": self.team_id,
            },
            "api_app_id": self.api_app_id,
            "token": "unused-verification-token",
            "container": {
                "type": "message",
                "message_ts": (message or {}).get("ts", f"{n}.000000"),
                "channel_id": channel_id,
                "is_ephemeral": message is None,
            },
            "trigger_id": self._trigger_id(n),
            "team": {"id": self.team_id, "domain": "waqiti"},
            "channel": {"id": channel_id, "name": channel_name},
            "response_url": response_url,
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": block_id,
                    "text": {"type": "plain_text", "text": label, "emoji": True},
                    "value": value,
                    "type": "button",
                    "action_ts": f"{int(time.time())}.{n:06d}",
                }
            ],
        }
        if selected_options is not None:
            action = payload["actions"][0]
            action.pop("value")
            action.pop("text")
            action["type"] = "checkboxes"
            action["selected_options"] = selected_options
        if message is not None:
            payload["message"] = message
        return self.sign(
            urlencode({"payload": json.dumps(payload)}),
            content_type="application/x-www-form-urlencoded",
            timestamp=timestamp,
        )

    def view_submission(
        self,
        view: dict[str, Any],
        values: dict[str, str | None],
        *,
        user_id: str,
        user_name: str,
        timestamp: int | None = None,
    ) -> SignedRequest:
        """Submitting a modal: `values` maps each input block_id to its text, or for a select to
        the chosen option's value (None: left empty). State is keyed by the element's action_id
        and typed as Slack types it (`plain_text_input` value, `static_select` selected_option).
        """
        elements = {
            b.get("block_id"): b.get("element") or {}
            for b in view.get("blocks") or []
            if b.get("type") == "input"
        }
        state: dict[str, Any] = {}
        for block_id, text in values.items():
            element = elements.get(block_id) or {"type": "plain_text_input", "action_id": "value"}
            kind = str(element.get("type") or "plain_text_input")
            value: dict[str, Any] = {"type": kind}
            if kind == "static_select":
                chosen = [o for o in element.get("options") or [] if o.get("value") == text]
                value["selected_option"] = chosen[0] if chosen else None
            else:
                value["value"] = text
            state[block_id] = {str(element.get("action_id") or "value"): value}
        payload = {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": "waqiti"},
            "user": {
                "id": user_id,
                "username": user_name,
                "name": user_name,
                "team_id": self.team_id,
            },
            "api_app_id": self.api_app_id,
            "token": "unused-verification-token",
            "trigger_id": self._trigger_id(next(self._ids)),
            "view": {**view, "state": {"values": state}},
            "response_urls": [],
            "is_enterprise_install": False,
        }
        return self.sign(
            urlencode({"payload": json.dumps(payload)}),
            content_type="application/x-www-form-urlencoded",
            timestamp=timestamp,
        )

    def message_shortcut(
        self,
        callback_id: str,
        message: dict[str, Any],
        *,
        user_id: str,
        user_name: str,
        channel_id: str,
        channel_name: str,
        response_url: str,
        timestamp: int | None = None,
    ) -> SignedRequest:
        """A message shortcut (`message_action`) run on `message`, as Slack holds it."""
        n = next(self._ids)
        payload = {
            "type": "message_action",
            "token": "unused-verification-token",
            "action_ts": f"{int(time.time())}.{n:06d}",
            "team": {"id": self.team_id, "domain": "waqiti"},
            "user": {"id": user_id, "name": user_name, "team_id": self.team_id},
            "channel": {"id": channel_id, "name": channel_name},
            "is_enterprise_install": False,
            "enterprise": None,
            "callback_id": callback_id,
            "trigger_id": self._trigger_id(n),
            "message_ts": message["ts"],
            "message": message,
            "response_url": response_url,
        }
        return self.sign(
            urlencode({"payload": json.dumps(payload)}),
            content_type="application/x-www-form-urlencoded",
            timestamp=timestamp,
        )

    def event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        timestamp: int | None = None,
    ) -> SignedRequest:
        n = next(self._ids)
        context = {"tid": self.team_id, "aid": self.api_app_id, "n": n}
        envelope = {
            "token": "unused-verification-token",
            "team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{n:08d}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-" + base64.urlsafe_b64encode(json.dumps(context).encode()).decode(),
            "authed_users": [self.bot_user_id],
        }
        return self.sign(json.dumps(envelope), content_type="application/json", timestamp=timestamp)
