"""A simulated Waqiti platform for the shell, demos and drills: every stand-in, one scenario.

`SimulatedPlatform` starts, on 127.0.0.1 only, the stand-ins the bot talks to in production —
the Kubernetes API (`FakeKubernetes`, its controllers ticking in the background), actuator
endpoints of the platform's services (`FakeActuator`, with the config service's flags),
PagerDuty over HTTPS (`FakePagerDuty`), a real Kafka-protocol broker (`TansuBroker`) and the
public status page (`FakeStatuspage`, Statuspage's API) —
loads a scenario (`sandbox/scenario.py`) into them and keeps the platform alive::

    async with SimulatedPlatform("bad-deploy") as platform:
        settings = settings.model_copy(update=platform.settings_overrides())
        ...                                   # open_services(settings, ...): real adapters
        await platform.connect_webhooks(url)  # PagerDuty V3 webhooks to POST /pagerduty/webhook

The platform reacts to what the bot does, through the same APIs the bot uses:

* Pods follow their image (`images.<image>` in the scenario): a crash-looping image never gets
  ready; after a rollback to a healthy one the Kubernetes controller brings pods up.
* Once a Deployment's rollout is done (new image, or a restart), its pods are new JVMs: the
  service's actuator counters start again from zero at the rates of the running image, and its
  circuit breakers are CLOSED again except those the image holds open. So rolling back a bad
  deploy brings the compensation rate down, and a restart clears a stuck breaker.
* A circuit-breaker transition over the actuator API changes the breaker (the stand-in does).
* Kafka: every step each stream's producers append records to its topic and its consumer group
  commits as far as its consumer Deployment's *ready* replicas can read (nothing while the
  stream's `paused_by` breaker is open). Scale the consumer up and the lag falls; in tansu the
  offsets are real, so the bot's `KafkaLag` measures it.

What changes on the platform is announced as one-line notices (`on_notice` listeners), so a
shell user sees the effect of an approved remediation. `status()` summarises the platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from aiokafka import (  # type: ignore[import-untyped]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    TopicPartition,
)
from pydantic import SecretStr

from sandbox.actuator import FakeActuator
from sandbox.grafana import FakeGrafana
from sandbox.kafka_broker import TansuBroker
from sandbox.kubernetes import RESTARTED_AT, FakeKubernetes
from sandbox.pagerduty import FakePagerDuty
from sandbox.scenario import Scenario, StreamSpec, expand, load_scenario
from sandbox.statuspage import FakeStatuspage

__all__ = ["LAG_WARNING", "PAGERDUTY_FROM", "PAGERDUTY_SERVICE", "SimulatedPlatform"]

log = logging.getLogger(__name__)

PAGERDUTY_SERVICE = "PSVC001"  # the stand-in's seeded "payments" service
PAGERDUTY_FROM = "icbot@waqiti.example"  # the stand-in's seeded API user (PUSR004)
LAG_WARNING = 1000  # saga.yml's warning threshold: "caught up" below it
RECORD = b'{"event":"sandbox"}'
HISTORY_RECORDS = 10  # per partition, read before the scenario starts
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_OPEN = ("OPEN", "FORCED_OPEN")


@dataclass
class _Epoch:
    """What a Deployment's current pods run, since when (for counters and breakers)."""

    image: str
    restarted: str | None
    uptime: float


@dataclass
class _Stream:
    group: str
    spec: StreamSpec
    ends: list[int]
    committed: list[int]
    consumer: Any = None  # an AIOKafkaConsumer of the group, assigned and paused: commits only
    produce_carry: float = 0.0
    consume_carry: list[float] = field(default_factory=list)
    next_partition: int = 0
    paused: bool = False

    @property
    def lag(self) -> int:
        return sum(end - done for end, done in zip(self.ends, self.committed, strict=True))


