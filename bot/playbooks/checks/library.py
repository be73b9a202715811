"""The bundled checks. Each takes validated params and the probes, and returns a Reading."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.core import guard
from bot.core.numfmt import measured
from bot.playbooks.checks.probes import Probes
from bot.playbooks.checks.registry import Reading, check

NAME = r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$"  # Kubernetes / DNS-style names


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceParams(_Params):
    service: str = Field(pattern=NAME)


class MetricParams(ServiceParams):
    metric: str = Field(min_length=1, max_length=200)
    tags: dict[str, str] = Field(default_factory=dict)
    statistic: str | None = None  # which measurement; default: the first
    scale: float = 1.0  # e.g. 100 to show a 0-1 ratio as a percentage


class RatioParams(ServiceParams):
    numerator: str = Field(min_length=1, max_length=200)
    denominator: str = Field(min_length=1, max_length=200)
    percent: bool = True


class HealthParams(ServiceParams):
    component: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_./-]{1,100}$")


class BreakersParams(ServiceParams):
    names: list[str] | None = None  # only these breakers; default: all


class PodsParams(_Params):
    namespace: str = Field(pattern=NAME)
    selector: str = Field(min_length=1, max_length=300)


class DeploymentParams(_Params):
    namespace: str = Field(pattern=NAME)
    name: str = Field(pattern=NAME)


class LogSearchParams(PodsParams):
    pattern: str = Field(min_length=1, max_length=200)
    tail_lines: int = Field(default=1000, ge=1, le=10000)
    max_pods: int = Field(default=5, ge=1, le=20)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        re.compile(value)
        return value


class TopicParams(_Params):
    topic: str = Field(min_length=1, max_length=249)


class LagParams(_Params):
    group: str = Field(min_length=1, max_length=200)
    topics: list[str] | None = None


def _measurement(body: dict[str, Any], statistic: str | None) -> float:
    measurements = body.get("measurements") or []
    for m in measurements:
        if statistic is None or m.get("statistic") == statistic:
            return float(m["value"])
    raise ValueError(f"no {statistic or 'measurement'} in {body.get('name')}")


@check("actuator.metric", MetricParams, "A Spring actuator metric (/actuator/metrics/{name}).")
async def actuator_metric(p: MetricParams, probes: Probes) -> Reading:
    body = await probes.need_actuator().metric(p.service, p.metric, p.tags)
    value = _measurement(body, p.statistic) * p.scale
    unit = "%" if p.scale == 100 else str(body.get("baseUnit") or "")
    return Reading(
        value=value, detail=f"{p.service} {p.metric} = {measured(value)}{unit}", unit=unit
    )


@check("actuator.ratio", RatioParams, "One actuator metric divided by another (e.g. SAGA rate).")
async def actuator_ratio(p: RatioParams, probes: Probes) -> Reading:
    actuator = probes.need_actuator()
    top, bottom = await asyncio.gather(
        actuator.metric(p.service, p.numerator, {}), actuator.metric(p.service, p.denominator, {})
    )
    numerator, denominator = _measurement(top, None), _measurement(bottom, None)
    if denominator == 0:
        return Reading(value=0.0, detail=f"no {p.denominator} yet", unit="%" if p.percent else "")
    ratio = numerator / denominator * (100 if p.percent else 1)
    unit = "%" if p.percent else ""
    return Reading(
        value=ratio,
        detail=f"{numerator:g} of {denominator:g} ({measured(ratio)}{unit})",
        unit=unit,
    )


@check("actuator.health", HealthParams, "Actuator health, or one component such as `db`.")
async def actuator_health(p: HealthParams, probes: Probes) -> Reading:
    body = await probes.need_actuator().health(p.service, p.component)
    status = str(body.get("status", "UNKNOWN"))
    details = body.get("details") or {}
    extra = f" ({details['error']})" if isinstance(details, dict) and "error" in details else ""
    down = status in ("DOWN", "OUT_OF_SERVICE")
    what = f"{p.service} {p.component or 'health'}"
    return Reading(value=1.0 if down else 0.0, detail=f"{what} {status}{extra}", unit="down")


@check(
    "actuator.circuit_breakers",
    BreakersParams,
    "resilience4j circuit breakers not CLOSED (/actuator/circuitbreakers).",
)
async def actuator_circuit_breakers(p: BreakersParams, probes: Probes) -> Reading:
    body = await probes.need_actuator().circuit_breakers(p.service)
    breakers: dict[str, Any] = body.get("circuitBreakers") or {}
    if p.names is not None:
        breakers = {k: v for k, v in breakers.items() if k in p.names}
    opened = {
        k: v.get("state")
        for k, v in breakers.items()
        if v.get("state") not in ("CLOSED", "DISABLED", "METRICS_ONLY")
    }
    states = ", ".join(f"{k} {v.get('state')}" for k, v in sorted(breakers.items())) or "none"
    return Reading(value=float(len(opened)), detail=f"{p.service}: {states}", unit="open")


@check("kubernetes.pods", PodsParams, "Pods for a label selector: not ready, restarts.")
async def kubernetes_pods(p: PodsParams, probes: Probes) -> Reading:
    pods = await probes.need_kube().pods(p.namespace, p.selector)
    if not pods:
        return Reading(value=None, detail=f"no pods match {p.selector} in {p.namespace}")
    not_ready = [pod for pod in pods if not pod.ready]
    restarts = sum(pod.restarts for pod in pods)
    reasons = sorted({pod.reason for pod in not_ready if pod.reason})
    why = f" ({', '.join(reasons)})" if reasons else ""
    return Reading(
        value=float(len(not_ready)),
        detail=f"{len(pods) - len(not_ready)}/{len(pods)} ready, {restarts} restarts{why}",
        unit="not ready",
    )


@check("kubernetes.deployment", DeploymentParams, "A Deployment's rollout: ready of desired.")
async def kubernetes_deployment(p: DeploymentParams, probes: Probes) -> Reading:
    d = await probes.need_kube().deployment(p.namespace, p.name)
    missing = max(0, d.desired - d.ready)
    return Reading(
        value=float(missing),
        detail=f"{d.name}: {d.ready}/{d.desired} ready, revision {d.revision}, {d.image}",
        unit="missing",
    )


@check("kubernetes.log_search", LogSearchParams, "Count log lines matching a pattern (bounded).")
async def kubernetes_log_search(p: LogSearchParams, probes: Probes) -> Reading:
    kube = probes.need_kube()
    pods = (await kube.pods(p.namespace, p.selector))[: p.max_pods]
    if not pods:
        return Reading(value=None, detail=f"no pods match {p.selector} in {p.namespace}")
    texts = await asyncio.gather(
        *(kube.logs(p.namespace, pod.name, tail_lines=p.tail_lines) for pod in pods)
    )
    pattern = re.compile(p.pattern)
    hits = [line for text in texts for line in text.splitlines() if pattern.search(line)]
    # Redacted before it is cut, so no card number is cut into digits the guard can't see.
    sample = f"; latest: {guard.redact(hits[-1]).text[:160]}" if hits else ""
    return Reading(
        value=float(len(hits)),
        detail=(
            f"{len(hits)} lines match /{p.pattern}/ in the last {p.tail_lines}"
            f" of {len(pods)} pods{sample}"
        ),
        unit="lines",
    )


@check("kafka.consumer_lag", LagParams, "A consumer group's lag (log-end offset minus committed).")
async def kafka_consumer_lag(p: LagParams, probes: Probes) -> Reading:
    lags = await probes.need_lag().consumer_lag(p.group, p.topics)
    if not lags:
        return Reading(value=None, detail=f"group {p.group} has no partitions")
    known = {k: v for k, v in lags.items() if v is not None}
    total = sum(known.values())
    worst = max(known.items(), key=lambda kv: kv[1], default=None)
    where = f", worst {worst[0][0]}[{worst[0][1]}] {worst[1]}" if worst else ""
    uncommitted = len(lags) - len(known)
    tail = f", {uncommitted} partitions never committed" if uncommitted else ""
    return Reading(
        value=float(total),
        detail=f"{p.group}: lag {total} over {len(lags)} partitions{where}{tail}",
        unit="messages",
    )


@check("kafka.end_offsets", TopicParams, "A topic's log-end offsets (messages written so far).")
async def kafka_end_offsets(p: TopicParams, probes: Probes) -> Reading:
    offsets = await probes.need_lag().end_offsets(p.topic)
    if not offsets:
        return Reading(value=None, detail=f"topic {p.topic} has no partitions")
    total = sum(offsets.values())
    parts = ", ".join(f"[{n}] {offsets[n]}" for n in sorted(offsets))
    return Reading(
        value=float(total), detail=f"{p.topic}: {total} messages ({parts})", unit="messages"
    )
