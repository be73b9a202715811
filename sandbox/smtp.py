"""A local SMTP server that keeps what it receives: aiosmtpd, on 127.0.0.1, in this event loop.

The real SMTP protocol (aiosmtpd implements RFC 5321 with ESMTP, STARTTLS per RFC 3207 and AUTH
PLAIN/LOGIN per RFC 4954; https://aiosmtpd.readthedocs.io/en/latest/smtp.html), so the bot's
aiosmtplib client is tested against a real server, not a mock:

- ``FakeSmtp()``: no TLS, no AUTH (a relay on a trusted network; ``smtp://127.0.0.1:PORT``).
- ``FakeSmtp(username=…, password=…, tls=make_local_tls())``: offers STARTTLS with the sandbox
  CA's certificate and requires AUTH, refused before TLS (aiosmtpd's ``auth_require_tls``,
  "538 5.7.11 Encryption required") and with wrong credentials ("535 5.7.8 Authentication
  credentials invalid"), as RFC 4954 says.
- ``implicit_tls=True``: TLS from the first byte (``smtps://``, RFC 8314). aiosmtpd cannot see
  that its transport is TLS already, so AUTH would be withheld; ``auth_require_tls=False`` is
  the workaround its maintainers give (https://github.com/aio-libs/aiosmtpd/issues/281).

Every accepted message is parsed into :attr:`FakeSmtp.messages` (with its envelope) and handed
to the :attr:`FakeSmtp.on_message` listeners (the shell prints it). :meth:`FakeSmtp.fail` makes
the next messages get a 4xx or 5xx reply to ``DATA``. Passwords are compared, never kept.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from sandbox.loopback import StandIn
from sandbox.tls import LocalTLS

__all__ = ["FakeSmtp", "ReceivedMail"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: EmailMessage
    tls: bool  # arrived over TLS (STARTTLS or implicit)
    login: str | None  # the AUTH user, if any

    @property
    def subject(self) -> str:
        return str(self.message["Subject"]).strip()  # a folded long subject unfolds to " …"

    @property
    def body(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return str(part.get_content()) if part is not None else ""

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


class _Handler:
    def __init__(self, server: FakeSmtp) -> None:
        self.server = server

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        if self.server._faults:
            return self.server._faults.pop(0)
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data
        mail = ReceivedMail(
            sender=str(envelope.mail_from),
            recipients=[str(r) for r in envelope.rcpt_tos],
            message=message,
            tls=session.ssl is not None or self.server.implicit_tls,
            login=login if isinstance(login, str) else None,
        )
        self.server.messages.append(mail)
        for listener in self.server.on_message:
            listener(mail)
        return "250 2.0.0 Message accepted for delivery"


class FakeSmtp(StandIn):
    """``async with FakeSmtp(...) as smtp:``; point SMTP_URL at :attr:`url`."""

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: LocalTLS | None = None,
        implicit_tls: bool = False,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        if implicit_tls and tls is None:
            raise ValueError("implicit TLS needs tls")
        self.username = username
        self._password = password
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.messages: list[ReceivedMail] = []
        self.on_message: list[Callable[[ReceivedMail], None]] = []
        self.failed_logins: list[str] = []  # the user names of refused AUTH attempts
        self._faults: list[str] = []
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    def fail(self, reply: str = "451 4.3.0 Try again later", *, times: int = 1) -> None:
        """Answer the next ``times`` messages' DATA with ``reply`` (4xx or 5xx)."""
        self._faults.extend([reply] * times)

    def url(self, *, password: str | None = None) -> str:
        """SMTP_URL for this server (``password`` overrides the right one: a wrong-password
        test)."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        auth = ""
        if self.username is not None:
            secret = password if password is not None else self._password
            auth = f"{quote(self.username, safe='')}:{quote(secret or '', safe='')}@"
        return f"{scheme}://{auth}127.0.0.1:{self.port}"

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword) or self.username is None:
            return AuthResult(success=False, handled=False)
        login = data.login.decode(errors="replace")
        good = hmac.compare_digest(login.encode(), self.username.encode()) and (
            hmac.compare_digest(data.password, (self._password or "").encode())
        )
        if not good:
            self.failed_logins.append(login)
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=login)

    def _protocol(self) -> SMTP:
        starttls = self.tls.server_context() if self.tls and not self.implicit_tls else None
        kwargs: dict[str, Any] = {"hostname": "icbot-sandbox-smtp", "tls_context": starttls}
        if self.username is not None:
            kwargs.update(auth_required=True, authenticator=self._authenticate)
        if self.implicit_tls:
            kwargs["auth_require_tls"] = False  # TLS already (aio-libs/aiosmtpd#281)
        return SMTP(_Handler(self), **kwargs)

    async def start(self) -> None:
        if self._server is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        context = self.tls.server_context() if self.tls and self.implicit_tls else None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, sock=sock, ssl=context)
        self.port = int(sock.getsockname()[1])

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
