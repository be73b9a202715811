"""Playbooks as data: one YAML file each in PLAYBOOKS_DIR, validated with Pydantic.

Every check and remediation a playbook names must exist in its registry, and its parameters
must validate against that entry's model; errors name the file and line. Start-up refuses an
invalid playbook (`icbot playbooks validate` shows why).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

import bot.playbooks.checks.library  # noqa: F401  (registers the bundled checks)
from bot.core.errors import ConfigError
from bot.domain.policy import Duration
from bot.playbooks.checks import CHECKS
from bot.playbooks.remediations import REMEDIATIONS

POLICY_FILES = {"severities.yml", "approvals.yml"}
SLUG = r"^[a-z0-9][a-z0-9-]{0,39}$"
Band = Literal["normal", "warning", "critical"]


class Threshold(BaseModel):
    """Normal / Warning / Critical, as in the runbook's Key Metrics table.

    `above`: normal below `warning`, critical above `critical`, warning in between (inclusive).
    `below`: the mirror image (e.g. a success rate).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    warning: float
    critical: float
    direction: Literal["above", "below"] = "above"
    unit: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        if self.direction == "above" and self.warning > self.critical:
            raise ValueError("for direction 'above', warning must not exceed critical")
        if self.direction == "below" and self.warning < self.critical:
            raise ValueError("for direction 'below', warning must not be under critical")
        return self

    def band(self, value: float) -> Band:
        if self.direction == "above":
            if value > self.critical:
                return "critical"
            return "warning" if value >= self.warning else "normal"
        if value < self.critical:
            return "critical"
        return "warning" if value <= self.warning else "normal"

    def describe(self) -> str:
        w, c, u = f"{self.warning:g}", f"{self.critical:g}", self.unit
        warning = f"at {w}{u}" if w == c else None  # a band of one value: said once
        if self.direction == "above":
            return f"normal <{w}{u}, warning {warning or f'{w}-{c}{u}'}, critical >{c}{u}"
        return f"normal >{w}{u}, warning {warning or f'{c}-{w}{u}'}, critical <{c}{u}"


class CheckRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z0-9_]{1,40}$")
    check: str
    title: str = Field(min_length=1, max_length=80)
    params: dict[str, Any] = Field(default_factory=dict)
    thresholds: Threshold | None = None
    timeout: Duration = 5.0

    @model_validator(mode="after")
    def _known(self) -> CheckRef:
        spec = CHECKS.get(self.check)
        if spec is None:
            raise ValueError(f"unknown check {self.check!r}; known: {', '.join(sorted(CHECKS))}")
        spec.params.model_validate(self.params)
        if self.timeout is None or not 0 < self.timeout <= 60:
            raise ValueError("timeout must be between 0 and 60 seconds")
        return self

    def parsed_params(self) -> BaseModel:
        return CHECKS[self.check].params.model_validate(self.params)


class RemediationRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    action: str
    label: str = Field(min_length=1, max_length=60)
    params: dict[str, Any] = Field(default_factory=dict)
    when: str | None = None  # in which case the runbook suggests it

    @model_validator(mode="after")
    def _known(self) -> RemediationRef:
        spec = REMEDIATIONS.get(self.action)
        if spec is None:
            known = ", ".join(sorted(REMEDIATIONS))
            raise ValueError(f"unknown remediation {self.action!r}; known: {known}")
        spec.params.model_validate(self.params)
        return self


class GrafanaPanel(BaseModel):
    """A dashboard (and optionally one of its panels) the incident is annotated on at resolve."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    dashboard_uid: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    panel_id: int | None = Field(default=None, ge=1)


ComponentStatus = Literal[
    "degraded_performance", "partial_outage", "major_outage", "under_maintenance"
]  # fmt: skip


class StatuspageRef(BaseModel):
    """`statuspage:` in a playbook: the Statuspage components its incidents affect, by name or
    id as the page shows them, and the status they get while the incident is open (unset: from
    the severity, see `bot/playbooks/remediations/statuspage.py`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    components: list[str] = Field(min_length=1, max_length=20)
    impact: ComponentStatus | None = None

    @model_validator(mode="after")
    def _names(self) -> StatuspageRef:
        for name in self.components:
            if not name.strip() or len(name) > 100:
                raise ValueError(f"component {name!r} must be a name or id (1-100 characters)")
        return self


class Playbook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=SLUG)
    title: str = Field(min_length=1, max_length=100)
    aliases: list[str] = Field(default_factory=list)
    summary: str
    source: str = ""  # which runbook section it comes from
    symptoms: list[str] = Field(default_factory=list)
    severity: Literal["sev1", "sev2", "sev3", "sev4"] | None = None
    checks: list[CheckRef] = Field(default_factory=list)
    steps: list[str] = Field(default_factory=list)
    remediations: list[RemediationRef] = Field(default_factory=list)
    escalation: list[str] = Field(default_factory=list)
    verification: list[CheckRef] = Field(default_factory=list)
    grafana: list[GrafanaPanel] = Field(default_factory=list)  # one mapping, or a list of them

    @field_validator("grafana", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, dict) else value

    statuspage: StatuspageRef | None = None  # issue 21: the public status page's components

    @model_validator(mode="after")
    def _unique_ids(self) -> Playbook:
        ids = [c.id for c in [*self.checks, *self.verification]]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"check ids must be unique: {', '.join(dupes)}")
        for alias in self.aliases:
            if not re.match(SLUG, alias):
                raise ValueError(f"alias {alias!r} must be a short lower-case word")
        if not (self.checks or self.steps):
            raise ValueError("a playbook needs checks or steps")
        return self


