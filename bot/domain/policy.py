"""The severity policy (`severities.yml`): validated data, no Slack or database here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from bot.core import yamlfile
from bot.core.errors import ConfigError
from bot.core.timefmt import parse_duration

SEVERITY_KEYS = ("sev1", "sev2", "sev3", "sev4")
DEFAULT_PROMPT = (
    "{who}: time for a status update on {ref} ({severity}). Last update {since} ago."
    " What is the status, the impact, and the next step?"
)


Duration = Annotated[float | None, BeforeValidator(parse_duration)]


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slack: str | None = None
    pagerduty_user: str | None = None
    pagerduty_escalation_policy: str | None = None


class SeverityLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    definition: str
    examples: list[str] = Field(default_factory=list)
    respond_within: Duration = None
    status_every: Duration = None
    escalate_after: Duration = None
    escalate_to: list[str] = Field(default_factory=list)
    pagerduty_urgency: Literal["high", "low"] = "low"
    # Wording of the status prompt; {who} {ref} {title} {severity} {since} are filled in.
    prompt: str = DEFAULT_PROMPT


class ChecklistStage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(pattern=r"^[a-z0-9_-]{1,30}$")
    title: str
    after: Duration  # after resolution
    items: list[str] = Field(min_length=1, max_length=10)


class SeverityFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sev1: SeverityLevel
    sev2: SeverityLevel
    sev3: SeverityLevel
    sev4: SeverityLevel
    default: Literal["sev1", "sev2", "sev3", "sev4"] = "sev3"
    contacts: dict[str, Contact] = Field(default_factory=dict)
    post_incident: list[ChecklistStage] = Field(default_factory=list)


@dataclass(frozen=True)
class SeverityPolicy:
    levels: Mapping[str, SeverityLevel]
    default: str
    contacts: Mapping[str, Contact]
    post_incident: Sequence[ChecklistStage] = ()

    def stage(self, key: str) -> ChecklistStage | None:
        return next((s for s in self.post_incident if s.key == key), None)

    def level(self, key: str) -> SeverityLevel:
        return self.levels[key]

    @staticmethod
    def label(key: str) -> str:
        return key.upper()


def load_severity_policy(playbooks_dir: Path) -> SeverityPolicy:
    path = playbooks_dir / "severities.yml"
    try:
        raw, root = yamlfile.read(path)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: not found") from exc
    try:
        parsed = SeverityFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(yamlfile.problems(path, root, exc)) from exc
    keys = [stage.key for stage in parsed.post_incident]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{path}: post_incident stage keys must be unique")
    for stage in parsed.post_incident:
        if stage.after is None:
            raise ConfigError(f"{path}: post_incident.{stage.key}.after must be a duration")
    for key in SEVERITY_KEYS:
        level = getattr(parsed, key)
        try:
            level.prompt.format(who="", ref="", title="", severity="", since="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"{yamlfile.where(path, root, [key, 'prompt'])} has an unknown placeholder: {exc}"
            ) from exc
        for name in level.escalate_to:
            if name not in parsed.contacts:
                raise ConfigError(
                    f"{yamlfile.where(path, root, [key, 'escalate_to'])} names unknown contact"
                    f" {name!r}"
                )
    return SeverityPolicy(
        levels={key: getattr(parsed, key) for key in SEVERITY_KEYS},
        default=parsed.default,
        contacts=parsed.contacts,
        post_incident=parsed.post_incident,
    )
