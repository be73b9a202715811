"""What checks may ask of the outside world: narrow, read-only protocols (`bot.domain.ports`).

Adapters in `bot/integrations/` implement them over HTTP (actuator), kubernetes-asyncio and
aiokafka; an integration that is not configured is simply absent (`None`), and the checks that
need it report "not configured" instead of failing the whole diagnosis.
"""

from __future__ import annotations

from dataclasses import dataclass

# The probes' ports and what they return live in bot/domain/ports.py (every Protocol once);
# these names stay importable from here for the checks and their callers.
from bot.domain.ports import Actuator, DeploymentInfo, Kube, Lag, PodInfo, Revision

__all__ = [
    "Actuator", "DeploymentInfo", "Kube", "Lag", "NotConfigured", "PodInfo", "Probes", "Revision",
]  # fmt: skip


class NotConfigured(Exception):
    """The integration a check needs is not configured."""


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
