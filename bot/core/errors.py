"""The bot's exceptions. Raised in domain code and adapters, caught only at the edge.

    IcbotError
    ├── UserError            the user asked for something that cannot be done; shown to them as is
    │   ├── UsageError       the command itself is malformed (unknown subcommand, bad argument)
    │   ├── NotFound         an incident, user or playbook that does not exist
    │   ├── Ambiguous        several incidents could be meant; carries the choices
    │   └── Conflict         the state forbids it (e.g. changing a resolved incident)
    ├── Repeated             this Slack request was handled already (or is being handled) by
    │                        another delivery of it: the edge answers nothing (bot.domain.once)
    ├── IntegrationError     an outside system (Slack, PagerDuty, ...) failed: .service names
    │                        which one, .code (ErrorCode) says how, set by the adapter in
    │                        bot.integrations; callers decide on .code (and Slack's .reason),
    │                        never on the message text
    └── ConfigError          a settings or policy file is invalid

    ErrorCode (StrEnum)      not_found · conflict · rate_limited · unavailable · timeout ·
                             denied · refused

Anything else is a bug: the edge logs it with an error id and shows the user only the id.
Integration errors are counted where they are handled (icbot_integration_errors_total
{service}): the edge and the delivery workers call ``metrics.integration_error``; building
one counts nothing (an adapter may build one that a caller then expects and absorbs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from bot.core import wording
from bot.core.wording import Flavour, Piece


class IcbotError(Exception):
    """Base of every error the bot raises on purpose."""


class UserError(IcbotError):
    """Shown to the user who caused it, ephemerally, exactly as written.

    Words with people, commands or outside names in them are given as pieces of
    `bot.core.wording` (`Conflict(Person(user), " is already ", Said(role), " of INC-1.")`),
    not as Slack text: `text(flavour)` renders them where they are shown, `str()` is their
    Slack wording (what the edge replies).
    """

    def __init__(self, *said: str | Piece) -> None:
        self.said: tuple[str | Piece, ...] = said
        super().__init__(wording.join(said, Flavour.SLACK))

    def text(self, flavour: Flavour) -> str:
        return wording.join(self.said, flavour)


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


class ErrorCode(StrEnum):
    """How an outside system failed, as the adapter that called it understood the answer."""

    NOT_FOUND = "not_found"  # what was named does not exist there (HTTP 404, unknown topic)
    CONFLICT = "conflict"  # it changed under us (Vault check-and-set); nothing was written
    RATE_LIMITED = "rate_limited"  # slow down: ``retry_after`` says for how long
    UNAVAILABLE = "unavailable"  # down, unreachable, HTTP 5xx: a later retry may pass
    TIMEOUT = "timeout"  # no answer in time
    DENIED = "denied"  # our credentials or their permissions (HTTP 401/403, missing scope)
    REFUSED = "refused"  # the request itself was refused (other 4xx, invalid input)

    @classmethod
    def for_status(cls, status: int) -> ErrorCode:
        """The code of an HTTP error status (4xx, 5xx)."""
        if status == 404:
            return cls.NOT_FOUND
        if status == 409:
            return cls.CONFLICT
        if status == 429:
            return cls.RATE_LIMITED
        if status in (401, 403):
            return cls.DENIED
        if status in (408, 504):
            return cls.TIMEOUT
        return cls.UNAVAILABLE if status >= 500 else cls.REFUSED

    @classmethod
    def for_exception(cls, exc: BaseException) -> ErrorCode:
        """The code of a transport failure: a timeout, or the other side unreachable."""
        return cls.TIMEOUT if isinstance(exc, TimeoutError) else cls.UNAVAILABLE


class IntegrationError(IcbotError):
    """`service` failed with `code`; `message` says what, for people (never matched on).

    ``reason`` is the outside system's own name for the error where it has one (Slack's
    ``not_in_channel``, ``message_not_found``) for the callers that act on one of them.
    """

    def __init__(
        self,
        service: str,
        code: ErrorCode,
        message: str,
        *,
        reason: str | None = None,
        retry_after: float | None = None,
        permanent: bool = False,
    ) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service
        self.code = code
        self.message = message
        self.reason = reason
        self.retry_after = retry_after
        self.permanent = permanent  # retrying the same request will not help


class ConfigError(IcbotError):
    pass
