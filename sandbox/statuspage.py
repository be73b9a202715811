"""A local stand-in for Atlassian Statuspage's REST API v1 (the incident endpoints), over HTTP.

Built from Statuspage's published API reference:

* https://developer.statuspage.io/#section/Authentication — ``Authorization: OAuth <api key>``
  on every request; a missing or wrong key is HTTP 401.
* https://developer.statuspage.io/#operation/postPagesPageIdIncidents — ``POST
  /v1/pages/{page_id}/incidents`` with ``{"incident": {"name", "status", "body",
  "component_ids", "components": {id: status}, "metadata", "deliver_notifications", ...}}``;
  201 with the incident.
* https://developer.statuspage.io/#operation/patchPagesPageIdIncidentsIncidentId — ``PATCH
  /v1/pages/{page_id}/incidents/{incident_id}``: the same fields; a ``body`` adds an incident
  update; 200 with the incident.
* https://developer.statuspage.io/#operation/getPagesPageIdIncidents — ``GET
  /v1/pages/{page_id}/incidents`` (``q``, ``limit`` (default 100), ``page``), newest first.
* https://developer.statuspage.io/#section/Rate-Limiting — rate-limited requests are answered
  420 or 429; the stand-in answers 429 with ``Retry-After`` when told to (:meth:`fail`).
* The Incident model: realtime statuses ``investigating``, ``identified``, ``monitoring``,
  ``resolved``; component statuses ``operational``, ``under_maintenance``,
  ``degraded_performance``, ``partial_outage``, ``major_outage``; ``metadata`` — "Metadata
  attached to the incident. Top level values must be objects."; ``name`` at most 255
  characters.

Errors carry the API's error entity, ``{"error": "<message>"}``: 400 for a body that is not a
JSON object with an ``incident`` object, 401 without the key, 404 for an unknown page or
incident, 422 for values the model refuses (an unknown status, component or component status,
metadata whose top-level values are not objects, a missing name).

Recorded for assertions: :attr:`FakeStatuspage.incidents` (id -> incident as the API returns
it) and :attr:`FakeStatuspage.calls` (method, path, JSON body; authorised or not).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sandbox.loopback import StandIn, serve_on_loopback

INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved")
COMPONENT_STATUSES = (
    "operational",
    "under_maintenance",
    "degraded_performance",
    "partial_outage",
    "major_outage",
)
SEVERITY = {  # the impact Statuspage computes from the worst component status
    "operational": "none",
    "under_maintenance": "maintenance",
    "degraded_performance": "minor",
    "partial_outage": "major",
    "major_outage": "critical",
}
PAGE_ID = "wq1tpg7x2k9m"
# The sandbox page's components (ids as Statuspage makes them: 12 lower-case letters and digits).
COMPONENTS = {
    "pmtapi000001": "Payments API",
    "checkout0001": "Checkout",
    "notify000001": "Notifications",
    "transfer0001": "Transfers",
}


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: Any
    authorised: bool


@dataclass
class _Fault:
    status: int
    retry_after: int
    method: str | None  # None: any request
    after: bool = False  # make the change, then answer `status` (a gateway timing out late)


@dataclass
class FakeStatuspage(StandIn):
    """Statuspage's incident endpoints for one page, with its components."""

    page_id: str = PAGE_ID
    api_key: str = field(default_factory=lambda: secrets.token_hex(16))
    components: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            cid: {"id": cid, "name": name, "status": "operational"}
            for cid, name in COMPONENTS.items()
        }
    )
    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    url: str = ""
    # Told `("incident.created" | "incident.updated", incident)` after each change (the sandbox
    # prints it).
    on_change: list[Callable[[str, dict[str, Any]], None]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _faults: list[_Fault] = field(default_factory=list)
    _late: dict[int, _Fault] = field(default_factory=dict)  # by id(request): `fail(after=True)`

    async def start(self) -> None:
        app = web.Application()
        base = "/v1/pages/{page_id}/incidents"
        app.router.add_post(base, self._create)
        app.router.add_get(base, self._list)
        app.router.add_get(base + "/{incident_id}", self._get)
        app.router.add_patch(base + "/{incident_id}", self._patch)
        app.router.add_put(base + "/{incident_id}", self._patch)
        app.router.add_get("/v1/pages/{page_id}/components", self._components)
        self._runner, port = await serve_on_loopback(app)
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # What tests and the sandbox use.

    def fail(
        self,
        *,
        times: int = 1,
        status: int = 429,
        retry_after: int = 1,
        method: str | None = None,
        after: bool = False,
    ) -> None:
        """Answer the next `times` authorised requests (of `method`, if given) with `status`
        (a 429 with ``Retry-After: retry_after``); `after`: a write is made all the same, and
        only its answer is the error."""
        self._faults.extend(_Fault(status, retry_after, method, after) for _ in range(times))

    def writes(self) -> list[Call]:
        """The authorised requests that changed something (creates and updates)."""
        return [
            c for c in self.calls if c.authorised and c.method in ("POST", "PATCH", "PUT")
        ]  # fmt: skip

    def add_incident(self, **fields: Any) -> dict[str, Any]:
        """An incident made on the page by hand (or by an earlier run), as the API would."""
        return self._new_incident(fields)

    # The API.

    async def _create(self, request: web.Request) -> web.Response:
        refused, body = await self._admit(request)
        if refused is not None:
            return refused
        fields = body["incident"]
        if not isinstance(fields.get("name"), str) or not fields["name"].strip():
            return _error(422, "Name can't be blank")
        problem = self._invalid(fields, creating=True)
        if problem:
            return _error(422, problem)
        incident = self._new_incident(fields)
        self._changed("incident.created", incident)
        return self._answer(request, web.json_response(incident, status=201))

    async def _patch(self, request: web.Request) -> web.Response:
        refused, body = await self._admit(request)
        if refused is not None:
            return refused
        incident = self.incidents.get(request.match_info["incident_id"])
        if incident is None:
            return _error(404, "The requested resource could not be found.")
        fields = body["incident"]
        problem = self._invalid(fields, creating=False)
        if problem:
            return _error(422, problem)
        now = _now()
        if "name" in fields:
            incident["name"] = str(fields["name"])
        status = str(fields.get("status") or incident["status"])
        if status != incident["status"]:
            incident["status"] = status
            if status == "monitoring":
                incident["monitoring_at"] = now
            if status == "resolved":
                incident["resolved_at"] = now
        if "metadata" in fields:
            incident["metadata"] = copy.deepcopy(fields["metadata"])
        self._set_components(incident, fields)
        if fields.get("body"):
            incident["incident_updates"].insert(0, self._update(incident, str(fields["body"])))
        incident["updated_at"] = now
        self._changed("incident.updated", incident)
        return self._answer(request, web.json_response(incident))

    async def _list(self, request: web.Request) -> web.Response:
        refused, _ = await self._admit(request, read=True)
        if refused is not None:
            return refused
        try:
            limit = int(request.query.get("limit", "100"))
            page = int(request.query.get("page", "1"))
        except ValueError:
            return _error(400, "limit and page must be numbers")
        if not 1 <= limit <= 100 or page < 1:
            return _error(400, "limit must be 1 to 100 and page at least 1")
        q = request.query.get("q", "").lower()
        found = [
            i
            for i in sorted(self.incidents.values(), key=lambda i: i["created_at"], reverse=True)
            if not q or q in _searchable(i)
        ]
        return web.json_response(found[(page - 1) * limit : page * limit])

    async def _get(self, request: web.Request) -> web.Response:
        refused, _ = await self._admit(request, read=True)
        if refused is not None:
            return refused
        incident = self.incidents.get(request.match_info["incident_id"])
        if incident is None:
            return _error(404, "The requested resource could not be found.")
        return web.json_response(incident)

    async def _components(self, request: web.Request) -> web.Response:
        refused, _ = await self._admit(request, read=True)
        if refused is not None:
            return refused
        return web.json_response(list(self.components.values()))

    # Checks every request passes through, in the order Statuspage applies them.

    async def _admit(
        self, request: web.Request, *, read: bool = False
    ) -> tuple[web.Response | None, dict[str, Any]]:
        self._late.pop(id(request), None)  # left by an earlier request refused before `_answer`
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        authorised = scheme == "OAuth" and secrets.compare_digest(key.strip(), self.api_key)
        self.calls.append(Call(request.method, request.path_qs, body, authorised))
        if not authorised:
            return _error(401, "Could not authenticate"), {}
        fault = next((f for f in self._faults if f.method in (None, request.method)), None)
        if fault is not None and fault.after and not read:
            self._faults.remove(fault)
            self._late[id(request)] = fault  # `_answer` gives the error once the change is made
        elif fault is not None:
            self._faults.remove(fault)
            headers = {"Retry-After": str(fault.retry_after)} if fault.status == 429 else {}
            said = "Rate limit exceeded" if fault.status in (420, 429) else "Service unavailable"
            return _error(fault.status, said, headers=headers), {}
        if request.match_info["page_id"] != self.page_id:
            return _error(404, "The requested resource could not be found."), {}
        if read:
            return None, {}
        if not isinstance(body, dict) or not isinstance(body.get("incident"), dict):
            return _error(400, "The request body must be a JSON object with an incident"), {}
        return None, body

    def _answer(self, request: web.Request, made: web.Response) -> web.Response:
        """`made`, unless a fault told to come after the change answers instead."""
        fault = self._late.pop(id(request), None)
        return made if fault is None else _error(fault.status, "Service unavailable")

    def _changed(self, event: str, incident: dict[str, Any]) -> None:
        for listener in self.on_change:
            listener(event, incident)

    def _invalid(self, fields: dict[str, Any], *, creating: bool) -> str | None:
        status = fields.get("status", "investigating" if creating else None)
        if status is not None and status not in INCIDENT_STATUSES:
            return f"Status {status!r} is not included in the list"
        name = fields.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > 255):
            return "Name is too long (maximum is 255 characters)"
        if "body" in fields and fields["body"] is not None and not isinstance(fields["body"], str):
            return "Body must be a string"
        ids = fields.get("component_ids", [])
        if not isinstance(ids, list) or any(i not in self.components for i in ids):
            return "Component ids must name components of this page"
        statuses = fields.get("components", {})
        if not isinstance(statuses, dict):
            return "Components must map component ids to statuses"
        for cid, value in statuses.items():
            if cid not in self.components:
                return f"Component {cid!r} is not a component of this page"
            if value not in COMPONENT_STATUSES:
                return f"Component status {value!r} is not included in the list"
        metadata = fields.get("metadata", {})
        if not isinstance(metadata, dict) or any(
            not isinstance(v, dict) for v in metadata.values()
        ):
            return "Metadata top level values must be objects"
        return None

    def _new_incident(self, fields: dict[str, Any]) -> dict[str, Any]:
        now = _now()
        incident_id = _new_id()
        status = str(fields.get("status") or "investigating")
        incident: dict[str, Any] = {
            "id": incident_id,
            "page_id": self.page_id,
            "name": str(fields.get("name") or "Incident"),
            "status": status,
            "impact": "none",
            "impact_override": fields.get("impact_override"),
            "created_at": now,
            "updated_at": now,
            "monitoring_at": now if status == "monitoring" else None,
            "resolved_at": now if status == "resolved" else None,
            "shortlink": f"https://stspg.io/{incident_id[:6]}",
            "metadata": copy.deepcopy(fields.get("metadata") or {}),
            "components": [],
            "incident_updates": [],
        }
        self._set_components(incident, fields)
        incident["incident_updates"].append(self._update(incident, str(fields.get("body") or "")))
        self.incidents[incident_id] = incident
        return incident

    def _set_components(self, incident: dict[str, Any], fields: dict[str, Any]) -> None:
        statuses: dict[str, str] = fields.get("components") or {}
        affected = list(dict.fromkeys([*(fields.get("component_ids") or []), *statuses]))
        for cid in affected:
            if cid in statuses:
                self.components[cid]["status"] = statuses[cid]
        if affected:
            incident["components"] = [copy.deepcopy(self.components[c]) for c in affected]
        else:
            ids = [c["id"] for c in incident["components"]]
            incident["components"] = [copy.deepcopy(self.components[c]) for c in ids]
        worst = max(
            (COMPONENT_STATUSES.index(c["status"]) for c in incident["components"]), default=0
        )
        incident["impact"] = SEVERITY[COMPONENT_STATUSES[worst]]

    @staticmethod
    def _update(incident: dict[str, Any], body: str) -> dict[str, Any]:
        now = _now()
        return {
            "id": _new_id(),
            "incident_id": incident["id"],
            "status": incident["status"],
            "body": body,
            "created_at": now,
            "updated_at": now,
            "display_at": now,
            "affected_components": [
                {"code": c["id"], "name": c["name"], "new_status": c["status"]}
                for c in incident["components"]
            ],
        }


def _searchable(incident: dict[str, Any]) -> str:
    """What `q` searches: name, status and the updates' text (not metadata)."""
    parts = [incident["name"], incident["status"]]
    parts += [u["body"] for u in incident["incident_updates"]]
    return "\n".join(parts).lower()


def _error(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _new_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(12))


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
