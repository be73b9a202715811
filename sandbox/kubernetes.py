"""A local stand-in for the Kubernetes API server (apps/v1 + core/v1 subset) on 127.0.0.1.

Point the real ``kubernetes_asyncio`` client at it and the bot runs unchanged::

    cfg = kubernetes_asyncio.client.Configuration(
        host=fake.url,
        api_key={"BearerToken": fake.token},
        api_key_prefix={"BearerToken": "Bearer"},
    )
    # or: fake.write_kubeconfig(path)
    #     await kubernetes_asyncio.config.load_kube_config(config_file=str(path))

The wire format follows the Kubernetes OpenAPI v2 definitions (``k8s_openapi_v2_subset.json``):
JSON objects with ``kind``/``apiVersion`` (list items without them, as the API server sends
them), zero-valued ``omitempty`` status counters left out, errors as ``Status`` objects with the
usual ``reason``/``code``. Every request needs ``Authorization: Bearer <token>`` (else 401).

Served: discovery (``/api``, ``/api/v1``, ``/apis``, ``/apis/apps``, ``/apis/apps/v1``),
namespaces (get/list), deployments (get/list/watch/update/patch, ``/scale`` get/update/patch,
``/status`` get), replicasets (get/list/watch), pods (get/list/watch/delete, ``/log``,
``/status``), events (list/watch). PATCH understands ``application/strategic-merge-patch+json``
(merge keys for containers, env, ports, volumes, conditions...), ``application/merge-patch+json``
and ``application/json-patch+json``; ``dryRun=All`` is honoured. Lists take ``labelSelector``
(equality and set-based), ``fieldSelector`` (the fields the real server supports for that
resource), ``limit``/``continue`` and ``watch=true`` (newline-delimited watch events until
``timeoutSeconds``). ``resourceVersion`` changes on every write and ``metadata.generation`` on
every spec change; a PUT or PATCH carrying a stale ``metadata.resourceVersion`` is 409 Conflict.

A small controller simulation (deployment + replicaset controllers and a kubelet) runs when
:meth:`FakeKubernetes.tick` is called, or every ``tick_interval`` seconds if one is given, so
tests stay deterministic: a changed pod template gets a new ReplicaSet (``<name>-<hash>``,
revision = max + 1), or re-uses the ReplicaSet whose template matches (bumping its revision and
appending the old one to ``revision-history``, as after ``kubectl rollout undo``); ReplicaSets
are scaled by the RollingUpdate (maxSurge/maxUnavailable) or Recreate rules, pods are created and
deleted, and ``observedGeneration``/``updatedReplicas``/``readyReplicas``/``availableReplicas``
and the ``Available``/``Progressing`` conditions are set as the real controller does, so
:meth:`FakeKubernetes.rollout_status` (``kubectl rollout status`` logic) reports completion.
Images behave as configured with :meth:`FakeKubernetes.set_image_behaviour`: a crash-looping
image's pods never become ready (``CrashLoopBackOff``, ``restartCount`` growing every tick); a
healthy one is ready ``ready_after`` ticks after it started (default at once).

Everything the bot did is kept in :attr:`FakeKubernetes.calls`; listeners in
:attr:`FakeKubernetes.on_change` are called with ``(type, obj)`` for every write, ``type`` being
``"ADDED"``, ``"MODIFIED"`` or ``"DELETED"`` and ``obj`` a copy carrying ``kind``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import hashlib
import hmac
import json
import logging
import math
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from sandbox.loopback import StandIn, serve_on_loopback

__all__ = ["Call", "FakeKubernetes", "ImageBehaviour", "RolloutStatus"]

log = logging.getLogger(__name__)

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
HASH_LABEL = "pod-template-hash"
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_CONTROLLER_ANNOTATIONS = frozenset(
    {REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, LAST_APPLIED}
)
_MAX_SYNC_ROUNDS = 50

# resource -> (group, version, kind, namespaced)
_RESOURCES: dict[str, tuple[str, str, str, bool]] = {
    "namespaces": ("", "v1", "Namespace", False),
    "deployments": ("apps", "v1", "Deployment", True),
    "replicasets": ("apps", "v1", "ReplicaSet", True),
    "pods": ("", "v1", "Pod", True),
    "events": ("", "v1", "Event", True),
}
_STORED = ("deployments", "replicasets", "pods", "events")

# strategic merge patch: list fields merged by key (others are replaced)
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "resourceClaims": "name",
    "topologySpreadConstraints": "topologyKey",
}

_FIELD_SELECTORS: dict[str, frozenset[str]] = {
    "namespaces": frozenset({"metadata.name", "status.phase"}),
    "deployments": frozenset({"metadata.name", "metadata.namespace"}),
    "replicasets": frozenset({"metadata.name", "metadata.namespace", "status.replicas"}),
    "pods": frozenset(
        {
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        }
    ),
    "events": frozenset(
        {
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        }
    ),
}

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}

_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_SET_TERM = re.compile(r"^(\S+)\s+(in|notin)\s*\((.*)\)$")


# ---------------------------------------------------------------------- public records


@dataclass
class Call:
    """One recorded API request (the bearer token is never recorded)."""

    verb: str
    """Kubernetes verb: get, list, watch, update, patch, delete."""
    resource: str
    """``deployments``, ``deployments/scale``, ``pods/log``, ``discovery``, ... (``?`` unknown)."""
    namespace: str | None
    name: str | None
    method: str
    path: str
    query: dict[str, str]
    body: Any
    content_type: str | None
    status: int


@dataclass
class ImageBehaviour:
    """How pods running an image behave in the simulation (see ``set_image_behaviour``)."""

    crashloop: bool = False
    ready_after: int = 0
    logs: list[str] | None = None
    exit_code: int = 1
    crash_message: str = "java.lang.IllegalStateException: Failed to start application context"


@dataclass
class RolloutStatus:
    """What ``kubectl rollout status`` would say about a Deployment right now."""

    done: bool
    failed: bool
    message: str


# ---------------------------------------------------------------------- internal state


class _ApiError(Exception):
    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "Unknown")
        self.details = details
        self.headers = headers

    def status_object(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details:
            body["details"] = self.details
        body["code"] = self.code
        return body


@dataclass
class _Fault:
    resource: str
    verb: str
    name: str | None
    namespace: str | None
    status: int | None
    retry_after: int
    message: str | None
    delay: float


@dataclass
class _ContainerSim:
    name: str
    image: str
    started: float
    restarts: int = 0
    crashing: bool = False
    healthy_ticks: int = 0
    finished: float | None = None
    container_id: str = ""
    log: list[tuple[float, str]] = field(default_factory=list)
    previous_log: list[tuple[float, str]] | None = None


@dataclass
class _PodSim:
    containers: list[_ContainerSim]
    ready_since: float
    ip: str
    ready: bool = False


@dataclass
class _Watch:
    resource: str
    namespace: str | None
    labels: list[_Requirement]
    fields: list[tuple[str, str, bool]]
    queue: asyncio.Queue[tuple[str, dict[str, Any]] | None]


@dataclass(frozen=True)
class _Requirement:
    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!":
            return self.key not in labels
        if self.op in ("=", "in"):
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values


@dataclass
class _Route:
    pattern: re.Pattern[str]
    resource: str
    methods: dict[str, tuple[str, Callable[[_Request], Any]]]


@dataclass
class _Request:
    http: web.Request
    verb: str
    resource: str
    namespace: str | None
    name: str | None
    query: dict[str, str]
    body: Any
    content_type: str | None


Listener = Callable[[str, dict[str, Any]], None]


class FakeKubernetes(StandIn):
    """The Kubernetes API stand-in. Use ``async with FakeKubernetes() as k8s: ...``."""

    def __init__(
        self,
        *,
        token: str = "fake-k8s-token",  # noqa: S107 - a fake token for the fake
        tick_interval: float | None = None,
        clock: Callable[[], float] = time.time,
        seed: int = 0,
        node_name: str = "fake-node-1",
        max_events: int = 1000,
    ) -> None:
        self.token = token
        self.tick_interval = tick_interval
        self.node_name = node_name
        self.max_events = max_events
        self._clock = clock
        self._random = random.Random(seed)

        self.calls: list[Call] = []
        self.on_change: list[Listener] = []
        self.ticks = 0

        self._namespaces: dict[str, dict[str, Any]] = {}
        self._store: dict[str, dict[tuple[str, str], dict[str, Any]]] = {r: {} for r in _STORED}
        self._pods: dict[str, _PodSim] = {}
        self._behaviours: dict[str, ImageBehaviour] = {}
        self._faults: list[_Fault] = []
        self._watches: list[_Watch] = []
        self._rv = 1000
        self._next_ip = 10
        self._seeding = False

        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._routes = self._build_routes()

        self.add_namespace("default")
        self.add_namespace("kube-system")

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Serve on 127.0.0.1 on a free port (and start ticking if ``tick_interval`` is set)."""
        if self._runner is not None:
            return
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner, self._port = await serve_on_loopback(app)
        if self.tick_interval is not None:
            self._ticker = asyncio.create_task(self._tick_forever(self.tick_interval))

    async def stop(self) -> None:
        self._stopping.set()
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        for watch in list(self._watches):
            watch.queue.put_nowait(None)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def url(self) -> str:
        """The API server address (``host`` for ``kubernetes_asyncio`` ``Configuration``)."""
        if self._port is None:
            raise RuntimeError("FakeKubernetes is not started")
        return f"http://127.0.0.1:{self._port}"

    def write_kubeconfig(
        self, path: str | Path, *, namespace: str = "default", context: str = "fake"
    ) -> Path:
        """Write a kubeconfig (token auth, plain HTTP) pointing at this stand-in; returns it."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": f"{context}-user", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": context,
                    "context": {
                        "cluster": context,
                        "user": f"{context}-user",
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": context,
        }
        out = Path(path)
        out.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        out.chmod(0o600)
        return out

    # ------------------------------------------------------------------ seeding / knobs

    def add_namespace(
        self, name: str, *, labels: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Create a namespace (idempotent); returns a copy of it."""
        if name not in self._namespaces:
            ns = {
                "kind": "Namespace",
                "apiVersion": "v1",
                "metadata": {
                    "name": name,
                    "uid": self._uid(),
                    "creationTimestamp": _rfc3339(self._clock()),
                    "labels": {"kubernetes.io/metadata.name": name, **(labels or {})},
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }
            self._commit("namespaces", ns, "ADDED")
        return copy.deepcopy(self._namespaces[name])

    def add_deployment(
        self,
        namespace: str,
        name: str,
        image: str,
        *,
        replicas: int = 2,
        labels: Mapping[str, str] | None = None,
        history: Iterable[str] = (),
        container: str = "app",
        annotations: Mapping[str, str] | None = None,
        strategy: Mapping[str, Any] | None = None,
        age: float = 3600.0,
    ) -> dict[str, Any]:
        """Seed a rolled-out Deployment plus its ReplicaSet history and running pods.

        ``age``: seconds since the current revision went out; each earlier one went out an hour
        before the next.

        ``history`` lists earlier images, oldest first: each gets a scaled-to-zero ReplicaSet
        with revisions 1..n, the current ``image`` gets revision n+1 and ``replicas`` pods
        (already running and, unless the image crash-loops, ready). Returns a copy.
        """
        self.add_namespace(namespace)
        if (namespace, name) in self._store["deployments"]:
            raise ValueError(f"deployment {namespace}/{name} already exists")
        images = [*history, image]
        if len(set(images)) != len(images):
            raise ValueError("history images must differ from each other and from the image")
        labels = dict(labels or {"app": name})
        now = self._clock()

        def template(img: str) -> dict[str, Any]:
            return _default_template(
                {
                    "metadata": {"labels": dict(labels)},
                    "spec": {"containers": [{"name": container, "image": img}]},
                }
            )

        spec: dict[str, Any] = {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": template(image),
        }
        if strategy is not None:
            spec["strategy"] = copy.deepcopy(dict(strategy))
        dep: dict[str, Any] = {
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": self._uid(),
                "generation": len(images),
                "creationTimestamp": _rfc3339(now - age - 3600 * (len(images) - 1)),
                "labels": dict(labels),
                "annotations": {**(annotations or {}), REVISION: str(len(images))},
            },
            "spec": _default_deployment_spec(spec),
            "status": {},
        }
        self._check_deployment_spec(name, dep["spec"], None)
        self._commit("deployments", dep, "ADDED")
        for i, img in enumerate(images):
            rs = self._new_replicaset(
                dep, template(img), i + 1, created=now - age - 3600 * (len(images) - 1 - i)
            )
            rs["spec"]["replicas"] = replicas if i == len(images) - 1 else 0
            self._commit("replicasets", rs, "ADDED")
        self._seeding = True
        try:
            self.reconcile()
        finally:
            self._seeding = False
        return self.deployment(namespace, name)

    def set_image(
        self, namespace: str, name: str, image: str, *, container: str | None = None
    ) -> dict[str, Any]:
        """Change a container image as ``kubectl set image`` would (a new rollout on next tick)."""
        dep = self._get("deployments", namespace, name)
        new = copy.deepcopy(dep)
        containers = new["spec"]["template"]["spec"]["containers"]
        target = next((c for c in containers if container in (None, c["name"])), None)
        if target is None:
            raise KeyError(container)
        target["image"] = image
        return copy.deepcopy(self._write_deployment(dep, new, dry_run=False))

    def pause(self, namespace: str, name: str, *, paused: bool = True) -> dict[str, Any]:
        """`kubectl rollout pause` (or `resume` with ``paused=False``)."""
        dep = self._get("deployments", namespace, name)
        new = copy.deepcopy(dep)
        new["spec"]["paused"] = paused
        return copy.deepcopy(self._write_deployment(dep, new, dry_run=False))

    def annotate_replicaset(self, namespace: str, name: str, key: str, value: str) -> None:
        """Set one annotation of a ReplicaSet (e.g. an unreadable revision number)."""
        rs = copy.deepcopy(self._get("replicasets", namespace, name))
        rs["metadata"].setdefault("annotations", {})[key] = value
        self._commit("replicasets", rs)

    def set_image_behaviour(
        self,
        image: str,
        *,
        crashloop: bool = False,
        ready_after: int = 0,
        logs: Iterable[str] | None = None,
        exit_code: int = 1,
        crash_message: str | None = None,
    ) -> None:
        """Decide how pods running ``image`` (exact string) behave from the next tick on.

        ``crashloop``: containers crash every tick (``CrashLoopBackOff``, never ready);
        ``ready_after``: healthy containers turn ready after that many ticks (0 = at once);
        ``logs``: the lines each container instance writes when it starts.
        """
        behaviour = ImageBehaviour(
            crashloop=crashloop,
            ready_after=max(0, ready_after),
            logs=list(logs) if logs is not None else None,
            exit_code=exit_code,
        )
        if crash_message is not None:
            behaviour.crash_message = crash_message
        self._behaviours[image] = behaviour

    def append_log(
        self, namespace: str, pod: str, line: str, *, container: str | None = None
    ) -> None:
        """Add a line to a pod container's current log."""
        sim = self._pod_sim(namespace, pod)
        c = next((c for c in sim.containers if container in (None, c.name)), None)
        if c is None:
            raise KeyError(container)
        c.log.append((self._clock(), line))

    def fail(
        self,
        resource: str = "*",
        *,
        verb: str = "*",
        name: str | None = None,
        namespace: str | None = None,
        status: int | None = 500,
        retry_after: int = 1,
        message: str | None = None,
        delay: float = 0.0,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` matching requests fail.

        ``resource`` as in :attr:`Call.resource` (``"deployments"``, ``"deployments/scale"``,
        ``"pods/log"``...; ``"*"`` any), ``verb`` a Kubernetes verb (``"patch"``...). ``status``
        is answered with the matching ``Status`` object (429 adds ``Retry-After``, 409 is the
        stale-object Conflict); ``delay`` seconds are waited first; ``status=None`` with a delay
        makes a slow but otherwise normal answer.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        self._faults.extend(
            _Fault(resource, verb, name, namespace, status, retry_after, message, delay)
            for _ in range(times)
        )

    def calls_to(self, resource: str, verb: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.resource == resource and verb in (None, c.verb)]

    def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        """A copy of the stored Deployment (``KeyError`` if absent)."""
        return copy.deepcopy(self._get("deployments", namespace, name))

    def replicasets(self, namespace: str, deployment: str | None = None) -> list[dict[str, Any]]:
        """Copies of the namespace's ReplicaSets (of one Deployment), lowest revision first."""
        if deployment is not None:
            items = self._owned_replicasets(self._get("deployments", namespace, deployment))
        else:
            items = [o for (n, _), o in self._store["replicasets"].items() if n == namespace]
        return [copy.deepcopy(rs) for rs in sorted(items, key=_revision)]

    def pods(self, namespace: str, deployment: str | None = None) -> list[dict[str, Any]]:
        """Copies of the namespace's pods (of one Deployment's ReplicaSets), by name."""
        if deployment is not None:
            owners = {
                rs["metadata"]["uid"]
                for rs in self._owned_replicasets(self._get("deployments", namespace, deployment))
            }
            items = [p for p in self._all("pods", namespace) if _controller_uid(p) in owners]
        else:
            items = self._all("pods", namespace)
        return [copy.deepcopy(p) for p in items]

    def events(self, namespace: str, involved: str | None = None) -> list[dict[str, Any]]:
        """Copies of the namespace's events (about one object name), oldest first."""
        items = [
            e
            for e in self._all("events", namespace)
            if involved in (None, e["involvedObject"]["name"])
        ]
        items.sort(key=lambda e: (e["lastTimestamp"], int(e["metadata"]["resourceVersion"])))
        return [copy.deepcopy(e) for e in items]

    def rollout_status(self, namespace: str, name: str) -> RolloutStatus:
        """``kubectl rollout status`` (``DeploymentStatusViewer.Status``) for the stored object."""
        d = self._get("deployments", namespace, name)
        status = d.get("status", {})
        if d["metadata"].get("generation", 0) > status.get("observedGeneration", 0):
            return RolloutStatus(
                False, False, "Waiting for deployment spec update to be observed..."
            )
        cond = _condition(d, "Progressing")
        if cond is not None and cond.get("reason") == "ProgressDeadlineExceeded":
            return RolloutStatus(False, True, f'deployment "{name}" exceeded its progress deadline')
        desired = int(d["spec"].get("replicas", 1))
        updated = status.get("updatedReplicas", 0)
        replicas = status.get("replicas", 0)
        available = status.get("availableReplicas", 0)
        prefix = f'Waiting for deployment "{name}" rollout to finish: '
        if updated < desired:
            msg = f"{updated} out of {desired} new replicas have been updated..."
            return RolloutStatus(False, False, prefix + msg)
        if replicas > updated:
            msg = f"{replicas - updated} old replicas are pending termination..."
            return RolloutStatus(False, False, prefix + msg)
        if available < updated:
            msg = f"{available} of {updated} updated replicas are available..."
            return RolloutStatus(False, False, prefix + msg)
        return RolloutStatus(True, False, f'deployment "{name}" successfully rolled out')

    # ------------------------------------------------------------------ simulation

    def tick(self, n: int = 1) -> None:
        """Advance the simulation ``n`` steps: containers age or crash, then controllers sync."""
        for _ in range(n):
            self.ticks += 1
            self._age_pods()
            self.reconcile()

    def reconcile(self) -> None:
        """Run the controllers until nothing changes (no time passes)."""
        for _ in range(_MAX_SYNC_ROUNDS):
            changed = False
            for rs in list(self._store["replicasets"].values()):
                changed |= self._sync_replicaset(rs)
            for dep in list(self._store["deployments"].values()):
                changed |= self._sync_deployment(dep)
            if not changed:
                return
        log.warning("fake kubernetes: controllers did not settle in %d rounds", _MAX_SYNC_ROUNDS)

    async def _tick_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                self.tick()
            except Exception:
                log.exception("fake kubernetes tick failed")

    def _behaviour(self, image: str) -> ImageBehaviour:
        return self._behaviours.get(image) or ImageBehaviour()

    def _owned_replicasets(self, dep: dict[str, Any]) -> list[dict[str, Any]]:
        uid = dep["metadata"]["uid"]
        return [
            rs
            for rs in self._all("replicasets", dep["metadata"]["namespace"])
            if _controller_uid(rs) == uid
        ]

    def _owned_pods(self, rs: dict[str, Any]) -> list[dict[str, Any]]:
        uid = rs["metadata"]["uid"]
        return [
            p for p in self._all("pods", rs["metadata"]["namespace"]) if _controller_uid(p) == uid
        ]

    def _sync_deployment(self, dep: dict[str, Any]) -> bool:
        before = copy.deepcopy(dep)
        spec = dep["spec"]
        desired = int(spec.get("replicas", 1))
        paused = bool(spec.get("paused"))
        owned = self._owned_replicasets(dep)
        new_rs = next(
            (rs for rs in owned if _equal_ignore_hash(rs["spec"]["template"], spec["template"])),
            None,
        )
        old = [rs for rs in owned if rs is not new_rs]
        new_revision = max((_revision(rs) for rs in old), default=0) + 1
        now = self._clock()
        changed = False
        progressing: tuple[str, str] | None = None

        if new_rs is None and not paused:
            new_rs = self._new_replicaset(dep, spec["template"], new_revision, created=now)
            self._commit("replicasets", new_rs, "ADDED")
            changed = True
            progressing = ("NewReplicaSetCreated", f'Created new replica set "{_name(new_rs)}"')
        elif new_rs is not None and _revision(new_rs) < new_revision:
            rs_before = copy.deepcopy(new_rs)
            ann = new_rs["metadata"].setdefault("annotations", {})
            old_revision = ann.get(REVISION)
            if old_revision:
                history = [h for h in ann.get(REVISION_HISTORY, "").split(",") if h]
                ann[REVISION_HISTORY] = ",".join([*history, old_revision])
            ann[REVISION] = str(new_revision)
            changed |= self._save("replicasets", rs_before, new_rs)
            progressing = ("FoundNewReplicaSet", f'Found new replica set "{_name(new_rs)}"')

        ann = dep["metadata"].setdefault("annotations", {})
        if new_rs is not None:
            ann[REVISION] = new_rs["metadata"]["annotations"][REVISION]
            max_surge, _ = _fenceposts(dep)
            for rs in [new_rs, *old]:
                rs_before = copy.deepcopy(rs)
                rs_ann = rs["metadata"].setdefault("annotations", {})
                if rs is new_rs or int(rs["spec"].get("replicas", 0)) > 0:
                    rs_ann[DESIRED_REPLICAS] = str(desired)
                    rs_ann[MAX_REPLICAS] = str(desired + max_surge)
                changed |= self._save("replicasets", rs_before, rs)
            if not paused:
                changed |= self._rollout(dep, new_rs, old)
        if paused:  # no rollout while paused, but scaling still applies (to the newest active RS)
            active = [rs for rs in owned if int(rs["spec"].get("replicas", 0)) > 0]
            target = new_rs or max(active, key=_revision, default=None)
            if target is not None:
                changed |= self._scale_rs(dep, target, desired)
        changed |= self._cleanup_history(dep, new_rs, old)

        owned = self._owned_replicasets(dep)
        self._set_deployment_status(dep, new_rs, owned, before, progressing, now)
        if dep != before:
            self._save("deployments", before, dep)
            changed = True
        return changed

    def _rollout(
        self, dep: dict[str, Any], new_rs: dict[str, Any], old: list[dict[str, Any]]
    ) -> bool:
        desired = int(dep["spec"].get("replicas", 1))
        strategy = dep["spec"].get("strategy", {})
        changed = False
        old = sorted(old, key=lambda rs: rs["metadata"]["creationTimestamp"])
        if strategy.get("type") == "Recreate":
            for rs in old:
                changed |= self._scale_rs(dep, rs, 0)
            if all(rs.get("status", {}).get("replicas", 0) == 0 for rs in old):
                changed |= self._scale_rs(dep, new_rs, desired)
            return changed

        max_surge, max_unavailable = _fenceposts(dep)
        all_rs = [new_rs, *old]
        new_spec = int(new_rs["spec"].get("replicas", 0))
        if new_spec > desired:
            changed |= self._scale_rs(dep, new_rs, desired)
        elif new_spec < desired:
            current = sum(int(rs["spec"].get("replicas", 0)) for rs in all_rs)
            room = desired + max_surge - current
            if room > 0:
                changed |= self._scale_rs(dep, new_rs, new_spec + min(room, desired - new_spec))

        # reconcileOldReplicaSets
        all_pods = sum(int(rs["spec"].get("replicas", 0)) for rs in all_rs)
        min_available = desired - max_unavailable
        new_unavailable = int(new_rs["spec"].get("replicas", 0)) - _available(new_rs)
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return changed
        cleaned = 0
        for rs in old:  # cleanupUnhealthyReplicas
            if cleaned >= max_scaled_down:
                break
            spec_replicas = int(rs["spec"].get("replicas", 0))
            unhealthy = spec_replicas - _available(rs)
            if spec_replicas == 0 or unhealthy <= 0:
                continue
            down = min(max_scaled_down - cleaned, unhealthy)
            changed |= self._scale_rs(dep, rs, spec_replicas - down)
            cleaned += down
        available = sum(_available(rs) for rs in all_rs)
        if available <= min_available:
            return changed
        total_down = available - min_available
        scaled = 0
        for rs in old:  # scaleDownOldReplicaSetsForRollingUpdate
            if scaled >= total_down:
                break
            spec_replicas = int(rs["spec"].get("replicas", 0))
            if spec_replicas == 0:
                continue
            down = min(spec_replicas, total_down - scaled)
            changed |= self._scale_rs(dep, rs, spec_replicas - down)
            scaled += down
        return changed

    def _scale_rs(self, dep: dict[str, Any], rs: dict[str, Any], replicas: int) -> bool:
        current = int(rs["spec"].get("replicas", 0))
        if current == replicas:
            return False
        before = copy.deepcopy(rs)
        rs["spec"]["replicas"] = replicas
        rs["metadata"]["generation"] = int(rs["metadata"].get("generation", 1)) + 1
        self._save("replicasets", before, rs)
        direction = "up" if replicas > current else "down"
        self._event(
            dep,
            "ScalingReplicaSet",
            f"Scaled {direction} replica set {_name(rs)} from {current} to {replicas}",
            component="deployment-controller",
        )
        return True

    def _cleanup_history(
        self, dep: dict[str, Any], new_rs: dict[str, Any] | None, old: list[dict[str, Any]]
    ) -> bool:
        limit = dep["spec"].get("revisionHistoryLimit", 10)
        idle = [
            rs
            for rs in old
            if rs is not new_rs
            and int(rs["spec"].get("replicas", 0)) == 0
            and not self._owned_pods(rs)
        ]
        idle.sort(key=_revision)
        excess = len(idle) - int(limit)
        for rs in idle[: max(0, excess)]:
            self._remove("replicasets", rs["metadata"]["namespace"], _name(rs))
        return excess > 0

    def _set_deployment_status(
        self,
        dep: dict[str, Any],
        new_rs: dict[str, Any] | None,
        owned: list[dict[str, Any]],
        before: dict[str, Any],
        progressing: tuple[str, str] | None,
        now: float,
    ) -> None:
        spec = dep["spec"]
        desired = int(spec.get("replicas", 1))
        old_status = before.get("status", {})
        total_spec = sum(int(rs["spec"].get("replicas", 0)) for rs in owned)
        counts = {
            "observedGeneration": int(dep["metadata"].get("generation", 1)),
            "replicas": sum(rs.get("status", {}).get("replicas", 0) for rs in owned),
            "updatedReplicas": (new_rs or {}).get("status", {}).get("replicas", 0),
            "readyReplicas": sum(rs.get("status", {}).get("readyReplicas", 0) for rs in owned),
            "availableReplicas": sum(_available(rs) for rs in owned),
        }
        counts["unavailableReplicas"] = max(0, total_spec - counts["availableReplicas"])
        status: dict[str, Any] = {k: v for k, v in counts.items() if v}
        conditions = copy.deepcopy(old_status.get("conditions", []))
        _, max_unavailable = _fenceposts(dep)
        if counts["availableReplicas"] >= desired - max_unavailable:
            _set_condition(
                conditions,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                now,
            )
        else:
            _set_condition(
                conditions,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                now,
            )
        rs_name = _name(new_rs) if new_rs is not None else ""
        complete = (
            counts["updatedReplicas"] == desired
            and counts["replicas"] == desired
            and counts["availableReplicas"] == desired
        )
        current = next((c for c in conditions if c["type"] == "Progressing"), None)
        if spec.get("paused"):
            _set_condition(
                conditions,
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused",
                now,
            )
        elif progressing is not None:
            _set_condition(conditions, "Progressing", "True", *progressing, now, touch=True)
        elif new_rs is not None and complete:
            _set_condition(
                conditions,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
                now,
                touch=current is None or current.get("reason") != "NewReplicaSetAvailable",
            )
        elif new_rs is not None and _progressed(old_status, status):
            _set_condition(
                conditions,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                f'ReplicaSet "{rs_name}" is progressing.',
                now,
                touch=True,
            )
        elif (
            new_rs is not None
            and current is not None
            and current.get("reason") not in ("NewReplicaSetAvailable", "ProgressDeadlineExceeded")
            and "progressDeadlineSeconds" in spec
            and now > _parse_time(current["lastUpdateTime"]) + int(spec["progressDeadlineSeconds"])
        ):
            _set_condition(
                conditions,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
                now,
                touch=True,
            )
        conditions.sort(key=lambda c: 0 if c["type"] == "Available" else 1)
        if conditions:
            status["conditions"] = conditions
        if "collisionCount" in old_status:
            status["collisionCount"] = old_status["collisionCount"]
        dep["status"] = status

    def _sync_replicaset(self, rs: dict[str, Any]) -> bool:
        """The ReplicaSet controller: create/delete pods, then compute the RS status."""
        changed = False
        pods = self._owned_pods(rs)
        want = int(rs["spec"].get("replicas", 0))
        if len(pods) < want:
            for _ in range(want - len(pods)):
                self._create_pod(rs)
            changed = True
        elif len(pods) > want:
            victims = sorted(
                pods,
                key=lambda p: (self._pods[p["metadata"]["uid"]].ready, _neg_created(p)),
            )[: len(pods) - want]
            for pod in victims:
                self._remove("pods", pod["metadata"]["namespace"], _name(pod))
                self._event(rs, "SuccessfulDelete", f"Deleted pod: {_name(pod)}")
            changed = True
        pods = self._owned_pods(rs)
        ready = sum(1 for p in pods if self._pods[p["metadata"]["uid"]].ready)
        counts = {
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": int(rs["metadata"].get("generation", 1)),
        }
        status: dict[str, Any] = {"replicas": len(pods)}
        status.update({k: v for k, v in counts.items() if v})
        if status != rs.get("status"):
            before = copy.deepcopy(rs)
            rs["status"] = status
            self._save("replicasets", before, rs)
            changed = True
        return changed

    def _create_pod(self, rs: dict[str, Any]) -> None:
        ns = rs["metadata"]["namespace"]
        template = rs["spec"]["template"]
        name = f"{_name(rs)}-{self._suffix(5)}"
        while (ns, name) in self._store["pods"]:
            name = f"{_name(rs)}-{self._suffix(5)}"
        uid = self._uid()
        now = self._clock()
        meta: dict[str, Any] = {
            "name": name,
            "generateName": f"{_name(rs)}-",
            "namespace": ns,
            "uid": uid,
            "creationTimestamp": _rfc3339(now),
            "labels": dict(template.get("metadata", {}).get("labels", {})),
            "ownerReferences": [_owner_ref("ReplicaSet", rs)],
        }
        if template.get("metadata", {}).get("annotations"):
            meta["annotations"] = dict(template["metadata"]["annotations"])
        spec = copy.deepcopy(template.get("spec", {}))
        spec.setdefault("serviceAccountName", "default")
        spec["nodeName"] = self.node_name
        spec.setdefault("priority", 0)
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        self._next_ip += 1
        ip = f"10.244.{self._next_ip // 250}.{self._next_ip % 250 + 2}"
        sims = []
        for c in spec.get("containers", []):
            sim = _ContainerSim(
                name=c["name"],
                image=c.get("image", ""),
                started=now,
                container_id=f"containerd://{self._random.getrandbits(256):064x}",
            )
            behaviour = self._behaviour(sim.image)
            sim.log = self._startup_log(sim, behaviour, now)
            if behaviour.crashloop:
                self._crash(sim, behaviour, now)
            elif self._seeding:
                sim.healthy_ticks = behaviour.ready_after
            sims.append(sim)
        self._pods[uid] = _PodSim(containers=sims, ready_since=now, ip=ip)
        pod = {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec, "status": {}}
        self._refresh_pod(pod, now)
        self._commit("pods", pod, "ADDED")
        self._event(rs, "SuccessfulCreate", f"Created pod: {name}")
        self._event(
            pod,
            "Scheduled",
            f"Successfully assigned {ns}/{name} to {self.node_name}",
            component="default-scheduler",
        )
        for sim in sims:
            path = f"spec.containers{{{sim.name}}}"
            self._event(
                pod,
                "Pulled",
                f'Container image "{sim.image}" already present on machine',
                field_path=path,
            )
            self._event(pod, "Created", f"Created container: {sim.name}", field_path=path)
            self._event(pod, "Started", f"Started container {sim.name}", field_path=path)

    def _startup_log(
        self, sim: _ContainerSim, behaviour: ImageBehaviour, now: float
    ) -> list[tuple[float, str]]:
        if behaviour.logs is not None:
            lines = list(behaviour.logs)
        else:
            lines = [f"Starting {sim.name} ({sim.image})"]
            if behaviour.crashloop:
                lines += ["ERROR Application run failed", behaviour.crash_message]
            else:
                lines += ["Listening on port 8080", "Started in 2.1 seconds"]
        return [(now, line) for line in lines]

    def _crash(self, sim: _ContainerSim, behaviour: ImageBehaviour, now: float) -> None:
        sim.previous_log = sim.log
        sim.log = self._startup_log(sim, behaviour, now)
        sim.restarts += 1
        sim.crashing = True
        sim.healthy_ticks = 0
        sim.finished = now

    def _age_pods(self) -> None:
        now = self._clock()
        for pod in list(self._store["pods"].values()):
            sim = self._pods[pod["metadata"]["uid"]]
            for c in sim.containers:
                behaviour = self._behaviour(c.image)
                if behaviour.crashloop:
                    self._crash(c, behaviour, now)
                    self._event(
                        pod,
                        "BackOff",
                        f"Back-off restarting failed container {c.name} in pod "
                        f"{_name(pod)}_{pod['metadata']['namespace']}({pod['metadata']['uid']})",
                        type_="Warning",
                        field_path=f"spec.containers{{{c.name}}}",
                    )
                elif c.crashing:
                    c.crashing = False
                    c.started = now
                    c.previous_log = c.log
                    c.log = self._startup_log(c, behaviour, now)
                else:
                    c.healthy_ticks += 1
            before = copy.deepcopy(pod)
            self._refresh_pod(pod, now)
            self._save("pods", before, pod)

    def _refresh_pod(self, pod: dict[str, Any], now: float) -> None:
        sim = self._pods[pod["metadata"]["uid"]]
        statuses = []
        unready = []
        for c in sim.containers:
            behaviour = self._behaviour(c.image)
            ready = not c.crashing and c.healthy_ticks >= behaviour.ready_after
            if not ready:
                unready.append(c.name)
            cs: dict[str, Any] = {
                "name": c.name,
                "state": {},
                "lastState": {},
                "ready": ready,
                "restartCount": c.restarts,
                "image": c.image,
                "imageID": f"{c.image}@sha256:{hashlib.sha256(c.image.encode()).hexdigest()}",
                "containerID": c.container_id,
                "started": not c.crashing,
            }
            if c.crashing:
                backoff = min(10 * 2 ** max(0, c.restarts - 1), 300)
                meta = pod["metadata"]
                cs["state"] = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off {_go_duration(backoff)} restarting failed "
                        f"container={c.name} pod={meta['name']}_{meta['namespace']}({meta['uid']})",
                    }
                }
            else:
                cs["state"] = {"running": {"startedAt": _rfc3339(c.started)}}
            if c.finished is not None:
                cs["lastState"] = {
                    "terminated": {
                        "exitCode": behaviour.exit_code if c.crashing else 1,
                        "reason": "Error",
                        "startedAt": _rfc3339(c.finished),
                        "finishedAt": _rfc3339(c.finished),
                        "containerID": c.container_id,
                    }
                }
            statuses.append(cs)
        ready = not unready
        if ready != sim.ready:
            sim.ready = ready
            sim.ready_since = now
        created = pod["metadata"]["creationTimestamp"]
        ready_at = _rfc3339(sim.ready_since)

        def cond(type_: str, ok: bool, at: str) -> dict[str, Any]:
            c: dict[str, Any] = {
                "type": type_,
                "status": "True" if ok else "False",
                "lastProbeTime": None,
                "lastTransitionTime": at,
            }
            if not ok:
                c["reason"] = "ContainersNotReady"
                c["message"] = f"containers with unready status: [{' '.join(unready)}]"
            return c

        pod["status"] = {
            "phase": "Running",
            "conditions": [
                cond("PodReadyToStartContainers", True, created),
                cond("Initialized", True, created),
                cond("Ready", ready, ready_at),
                cond("ContainersReady", ready, ready_at),
                cond("PodScheduled", True, created),
            ],
            "hostIP": "10.0.0.10",
            "hostIPs": [{"ip": "10.0.0.10"}],
            "podIP": sim.ip,
            "podIPs": [{"ip": sim.ip}],
            "startTime": created,
            "containerStatuses": statuses,
            "qosClass": "BestEffort",
        }

    def _new_replicaset(
        self, dep: dict[str, Any], template: dict[str, Any], revision: int, *, created: float
    ) -> dict[str, Any]:
        pod_hash = _template_hash(template)
        name = f"{dep['metadata']['name']}-{pod_hash}"
        tmpl = copy.deepcopy(template)
        tmpl.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = copy.deepcopy(dep["spec"]["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        desired = int(dep["spec"].get("replicas", 1))
        max_surge, _ = _fenceposts(dep)
        annotations = {
            k: v
            for k, v in dep["metadata"].get("annotations", {}).items()
            if k not in _CONTROLLER_ANNOTATIONS
        }
        annotations.update(
            {
                DESIRED_REPLICAS: str(desired),
                MAX_REPLICAS: str(desired + max_surge),
                REVISION: str(revision),
            }
        )
        spec: dict[str, Any] = {"replicas": 0, "selector": selector, "template": tmpl}
        if dep["spec"].get("minReadySeconds"):
            spec["minReadySeconds"] = dep["spec"]["minReadySeconds"]
        return {
            "kind": "ReplicaSet",
            "apiVersion": "apps/v1",
            "metadata": {
                "name": name,
                "namespace": dep["metadata"]["namespace"],
                "uid": self._uid(),
                "generation": 1,
                "creationTimestamp": _rfc3339(created),
                "labels": dict(tmpl["metadata"]["labels"]),
                "annotations": annotations,
                "ownerReferences": [_owner_ref("Deployment", dep)],
            },
            "spec": spec,
            "status": {"replicas": 0},
        }

    def _event(
        self,
        obj: dict[str, Any],
        reason: str,
        message: str,
        *,
        type_: str = "Normal",
        component: str | None = None,
        field_path: str | None = None,
    ) -> None:
        kind = obj["kind"]
        component = component or {
            "Deployment": "deployment-controller",
            "ReplicaSet": "replicaset-controller",
            "Pod": "kubelet",
        }.get(kind, "fake")
        meta = obj["metadata"]
        ns = meta["namespace"]
        now = _rfc3339(self._clock())
        for existing in self._all("events", ns):
            io = existing["involvedObject"]
            if (
                io.get("uid") == meta["uid"]
                and existing["reason"] == reason
                and existing["message"] == message
            ):
                before = copy.deepcopy(existing)
                existing["count"] = int(existing.get("count", 1)) + 1
                existing["lastTimestamp"] = now
                self._save("events", before, existing)
                return
        involved: dict[str, Any] = {
            "kind": kind,
            "namespace": ns,
            "name": meta["name"],
            "uid": meta["uid"],
            "apiVersion": obj["apiVersion"],
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if field_path:
            involved["fieldPath"] = field_path
        source: dict[str, Any] = {"component": component}
        if component == "kubelet":
            source["host"] = self.node_name
        event = {
            "kind": "Event",
            "apiVersion": "v1",
            "metadata": {
                "name": f"{meta['name']}.{self._random.getrandbits(64):016x}",
                "namespace": ns,
                "uid": self._uid(),
                "creationTimestamp": now,
            },
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": type_,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": self.node_name if component == "kubelet" else "",
        }
        self._commit("events", event, "ADDED")
        events = self._store["events"]
        if len(events) > self.max_events:
            oldest = min(events.values(), key=lambda e: int(e["metadata"]["resourceVersion"]))
            self._remove("events", oldest["metadata"]["namespace"], _name(oldest))

    # ------------------------------------------------------------------ storage

    def _uid(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    def _suffix(self, n: int) -> str:
        return "".join(self._random.choice(_SAFE_ALPHABET) for _ in range(n))

    def _all(self, resource: str, namespace: str | None) -> list[dict[str, Any]]:
        if resource == "namespaces":
            return [self._namespaces[k] for k in sorted(self._namespaces)]
        store = self._store[resource]
        return [store[k] for k in sorted(store) if namespace is None or k[0] == namespace]

    def _get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any]:
        if resource == "namespaces":
            return self._namespaces[name]
        return self._store[resource][(namespace or "", name)]

    def _pod_sim(self, namespace: str, pod: str) -> _PodSim:
        return self._pods[self._get("pods", namespace, pod)["metadata"]["uid"]]

    def _commit(self, resource: str, obj: dict[str, Any], type_: str = "MODIFIED") -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        if resource == "namespaces":
            self._namespaces[obj["metadata"]["name"]] = obj
        else:
            self._store[resource][(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
        self._emit(resource, type_, obj)

    def _save(self, resource: str, before: dict[str, Any], obj: dict[str, Any]) -> bool:
        """Commit ``obj`` if it differs from ``before``; True if it did."""
        if obj == before:
            return False
        self._commit(resource, obj)
        return True

    def _remove(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        obj = self._store[resource].pop((namespace, name))
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        if resource == "pods":
            self._pods.pop(obj["metadata"]["uid"], None)
        self._emit(resource, "DELETED", obj)
        return obj

    def _emit(self, resource: str, type_: str, obj: dict[str, Any]) -> None:
        for w in self._watches:
            if w.resource == resource and _matches(w, obj):
                w.queue.put_nowait((type_, copy.deepcopy(obj)))
        for listener in list(self.on_change):
            try:
                listener(type_, copy.deepcopy(obj))
            except Exception:
                log.exception("fake kubernetes on_change listener failed")

    # ------------------------------------------------------------------ HTTP plumbing

    def _build_routes(self) -> list[_Route]:
        ns = r"(?P<ns>[a-z0-9]([-a-z0-9]*[a-z0-9])?)"
        name = r"(?P<name>[^/]+)"
        apps = r"/apis/apps/v1"

        def route(path: str, resource: str, **methods: tuple[str, Any]) -> _Route:
            return _Route(re.compile(f"^{path}/?$"), resource, methods)

        return [
            route("/api", "discovery", GET=("get", self._h_api_versions)),
            route("/api/v1", "discovery", GET=("get", self._h_core_resources)),
            route("/apis", "discovery", GET=("get", self._h_api_groups)),
            route("/apis/apps", "discovery", GET=("get", self._h_apps_group)),
            route(apps, "discovery", GET=("get", self._h_apps_resources)),
            route("/api/v1/namespaces", "namespaces", GET=("list", self._h_list)),
            route(f"/api/v1/namespaces/{name}", "namespaces", GET=("get", self._h_get)),
            route(f"{apps}/deployments", "deployments", GET=("list", self._h_list)),
            route(f"{apps}/namespaces/{ns}/deployments", "deployments", GET=("list", self._h_list)),
            route(
                f"{apps}/namespaces/{ns}/deployments/{name}",
                "deployments",
                GET=("get", self._h_get),
                PUT=("update", self._h_put_deployment),
                PATCH=("patch", self._h_patch_deployment),
            ),
            route(
                f"{apps}/namespaces/{ns}/deployments/{name}/scale",
                "deployments/scale",
                GET=("get", self._h_get_scale),
                PUT=("update", self._h_put_scale),
                PATCH=("patch", self._h_patch_scale),
            ),
            route(
                f"{apps}/namespaces/{ns}/deployments/{name}/status",
                "deployments/status",
                GET=("get", self._h_get),
            ),
            route(f"{apps}/replicasets", "replicasets", GET=("list", self._h_list)),
            route(f"{apps}/namespaces/{ns}/replicasets", "replicasets", GET=("list", self._h_list)),
            route(
                f"{apps}/namespaces/{ns}/replicasets/{name}",
                "replicasets",
                GET=("get", self._h_get),
            ),
            route(
                f"{apps}/namespaces/{ns}/replicasets/{name}/status",
                "replicasets/status",
                GET=("get", self._h_get),
            ),
            route("/api/v1/pods", "pods", GET=("list", self._h_list)),
            route("/api/v1/namespaces/" + ns + "/pods", "pods", GET=("list", self._h_list)),
            route(
                f"/api/v1/namespaces/{ns}/pods/{name}",
                "pods",
                GET=("get", self._h_get),
                DELETE=("delete", self._h_delete_pod),
            ),
            route(
                f"/api/v1/namespaces/{ns}/pods/{name}/status",
                "pods/status",
                GET=("get", self._h_get),
            ),
            route(f"/api/v1/namespaces/{ns}/pods/{name}/log", "pods/log", GET=("get", self._h_log)),
            route("/api/v1/events", "events", GET=("list", self._h_list)),
            route(f"/api/v1/namespaces/{ns}/events", "events", GET=("list", self._h_list)),
            route(f"/api/v1/namespaces/{ns}/events/{name}", "events", GET=("get", self._h_get)),
        ]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        query = {k: v for k, v in request.query.items()}
        match: re.Match[str] | None = None
        route: _Route | None = None
        for r in self._routes:
            match = r.pattern.match(request.path)
            if match:
                route = r
                break
        groups = match.groupdict() if match else {}
        req = _Request(
            http=request,
            verb=request.method.lower(),
            resource=route.resource if route else "?",
            namespace=groups.get("ns"),
            name=groups.get("name"),
            query=query,
            body=None,
            content_type=request.content_type if request.body_exists else None,
        )
        try:
            if request.body_exists:
                raw = await request.read()
                try:
                    req.body = json.loads(raw) if raw.strip() else None
                except ValueError as e:
                    raise _ApiError(400, f"error decoding request body: {e}") from e
            if not self._authorised(request):
                raise _ApiError(401, "Unauthorized")
            if route is None:
                raise _ApiError(404, "the server could not find the requested resource")
            entry = route.methods.get(request.method)
            if entry is None:
                raise _ApiError(
                    405, "the server does not allow this method on the requested resource"
                )
            req.verb, handler = entry
            if req.verb == "list" and _flag(query.get("watch")):
                req.verb = "watch"
            fault = self._take_fault(req)
            if fault is not None:
                if fault.delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), fault.delay)
                if fault.status is not None:
                    raise self._fault_error(req, fault)
            if req.verb == "watch":
                return await self._watch(req)
            result = handler(req)
            if isinstance(result, web.StreamResponse):
                self._record(req, result.status)
                return result
            self._record(req, 200)
            return web.json_response(result)
        except _ApiError as e:
            self._record(req, e.code)
            log.debug("fake kubernetes %s %s -> %s", request.method, request.path, e.code)
            return web.json_response(e.status_object(), status=e.code, headers=e.headers)

    def _authorised(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        if not auth.lower().startswith("bearer "):
            return False
        return hmac.compare_digest(auth[7:].strip().encode(), self.token.encode())

    def _record(self, req: _Request, status: int) -> None:
        self.calls.append(
            Call(
                verb=req.verb,
                resource=req.resource,
                namespace=req.namespace,
                name=req.name,
                method=req.http.method,
                path=req.http.path,
                query=dict(req.query),
                body=req.body,
                content_type=req.content_type,
                status=status,
            )
        )

    def _take_fault(self, req: _Request) -> _Fault | None:
        for i, f in enumerate(self._faults):
            if (
                f.resource in ("*", req.resource)
                and f.verb in ("*", req.verb)
                and f.name in (None, req.name)
                and f.namespace in (None, req.namespace)
            ):
                return self._faults.pop(i)
        return None

    def _fault_error(self, req: _Request, fault: _Fault) -> _ApiError:
        code = int(fault.status or 500)
        resource = req.resource.split("/")[0]
        group = _RESOURCES.get(resource, ("", "", "", False))[0]
        qualified = f"{resource}.{group}" if group else resource
        details: dict[str, Any] = {}
        if req.name:
            details = {"name": req.name, "group": group, "kind": resource}
        if code == 429:
            return _ApiError(
                429,
                fault.message or "Too many requests, please try again later.",
                details={**details, "retryAfterSeconds": fault.retry_after},
                headers={"Retry-After": str(fault.retry_after)},
            )
        if code == 409:
            message = fault.message or (
                f'Operation cannot be fulfilled on {qualified} "{req.name}": the object has been '
                "modified; please apply your changes to the latest version and try again"
            )
            return _ApiError(409, message, details=details or None)
        if code == 403:
            message = fault.message or (
                f'{qualified} "{req.name}" is forbidden: User "system:serviceaccount:icbot:icbot" '
                f'cannot {req.verb} resource "{req.resource}" in API group "{group}" in the '
                f'namespace "{req.namespace}"'
            )
            return _ApiError(403, message, details=details or None)
        if code == 404:
            return _ApiError(
                404, fault.message or f'{qualified} "{req.name}" not found', details=details or None
            )
        if code == 500:
            text = fault.message or "injected fault"
            return _ApiError(
                500,
                f"Internal error occurred: {text}",
                details={**details, "causes": [{"message": text}]},
            )
        return _ApiError(code, fault.message or f"injected fault ({code})", details=details or None)

    # ------------------------------------------------------------------ handlers

    def _h_api_versions(self, req: _Request) -> dict[str, Any]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self._port}"}
            ],
        }

    def _h_api_groups(self, req: _Request) -> dict[str, Any]:
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_apps_group()]}

    def _h_apps_group(self, req: _Request) -> dict[str, Any]:
        return {"kind": "APIGroup", "apiVersion": "v1", **_apps_group()}

    def _h_core_resources(self, req: _Request) -> dict[str, Any]:
        return {
            "kind": "APIResourceList",
            "groupVersion": "v1",
            "resources": [
                _api_resource(
                    "namespaces", "namespace", "Namespace", ["get", "list"], False, ["ns"]
                ),
                _api_resource(
                    "pods", "pod", "Pod", ["delete", "get", "list", "watch"], True, ["po"]
                ),
                _api_resource("pods/log", "", "Pod", ["get"], True),
                _api_resource("pods/status", "", "Pod", ["get"], True),
                _api_resource("events", "event", "Event", ["get", "list", "watch"], True, ["ev"]),
            ],
        }

    def _h_apps_resources(self, req: _Request) -> dict[str, Any]:
        scale = _api_resource("deployments/scale", "", "Scale", ["get", "patch", "update"], True)
        scale.update(group="autoscaling", version="v1")
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": "apps/v1",
            "resources": [
                _api_resource(
                    "deployments",
                    "deployment",
                    "Deployment",
                    ["get", "list", "patch", "update", "watch"],
                    True,
                    ["deploy"],
                ),
                scale,
                _api_resource("deployments/status", "", "Deployment", ["get"], True),
                _api_resource(
                    "replicasets",
                    "replicaset",
                    "ReplicaSet",
                    ["get", "list", "watch"],
                    True,
                    ["rs"],
                ),
                _api_resource("replicasets/status", "", "ReplicaSet", ["get"], True),
            ],
        }

    def _resource(self, req: _Request) -> str:
        return req.resource.split("/")[0]

    def _h_get(self, req: _Request) -> dict[str, Any]:
        return self._lookup(self._resource(req), req.namespace, req.name or "")

    def _lookup(self, resource: str, namespace: str | None, name: str) -> dict[str, Any]:
        try:
            return self._get(resource, namespace, name)
        except KeyError:
            raise _not_found(resource, name) from None

    def _h_list(self, req: _Request) -> dict[str, Any]:
        resource = self._resource(req)
        group, version, kind, _ = _RESOURCES[resource]
        labels = _parse_label_selector(req.query.get("labelSelector", ""))
        fields = _parse_field_selector(resource, req.query.get("fieldSelector", ""))
        items = [
            o
            for o in self._all(resource, req.namespace)
            if all(r.matches(o["metadata"].get("labels", {})) for r in labels)
            and _fields_match(o, fields)
        ]
        start = _decode_continue(req.query.get("continue"))
        if start is not None:
            items = [o for o in items if _key(o) > start]
        meta: dict[str, Any] = {"resourceVersion": str(self._rv)}
        limit = _int_param(req.query, "limit")
        if limit and limit < len(items):
            meta["continue"] = _encode_continue(_key(items[limit - 1]), self._rv)
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return {
            "kind": f"{kind}List",
            "apiVersion": f"{group}/{version}" if group else version,
            "metadata": meta,
            "items": [_list_item(o) for o in items],
        }

    async def _watch(self, req: _Request) -> web.StreamResponse:
        resource = self._resource(req)
        watch = _Watch(
            resource=resource,
            namespace=req.namespace,
            labels=_parse_label_selector(req.query.get("labelSelector", "")),
            fields=_parse_field_selector(resource, req.query.get("fieldSelector", "")),
            queue=asyncio.Queue(),
        )
        timeout = float(_int_param(req.query, "timeoutSeconds") or 1800)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        self._record(req, 200)
        await resp.prepare(req.http)
        if req.query.get("resourceVersion", "") in ("", "0"):
            for obj in self._all(resource, req.namespace):
                if _matches(watch, obj):
                    watch.queue.put_nowait(("ADDED", copy.deepcopy(obj)))
        self._watches.append(watch)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(watch.queue.get(), remaining)
                except TimeoutError:
                    break
                if item is None:
                    break
                type_, obj = item
                line = json.dumps({"type": type_, "object": obj}) + "\n"
                await resp.write(line.encode())
        except ConnectionResetError:
            pass
        finally:
            if watch in self._watches:
                self._watches.remove(watch)
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
        return resp

    def _h_put_deployment(self, req: _Request) -> dict[str, Any]:
        cur = self._lookup("deployments", req.namespace, req.name or "")
        body = _object_body(req.body)
        _check_type(body, "apps/v1", "Deployment")
        meta = body.get("metadata") or {}
        if meta.get("name") not in (None, req.name):
            raise _ApiError(
                400,
                f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                f"({req.name})",
            )
        return self._write_deployment(cur, body, dry_run=_dry_run(req.query))

    def _h_patch_deployment(self, req: _Request) -> dict[str, Any]:
        cur = self._lookup("deployments", req.namespace, req.name or "")
        patched = _apply_patch(cur, req)
        return self._write_deployment(cur, patched, dry_run=_dry_run(req.query))

    def _write_deployment(
        self, cur: dict[str, Any], new: dict[str, Any], *, dry_run: bool
    ) -> dict[str, Any]:
        name = cur["metadata"]["name"]
        meta = new.get("metadata") or {}
        if not isinstance(meta, dict):
            raise _ApiError(400, "metadata must be an object")
        _check_identity(cur, meta, "deployments.apps")
        spec = new.get("spec")
        if not isinstance(spec, dict):
            raise _invalid("Deployment.apps", name, [("spec", "Required value")])
        spec = _default_deployment_spec(_prune_nulls(spec))
        self._check_deployment_spec(name, spec, cur["spec"])
        out = copy.deepcopy(cur)
        for key in ("labels", "annotations"):
            value = meta.get(key)
            if value:
                out["metadata"][key] = {str(k): str(v) for k, v in value.items()}
            else:
                out["metadata"].pop(key, None)
        if spec != cur["spec"]:
            out["spec"] = spec
            out["metadata"]["generation"] = int(cur["metadata"].get("generation", 1)) + 1
        if out == cur or dry_run:
            return out
        self._commit("deployments", out)
        return out

    def _check_deployment_spec(
        self, name: str, spec: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        causes: list[tuple[str, str]] = []
        replicas = spec.get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise _ApiError(
                400,
                "json: cannot unmarshal into Go struct field DeploymentSpec.spec.replicas of type "
                "int32",
            )
        if replicas < 0:
            causes.append(
                ("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")
            )
        selector = spec.get("selector")
        template = spec.get("template")
        if not isinstance(selector, dict) or not (
            selector.get("matchLabels") or selector.get("matchExpressions")
        ):
            causes.append(("spec.selector", "Required value"))
        elif not isinstance(template, dict):
            causes.append(("spec.template", "Required value"))
        else:
            labels = template.get("metadata", {}).get("labels", {}) or {}
            if not all(r.matches(labels) for r in _selector_requirements(selector)):
                causes.append(
                    (
                        "spec.template.metadata.labels",
                        f"Invalid value: {json.dumps(labels)}: `selector` does not match "
                        "template `labels`",
                    )
                )
            if old is not None and selector != old.get("selector"):
                causes.append(
                    ("spec.selector", f"Invalid value: {json.dumps(selector)}: field is immutable")
                )
            containers = (template.get("spec") or {}).get("containers")
            if not containers:
                causes.append(("spec.template.spec.containers", "Required value"))
            else:
                for i, c in enumerate(containers):
                    for key in ("name", "image"):
                        if not isinstance(c, dict) or not c.get(key):
                            causes.append(
                                (f"spec.template.spec.containers[{i}].{key}", "Required value")
                            )
        if causes:
            raise _invalid("Deployment.apps", name, causes)

    def _scale_of(self, dep: dict[str, Any]) -> dict[str, Any]:
        meta = dep["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"],
                "creationTimestamp": meta["creationTimestamp"],
            },
            "spec": {"replicas": int(dep["spec"].get("replicas", 1))},
            "status": {
                "replicas": int(dep.get("status", {}).get("replicas", 0)),
                "selector": _selector_string(dep["spec"]["selector"]),
            },
        }

    def _h_get_scale(self, req: _Request) -> dict[str, Any]:
        return self._scale_of(self._lookup("deployments", req.namespace, req.name or ""))

    def _h_put_scale(self, req: _Request) -> dict[str, Any]:
        dep = self._lookup("deployments", req.namespace, req.name or "")
        body = _object_body(req.body)
        _check_type(body, "autoscaling/v1", "Scale")
        return self._write_scale(dep, body, dry_run=_dry_run(req.query))

    def _h_patch_scale(self, req: _Request) -> dict[str, Any]:
        dep = self._lookup("deployments", req.namespace, req.name or "")
        patched = _apply_patch(self._scale_of(dep), req)
        return self._write_scale(dep, patched, dry_run=_dry_run(req.query))

    def _write_scale(
        self, dep: dict[str, Any], scale: dict[str, Any], *, dry_run: bool
    ) -> dict[str, Any]:
        name = dep["metadata"]["name"]
        meta = scale.get("metadata") or {}
        if not isinstance(meta, dict):
            raise _ApiError(400, "metadata must be an object")
        _check_identity(dep, meta, "deployments.apps")
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise _ApiError(
                400,
                "json: cannot unmarshal into Go struct field ScaleSpec.spec.replicas of type int32",
            )
        if replicas < 0:
            raise _invalid(
                "Scale.autoscaling",
                name,
                [
                    (
                        "spec.replicas",
                        f"Invalid value: {replicas}: must be greater than or equal to 0",
                    )
                ],
            )
        new = copy.deepcopy(dep)
        if replicas != dep["spec"].get("replicas"):
            new["spec"]["replicas"] = replicas
            new["metadata"]["generation"] = int(dep["metadata"].get("generation", 1)) + 1
            if not dry_run:
                self._commit("deployments", new)
        return self._scale_of(new)

    def _h_delete_pod(self, req: _Request) -> dict[str, Any]:
        pod = self._lookup("pods", req.namespace, req.name or "")
        if _dry_run(req.query):
            return copy.deepcopy(pod)
        removed = self._remove("pods", pod["metadata"]["namespace"], _name(pod))
        self._event(
            removed, "Killing", f"Stopping container {removed['spec']['containers'][0]['name']}"
        )
        out = copy.deepcopy(removed)
        out["metadata"]["deletionTimestamp"] = _rfc3339(self._clock())
        out["metadata"]["deletionGracePeriodSeconds"] = 30
        return out

    def _h_log(self, req: _Request) -> web.Response:
        pod = self._lookup("pods", req.namespace, req.name or "")
        sim = self._pods[pod["metadata"]["uid"]]
        names = [c.name for c in sim.containers]
        wanted = req.query.get("container")
        if wanted is None:
            if len(names) != 1:
                raise _ApiError(
                    400,
                    f"a container name must be specified for pod {_name(pod)}, choose one of: "
                    f"[{' '.join(names)}]",
                )
            wanted = names[0]
        c = next((c for c in sim.containers if c.name == wanted), None)
        if c is None:
            raise _ApiError(400, f"container {wanted} is not valid for pod {_name(pod)}")
        lines = c.log
        if _flag(req.query.get("previous")):
            if c.previous_log is None:
                raise _ApiError(
                    400,
                    f'previous terminated container "{c.name}" in pod "{_name(pod)}" not found',
                )
            lines = c.previous_log
        since = _int_param(req.query, "sinceSeconds")
        if since is not None:
            cutoff = self._clock() - since
            lines = [(t, s) for t, s in lines if t >= cutoff]
        tail = _int_param(req.query, "tailLines")
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        stamps = _flag(req.query.get("timestamps"))
        text = "".join((f"{_rfc3339_nano(t)} {s}\n" if stamps else f"{s}\n") for t, s in lines)
        limit = _int_param(req.query, "limitBytes")
        data = text.encode()
        if limit is not None and limit > 0:
            data = data[:limit]
        return web.Response(body=data, content_type="text/plain", charset="utf-8")


# ---------------------------------------------------------------------- object helpers


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rfc3339_nano(t: float) -> str:
    dt = datetime.fromtimestamp(t, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}000Z"


def _go_duration(seconds: int) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _parse_time(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _name(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["name"])


def _key(obj: dict[str, Any]) -> str:
    return f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"


def _neg_created(obj: dict[str, Any]) -> float:
    return -_parse_time(obj["metadata"]["creationTimestamp"])


def _revision(rs: dict[str, Any]) -> int:
    try:
        return int(rs["metadata"].get("annotations", {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _available(rs: dict[str, Any]) -> int:
    return int(rs.get("status", {}).get("availableReplicas", 0))


def _controller_uid(obj: dict[str, Any]) -> str | None:
    for ref in obj["metadata"].get("ownerReferences", []):
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _owner_ref(kind: str, owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _list_item(obj: dict[str, Any]) -> dict[str, Any]:
    """Items of typed lists carry no kind/apiVersion on the wire."""
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in obj.get("status", {}).get("conditions", []):
        if c.get("type") == type_:
            return dict(c)
    return None


def _set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: float,
    *,
    touch: bool = False,
) -> None:
    stamp = _rfc3339(now)
    current = next((c for c in conditions if c["type"] == type_), None)
    if current is None:
        conditions.append(
            {
                "type": type_,
                "status": status,
                "lastUpdateTime": stamp,
                "lastTransitionTime": stamp,
                "reason": reason,
                "message": message,
            }
        )
        return
    if current["status"] != status:
        current["lastTransitionTime"] = stamp
        touch = True
    if current.get("reason") != reason or current.get("message") != message:
        touch = True
    if touch:
        current.update(status=status, reason=reason, message=message, lastUpdateTime=stamp)


def _progressed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """DeploymentProgressing: updated/ready/available grew or old replicas shrank."""

    def get(s: dict[str, Any], k: str) -> int:
        return int(s.get(k, 0))

    old_old = get(old, "replicas") - get(old, "updatedReplicas")
    new_old = get(new, "replicas") - get(new, "updatedReplicas")
    return (
        get(new, "updatedReplicas") > get(old, "updatedReplicas")
        or new_old < old_old
        or get(new, "readyReplicas") > get(old, "readyReplicas")
        or get(new, "availableReplicas") > get(old, "availableReplicas")
    )


def _resolve(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        pct = float(value[:-1]) * total / 100
        return math.ceil(pct) if round_up else math.floor(pct)
    return int(value)


def _fenceposts(dep: dict[str, Any]) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) of a RollingUpdate Deployment, as the controller resolves them."""
    desired = int(dep["spec"].get("replicas", 1))
    strategy = dep["spec"].get("strategy", {})
    if strategy.get("type") == "Recreate":
        return 0, 0
    ru = strategy.get("rollingUpdate", {})
    surge = _resolve(ru.get("maxSurge", "25%"), desired, True)
    unavailable = _resolve(ru.get("maxUnavailable", "25%"), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, desired)


def _template_hash(template: dict[str, Any]) -> str:
    canonical = json.dumps(_without_hash(template), sort_keys=True, separators=(",", ":"))
    number = int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:8], "big")
    out = []
    for _ in range(10):
        number, digit = divmod(number, len(_SAFE_ALPHABET))
        out.append(_SAFE_ALPHABET[digit])
    return "".join(out)


def _without_hash(template: dict[str, Any]) -> dict[str, Any]:
    t = copy.deepcopy(template)
    labels = t.get("metadata", {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return t


def _equal_ignore_hash(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return _without_hash(a) == _without_hash(b)


def _default_template(template: dict[str, Any]) -> dict[str, Any]:
    """The API server's defaulting of a pod template (so templates compare like the real ones)."""
    t = copy.deepcopy(template)
    t.setdefault("metadata", {})
    spec = t.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for c in spec.get("containers", []) or []:
        if not isinstance(c, dict):
            continue
        image = str(c.get("image", ""))
        tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
        latest = image.endswith(":latest") or not tagged
        c.setdefault("resources", {})
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    return t


def _default_deployment_spec(spec: dict[str, Any]) -> dict[str, Any]:
    s = copy.deepcopy(spec)
    s.setdefault("replicas", 1)
    strategy = s.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = strategy.setdefault("rollingUpdate", {})
        ru.setdefault("maxUnavailable", "25%")
        ru.setdefault("maxSurge", "25%")
    s.setdefault("revisionHistoryLimit", 10)
    s.setdefault("progressDeadlineSeconds", 600)
    if isinstance(s.get("template"), dict):
        s["template"] = _default_template(s["template"])
    return s


def _prune_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune_nulls(v) for v in value]
    return value


def _api_resource(
    name: str,
    singular: str,
    kind: str,
    verbs: list[str],
    namespaced: bool,
    short: list[str] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name,
        "singularName": singular,
        "namespaced": namespaced,
        "kind": kind,
        "verbs": verbs,
    }
    if short:
        out["shortNames"] = short
    if "/" not in name and kind != "Namespace" and kind != "Event":
        out["categories"] = ["all"]
    return out


def _apps_group() -> dict[str, Any]:
    version = {"groupVersion": "apps/v1", "version": "v1"}
    return {"name": "apps", "versions": [version], "preferredVersion": dict(version)}


def _not_found(resource: str, name: str) -> _ApiError:
    group = _RESOURCES[resource][0]
    qualified = f"{resource}.{group}" if group else resource
    return _ApiError(
        404,
        f'{qualified} "{name}" not found',
        details={"name": name, "group": group, "kind": resource}
        if group
        else {
            "name": name,
            "kind": resource,
        },
    )


def _invalid(kind: str, name: str, causes: list[tuple[str, str]]) -> _ApiError:
    text = ", ".join(f"{f}: {m}" for f, m in causes)
    if len(causes) > 1:
        text = f"[{text}]"
    kind_name, _, group = kind.partition(".")
    return _ApiError(
        422,
        f'{kind} "{name}" is invalid: {text}',
        details={
            "name": name,
            "group": group,
            "kind": kind_name,
            "causes": [
                {
                    "reason": "FieldValueRequired"
                    if m == "Required value"
                    else "FieldValueInvalid",
                    "message": m,
                    "field": f,
                }
                for f, m in causes
            ],
        },
    )


def _check_identity(cur: dict[str, Any], meta: dict[str, Any], qualified: str) -> None:
    name = cur["metadata"]["name"]
    if meta.get("name") not in (None, name):
        raise _ApiError(400, f"the name of the object ({meta.get('name')}) does not match {name}")
    if meta.get("namespace") not in (None, cur["metadata"]["namespace"]):
        raise _ApiError(
            400,
            "the namespace of the provided object does not match the namespace sent on the request",
        )
    uid = meta.get("uid")
    if uid not in (None, "", cur["metadata"]["uid"]):
        raise _ApiError(
            409,
            f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
            f"{cur['metadata']['uid']}",
        )
    rv = meta.get("resourceVersion")
    if rv not in (None, "") and str(rv) != cur["metadata"]["resourceVersion"]:
        group = qualified.partition(".")[2]
        raise _ApiError(
            409,
            f'Operation cannot be fulfilled on {qualified} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again",
            details={"name": name, "group": group, "kind": qualified.partition(".")[0]},
        )


def _check_type(body: dict[str, Any], api_version: str, kind: str) -> None:
    if body.get("apiVersion") not in (None, "", api_version):
        raise _ApiError(
            400,
            f"the API version in the data ({body['apiVersion']}) does not match the expected API "
            f"version ({api_version})",
        )
    if body.get("kind") not in (None, "", kind):
        raise _ApiError(
            400, f"the kind in the data ({body['kind']}) does not match the expected kind ({kind})"
        )


def _object_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _ApiError(400, "the body of the request must be a JSON object")
    return body


def _dry_run(query: Mapping[str, str]) -> bool:
    value = query.get("dryRun")
    if value is None:
        return False
    if value != "All":
        raise _ApiError(400, f'Invalid dryRun value "{value}": valid values are: All')
    return True


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise _ApiError(400, f"invalid value for {name}: {value!r}") from None


def _encode_continue(key: str, rv: int) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": key + "\x00"})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_continue(token: str | None) -> str | None:
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        start = str(data["start"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise _ApiError(400, "continue key is not valid: incorrect encoded start key") from None
    return start.rstrip("\x00")


# ---------------------------------------------------------------------- selectors


def _split_terms(selector: str) -> list[str]:
    terms: list[str] = []
    depth, cur = 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    return [t.strip() for t in terms if t.strip()]


def _parse_label_selector(selector: str) -> list[_Requirement]:
    out: list[_Requirement] = []
    for term in _split_terms(selector):
        m = _SET_TERM.match(term)
        if m:
            key, op = m.group(1), m.group(2)
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            req = _Requirement(key, op, values)
        elif term.startswith("!"):
            req = _Requirement(term[1:].strip(), "!")
        elif "!=" in term:
            key, _, value = term.partition("!=")
            req = _Requirement(key.strip(), "!=", (value.strip(),))
        elif "=" in term:
            key, _, value = term.partition("==") if "==" in term else term.partition("=")
            req = _Requirement(key.strip(), "=", (value.strip(),))
        else:
            req = _Requirement(term, "exists")
        if not _LABEL_KEY.match(req.key) or not all(_LABEL_VALUE.match(v) for v in req.values):
            raise _ApiError(400, f"unable to parse requirement: invalid label selector {term!r}")
        out.append(req)
    return out


def _selector_requirements(selector: dict[str, Any]) -> list[_Requirement]:
    reqs = [
        _Requirement(str(k), "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()
    ]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for e in selector.get("matchExpressions") or []:
        reqs.append(_Requirement(str(e["key"]), ops[e["operator"]], tuple(e.get("values") or ())))
    return reqs


def _selector_string(selector: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for e in selector.get("matchExpressions") or []:
        op = e["operator"]
        if op in ("In", "NotIn"):
            parts.append(f"{e['key']} {op.lower()} ({','.join(sorted(e.get('values', [])))})")
        elif op == "Exists":
            parts.append(str(e["key"]))
        else:
            parts.append(f"!{e['key']}")
    return ",".join(parts)


def _parse_field_selector(resource: str, selector: str) -> list[tuple[str, str, bool]]:
    out: list[tuple[str, str, bool]] = []
    for term in _split_terms(selector):
        if "!=" in term:
            key, _, value = term.partition("!=")
            equal = False
        elif "=" in term:
            key, _, value = term.partition("==") if "==" in term else term.partition("=")
            equal = True
        else:
            raise _ApiError(400, f"invalid selector: '{selector}'; can't understand '{term}'")
        key = key.strip()
        if key not in _FIELD_SELECTORS[resource]:
            raise _ApiError(400, f"field label not supported: {key}")
        out.append((key, value.strip(), equal))
    return out


def _field_value(obj: dict[str, Any], path: str) -> str:
    if path == "source":
        return str(obj.get("source", {}).get("component", ""))
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return "" if cur is None else str(cur)


def _fields_match(obj: dict[str, Any], fields: list[tuple[str, str, bool]]) -> bool:
    return all((_field_value(obj, k) == v) == equal for k, v, equal in fields)


def _matches(watch: _Watch, obj: dict[str, Any]) -> bool:
    if watch.namespace is not None and obj["metadata"].get("namespace") != watch.namespace:
        return False
    labels = obj["metadata"].get("labels", {})
    return all(r.matches(labels) for r in watch.labels) and _fields_match(obj, watch.fields)


# ---------------------------------------------------------------------- patches


def _apply_patch(current: dict[str, Any], req: _Request) -> dict[str, Any]:
    ct = req.content_type
    body = req.body
    if ct == "application/json-patch+json":
        result = _json_patch(copy.deepcopy(current), body)
    elif ct == "application/merge-patch+json":
        result = _merge_patch(current, _object_body(body))
    elif ct == "application/strategic-merge-patch+json":
        result = _strategic_merge(current, _object_body(body), None)
    else:
        raise _ApiError(
            415,
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json, "
            "application/strategic-merge-patch+json",
        )
    if not isinstance(result, dict):
        raise _ApiError(422, "the patch produced something that is not an object")
    return result


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip_directives(v)
            for k, v in value.items()
            if not k.startswith("$") and v is not None
        }
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def _strategic_merge(target: Any, patch: Any, field_name: str | None) -> Any:
    """Strategic merge patch as far as kubectl and typical clients use it."""
    if isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return _strip_directives(patch)
        result = copy.deepcopy(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if key.startswith(("$setElementOrder/", "$retainKeys")) or key == "$patch":
                continue
            if key.startswith("$deleteFromPrimitiveList/"):
                name = key.split("/", 1)[1]
                current = result.get(name)
                if isinstance(current, list) and isinstance(value, list):
                    result[name] = [x for x in current if x not in value]
                continue
            if value is None or (isinstance(value, dict) and value.get("$patch") == "delete"):
                result.pop(key, None)
                continue
            result[key] = _strategic_merge(result.get(key), value, key)
        return result
    if isinstance(patch, list) and field_name in _MERGE_KEYS:
        if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
            return [
                _strip_directives(x)
                for x in patch
                if not (isinstance(x, dict) and x.get("$patch") == "replace")
            ]
        key = _MERGE_KEYS[field_name or ""]
        out = copy.deepcopy(target) if isinstance(target, list) else []
        for item in patch:
            if not isinstance(item, dict) or key not in item:
                out.append(_strip_directives(item))
                continue
            idx = next(
                (i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == item[key]),
                None,
            )
            if item.get("$patch") == "delete":
                if idx is not None:
                    del out[idx]
            elif idx is None:
                out.append(_strip_directives(item))
            else:
                out[idx] = _strategic_merge(out[idx], item, None)
        return out
    return _strip_directives(patch)


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise _ApiError(422, f"invalid JSON pointer: {path!r}")
    if path == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _step(doc: Any, token: str, path: str) -> Any:
    if isinstance(doc, dict):
        if token not in doc:
            raise _ApiError(422, f"doc is missing path: {path}")
        return doc[token]
    if isinstance(doc, list):
        try:
            return doc[int(token)]
        except (ValueError, IndexError):
            raise _ApiError(422, f"doc is missing path: {path}") from None
    raise _ApiError(422, f"doc is missing path: {path}")


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    cur = doc
    for token in tokens[:-1]:
        cur = _step(cur, token, path)
    return cur


def _ptr_get(doc: Any, path: Any) -> Any:
    tokens = _pointer(path)
    cur = doc
    for token in tokens:
        cur = _step(cur, token, str(path))
    return cur


def _ptr_add(doc: Any, path: Any, value: Any, op: str = "add") -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, str(path))
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            try:
                index = int(last)
            except ValueError:
                raise _ApiError(422, f"{op} operation does not apply: {path}") from None
            if not 0 <= index <= len(parent):
                raise _ApiError(422, f"{op} operation does not apply: index out of range: {path}")
            parent.insert(index, value)
    else:
        raise _ApiError(422, f"{op} operation does not apply: doc is missing path: {path}")
    return doc


def _ptr_remove(doc: Any, path: Any, op: str = "remove") -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise _ApiError(422, f"{op} operation does not apply: cannot {op} the whole document")
    parent = _parent(doc, tokens, str(path))
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
    else:
        raise _ApiError(422, f"{op} operation does not apply: doc is missing key: {path}")
    return doc


def _json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch."""
    if not isinstance(ops, list):
        raise _ApiError(400, "json patch must be a JSON array of operations")
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise _ApiError(422, f"invalid json patch operation: {op!r}")
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise _ApiError(422, f"{kind} operation is missing a value")
        if kind == "add":
            doc = _ptr_add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc = _ptr_remove(doc, path)
        elif kind == "replace":
            if _pointer(path):
                doc = _ptr_remove(doc, path, "replace")
            doc = _ptr_add(doc, path, copy.deepcopy(op["value"]), "replace")
        elif kind == "move":
            value = _ptr_get(doc, op.get("from"))
            doc = _ptr_remove(doc, op.get("from"), "move")
            doc = _ptr_add(doc, path, value, "move")
        elif kind == "copy":
            doc = _ptr_add(doc, path, copy.deepcopy(_ptr_get(doc, op.get("from"))), "copy")
        elif kind == "test":
            if _ptr_get(doc, path) != op["value"]:
                raise _ApiError(422, f"testing value {path} failed: test failed")
        else:
            raise _ApiError(422, f"Unexpected kind: {kind}")
    return doc
