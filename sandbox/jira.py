"""A Jira Cloud stand-in over real HTTP (aiohttp, 127.0.0.1): the REST v3 calls icbot makes.

Built from Atlassian's published reference (request and answer shapes, error bodies):
- Create issue: https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/#api-rest-api-3-issue-post
- Get issue: https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/#api-rest-api-3-issue-issueidorkey-get
- Transitions: https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/#api-rest-api-3-issue-issueidorkey-transitions-get
  (and `-post`: 204 with no body)
- User search: https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-user-search/#api-rest-api-3-user-search-get
- Enhanced JQL search: https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-search/#api-rest-api-3-search-jql-post
- Atlassian Document Format: https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/
- Basic auth with an API token: https://developer.atlassian.com/cloud/jira/platform/basic-auth-for-rest-apis/
- Rate limits (429 + Retry-After): https://developer.atlassian.com/cloud/jira/platform/rate-limiting/
- Admin webhooks signed with `X-Hub-Signature: sha256=<hex>`:
  https://developer.atlassian.com/cloud/jira/platform/webhooks/#secure-admin-webhooks

It refuses what Jira refuses: no or wrong basic auth → 401; a malformed body, a missing
summary, an unknown project or issue type, a description that is not ADF, a label with a space,
an unknown assignee → 400 with Jira's `{"errorMessages": [...], "errors": {field: message}}`;
an unknown issue → 404; `rate_limit(...)` → 429 with `Retry-After`. JQL: only the subset icbot
writes (`project = "X" AND labels = "Y" [ORDER BY …]`); anything else is a 400 like Jira's.

Issues move along a simple workflow (To Do → In Progress → Done, any status to any other), and
every change of status queues a `jira:issue_updated` webhook for the subscribers, delivered by
`deliver_webhooks()` (as Jira does for changes made through the API too).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from sandbox.loopback import StandIn, serve_on_loopback

EMAIL = "icbot@waqiti.example"
TOKEN = "jira-api-token-0123456789"  # noqa: S105  (the stand-in's own, made-up token)
PROJECT = "PAY"
ISSUE_TYPES = ("Task", "Bug", "Story")
SUMMARY_MAX = 255


def _status(status_id: str, name: str, category: tuple[int, str, str]) -> dict[str, Any]:
    number, key, label = category
    return {"id": status_id, "name": name,
            "statusCategory": {"id": number, "key": key, "name": label}}  # fmt: skip


STATUSES = {
    "10000": _status("10000", "To Do", (2, "new", "To Do")),
    "3": _status("3", "In Progress", (4, "indeterminate", "In Progress")),
    "10001": _status("10001", "Done", (3, "done", "Done")),
}
TRANSITIONS = {"11": "10000", "21": "3", "31": "10001"}  # transition id -> target status
TRANSITION_NAMES = {"11": "To Do", "21": "In Progress", "31": "Done"}

# ADF nodes and marks this stand-in knows (the common ones of the published schema).
BLOCK_NODES = {"paragraph", "heading", "bulletList", "orderedList", "listItem", "codeBlock",
               "blockquote", "rule", "panel"}  # fmt: skip
INLINE_NODES = {"text", "hardBreak", "mention", "emoji", "inlineCard"}
MARKS = {"strong", "em", "code", "link", "strike", "underline", "subsup", "textColor"}
JQL_CLAUSE = re.compile(r'^\s*(project|labels|key)\s*=\s*"([^"]*)"\s*$', re.I)


@dataclass
class JiraUser:
    account_id: str
    display_name: str
    email: str
    active: bool = True

    def body(self) -> dict[str, Any]:
        return {
            "accountId": self.account_id, "accountType": "atlassian", "active": self.active,
            "displayName": self.display_name, "emailAddress": self.email,
        }  # fmt: skip


@dataclass
class Issue:
    id: str
    key: str
    fields: dict[str, Any]
    history: list[str] = field(default_factory=list)  # status names, in order

    @property
    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.fields["status"]
        return status


@dataclass(frozen=True)
class Webhook:
    url: str
    body: bytes
    headers: dict[str, str]


class JiraError(Exception):
    def __init__(
        self, status: int, messages: list[str] | None = None, errors: dict[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = {"errorMessages": messages or [], "errors": errors or {}}


def _adf_problem(doc: Any) -> str | None:
    """Why `doc` is not an Atlassian Document (None if it is one)."""
    if not isinstance(doc, dict) or doc.get("type") != "doc" or doc.get("version") != 1:
        return "the root must be {type: doc, version: 1}"
    content = doc.get("content")
    if not isinstance(content, list):
        return "doc.content must be a list"
    for node in content:
        if not isinstance(node, dict) or node.get("type") not in BLOCK_NODES:
            return f"unknown block node {node.get('type') if isinstance(node, dict) else node!r}"
        for child in node.get("content") or []:
            if not isinstance(child, dict) or child.get("type") not in INLINE_NODES:
                return "unknown inline node"
            if child["type"] == "text":
                if not isinstance(child.get("text"), str) or not child["text"]:
                    return "a text node needs non-empty text"
                for mark in child.get("marks") or []:
                    if not isinstance(mark, dict) or mark.get("type") not in MARKS:
                        return "unknown mark"
                    if mark["type"] == "link" and not (mark.get("attrs") or {}).get("href"):
                        return "a link mark needs attrs.href"
    return None


class FakeJira(StandIn):
    def __init__(self, *, project: str = PROJECT, email: str = EMAIL, token: str = TOKEN) -> None:
        self.project = project
        self.email = email
        self.token = token
        self.issues: dict[str, Issue] = {}
        self.users: dict[str, JiraUser] = {}
        self.calls: list[tuple[str, str, Any]] = []  # (method, path, JSON body or query)
        self.subscribers: list[tuple[str, str]] = []  # (url, secret)
        self.pending_webhooks: list[Webhook] = []
        self.delivered: list[tuple[Webhook, int]] = []
        self._limited: list[float] = []  # Retry-After of each of the next requests refused
        self.on_notice: list[Callable[[str], None]] = []  # "Jira: PAY-1 created …" (the shell)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ serving

    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/rest/api/3/issue", self._create)
        app.router.add_get("/rest/api/3/issue/{key}", self._get_issue)
        app.router.add_get("/rest/api/3/issue/{key}/transitions", self._transitions)
        app.router.add_post("/rest/api/3/issue/{key}/transitions", self._transition)
        app.router.add_get("/rest/api/3/user/search", self._user_search)
        app.router.add_post("/rest/api/3/search/jql", self._search)
        self._runner, self._port = await serve_on_loopback(app)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def url(self) -> str:
        assert self._port is not None, "not started"
        return f"http://127.0.0.1:{self._port}"

    # ------------------------------------------------------------------ test and demo controls

    def add_user(self, display_name: str, email: str) -> JiraUser:
        account_id = "712020:" + hashlib.sha256(email.lower().encode()).hexdigest()[:24]
        user = JiraUser(account_id, display_name, email)
        self.users[account_id] = user
        return user

    def rate_limit(self, *, times: int = 1, retry_after: float = 30) -> None:
        """Answer the next `times` requests with 429 and `Retry-After: retry_after`."""
        self._limited += [retry_after] * times

    def subscribe(self, url: str, secret: str) -> None:
        """An admin webhook for `jira:issue_updated`, signed with `secret`."""
        self.subscribers.append((url, secret))

    def resolve(self, key: str, *, by: str = "Dana Jira") -> None:
        """Someone moves the issue to Done in Jira's UI."""
        self._move(self.issues[key], "31", by=by)

    async def deliver_webhooks(self) -> list[int]:
        """POST every queued webhook; returns the HTTP statuses the receiver answered."""
        statuses = []
        async with aiohttp.ClientSession() as http:
            while self.pending_webhooks:
                hook = self.pending_webhooks.pop(0)
                async with http.post(hook.url, data=hook.body, headers=hook.headers) as resp:
                    statuses.append(resp.status)
                    self.delivered.append((hook, resp.status))
        return statuses

    def status(self) -> list[str]:
        """One line per issue: key, status, summary (the shell's summary at the end)."""
        return [
            f"{i.key} [{i.status['name']}] {i.fields.get('summary', '')}"
            for i in self.issues.values()
        ]

    def calls_to(self, method: str, path_prefix: str) -> list[tuple[str, str, Any]]:
        return [c for c in self.calls if c[0] == method and c[1].startswith(path_prefix)]

    # ------------------------------------------------------------------ the wire

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            if not self._authorised(request.headers.get("Authorization", "")):
                # Jira Cloud answers an unauthenticated call to these endpoints with 401.
                raise JiraError(401, ["You are not authenticated. Authentication required."])
            if self._limited:
                wait = self._limited.pop(0)
                self.calls.append((request.method, request.path, "429"))
                return web.json_response(
                    {"errorMessages": ["Rate limit exceeded."], "errors": {}},
                    status=429, headers={"Retry-After": str(int(wait))},
                )  # fmt: skip
            response: web.StreamResponse = await handler(request)
            return response
        except JiraError as exc:
            return web.json_response(exc.body, status=exc.status)

    def _authorised(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, self.email) and hmac.compare_digest(password, self.token)

    async def _json(self, request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.read())
        except ValueError as exc:
            raise JiraError(400, ["Unexpected character in the request body."]) from exc
        if not isinstance(body, dict):
            raise JiraError(400, ["The request body must be a JSON object."])
        self.calls.append((request.method, request.path, body))
        return body

    def _issue(self, key: str) -> Issue:
        issue = self.issues.get(key.upper())
        if issue is None:
            raise JiraError(404, ["Issue does not exist or you do not have permission to see it."])
        return issue

    async def _create(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        fields = body.get("fields")
        if not isinstance(fields, dict):
            raise JiraError(400, ["Can not deserialize the request: 'fields' is required."])
        errors: dict[str, str] = {}
        project = fields.get("project")
        if not isinstance(project, dict) or project.get("key") != self.project:
            errors["project"] = "Specify a valid project ID or key"
        issuetype = fields.get("issuetype")
        if not isinstance(issuetype, dict) or issuetype.get("name") not in ISSUE_TYPES:
            errors["issuetype"] = "Specify an issue type"
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif len(summary) > SUMMARY_MAX:
            errors["summary"] = "Summary must be less than 255 characters."
        elif "\n" in summary or "\r" in summary:
            errors["summary"] = "The summary is invalid because it contains newline characters."
        if "description" in fields and _adf_problem(fields["description"]) is not None:
            errors["description"] = (
                "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
            )
        labels = fields.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            errors["labels"] = "Labels must be a list of strings."
        elif bad := next((x for x in labels if " " in x or not x or len(x) > 255), None):
            errors["labels"] = f"The label '{bad}' contains spaces which is invalid."
        assignee = fields.get("assignee")
        if assignee is not None and (
            not isinstance(assignee, dict) or assignee.get("accountId") not in self.users
        ):
            errors["assignee"] = "The specified assignee cannot be assigned issues."
        if errors:
            raise JiraError(400, [], errors)
        number = len(self.issues) + 1
        key = f"{self.project}-{number}"
        issue_id = str(10000 + number)
        self.issues[key] = Issue(
            id=issue_id,
            key=key,
            fields={**fields, "status": STATUSES["10000"]},
            history=["To Do"],
        )
        who = self.users[assignee["accountId"]].display_name if assignee else "nobody"
        self._notice(f"Jira: {key} created: {fields['summary']} (assignee {who})")
        return web.json_response(
            {"id": issue_id, "key": key, "self": f"{self.url}/rest/api/3/issue/{issue_id}"},
            status=201,
        )

    async def _get_issue(self, request: web.Request) -> web.Response:
        issue = self._issue(request.match_info["key"])
        self.calls.append(("GET", request.path, dict(request.query)))
        wanted = request.query.get("fields")
        names = wanted.split(",") if wanted else list(issue.fields)
        return web.json_response(
            {
                "id": issue.id, "key": issue.key, "self": f"{self.url}/rest/api/3/issue/{issue.id}",
                "fields": {n: issue.fields[n] for n in names if n in issue.fields},
            }
        )  # fmt: skip

    async def _transitions(self, request: web.Request) -> web.Response:
        issue = self._issue(request.match_info["key"])
        self.calls.append(("GET", request.path, {}))
        return web.json_response(
            {
                "expand": "transitions",
                "transitions": [
                    {"id": tid, "name": TRANSITION_NAMES[tid], "to": STATUSES[target],
                     "hasScreen": False, "isGlobal": True}
                    for tid, target in TRANSITIONS.items()
                    if target != issue.status["id"]
                ],
            }
        )  # fmt: skip

    async def _transition(self, request: web.Request) -> web.Response:
        issue = self._issue(request.match_info["key"])
        body = await self._json(request)
        transition = body.get("transition")
        tid = str(transition.get("id")) if isinstance(transition, dict) else ""
        if tid not in TRANSITIONS or TRANSITIONS[tid] == issue.status["id"]:
            raise JiraError(400, [f"Transition id '{tid}' is not valid for this issue."])
        self._move(issue, tid, by="icbot")
        return web.Response(status=204)

    async def _user_search(self, request: web.Request) -> web.Response:
        query = request.query.get("query", "").strip().lower()
        self.calls.append(("GET", request.path, dict(request.query)))
        if not query and not request.query.get("accountId"):
            raise JiraError(400, ["One of 'query' or 'accountId' parameters must be provided."])
        found = [
            u.body() for u in self.users.values()
            if query and (u.email.lower().startswith(query)
                          or u.display_name.lower().startswith(query))
        ]  # fmt: skip
        return web.json_response(found)

    async def _search(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        jql = body.get("jql")
        if not isinstance(jql, str) or not jql.strip():
            raise JiraError(400, ["The JQL query is required (a bounded query)."])
        where = re.split(r"\s+ORDER\s+BY\s+", jql, flags=re.I)[0]
        wanted: list[tuple[str, str]] = []
        for clause in re.split(r"\s+AND\s+", where, flags=re.I):
            match = JQL_CLAUSE.match(clause)
            if match is None:
                raise JiraError(400, [f"Error in the JQL Query: cannot parse '{clause.strip()}'."])
            wanted.append((match.group(1).lower(), match.group(2)))
        limit = body.get("maxResults", 50)
        if not isinstance(limit, int) or limit < 1:
            raise JiraError(400, ["maxResults must be a positive number."])

        def matches(issue: Issue) -> bool:
            for name, value in wanted:
                if name == "project" and issue.fields["project"].get("key") != value:
                    return False
                if name == "labels" and value not in issue.fields.get("labels", []):
                    return False
                if name == "key" and issue.key != value.upper():
                    return False
            return True

        names = [str(n) for n in body.get("fields") or []]
        found = [i for i in self.issues.values() if matches(i)][:limit]
        return web.json_response(
            {
                "issues": [
                    {"id": i.id, "key": i.key, "self": f"{self.url}/rest/api/3/issue/{i.id}",
                     "fields": {n: i.fields[n] for n in names if n in i.fields}}
                    for i in found
                ],
                "isLast": True,
            }
        )  # fmt: skip

    # ------------------------------------------------------------------ workflow and webhooks

    def _notice(self, text: str) -> None:
        for hook in self.on_notice:
            hook(text)

    def _move(self, issue: Issue, tid: str, *, by: str) -> None:
        before = issue.status
        issue.fields["status"] = STATUSES[TRANSITIONS[tid]]
        issue.history.append(issue.status["name"])
        self._notice(f"Jira: {issue.key} moved to {issue.status['name']} by {by}")
        body = {
            "timestamp": 0,
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": "issue_generic",
            "user": {"displayName": by, "accountType": "atlassian"},
            "issue": {"id": issue.id, "key": issue.key, "fields": {"status": issue.status}},
            "changelog": {
                "items": [
                    {"field": "status", "fieldtype": "jira", "from": before["id"],
                     "fromString": before["name"], "to": issue.status["id"],
                     "toString": issue.status["name"]}
                ]
            },
        }  # fmt: skip
        raw = json.dumps(body).encode()
        for url, secret in self.subscribers:
            signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
            self.pending_webhooks.append(
                Webhook(
                    url, raw,
                    {"Content-Type": "application/json", "X-Hub-Signature": f"sha256={signature}",
                     "X-Atlassian-Webhook-Identifier": f"{issue.id}-{len(self.delivered)}"},
                )
            )  # fmt: skip


def sign(body: bytes, secret: str) -> str:
    """The `X-Hub-Signature` Jira sends with `body` for `secret`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
