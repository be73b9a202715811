"""Sandbox scenarios: small declarative YAML files in `sandbox/scenarios/`, validated here.

A scenario describes the simulated Waqiti platform at the start of a drill: the Deployments
(image, ReplicaSet history, replicas), how each image behaves (crash-looping, its start-up log
lines, the actuator counters it moves, the circuit breakers it holds open), each service's
actuator state (breakers, health components, gauges, log lines already written), feature
flags, the Kafka streams with their consumer groups, and an optional monitoring alert that
pages through PagerDuty. `extends: healthy` starts from another scenario and changes only
what it names:

* `deployments`, `images`, `streams`: an entry replaces the base entry of the same key;
* `services`: merged per field (`breakers`, `health`, `gauges`, `counters` key by key; `logs`
  replaced);
* `flags`: key by key; `pagerduty`, `title`, `summary`, `hint`: replaced.

The merged result is validated once more, so a consumer, a breaker or a metric a scenario
refers to must exist. Errors name the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.core.errors import ConfigError
from bot.domain.policy import Duration
from bot.playbooks.catalogue import _line

SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"
DEFAULT_SCENARIO = "bad-deploy"
SLUG = r"^[a-z0-9][a-z0-9-]{0,39}$"
NAME = r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$"
METRIC_REF = r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?/[A-Za-z0-9._-]{1,200}$"
BREAKER_REF = r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?/[A-Za-z0-9._-]{1,100}$"

BreakerState = Literal["CLOSED", "OPEN", "HALF_OPEN", "FORCED_OPEN", "DISABLED"]
HealthStatus = Literal["UP", "DOWN", "OUT_OF_SERVICE", "UNKNOWN"]
FlagValue = bool | int | float | str


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageSpec(_Model):
    """How pods running one image behave, and what the service does while it runs."""

    crashloop: bool = False
    ready_after: int = Field(default=0, ge=0, le=100)  # controller ticks before ready
    logs: list[str] | None = None  # written by every container at start (and each crash)
    log_repeat: int = Field(default=1, ge=1, le=200)  # `logs` repeated, `{n}` numbered
    counters: dict[str, float] = Field(default_factory=dict)  # its own rates (see services)
    breakers: dict[str, BreakerState] = Field(default_factory=dict)  # held while it runs

    def log_lines(self) -> list[str] | None:
        return expand(self.logs, self.log_repeat) if self.logs is not None else None


class DeploymentSpec(_Model):
    image: str = Field(min_length=1, max_length=200)
    history: list[str] = Field(default_factory=list)  # earlier images, oldest first
    replicas: int = Field(default=2, ge=0, le=50)
    namespace: str = Field(default="waqiti", pattern=NAME)
    service: str | None = Field(default=None, pattern=NAME)  # default: the same name, if any
    uptime: Duration = 3600.0  # how long the current pods have run (counters start there)

    @model_validator(mode="after")
    def _distinct_images(self) -> DeploymentSpec:
        images = [*self.history, self.image]
        if len(set(images)) != len(images):
            raise ValueError("history images must differ from each other and from the image")
        return self


class ServiceSpec(_Model):
    """A service's actuator endpoints when the scenario starts."""

    breakers: dict[str, BreakerState] = Field(default_factory=dict)
    health: dict[str, HealthStatus] = Field(default_factory=dict)
    gauges: dict[str, float] = Field(default_factory=dict)
    counters: dict[str, float] = Field(default_factory=dict)  # per second, since pods started
    logs: list[str] = Field(default_factory=list)  # already in the running pods' logs
    log_repeat: int = Field(default=1, ge=1, le=200)


