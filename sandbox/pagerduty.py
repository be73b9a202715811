"""A local stand-in for PagerDuty (REST API v2, Events API v2, outbound V3 webhooks) over HTTPS.

The real ``pagerduty`` client (python-pagerduty, successor of pdpyras) insists on ``https://``
base URLs, so the stand-in serves TLS on 127.0.0.1 with a throw-away CA from
:mod:`sandbox.tls`. Point the clients at it, unchanged::

    ctx = ssl.create_default_context(cafile=str(fake.ca_path))
    rest = pagerduty.RestApiV2Client(fake.api_key, default_from=email,
                                     base_url=fake.url, verify=ctx)
    events = pagerduty.EventsApiV2Client(routing_key, base_url=fake.events_url, verify=ctx)

``verify`` must be given to the constructor: the client is an ``httpx2.Client`` whose transport
(and so its TLS settings) is built there; assigning ``client.verify`` later has no effect.
``base_url=`` may instead be set afterwards as ``client.url = fake.url``. For 429s the client
sleeps ``sleep_timer * sleep_timer_base ** n`` seconds and retries without limit unless
``client.retry[429] = n`` bounds it (it then returns the last 429 response, which ``rget``
raises as ``pagerduty.HttpError``); it does not read ``Retry-After``.

Wire format (PagerDuty's published ``rest_openapiv3.json``, ``events_v2_openapiv3.json`` and
``webhooks_v3`` docs and examples):

* REST: ``Authorization: Token token=<key>``; bodies wrapped (``{"incident": {...}}``); classic
  pagination (``limit``/``offset``/``total`` in, ``limit``/``offset``/``more``/``total`` out,
  ``total`` is null unless ``total=true``; limit at most 100, offset+limit at most 10000).
  Errors are ``{"error": {"message", "code", "errors": [...]}}`` with codes from PagerDuty's
  error-code table: 2001 Invalid Input Provided, 2002 Arguments Caused Error, 2004 bad
  since/until, 2006 Authentication failed (HTTP 401), 2100 Not Found (404), 1001 Incident
  Already Resolved, 1006 Cannot Escalate, 1007 Assigned To User Not Found, 1008 Requester User
  Not Found, 1014 Escalation Policy Not Found, 2011 requester required. Injected 429s carry
  ``Retry-After``.
* ``From``: the spec marks the ``From`` header (``from_header``) required on POST/PUT
  ``/incidents``, PUT ``/incidents/{id}`` and POST ``/incidents/{id}/notes``. Missing -> 400
  code 2011; an address that is not a user's -> 400 code 1008 "Requester User Not Found".
  ``responder_requests`` names its requester in the body (``requester_id``) instead.
* Duplicate ``incident_key``: the spec (createIncident, ``incident_key``) says "Sending
  subsequent requests referencing the same service and with the same incident_key will result
  in those requests being rejected if an open incident matches that incident_key". So a retried
  create is *not* answered with the existing incident: it is HTTP 400
  ``{"error": {"message": "Arguments Caused Error", "code": 2002, "errors": ["Open incident
  with matching dedup key already exists on this service"]}}`` (the ``errors`` text is what
  clients in the wild match on; the code is less certain, so match the text). No second
  incident is made; find the first with ``GET /incidents?incident_key=...``. Once that incident
  is resolved the key is free and a create opens a new incident.
* Events API v2 (same server, ``POST /v2/enqueue``): 202 ``{"status": "success", "message":
  "Event processed", "dedup_key": ...}``; invalid -> 400 ``{"status": "invalid event",
  "message": "Event object is invalid", "errors": [...]}``. A trigger whose ``dedup_key`` matches
  an open incident on the routing key's service is folded into it; acknowledge/resolve act on
  that incident (202 even when none matches, as PagerDuty does). Urgency is severity-based:
  critical/error -> high, warning/info -> low.
* Webhooks V3: ``{"event": {id, event_type, resource_type, occurred_at, agent, client, data}}``
  shaped as ``payload_incident.priority_updated.json``; ``data`` is an ``incident``
  (``data_incident.json``) or, for ``incident.annotated``, an ``incident_note``. Signed
  ``X-PagerDuty-Signature: v1=<hex hmac-sha256(secret, raw body)>`` (one per secret,
  comma-joined), with a stable ``X-Webhook-Id`` per delivery (retries reuse it).

Recorded state, for assertions: :attr:`FakePagerDuty.incidents` (id -> incident object as the API
returns it, plus ``body``), :attr:`~FakePagerDuty.notes`, :attr:`~FakePagerDuty.log_entries`,
:attr:`~FakePagerDuty.events`, :attr:`~FakePagerDuty.calls` (``Authorization`` redacted,
``routing_key`` blanked) and :attr:`~FakePagerDuty.webhooks` (outbound deliveries).
:attr:`~FakePagerDuty.on_change` listeners get ``(event_type, obj)`` for every state change,
using the webhook event names (``incident.triggered``, ``incident.annotated``...).

Seed data: service ``PSVC001`` "payments" (routing key :attr:`FakePagerDuty.routing_key`) on
escalation policy ``PEPL001``: level 1 ``PUSR001`` oncall@ via schedule ``PSCH001``, level 2
``PUSR002`` eng-manager@, level 3 ``PUSR003`` cto@ (all ``@waqiti.example``); ``PUSR004``
icbot@ is the bot's own API user; priorities P1..P5 (``PPRI001``..``PPRI005``). The
constructor's ``extra_*`` arguments and :meth:`FakePagerDuty.add_user`/``add_oncall`` add more.
:meth:`~FakePagerDuty.trigger_alert`, :meth:`~FakePagerDuty.update_incident` and
:meth:`~FakePagerDuty.add_note` act as a monitor or a person in PagerDuty would (webhooks
included); call :meth:`~FakePagerDuty.drain_webhooks` before asserting on deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import ssl
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from sandbox.loopback import StandIn, serve_on_loopback
from sandbox.tls import LocalTLS, make_local_tls

__all__ = [
    "DUPLICATE_INCIDENT_KEY_ERROR",
    "Call",
    "EscalationPolicy",
    "FakePagerDuty",
    "OnCall",
    "Priority",
    "Service",
    "Subscription",
    "User",
    "WebhookDelivery",
    "new_secret",
    "sign_webhook",
    "verify_webhook_signature",
]

log = logging.getLogger(__name__)

EMAIL_DOMAIN = "waqiti.example"
SUBDOMAIN = "waqiti"
DEFAULT_LIMIT = 25
MAX_LIMIT = 100
MAX_OFFSET_PLUS_LIMIT = 10_000
KEPT_NUMBERS = frozenset({"incident"})  # ids a bot stores (unique); kept in `state_file`
WEBHOOK_USER_AGENT = "PagerDuty-Webhook/V3.0"
DUPLICATE_INCIDENT_KEY_ERROR = (
    "Open incident with matching dedup key already exists on this service"
)
STATUSES = ("triggered", "acknowledged", "resolved")
SEVERITIES = ("critical", "error", "warning", "info")
WEBHOOK_EVENT_TYPES = (
    "incident.acknowledged",
    "incident.annotated",
    "incident.delegated",
    "incident.escalated",
    "incident.priority_updated",
    "incident.reassigned",
    "incident.reopened",
    "incident.resolved",
    "incident.responder.added",
    "incident.triggered",
    "incident.unacknowledged",
)
_ABILITIES = ("teams", "urgencies", "read_only_users", "response_plays", "coordinated_responding")


# ---------------------------------------------------------------------- records


@dataclass
class Call:
    """One recorded request to the stand-in."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int
    route: str = ""
    operation: str = ""


@dataclass
class User:
    id: str
    name: str
    email: str
    role: str = "user"
    time_zone: str = "Europe/London"
    job_title: str = ""


@dataclass
class Service:
    id: str
    name: str
    escalation_policy_id: str
    routing_key: str
    description: str = ""
    team_ids: list[str] = field(default_factory=list)


@dataclass
class EscalationPolicy:
    """Levels come from the :class:`OnCall` entries that name this policy."""

    id: str
    name: str
    num_loops: int = 0
    escalation_delay_in_minutes: int = 30


@dataclass
class OnCall:
    user_id: str
    escalation_policy_id: str
    escalation_level: int = 1
    schedule_id: str | None = None
    start: str | None = None
    end: str | None = None


@dataclass
class Priority:
    id: str
    name: str
    description: str = ""


@dataclass
class Subscription:
    id: str
    url: str
    secrets: list[str]
    events: frozenset[str] | None = None


@dataclass
class WebhookDelivery:
    """One outbound webhook; ``status`` is the last HTTP status (0: no response)."""

    url: str
    event_type: str
    webhook_id: str
    body: bytes
    headers: dict[str, str]
    status: int = 0
    attempts: int = 0

    @property
    def payload(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class _Fault:
    status: int
    retry_after: int


@dataclass
class _Pending:
    delivery: WebhookDelivery
    max_attempts: int


@dataclass
class _Req:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, list[str]]
    body: Any
    user: User | None


