"""`Mailer` over SMTP with aiosmtplib (the email fallback when Slack is down).

`SMTP_URL` says where and how: ``smtp://user:password@host:587`` connects in the clear and
upgrades with STARTTLS (required when there is a password, so it never crosses the network in
the clear; without credentials STARTTLS is used when the server offers it), ``smtps://host:465``
speaks TLS from the first byte. Default ports: 587 and 465. The password lives in a
`SecretStr` and appears in no message, log or exception of this module: errors name the host
and port and the server's reply code only.

SMTP has no way to ask "did you get this message before?", so a send retried after a crash
cannot be looked up as the Slack outbox looks up its posts. Each message therefore carries a
`Message-ID` made from the caller's stable key (the same on every retry), which is what
receivers and mail stores deduplicate on; `References` threads an incident's emails together.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import aiosmtplib
from pydantic import SecretStr

from bot.core.errors import ErrorCode, IntegrationError
from bot.core.settings import Settings, smtp_url_problem

if TYPE_CHECKING:
    from bot.domain.ports import Mailer

SERVICE = "smtp"
TIMEOUT = 15.0


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool
    username: str | None = None
    password: SecretStr | None = None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpTarget:
    """The parts of an SMTP_URL (user and password percent-decoded). Raises ValueError."""
    problem = smtp_url_problem(url)
    if problem:
        raise ValueError(problem)
    parts = urlsplit(url.strip())
    implicit = parts.scheme == "smtps"
    assert parts.hostname is not None
    return SmtpTarget(
        host=parts.hostname,
        port=parts.port or (465 if implicit else 587),
        implicit_tls=implicit,
        username=unquote(parts.username) if parts.username else None,
        password=SecretStr(unquote(parts.password)) if parts.password else None,
    )


def default_sender(target: SmtpTarget) -> str:
    if target.username and "@" in target.username:
        return target.username
    return f"icbot@{target.host}"


class SmtpMailer:
    def __init__(
        self,
        target: SmtpTarget,
        *,
        sender: str,
        ca_bundle: Path | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.target = target
        self.sender = sender
        self.domain = sender.rpartition("@")[2] or target.host
        self.timeout = timeout
        self._tls = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpMailer | None:
        """The mailer SMTP_URL describes, or None when email is not configured."""
        if settings.smtp_url is None:
            return None
        target = parse_smtp_url(settings.smtp_url.get_secret_value())
        return cls(
            target,
            sender=settings.smtp_from or default_sender(target),
            ca_bundle=settings.smtp_ca_bundle,
        )

    def message_id(self, key: str) -> str:
        return f"<{key}@{self.domain}>"

    async def send(
        self, *, to: Sequence[str], subject: str, body: str, key: str, thread: str
    ) -> str:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = self.message_id(key)
        message["References"] = self.message_id(thread)
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
        message.set_content(body)
        t = self.target
        try:
            refused, _reply = await aiosmtplib.send(
                message,
                hostname=t.host,
                port=t.port,
                username=t.username,
                password=t.password.get_secret_value() if t.password else None,
                use_tls=t.implicit_tls,
                # With a password STARTTLS is required (an error if not offered); without one,
                # None means "if the server offers it".
                start_tls=None if t.implicit_tls or t.password is None else True,
                tls_context=self._tls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPException as exc:
            raise _wrap(exc, t) from exc
        except (OSError, TimeoutError) as exc:
            raise IntegrationError(
                SERVICE,
                ErrorCode.for_exception(exc),
                f"cannot reach {t.where} ({type(exc).__name__})",
            ) from exc
        if refused:
            codes = sorted({str(r.code) for r in refused.values()})
            raise IntegrationError(
                SERVICE,
                ErrorCode.REFUSED,
                f"{t.where} refused {len(refused)} of {len(to)} recipients ({', '.join(codes)})",
                permanent=True,
            )
        return str(message["Message-ID"])


def _wrap(exc: aiosmtplib.SMTPException, target: SmtpTarget) -> IntegrationError:
    """The adapter's error for aiosmtplib's: the server's reply code, never our credentials."""
    where = target.where
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return IntegrationError(
            SERVICE, ErrorCode.DENIED, f"{where} refused the SMTP_URL credentials ({exc.code})",
            permanent=True,
        )  # fmt: skip
    if isinstance(exc, aiosmtplib.SMTPTimeoutError):
        return IntegrationError(SERVICE, ErrorCode.TIMEOUT, f"{where} did not answer in time")
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected):
        return IntegrationError(SERVICE, ErrorCode.UNAVAILABLE, f"cannot reach {where}")
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return IntegrationError(
            SERVICE, ErrorCode.REFUSED, f"{where} refused every recipient", permanent=True
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        # 4xx: try again later; 5xx: this message (or this account) will not get through.
        permanent = exc.code >= 500
        return IntegrationError(
            SERVICE,
            ErrorCode.REFUSED if permanent else ErrorCode.UNAVAILABLE,
            f"{where} answered {exc.code}",
            permanent=permanent,
        )
    # What is left is aiosmtplib refusing to go on: the server offers no STARTTLS (and we
    # have a password to send) or no AUTH method we speak. Asking again will not help.
    return IntegrationError(
        SERVICE, ErrorCode.DENIED,
        f"{where} does not offer what SMTP_URL needs (STARTTLS before a password, or AUTH)",
        permanent=True,
    )  # fmt: skip


if TYPE_CHECKING:  # mypy proves the adapter is the port (bot/domain/ports.py)

    def _conforms(adapter: SmtpMailer) -> Mailer:
        return adapter