@dataclass(frozen=True)
class Catalogue:
    playbooks: Mapping[str, Playbook]

    def find(self, name: str) -> Playbook | None:
        key = name.strip().lower()
        if key in self.playbooks:
            return self.playbooks[key]
        return next((p for p in self.playbooks.values() if key in p.aliases), None)

    def suggest(self, text: str, *, limit: int = 3) -> list[Playbook]:
        """Playbooks whose name, aliases or symptoms share words with `text`. A word found in
        more than a fifth of the playbooks (at least two) tells them apart no better than
        "incident" does, and is not counted."""
        words = _words(text)
        vocabs = {
            playbook.name: _words(
                " ".join([playbook.name, playbook.title, *playbook.aliases, *playbook.symptoms])
            )
            for playbook in self.playbooks.values()
        }
        common_over = max(2, len(vocabs) // 5)
        words = {w for w in words if sum(w in v for v in vocabs.values()) <= common_over}
        scored = []
        for playbook in self.playbooks.values():
            score = len(words & vocabs[playbook.name])
            if score:
                scored.append((-score, playbook.name, playbook))
        return [p for _, _, p in sorted(scored)[:limit]]


_STOP = {
    "the",
    "a",
    "an",
    "is",
    "of",
    "and",
    "or",
    "in",
    "on",
    "to",
    "for",
    "not",
    "being",
    "failing",
    "failure",
    "high",
    "rate",
}


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2 and w not in _STOP}


def _line(root: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the YAML node at `loc` (or of its nearest existing parent)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, int):
            continue  # one mapping where a list is allowed (`grafana: {...}`): its own item
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            if child is None:  # a check's or remediation's own parameter: look in `params`
                params = next(
                    (v for k, v in node.value if getattr(k, "value", None) == "params"), None
                )
                if isinstance(params, yaml.MappingNode):
                    child = next(
                        (v for k, v in params.value if getattr(k, "value", None) == part), None
                    )
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            child = node.value[part]
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line


def _load_file(path: Path) -> tuple[Playbook | None, list[str]]:
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        return None, [f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}"]
    try:
        return Playbook.model_validate(raw), []
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            loc = [p for p in err["loc"] if isinstance(p, int | str)]
            line = _line(root, loc)
            field = ".".join(str(p) for p in loc) or "(file)"
            message = err["msg"].removeprefix("Value error, ")
            errors.append(f"{path}:{line or 1}: {field}: {message}")
        return None, errors


def playbook_files(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.glob("*.y*ml")
        if p.name not in POLICY_FILES and p.suffix in (".yml", ".yaml")
    )


def validate_dir(directory: Path) -> tuple[Catalogue, list[str]]:
    """Load every playbook in `directory`; returns what loaded and every error, file:line first."""
    playbooks: dict[str, Playbook] = {}
    errors: list[str] = []
    owners: dict[str, str] = {}
    for path in playbook_files(directory):
        playbook, problems = _load_file(path)
        errors.extend(problems)
        if playbook is None:
            continue
        for key in [playbook.name, *playbook.aliases]:
            if key in owners and owners[key] != playbook.name:
                errors.append(f"{path}:1: name or alias {key!r} is also used by {owners[key]!r}")
            owners.setdefault(key, playbook.name)
        playbooks[playbook.name] = playbook
    return Catalogue(playbooks=playbooks), errors


def load_catalogue(directory: Path) -> Catalogue:
    catalogue, errors = validate_dir(directory)
    if errors:
        raise ConfigError("invalid playbooks:\n" + "\n".join(errors))
    return catalogue


def names(playbooks: Iterable[Playbook]) -> str:
    return ", ".join(sorted(p.name for p in playbooks))
