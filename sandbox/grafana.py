"""A local stand-in for Grafana's annotations HTTP API (the legacy ``/api/annotations`` routes).

Built from Grafana's published documentation of the API:

* https://grafana.com/docs/grafana/latest/developer-resources/api-reference/http-api/api-legacy/annotations/
  (Find ``GET /api/annotations``, Create ``POST /api/annotations``, Update
  ``PUT /api/annotations/:id``, Patch ``PATCH /api/annotations/:id``, Delete)
* https://grafana.com/docs/grafana/latest/developer-resources/api-reference/http-api/authentication/
  (service account tokens: ``Authorization: Bearer <token>``)
* https://grafana.com/docs/grafana/latest/developer-resources/api-reference/http-api/#http-api
  (errors are JSON with a ``message``)

What it does, as Grafana does:

* Every request needs ``Authorization: Bearer <token>``: missing or wrong → 401
  ``{"message": "Unauthorized"}``.
* ``POST /api/annotations`` takes ``dashboardUID`` (optional: none is an organisation
  annotation), ``panelId``, ``time`` and ``timeEnd`` (epoch milliseconds; both set make a
  region), ``tags`` (strings) and ``text`` and answers 200 ``{"message": "Annotation added",
  "id": n}``. A body that is not a JSON object of those types → 400 ``{"message": "bad request
  data"}``; an empty ``text`` → 400 ``{"message": "Failed to save annotation"}``.
* ``PATCH /api/annotations/:id`` changes only the fields given (``text``, ``tags``, ``time``,
  ``timeEnd``) → ``{"message": "Annotation patched"}``; ``PUT`` replaces them →
  ``{"message": "Annotation updated"}``; an unknown id → 404 ``{"message": "Annotation not
  found"}``.
* ``GET /api/annotations`` filters by ``dashboardUID``, ``panelId``, ``from``/``to`` (epoch ms,
  overlapping the annotation), ``tags`` (repeated; all must match unless ``matchAny=true``),
  ``type=annotation`` and ``limit`` (default 100); newest first, each item in the documented
  shape (``id``, ``dashboardUID``, ``panelId``, ``time``, ``timeEnd``, ``text``, ``tags``, …).
* ``fail(route, status=429, retry_after=n)`` makes the next requests to a route fail; a 429
  carries ``Retry-After`` (Grafana Cloud rate-limits its API that way).

Dashboards are not checked: Grafana stores the ``dashboardUID`` it is given. Recorded for
assertions: :attr:`FakeGrafana.annotations` (id → stored annotation) and
:attr:`FakeGrafana.calls`.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sandbox.loopback import StandIn, serve_on_loopback

ROUTES = ("findAnnotations", "createAnnotation", "updateAnnotation", "patchAnnotation")
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "dashboardUID": str,
    "panelId": int,
    "time": int,
    "timeEnd": int,
    "text": str,
    "tags": list,
    "dashboardId": int,
    "data": dict,
}


@dataclass(frozen=True)
class Call:
    route: str
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class _Fault:
    status: int
    retry_after: int


@dataclass
class Annotation:
    id: int
    dashboard_uid: str | None
    panel_id: int
    time: int
    time_end: int
    text: str
    tags: list[str]
    created: int
    updated: int
    data: dict[str, Any] = field(default_factory=dict)

    def as_api(self) -> dict[str, Any]:
        """The item as `GET /api/annotations` returns it."""
        return {
            "id": self.id,
            "alertId": 0,
            "alertName": "",
            "dashboardId": 0,
            "dashboardUID": self.dashboard_uid,
            "panelId": self.panel_id,
            "userId": 1,
            "newState": "",
            "prevState": "",
            "created": self.created,
            "updated": self.updated,
            "time": self.time,
            "timeEnd": self.time_end,
            "text": self.text,
            "tags": list(self.tags),
            "login": "icbot",
            "email": "icbot@waqiti.example",
            "avatarUrl": "/avatar/icbot",
            "data": self.data,
        }


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class FakeGrafana(StandIn):
    """`async with FakeGrafana() as grafana:` → point GRAFANA_URL at `grafana.url`."""

    def __init__(self, *, token: str | None = None) -> None:
        self.token = token or f"glsa_{secrets.token_hex(16)}"
        self.annotations: dict[int, Annotation] = {}
        self.calls: list[Call] = []
        self._faults: dict[str, list[_Fault]] = {}
        self._next_id = 1
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_route("GET", "/api/annotations", self._find)
        app.router.add_route("POST", "/api/annotations", self._create)
        app.router.add_route("PUT", "/api/annotations/{id}", self._update)
        app.router.add_route("PATCH", "/api/annotations/{id}", self._patch)
        self._runner, self._port = await serve_on_loopback(app)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def url(self) -> str:
        assert self._port is not None, "start() first"
        return f"http://127.0.0.1:{self._port}"

    # ------------------------------------------------------------------ test controls

    def fail(self, route: str, *, status: int = 429, retry_after: int = 1, times: int = 1) -> None:
        """The next `times` requests to `route` (one of ROUTES, or "*") answer `status`."""
        assert route in (*ROUTES, "*"), route
        self._faults.setdefault(route, []).extend(_Fault(status, retry_after) for _ in range(times))

    def calls_to(self, route: str) -> list[Call]:
        return [c for c in self.calls if c.route == route]

    def tagged(self, tag: str) -> list[Annotation]:
        return sorted((a for a in self.annotations.values() if tag in a.tags), key=lambda a: a.id)

    # ------------------------------------------------------------------ handlers

    async def _find(self, request: web.Request) -> web.Response:
        return await self._handle(request, "findAnnotations", self._do_find)

    async def _create(self, request: web.Request) -> web.Response:
        return await self._handle(request, "createAnnotation", self._do_create)

    async def _update(self, request: web.Request) -> web.Response:
        return await self._handle(request, "updateAnnotation", self._do_update)

    async def _patch(self, request: web.Request) -> web.Response:
        return await self._handle(request, "patchAnnotation", self._do_patch)

    async def _handle(self, request: web.Request, route: str, action: Any) -> web.Response:
        raw = await request.read()
        body: Any = None
        parse_error = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                parse_error = True
        query: dict[str, list[str]] = {}
        for key, value in request.query.items():
            query.setdefault(key, []).append(value)
        self.calls.append(Call(route, request.method, request.path, query, body))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, "Unauthorized")
        fault = self._fault(route)
        if fault is not None:
            headers = {"Retry-After": str(fault.retry_after)} if fault.status == 429 else {}
            return web.json_response(
                {"message": "Too Many Requests" if fault.status == 429 else "Internal error"},
                status=fault.status,
                headers=headers,
            )
        try:
            if parse_error:
                raise _Refused(400, "bad request data")
            result = action(request, body)
        except _Refused as exc:
            return _error(exc.status, exc.message)
        return web.json_response(result)

    def _fault(self, route: str) -> _Fault | None:
        for key in (route, "*"):
            queued = self._faults.get(key)
            if queued:
                return queued.pop(0)
        return None

    def _do_find(self, request: web.Request, _body: Any) -> list[dict[str, Any]]:
        q = request.query
        try:
            limit = int(q.get("limit", "100"))
            start = int(q["from"]) if "from" in q else None
            end = int(q["to"]) if "to" in q else None
            panel = int(q["panelId"]) if "panelId" in q else None
        except ValueError as exc:
            raise _Refused(400, "bad request data") from exc
        tags = q.getall("tags", [])
        match_any = q.get("matchAny", "false").lower() == "true"
        found = []
        for a in sorted(self.annotations.values(), key=lambda a: (-a.time, -a.id)):
            if "dashboardUID" in q and a.dashboard_uid != q["dashboardUID"]:
                continue
            if panel is not None and a.panel_id != panel:
                continue
            if start is not None and a.time_end < start:
                continue
            if end is not None and a.time > end:
                continue
            if tags:
                hits = [t in a.tags for t in tags]
                if not (any(hits) if match_any else all(hits)):
                    continue
            found.append(a.as_api())
        return found[:limit]

    def _do_create(self, _request: web.Request, body: Any) -> dict[str, Any]:
        fields = _checked(body)
        text = str(fields.get("text") or "")
        if not text.strip():
            raise _Refused(400, "Failed to save annotation")
        now = int(time.time() * 1000)
        at = int(fields.get("time") or now)
        annotation = Annotation(
            id=self._next_id,
            dashboard_uid=fields.get("dashboardUID") or None,
            panel_id=int(fields.get("panelId") or 0),
            time=at,
            time_end=int(fields.get("timeEnd") or at),
            text=text,
            tags=list(fields.get("tags") or []),
            created=now,
            updated=now,
            data=dict(fields.get("data") or {}),
        )
        self._next_id += 1
        self.annotations[annotation.id] = annotation
        return {"message": "Annotation added", "id": annotation.id}

    def _found(self, request: web.Request) -> Annotation:
        try:
            annotation = self.annotations.get(int(request.match_info["id"]))
        except ValueError as exc:
            raise _Refused(400, "bad request data") from exc
        if annotation is None:
            raise _Refused(404, "Annotation not found")
        return annotation

    def _do_update(self, request: web.Request, body: Any) -> dict[str, Any]:
        annotation = self._found(request)
        fields = _checked(body)
        text = str(fields.get("text") or "")
        if not text.strip():
            raise _Refused(400, "Failed to update annotation")
        annotation.text = text
        annotation.tags = list(fields.get("tags") or [])
        annotation.time = int(fields.get("time") or annotation.time)
        annotation.time_end = int(fields.get("timeEnd") or annotation.time)
        annotation.updated = int(time.time() * 1000)
        return {"message": "Annotation updated"}

    def _do_patch(self, request: web.Request, body: Any) -> dict[str, Any]:
        annotation = self._found(request)
        fields = _checked(body)
        if "text" in fields:
            if not str(fields["text"]).strip():
                raise _Refused(400, "Failed to update annotation")
            annotation.text = str(fields["text"])
        if "tags" in fields:
            annotation.tags = list(fields["tags"])
        if fields.get("time"):
            annotation.time = int(fields["time"])
        if fields.get("timeEnd"):
            annotation.time_end = int(fields["timeEnd"])
        annotation.updated = int(time.time() * 1000)
        return {"message": "Annotation patched"}


def _checked(body: Any) -> dict[str, Any]:
    """The body's fields, typed as Grafana binds them; anything else is 'bad request data'."""
    if not isinstance(body, dict):
        raise _Refused(400, "bad request data")
    for key, value in body.items():
        wanted = _FIELDS.get(key)
        if wanted is None or value is None:
            continue  # Grafana's binder ignores unknown fields
        if wanted is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise _Refused(400, "bad request data")
        if not isinstance(value, wanted):
            raise _Refused(400, "bad request data")
        if isinstance(value, list) and not all(isinstance(t, str) for t in value):
            raise _Refused(400, "bad request data")
    return body


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)
