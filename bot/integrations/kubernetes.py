"""`Kube` over kubernetes-asyncio: pods, deployments and logs (reads only)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import yaml
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from bot.core.errors import ErrorCode, IntegrationError
from bot.domain.ports import DeploymentInfo, PodInfo, Revision

if TYPE_CHECKING:
    from bot.domain.ports import Kube, KubeOps

TIMEOUT = 10
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def default_namespace(
    configured: str | None,
    kubeconfig: Path | None,
    *,
    service_account: Path = SERVICE_ACCOUNT_NAMESPACE,
) -> str:
    """The namespace a command acts on when none is named, as kubectl decides it:
    KUBE_NAMESPACE if set, else the current kubeconfig context's namespace (in a pod: the
    service account's), else `default`."""
    if configured and configured.strip():
        return configured.strip()
    found: str | None = None
    if kubeconfig is not None:
        try:
            loaded = yaml.safe_load(kubeconfig.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            loaded = {}
        current = loaded.get("current-context") if isinstance(loaded, dict) else None
        for context in (loaded.get("contexts") or []) if isinstance(loaded, dict) else []:
            if isinstance(context, dict) and context.get("name") == current:
                found = (context.get("context") or {}).get("namespace")
    elif service_account.is_file():
        found = service_account.read_text(encoding="utf-8").strip()
    return str(found) if found else "default"


def _error(exc: Exception, what: str) -> IntegrationError:
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        if status == 404:
            return IntegrationError(
                "kubernetes", ErrorCode.NOT_FOUND, f"{what}: not found", permanent=True
            )
        if status == 429:
            headers: Any = exc.headers or {}
            retry = headers.get("Retry-After")
            return IntegrationError(
                "kubernetes",
                ErrorCode.RATE_LIMITED,
                f"{what}: throttled",
                retry_after=float(retry or 1),
            )
        return IntegrationError(
            "kubernetes",
            ErrorCode.for_status(status) if status else ErrorCode.UNAVAILABLE,
            f"{what}: HTTP {status}",
            permanent=400 <= status < 500,
        )
    return IntegrationError(
        "kubernetes", ErrorCode.for_exception(exc), f"{what}: {type(exc).__name__}"
    )


class KubeClient:
    """Built from a kubeconfig file or, with none, the in-cluster service account."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)

    @classmethod
    async def connect(cls, kubeconfig: Path | None) -> Self:
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
            paused=bool(d.spec.paused),
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


# -- writes (remediations; only ever called for an approved request) --------------------------

REVISION = "deployment.kubernetes.io/revision"
KEEP_FROM_DEPLOYMENT = (
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
)


class KubeWriter(KubeClient):
    """Rollback, restart and scale, done as `kubectl rollout undo|restart` and `scale` do."""

    async def _deployment_raw(self, namespace: str, name: str) -> Any:
        try:
            return await self.apps.read_namespaced_deployment(
                name, namespace, _request_timeout=TIMEOUT
            )
        except Exception as exc:
            raise _error(exc, f"deployment {namespace}/{name}") from exc

    async def history(self, namespace: str, name: str) -> list[Revision]:
        """The Deployment's ReplicaSets by revision, newest first (what `rollout history` shows)."""
        deployment = await self._deployment_raw(namespace, name)
        selector = ",".join(
            f"{k}={v}" for k, v in (deployment.spec.selector.match_labels or {}).items()
        )
        try:
            listed = await self.apps.list_namespaced_replica_set(
                namespace, label_selector=selector, _request_timeout=TIMEOUT
            )
        except Exception as exc:
            raise _error(exc, f"replicasets of {namespace}/{name}") from exc
        revisions = []
        for rs in listed.items or []:
            owners = rs.metadata.owner_references or []
            if not any(o.controller and o.uid == deployment.metadata.uid for o in owners):
                continue
            try:
                number = int((rs.metadata.annotations or {}).get(REVISION, "0") or 0)
            except ValueError:
                continue  # an unreadable revision: kubectl skips the ReplicaSet too
            containers = rs.spec.template.spec.containers or []
            revisions.append(
                Revision(
                    number=number,
                    image=containers[0].image if containers else "?",
                    created=rs.metadata.creation_timestamp,
                    replicaset=rs.metadata.name,
                    template=self.api.sanitize_for_serialization(rs.spec.template),
                    annotations=dict(rs.metadata.annotations or {}),
                )
            )
        return sorted(revisions, key=lambda r: r.number, reverse=True)

    async def rollback(self, namespace: str, name: str, revision: Revision) -> None:
        """`kubectl rollout undo --to-revision`: copy that ReplicaSet's template back."""
        deployment = await self._deployment_raw(namespace, name)
        if deployment.spec.paused:
            raise IntegrationError(
                "kubernetes",
                ErrorCode.CONFLICT,
                f"{name} is paused; resume it before rolling back",
                permanent=True,
            )
        template = dict(revision.template)
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels.pop("pod-template-hash", None)
        template["metadata"] = {**(template.get("metadata") or {}), "labels": labels}
        current = deployment.metadata.annotations or {}
        annotations = {
            k: v for k, v in revision.annotations.items() if k not in KEEP_FROM_DEPLOYMENT
        }
        annotations.update({k: current[k] for k in KEEP_FROM_DEPLOYMENT if k in current})
        patch = [
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations},
        ]
        try:
            await self.apps.patch_namespaced_deployment(  # type: ignore[call-arg]
                name, namespace, patch, _content_type="application/json-patch+json",
                _request_timeout=TIMEOUT,
            )  # fmt: skip
        except Exception as exc:
            raise _error(exc, f"rollback of {namespace}/{name}") from exc

    async def restart(self, namespace: str, name: str, *, at: str) -> None:
        """`kubectl rollout restart`: the restartedAt annotation on the pod template."""
        patch = {
            "spec": {
                "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": at}}}
            }
        }
        try:
            await self.apps.patch_namespaced_deployment(  # type: ignore[call-arg]
                name, namespace, patch, _content_type="application/strategic-merge-patch+json",
                _request_timeout=TIMEOUT,
            )  # fmt: skip
        except Exception as exc:
            raise _error(exc, f"restart of {namespace}/{name}") from exc

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        try:
            await self.apps.patch_namespaced_deployment_scale(  # type: ignore[call-arg]
                name, namespace, {"spec": {"replicas": replicas}},
                _content_type="application/merge-patch+json", _request_timeout=TIMEOUT,
            )  # fmt: skip
        except Exception as exc:
            raise _error(exc, f"scale of {namespace}/{name}") from exc

    async def rollout_status(self, namespace: str, name: str) -> tuple[bool, str]:
        """(done, message) as `kubectl rollout status` decides them."""
        d = await self._deployment_raw(namespace, name)
        status = d.status
        desired = int(d.spec.replicas or 0)
        updated = int(status.updated_replicas or 0)
        total = int(status.replicas or 0)
        available = int(status.available_replicas or 0)
        if int(d.metadata.generation or 0) > int(status.observed_generation or 0):
            return False, "waiting for the spec update to be observed"
        for condition in status.conditions or []:
            if condition.type == "Progressing" and condition.reason == "ProgressDeadlineExceeded":
                return False, f"deployment {name} exceeded its progress deadline"
        if updated < desired:
            return False, f"{updated} of {desired} new replicas updated"
        if total > updated:
            return False, f"{total - updated} old replicas pending termination"
        if available < updated:
            return False, f"{available} of {updated} updated replicas available"
        return True, f"deployment {name} successfully rolled out ({available}/{desired} ready)"


if TYPE_CHECKING:  # mypy proves the adapters are the ports (bot/domain/ports.py)

    def _conforms(reader: KubeClient, writer: KubeWriter) -> tuple[Kube, KubeOps]:
        return reader, writer
