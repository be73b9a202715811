"""`Kube` over kubernetes-asyncio: pods, deployments and logs (reads only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from bot.diagnostics.probes import DeploymentInfo, PodInfo
from bot.errors import IntegrationError

TIMEOUT = 10


def _error(exc: Exception, what: str) -> IntegrationError:
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        if status == 404:
            return IntegrationError("kubernetes", f"{what}: not found", permanent=True)
        if status == 429:
            headers: Any = exc.headers or {}
            retry = headers.get("Retry-After")
            return IntegrationError(
                "kubernetes", f"{what}: throttled", retry_after=float(retry or 1)
            )
        return IntegrationError(
            "kubernetes", f"{what}: HTTP {status}", permanent=400 <= status < 500
        )
    return IntegrationError("kubernetes", f"{what}: {type(exc).__name__}")


class KubeClient:
    """Built from a kubeconfig file or, with none, the in-cluster service account."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)

    @classmethod
    async def connect(cls, kubeconfig: Path | None) -> KubeClient:
        configuration = client.Configuration()
        if kubeconfig is not None:
            await config.load_kube_config(
                config_file=str(kubeconfig), client_configuration=configuration
            )
        else:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return cls(client.ApiClient(configuration))

    async def close(self) -> None:
        await self.api.close()

    async def pods(self, namespace: str, selector: str) -> list[PodInfo]:
        try:
            listed = await self.core.list_namespaced_pod(
                namespace, label_selector=selector, _request_timeout=TIMEOUT
            )
        except Exception as exc:
            raise _error(exc, f"pods {selector} in {namespace}") from exc
        return [_pod(p) for p in listed.items or []]

    async def deployment(self, namespace: str, name: str) -> DeploymentInfo:
        try:
            d = await self.apps.read_namespaced_deployment(
                name, namespace, _request_timeout=TIMEOUT
            )
        except Exception as exc:
            raise _error(exc, f"deployment {namespace}/{name}") from exc
        status = d.status
        containers = d.spec.template.spec.containers or []
        annotations = d.metadata.annotations or {}
        return DeploymentInfo(
            name=name,
            desired=int(d.spec.replicas or 0),
            ready=int(status.ready_replicas or 0),
            updated=int(status.updated_replicas or 0),
            available=int(status.available_replicas or 0),
            revision=annotations.get("deployment.kubernetes.io/revision"),
            image=containers[0].image if containers else None,
        )

    async def logs(self, namespace: str, pod: str, *, tail_lines: int) -> str:
        try:
            text: Any = await self.core.read_namespaced_pod_log(
                pod, namespace, tail_lines=tail_lines, _request_timeout=TIMEOUT
            )
        except Exception as exc:
            raise _error(exc, f"logs of {namespace}/{pod}") from exc
        return str(text or "")


def _pod(p: Any) -> PodInfo:
    statuses = p.status.container_statuses or []
    ready = bool(statuses) and all(bool(c.ready) for c in statuses)
    reason = None
    for c in statuses:
        waiting = c.state.waiting if c.state else None
        if waiting is not None and waiting.reason:
            reason = waiting.reason
    return PodInfo(
        name=p.metadata.name,
        ready=ready,
        restarts=sum(int(c.restart_count or 0) for c in statuses),
        phase=str(p.status.phase or ""),
        reason=reason,
    )
