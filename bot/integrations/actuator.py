"""`Actuator` over HTTP: Spring Boot actuator and resilience4j endpoints of each service.

A service's base URL is `SERVICE_URL_TEMPLATE` with `{service}` filled in. Reads only; the
circuit-breaker transitions are remediations and live with them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp

from bot.core.errors import ErrorCode, IntegrationError

if TYPE_CHECKING:
    from bot.domain.ports import Actuator, ActuatorOps

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
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = f"{self.base(service)}{path}"
        try:
            async with self._session.get(
                url, params=params, headers={"Accept": ACCEPT, **(headers or {})}
            ) as resp:
                if resp.status == 404:
                    raise IntegrationError(
                        "actuator",
                        ErrorCode.NOT_FOUND,
                        f"{service}{path}: not found",
                        permanent=True,
                    )
                if resp.status not in ok:
                    raise IntegrationError(
                        "actuator",
                        ErrorCode.for_status(resp.status),
                        f"{service}{path}: HTTP {resp.status}",
                    )
                body = await resp.json(content_type=None)
        except aiohttp.ClientError as exc:
            raise IntegrationError(
                "actuator", ErrorCode.for_exception(exc), f"{service}: {type(exc).__name__}"
            ) from exc
        if not isinstance(body, dict):
            raise IntegrationError(
                "actuator", ErrorCode.REFUSED, f"{service}{path}: not a JSON object"
            )
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

    # -- writes (remediations; only for approved requests) ---------------------------------

    async def _send(
        self, method: str, url: str, *, json_body: dict[str, Any], headers: dict[str, str]
    ) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.request(method, url, json=json_body, headers=headers) as resp:
                body = await resp.json(content_type=None) if resp.content_length != 0 else {}
                if resp.status == 404:
                    raise IntegrationError(
                        "actuator",
                        ErrorCode.NOT_FOUND,
                        f"{method} {url}: not found",
                        permanent=True,
                    )
                if resp.status == 401:
                    raise IntegrationError(
                        "actuator",
                        ErrorCode.DENIED,
                        f"{method} {url}: unauthorized",
                        permanent=True,
                    )
                if resp.status >= 400:
                    message = (body or {}).get("message") or f"HTTP {resp.status}"
                    raise IntegrationError(
                        "actuator",
                        ErrorCode.for_status(resp.status),
                        f"{method} {url}: {message}",
                        permanent=resp.status < 500,
                    )
        except aiohttp.ClientError as exc:
            raise IntegrationError(
                "actuator", ErrorCode.for_exception(exc), f"{method} {url}: {type(exc).__name__}"
            ) from exc
        return body if isinstance(body, dict) else {}

    async def transition_breaker(
        self, service: str, name: str, update_state: str
    ) -> dict[str, Any]:
        """resilience4j: POST /actuator/circuitbreakers/{name} {"updateState": ...}.

        updateState is CLOSE, FORCE_OPEN or DISABLE; there is no HALF_OPEN transition.
        """
        url = f"{self.base(service)}/actuator/circuitbreakers/{quote(name, safe='')}"
        return await self._send(
            "POST", url, json_body={"updateState": update_state}, headers={"Accept": ACCEPT}
        )

    async def flag(self, service: str, name: str, *, token: str) -> dict[str, Any]:
        """The config service's flag admin endpoint: {name, value, version, ...}."""
        return await self._get(
            service,
            f"/admin/flags/{quote(name, safe='')}",
            headers={"Authorization": f"Bearer {token}"},
        )

    async def set_flag(
        self, service: str, name: str, value: Any, *, token: str, expected_version: int | None,
        actor: str, reason: str,
    ) -> dict[str, Any]:  # fmt: skip
        url = f"{self.base(service)}/admin/flags/{quote(name, safe='')}"
        body: dict[str, Any] = {"value": value, "actor": actor, "reason": reason}
        if expected_version is not None:
            body["expectedVersion"] = expected_version
        return await self._send(
            "PUT", url, json_body=body, headers={"Authorization": f"Bearer {token}"}
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


if TYPE_CHECKING:  # mypy proves the adapter is the ports (bot/domain/ports.py)

    def _conforms(adapter: HttpActuator) -> tuple[Actuator, ActuatorOps]:
        return adapter, adapter
