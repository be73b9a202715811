"""What approved remediations do, and how they prove it. No Slack here.

`preview` shows exactly what will happen before anyone approves (for a rollback: the current
and the target revision with image and age); `run` does it once and then verifies the effect
(bounded), so the timeline can say what changed, not just that a call returned.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel

from bot.errors import NotFound, UsageError, UserError
from bot.integrations.kubernetes import Revision
from bot.models import Clock, utcnow
from bot.remediation.registry import DeploymentTarget, RollbackParams, ScaleParams
from bot.timefmt import human_duration


class KubeOps(Protocol):
    async def history(self, namespace: str, name: str) -> list[Revision]: ...

    async def rollback(self, namespace: str, name: str, revision: Revision) -> None: ...

    async def restart(self, namespace: str, name: str, *, at: str) -> None: ...

    async def scale(self, namespace: str, name: str, replicas: int) -> None: ...

    async def rollout_status(self, namespace: str, name: str) -> tuple[bool, str]: ...


@dataclass(frozen=True)
class Preview:
    lines: list[str]
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    summary: str
    verification: str


class NotAvailable(UserError):
    """The action is in the catalogue but this build cannot carry it out (yet)."""


class Remediator:
    def __init__(
        self,
        kube: KubeOps | None,
        *,
        clock: Clock = utcnow,
        verify_timeout: float = 120.0,
        poll: float = 0.5,
    ) -> None:
        self.kube = kube
        self.clock = clock
        self.verify_timeout = verify_timeout
        self.poll = poll

    def _kube(self) -> KubeOps:
        if self.kube is None:
            raise NotAvailable("Kubernetes is not configured (KUBECONFIG or in-cluster).")
        return self.kube

    def _age(self, when: datetime | None) -> str:
        return (
            f"{human_duration((self.clock() - when).total_seconds())} old"
            if when
            else "age unknown"
        )

    async def history(self, p: DeploymentTarget) -> list[Revision]:
        try:
            history = await self._kube().history(p.namespace, p.deployment)
        except Exception as exc:
            if "not found" in str(exc):
                raise NotFound(
                    f"There is no deployment `{p.deployment}` in namespace `{p.namespace}`."
                ) from exc
            raise
        if not history:
            raise UserError(f"`{p.deployment}` has no rollout history.")
        return history

    async def preview(self, action: str, params: BaseModel) -> Preview:
        if isinstance(params, RollbackParams) and action == "rollback_deployment":
            history = await self.history(params)
            current = history[0]
            target: Revision | None
            if params.revision is None:
                if len(history) < 2:
                    raise UserError(f"`{params.deployment}` has no earlier revision to go back to.")
                target = history[1]
            else:
                target = next((r for r in history if r.number == params.revision), None)
                if target is None:
                    known = ", ".join(str(r.number) for r in history)
                    raise UsageError(
                        f"`{params.deployment}` has no revision {params.revision};"
                        f" revisions: {known}."
                    )
            if target.number == current.number:
                raise UserError(f"`{params.deployment}` is already at revision {current.number}.")
            return Preview(
                lines=[
                    f"Roll back `{params.namespace}/{params.deployment}`",
                    f"from revision {current.number}: `{current.image}`"
                    f" ({self._age(current.created)})",
                    f"to revision {target.number}: `{target.image}` ({self._age(target.created)})",
                ],
                data={
                    "current": {"revision": current.number, "image": current.image},
                    "target": {"revision": target.number, "image": target.image},
                },
            )
        if isinstance(params, ScaleParams) and action == "scale_deployment":
            history = await self.history(params)
            return Preview(
                lines=[
                    f"Scale `{params.namespace}/{params.deployment}` (`{history[0].image}`)"
                    f" to {params.replicas} replicas"
                ],
                data={"replicas": params.replicas},
            )
        if isinstance(params, DeploymentTarget) and action == "restart_deployment":
            history = await self.history(params)
            return Preview(
                lines=[
                    f"Rolling restart of `{params.namespace}/{params.deployment}`"
                    f" (revision {history[0].number}, `{history[0].image}`)"
                ]
            )
        raise NotAvailable(f"`{action}` is not available yet in this build.")

    async def run(self, action: str, params: BaseModel, preview: dict[str, Any]) -> Outcome:
        kube = self._kube()
        assert isinstance(params, DeploymentTarget)
        ns, name = params.namespace, params.deployment
        if isinstance(params, RollbackParams):
            target_number = int(preview["target"]["revision"])
            target = next(
                (r for r in await kube.history(ns, name) if r.number == target_number), None
            )
            if target is None:
                return Outcome(False, f"revision {target_number} is gone from the history", "")
            await kube.rollback(ns, name, target)
            done = f"rolled back {ns}/{name} to revision {target_number} (`{target.image}`)"
        elif isinstance(params, ScaleParams):
            await kube.scale(ns, name, params.replicas)
            done = f"scaled {ns}/{name} to {params.replicas} replicas"
        else:
            at = self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
            await kube.restart(ns, name, at=at)
            done = f"restarted {ns}/{name}"
        ok, verification = await self._wait_rolled_out(ns, name)
        return Outcome(ok, done, verification)

    async def _wait_rolled_out(self, namespace: str, name: str) -> tuple[bool, str]:
        """Bounded wait for `kubectl rollout status` to say done."""
        deadline = time.monotonic() + self.verify_timeout
        message = ""
        while time.monotonic() < deadline:
            done, message = await self._kube().rollout_status(namespace, name)
            if done:
                return True, message
            if "progress deadline" in message:
                return False, message
            await asyncio.sleep(self.poll)
        return False, f"not rolled out after {human_duration(self.verify_timeout)}: {message}"