class _ApiError(Exception):
    def __init__(
        self, status: int, code: int | None, message: str, errors: Iterable[str] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = list(errors)

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"message": self.message}
        if self.code is not None:
            err["code"] = self.code
        if self.errors:
            err["errors"] = self.errors
        return {"error": err}


class _EventError(Exception):
    def __init__(self, status: str, message: str, errors: list[str]) -> None:
        super().__init__(message)
        self.body = {"status": status, "message": message, "errors": errors}


def _invalid(*errors: str) -> _ApiError:
    return _ApiError(400, 2001, "Invalid Input Provided", errors)


def _not_found() -> _ApiError:
    return _ApiError(404, 2100, "Not Found")


Handler = Callable[[_Req], tuple[int, dict[str, Any] | None]]


@dataclass(frozen=True)
class _Route:
    method: str
    template: str
    operation: str
    handler: Handler
    needs_from: bool = False
    events_api: bool = False

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"

    def match(self, path: str) -> dict[str, str] | None:
        want = self.template.strip("/").split("/")
        got = path.strip("/").split("/")
        if len(want) != len(got):
            return None
        params: dict[str, str] = {}
        for w, g in zip(want, got, strict=True):
            if w.startswith("{") and w.endswith("}"):
                if not g:
                    return None
                params[w[1:-1]] = g
            elif w != g:
                return None
        return params


# ---------------------------------------------------------------------- signatures


def sign_webhook(body: bytes, secrets_: Iterable[str]) -> str:
    """The ``X-PagerDuty-Signature`` value for ``body``: ``v1=<hex>`` per secret, comma-joined."""
    return ",".join(
        "v1=" + hmac.new(s.encode(), body, hashlib.sha256).hexdigest() for s in secrets_
    )


def verify_webhook_signature(body: bytes, header: str, secret: str) -> bool:
    """True if any ``v1`` signature in ``header`` matches (constant-time compare)."""
    want = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    ok = False
    for part in header.split(","):
        version, _, sig = part.strip().partition("=")
        if version == "v1" and hmac.compare_digest(sig, want):
            ok = True
    return ok


# ---------------------------------------------------------------------- the stand-in


