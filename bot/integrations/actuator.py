"""`Actuator` over HTTP: Spring Boot actuator and resilience4j endpoints of each service.

A service's base URL is `SERVICE_URL_TEMPLATE` with `{service}` filled in. Reads only; the
circuit-breaker transitions are remediations and live with them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

from bot.errors import IntegrationError

ACCEPT = "application/vnd.spring-boot.actuator.v3+json, application/json"


class HttpActuator:
    def __init__(self, url_template: str, *, timeout: float = 10.0) -> None:
        if "{service}" not in url_template:
            raise ValueError("SERVICE_URL_TEMPLATE must contain {service}")
        self.url_template = url_template
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def base(self, service: str) -> str:
        return self.url_template.format(service=quote(service, safe="")).rstrip("/")

    async def _get(
        self,
        service: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = f"{self.base(service)}{path}"
        try:
            async with self._session.get(url, params=params, headers={"Accept": ACCEPT}) as resp:
                if resp.status == 404:
                    raise IntegrationError(
                        "actuator", f"{service}{path}: not found", permanent=True
                    )
                if resp.status not in ok:
                    raise IntegrationError("actuator", f"{service}{path}: HTTP {resp.status}")
                body = await resp.json(content_type=None)
        except aiohttp.ClientError as exc:
            raise IntegrationError("actuator", f"{service}: {type(exc).__name__}") from exc
        if not isinstance(body, dict):
            raise IntegrationError("actuator", f"{service}{path}: not a JSON object")
        return body

    async def metric(self, service: str, name: str, tags: dict[str, str]) -> dict[str, Any]:
        params = [("tag", f"{k}:{v}") for k, v in sorted(tags.items())]
        return await self._get(service, f"/actuator/metrics/{quote(name, safe='')}", params=params)

    async def health(self, service: str, component: str | None) -> dict[str, Any]:
        path = "/actuator/health" + (f"/{quote(component, safe='/')}" if component else "")
        # Spring answers 503 with the same JSON body when the status is DOWN.
        return await self._get(service, path, ok=(200, 503))

    async def circuit_breakers(self, service: str) -> dict[str, Any]:
        return await self._get(service, "/actuator/circuitbreakers")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
