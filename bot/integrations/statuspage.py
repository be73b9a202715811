"""Atlassian Statuspage REST API v1: create, update, read and list a page's incidents.

``Authorization: OAuth <STATUSPAGE_API_KEY>`` on every request, bodies wrapped in
``{"incident": {...}}`` (https://developer.statuspage.io/). A 420 or 429 (rate limited, one
request a second per key) is retried after its ``Retry-After`` (at most `max_wait` seconds,
`retries` times); anything else that fails is an `IntegrationError` naming ``statuspage``.
Nothing here decides what to publish: that is the approved `statuspage_update` remediation.
"""

from __future__ import annotations

import asyncio
from json import loads
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp

from bot.core.errors import ErrorCode, IntegrationError

if TYPE_CHECKING:
    from bot.domain.ports import StatuspageApi

SERVICE = "statuspage"


class StatuspageClient:
    def __init__(
        self,
        *,
        api_key: str,
        page_id: str,
        base_url: str = "https://api.statuspage.io",
        timeout: float = 10.0,
        retries: int = 2,
        max_wait: float = 10.0,
    ) -> None:
        self.page_id = page_id
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"OAuth {api_key}", "Accept": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retries = retries
        self._max_wait = max_wait
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _url(self, suffix: str = "") -> str:
        return f"{self.base_url}/v1/pages/{quote(self.page_id, safe='')}/incidents{suffix}"

    async def create_incident(self, fields: dict[str, Any]) -> dict[str, Any]:
        body = await self._request("POST", self._url(), json={"incident": fields})
        return _object(body)

    async def update_incident(self, incident_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        url = self._url(f"/{quote(incident_id, safe='')}")
        return _object(await self._request("PATCH", url, json={"incident": fields}))

    async def incident(self, incident_id: str) -> dict[str, Any]:
        return _object(await self._request("GET", self._url(f"/{quote(incident_id, safe='')}")))

    async def list_incidents(
        self, *, q: str | None = None, limit: int = 100, page: int = 1
    ) -> list[dict[str, Any]]:
        params = {"limit": str(limit), "page": str(page), **({"q": q} if q else {})}
        body = await self._request("GET", self._url(), params=params)
        if not isinstance(body, list):
            raise IntegrationError(SERVICE, ErrorCode.REFUSED, "incidents: not a JSON list")
        return [i for i in body if isinstance(i, dict)]

    async def components(self) -> list[dict[str, Any]]:
        """The page's components (`GET /v1/pages/{page_id}/components`)."""
        url = f"{self.base_url}/v1/pages/{quote(self.page_id, safe='')}/components"
        body = await self._request("GET", url)
        if not isinstance(body, list):
            raise IntegrationError(SERVICE, ErrorCode.REFUSED, "components: not a JSON list")
        return [c for c in body if isinstance(c, dict)]

    async def _request(
        self,
        method: str,
        url: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        attempt = 0
        while True:
            try:
                async with self._session.request(
                    method, url, json=json, params=params, headers=self._headers
                ) as resp:
                    if resp.status < 300:
                        return await resp.json(content_type=None)
                    error = _error_text(await resp.text())
                    retry_after = _seconds(resp.headers.get("Retry-After"))
                    status = resp.status
            except aiohttp.ClientError as exc:
                raise IntegrationError(
                    SERVICE, ErrorCode.for_exception(exc), f"{method} {url}: {type(exc).__name__}"
                ) from exc
            except TimeoutError as exc:
                raise IntegrationError(
                    SERVICE, ErrorCode.TIMEOUT, f"{method} {url}: no answer in time"
                ) from exc
            limited = status in (420, 429)
            wait = retry_after if retry_after is not None else 1.0
            if limited and attempt < self._retries and wait <= self._max_wait:
                attempt += 1
                await asyncio.sleep(wait)
                continue
            code = ErrorCode.RATE_LIMITED if limited else ErrorCode.for_status(status)
            raise IntegrationError(
                SERVICE, code, f"{method} {url}: HTTP {status}: {error}",
                retry_after=retry_after if limited else None,
                permanent=code in (ErrorCode.DENIED, ErrorCode.REFUSED, ErrorCode.NOT_FOUND),
            )  # fmt: skip


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise IntegrationError(SERVICE, ErrorCode.REFUSED, "incident: not a JSON object")
    return body


def _error_text(text: str) -> str:
    """Statuspage's error entity (`{"error": ...}`), else the first characters of the body."""
    try:
        body = loads(text)
    except ValueError:
        return text[:200]
    if isinstance(body, dict) and "error" in body:
        error = body["error"]
        return "; ".join(map(str, error)) if isinstance(error, list) else str(error)[:200]
    return text[:200]


def _seconds(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None


if TYPE_CHECKING:  # mypy proves the adapter is the port (bot/domain/ports.py)

    def _conforms(adapter: StatuspageClient) -> StatuspageApi:
        return adapter
