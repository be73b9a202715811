"""The bot's exceptions. Raised in domain code and adapters, caught only at the edge.

    IcbotError
    ├── UserError            the user asked for something that cannot be done; shown to them as is
    │   ├── UsageError       the command itself is malformed (unknown subcommand, bad argument)
    │   ├── NotFound         an incident, user or playbook that does not exist
    │   ├── Ambiguous        several incidents could be meant; carries the choices
    │   └── Conflict         the state forbids it (e.g. changing a resolved incident)
    ├── Repeated             this Slack request was handled already (or is being handled) by
    │                        another delivery of it: the edge answers nothing (bot.domain.once)
    ├── IntegrationError     an outside system (Slack, PagerDuty, ...) failed; names which one
    │                        (each one raised is counted: icbot_integration_errors_total{service})
    └── ConfigError          a settings or policy file is invalid

Anything else is a bug: the edge logs it with an error id and shows the user only the id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.core import metrics


class IcbotError(Exception):
    """Base of every error the bot raises on purpose."""


class UserError(IcbotError):
    """Shown to the user who caused it, ephemerally, exactly as written."""


class UsageError(UserError):
    pass


class NotFound(UserError):
    pass


class Conflict(UserError):
    pass


@dataclass(frozen=True)
class Choice:
    label: str
    value: str


class Ambiguous(UserError):
    def __init__(self, message: str, choices: Sequence[Choice]) -> None:
        super().__init__(message)
        self.choices = list(choices)


class Repeated(IcbotError):
    """Another delivery of the same Slack request has done (or is doing) its work."""

    def __init__(self, key: str) -> None:
        super().__init__(f"request {key} was handled already")
        self.key = key


class IntegrationError(IcbotError):
    def __init__(
        self,
        system: str,
        message: str,
        *,
        retry_after: float | None = None,
        permanent: bool = False,
    ) -> None:
        super().__init__(f"{system}: {message}")
        self.system = system
        self.retry_after = retry_after
        self.permanent = permanent  # retrying the same request will not help
        metrics.integration_error(system)


class ConfigError(IcbotError):
    pass
