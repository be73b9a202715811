"""What checks may ask of the outside world: narrow, read-only protocols.

Adapters in `bot/integrations/` implement them over HTTP (actuator), kubernetes-asyncio and
aiokafka; an integration that is not configured is simply absent (`None`), and the checks that
need it report "not configured" instead of failing the whole diagnosis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


class NotConfigured(Exception):
    """The integration a check needs is not configured."""


@dataclass(frozen=True)
class PodInfo:
    name: str
    ready: bool
    restarts: int
    phase: str
    reason: str | None  # e.g. CrashLoopBackOff


@dataclass(frozen=True)
class DeploymentInfo:
    name: str
    desired: int
    ready: int
    updated: int
    available: int
    revision: str | None
    image: str | None
    paused: bool = False  # `kubectl rollout pause`: no rollout happens until resumed


@dataclass(frozen=True)
class Revision:
    """One revision of a Deployment (its ReplicaSet), as `kubectl rollout undo` finds them."""

    number: int
    image: str
    created: datetime | None
    replicaset: str
    template: dict[str, Any]
    annotations: dict[str, str]


class Actuator(Protocol):
    async def metric(self, service: str, name: str, tags: dict[str, str]) -> dict[str, Any]: ...

    async def health(self, service: str, component: str | None) -> dict[str, Any]: ...

    async def circuit_breakers(self, service: str) -> dict[str, Any]: ...


class Kube(Protocol):
    async def pods(self, namespace: str, selector: str) -> list[PodInfo]: ...

    async def deployment(self, namespace: str, name: str) -> DeploymentInfo: ...

    async def logs(self, namespace: str, pod: str, *, tail_lines: int) -> str: ...


class Lag(Protocol):
    async def consumer_lag(
        self, group: str, topics: list[str] | None
    ) -> dict[tuple[str, int], int | None]: ...

    async def end_offsets(self, topic: str) -> dict[int, int]: ...


@dataclass(frozen=True)
class Probes:
    actuator: Actuator | None = None
    kube: Kube | None = None
    lag: Lag | None = None

    def need_actuator(self) -> Actuator:
        if self.actuator is None:
            raise NotConfigured("service endpoints are not configured (SERVICE_URL_TEMPLATE)")
        return self.actuator

    def need_kube(self) -> Kube:
        if self.kube is None:
            raise NotConfigured("Kubernetes is not configured (KUBECONFIG or in-cluster)")
        return self.kube

    def need_lag(self) -> Lag:
        if self.lag is None:
            raise NotConfigured("Kafka is not configured (KAFKA_BOOTSTRAP_SERVERS)")
        return self.lag
