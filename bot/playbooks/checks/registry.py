"""The check registry: name -> (parameter model, function)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True)
class Reading:
    """What a check measured: a number to hold against thresholds, and words for people."""

    value: float | None
    detail: str
    unit: str = ""


CheckFn = Callable[[Any, Any], Awaitable[Reading]]


@dataclass(frozen=True)
class CheckSpec:
    name: str
    params: type[BaseModel]
    run: CheckFn
    summary: str


CHECKS: dict[str, CheckSpec] = {}


def check(
    name: str, params: type[P], summary: str
) -> Callable[[Callable[[P, Any], Awaitable[Reading]]], Callable[[P, Any], Awaitable[Reading]]]:
    """Register a read-only check. The function gets its validated params and the probes."""

    def register(
        fn: Callable[[P, Any], Awaitable[Reading]],
    ) -> Callable[[P, Any], Awaitable[Reading]]:
        if name in CHECKS:
            raise ValueError(f"check {name!r} registered twice")
        CHECKS[name] = CheckSpec(name=name, params=params, run=fn, summary=summary)
        return fn

    return register
