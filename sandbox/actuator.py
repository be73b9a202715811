"""A local stand-in for Spring Boot actuator (+ resilience4j) endpoints of several services.

One aiohttp server on 127.0.0.1 serves every service under its own path prefix, so the bot's
``SERVICE_URL_TEMPLATE`` can be set to :attr:`FakeActuator.url_template`
(``http://127.0.0.1:<port>/{service}``) and ``{base}/actuator/health`` reaches that service.
Shapes follow ``shared/specs/actuator`` (``NOTES.md``, ``actuator_response_schemas.json``):

* ``GET /{service}/actuator/health`` - ``{"status", "components"}`` (components sorted, details
  shown); ``/actuator/health/{component}[/{instance}]`` returns just that component. HTTP 503
  when the status is ``DOWN`` or ``OUT_OF_SERVICE``, else 200; unknown component 404 (no body).
  The overall status is the explicit one from ``set_health`` or else aggregated like
  ``SimpleStatusAggregator`` (order DOWN, OUT_OF_SERVICE, UP, UNKNOWN; other codes ignored).
* ``GET /{service}/actuator/metrics`` - ``{"names": [...]}`` sorted;
  ``/actuator/metrics/{name}?tag=k:v`` - matching meters merged per statistic (MAX by max,
  others summed), ``availableTags`` without the drill-down keys; unknown name or no matching
  meter 404 with an empty body; a ``tag`` without ``:`` is 400.
* ``GET /{service}/actuator/circuitbreakers`` - ``{"circuitBreakers": {name: details}}`` sorted,
  rates as Java float strings with ``%`` (``"-1.0%"`` until calls are recorded);
  ``POST /{service}/actuator/circuitbreakers/{name}`` with ``{"updateState": "CLOSE" |
  "FORCE_OPEN" | "DISABLE"}`` (resilience4j ``UpdateState`` has no other values: anything else,
  e.g. ``HALF_OPEN``, is 400; an unknown breaker name is created, as the registry does). A GET
  on ``/circuitbreakers/{name}`` is 405 as in resilience4j (there is no such read operation).
  Breakers with ``register_health_indicator`` also appear as the ``circuitBreakers`` health
  component, and as ``resilience4j.circuitbreaker.*`` meters.
* Feature flags (no upstream spec; shape chosen for this project), on the config service only
  (``config-service`` by default), every request needing ``Authorization: Bearer <flag_token>``:

  - ``GET /config-service/admin/flags`` -> ``{"flags": [Flag, ...]}`` sorted by name;
  - ``GET /config-service/admin/flags/{name}`` -> ``Flag`` or 404;
  - ``PUT /config-service/admin/flags/{name}`` with ``{"value": <any JSON>, "expectedVersion":
    <int, optional>, "actor": <str, optional>, "reason": <str, optional>}`` -> 200 ``Flag`` plus
    ``"previousValue"``; 404 for an unknown flag (flags are never created over HTTP), 409 when
    ``expectedVersion`` is not the current version, 400 for a malformed body.

  ``Flag`` is ``{"name", "value", "version", "description", "updatedAt" (RFC 3339),
  "updatedBy"}``; errors are ``{"error": <code>, "message": <text>}`` with codes
  ``unauthorized`` (401, ``WWW-Authenticate: Bearer``), ``flag_not_found``, ``version_conflict``
  (adds ``currentVersion``) and ``invalid_body``.

Other paths get Spring's error JSON (``{"timestamp", "status", "error", "path"}``); an unknown
service is 404 that way too. Actuator answers use ``application/vnd.spring-boot.actuator.v3+json``
unless the request asks for ``application/json`` only.

:meth:`FakeActuator.fail` injects errors and slow answers (``delay=``); every request is kept in
:attr:`FakeActuator.calls`; flag writes in :attr:`FakeActuator.flag_changes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hmac
import json
import logging
import struct
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sandbox.loopback import StandIn, serve_on_loopback

__all__ = ["Breaker", "Call", "FakeActuator", "Flag", "FlagChange"]

log = logging.getLogger(__name__)

ACTUATOR_V3 = "application/vnd.spring-boot.actuator.v3+json"
STATUS_ORDER = ("DOWN", "OUT_OF_SERVICE", "UP", "UNKNOWN")
STATISTICS = frozenset(
    {"TOTAL", "TOTAL_TIME", "COUNT", "MAX", "VALUE", "UNKNOWN", "ACTIVE_TASKS", "DURATION"}
)
BREAKER_STATES = ("CLOSED", "OPEN", "HALF_OPEN", "DISABLED", "FORCED_OPEN", "METRICS_ONLY")
UPDATE_STATES = {"CLOSE": "CLOSED", "FORCE_OPEN": "FORCED_OPEN", "DISABLE": "DISABLED"}
_HTTP_ERRORS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class Call:
    """One recorded request (the bearer token is never recorded)."""

    service: str
    method: str
    path: str
    """The path below the service prefix, e.g. ``/actuator/health``."""
    query: list[tuple[str, str]]
    body: Any
    status: int
    endpoint: str
    """``health``, ``metrics``, ``circuitbreakers``, ``flags``, ``actuator`` or ``?``."""


@dataclass
class Breaker:
    """A resilience4j circuit breaker as the stand-in keeps it."""

    state: str = "CLOSED"
    failure_rate: float = -1.0
    slow_call_rate: float = -1.0
    failure_rate_threshold: float = 50.0
    slow_call_rate_threshold: float = 100.0
    buffered_calls: int = 0
    failed_calls: int = 0
    slow_calls: int = 0
    slow_failed_calls: int = 0
    not_permitted_calls: int = 0
    register_health_indicator: bool = True
    allow_health_indicator_to_fail: bool = False

    def details(self) -> dict[str, Any]:
        """``CircuitBreakerDetails`` as the endpoint serialises it."""
        return {
            "failureRate": _java_float(self.failure_rate) + "%",
            "slowCallRate": _java_float(self.slow_call_rate) + "%",
            "failureRateThreshold": _java_float(self.failure_rate_threshold) + "%",
            "slowCallRateThreshold": _java_float(self.slow_call_rate_threshold) + "%",
            "bufferedCalls": self.buffered_calls,
            "failedCalls": self.failed_calls,
            "slowCalls": self.slow_calls,
            "slowFailedCalls": self.slow_failed_calls,
            "notPermittedCalls": self.not_permitted_calls,
            "state": self.state,
        }

    def health_status(self) -> str:
        if self.state == "CLOSED":
            return "UP"
        if self.state == "OPEN":
            return "DOWN" if self.allow_health_indicator_to_fail else "CIRCUIT_OPEN"
        if self.state == "HALF_OPEN":
            return "CIRCUIT_HALF_OPEN"
        return "UNKNOWN"

    def reset_metrics(self) -> None:
        """A state transition starts fresh metrics, as the resilience4j state machine does."""
        self.failure_rate = self.slow_call_rate = -1.0
        self.buffered_calls = self.failed_calls = self.slow_calls = 0
        self.slow_failed_calls = self.not_permitted_calls = 0


@dataclass
class Flag:
    name: str
    value: Any
    version: int
    description: str
    updated_at: float
    updated_by: str

    def render(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": copy.deepcopy(self.value),
            "version": self.version,
            "description": self.description,
            "updatedAt": _rfc3339(self.updated_at),
            "updatedBy": self.updated_by,
        }


@dataclass
class FlagChange:
    """One flag write over HTTP."""

    name: str
    old: Any
    new: Any
    version: int
    actor: str
    reason: str | None
    at: float


@dataclass
class _Meter:
    tags: dict[str, str]
    values: dict[str, float]


@dataclass
class _Metric:
    description: str | None
    base_unit: str | None
    meters: list[_Meter] = field(default_factory=list)


@dataclass
class _Service:
    name: str
    status: str | None = None
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, _Metric] = field(default_factory=dict)
    breakers: dict[str, Breaker] = field(default_factory=dict)


@dataclass
class _Fault:
    service: str
    endpoint: str
    status: int | None
    delay: float
    body: Any


class _HttpError(Exception):
    def __init__(
        self,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        spring: bool = False,
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers
        self.spring = spring


def _default_components() -> dict[str, dict[str, Any]]:
    return {
        "db": {
            "status": "UP",
            "details": {"database": "PostgreSQL", "validationQuery": "isValid()"},
        },
        "diskSpace": {
            "status": "UP",
            "details": {
                "total": 76887154688,
                "free": 49923645440,
                "threshold": 10485760,
                "path": "/app/.",
                "exists": True,
            },
        },
        "ping": {"status": "UP"},
    }


class FakeActuator(StandIn):
    """The actuator stand-in. Use ``async with FakeActuator(services=[...]) as act: ...``."""

    def __init__(
        self,
        *,
        services: Iterable[str] = (),
        config_service: str = "config-service",
        flag_token: str = "flag-admin-token",  # noqa: S107 - a fake token for the fake
        default_metrics: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config_service = config_service
        self.flag_token = flag_token
        self.default_metrics = default_metrics
        self._clock = clock

        self.calls: list[Call] = []
        self.flag_changes: list[FlagChange] = []
        self.on_change: list[Callable[[str, Any], None]] = []

        self._services: dict[str, _Service] = {}
        self._flags: dict[str, Flag] = {}
        self._faults: list[_Fault] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._stopping = asyncio.Event()

        for name in (*services, config_service):
            self.add_service(name)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Serve on 127.0.0.1 on a free port."""
        if self._runner is not None:
            return
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner, self._port = await serve_on_loopback(app)

    async def stop(self) -> None:
        self._stopping.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def root(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeActuator is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def url_template(self) -> str:
        """A ``SERVICE_URL_TEMPLATE`` value: ``http://127.0.0.1:<port>/{service}``."""
        return f"{self.root}/{{service}}"

    def service_url(self, service: str) -> str:
        return f"{self.root}/{service}"

    # ------------------------------------------------------------------ state setters

    def add_service(self, name: str) -> None:
        """Register a service (idempotent): health UP (db, diskSpace, ping) and default meters."""
        if "/" in name or not name:
            raise ValueError(f"bad service name {name!r}")
        if name in self._services:
            return
        svc = _Service(name, components=_default_components())
        self._services[name] = svc
        if self.default_metrics:
            self._seed_metrics(svc)

    @property
    def services(self) -> list[str]:
        return sorted(self._services)

    def set_health(
        self,
        service: str,
        status: str | None = None,
        components: Mapping[str, str | Mapping[str, Any]] | None = None,
    ) -> None:
        """Set the overall health status (None: aggregate the components) and/or the components.

        ``components`` replaces all components; a value is a status string or a full component
        (``{"status", "details"?, "components"?}``).
        """
        svc = self._service(service)
        svc.status = status
        if components is not None:
            svc.components = {k: _component(v) for k, v in components.items()}
        self._notify("health", service)

    def set_component(
        self,
        service: str,
        name: str,
        status: str,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Set one health component (added if new)."""
        svc = self._service(service)
        comp: dict[str, Any] = {"status": status}
        if details is not None:
            comp["details"] = dict(details)
        svc.components[name] = comp
        self._notify("health", service)

    def set_metric(
        self,
        service: str,
        name: str,
        value: float | Mapping[str, float],
        *,
        tags: Mapping[str, str] | None = None,
        description: str | None = None,
        base_unit: str | None = None,
    ) -> None:
        """Set the meter of ``name`` with exactly ``tags`` (added if new).

        ``value`` is a gauge ``VALUE`` or a mapping of statistic -> value (``COUNT``,
        ``TOTAL_TIME``, ``MAX``...). Description and base unit change only when given.
        """
        svc = self._service(service)
        values = {"VALUE": float(value)} if isinstance(value, int | float) else dict(value)
        for stat in values:
            if stat not in STATISTICS:
                raise ValueError(f"unknown statistic {stat!r}")
        metric = svc.metrics.get(name)
        if metric is None:
            metric = svc.metrics[name] = _Metric(description, base_unit)
        else:
            if description is not None:
                metric.description = description
            if base_unit is not None:
                metric.base_unit = base_unit
        tag_map = {str(k): str(v) for k, v in (tags or {}).items()}
        floats = {k: float(v) for k, v in values.items()}
        for meter in metric.meters:
            if meter.tags == tag_map:
                meter.values = floats
                break
        else:
            metric.meters.append(_Meter(tag_map, floats))
        self._notify("metric", service)

    def remove_metric(self, service: str, name: str) -> None:
        self._service(service).metrics.pop(name, None)

    def set_breaker(self, service: str, name: str, state: str = "CLOSED", **fields: Any) -> Breaker:
        """Create or change a circuit breaker; ``fields`` are :class:`Breaker` attributes."""
        if state not in BREAKER_STATES:
            raise ValueError(f"unknown breaker state {state!r}")
        svc = self._service(service)
        breaker = svc.breakers.setdefault(name, Breaker())
        breaker.state = state
        for key, value in fields.items():
            if not hasattr(breaker, key):
                raise TypeError(f"unknown breaker field {key!r}")
            setattr(breaker, key, value)
        self._notify("breaker", service)
        return breaker

    def breaker(self, service: str, name: str) -> Breaker:
        return self._service(service).breakers[name]

    def set_flag(self, name: str, value: Any, *, description: str = "") -> Flag:
        """Create or set a feature flag on the config service (version bumps on change)."""
        flag = self._flags.get(name)
        now = self._clock()
        if flag is None:
            flag = self._flags[name] = Flag(name, copy.deepcopy(value), 1, description, now, "seed")
        else:
            if flag.value != value:
                flag.version += 1
            flag.value = copy.deepcopy(value)
            flag.updated_at, flag.updated_by = now, "seed"
            if description:
                flag.description = description
        self._notify("flag", name)
        return flag

    def flag(self, name: str) -> Any:
        return copy.deepcopy(self._flags[name].value)

    def fail(
        self,
        service: str = "*",
        endpoint: str = "*",
        *,
        status: int | None = 500,
        delay: float = 0.0,
        times: int = 1,
        body: Any = None,
    ) -> None:
        """Make the next ``times`` matching requests fail or be slow.

        ``endpoint``: ``health``, ``metrics``, ``circuitbreakers``, ``flags`` or ``*``. ``delay``
        seconds are waited first; ``status=None`` then answers normally (a slow response),
        otherwise ``status`` is answered with ``body`` or Spring's error JSON.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        self._faults.extend(_Fault(service, endpoint, status, delay, body) for _ in range(times))

    def slow(
        self, service: str = "*", endpoint: str = "*", *, delay: float, times: int = 1
    ) -> None:
        """Shorthand for ``fail(..., status=None, delay=delay)``."""
        self.fail(service, endpoint, status=None, delay=delay, times=times)

    def calls_to(self, service: str, endpoint: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.service == service and endpoint in (None, c.endpoint)]

    def health(self, service: str) -> dict[str, Any]:
        """The ``/actuator/health`` body of a service."""
        svc = self._service(service)
        components = copy.deepcopy(svc.components)
        breakers = {n: b for n, b in sorted(svc.breakers.items()) if b.register_health_indicator}
        if breakers:
            details: dict[str, dict[str, Any]] = {
                n: {"status": b.health_status(), "details": _health_details(b)}
                for n, b in breakers.items()
            }
            components["circuitBreakers"] = {
                "status": _aggregate(str(d["status"]) for d in details.values()),
                "details": details,
            }
        components = dict(sorted(components.items()))
        status = svc.status or _aggregate(c["status"] for c in components.values())
        out: dict[str, Any] = {"status": status}
        if components:
            out["components"] = components
        return out

    def metric_names(self, service: str) -> list[str]:
        return sorted(self._metrics(self._service(service)))

    def _metrics(self, svc: _Service) -> dict[str, _Metric]:
        metrics = _breaker_metrics(svc.breakers)
        metrics.update(svc.metrics)
        return metrics

    def _seed_metrics(self, svc: _Service) -> None:
        name = svc.name
        self.set_metric(
            name,
            "jvm.memory.used",
            2.68435456e8,
            tags={"area": "heap", "id": "G1 Old Gen"},
            description="The amount of used memory",
            base_unit="bytes",
        )
        self.set_metric(
            name, "jvm.memory.used", 1.34217728e8, tags={"area": "heap", "id": "G1 Eden Space"}
        )
        self.set_metric(
            name, "jvm.memory.used", 9.437184e7, tags={"area": "nonheap", "id": "Metaspace"}
        )
        self.set_metric(
            name,
            "jvm.memory.max",
            2.3068672e9,
            tags={"area": "heap", "id": "G1 Old Gen"},
            description="The maximum amount of memory in bytes that can be used for memory "
            "management",
            base_unit="bytes",
        )
        self.set_metric(
            name,
            "process.cpu.usage",
            0.12,
            description='The "recent cpu usage" for the Java Virtual Machine process',
        )
        self.set_metric(
            name,
            "hikaricp.connections.active",
            2.0,
            tags={"pool": "HikariPool-1"},
            description="Active connections",
        )
        self.set_metric(
            name,
            "hikaricp.connections.max",
            10.0,
            tags={"pool": "HikariPool-1"},
            description="Max connections",
        )
        self.set_metric(
            name,
            "hikaricp.connections.pending",
            0.0,
            tags={"pool": "HikariPool-1"},
            description="Pending threads",
        )
        for status, outcome, count, total, top in (
            ("200", "SUCCESS", 1500.0, 45.0, 0.8),
            ("500", "SERVER_ERROR", 3.0, 0.3, 0.2),
        ):
            self.set_metric(
                name,
                "http.server.requests",
                {"COUNT": count, "TOTAL_TIME": total, "MAX": top},
                tags={
                    "error": "none",
                    "exception": "none",
                    "method": "GET",
                    "outcome": outcome,
                    "status": status,
                    "uri": "/api/orders",
                },
                base_unit="seconds",
            )

    # ------------------------------------------------------------------ HTTP plumbing

    def _service(self, name: str) -> _Service:
        self.add_service(name)
        return self._services[name]

    def _notify(self, kind: str, obj: Any) -> None:
        for listener in list(self.on_change):
            try:
                listener(kind, obj)
            except Exception:
                log.exception("fake actuator on_change listener failed")

    def _take_fault(self, service: str, endpoint: str) -> _Fault | None:
        for i, f in enumerate(self._faults):
            if f.service in ("*", service) and f.endpoint in ("*", endpoint):
                return self._faults.pop(i)
        return None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = request.path.lstrip("/").split("/", 1)
        service = parts[0]
        sub = "/" + (parts[1] if len(parts) > 1 else "")
        segments = [s for s in sub.split("/") if s]
        endpoint = "?"
        if segments[:1] == ["actuator"]:
            endpoint = segments[1] if len(segments) > 1 else "actuator"
        elif segments[:2] == ["admin", "flags"]:
            endpoint = "flags"
        query = list(request.query.items())
        body: Any = None
        status = 500
        try:
            raw = await request.read() if request.body_exists else b""
            if raw.strip():
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
            fault = self._take_fault(service, endpoint)
            if fault is not None:
                if fault.delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), fault.delay)
                if fault.status is not None:
                    raise _HttpError(fault.status, fault.body, spring=fault.body is None)
            if service not in self._services:
                raise _HttpError(404, spring=True)
            status, payload, headers = self._route(request, service, segments, body, endpoint)
            resp = self._json(request, status, payload, headers, actuator=endpoint != "flags")
        except _HttpError as e:
            status = e.status
            payload = self._spring_error(e.status, request.path) if e.spring else e.body
            resp = self._json(request, e.status, payload, e.headers, actuator=False)
        self.calls.append(Call(service, request.method, sub, query, body, status, endpoint))
        log.debug("fake actuator %s %s -> %s", request.method, request.path, status)
        return resp

    def _json(
        self,
        request: web.Request,
        status: int,
        payload: Any,
        headers: dict[str, str] | None,
        *,
        actuator: bool,
    ) -> web.Response:
        if payload is None:
            return web.Response(status=status, headers=headers)
        content_type = "application/json"
        if actuator:
            accept = request.headers.get("Accept", "*/*")
            if ACTUATOR_V3 in accept or "*/*" in accept or "application/json" not in accept:
                content_type = ACTUATOR_V3
        return web.Response(
            status=status, text=json.dumps(payload), content_type=content_type, headers=headers
        )

    def _spring_error(self, status: int, path: str) -> dict[str, Any]:
        now = datetime.fromtimestamp(self._clock(), UTC)
        return {
            "timestamp": now.isoformat(timespec="milliseconds"),
            "status": status,
            "error": _HTTP_ERRORS.get(status, "Error"),
            "path": path,
        }

    def _route(
        self,
        request: web.Request,
        service: str,
        segments: list[str],
        body: Any,
        endpoint: str,
    ) -> tuple[int, Any, dict[str, str] | None]:
        method = request.method
        svc = self._services[service]
        if endpoint == "flags" and service == self.config_service:
            return self._flags_route(request, segments[2:], body)
        if segments[:1] != ["actuator"]:
            raise _HttpError(404, spring=True)
        rest = segments[1:]
        if method not in ("GET", "HEAD") and not (endpoint == "circuitbreakers" and len(rest) == 2):
            raise _HttpError(405, spring=True)
        if not rest:
            return 200, self._links(service), None
        if endpoint == "health":
            return self._health_route(svc, rest[1:])
        if endpoint == "metrics":
            return self._metrics_route(svc, rest[1:], request)
        if endpoint == "circuitbreakers":
            return self._breakers_route(svc, rest[1:], method, body, request)
        raise _HttpError(404, spring=True)

    def _links(self, service: str) -> dict[str, Any]:
        base = f"{self.root}/{service}/actuator"

        def link(href: str, templated: bool = False) -> dict[str, Any]:
            return {"href": href, "templated": templated}

        return {
            "_links": {
                "self": link(base),
                "health": link(f"{base}/health"),
                "health-path": link(f"{base}/health/{{*path}}", True),
                "metrics": link(f"{base}/metrics"),
                "metrics-requiredMetricName": link(f"{base}/metrics/{{requiredMetricName}}", True),
                "circuitbreakers": link(f"{base}/circuitbreakers"),
                "circuitbreakers-name": link(f"{base}/circuitbreakers/{{name}}", True),
            }
        }

    def _health_route(
        self, svc: _Service, path: list[str]
    ) -> tuple[int, Any, dict[str, str] | None]:
        node: dict[str, Any] = self.health(svc.name)
        for part in path:
            children = node.get("components")
            if not isinstance(children, dict) or part not in children:
                raise _HttpError(404)
            node = children[part]
        status = str(node.get("status", "UNKNOWN"))
        code = 503 if status in ("DOWN", "OUT_OF_SERVICE") else 200
        return code, node, None

    def _metrics_route(
        self, svc: _Service, path: list[str], request: web.Request
    ) -> tuple[int, Any, dict[str, str] | None]:
        metrics = self._metrics(svc)
        if not path:
            return 200, {"names": sorted(metrics)}, None
        if len(path) != 1:
            raise _HttpError(404, spring=True)
        name = path[0]
        wanted: list[tuple[str, str]] = []
        for tag in request.query.getall("tag", []):
            key, sep, value = tag.partition(":")
            if not sep:
                raise _HttpError(400, spring=True)
            wanted.append((key, value))
        metric = metrics.get(name)
        if metric is None:
            raise _HttpError(404)
        meters = [m for m in metric.meters if all(m.tags.get(k) == v for k, v in wanted)]
        if not meters:
            raise _HttpError(404)
        samples: dict[str, float] = {}
        for meter in meters:
            for stat, number in meter.values.items():
                if stat not in samples:
                    samples[stat] = number
                elif stat == "MAX":
                    samples[stat] = max(samples[stat], number)
                else:
                    samples[stat] += number
        available: dict[str, list[str]] = {}
        for meter in meters:
            for key, value in meter.tags.items():
                values = available.setdefault(key, [])
                if value not in values:
                    values.append(value)
        for key, _ in wanted:
            available.pop(key, None)
        return (
            200,
            {
                "name": name,
                "description": metric.description,
                "baseUnit": metric.base_unit,
                "measurements": [{"statistic": s, "value": v} for s, v in samples.items()],
                "availableTags": [{"tag": k, "values": v} for k, v in available.items()],
            },
            None,
        )

    def _breakers_route(
        self,
        svc: _Service,
        path: list[str],
        method: str,
        body: Any,
        request: web.Request,
    ) -> tuple[int, Any, dict[str, str] | None]:
        if not path:
            breakers = {n: b.details() for n, b in sorted(svc.breakers.items())}
            return 200, {"circuitBreakers": breakers}, None
        if len(path) != 1:
            raise _HttpError(404, spring=True)
        if method != "POST":
            raise _HttpError(405, spring=True)
        name = path[0]
        if not request.content_type.startswith("application/json"):
            raise _HttpError(415, spring=True)
        if not isinstance(body, dict) or "updateState" not in body:
            raise _HttpError(400, spring=True)
        target = UPDATE_STATES.get(str(body["updateState"]))
        if target is None:
            raise _HttpError(400, spring=True)
        breaker = svc.breakers.setdefault(name, Breaker())
        breaker.state = target
        breaker.reset_metrics()
        self._notify("breaker", svc.name)
        return (
            200,
            {
                "circuitBreakerName": name,
                "currentState": breaker.state,
                "message": f"{name} state has been changed successfully",
            },
            None,
        )

    def _flags_route(
        self, request: web.Request, path: list[str], body: Any
    ) -> tuple[int, Any, dict[str, str] | None]:
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not token or not hmac.compare_digest(token.encode(), self.flag_token.encode()):
            raise _HttpError(
                401,
                {"error": "unauthorized", "message": "a valid bearer token is required"},
                headers={"WWW-Authenticate": f'Bearer realm="{self.config_service}"'},
            )
        if not path:
            if request.method not in ("GET", "HEAD"):
                raise _HttpError(405, _flag_error("method_not_allowed", "use GET"))
            flags = [self._flags[n].render() for n in sorted(self._flags)]
            return 200, {"flags": flags}, None
        if len(path) != 1:
            raise _HttpError(404, _flag_error("not_found", "no such endpoint"))
        name = path[0]
        flag = self._flags.get(name)
        if request.method in ("GET", "HEAD"):
            if flag is None:
                raise _HttpError(404, _flag_error("flag_not_found", f"no flag named {name!r}"))
            return 200, flag.render(), None
        if request.method != "PUT":
            raise _HttpError(405, _flag_error("method_not_allowed", "use GET or PUT"))
        if not isinstance(body, dict) or "value" not in body:
            raise _HttpError(
                400, _flag_error("invalid_body", 'body must be a JSON object with a "value"')
            )
        expected = body.get("expectedVersion")
        actor = body.get("actor", "api")
        reason = body.get("reason")
        if (
            (expected is not None and (not isinstance(expected, int) or isinstance(expected, bool)))
            or not isinstance(actor, str)
            or not (reason is None or isinstance(reason, str))
        ):
            raise _HttpError(
                400,
                _flag_error(
                    "invalid_body",
                    "expectedVersion must be an integer, actor and reason strings",
                ),
            )
        if flag is None:
            raise _HttpError(404, _flag_error("flag_not_found", f"no flag named {name!r}"))
        if expected is not None and expected != flag.version:
            raise _HttpError(
                409,
                {
                    **_flag_error(
                        "version_conflict",
                        f"flag {name!r} is at version {flag.version}, not {expected}",
                    ),
                    "currentVersion": flag.version,
                },
            )
        previous = flag.value
        now = self._clock()
        flag.value = copy.deepcopy(body["value"])
        flag.version += 1
        flag.updated_at, flag.updated_by = now, actor
        self.flag_changes.append(
            FlagChange(name, previous, copy.deepcopy(flag.value), flag.version, actor, reason, now)
        )
        self._notify("flag", name)
        return 200, {**flag.render(), "previousValue": previous}, None


