"""The remediation catalogue: name -> parameter model (and, once built, the action)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

NAME = r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$"


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeploymentTarget(_Params):
    namespace: str = Field(default="waqiti", pattern=NAME)
    deployment: str = Field(pattern=NAME)


class RollbackParams(DeploymentTarget):
    revision: int | None = Field(default=None, ge=1)  # default: the previous revision


class ScaleParams(DeploymentTarget):
    replicas: int = Field(ge=0, le=200)
    # A Kafka consumer deployment: show its group's lag before and after scaling.
    consumer_group: str | None = Field(default=None, min_length=1, max_length=200)


class BreakerParams(_Params):
    service: str = Field(pattern=NAME)
    breaker: str = Field(min_length=1, max_length=100)
    to: Literal["CLOSED", "FORCED_OPEN", "HALF_OPEN", "DISABLED"] | None = None  # None = reset


class FlagParams(_Params):
    flag: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")
    value: bool | str | int


class SecretParams(_Params):
    path: str = Field(pattern=r"^[A-Za-z0-9_./-]{1,200}$")
    key: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")


@dataclass(frozen=True)
class RemediationSpec:
    name: str
    params: type[BaseModel]
    summary: str


REMEDIATIONS: dict[str, RemediationSpec] = {
    spec.name: spec
    for spec in (
        RemediationSpec("rollback_deployment", RollbackParams, "Roll a Deployment back"),
        RemediationSpec("restart_deployment", DeploymentTarget, "Rolling restart"),
        RemediationSpec("scale_deployment", ScaleParams, "Scale a Deployment"),
        RemediationSpec("circuit_breaker", BreakerParams, "Transition or reset a breaker"),
        RemediationSpec("feature_flag", FlagParams, "Set a feature flag"),
        RemediationSpec("rotate_secret", SecretParams, "Rotate a Vault secret"),
    )
}
