"""What approved remediations do, and how they prove it. No Slack here.

`preview` shows exactly what will happen before anyone approves (for a rollback: the current
and the target revision with image and age); `run` does it once and then verifies the effect
(bounded), so the timeline can say what changed, not just that a call returned.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel

from bot.diagnostics.probes import Lag
from bot.errors import IntegrationError, NotFound, UsageError, UserError
from bot.integrations.kubernetes import Revision
from bot.models import Clock, utcnow
from bot.remediation.registry import (
    BreakerParams,
    DeploymentTarget,
    FlagParams,
    RollbackParams,
    ScaleParams,
    SecretParams,
)
from bot.timefmt import human_duration


class KubeOps(Protocol):
    async def history(self, namespace: str, name: str) -> list[Revision]: ...

    async def rollback(self, namespace: str, name: str, revision: Revision) -> None: ...

    async def restart(self, namespace: str, name: str, *, at: str) -> None: ...

    async def scale(self, namespace: str, name: str, replicas: int) -> None: ...

    async def rollout_status(self, namespace: str, name: str) -> tuple[bool, str]: ...


class ActuatorOps(Protocol):
    async def circuit_breakers(self, service: str) -> dict[str, Any]: ...

    async def transition_breaker(
        self, service: str, name: str, update_state: str
    ) -> dict[str, Any]: ...

    async def flag(self, service: str, name: str, *, token: str) -> dict[str, Any]: ...

    async def set_flag(
        self, service: str, name: str, value: Any, *, token: str, expected_version: int | None,
        actor: str, reason: str,
    ) -> dict[str, Any]: ...  # fmt: skip


TokenSource = Callable[[], Awaitable[str | None]]


class SecretOps(Protocol):
    async def versions(self, path: str) -> list[int]: ...

    async def rotate(self, path: str, key: str, *, new_value: str | None = None) -> Any: ...

    async def read(self, path: str, key: str, *, version: int | None = None) -> Any: ...


# resilience4j's actuator endpoint knows only these transitions (no HALF_OPEN).
BREAKER_UPDATES = {"CLOSED": "CLOSE", "FORCED_OPEN": "FORCE_OPEN", "DISABLED": "DISABLE"}
CONFIG_SERVICE = "config-service"


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
        actuator: ActuatorOps | None = None,
        flag_token: TokenSource | None = None,
        secrets: SecretOps | None = None,
        lag: Lag | None = None,
        clock: Clock = utcnow,
        verify_timeout: float = 120.0,
        poll: float = 0.5,
    ) -> None:
        self.kube = kube
        self.actuator = actuator
        self.flag_token = flag_token
        self.secrets = secrets
        self.lag = lag
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
            lines = [
                f"Scale `{params.namespace}/{params.deployment}` (`{history[0].image}`)"
                f" to {params.replicas} replicas"
            ]
            lag = await self._group_lag(params.consumer_group)
            if lag is not None:
                lines.append(f"consumer group `{params.consumer_group}` lag now: {lag}")
            return Preview(lines=lines, data={"replicas": params.replicas, "lag_before": lag})
        if isinstance(params, DeploymentTarget) and action == "restart_deployment":
            history = await self.history(params)
            return Preview(
                lines=[
                    f"Rolling restart of `{params.namespace}/{params.deployment}`"
                    f" (revision {history[0].number}, `{history[0].image}`)"
                ]
            )
        if isinstance(params, BreakerParams) and action == "circuit_breaker":
            state = await self._breaker_state(params)
            to = params.to or "CLOSED"
            if to not in BREAKER_UPDATES:
                raise UsageError(
                    f"resilience4j cannot move a breaker to {to} through its endpoint; CLOSE it,"
                    " FORCE it OPEN or DISABLE it."
                )
            return Preview(
                lines=[f"Circuit breaker `{params.service}/{params.breaker}`: {state} → {to}"],
                data={"from": state, "to": to},
            )
        if isinstance(params, FlagParams) and action == "feature_flag":
            flag = await self._flag(params.flag)
            return Preview(
                lines=[
                    f"Feature flag `{params.flag}`: {json.dumps(flag.get('value'))}"
                    f" → {json.dumps(params.value)} (version {flag.get('version')})"
                ],
                data={"version": flag.get("version"), "from": flag.get("value")},
            )
        if isinstance(params, SecretParams) and action == "rotate_secret":
            versions = await self._vault_versions(params.path)
            return Preview(
                lines=[
                    f"Rotate `{params.key}` at `{params.path}` (Vault KV v2): write version"
                    f" {versions[-1] + 1}; version {versions[-1]} stays readable for rollback."
                    " The value is never shown."
                ],
                data={"version": versions[-1]},
            )
        raise NotAvailable(f"`{action}` is not available yet in this build.")

    def _vault(self) -> SecretOps:
        if self.secrets is None:
            raise NotAvailable("Vault is not configured (VAULT_ADDR and a token or AppRole).")
        return self.secrets

    async def _vault_versions(self, path: str) -> list[int]:
        try:
            versions = await self._vault().versions(path)
        except IntegrationError as exc:
            if "not found" in str(exc):
                raise NotFound(f"There is no secret at `{path}` in Vault.") from exc
            raise
        if not versions:
            raise NotFound(f"There is no readable version of `{path}` in Vault.")
        return versions

    def _actuator(self) -> ActuatorOps:
        if self.actuator is None:
            raise NotAvailable("Service endpoints are not configured (SERVICE_URL_TEMPLATE).")
        return self.actuator

    async def _breaker_state(self, p: BreakerParams) -> str:
        body = await self._actuator().circuit_breakers(p.service)
        breakers = body.get("circuitBreakers") or {}
        if p.breaker not in breakers:
            known = ", ".join(sorted(breakers)) or "none"
            raise NotFound(f"`{p.service}` has no circuit breaker `{p.breaker}` (it has: {known}).")
        return str(breakers[p.breaker].get("state"))

    async def _token(self) -> str:
        token = await self.flag_token() if self.flag_token else None
        if not token:
            raise NotAvailable(
                "No feature-flag admin token (FEATURE_FLAG_TOKEN, or feature_flag_token in Vault)."
            )
        return token

    async def _flag(self, name: str) -> dict[str, Any]:
        try:
            return await self._actuator().flag(CONFIG_SERVICE, name, token=await self._token())
        except IntegrationError as exc:
            if exc.permanent and "not found" in str(exc):
                raise NotFound(f"There is no feature flag `{name}`.") from exc
            raise

    async def run(self, action: str, params: BaseModel, preview: dict[str, Any]) -> Outcome:
        if isinstance(params, BreakerParams):
            return await self._run_breaker(params, preview)
        if isinstance(params, FlagParams):
            return await self._run_flag(params, preview)
        if isinstance(params, SecretParams):
            return await self._run_rotation(params)
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
            if params.consumer_group:
                ok, verification = await self._wait_rolled_out(ns, name)
                after = await self._group_lag(params.consumer_group)
                before = preview.get("lag_before")
                verification += f"; `{params.consumer_group}` lag {before} → {after}"
                return Outcome(ok, done, verification)
        else:
            at = self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
            await kube.restart(ns, name, at=at)
            done = f"restarted {ns}/{name}"
        ok, verification = await self._wait_rolled_out(ns, name)
        return Outcome(ok, done, verification)

    async def _run_breaker(self, p: BreakerParams, preview: dict[str, Any]) -> Outcome:
        to = str(preview["to"])
        await self._actuator().transition_breaker(p.service, p.breaker, BREAKER_UPDATES[to])
        state = await self._breaker_state(p)
        done = f"circuit breaker {p.service}/{p.breaker} {preview['from']} → {to}"
        return Outcome(state == to, done, f"the breaker now reports {state}")

    async def _run_flag(self, p: FlagParams, preview: dict[str, Any]) -> Outcome:
        version = preview.get("version")
        await self._actuator().set_flag(
            CONFIG_SERVICE, p.flag, p.value, token=await self._token(),
            expected_version=int(version) if version is not None else None,
            actor="icbot", reason="approved remediation",
        )  # fmt: skip
        now = await self._flag(p.flag)
        ok = now.get("value") == p.value
        return Outcome(
            ok,
            f"feature flag {p.flag} set to {json.dumps(p.value)}",
            f"the config service now reports {json.dumps(now.get('value'))}",
        )

    async def _run_rotation(self, p: SecretParams) -> Outcome:
        vault = self._vault()
        result = await vault.rotate(p.path, p.key)
        versions = await vault.versions(p.path)
        await vault.read(p.path, p.key, version=result.new_version)  # readable, not shown
        kept = result.old_version in versions
        return Outcome(
            result.new_version in versions and kept,
            f"rotated `{p.key}` at `{p.path}`: version {result.old_version} → {result.new_version}",
            f"version {result.new_version} is readable"
            + (f" and version {result.old_version} is kept for rollback" if kept else ""),
        )

    async def _group_lag(self, group: str | None) -> int | None:
        """Total lag of a consumer group, or None (no group, Kafka off or not answering)."""
        if group is None or self.lag is None:
            return None
        try:
            lags = await self.lag.consumer_lag(group, None)
        except IntegrationError:
            return None
        return sum(v for v in lags.values() if v is not None)

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