# ---------------------------------------------------------------------- helpers


def _component(value: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(value, str):
        return {"status": value}
    comp = copy.deepcopy(dict(value))
    if "status" not in comp:
        raise ValueError("a health component needs a status")
    return comp


def _aggregate(statuses: Iterable[str]) -> str:
    """``SimpleStatusAggregator`` with the default order; unknown codes are ignored."""
    present = set(statuses)
    for status in STATUS_ORDER:
        if status in present:
            return status
    return "UNKNOWN"


def _health_details(b: Breaker) -> dict[str, Any]:
    d = b.details()
    order = (
        "failureRate",
        "failureRateThreshold",
        "slowCallRate",
        "slowCallRateThreshold",
        "bufferedCalls",
        "slowCalls",
        "slowFailedCalls",
        "failedCalls",
        "notPermittedCalls",
        "state",
    )
    return {k: d[k] for k in order}


def _breaker_metrics(breakers: Mapping[str, Breaker]) -> dict[str, _Metric]:
    """The resilience4j-micrometer meters of the breakers (TaggedCircuitBreakerMetrics)."""
    if not breakers:
        return {}
    state = _Metric("The states of the circuit breaker", None)
    failure = _Metric("The failure rate of the circuit breaker", "percent")
    slow = _Metric("The slow call of the circuit breaker", "percent")
    buffered = _Metric("The number of buffered calls stored in the ring buffer", None)
    not_permitted = _Metric("Total number of not permitted calls", None)
    for name, b in sorted(breakers.items()):
        for s in BREAKER_STATES:
            state.meters.append(
                _Meter({"name": name, "state": s.lower()}, {"VALUE": float(b.state == s)})
            )
        failure.meters.append(_Meter({"name": name}, {"VALUE": _float32(b.failure_rate)}))
        slow.meters.append(_Meter({"name": name}, {"VALUE": _float32(b.slow_call_rate)}))
        ok = max(0, b.buffered_calls - b.failed_calls)
        buffered.meters.append(_Meter({"name": name, "kind": "successful"}, {"VALUE": float(ok)}))
        buffered.meters.append(
            _Meter({"name": name, "kind": "failed"}, {"VALUE": float(b.failed_calls)})
        )
        not_permitted.meters.append(
            _Meter({"name": name, "kind": "not_permitted"}, {"COUNT": float(b.not_permitted_calls)})
        )
    return {
        "resilience4j.circuitbreaker.state": state,
        "resilience4j.circuitbreaker.failure.rate": failure,
        "resilience4j.circuitbreaker.slow.call.rate": slow,
        "resilience4j.circuitbreaker.buffered.calls": buffered,
        "resilience4j.circuitbreaker.not.permitted.calls": not_permitted,
    }


def _flag_error(code: str, message: str) -> dict[str, Any]:
    return {"error": code, "message": message}


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _float32(x: float) -> float:
    return float(struct.unpack("f", struct.pack("f", x))[0])


def _java_float(x: float) -> str:
    """``Float.toString`` (what ``metrics.getFailureRate() + "%"`` prints), e.g. ``50.0``."""
    f = _float32(x)
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "Infinity" if f > 0 else "-Infinity"
    if f == 0:
        return "-0.0" if str(f).startswith("-") else "0.0"
    digits = ""
    for precision in range(1, 10):
        digits = f"{f:.{precision}e}" if precision > 1 else f"{f:.0e}"
        if _float32(float(digits)) == f:
            break
    mantissa, _, exp_text = digits.partition("e")
    exponent = int(exp_text)
    sign = "-" if mantissa.startswith("-") else ""
    digits_only = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    if 1e-3 <= abs(f) < 1e7:
        point = exponent + 1
        if point <= 0:
            whole, frac = "0", "0" * (-point) + digits_only
        elif point >= len(digits_only):
            whole, frac = digits_only + "0" * (point - len(digits_only)), "0"
        else:
            whole, frac = digits_only[:point], digits_only[point:]
        return f"{sign}{whole}.{frac}"
    frac = digits_only[1:] or "0"
    return f"{sign}{digits_only[0]}.{frac}E{exponent}"
