"""Grafana's annotations HTTP API (`GRAFANA_URL`, a service account token as Bearer).

https://grafana.com/docs/grafana/latest/developer-resources/api-reference/http-api/api-legacy/annotations/
— find (`GET /api/annotations`), create (`POST`), patch (`PATCH /api/annotations/:id`).
Answers become `IntegrationError`s: 429 carries `Retry-After`; other 4xx are permanent (the
request itself is refused); 5xx, timeouts and unreachable hosts are worth retrying.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp

from bot.core.errors import ErrorCode, IntegrationError
from bot.domain.ports import Found

if TYPE_CHECKING:
    from bot.domain.ports import Annotator

SERVICE = "grafana"


class GrafanaAdapter:
    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0) -> None:
        self.base = base_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def find(
        self, *, tags: Sequence[str], dashboard_uid: str | None, panel_id: int | None
    ) -> list[Found]:
        params: list[tuple[str, str]] = [("type", "annotation"), ("limit", "100")]
        params += [("tags", t) for t in tags]
        if dashboard_uid is not None:
            params.append(("dashboardUID", dashboard_uid))
        if panel_id is not None:
            params.append(("panelId", str(panel_id)))
        answer = await self._request("GET", "/api/annotations", params=params)
        if not isinstance(answer, list):
            raise IntegrationError(
                SERVICE, ErrorCode.UNAVAILABLE, "find: not a list of annotations"
            )
        return [
            Found(
                id=int(item["id"]),
                dashboard_uid=item.get("dashboardUID") or None,
                panel_id=int(item.get("panelId") or 0),
            )
            for item in answer
            if isinstance(item, dict) and "id" in item
        ]

    async def create(self, body: Mapping[str, Any]) -> int:
        answer = await self._request("POST", "/api/annotations", json=dict(body))
        if not isinstance(answer, dict) or "id" not in answer:
            raise IntegrationError(SERVICE, ErrorCode.UNAVAILABLE, "create: no annotation id")
        return int(answer["id"])

    async def patch(self, annotation_id: int, body: Mapping[str, Any]) -> None:
        await self._request("PATCH", f"/api/annotations/{annotation_id}", json=dict(body))

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        json: dict[str, Any] | None = None,
    ) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        try:
            async with self._session.request(
                method, f"{self.base}{path}", params=params, json=json, headers=headers
            ) as resp:
                if resp.status >= 400:
                    raise await _error(resp, method, path)
                return await resp.json(content_type=None)
        except aiohttp.ClientError as exc:
            raise IntegrationError(
                SERVICE, ErrorCode.UNAVAILABLE, f"{method} {path}: {type(exc).__name__}"
            ) from exc
        except TimeoutError as exc:
            raise IntegrationError(
                SERVICE, ErrorCode.TIMEOUT, f"{method} {path}: timed out"
            ) from exc


async def _error(resp: aiohttp.ClientResponse, method: str, path: str) -> IntegrationError:
    message = ""
    try:
        body = await resp.json(content_type=None)
        if isinstance(body, dict):
            message = str(body.get("message") or "")
    except ValueError:
        pass
    code = ErrorCode.for_status(resp.status)
    retry_after: float | None = None
    if resp.status == 429:
        try:
            retry_after = float(resp.headers.get("Retry-After", "1"))
        except ValueError:
            retry_after = 1.0
    permanent = 400 <= resp.status < 500 and resp.status not in (408, 429)
    text = f"{method} {path}: HTTP {resp.status}" + (f" ({message[:200]})" if message else "")
    return IntegrationError(
        SERVICE, code, text, reason=message or None, retry_after=retry_after, permanent=permanent
    )


if TYPE_CHECKING:  # mypy proves the adapter is the port (bot/domain/ports.py)

    def _conforms(adapter: GrafanaAdapter) -> Annotator:
        return adapter
