"""The bundled remediations, registered by name (`@remediation`) with their parameter models.

Each has a `preview` (exactly what will happen, shown on the approval card; refuses unknown
targets) and a `run` (do it once, then verify the effect). Adding one: a params model in
`registry.py`, a class here, and an entry in `approvals.yml` if it needs a stricter rule.
"""

from __future__ import annotations

import json
from typing import Any

from bot.core.errors import UsageError, UserError
from bot.core.wording import Code
from bot.domain.ports import Revision
from bot.playbooks.remediations.registry import (
    BreakerTransitionParams,
    DeploymentTarget,
    FlagParams,
    RollbackParams,
    ScaleParams,
    SecretParams,
    remediation,
)
from bot.playbooks.remediations.runner import (
    BREAKER_UPDATES,
    CONFIG_SERVICE,
    Outcome,
    Preview,
    Remediator,
)


def _deployment(p: DeploymentTarget) -> str:
    return f"deployment {p.namespace}/{p.deployment}"


def _state(preview: dict[str, Any]) -> dict[str, Any]:
    """The state the stored preview was shown against (empty for requests from before)."""
    state = preview.get("state")
    return state if isinstance(state, dict) else {}


def _at(revision: Revision) -> tuple[dict[str, Any], str]:
    """A deployment's state as a preview records it, and in words."""
    return (
        {"revision": revision.number, "image": revision.image},
        f"revision {revision.number} (`{revision.image}`)",
    )


@remediation("rollback_deployment", RollbackParams, "Roll a Deployment back (kubectl rollout undo)")
class RollbackDeployment:
    target = staticmethod(_deployment)

    @staticmethod
    def backout(p: RollbackParams, preview: dict[str, Any]) -> str:
        was = _state(preview)
        return (
            f"Roll `{p.namespace}/{p.deployment}` forward again to the previous revision,"
            f" {was.get('revision')} (`{was.get('image')}`): `/rollback {p.deployment}"
            f" {was.get('revision')} --namespace {p.namespace}`"
        )

    @staticmethod
    async def preview(p: RollbackParams, r: Remediator) -> Preview:
        history = await r.history(p)
        await r.refuse_paused(p)
        current = history[0]
        target: Revision | None
        if p.revision is None:
            if len(history) < 2:
                raise UserError(Code(p.deployment), " has no earlier revision to go back to.")
            target = history[1]
        else:
            target = next((rev for rev in history if rev.number == p.revision), None)
            if target is None:
                known = ", ".join(str(rev.number) for rev in history)
                raise UsageError(
                    Code(p.deployment), f" has no revision {p.revision}; revisions: {known}."
                )
        if target.number == current.number:
            raise UserError(Code(p.deployment), f" is already at revision {current.number}.")
        return Preview(
            lines=[
                f"Roll back `{p.namespace}/{p.deployment}`",
                f"from revision {current.number}: `{current.image}` ({r.age(current.created)})",
                f"to revision {target.number}: `{target.image}` ({r.age(target.created)})",
            ],
            data={
                "current": {"revision": current.number, "image": current.image},
                "target": {"revision": target.number, "image": target.image},
            },
            subject=f"`{p.namespace}/{p.deployment}`",
            state=_at(current)[0],
            state_text=_at(current)[1],
        )

    @staticmethod
    async def run(p: RollbackParams, preview: dict[str, Any], r: Remediator) -> Outcome:
        number = int(preview["target"]["revision"])
        history = await r.kube_ops().history(p.namespace, p.deployment)
        target = next((rev for rev in history if rev.number == number), None)
        if target is None:
            return Outcome(False, f"revision {number} is gone from the history", "not run")
        await r.kube_ops().rollback(p.namespace, p.deployment, target)
        ok, verification = await r.wait_rolled_out(p.namespace, p.deployment)
        done = f"rolled back {p.namespace}/{p.deployment} to revision {number} (`{target.image}`)"
        return Outcome(ok, done, verification)