class StreamSpec(_Model):
    """A Kafka topic, its producers and one consumer group (the key of `streams`)."""

    topic: str = Field(pattern=r"^[A-Za-z0-9._-]{1,200}$")
    partitions: int = Field(default=3, ge=1, le=12)
    lag: int = Field(default=0, ge=0, le=1_000_000)  # lag when the scenario starts
    produce_per_second: float = Field(default=0, ge=0, le=20_000)
    consumer: str | None = Field(default=None, pattern=NAME)  # Deployment whose ready pods read
    consume_per_replica: float = Field(default=0, ge=0, le=20_000)
    paused_by: str | None = Field(default=None, pattern=BREAKER_REF)  # service/breaker not CLOSED
    produced_metrics: list[str] = Field(default_factory=list)  # service/counter = records sent
    consumed_metrics: list[str] = Field(default_factory=list)  # service/counter = records read
    metric_base: int = Field(default=0, ge=0)  # counted before the scenario started

    @model_validator(mode="after")
    def _refs(self) -> StreamSpec:
        for ref in [*self.produced_metrics, *self.consumed_metrics]:
            if not re.match(METRIC_REF, ref):
                raise ValueError(f"{ref!r} is not service/metric")
        return self


class PagerDutySpec(_Model):
    alert: str | None = Field(default=None, max_length=200)  # triggered once webhooks flow
    severity: Literal["critical", "error", "warning", "info"] = "critical"


class ScenarioFile(_Model):
    """One file as written: everything optional except its name (for `extends`)."""

    name: str = Field(pattern=SLUG)
    extends: str | None = Field(default=None, pattern=SLUG)
    title: str | None = Field(default=None, max_length=100)
    summary: str | None = Field(default=None, max_length=400)
    hint: str | None = Field(default=None, max_length=400)
    deployments: dict[str, DeploymentSpec] = Field(default_factory=dict)
    images: dict[str, ImageSpec] = Field(default_factory=dict)
    services: dict[str, ServiceSpec] = Field(default_factory=dict)
    flags: dict[str, FlagValue] = Field(default_factory=dict)
    streams: dict[str, StreamSpec] = Field(default_factory=dict)
    pagerduty: PagerDutySpec | None = None

    @model_validator(mode="after")
    def _names(self) -> ScenarioFile:
        for kind, keys in (("deployment", self.deployments), ("service", self.services)):
            for key in keys:
                if not re.match(NAME, key):
                    raise ValueError(f"{kind} name {key!r} must be a lower-case DNS-style name")
        return self


class Scenario(_Model):
    """A scenario with its base merged in, checked as a whole."""

    name: str = Field(pattern=SLUG)
    title: str = Field(min_length=1, max_length=100)
    summary: str = Field(min_length=1, max_length=400)
    hint: str = Field(min_length=1, max_length=400)
    deployments: dict[str, DeploymentSpec]
    images: dict[str, ImageSpec] = Field(default_factory=dict)
    services: dict[str, ServiceSpec] = Field(default_factory=dict)
    flags: dict[str, FlagValue] = Field(default_factory=dict)
    streams: dict[str, StreamSpec] = Field(default_factory=dict)
    pagerduty: PagerDutySpec = Field(default_factory=PagerDutySpec)

    @model_validator(mode="after")
    def _joins(self) -> Scenario:
        for name, dep in self.deployments.items():
            if dep.service is not None and dep.service not in self.services:
                raise ValueError(f"deployment {name}: unknown service {dep.service!r}")
        for group, stream in self.streams.items():
            if stream.consumer is not None and stream.consumer not in self.deployments:
                raise ValueError(f"stream {group}: unknown consumer deployment {stream.consumer!r}")
            if stream.paused_by is not None:
                service, _, breaker = stream.paused_by.partition("/")
                if breaker not in self.breakers(service):
                    raise ValueError(f"stream {group}: unknown breaker {stream.paused_by!r}")
            for ref in [*stream.produced_metrics, *stream.consumed_metrics]:
                if ref.partition("/")[0] not in self.services:
                    raise ValueError(f"stream {group}: unknown service in {ref!r}")
        for name, dep in self.deployments.items():
            owner = self.service_of(name)
            for image in (*dep.history, dep.image):
                for breaker in self.image(image).breakers:
                    if owner is None or breaker not in self.breakers(owner):
                        raise ValueError(f"image {image}: {name} has no breaker {breaker!r}")
        return self

    def service_of(self, deployment: str | None) -> str | None:
        """The actuator service whose counters and breakers follow this Deployment's pods."""
        if deployment is None or deployment not in self.deployments:
            return None
        explicit = self.deployments[deployment].service
        if explicit is not None:
            return explicit
        return deployment if deployment in self.services else None

    def breakers(self, service: str) -> set[str]:
        spec = self.services.get(service)
        return set(spec.breakers) if spec is not None else set()

    def image(self, image: str) -> ImageSpec:
        return self.images.get(image) or ImageSpec()

    def counter_rates(self, service: str, image: str) -> dict[str, float]:
        """Per-second increments of the service's counters while its pods run `image`."""
        spec = self.services.get(service)
        return {**(spec.counters if spec else {}), **self.image(image).counters}

    def intro(self) -> str:
        """What the shell prints at start: what is going on, and what to try."""
        return f"Scenario {self.name}: {self.title}. {self.summary}\nTry: {self.hint}"


