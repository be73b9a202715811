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
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from bot.core.errors import ErrorCode, IntegrationError, NotFound, UserError
from bot.core.models import Clock, utcnow
from bot.core.timefmt import human_duration
from bot.core.wording import Code
from bot.domain.ports import (
    ActuatorOps,
    KubeOps,
    Lag,
    Revision,
    SecretOps,
    TokenSource,
)
from bot.playbooks.remediations.registry import (
    REMEDIATIONS,
    BreakerTransitionParams,
    DeploymentTarget,
    PreviewFn,
    RunFn,
)

if TYPE_CHECKING:
    from bot.playbooks.remediations.statuspage import StatusPages


# resilience4j's actuator endpoint knows only these transitions (no HALF_OPEN).
BREAKER_UPDATES = {"CLOSED": "CLOSE", "FORCED_OPEN": "FORCE_OPEN", "DISABLED": "DISABLE"}
CONFIG_SERVICE = "config-service"


@dataclass(frozen=True)
class Preview:
    """What will happen, and the state of the target it was shown against: `state` is read
    again just before running, and if it differs nothing runs (approve what you saw)."""

    lines: list[str]
    data: dict[str, Any] = field(default_factory=dict)
    subject: str = ""  # the target as people name it: "`waqiti/payment-service`"
    state: dict[str, Any] = field(default_factory=dict)
    state_text: str = ""  # the state in words: "revision 3 (`payments:1.4.2`)"

    def stored(self) -> dict[str, Any]:
        """As kept with the request (its `preview` column)."""
        return {
            "lines": self.lines, **self.data, "subject": self.subject, "state": self.state,
            "state_text": self.state_text,
        }  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    ok: bool
    summary: str
    verification: str
    retryable: bool = False  # not done, and nothing changed: a fresh request may try again


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
        namespace: str = "default",
        statuspage: StatusPages | None = None,
    ) -> None:
        self.statuspage = statuspage  # public updates (issue 21); None: not configured
        # Where a deployment is looked for when none is named: KUBE_NAMESPACE, else the
        # kubeconfig context's namespace (as kubectl), else "default".
        self.namespace = namespace
        self.kube = kube
        self.actuator = actuator
        self.flag_token = flag_token
        self.secrets = secrets
        self.lag = lag
        self.clock = clock
        self.verify_timeout = verify_timeout
        self.poll = poll

    def kube_ops(self) -> KubeOps:
        if self.kube is None:
            raise NotAvailable("Kubernetes is not configured (KUBECONFIG or in-cluster).")
        return self.kube

    def age(self, when: datetime | None) -> str:
        return (
            f"{human_duration((self.clock() - when).total_seconds())} old"
            if when
            else "age unknown"
        )

    async def history(self, p: DeploymentTarget) -> list[Revision]:
        try:
            history = await self.kube_ops().history(p.namespace, p.deployment)
        except IntegrationError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                raise NotFound(
                    "There is no deployment ", Code(p.deployment), " in namespace ",
                    Code(p.namespace), ".",
                ) from exc  # fmt: skip
            raise
        if not history:
            raise UserError(Code(p.deployment), " has no rollout history.")
        return history

    async def refuse_paused(self, p: DeploymentTarget) -> None:
        """kubectl refuses to restart or roll back a paused Deployment; so do we, up front."""
        deployment = await self.kube_ops().deployment(p.namespace, p.deployment)
        if deployment.paused:
            raise UserError(
                Code(f"{p.namespace}/{p.deployment}"), " is paused, so it would not roll out."
                " Resume it first (",
                Code(f"kubectl rollout resume deployment/{p.deployment} -n {p.namespace}"),
                "), then ask again.",
            )  # fmt: skip

    async def changed(self, action: str, params: BaseModel, shown: dict[str, Any]) -> str | None:
        """Read the target again just before running: None if it is as the preview showed it,
        else what changed, in words."""
        if "state" not in shown:
            return None  # a request made before previews recorded their state
        preview_fn, _ = self._spec(action)
        subject = str(shown.get("subject") or "The target")
        try:
            now: Preview = await preview_fn(params, self)
        except UserError as exc:
            return f"{subject} has changed: {exc}"
        if now.state == shown["state"]:
            return None
        return (
            f"{subject} has changed: now {now.state_text}, this request was for"
            f" {shown.get('state_text')}"
        )

    async def preview(self, action: str, params: BaseModel) -> Preview:
        """What the action will do, shown before anyone approves; refuses unknown targets."""
        preview_fn, _ = self._spec(action)
        preview: Preview = await preview_fn(params, self)
        return preview

    async def run(self, action: str, params: BaseModel, preview: dict[str, Any]) -> Outcome:
        """Do it (once: the approvals flow guarantees that) and verify the effect."""
        _, run_fn = self._spec(action)
        outcome: Outcome = await run_fn(params, preview, self)
        return outcome

    @staticmethod
    def _spec(action: str) -> tuple[PreviewFn, RunFn]:
        spec = REMEDIATIONS.get(action)
        if spec is None or spec.preview is None or spec.run is None:
            raise NotAvailable(Code(action), " is not available yet in this build.")
        return spec.preview, spec.run

    def statuspage_ops(self) -> StatusPages:
        if self.statuspage is None:
            raise NotAvailable(
                "Statuspage is not configured (STATUSPAGE_API_KEY and STATUSPAGE_PAGE_ID)."
            )
        return self.statuspage

    def vault_ops(self) -> SecretOps:
        if self.secrets is None:
            raise NotAvailable("Vault is not configured (VAULT_ADDR and a token or AppRole).")
        return self.secrets

    async def vault_versions(self, path: str) -> list[int]:
        try:
            versions = await self.vault_ops().versions(path)
        except IntegrationError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                raise NotFound("There is no secret at ", Code(path), " in Vault.") from exc
            raise
        if not versions:
            raise NotFound("There is no readable version of ", Code(path), " in Vault.")
        return versions

    def actuator_ops(self) -> ActuatorOps:
        if self.actuator is None:
            raise NotAvailable("Service endpoints are not configured (SERVICE_URL_TEMPLATE).")
        return self.actuator

    async def breaker_state(self, p: BreakerTransitionParams) -> str:
        body = await self.actuator_ops().circuit_breakers(p.service)
        breakers = body.get("circuitBreakers") or {}
        if p.breaker not in breakers:
            known = ", ".join(sorted(breakers)) or "none"
            raise NotFound(
                Code(p.service), " has no circuit breaker ", Code(p.breaker), f" (it has: {known})."
            )
        return str(breakers[p.breaker].get("state"))

    async def token(self) -> str:
        token = await self.flag_token() if self.flag_token else None
        if not token:
            raise NotAvailable(
                "No feature-flag admin token (FEATURE_FLAG_TOKEN, or feature_flag_token in Vault)."
            )
        return token

    async def flag_value(self, name: str) -> dict[str, Any]:
        try:
            return await self.actuator_ops().flag(CONFIG_SERVICE, name, token=await self.token())
        except IntegrationError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                raise NotFound("There is no feature flag ", Code(name), ".") from exc
            raise

    async def group_lag(self, group: str | None) -> int | None:
        """Total lag of a consumer group, or None (no group, Kafka off or not answering)."""
        if group is None or self.lag is None:
            return None
        try:
            lags = await self.lag.consumer_lag(group, None)
        except IntegrationError:
            return None
        return sum(v for v in lags.values() if v is not None)

    async def wait_rolled_out(self, namespace: str, name: str) -> tuple[bool, str]:
        """Bounded wait for `kubectl rollout status` to say done."""
        deadline = time.monotonic() + self.verify_timeout
        message = ""
        while time.monotonic() < deadline:
            done, message = await self.kube_ops().rollout_status(namespace, name)
            if done:
                return True, message
            if "progress deadline" in message:
                return False, message
            await asyncio.sleep(self.poll)
        return False, f"not rolled out after {human_duration(self.verify_timeout)}: {message}"