@remediation("restart_deployment", DeploymentTarget, "Rolling restart (kubectl rollout restart)")
class RestartDeployment:
    target = staticmethod(_deployment)

    @staticmethod
    def backout(p: DeploymentTarget, preview: dict[str, Any]) -> str:
        was = _state(preview)
        return (
            f"None needed: a restart changes no version; `{p.namespace}/{p.deployment}` stays"
            f" at revision {was.get('revision')} (`{was.get('image')}`)"
        )

    @staticmethod
    async def preview(p: DeploymentTarget, r: Remediator) -> Preview:
        current = (await r.history(p))[0]
        await r.refuse_paused(p)
        return Preview(
            lines=[
                f"Rolling restart of `{p.namespace}/{p.deployment}`"
                f" (revision {current.number}, `{current.image}`)"
            ],
            subject=f"`{p.namespace}/{p.deployment}`",
            state=_at(current)[0],
            state_text=_at(current)[1],
        )

    @staticmethod
    async def run(p: DeploymentTarget, preview: dict[str, Any], r: Remediator) -> Outcome:
        await r.kube_ops().restart(
            p.namespace, p.deployment, at=r.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        ok, verification = await r.wait_rolled_out(p.namespace, p.deployment)
        return Outcome(ok, f"restarted {p.namespace}/{p.deployment}", verification)


@remediation("scale_deployment", ScaleParams, "Scale a Deployment (and show a consumer's lag)")
class ScaleDeployment:
    target = staticmethod(_deployment)

    @staticmethod
    def backout(p: ScaleParams, preview: dict[str, Any]) -> str:
        was = _state(preview).get("replicas")
        return f"Scale `{p.namespace}/{p.deployment}` back to the previous {was} replicas"

    @staticmethod
    async def preview(p: ScaleParams, r: Remediator) -> Preview:
        current = (await r.history(p))[0]
        desired = (await r.kube_ops().deployment(p.namespace, p.deployment)).desired
        lines = [
            f"Scale `{p.namespace}/{p.deployment}` (`{current.image}`) from {desired}"
            f" to {p.replicas} replicas"
        ]
        lag = await r.group_lag(p.consumer_group)
        if lag is not None:
            lines.append(f"consumer group `{p.consumer_group}` lag now: {lag}")
        return Preview(
            lines=lines,
            data={"replicas": p.replicas, "lag_before": lag},
            subject=f"`{p.namespace}/{p.deployment}`",
            state={"replicas": desired},
            state_text=f"{desired} replicas",
        )

    @staticmethod
    async def run(p: ScaleParams, preview: dict[str, Any], r: Remediator) -> Outcome:
        await r.kube_ops().scale(p.namespace, p.deployment, p.replicas)
        ok, verification = await r.wait_rolled_out(p.namespace, p.deployment)
        if p.consumer_group:
            after = await r.group_lag(p.consumer_group)
            verification += f"; `{p.consumer_group}` lag {preview.get('lag_before')} → {after}"
        return Outcome(
            ok, f"scaled {p.namespace}/{p.deployment} to {p.replicas} replicas", verification
        )


@remediation(
    "circuit_breaker", BreakerTransitionParams, "Transition a resilience4j circuit breaker"
)
class CircuitBreaker:
    @staticmethod
    def target(p: BreakerTransitionParams) -> str:
        return f"circuit breaker {p.service}/{p.breaker}"

    @staticmethod
    def backout(p: BreakerTransitionParams, preview: dict[str, Any]) -> str:
        was = _state(preview).get("state")
        return f"Transition circuit breaker `{p.service}/{p.breaker}` back to the previous {was}"

    @staticmethod
    async def preview(p: BreakerTransitionParams, r: Remediator) -> Preview:
        state = await r.breaker_state(p)
        to = p.to or "CLOSED"
        if to not in BREAKER_UPDATES:
            raise UsageError(
                f"resilience4j cannot move a breaker to {to} through its endpoint; CLOSE it,"
                " FORCE it OPEN or DISABLE it."
            )
        return Preview(
            lines=[f"Circuit breaker `{p.service}/{p.breaker}`: {state} → {to}"],
            data={"from": state, "to": to},
            subject=f"Circuit breaker `{p.service}/{p.breaker}`",
            state={"state": state},
            state_text=state,
        )

    @staticmethod
    async def run(p: BreakerTransitionParams, preview: dict[str, Any], r: Remediator) -> Outcome:
        to = str(preview["to"])
        await r.actuator_ops().transition_breaker(p.service, p.breaker, BREAKER_UPDATES[to])
        state = await r.breaker_state(p)
        done = f"circuit breaker {p.service}/{p.breaker} {preview['from']} → {to}"
        return Outcome(state == to, done, f"the breaker now reports {state}")


@remediation("feature_flag", FlagParams, "Set a feature flag on the config service")
class FeatureFlag:
    @staticmethod
    def target(p: FlagParams) -> str:
        return f"feature flag {p.flag}"

    @staticmethod
    def backout(p: FlagParams, preview: dict[str, Any]) -> str:
        was = _state(preview)
        return (
            f"Set feature flag `{p.flag}` back to the previous value"
            f" {json.dumps(was.get('value'))} (it was version {was.get('version')})"
        )

    @staticmethod
    async def preview(p: FlagParams, r: Remediator) -> Preview:
        flag = await r.flag_value(p.flag)
        return Preview(
            lines=[
                f"Feature flag `{p.flag}`: {json.dumps(flag.get('value'))}"
                f" → {json.dumps(p.value)} (version {flag.get('version')})"
            ],
            data={"version": flag.get("version"), "from": flag.get("value")},
            subject=f"Feature flag `{p.flag}`",
            state={"version": flag.get("version"), "value": flag.get("value")},
            state_text=f"{json.dumps(flag.get('value'))} (version {flag.get('version')})",
        )

    @staticmethod
    async def run(p: FlagParams, preview: dict[str, Any], r: Remediator) -> Outcome:
        version = preview.get("version")
        await r.actuator_ops().set_flag(
            CONFIG_SERVICE, p.flag, p.value, token=await r.token(),
            expected_version=int(version) if version is not None else None,
            actor="icbot", reason="approved remediation",
        )  # fmt: skip
        now = await r.flag_value(p.flag)
        return Outcome(
            now.get("value") == p.value,
            f"feature flag {p.flag} set to {json.dumps(p.value)}",
            f"the config service now reports {json.dumps(now.get('value'))}",
        )


@remediation("rotate_secret", SecretParams, "Rotate a Vault KV v2 secret (old version kept)")
class RotateSecret:
    @staticmethod
    def target(p: SecretParams) -> str:
        # `secret/alerting/x` (as the vault CLI writes it) and `alerting/x` are one secret.
        return "secret " + p.path.strip("/").removeprefix("secret/")

    @staticmethod
    def backout(p: SecretParams, preview: dict[str, Any]) -> str:
        was = _state(preview).get("version")
        return (
            f"Roll `{p.path}` back to the previous version {was}, which stays readable"
            f" (`vault kv rollback -version={was} {p.path}`)"
        )

    @staticmethod
    async def preview(p: SecretParams, r: Remediator) -> Preview:
        versions = await r.vault_versions(p.path)
        return Preview(
            lines=[
                f"Rotate `{p.key}` at `{p.path}` (Vault KV v2): write version {versions[-1] + 1};"
                f" version {versions[-1]} stays readable for rollback. The value is never shown."
            ],
            data={"version": versions[-1]},
            subject=f"`{p.path}`",
            state={"version": versions[-1]},
            state_text=f"version {versions[-1]}",
        )

    @staticmethod
    async def run(p: SecretParams, preview: dict[str, Any], r: Remediator) -> Outcome:
        vault = r.vault_ops()
        result = await vault.rotate(p.path, p.key)
        versions = await vault.versions(p.path)
        await vault.read(p.path, p.key, version=result.new_version)  # readable, never shown
        kept = result.old_version in versions
        return Outcome(
            result.new_version in versions and kept,
            f"rotated `{p.key}` at `{p.path}`: version {result.old_version} → {result.new_version}",
            f"version {result.new_version} is readable"
            + (f" and version {result.old_version} is kept for rollback" if kept else ""),
        )
