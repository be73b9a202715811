"""`Pager` over the `pagerduty` package (RestApiV2Client, the successor of pdpyras).

The client is synchronous: every call runs in a small dedicated thread pool, never on the
event loop. Its retries are capped (it retries HTTP 429 forever by default, sleeping in the
thread), it has a timeout, and its errors become `IntegrationError("pagerduty", …)`; the
PagerDuty outbox then retries with back-off, honouring `Retry-After`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import pagerduty

from bot.core.errors import ErrorCode, IntegrationError
from bot.core.logs import get_logger
from bot.core.models import OnCall, PagerIncident

if TYPE_CHECKING:
    from bot.domain.ports import Pager

log = get_logger(__name__)
T = TypeVar("T")

DUPLICATE_KEY = "matching dedup key already exists"
TIMEOUT = 10


def _error(exc: Exception, what: str) -> IntegrationError:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status == 429:
        retry_after = 1.0
        with contextlib.suppress(TypeError, ValueError):
            retry_after = float(response.headers.get("Retry-After", "1"))  # type: ignore[union-attr]
        return IntegrationError(
            "pagerduty", ErrorCode.RATE_LIMITED, f"{what}: rate limited", retry_after=retry_after
        )
    if isinstance(status, int) and status >= 500:
        return IntegrationError("pagerduty", ErrorCode.for_status(status), f"{what}: HTTP {status}")
    if isinstance(status, int):  # any other 4xx refuses the request itself: not retried
        return IntegrationError(
            "pagerduty", ErrorCode.for_status(status), f"{what}: HTTP {status}", permanent=True
        )
    return IntegrationError(
        "pagerduty", ErrorCode.for_exception(exc), f"{what}: {type(exc).__name__}"
    )


def verify_signature(body: bytes, header: str | None, secrets: list[str]) -> bool:
    """`X-PagerDuty-Signature: v1=<hex>[,v1=<hex>…]`: valid if any signature matches any secret.

    PagerDuty sends one signature per active secret while a secret is being rotated, and we
    may hold the old and the new secret at once: either way delivery keeps working.
    """
    if not header or not secrets:
        return False
    offered = [
        part.strip().removeprefix("v1=")
        for part in header.split(",")
        if part.strip().startswith("v1=") and part.isascii()  # compare_digest takes ASCII only
    ]
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, sig) for sig in offered):
            return True
    return False


def _errors_text(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    try:
        body = response.json() if response is not None else {}
    except ValueError:
        return ""
    error = body.get("error") or {}
    return " ".join([str(error.get("message", "")), *map(str, error.get("errors") or [])])


class PagerDutyAdapter:
    def __init__(
        self,
        *,
        api_key: str,
        from_email: str,
        service_id: str,
        base_url: str,
        ca_bundle: str | None = None,
        priorities: dict[str, str] | None = None,
    ) -> None:
        verify: ssl.SSLContext | bool = True
        if ca_bundle:
            verify = ssl.create_default_context(cafile=ca_bundle)
        self.client = pagerduty.RestApiV2Client(
            api_key, default_from=from_email, base_url=base_url.rstrip("/"), verify=verify
        )
        self.client.timeout = TIMEOUT
        self.client.retry[429] = 1  # one quick retry in the thread, then back to the outbox
        self.client.sleep_timer = 0.25
        self.client.max_network_attempts = 1
        self.from_email = from_email
        self.service_id = service_id
        self._priorities = priorities
        self._own_id: str | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pagerduty")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, what: str, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, fn)
        except pagerduty.Error as exc:
            raise _error(exc, what) from exc

    async def create_incident(
        self, *, title: str, urgency: str, incident_key: str, details: str
    ) -> PagerIncident:
        body = {
            "type": "incident",
            "title": title[:1024],
            "service": {"id": self.service_id, "type": "service_reference"},
            "urgency": urgency,
            "incident_key": incident_key,
            "body": {"type": "incident_body", "details": details[:10000]},
        }

        def create() -> dict[str, Any]:
            try:
                result = self.client.rpost("/incidents", json={"incident": body})
            except pagerduty.HttpError as exc:
                # A retry after a lost answer: the first attempt opened it. Adopt that one.
                if DUPLICATE_KEY in _errors_text(exc):
                    found = self._find_by_key(incident_key)
                    if found is not None:
                        return found
                raise
            assert isinstance(result, dict)
            return result

        return self._incident(await self._run("create incident", create))

    def _find_by_key(self, key: str) -> dict[str, Any] | None:
        found = self.client.list_all(
            "/incidents",
            params={"incident_key": key, "service_ids[]": [self.service_id]},
        )
        return dict(found[0]) if found else None

    @staticmethod
    def _incident(data: dict[str, Any]) -> PagerIncident:
        return PagerIncident(
            id=str(data["id"]),
            number=int(data.get("incident_number") or 0),
            html_url=str(data.get("html_url") or ""),
            status=str(data.get("status") or ""),
        )

    async def _priority_id(self, name: str) -> str | None:
        if self._priorities is None:
            found = await self._run("list priorities", lambda: self.client.list_all("/priorities"))
            self._priorities = {str(p["name"]): str(p["id"]) for p in found}
        return self._priorities.get(name)

    async def update_incident(
        self,
        pd_id: str,
        *,
        status: str | None = None,
        urgency: str | None = None,
        priority: str | None = None,
        resolution: str | None = None,
    ) -> None:
        body: dict[str, Any] = {"type": "incident_reference"}
        if status:
            body["status"] = status
        if urgency:
            body["urgency"] = urgency
        if priority:
            priority_id = await self._priority_id(priority)
            if priority_id:
                body["priority"] = {"id": priority_id, "type": "priority_reference"}
        if resolution:
            body["resolution"] = resolution[:1000]
        if len(body) == 1:
            return

        def update() -> None:
            try:
                self.client.rput(f"/incidents/{pd_id}", json={"incident": body})
            except pagerduty.HttpError as exc:
                if status == "resolved" and "Already Resolved" in _errors_text(exc):
                    return  # resolved in PagerDuty first: the state we wanted
                raise

        await self._run("update incident", update)

    async def add_note(self, pd_id: str, text: str) -> None:
        await self._run(
            "add note",
            lambda: self.client.rpost(
                f"/incidents/{pd_id}/notes", json={"note": {"content": text[:25000]}}
            ),
        )

    async def notes(self, pd_id: str) -> list[str]:
        """The contents of the incident's notes (`GET /incidents/{id}/notes`, not paginated)."""
        found = await self._run("list notes", lambda: self.client.rget(f"/incidents/{pd_id}/notes"))
        return [str(n.get("content") or "") for n in found or [] if isinstance(n, dict)]

    async def own_user_id(self) -> str | None:
        if self._own_id is None:
            users = await self._run(
                "find own user",
                lambda: self.client.list_all("/users", params={"query": self.from_email}),
            )
            match = next((u for u in users if u.get("email") == self.from_email), None)
            self._own_id = str(match["id"]) if match else None
        return self._own_id

    async def add_responders(
        self, pd_id: str, *, targets: list[tuple[str, str]], message: str
    ) -> None:
        requester = await self.own_user_id()
        body = {
            "requester_id": requester,
            "message": message[:500] or "Please join this incident.",
            "responder_request_targets": [
                {"responder_request_target": {"id": target_id, "type": kind}}
                for kind, target_id in targets
            ],
        }
        await self._run(
            "add responders",
            lambda: self.client.rpost(f"/incidents/{pd_id}/responder_requests", json=body),
        )

    async def oncalls(self) -> list[OnCall]:
        def fetch() -> list[OnCall]:
            service = self.client.rget(f"/services/{self.service_id}")
            assert isinstance(service, dict)
            policy = (service.get("escalation_policy") or {}).get("id")
            entries = self.client.list_all(
                "/oncalls", params={"escalation_policy_ids[]": [policy], "include[]": ["users"]}
            )
            seen: set[tuple[int, str]] = set()
            result = []
            for entry in entries:
                user = entry.get("user") or {}
                level = int(entry.get("escalation_level") or 0)
                key = (level, str(user.get("id")))
                if key in seen:
                    continue
                seen.add(key)
                email = user.get("email")
                if not email and user.get("id"):  # a reference only: look the person up
                    full = self.client.rget(f"/users/{user['id']}")
                    email = full.get("email") if isinstance(full, dict) else None
                name = str(user.get("name") or user.get("summary") or user.get("id"))
                result.append(OnCall(level=level, name=name, email=email))
            return sorted(result, key=lambda o: (o.level, o.name))

        return await self._run("list on-calls", fetch)


if TYPE_CHECKING:  # mypy proves the adapter is the port (bot/domain/ports.py)

    def _conforms(adapter: PagerDutyAdapter) -> Pager:
        return adapter