class FakePagerDuty(StandIn):
    """The PagerDuty stand-in. Use ``async with FakePagerDuty() as pd: ...``."""

    def __init__(
        self,
        *,
        api_key: str = "pd-test-api-key",
        routing_key: str = "fakepaymentsroutingkey0000000001",
        extra_users: Iterable[User] = (),
        extra_services: Iterable[Service] = (),
        extra_escalation_policies: Iterable[EscalationPolicy] = (),
        extra_oncalls: Iterable[OnCall] = (),
        subdomain: str = SUBDOMAIN,
        clock: Callable[[], float] = time.time,
        tls: LocalTLS | None = None,
        webhook_attempts: int = 3,
        webhook_retry_delay: float = 0.05,
        state_file: Path | None = None,
    ) -> None:
        """`state_file`: where the incident numbers are kept, so that a stand-in started again
        on the same file goes on from the last one (a bot's database remembers `PIN0001`)."""
        self.api_key = api_key
        self.routing_key = routing_key
        self.html_base = f"https://{subdomain}.pagerduty.com"
        self._clock = clock
        self._tls = tls
        self._owns_tls = tls is None
        self.webhook_attempts = webhook_attempts
        self.webhook_retry_delay = webhook_retry_delay

        self.users: dict[str, User] = {}
        self.services: dict[str, Service] = {}
        self.escalation_policies: dict[str, EscalationPolicy] = {}
        self.oncalls: list[OnCall] = []
        self.priorities: dict[str, Priority] = {}
        self.teams: dict[str, str] = {"PTM0001": "Payments Engineering"}
        self.schedules: dict[str, str] = {"PSCH001": "Payments primary"}

        self.incidents: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, list[dict[str, Any]]] = {}
        self.log_entries: dict[str, list[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.change_events: list[dict[str, Any]] = []
        self.calls: list[Call] = []
        self.webhooks: list[WebhookDelivery] = []
        self.subscriptions: list[Subscription] = []
        self.on_change: list[Callable[[str, Any], None]] = []

        self._reopened_at: dict[str, str | None] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._state_file = state_file
        self._seq: dict[str, int] = {}
        self._seq.update(self._load_numbers())
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._session: aiohttp.ClientSession | None = None
        self._outbox: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task[None] | None = None

        self._seed()
        for u in extra_users:
            self.users[u.id] = u
        for ep in extra_escalation_policies:
            self.escalation_policies[ep.id] = ep
        for s in extra_services:
            self.services[s.id] = s
        self.oncalls.extend(extra_oncalls)
        self._routes = self._build_routes()

    def _seed(self) -> None:
        for uid, name, local, role, title in (
            ("PUSR001", "Ola Oncall", "oncall", "user", "Payments engineer"),
            ("PUSR002", "Erin Manager", "eng-manager", "user", "Engineering manager"),
            ("PUSR003", "Casey CTO", "cto", "admin", "CTO"),
            ("PUSR004", "icbot", "icbot", "user", "Incident bot (the API user)"),
        ):
            self.users[uid] = User(uid, name, f"{local}@{EMAIL_DOMAIN}", role, job_title=title)
        self.escalation_policies["PEPL001"] = EscalationPolicy("PEPL001", "Payments escalation")
        self.services["PSVC001"] = Service(
            "PSVC001",
            "payments",
            "PEPL001",
            self.routing_key,
            "Card and wallet payments",
            ["PTM0001"],
        )
        now = self._clock()
        self.oncalls.extend(
            [
                OnCall(
                    "PUSR001",
                    "PEPL001",
                    1,
                    "PSCH001",
                    _iso(now - 86_400),
                    _iso(now + 6 * 86_400),
                ),
                OnCall("PUSR002", "PEPL001", 2),
                OnCall("PUSR003", "PEPL001", 3),
            ]
        )
        for n, desc in enumerate(
            (
                "Critical: customer-facing outage",
                "Major: significant degradation",
                "Moderate: partial impact",
                "Minor: little impact",
                "Informational",
            ),
            start=1,
        ):
            self.priorities[f"PPRI00{n}"] = Priority(f"PPRI00{n}", f"P{n}", desc)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Serve HTTPS on 127.0.0.1 on a free port."""
        if self._runner is not None:
            return
        if self._tls is None:
            self._tls = await asyncio.to_thread(make_local_tls)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner, self._port = await serve_on_loopback(
            app, ssl_context=self._tls.server_context()
        )
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        self._outbox = asyncio.Queue()
        self._worker = asyncio.create_task(self._deliver_loop(), name="fake-pagerduty-webhooks")

    async def stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        if self._owns_tls and self._tls is not None:
            self._tls.cleanup()
            self._tls = None

    @property
    def url(self) -> str:
        """The REST API base URL (``https://127.0.0.1:<port>``, no trailing slash)."""
        if self._port is None:
            raise RuntimeError("FakePagerDuty is not started")
        return f"https://127.0.0.1:{self._port}"

    @property
    def events_url(self) -> str:
        """Base URL for ``EventsApiV2Client`` (it appends ``/v2/enqueue``); same server."""
        return self.url

    @property
    def enqueue_url(self) -> str:
        return f"{self.url}/v2/enqueue"

    @property
    def ca_path(self) -> str:
        """The CA certificate (PEM) clients must trust."""
        if self._tls is None:
            raise RuntimeError("FakePagerDuty is not started")
        return str(self._tls.ca_path)

    def ssl_context(self) -> ssl.SSLContext:
        """A client ``ssl.SSLContext`` trusting only the stand-in's CA."""
        if self._tls is None:
            raise RuntimeError("FakePagerDuty is not started")
        return self._tls.client_context()

    # ------------------------------------------------------------------ fixtures / helpers

    def _next(self, kind: str) -> int:
        self._seq[kind] = self._seq.get(kind, 0) + 1
        if kind in KEPT_NUMBERS:
            self._save_numbers()
        return self._seq[kind]

    def _load_numbers(self) -> dict[str, int]:
        if self._state_file is None or not self._state_file.exists():
            return {}
        try:
            saved = json.loads(self._state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.warning("pagerduty stand-in: unreadable %s, numbering from 1", self._state_file)
            return {}
        if not isinstance(saved, dict):
            return {}
        return {k: v for k, v in saved.items() if k in KEPT_NUMBERS and isinstance(v, int)}

    def _save_numbers(self) -> None:
        if self._state_file is None:
            return
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self._state_file.with_suffix(".partial")
        kept = {k: v for k, v in self._seq.items() if k in KEPT_NUMBERS}
        partial.write_text(json.dumps(kept), encoding="utf-8")
        partial.replace(self._state_file)

    def add_user(self, name: str, email: str, *, role: str = "user", id: str | None = None) -> User:
        """Register a user; idempotent by email."""
        existing = self.user_by_email(email)
        if existing is not None:
            return existing
        uid = id or f"PUSX{self._next('user'):03d}"
        user = User(uid, name, email, role)
        self.users[uid] = user
        return user

    def add_oncall(
        self,
        user_id: str,
        escalation_policy_id: str = "PEPL001",
        level: int = 1,
        *,
        schedule_id: str | None = None,
        start: str | None = None,
        end: str | None = None,
    ) -> OnCall:
        if user_id not in self.users or escalation_policy_id not in self.escalation_policies:
            raise KeyError((user_id, escalation_policy_id))
        entry = OnCall(user_id, escalation_policy_id, level, schedule_id, start, end)
        self.oncalls.append(entry)
        return entry

    def user_by_email(self, email: str) -> User | None:
        want = email.strip().lower()
        for u in self.users.values():
            if u.email.lower() == want:
                return u
        return None

    def incident_by_key(self, key: str, service_id: str | None = None) -> dict[str, Any] | None:
        """The newest incident with this ``incident_key`` (open ones first)."""
        found = [
            i
            for i in self.incidents.values()
            if i["incident_key"] == key and (service_id is None or i["service"]["id"] == service_id)
        ]
        found.sort(key=lambda i: (i["status"] != "resolved", i["incident_number"]))
        return found[-1] if found else None

    def fail(
        self,
        route: str,
        *,
        status: int = 429,
        retry_after: int = 1,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` requests to ``route`` fail with ``status``.

        ``route`` is an operationId (``"createIncident"``), a route (``"POST /incidents"``,
        ``"PUT /incidents/{id}"``, ``"POST /v2/enqueue"``), a concrete ``"GET /incidents/PIN0001"``
        or ``"*"`` for any request. 429 carries ``Retry-After: retry_after``.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        known = {r.operation for r in self._routes} | {r.key for r in self._routes} | {"*"}
        method, _, path = route.partition(" ")
        if route not in known and not (method.isupper() and path.startswith("/")):
            raise ValueError(f"unknown route or operation: {route!r}")
        self._faults.setdefault(route, []).extend(_Fault(status, retry_after) for _ in range(times))

    def calls_to(self, route: str) -> list[Call]:
        """Calls by operationId or route template (``"POST /incidents/{id}/notes"``)."""
        return [c for c in self.calls if route in (c.operation, c.route)]

    def subscribe(
        self, url: str, secret: str | Iterable[str], *, events: Iterable[str] | None = None
    ) -> Subscription:
        """Deliver V3 webhooks for state changes to ``url`` (all incident events by default)."""
        secret_list = [secret] if isinstance(secret, str) else list(secret)
        if not secret_list:
            raise ValueError("at least one secret is needed")
        sub = Subscription(
            f"PSUB{self._next('sub'):03d}",
            url,
            secret_list,
            frozenset(events) if events is not None else None,
        )
        self.subscriptions.append(sub)
        return sub

    async def drain_webhooks(self, timeout: float = 5.0) -> None:
        """Wait until every queued webhook has been delivered (or given up on)."""
        if self._outbox is not None:
            await asyncio.wait_for(self._outbox.join(), timeout)

    # PagerDuty-side actions: what a person in the PagerDuty UI or a monitor would do.

    def trigger_alert(
        self,
        summary: str,
        *,
        dedup_key: str | None = None,
        severity: str = "critical",
        source: str = "monitoring",
        service_id: str = "PSVC001",
    ) -> dict[str, Any]:
        """As an Events API trigger on ``service_id``; returns the (new or matched) incident."""
        service = self.services[service_id]
        key = dedup_key or uuid.uuid4().hex
        self._event_trigger(
            service,
            key,
            {"summary": summary, "severity": severity, "source": source},
            None,
        )
        incident = self.incident_by_key(key, service_id)
        assert incident is not None
        return incident

    def update_incident(self, incident_id: str, *, by: str, **changes: Any) -> dict[str, Any]:
        """Apply a PUT /incidents/{id} body (``status=..., priority=...``) as user ``by``."""
        user = self._user_ref_arg(by)
        incident = self._incident(incident_id)
        self._apply_update(incident, {"type": "incident_reference", **changes}, user)
        return incident

    def add_note(self, incident_id: str, content: str, *, by: str) -> dict[str, Any]:
        """Add a note as user ``by`` (id or email), as from the PagerDuty UI."""
        return self._create_note(self._incident(incident_id), content, self._user_ref_arg(by))

    # ------------------------------------------------------------------ HTTP plumbing

    def _build_routes(self) -> list[_Route]:
        R = _Route
        return [
            R("GET", "/incidents", "listIncidents", self._list_incidents),
            R("POST", "/incidents", "createIncident", self._create_incident, needs_from=True),
            R("PUT", "/incidents", "updateIncidents", self._update_incidents, needs_from=True),
            R("GET", "/incidents/{id}", "getIncident", self._get_incident),
            R("PUT", "/incidents/{id}", "updateIncident", self._update_incident, needs_from=True),
            R("GET", "/incidents/{id}/notes", "listIncidentNotes", self._list_notes),
            R(
                "POST",
                "/incidents/{id}/notes",
                "createIncidentNote",
                self._post_note,
                needs_from=True,
            ),
            R(
                "POST",
                "/incidents/{id}/responder_requests",
                "createIncidentResponderRequest",
                self._responder_request,
            ),
            R("GET", "/incidents/{id}/log_entries", "listIncidentLogEntries", self._list_log),
            R("GET", "/oncalls", "listOnCalls", self._list_oncalls),
            R("GET", "/users", "listUsers", self._list_users),
            R("GET", "/users/{id}", "getUser", self._get_user),
            R("GET", "/services", "listServices", self._list_services),
            R("GET", "/services/{id}", "getService", self._get_service),
            R("GET", "/escalation_policies", "listEscalationPolicies", self._list_eps),
            R("GET", "/escalation_policies/{id}", "getEscalationPolicy", self._get_ep),
            R("GET", "/priorities", "listPriorities", self._list_priorities),
            R("GET", "/abilities", "listAbilities", self._list_abilities),
            R("GET", "/abilities/{id}", "getAbility", self._get_ability),
            R("POST", "/v2/enqueue", "createV2Event", self._enqueue, events_api=True),
            R(
                "POST",
                "/v2/change/enqueue",
                "createChangeEvent",
                self._change_enqueue,
                events_api=True,
            ),
        ]

    def _match(self, method: str, path: str) -> tuple[_Route | None, dict[str, str]]:
        for route in self._routes:
            if route.method == method:
                params = route.match(path)
                if params is not None:
                    return route, params
        return None, {}

    def _take_fault(self, route: _Route | None, method: str, path: str) -> _Fault | None:
        keys = [route.operation, route.key] if route is not None else []
        keys += [f"{method} {path}", "*"]
        for key in keys:
            queue = self._faults.get(key)
            if queue:
                return queue.pop(0)
        return None

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.method.upper()
        path = request.path
        route, params = self._match(method, path)
        query: dict[str, list[str]] = {k: request.query.getall(k) for k in request.query}
        raw = await request.read()
        body: Any = None
        bad_json = False
        if raw.strip():
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                bad_json = True
        events_api = route.events_api if route is not None else path.startswith("/v2/")
        headers: dict[str, str] = {}
        out: dict[str, Any] | None
        fault = self._take_fault(route, method, path)
        if fault is not None:
            status, out, headers = self._fault_response(fault, events_api)
        elif events_api:
            status, out = self._handle_events(route, body, bad_json)
        else:
            try:
                status, out = self._handle_rest(request, route, params, query, body, bad_json)
            except _ApiError as e:
                status, out = e.status, e.body()
        self.calls.append(
            Call(
                method=method,
                path=path,
                query=query,
                headers=_redact_headers(request.headers),
                body=_redact_body(body),
                status=status,
                route=route.key if route is not None else "",
                operation=route.operation if route is not None else "",
            )
        )
        log.debug("fake pagerduty %s %s -> %s", method, path, status)
        if out is None:
            return web.Response(status=status, headers=headers)
        return web.json_response(out, status=status, headers=headers)

    def _handle_rest(
        self,
        request: web.Request,
        route: _Route | None,
        params: dict[str, str],
        query: dict[str, list[str]],
        body: Any,
        bad_json: bool,
    ) -> tuple[int, dict[str, Any] | None]:
        auth = request.headers.get("Authorization", "")
        scheme, _, rest = auth.partition(" ")
        token = rest.strip()[len("token=") :] if rest.strip().startswith("token=") else ""
        if (
            scheme != "Token"
            or not token
            or not hmac.compare_digest(token.encode(), self.api_key.encode())
        ):
            raise _ApiError(401, 2006, "Authentication failed")
        if route is None:
            raise _not_found()
        if bad_json:
            raise _invalid("Request body is not valid JSON")
        user: User | None = None
        if route.needs_from:
            email = request.headers.get("From", "").strip()
            if not email:
                raise _ApiError(
                    400,
                    2011,
                    "You must specify a user's email address in the From header",
                    ["From header is required for this action"],
                )
            user = self.user_by_email(email)
            if user is None:
                raise _ApiError(400, 1008, "Requester User Not Found")
        return route.handler(_Req(request.method, request.path, params, query, body, user))

    def _handle_events(
        self, route: _Route | None, body: Any, bad_json: bool
    ) -> tuple[int, dict[str, Any] | None]:
        if route is None:
            return 404, {"status": "not found", "message": "Not Found"}
        if bad_json or not isinstance(body, dict):
            return 400, {
                "status": "Unrecognized object",
                "message": "Event object format is unrecognized",
                "errors": ["JSON parse error"],
            }
        try:
            return route.handler(_Req("POST", route.template, {}, {}, body, None))
        except _EventError as e:
            return 400, e.body

    def _fault_response(
        self, fault: _Fault, events_api: bool
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if fault.status == 429:
            headers = {"Retry-After": str(fault.retry_after)}
            if events_api:
                return (
                    429,
                    {
                        "status": "throttle event",
                        "message": "Requests for this service are arriving too quickly. "
                        "Please retry later.",
                    },
                    headers,
                )
            return 429, {"error": {"message": "Rate Limit Exceeded"}}, headers
        if events_api:
            return fault.status, {"status": "error", "message": "Internal Server Error"}, {}
        if fault.status >= 500:
            return fault.status, {"error": {"message": "Internal Error", "code": 2000}}, {}
        return fault.status, _invalid("Injected fault").body(), {}

    # ------------------------------------------------------------------ rendering

    def _now(self) -> str:
        return _iso(self._clock())

    def _ref(
        self, kind: str, id_: str, summary: str, collection: str, html: str | None
    ) -> dict[str, Any]:
        return {
            "id": id_,
            "type": f"{kind}_reference",
            "summary": summary,
            "self": f"{self.url}/{collection}/{id_}",
            "html_url": html,
        }

    def user_ref(self, user: User) -> dict[str, Any]:
        return self._ref("user", user.id, user.name, "users", f"{self.html_base}/users/{user.id}")

    def service_ref(self, service: Service) -> dict[str, Any]:
        return self._ref(
            "service",
            service.id,
            service.name,
            "services",
            f"{self.html_base}/service-directory/{service.id}",
        )

    def _ep_ref(self, ep: EscalationPolicy) -> dict[str, Any]:
        return self._ref(
            "escalation_policy",
            ep.id,
            ep.name,
            "escalation_policies",
            f"{self.html_base}/escalation_policies/{ep.id}",
        )

    def _team_ref(self, team_id: str) -> dict[str, Any]:
        return self._ref(
            "team", team_id, self.teams[team_id], "teams", f"{self.html_base}/teams/{team_id}"
        )

    def _schedule_ref(self, schedule_id: str) -> dict[str, Any]:
        name = self.schedules.get(schedule_id, schedule_id)
        return self._ref(
            "schedule", schedule_id, name, "schedules", f"{self.html_base}/schedules/{schedule_id}"
        )

    def _incident_ref(self, incident: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": incident["id"],
            "type": "incident_reference",
            "summary": incident["summary"],
            "self": incident["self"],
            "html_url": incident["html_url"],
        }

    def _priority_obj(self, p: Priority) -> dict[str, Any]:
        return {
            "id": p.id,
            "type": "priority",
            "summary": p.name,
            "self": f"{self.url}/priorities/{p.id}",
            "html_url": None,
            "name": p.name,
            "description": p.description,
        }

    def _render_user(self, u: User) -> dict[str, Any]:
        return {
            "id": u.id,
            "type": "user",
            "summary": u.name,
            "self": f"{self.url}/users/{u.id}",
            "html_url": f"{self.html_base}/users/{u.id}",
            "name": u.name,
            "email": u.email,
            "time_zone": u.time_zone,
            "color": "green",
            "role": u.role,
            "avatar_url": "https://secure.gravatar.com/avatar/00000000000000000000000000000000",
            "description": "",
            "invitation_sent": False,
            "job_title": u.job_title,
            "teams": [self._team_ref(t) for t in self.teams],
            "contact_methods": [],
            "notification_rules": [],
        }

    def _render_service(self, s: Service) -> dict[str, Any]:
        last = [i["created_at"] for i in self.incidents.values() if i["service"]["id"] == s.id]
        return {
            "id": s.id,
            "type": "service",
            "summary": s.name,
            "self": f"{self.url}/services/{s.id}",
            "html_url": f"{self.html_base}/service-directory/{s.id}",
            "name": s.name,
            "description": s.description,
            "auto_resolve_timeout": None,
            "acknowledgement_timeout": None,
            "created_at": _iso(0),
            "status": "critical" if self._open_on(s.id) else "active",
            "last_incident_timestamp": max(last) if last else None,
            "escalation_policy": self._ep_ref(self.escalation_policies[s.escalation_policy_id]),
            "teams": [self._team_ref(t) for t in s.team_ids if t in self.teams],
            "integrations": [],
            "incident_urgency_rule": {"type": "constant", "urgency": "severity_based"},
            "alert_creation": "create_alerts_and_incidents",
        }

    def _render_ep(self, ep: EscalationPolicy) -> dict[str, Any]:
        rules = []
        for level in sorted({o.escalation_level for o in self._ep_oncalls(ep.id)}):
            targets: list[dict[str, Any]] = []
            for o in self._ep_oncalls(ep.id):
                if o.escalation_level != level:
                    continue
                if o.schedule_id is not None:
                    ref = self._schedule_ref(o.schedule_id)
                else:
                    ref = self.user_ref(self.users[o.user_id])
                if ref not in targets:
                    targets.append(ref)
            rules.append(
                {
                    "id": f"PRUL{level:03d}",
                    "escalation_delay_in_minutes": ep.escalation_delay_in_minutes,
                    "targets": targets,
                }
            )
        return {
            "id": ep.id,
            "type": "escalation_policy",
            "summary": ep.name,
            "self": f"{self.url}/escalation_policies/{ep.id}",
            "html_url": f"{self.html_base}/escalation_policies/{ep.id}",
            "name": ep.name,
            "description": "",
            "num_loops": ep.num_loops,
            "on_call_handoff_notifications": "if_has_services",
            "escalation_rules": rules,
            "services": [
                self.service_ref(s)
                for s in self.services.values()
                if s.escalation_policy_id == ep.id
            ],
            "teams": [],
        }

    def _render_oncall(self, o: OnCall) -> dict[str, Any]:
        return {
            "escalation_policy": self._ep_ref(self.escalation_policies[o.escalation_policy_id]),
            "escalation_level": o.escalation_level,
            "schedule": self._schedule_ref(o.schedule_id) if o.schedule_id else None,
            "user": self.user_ref(self.users[o.user_id]),
            "start": o.start,
            "end": o.end,
        }

    def render_incident(
        self, incident: Mapping[str, Any], include: Iterable[str] = ()
    ) -> dict[str, Any]:
        """An incident as GET /incidents/{id} returns it (``body`` only if included)."""
        out = copy.deepcopy(dict(incident))
        if "body" not in set(include):
            out.pop("body", None)
        return out

    def webhook_incident_data(self, incident: Mapping[str, Any]) -> dict[str, Any]:
        """``event.data`` for incident events (``examples/data_incident.json``)."""
        priority = None
        if incident["priority"] is not None:
            p = incident["priority"]
            priority = {
                "html_url": f"{self.html_base}/account/incident_priorities",
                "id": p["id"],
                "self": p["self"],
                "summary": p["summary"],
                "type": "priority_reference",
            }
        return {
            "id": incident["id"],
            "type": "incident",
            "self": incident["self"],
            "html_url": incident["html_url"],
            "number": incident["incident_number"],
            "status": incident["status"],
            "incident_key": incident["incident_key"],
            "created_at": incident["created_at"],
            "reopened_at": self._reopened_at.get(incident["id"]),
            "title": incident["title"],
            "incident_type": copy.deepcopy(incident["incident_type"]),
            "service": copy.deepcopy(incident["service"]),
            "assignees": [copy.deepcopy(a["assignee"]) for a in incident["assignments"]],
            "escalation_policy": copy.deepcopy(incident["escalation_policy"]),
            "teams": copy.deepcopy(incident["teams"]),
            "priority": priority,
            "urgency": incident["urgency"],
            "conference_bridge": copy.deepcopy(incident["conference_bridge"]),
            "resolve_reason": incident["resolve_reason"],
        }

    def _webhook_note_data(
        self, incident: Mapping[str, Any], note: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {
            "incident": self._incident_ref(incident),
            "id": note["id"],
            "content": note["content"],
            "trimmed": False,
            "type": "incident_note",
        }

    # ------------------------------------------------------------------ state

    def _incident(self, incident_id: str) -> dict[str, Any]:
        incident = self.incidents.get(incident_id)
        if incident is None:
            raise _not_found()
        return incident

    def _open_on(self, service_id: str) -> bool:
        return any(
            i["service"]["id"] == service_id and i["status"] != "resolved"
            for i in self.incidents.values()
        )

    def _ep_oncalls(self, ep_id: str) -> list[OnCall]:
        return [o for o in self.oncalls if o.escalation_policy_id == ep_id]

    def _level_users(self, ep_id: str, level: int) -> list[User]:
        seen: list[User] = []
        for o in self._ep_oncalls(ep_id):
            user = self.users.get(o.user_id)
            if o.escalation_level == level and user is not None and user not in seen:
                seen.append(user)
        return seen

    def _user_ref_arg(self, who: str) -> User:
        user = self.users.get(who) or self.user_by_email(who)
        if user is None:
            raise KeyError(who)
        return user

    def _log(
        self,
        incident: dict[str, Any],
        kind: str,
        summary: str,
        agent: dict[str, Any] | None,
        *,
        channel: dict[str, Any] | None = None,
        note: str | None = None,
        assignees: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        lid = f"PLOG{self._next('log'):05d}"
        entry: dict[str, Any] = {
            "id": lid,
            "type": f"{kind}_log_entry",
            "summary": summary,
            "self": f"{self.url}/log_entries/{lid}?incident_id={incident['id']}",
            "html_url": f"{incident['html_url']}/log_entries/{lid}",
            "created_at": self._now(),
            "agent": copy.deepcopy(agent),
            "channel": channel or {"type": "api"},
            "service": copy.deepcopy(incident["service"]),
            "incident": self._incident_ref(incident),
            "teams": copy.deepcopy(incident["teams"]),
            "contexts": [],
            "event_details": {"description": incident["title"]},
        }
        if note is not None:
            entry["note"] = note
        if assignees is not None:
            entry["assignees"] = assignees
        self.log_entries.setdefault(incident["id"], []).append(entry)
        return entry

    def _notify(
        self,
        event_type: str,
        incident: dict[str, Any],
        agent: dict[str, Any] | None,
        *,
        note: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        if data is None:
            data = (
                self._webhook_note_data(incident, note)
                if note is not None
                else self.webhook_incident_data(incident)
            )
        obj: Any = note if note is not None else incident
        for listener in list(self.on_change):
            try:
                listener(event_type, obj)
            except Exception:
                log.exception("fake pagerduty on_change listener failed")
        if not self.subscriptions or self._outbox is None:
            return
        envelope = self._envelope(event_type, data, agent)
        for sub in self.subscriptions:
            if sub.events is not None and event_type not in sub.events:
                continue
            delivery = self._delivery(sub.url, event_type, envelope, sub.secrets, None)
            self._outbox.put_nowait(_Pending(delivery, max(1, self.webhook_attempts)))

    def _new_incident(
        self,
        *,
        title: str,
        service: Service,
        urgency: str,
        incident_key: str,
        agent: dict[str, Any],
        assignees: list[User] | None,
        ep: EscalationPolicy,
        priority: Priority | None,
        details: str | None,
        conference_bridge: dict[str, Any] | None,
        alerts: int,
        trigger_summary: str,
    ) -> dict[str, Any]:
        number = self._next("incident")
        iid = f"PIN{number:04d}"
        now = self._now()
        if assignees is None:
            users = self._level_users(ep.id, 1)
            via = "escalation_policy"
        else:
            users = assignees
            via = "direct_assignment"
        incident: dict[str, Any] = {
            "id": iid,
            "type": "incident",
            "summary": f"[#{number}] {title}",
            "self": f"{self.url}/incidents/{iid}",
            "html_url": f"{self.html_base}/incidents/{iid}",
            "incident_number": number,
            "title": title,
            "created_at": now,
            "updated_at": now,
            "status": "triggered",
            "incident_key": incident_key,
            "service": self.service_ref(service),
            "assignments": [{"at": now, "assignee": self.user_ref(u)} for u in users],
            "assigned_via": via,
            "last_status_change_at": now,
            "last_status_change_by": copy.deepcopy(agent),
            "resolved_at": None,
            "first_trigger_log_entry": None,
            "alert_counts": {"all": alerts, "triggered": alerts, "resolved": 0},
            "is_mergeable": True,
            "incident_type": {"name": "incident_default"},
            "escalation_policy": self._ep_ref(ep),
            "teams": [self._team_ref(t) for t in service.team_ids if t in self.teams],
            "pending_actions": [],
            "acknowledgements": [],
            "alert_grouping": None,
            "priority": self._priority_obj(priority) if priority is not None else None,
            "resolve_reason": None,
            "conference_bridge": conference_bridge,
            "incidents_responders": [],
            "responder_requests": [],
            "urgency": urgency,
            "body": {"type": "incident_body", "details": details or ""},
        }
        self.incidents[iid] = incident
        self.notes[iid] = []
        self._reopened_at[iid] = None
        trigger = self._log(incident, "trigger", trigger_summary, agent)
        incident["first_trigger_log_entry"] = {
            "id": trigger["id"],
            "type": "trigger_log_entry_reference",
            "summary": trigger_summary,
            "self": trigger["self"],
            "html_url": trigger["html_url"],
        }
        self._log(
            incident,
            "assign",
            "Assigned to " + ", ".join(u.name for u in users),
            agent,
            assignees=[self.user_ref(u) for u in users],
        )
        self._notify("incident.triggered", incident, agent)
        return incident

    def _set_status(
        self, incident: dict[str, Any], status: str, agent: dict[str, Any], resolution: str | None
    ) -> str | None:
        """Change the status; returns the webhook event type (None if nothing changed)."""
        old = incident["status"]
        now = self._now()
        if status == old == "resolved":
            raise _ApiError(400, 1001, "Incident Already Resolved")
        if status == old:
            if status == "acknowledged":
                incident["acknowledgements"].append({"at": now, "acknowledger": agent})
            return None
        incident["status"] = status
        incident["last_status_change_at"] = now
        incident["last_status_change_by"] = copy.deepcopy(agent)
        incident["updated_at"] = now
        if status == "resolved":
            incident["resolved_at"] = now
            incident["assignments"] = []
            incident["acknowledgements"] = []
            counts = incident["alert_counts"]
            counts["resolved"], counts["triggered"] = counts["all"], 0
            self._log(incident, "resolve", "Resolved", agent, note=resolution)
            return "incident.resolved"
        if old == "resolved":
            self._reopened_at[incident["id"]] = now
            incident["resolved_at"] = None
            ep_id = incident["escalation_policy"]["id"]
            incident["assignments"] = [
                {"at": now, "assignee": self.user_ref(u)} for u in self._level_users(ep_id, 1)
            ]
            counts = incident["alert_counts"]
            counts["resolved"], counts["triggered"] = 0, counts["all"]
        if status == "acknowledged":
            incident["acknowledgements"] = [{"at": now, "acknowledger": agent}]
            self._log(incident, "acknowledge", "Acknowledged", agent)
            return "incident.reopened" if old == "resolved" else "incident.acknowledged"
        incident["acknowledgements"] = []
        if old == "resolved":
            self._log(incident, "trigger", "Reopened", agent)
            return "incident.reopened"
        self._log(incident, "unacknowledge", "Unacknowledged", agent)
        return "incident.unacknowledged"

    def _priority_arg(self, value: Any) -> Priority | None:
        if value is None:
            return None
        if isinstance(value, str):
            for p in self.priorities.values():
                if p.name == value:
                    return p
            raise _invalid(f"Priority {value!r} not found")
        if isinstance(value, dict) and isinstance(value.get("id"), str):
            found = self.priorities.get(value["id"])
            if found is None:
                raise _invalid("Priority not found")
            return found
        raise _invalid("priority must be a priority reference or a priority name")

    def _assignees_arg(self, value: Any) -> list[User]:
        if not isinstance(value, list) or not value:
            raise _invalid("assignments must be a non-empty array")
        users: list[User] = []
        for item in value:
            ref = item.get("assignee") if isinstance(item, dict) else None
            uid = ref.get("id") if isinstance(ref, dict) else None
            user = self.users.get(uid) if isinstance(uid, str) else None
            if user is None:
                raise _ApiError(400, 1007, "Assigned To User Not Found")
            if user not in users:
                users.append(user)
        return users

    def _ep_arg(self, value: Any) -> EscalationPolicy:
        eid = value.get("id") if isinstance(value, dict) else None
        ep = self.escalation_policies.get(eid) if isinstance(eid, str) else None
        if ep is None:
            raise _ApiError(400, 1014, "Escalation Policy Not Found")
        return ep

    def _apply_update(self, incident: dict[str, Any], change: Any, user: User) -> list[str]:
        """Validate then apply one PUT body; returns the webhook event types emitted."""
        if not isinstance(change, dict):
            raise _invalid("incident must be an object")
        if change.get("type") not in ("incident", "incident_reference"):
            raise _invalid("Incident type must be 'incident' or 'incident_reference'")
        status = change.get("status")
        if status is not None and status not in STATUSES:
            raise _ApiError(400, 2001, "Invalid Input Provided", ["Invalid Status Provided"])
        if status == "resolved" and incident["status"] == "resolved":
            raise _ApiError(400, 1001, "Incident Already Resolved")
        urgency = change.get("urgency")
        if urgency is not None and urgency not in ("high", "low"):
            raise _invalid("Urgency must be high or low")
        title = change.get("title")
        if title is not None and (not isinstance(title, str) or not title.strip()):
            raise _invalid("Title cannot be blank")
        priority = self._priority_arg(change["priority"]) if "priority" in change else None
        ep = self._ep_arg(change["escalation_policy"]) if "escalation_policy" in change else None
        assignees = self._assignees_arg(change["assignments"]) if "assignments" in change else None
        level = change.get("escalation_level")
        target_ep = ep.id if ep is not None else incident["escalation_policy"]["id"]
        if level is not None:
            if not isinstance(level, int) or isinstance(level, bool) or level < 1:
                raise _invalid("escalation_level must be a positive integer")
            if not self._level_users(target_ep, level):
                raise _ApiError(400, 1006, "Cannot Escalate", [f"No escalation level {level}"])
        resolution = change.get("resolution")
        if resolution is not None and not isinstance(resolution, str):
            raise _invalid("resolution must be a string")
        bridge = change.get("conference_bridge")
        if bridge is not None and not isinstance(bridge, dict):
            raise _invalid("conference_bridge must be an object")

        agent = self.user_ref(user)
        now = self._now()
        emitted: list[str] = []
        if title is not None:
            incident["title"] = title
            incident["summary"] = f"[#{incident['incident_number']}] {title}"
        if urgency is not None:
            incident["urgency"] = urgency
        if bridge is not None:
            incident["conference_bridge"] = {
                k: bridge[k] for k in ("conference_number", "conference_url") if k in bridge
            }
        if "priority" in change:
            old = incident["priority"]["id"] if incident["priority"] else None
            incident["priority"] = self._priority_obj(priority) if priority else None
            if old != (priority.id if priority else None):
                emitted.append("incident.priority_updated")
        if ep is not None and ep.id != incident["escalation_policy"]["id"]:
            incident["escalation_policy"] = self._ep_ref(ep)
            users = self._level_users(ep.id, level or 1)
            incident["assignments"] = [{"at": now, "assignee": self.user_ref(u)} for u in users]
            incident["assigned_via"] = "escalation_policy"
            self._log(incident, "assign", f"Delegated to {ep.name}", agent)
            emitted.append("incident.delegated")
        elif level is not None:
            users = self._level_users(target_ep, level)
            incident["assignments"] = [{"at": now, "assignee": self.user_ref(u)} for u in users]
            incident["assigned_via"] = "escalation_policy"
            self._log(
                incident,
                "escalate",
                f"Escalated to level {level}",
                agent,
                assignees=[self.user_ref(u) for u in users],
            )
            emitted.append("incident.escalated")
        if assignees is not None:
            incident["assignments"] = [{"at": now, "assignee": self.user_ref(u)} for u in assignees]
            incident["assigned_via"] = "direct_assignment"
            self._log(
                incident,
                "assign",
                "Reassigned to " + ", ".join(u.name for u in assignees),
                agent,
                assignees=[self.user_ref(u) for u in assignees],
            )
            emitted.append("incident.reassigned")
        if status is not None:
            event = self._set_status(incident, status, agent, resolution)
            if event is not None:
                emitted.append(event)
        incident["updated_at"] = now
        for event_type in emitted:
            self._notify(event_type, incident, agent)
        return emitted

    def _create_note(self, incident: dict[str, Any], content: Any, user: User) -> dict[str, Any]:
        if not isinstance(content, str) or not content.strip():
            raise _invalid("Note content cannot be blank")
        if len(content) > 25_000:
            raise _invalid("Note content is too long (maximum is 25000 characters)")
        now = self._now()
        note = {
            "id": f"PNT{self._next('note'):04d}",
            "user": self.user_ref(user),
            "channel": {"summary": "The PagerDuty website or APIs"},
            "content": content,
            "created_at": now,
            "updated_at": now,
        }
        self.notes.setdefault(incident["id"], []).append(note)
        agent = self.user_ref(user)
        self._log(incident, "annotate", "Note added", agent, channel={"type": "note"}, note=content)
        incident["updated_at"] = now
        self._notify("incident.annotated", incident, agent, note=note)
        return note

    # ------------------------------------------------------------------ REST handlers

    def _wrapped(self, body: Any, key: str) -> dict[str, Any]:
        inner = body.get(key) if isinstance(body, dict) else None
        if not isinstance(inner, dict):
            raise _invalid(f"'{key}' is missing or not an object")
        return inner

    def _list_incidents(self, r: _Req) -> tuple[int, dict[str, Any]]:
        q = r.query
        statuses = q.get("statuses[]", [])
        for s in statuses:
            if s not in STATUSES:
                raise _invalid("Status must be a list of triggered, acknowledged, or resolved.")
        services = set(q.get("service_ids[]", []))
        users = set(q.get("user_ids[]", []))
        urgencies = set(q.get("urgencies[]", []))
        key = _one(q, "incident_key")
        include = q.get("include[]", [])
        since = until = None
        if _one(q, "date_range") != "all":
            since = _parse_time(_one(q, "since"))
            until = _parse_time(_one(q, "until"))
        items = []
        for i in self.incidents.values():
            if statuses and i["status"] not in statuses:
                continue
            if services and i["service"]["id"] not in services:
                continue
            if urgencies and i["urgency"] not in urgencies:
                continue
            if key is not None and i["incident_key"] != key:
                continue
            if users and not {a["assignee"]["id"] for a in i["assignments"]} & users:
                continue
            created = _parse_time(i["created_at"])
            assert created is not None
            if since is not None and created < since:
                continue
            if until is not None and created >= until:
                continue
            items.append(i)
        sort_by = _one(q, "sort_by") or ""
        if sort_by:
            field_name, _, direction = sort_by.partition(":")
            if field_name not in ("incident_number", "created_at", "resolved_at", "urgency"):
                raise _invalid("sort_by field is invalid")
            items.sort(key=lambda i: _sort_key(i, field_name))
            if direction == "desc":
                items.reverse()
        page, meta = _paginate(items, q)
        return 200, {"incidents": [self.render_incident(i, include) for i in page], **meta}

    def _create_incident(self, r: _Req) -> tuple[int, dict[str, Any]]:
        assert r.user is not None
        data = self._wrapped(r.body, "incident")
        errors: list[str] = []
        if data.get("type") != "incident":
            errors.append("Incident type must be 'incident'")
        title = data.get("title")
        if not isinstance(title, str) or not title.strip():
            errors.append("Title cannot be blank")
        sref = data.get("service")
        sid = sref.get("id") if isinstance(sref, dict) else None
        service = self.services.get(sid) if isinstance(sid, str) else None
        if service is None:
            errors.append("Service not found" if sref else "Service is required")
        urgency = data.get("urgency", "high")
        if urgency not in ("high", "low"):
            errors.append("Urgency must be high or low")
        key = data.get("incident_key")
        if key is not None and (not isinstance(key, str) or not key or len(key) > 255):
            errors.append("incident_key must be a string of 1 to 255 characters")
        body = data.get("body")
        details: str | None = None
        if body is not None:
            if not isinstance(body, dict) or body.get("type") != "incident_body":
                errors.append("body must be an object of type incident_body")
            else:
                raw_details = body.get("details")
                details = raw_details if isinstance(raw_details, str) else json.dumps(raw_details)
        if "assignments" in data and "escalation_policy" in data:
            errors.append("Cannot specify both assignments and an escalation policy")
        bridge = data.get("conference_bridge")
        if bridge is not None and not isinstance(bridge, dict):
            errors.append("conference_bridge must be an object")
        if errors:
            raise _invalid(*errors)
        assert service is not None and isinstance(title, str)
        priority = self._priority_arg(data["priority"]) if "priority" in data else None
        assignees = self._assignees_arg(data["assignments"]) if "assignments" in data else None
        ep = (
            self._ep_arg(data["escalation_policy"])
            if "escalation_policy" in data
            else self.escalation_policies[service.escalation_policy_id]
        )
        if isinstance(key, str):
            existing = self.incident_by_key(key, service.id)
            if existing is not None and existing["status"] != "resolved":
                raise _ApiError(400, 2002, "Arguments Caused Error", [DUPLICATE_INCIDENT_KEY_ERROR])
        incident = self._new_incident(
            title=title,
            service=service,
            urgency=str(urgency),
            incident_key=key if isinstance(key, str) else uuid.uuid4().hex,
            agent=self.user_ref(r.user),
            assignees=assignees,
            ep=ep,
            priority=priority,
            details=details,
            conference_bridge=(
                {k: bridge[k] for k in ("conference_number", "conference_url") if k in bridge}
                if isinstance(bridge, dict)
                else None
            ),
            alerts=0,
            trigger_summary="Triggered through the API",
        )
        return 201, {"incident": self.render_incident(incident, ["body"])}

    def _get_incident(self, r: _Req) -> tuple[int, dict[str, Any]]:
        incident = self._incident(r.params["id"])
        return 200, {"incident": self.render_incident(incident, r.query.get("include[]", []))}

    def _update_incident(self, r: _Req) -> tuple[int, dict[str, Any]]:
        assert r.user is not None
        incident = self._incident(r.params["id"])
        self._apply_update(incident, self._wrapped(r.body, "incident"), r.user)
        return 200, {"incident": self.render_incident(incident)}

    def _update_incidents(self, r: _Req) -> tuple[int, dict[str, Any]]:
        assert r.user is not None
        items = r.body.get("incidents") if isinstance(r.body, dict) else None
        if not isinstance(items, list) or not items:
            raise _invalid("'incidents' must be a non-empty array")
        if len(items) > 250:
            raise _ApiError(413, 2001, "Invalid Input Provided", ["Too many incidents"])
        targets = []
        for item in items:
            iid = item.get("id") if isinstance(item, dict) else None
            if not isinstance(iid, str):
                raise _invalid("Each incident needs an id")
            targets.append((self._incident(iid), item))
        for incident, item in targets:
            self._apply_update(incident, item, r.user)
        updated = [self.render_incident(i) for i, _ in targets]
        return 200, {
            "incidents": updated,
            "limit": len(updated),
            "offset": 0,
            "more": False,
            "total": None,
        }

    def _list_notes(self, r: _Req) -> tuple[int, dict[str, Any]]:
        incident = self._incident(r.params["id"])
        return 200, {"notes": copy.deepcopy(self.notes.get(incident["id"], []))}

    def _post_note(self, r: _Req) -> tuple[int, dict[str, Any]]:
        assert r.user is not None
        incident = self._incident(r.params["id"])
        note = self._create_note(incident, self._wrapped(r.body, "note").get("content"), r.user)
        return 200, {"note": copy.deepcopy(note)}

    def _responder_request(self, r: _Req) -> tuple[int, dict[str, Any]]:
        incident = self._incident(r.params["id"])
        body = r.body if isinstance(r.body, dict) else {}
        requester = self.users.get(str(body.get("requester_id") or ""))
        if requester is None:
            raise _ApiError(400, 1008, "Requester User Not Found")
        message = body.get("message")
        targets = body.get("responder_request_targets")
        if not isinstance(message, str) or not message.strip():
            raise _invalid("message is required")
        if not isinstance(targets, list) or not targets:
            raise _invalid("responder_request_targets must be a non-empty array")
        now = self._now()
        requester_ref = self.user_ref(requester)
        out_targets = []
        added: list[tuple[User, EscalationPolicy | None]] = []
        for t in targets:
            ref = t.get("responder_request_target", t) if isinstance(t, dict) else None
            kind = ref.get("type") if isinstance(ref, dict) else None
            tid = ref.get("id") if isinstance(ref, dict) else None
            users: list[User]
            ep: EscalationPolicy | None = None
            if kind in ("user", "user_reference") and isinstance(tid, str) and tid in self.users:
                users = [self.users[tid]]
                summary = self.users[tid].name
                out_kind = "user"
            elif (
                kind in ("escalation_policy", "escalation_policy_reference")
                and isinstance(tid, str)
                and tid in self.escalation_policies
            ):
                ep = self.escalation_policies[tid]
                users = self._level_users(ep.id, 1)
                summary = ep.name
                out_kind = "escalation_policy"
            else:
                raise _invalid("Responder request target not found")
            responders = []
            for u in users:
                responder = {
                    "state": "pending",
                    "user": self.user_ref(u),
                    "incident": self._incident_ref(incident),
                    "updated_at": now,
                    "message": message,
                    "requester": requester_ref,
                    "requested_at": now,
                }
                responders.append(responder)
                incident["incidents_responders"].append(copy.deepcopy(responder))
                added.append((u, ep))
            out_targets.append(
                {
                    "responder_request_target": {
                        "type": out_kind,
                        "id": tid,
                        "summary": summary,
                        "incidents_responders": responders,
                    }
                }
            )
        request = {
            "id": f"PRR{self._next('rr'):04d}",
            "incident": self._incident_ref(incident),
            "requester": requester_ref,
            "requested_at": now,
            "message": message,
            "responder_request_targets": out_targets,
        }
        incident["responder_requests"].append(copy.deepcopy(request))
        incident["updated_at"] = now
        for user, ep in added:
            data: dict[str, Any] = {
                "incident": self._incident_ref(incident),
                "user": self.user_ref(user),
                "escalation_policy": self._ep_ref(ep) if ep is not None else None,
                "message": message,
                "state": "pending",
                "type": "incident_responder",
            }
            self._notify("incident.responder.added", incident, requester_ref, data=data)
        return 200, {"responder_request": request}

    def _list_log(self, r: _Req) -> tuple[int, dict[str, Any]]:
        incident = self._incident(r.params["id"])
        entries = self.log_entries.get(incident["id"], [])
        page, meta = _paginate(entries, r.query)
        return 200, {"log_entries": copy.deepcopy(page), **meta}

    def _list_oncalls(self, r: _Req) -> tuple[int, dict[str, Any]]:
        q = r.query
        eps = set(q.get("escalation_policy_ids[]", []))
        schedules = set(q.get("schedule_ids[]", []))
        users = set(q.get("user_ids[]", []))
        since = _parse_time(_one(q, "since"))
        until = _parse_time(_one(q, "until"))
        items = []
        for o in self.oncalls:
            if eps and o.escalation_policy_id not in eps:
                continue
            if schedules and (o.schedule_id or "null") not in schedules:
                continue
            if users and o.user_id not in users:
                continue
            start = _parse_time(o.start)
            end = _parse_time(o.end)
            if until is not None and start is not None and start > until:
                continue
            if since is not None and end is not None and end < since:
                continue
            items.append(o)
        if _one(q, "earliest") == "true":
            firsts: dict[tuple[str, int, str], OnCall] = {}
            for o in items:
                k = (o.escalation_policy_id, o.escalation_level, o.user_id)
                if k not in firsts or (o.start or "") < (firsts[k].start or ""):
                    firsts[k] = o
            items = list(firsts.values())
        items.sort(key=lambda o: (o.escalation_policy_id, o.escalation_level))
        page, meta = _paginate(items, q)
        return 200, {"oncalls": [self._render_oncall(o) for o in page], **meta}

    def _list_users(self, r: _Req) -> tuple[int, dict[str, Any]]:
        needle = (_one(r.query, "query") or "").lower()
        items = [
            u
            for u in self.users.values()
            if not needle or needle in u.name.lower() or needle in u.email.lower()
        ]
        page, meta = _paginate(items, r.query)
        return 200, {"users": [self._render_user(u) for u in page], **meta}

    def _get_user(self, r: _Req) -> tuple[int, dict[str, Any]]:
        user = self.users.get(r.params["id"])
        if user is None:
            raise _not_found()
        return 200, {"user": self._render_user(user)}

    def _list_services(self, r: _Req) -> tuple[int, dict[str, Any]]:
        page, meta = _paginate(list(self.services.values()), r.query)
        return 200, {"services": [self._render_service(s) for s in page], **meta}

    def _get_service(self, r: _Req) -> tuple[int, dict[str, Any]]:
        service = self.services.get(r.params["id"])
        if service is None:
            raise _not_found()
        return 200, {"service": self._render_service(service)}

    def _list_eps(self, r: _Req) -> tuple[int, dict[str, Any]]:
        page, meta = _paginate(list(self.escalation_policies.values()), r.query)
        return 200, {"escalation_policies": [self._render_ep(e) for e in page], **meta}

    def _get_ep(self, r: _Req) -> tuple[int, dict[str, Any]]:
        ep = self.escalation_policies.get(r.params["id"])
        if ep is None:
            raise _not_found()
        return 200, {"escalation_policy": self._render_ep(ep)}

    def _list_priorities(self, r: _Req) -> tuple[int, dict[str, Any]]:
        page, meta = _paginate(list(self.priorities.values()), r.query)
        return 200, {"priorities": [self._priority_obj(p) for p in page], **meta}

    def _list_abilities(self, r: _Req) -> tuple[int, dict[str, Any]]:
        return 200, {"abilities": list(_ABILITIES)}

    def _get_ability(self, r: _Req) -> tuple[int, dict[str, Any] | None]:
        if r.params["id"] in _ABILITIES:
            return 204, None
        return 402, {"error": {"message": "Payment Required"}}

    # ------------------------------------------------------------------ Events API v2

    def _service_for_key(self, routing_key: str) -> Service | None:
        for s in self.services.values():
            if hmac.compare_digest(s.routing_key.encode(), routing_key.encode()):
                return s
        return None

    def _enqueue(self, r: _Req) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = r.body
        errors: list[str] = []
        routing_key = body.get("routing_key")
        service = None
        if not isinstance(routing_key, str) or not routing_key.strip():
            errors.append("'routing_key' is missing or blank")
        elif len(routing_key) != 32:
            errors.append("'routing_key' must be 32 characters")
        else:
            service = self._service_for_key(routing_key)
            if service is None:
                errors.append("Invalid routing key")
        action = body.get("event_action")
        if not isinstance(action, str) or not action:
            errors.append("'event_action' is missing or blank")
        elif action not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' is invalid (must be trigger, acknowledge or resolve)")
        dedup_key = body.get("dedup_key")
        if dedup_key is not None and (not isinstance(dedup_key, str) or len(dedup_key) > 255):
            errors.append("'dedup_key' must be a string of at most 255 characters")
        elif action in ("acknowledge", "resolve") and not dedup_key:
            errors.append("'dedup_key' is missing or blank")
        payload = body.get("payload")
        if action == "trigger":
            if not isinstance(payload, dict):
                errors.append("'payload' is missing or not an object")
            else:
                for name in ("summary", "source"):
                    value = payload.get(name)
                    if not isinstance(value, str) or not value.strip():
                        errors.append(f"'payload.{name}' is missing or blank")
                severity = payload.get("severity")
                if severity is None:
                    errors.append("'payload.severity' is missing or blank")
                elif severity not in SEVERITIES:
                    errors.append(
                        "'payload.severity' is invalid (must be critical, error, warning or info)"
                    )
        if errors:
            raise _EventError("invalid event", "Event object is invalid", errors)
        assert service is not None and isinstance(action, str)
        key = dedup_key if isinstance(dedup_key, str) and dedup_key else uuid.uuid4().hex
        self.events.append(_redact_body(body))
        if action == "trigger":
            assert isinstance(payload, dict)
            client = body.get("client")
            self._event_trigger(service, key, payload, client if isinstance(client, str) else None)
        else:
            incident = self.incident_by_key(key, service.id)
            if incident is not None and incident["status"] != "resolved":
                status = "acknowledged" if action == "acknowledge" else "resolved"
                event = self._set_status(incident, status, self.service_ref(service), None)
                if event is not None:
                    self._notify(event, incident, self.service_ref(service))
        return 202, {"status": "success", "message": "Event processed", "dedup_key": key}

    def _event_trigger(
        self, service: Service, key: str, payload: dict[str, Any], client: str | None
    ) -> None:
        existing = self.incident_by_key(key, service.id)
        if existing is not None and existing["status"] != "resolved":
            return  # de-duplicated into the open alert/incident
        summary = str(payload.get("summary", ""))[:1024]
        severity = payload.get("severity", "critical")
        details = payload.get("custom_details")
        self._new_incident(
            title=summary,
            service=service,
            urgency="high" if severity in ("critical", "error") else "low",
            incident_key=key,
            agent=self.service_ref(service),
            assignees=None,
            ep=self.escalation_policies[service.escalation_policy_id],
            priority=None,
            details=json.dumps(details) if details is not None else None,
            conference_bridge=None,
            alerts=1,
            trigger_summary=f"Triggered through the API{f' by {client}' if client else ''}",
        )

    def _change_enqueue(self, r: _Req) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = r.body
        errors = []
        routing_key = body.get("routing_key")
        if not isinstance(routing_key, str) or self._service_for_key(routing_key) is None:
            errors.append("Invalid routing key")
        payload = body.get("payload")
        if not isinstance(payload, dict) or not str(payload.get("summary") or "").strip():
            errors.append("'payload.summary' is missing or blank")
        if errors:
            raise _EventError("invalid event", "Event object is invalid", errors)
        self.change_events.append(_redact_body(body))
        return 202, {"status": "success", "message": "Change event processed"}

    # ------------------------------------------------------------------ outbound webhooks

    def _envelope(
        self, event_type: str, data: dict[str, Any], agent: dict[str, Any] | None
    ) -> dict[str, Any]:
        return {
            "event": {
                "id": str(uuid.uuid4()),
                "event_type": event_type,
                "resource_type": event_type.split(".", 1)[0],
                "occurred_at": _iso_ms(self._clock()),
                "agent": copy.deepcopy(agent),
                "client": {"name": "PagerDuty"},
                "data": data,
            }
        }

    def _delivery(
        self,
        url: str,
        event_type: str,
        envelope: dict[str, Any],
        secrets_: list[str],
        webhook_id: str | None,
    ) -> WebhookDelivery:
        body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": WEBHOOK_USER_AGENT,
            "X-Webhook-Id": webhook_id or str(uuid.uuid4()),
        }
        if secrets_:
            headers["X-PagerDuty-Signature"] = sign_webhook(body, secrets_)
        return WebhookDelivery(url, event_type, headers["X-Webhook-Id"], body, headers)

    def build_webhook(
        self,
        event_type: str,
        incident_id: str,
        *,
        agent: str | dict[str, Any] | None = None,
        note_id: str | None = None,
    ) -> dict[str, Any]:
        """The V3 envelope for ``event_type`` about an incident, from its current state."""
        incident = self._incident_for_helper(incident_id)
        if event_type == "incident.annotated":
            notes = self.notes.get(incident_id, [])
            chosen = [n for n in notes if note_id is None or n["id"] == note_id]
            if not chosen:
                raise KeyError(note_id or f"no notes on {incident_id}")
            data = self._webhook_note_data(incident, chosen[-1])
        else:
            data = self.webhook_incident_data(incident)
        if isinstance(agent, str):
            agent_ref: dict[str, Any] | None = self.user_ref(self._user_ref_arg(agent))
        else:
            agent_ref = agent
        return self._envelope(event_type, data, agent_ref)

    def _incident_for_helper(self, incident_id: str) -> dict[str, Any]:
        incident = self.incidents.get(incident_id)
        if incident is None:
            raise KeyError(incident_id)
        return incident

    async def send_webhook(
        self,
        url: str,
        event_type: str,
        incident_id: str,
        *,
        secrets: Iterable[str] = (),
        agent: str | dict[str, Any] | None = None,
        webhook_id: str | None = None,
        note_id: str | None = None,
    ) -> int:
        """POST one signed V3 webhook about ``incident_id`` to ``url``; returns the HTTP status.

        ``agent`` is a user id/email (-> user_reference), a reference dict, or None (automation).
        ``secrets``: one signature per secret, comma-joined (as during secret rotation).
        """
        envelope = self.build_webhook(event_type, incident_id, agent=agent, note_id=note_id)
        delivery = self._delivery(url, event_type, envelope, list(secrets), webhook_id)
        await self._post(delivery)
        return delivery.status

    async def _post(self, delivery: WebhookDelivery) -> None:
        session = self._session
        own = session is None
        if session is None:
            session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        delivery.attempts += 1
        try:
            async with session.post(
                delivery.url, data=delivery.body, headers=delivery.headers
            ) as resp:
                await resp.read()
                delivery.status = resp.status
        except (aiohttp.ClientError, TimeoutError) as e:
            delivery.status = 0
            log.debug("fake pagerduty webhook to %s failed: %s", delivery.url, type(e).__name__)
        finally:
            if own:
                await session.close()
        if delivery not in self.webhooks:
            self.webhooks.append(delivery)

    async def _deliver_loop(self) -> None:
        assert self._outbox is not None
        while True:
            pending = await self._outbox.get()
            try:
                for attempt in range(pending.max_attempts):
                    await self._post(pending.delivery)
                    status = pending.delivery.status
                    if status and status != 429 and status < 500:
                        break
                    if attempt + 1 < pending.max_attempts:
                        await asyncio.sleep(self.webhook_retry_delay)
            except Exception:
                log.exception("fake pagerduty webhook delivery failed")
            finally:
                self._outbox.task_done()


# ---------------------------------------------------------------------- helpers


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_ms(ts: float) -> str:
    t = dt.datetime.fromtimestamp(ts, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _parse_time(value: str | None) -> dt.datetime | None:
    if value is None or value == "":
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise _ApiError(
            400, 2004, "Invalid 'since' or 'until' Parameter Values", [f"Invalid time: {value}"]
        ) from e
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def _sort_key(incident: Mapping[str, Any], field_name: str) -> str:
    if field_name == "incident_number":
        return f"{incident['incident_number']:012d}"
    if field_name == "urgency":
        return "0" if incident["urgency"] == "high" else "1"
    return str(incident[field_name] or "")


def _one(q: Mapping[str, list[str]], name: str) -> str | None:
    values = q.get(name)
    return values[-1] if values else None


def _int_param(q: Mapping[str, list[str]], name: str, default: int) -> int:
    raw = _one(q, name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as e:
        raise _invalid(f"{name} must be an integer") from e
    if value < 0:
        raise _invalid(f"{name} must not be negative")
    return value


def _paginate(items: list[Any], q: Mapping[str, list[str]]) -> tuple[list[Any], dict[str, Any]]:
    limit = _int_param(q, "limit", DEFAULT_LIMIT) or DEFAULT_LIMIT
    limit = min(limit, MAX_LIMIT)
    offset = _int_param(q, "offset", 0)
    if offset + limit > MAX_OFFSET_PLUS_LIMIT:
        raise _invalid(f"Offset plus limit must not exceed {MAX_OFFSET_PLUS_LIMIT}")
    page = items[offset : offset + limit]
    total = len(items) if (_one(q, "total") or "").lower() == "true" else None
    return page, {
        "limit": limit,
        "offset": offset,
        "more": offset + len(page) < len(items),
        "total": total,
    }


def _redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in headers.items():
        if k.lower() == "authorization":
            scheme = v.split(" ", 1)[0]
            out[k] = f"{scheme} <redacted>"
        else:
            out[k] = v
    return out


def _redact_body(body: Any) -> Any:
    if isinstance(body, dict) and "routing_key" in body:
        redacted = dict(body)
        redacted["routing_key"] = "<redacted>"
        return redacted
    return body


def new_secret() -> str:
    """A random webhook signing secret like the ones PagerDuty issues."""
    return secrets.token_urlsafe(48)
