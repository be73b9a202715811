"""`Tracker` over Jira Cloud's REST API v3: aiohttp, basic auth with an account email + API token.

Calls (https://developer.atlassian.com/cloud/jira/platform/rest/v3/):
- `POST /rest/api/3/issue` files an issue; its description is Atlassian Document Format
  (https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/).
- `GET /rest/api/3/user/search?query=<email>` finds the assignee's accountId.
- `POST /rest/api/3/search/jql` finds the issue already filed for an item, by its label.
- `GET /rest/api/3/issue/{key}?fields=status`, then `GET`/`POST
  /rest/api/3/issue/{key}/transitions` move an issue to a status of the Done category.

Answers become `IntegrationError("jira", code, …)`: 429 is `rate_limited` with Jira's
`Retry-After` (https://developer.atlassian.com/cloud/jira/platform/rate-limiting/), honoured by
the outbox; 5xx and transport failures are retried; other 4xx refuse the request (permanent),
with Jira's own words from `{"errorMessages": [...], "errors": {...}}`.

`verify_signature` checks a webhook's `X-Hub-Signature: sha256=<hex>` (HMAC-SHA256 of the raw
body with the secret set on the admin webhook:
https://developer.atlassian.com/cloud/jira/platform/webhooks/#secure-admin-webhooks).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp

from bot.core.errors import ErrorCode, IntegrationError
from bot.domain.ports import FollowUp, JiraIssue

if TYPE_CHECKING:
    from bot.domain.ports import Tracker

DONE = "done"  # the key of Jira's Done status category


def verify_signature(body: bytes, header: str | None, secret: str | None) -> bool:
    if not header or not secret or not header.isascii():
        return False
    method, _, offered = header.strip().partition("=")
    if method.lower() != "sha256" or not offered:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, offered.lower())


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _link(text: str, href: str) -> dict[str, Any]:
    return {"type": "text", "text": text, "marks": [{"type": "link", "attrs": {"href": href}}]}


def adf(follow_up: FollowUp) -> dict[str, Any]:
    """The issue's description as an Atlassian Document Format document."""
    incident: list[dict[str, Any]] = [_text("Incident: "), _text(follow_up.incident)]
    if follow_up.page_url:
        incident += [_text(" ("), _link("incident page", follow_up.page_url), _text(")")]
    return {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "paragraph", "content": [_text(follow_up.text or follow_up.summary)]},
            {"type": "paragraph", "content": incident},
            {
                "type": "paragraph",
                "content": [_text(f"Owner: {follow_up.owner or 'nobody yet'}")],
            },
            {
                "type": "paragraph",
                "content": [_text("Filed by icbot from an incident's action items.")],
            },
        ],
    }


def _why(body: Any, status: int) -> str:
    """Jira's own words from an error body, else the status."""
    if isinstance(body, dict):
        said = [str(m) for m in body.get("errorMessages") or []]
        errors = body.get("errors")
        if isinstance(errors, dict):
            said += [f"{field}: {message}" for field, message in errors.items()]
        if said:
            return "; ".join(said)[:300]
    return f"HTTP {status}"


class JiraClient:
    def __init__(
        self,
        *,
        base_url: str,
        email: str,
        api_token: str,
        project: str,
        issue_type: str = "Task",
        timeout: float = 10.0,
    ) -> None:
        self.base = base_url.rstrip("/")
        self.project = project
        self.issue_type = issue_type
        self._auth = aiohttp.encode_basic_auth(email, api_token)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def browse_url(self, key: str) -> str:
        return f"{self.base}/browse/{quote(key, safe='')}"

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers={"Authorization": self._auth}
            )
        what = f"{method} {path}"
        try:
            async with self._session.request(
                method, f"{self.base}{path}", json=body, params=params,
                headers={"Accept": "application/json"},
            ) as resp:  # fmt: skip
                raw = await resp.read()
                answer: Any = None
                if raw:
                    with contextlib.suppress(ValueError):
                        answer = json.loads(raw)
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise IntegrationError(
                "jira", ErrorCode.for_exception(exc), f"{what}: {type(exc).__name__}"
            ) from exc
        if status == 429:
            wait = 1.0
            with contextlib.suppress(TypeError, ValueError):
                wait = max(float(retry_after or 1), 0.0)
            raise IntegrationError(
                "jira", ErrorCode.RATE_LIMITED, f"{what}: rate limited", retry_after=wait
            )
        if status >= 500:
            raise IntegrationError("jira", ErrorCode.for_status(status), f"{what}: HTTP {status}")
        if status >= 400:
            raise IntegrationError(
                "jira", ErrorCode.for_status(status), f"{what}: {_why(answer, status)}",
                permanent=True,
            )  # fmt: skip
        return answer

    async def create_issue(self, follow_up: FollowUp, *, assignee: str | None) -> JiraIssue:
        fields: dict[str, Any] = {
            "project": {"key": self.project},
            "issuetype": {"name": self.issue_type},
            "summary": follow_up.summary,
            "description": adf(follow_up),
            "labels": follow_up.labels,
        }
        if assignee:
            fields["assignee"] = {"accountId": assignee}
        created = await self._request("POST", "/rest/api/3/issue", body={"fields": fields})
        if not isinstance(created, dict) or not created.get("key"):
            raise IntegrationError("jira", ErrorCode.UNAVAILABLE, "create issue: no key returned")
        key = str(created["key"])
        return JiraIssue(key=key, url=self.browse_url(key))

    async def find_issue(self, *, label: str) -> JiraIssue | None:
        jql = f'project = "{self.project}" AND labels = "{label}" ORDER BY created ASC'
        found = await self._request(
            "POST",
            "/rest/api/3/search/jql",
            body={"jql": jql, "fields": ["summary"], "maxResults": 1},
        )
        issues = found.get("issues") if isinstance(found, dict) else None
        if not issues:
            return None
        key = str(issues[0]["key"])
        return JiraIssue(key=key, url=self.browse_url(key))

    async def find_user(self, email: str) -> str | None:
        users = await self._request("GET", "/rest/api/3/user/search", params={"query": email})
        for user in users if isinstance(users, list) else []:
            if (
                isinstance(user, dict)
                and user.get("accountId")
                and user.get("active", True)
                and user.get("accountType", "atlassian") == "atlassian"
            ):
                return str(user["accountId"])
        return None

    async def resolve_issue(self, key: str) -> bool:
        path = f"/rest/api/3/issue/{quote(key, safe='')}"
        issue = await self._request("GET", path, params={"fields": "status"})
        category = (
            ((issue or {}).get("fields") or {}).get("status", {}).get("statusCategory", {})
        ).get("key")
        if category == DONE:
            return False
        listed = await self._request("GET", f"{path}/transitions")
        for transition in (listed or {}).get("transitions") or []:
            to = transition.get("to") or {}
            if (to.get("statusCategory") or {}).get("key") == DONE:
                await self._request(
                    "POST", f"{path}/transitions", body={"transition": {"id": transition["id"]}}
                )
                return True
        raise IntegrationError(
            "jira", ErrorCode.REFUSED, f"{key} has no transition to a Done status",
            permanent=True,
        )  # fmt: skip


if TYPE_CHECKING:  # mypy proves the adapter is the port (bot/domain/ports.py)

    def _conforms(adapter: JiraClient) -> Tracker:
        return adapter