class SimulatedPlatform:
    """The stand-ins with one scenario loaded. Use ``async with SimulatedPlatform(name) as p``."""

    def __init__(
        self,
        scenario: str | Scenario = "healthy",
        *,
        tick_interval: float = 0.2,
        step_interval: float = 0.25,
        state_dir: Path | None = None,
    ) -> None:
        """`state_dir`: where stand-in state that must survive a restart is kept (PagerDuty's
        incident numbers); None keeps nothing."""
        self.scenario = load_scenario(scenario) if isinstance(scenario, str) else scenario
        self.tick_interval = tick_interval
        self.step_interval = step_interval
        self.webhook_secret = secrets.token_hex(16)
        self.notices: list[str] = []
        self.on_notice: list[Callable[[str], None]] = []
        self.kube = FakeKubernetes(token=secrets.token_hex(16), tick_interval=tick_interval)
        self.actuator = FakeActuator(
            services=sorted(self.scenario.services), flag_token=secrets.token_urlsafe(18)
        )
        self.pagerduty = FakePagerDuty(
            api_key=secrets.token_hex(16),
            state_file=state_dir / "pagerduty.json" if state_dir else None,
        )
        self.kafka = TansuBroker(cluster_id=f"icbot-sandbox-{self.scenario.name}")
        self.grafana = FakeGrafana()  # annotations on resolve (issue 21)
        self.statuspage = FakeStatuspage()  # the public status page (issue 21)
        self._dir: Path | None = None
        self._kubeconfig: Path | None = None
        self._producer: Any = None
        self._streams: dict[str, _Stream] = {}
        self._epochs: dict[str, _Epoch] = {}
        self._counters: dict[tuple[str, str], float] = {}
        self._seen_deployments: dict[str, tuple[str, str | None, int]] = {}
        self._seen_breakers: dict[tuple[str, str], str] = {}
        self._loop: asyncio.Task[None] | None = None
        self._alerted = False
        self._started = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        try:
            self._dir = Path(tempfile.mkdtemp(prefix="icbot-sandbox-"))
            await asyncio.gather(self.kube.start(), self.actuator.start(), self.pagerduty.start())
            await self.kafka.start()
            await self.grafana.start()
            await self.statuspage.start()
            self.statuspage.on_change.append(self._on_statuspage)
            self._kubeconfig = self.kube.write_kubeconfig(
                self._dir / "kubeconfig", namespace="waqiti", context="waqiti-sandbox"
            )
            self._load_kubernetes()
            self._load_actuator()
            await self._load_kafka()
            self._listen()
        except BaseException:
            await self.stop()
            raise
        self._loop = asyncio.create_task(self._run(), name="sandbox-platform")

    async def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        for stream in self._streams.values():
            consumer, stream.consumer = stream.consumer, None
            if consumer is not None:
                with contextlib.suppress(Exception):
                    await consumer.stop()
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()
        await self.kafka.stop()
        await self.grafana.stop()
        await self.statuspage.stop()
        await self.pagerduty.stop()
        await self.actuator.stop()
        await self.kube.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._started = False

    async def __aenter__(self) -> SimulatedPlatform:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ what the bot needs

    @property
    def kubeconfig(self) -> Path:
        if self._kubeconfig is None:
            raise RuntimeError("the platform is not started")
        return self._kubeconfig

    def settings_overrides(self) -> dict[str, Any]:
        """`Settings.model_copy(update=...)` values pointing the bot's real adapters here."""
        return {
            "kubeconfig": self.kubeconfig,
            "service_url_template": self.actuator.url_template,
            "kafka_bootstrap_servers": self.kafka.bootstrap,
            "kafka_idempotent_producer": False,  # tansu refuses it
            "kafka_clamp_negative_lag": True,  # tansu under-reports the log end after a batch
            "pagerduty_api_token": SecretStr(self.pagerduty.api_key),
            "pagerduty_from_email": PAGERDUTY_FROM,
            "pagerduty_service_id": PAGERDUTY_SERVICE,
            "pagerduty_api_url": self.pagerduty.url,
            "pagerduty_ca_bundle": Path(self.pagerduty.ca_path),
            "pagerduty_webhook_secret": SecretStr(self.webhook_secret),
            "feature_flag_token": SecretStr(self.actuator.flag_token),
            "grafana_url": self.grafana.url,
            "grafana_token": SecretStr(self.grafana.token),
            "statuspage_api_key": SecretStr(self.statuspage.api_key),
            "statuspage_page_id": self.statuspage.page_id,
            "statuspage_api_url": self.statuspage.url,
        }

    async def connect_webhooks(self, url: str) -> None:
        """Send PagerDuty webhooks to the bot at `url` (its `/pagerduty/webhook`, on 127.0.0.1).

        The scenario's monitoring alert, if any, fires now; returns once it was delivered.
        """
        host = urlsplit(url).hostname or ""
        if host not in LOOPBACK:
            raise ValueError(f"the sandbox only talks to 127.0.0.1, not {host!r}")
        self.pagerduty.subscribe(url, self.webhook_secret)
        alert = self.scenario.pagerduty.alert
        if alert and not self._alerted:
            self._alerted = True
            self.pagerduty.trigger_alert(
                alert,
                dedup_key=f"sandbox-{self.scenario.name}",
                severity=self.scenario.pagerduty.severity,
                source="grafana",
                service_id=PAGERDUTY_SERVICE,
            )
        await self.pagerduty.drain_webhooks(timeout=10)

    # ------------------------------------------------------------------ inspection

    def lag(self, group: str) -> int:
        """The consumer group's lag as the platform committed it (what KafkaLag will read)."""
        return self._streams[group].lag

    def counter(self, service: str, name: str) -> float:
        return self._counters.get((service, name), 0.0)

    def status(self) -> list[str]:
        """One line per part of the platform: what is unhealthy, or that it is fine."""
        lines = []
        sick = []
        for name, spec in self.scenario.deployments.items():
            dep = self.kube.deployment(spec.namespace, name)
            ready = int(dep.get("status", {}).get("readyReplicas", 0))
            desired = int(dep["spec"].get("replicas", 0))
            if ready < desired:
                sick.append(f"{name} {ready}/{desired} ready ({_image(dep)})")
        total = len(self.scenario.deployments)
        lines.append(
            "Kubernetes: " + ("; ".join(sick) if sick else f"all {total} deployments ready")
        )
        opened = [
            f"{service}/{name} {breaker.state}"
            for service in self.actuator.services
            for name, breaker in sorted(self._breakers(service).items())
            if breaker.state in (*_OPEN, "HALF_OPEN")
        ]
        lines.append("Circuit breakers: " + (", ".join(opened) if opened else "all closed"))
        lags = [f"{g} {s.lag:,}" for g, s in sorted(self._streams.items())]
        lines.append("Kafka lag: " + (", ".join(lags) if lags else "no consumer groups"))
        incidents = [
            f"#{i['incident_number']} {i['status']}"
            for i in sorted(self.pagerduty.incidents.values(), key=lambda i: i["incident_number"])
        ]
        lines.append("PagerDuty: " + (", ".join(incidents) if incidents else "no incidents"))
        annotations = [
            f"{a.dashboard_uid or 'organisation'}"
            + (f" panel {a.panel_id}" if a.panel_id else "")
            + f" ({', '.join(t for t in a.tags if t.startswith('INC-'))})"
            for a in sorted(self.grafana.annotations.values(), key=lambda a: a.id)
        ]
        lines.append("Grafana annotations: " + (", ".join(annotations) if annotations else "none"))
        summaries = [
            f"#{i['incident_number']}"
            for i in sorted(self.pagerduty.incidents.values(), key=lambda i: i["incident_number"])
            for note in self.pagerduty.notes.get(str(i["id"]), [])
            if str(note.get("content", "")).startswith("Incident summary (icbot)")
        ]
        lines.append("PagerDuty summary notes: " + (", ".join(summaries) if summaries else "none"))
        public = [f"“{i['name']}” {i['status']}" for i in self.statuspage.incidents.values()]
        if public:  # only once something was published (issue 21)
            lines.append("Status page: " + ", ".join(public))
        return lines

    def healthy(self) -> bool:
        """Every Deployment ready, no breaker open, every consumer group below the warning lag."""
        for name, spec in self.scenario.deployments.items():
            dep = self.kube.deployment(spec.namespace, name)
            if int(dep.get("status", {}).get("readyReplicas", 0)) < int(dep["spec"]["replicas"]):
                return False
        for service in self.actuator.services:
            if any(b.state in (*_OPEN, "HALF_OPEN") for b in self._breakers(service).values()):
                return False
        return all(s.lag < LAG_WARNING for s in self._streams.values())

    # ------------------------------------------------------------------ loading

    def _load_kubernetes(self) -> None:
        for image, behaviour in self.scenario.images.items():
            self.kube.set_image_behaviour(
                image,
                crashloop=behaviour.crashloop,
                ready_after=behaviour.ready_after,
                logs=behaviour.log_lines(),
            )
        for name, spec in self.scenario.deployments.items():
            self.kube.add_deployment(
                spec.namespace,
                name,
                spec.image,
                replicas=spec.replicas,
                history=spec.history,
                age=spec.uptime or 0.0,  # the scenario's "went out 12 minutes ago"
            )
            self._epochs[name] = _Epoch(spec.image, None, spec.uptime or 0.0)
            self._seen_deployments[name] = (spec.image, None, spec.replicas)
        for service, state in self.scenario.services.items():
            if not state.logs:
                continue
            lines = expand(state.logs, state.log_repeat)
            for name, dep in self.scenario.deployments.items():
                if self.scenario.service_of(name) != service:
                    continue
                for pod in self.kube.pods(dep.namespace, name):
                    for line in lines:
                        self.kube.append_log(dep.namespace, pod["metadata"]["name"], line)

    def _load_actuator(self) -> None:
        for service, spec in self.scenario.services.items():
            for name, state in spec.breakers.items():
                self._set_breaker(service, name, state)
            for component, status in spec.health.items():
                details = {"database": "PostgreSQL", "validationQuery": "isValid()"}
                self.actuator.set_component(
                    service, component, status, details if component == "db" else None
                )
            for gauge, value in spec.gauges.items():
                self.actuator.set_metric(service, gauge, value)
        for name, dep in self.scenario.deployments.items():
            owner = self.scenario.service_of(name)
            if owner is None:
                continue
            for breaker, held in self.scenario.image(dep.image).breakers.items():
                self._set_breaker(owner, breaker, held)
        for flag, flag_value in self.scenario.flags.items():
            self.actuator.set_flag(flag, flag_value)
        self._count(0.0)
        for service in self.actuator.services:
            for name, breaker in self._breakers(service).items():
                self._seen_breakers[(service, name)] = breaker.state

    async def _load_kafka(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.kafka.bootstrap, enable_idempotence=False, linger_ms=0
        )
        await self._producer.start()
        for group, spec in self.scenario.streams.items():
            await self.kafka.create_topic(spec.topic, partitions=spec.partitions)
            n = spec.partitions
            shares = [spec.lag // n + (1 if p < spec.lag % n else 0) for p in range(n)]
            stream = _Stream(
                group=group,
                spec=spec,
                ends=[0] * n,
                committed=[HISTORY_RECORDS] * n,
                consume_carry=[0.0] * n,
            )
            for p in range(n):
                await self._append(spec.topic, p, HISTORY_RECORDS + shares[p])
                stream.ends[p] = HISTORY_RECORDS + shares[p]
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.kafka.bootstrap, group_id=group, enable_auto_commit=False
            )
            await consumer.start()
            stream.consumer = consumer
            tps = [TopicPartition(spec.topic, p) for p in range(n)]
            consumer.assign(tps)
            consumer.pause(*tps)  # it only commits; it never fetches
            await consumer.commit({tp: stream.committed[tp.partition] for tp in tps})
            stream.paused = self._paused(spec)
            self._streams[group] = stream
            self._stream_metrics(stream)

    async def _append(self, topic: str, partition: int, count: int) -> None:
        """Append `count` records; the last batch holds one record (tansu's log-end quirk)."""
        remaining = count
        while remaining > 1:
            batch = self._producer.create_batch()
            n = 0
            while n < remaining - 1 and (
                batch.append(key=None, value=RECORD, timestamp=None) is not None
            ):
                n += 1
            batch.close()
            await (await self._producer.send_batch(batch, topic, partition=partition))
            remaining -= n
        if remaining == 1:
            await self._producer.send_and_wait(topic, RECORD, partition=partition)

    # ------------------------------------------------------------------ the simulation

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.step_interval)
            now = time.monotonic()
            try:
                await self.step(now - last)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sandbox platform step failed")
            last = now

    async def step(self, dt: float) -> None:
        """Advance the platform `dt` seconds (the background loop calls this every step)."""
        self._roll_epochs()
        self._count(dt)
        for stream in list(self._streams.values()):
            await self._flow(stream, dt)

    def _roll_epochs(self) -> None:
        """A Deployment whose new pods are all out runs new JVMs: fresh counters, breakers."""
        for name, spec in self.scenario.deployments.items():
            dep = self.kube.deployment(spec.namespace, name)
            image, restarted = _image(dep), _restarted(dep)
            epoch = self._epochs[name]
            if (image, restarted) == (epoch.image, epoch.restarted):
                continue
            if not self.kube.rollout_status(spec.namespace, name).done:
                continue
            self._epochs[name] = _Epoch(image, restarted, 0.0)
            ready = int(dep.get("status", {}).get("readyReplicas", 0))
            what = f"rolled out {image}" if image != epoch.image else "restarted"
            self._notice(
                f"Kubernetes: {spec.namespace}/{name} {what}: {ready}/{spec_replicas(dep)} ready"
            )
            service = self.scenario.service_of(name)
            if service is None:
                continue
            for counter in [k for k in self._counters if k[0] == service]:
                self._counters[counter] = 0.0
                self.actuator.set_metric(service, counter[1], {"COUNT": 0.0})
            held = self.scenario.image(image).breakers
            for breaker in sorted(self._breakers(service)):
                self._set_breaker(service, breaker, held.get(breaker, "CLOSED"))

    def _count(self, dt: float) -> None:
        for name in self.scenario.deployments:
            epoch = self._epochs[name]
            epoch.uptime += dt
            service = self.scenario.service_of(name)
            if service is None:
                continue
            for counter, rate in self.scenario.counter_rates(service, epoch.image).items():
                value = rate * epoch.uptime
                self._counters[(service, counter)] = value
                self.actuator.set_metric(service, counter, {"COUNT": float(int(value))})

    async def _flow(self, stream: _Stream, dt: float) -> None:
        spec = stream.spec
        n = spec.partitions
        paused = self._paused(spec)
        if paused != stream.paused:
            stream.paused = paused
            state = "stopped consuming" if paused else "consuming again"
            self._notice(f"Kafka: group {stream.group} {state} ({spec.paused_by})")
        before = stream.lag
        commits: dict[Any, int] = {}
        ready = self._ready(spec.consumer) if spec.consumer else 0
        if not paused and ready:
            budget = ready * spec.consume_per_replica * dt / n
            for p in range(n):  # read what was there when the step began
                stream.consume_carry[p] += budget
                can = int(stream.consume_carry[p])
                stream.consume_carry[p] -= can
                take = min(can, stream.ends[p] - stream.committed[p])
                if take > 0:
                    stream.committed[p] += take
                    commits[TopicPartition(spec.topic, p)] = stream.committed[p]
        amount = spec.produce_per_second * dt + stream.produce_carry
        produced = int(amount)
        stream.produce_carry = amount - produced
        for i in range(n):
            p = (stream.next_partition + i) % n
            count = produced // n + (1 if i < produced % n else 0)
            if count:
                await self._append(spec.topic, p, count)
                stream.ends[p] += count
        stream.next_partition = (stream.next_partition + produced) % n
        if commits:
            await stream.consumer.commit(commits)
        self._stream_metrics(stream)
        if before >= LAG_WARNING > stream.lag:
            self._notice(f"Kafka: group {stream.group} caught up (lag {stream.lag:,})")

    def _stream_metrics(self, stream: _Stream) -> None:
        spec = stream.spec
        for refs, total in (
            (spec.produced_metrics, sum(stream.ends)),
            (spec.consumed_metrics, sum(stream.committed)),
        ):
            for ref in refs:
                service, _, metric = ref.partition("/")
                self.actuator.set_metric(
                    service, metric, {"COUNT": float(spec.metric_base + total)}
                )

    def _ready(self, deployment: str) -> int:
        spec = self.scenario.deployments[deployment]
        status = self.kube.deployment(spec.namespace, deployment).get("status", {})
        return int(status.get("readyReplicas", 0))

    def _paused(self, spec: StreamSpec) -> bool:
        if spec.paused_by is None:
            return False
        service, _, name = spec.paused_by.partition("/")
        breaker = self._breakers(service).get(name)
        return breaker is not None and breaker.state in _OPEN

    def _breakers(self, service: str) -> dict[str, Any]:
        breakers: dict[str, Any] = {}
        for name in self.scenario.breakers(service) | {
            n for (s, n) in self._seen_breakers if s == service
        }:
            with contextlib.suppress(KeyError):
                breakers[name] = self.actuator.breaker(service, name)
        return breakers

    def _set_breaker(self, service: str, name: str, state: str) -> None:
        with contextlib.suppress(KeyError):
            if self.actuator.breaker(service, name).state == state:
                return
        if state in _OPEN:
            self.actuator.set_breaker(
                service, name, state, failure_rate=72.5, buffered_calls=40, failed_calls=29,
                not_permitted_calls=1385,
            )  # fmt: skip
        else:
            self.actuator.set_breaker(service, name, state)
            self.actuator.breaker(service, name).reset_metrics()

    # ------------------------------------------------------------------ notices

    def _notice(self, text: str) -> None:
        self.notices.append(text)
        for listener in list(self.on_notice):
            try:
                listener(text)
            except Exception:
                log.exception("sandbox notice listener failed")

    def _listen(self) -> None:
        self.kube.on_change.append(self._on_kube)
        self.actuator.on_change.append(self._on_actuator)
        self.pagerduty.on_change.append(self._on_pagerduty)

    def _on_kube(self, kind: str, obj: dict[str, Any]) -> None:
        if obj.get("kind") != "Deployment" or kind != "MODIFIED":
            return
        name = obj["metadata"]["name"]
        if name not in self._seen_deployments:
            return
        image, restarted, replicas = _image(obj), _restarted(obj), spec_replicas(obj)
        old_image, old_restarted, old_replicas = self._seen_deployments[name]
        self._seen_deployments[name] = (image, restarted, replicas)
        where = f"{obj['metadata']['namespace']}/{name}"
        if image != old_image:
            self._notice(f"Kubernetes: {where} now rolling out {image}")
        elif restarted != old_restarted:
            self._notice(f"Kubernetes: {where} rolling restart")
        if replicas != old_replicas:
            self._notice(f"Kubernetes: {where} scaled {old_replicas} → {replicas} replicas")

    def _on_actuator(self, kind: str, obj: Any) -> None:
        if kind != "breaker":
            return
        service = str(obj)
        for name, breaker in self._breakers(service).items():
            old = self._seen_breakers.get((service, name))
            self._seen_breakers[(service, name)] = breaker.state
            if old is not None and old != breaker.state:
                self._notice(f"Actuator: {service} circuit breaker {name} {old} → {breaker.state}")

    def _on_pagerduty(self, event: str, obj: Any) -> None:
        if not isinstance(obj, dict) or obj.get("type") != "incident":
            return
        number = obj.get("incident_number")
        by = (obj.get("last_status_change_by") or {}).get("summary") or "someone"
        action = event.removeprefix("incident.")
        if action == "triggered":
            service = (obj.get("service") or {}).get("summary") or "?"
            self._notice(
                f"PagerDuty: incident #{number} triggered on {service}"
                f" ({obj.get('urgency')} urgency): {obj.get('title')}"
            )
        elif action in ("acknowledged", "resolved", "reopened"):
            self._notice(f"PagerDuty: incident #{number} {action} by {by}")

    def _on_statuspage(self, event: str, incident: dict[str, Any]) -> None:
        verb = "published" if event == "incident.created" else "updated"
        self._notice(f"Status page: “{incident['name']}” {verb}, {incident['status']}")


def _image(dep: dict[str, Any]) -> str:
    return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


def _restarted(dep: dict[str, Any]) -> str | None:
    annotations = dep["spec"]["template"].get("metadata", {}).get("annotations") or {}
    value = annotations.get(RESTARTED_AT)
    return str(value) if value is not None else None


def spec_replicas(dep: dict[str, Any]) -> int:
    return int(dep["spec"].get("replicas", 0))
