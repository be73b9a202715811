"""The remediation catalogue: name -> parameter model (and, once built, the action)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

P = TypeVar("P", bound=BaseModel)
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


class BreakerTransitionParams(_Params):
    service: str = Field(pattern=NAME)
    breaker: str = Field(min_length=1, max_length=100)
    to: Literal["CLOSED", "FORCED_OPEN", "HALF_OPEN", "DISABLED"] | None = None  # None = reset


class FlagParams(_Params):
    flag: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")
    value: bool | str | int


class SecretParams(_Params):
    path: str = Field(pattern=r"^[A-Za-z0-9_./-]{1,200}$")
    key: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")


PreviewFn = Callable[[Any, Any], Awaitable[Any]]  # (params, remediator) -> Preview
RunFn = Callable[[Any, dict[str, Any], Any], Awaitable[Any]]  # (params, preview, r) -> Outcome
BackoutFn = Callable[[Any, dict[str, Any]], str]  # (params, stored preview) -> what undoes it


@dataclass(frozen=True)
class RemediationSpec:
    name: str
    params: type[BaseModel]
    summary: str
    preview: PreviewFn | None = None
    run: RunFn | None = None
    # What it changes ("deployment waqiti/payment-service"): one run per target at a time.
    target: Callable[[Any], str] | None = None
    # What undoes it, from the state its preview was shown against (a change record's back-out).
    backout: BackoutFn | None = None


REMEDIATIONS: dict[str, RemediationSpec] = {}


def remediation(name: str, params: type[P], summary: str) -> Callable[[type[Any]], type[Any]]:
    """Register a remediation: a class with `preview(params, r)`, `run(params, preview, r)`,
    `target(params)` and `backout(params, preview)`.

    `preview` says exactly what will happen (and refuses unknown targets) before anyone
    approves, and records the state it was shown against; `run` does it once and verifies the
    effect; `target` names what it changes; `backout` says what undoes it, from the state the
    stored preview recorded. `r` is the Remediator (the clients).
    """

    def register(cls: type[Any]) -> type[Any]:
        if name in REMEDIATIONS:
            raise ValueError(f"remediation {name!r} registered twice")
        REMEDIATIONS[name] = RemediationSpec(
            name=name, params=params, summary=summary, preview=cls.preview, run=cls.run,
            target=getattr(cls, "target", None), backout=getattr(cls, "backout", None),
        )  # fmt: skip
        return cls

    return register