def expand(lines: list[str], repeat: int) -> list[str]:
    """`lines` `repeat` times, with `{n}` in a line replaced by a running number."""
    out: list[str] = []
    n = 0
    for _ in range(repeat):
        for line in lines:
            n += 1
            out.append(line.replace("{n}", str(1000 + n)))
    return out


def scenario_files(directory: Path = SCENARIOS_DIR) -> dict[str, Path]:
    return {p.stem: p for p in sorted(directory.glob("*.y*ml")) if p.suffix in (".yml", ".yaml")}


def list_scenarios(directory: Path = SCENARIOS_DIR) -> list[str]:
    """Names of the scenarios in `directory` (the bundled ones by default), sorted."""
    return sorted(scenario_files(directory))


def _read(path: Path) -> ScenarioFile:
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    try:
        parsed = ScenarioFile.model_validate(raw)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            loc = [p for p in err["loc"] if isinstance(p, int | str)]
            field = ".".join(str(p) for p in loc) or "(file)"
            message = err["msg"].removeprefix("Value error, ")
            errors.append(f"{path}:{_line(root, loc) or 1}: {field}: {message}")
        raise ConfigError("invalid scenario:\n" + "\n".join(errors)) from None
    if parsed.name != path.stem:
        raise ConfigError(f"{path}:1: name {parsed.name!r} must match the file name")
    return parsed


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if key in ("deployments", "images", "streams", "flags"):
            merged[key] = {**base.get(key, {}), **value}
        elif key == "services":
            services = dict(base.get(key, {}))
            for name, spec in value.items():
                old = dict(services.get(name, {}))
                for field, item in spec.items():
                    if field in ("breakers", "health", "gauges", "counters"):
                        old[field] = {**old.get(field, {}), **item}
                    else:
                        old[field] = item
                services[name] = old
            merged[key] = services
        else:
            merged[key] = value
    return merged


def _resolve(name: str, files: Mapping[str, Path], seen: tuple[str, ...]) -> dict[str, Any]:
    if name in seen:
        raise ConfigError(f"scenario {name!r} extends itself ({' → '.join([*seen, name])})")
    path = files.get(name)
    if path is None:
        known = ", ".join(sorted(files)) or "none"
        raise ConfigError(f"there is no scenario {name!r}; scenarios: {known}")
    parsed = _read(path)
    own = parsed.model_dump(exclude_unset=True, exclude={"extends"})
    if parsed.extends is None:
        return own
    return _merge(_resolve(parsed.extends, files, (*seen, name)), own)


def load_scenario(name: str, directory: Path = SCENARIOS_DIR) -> Scenario:
    """The named scenario with its bases merged in; `ConfigError` saying what is wrong."""
    files = scenario_files(directory)
    raw = _resolve(name, files, ())
    raw["name"] = name
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'scenario'}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigError(f"{files[name]}: invalid scenario {name!r}: {problems}") from None
