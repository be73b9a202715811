"""`icbot shell --sandbox`: the simulated platform wired into the terminal chat.

Kept here so `bot/runtime/shell.py` only needs a few lines::

    async with FakeSlack(...) as slack, ShellSandbox(scenario, out=out) as sandbox:
        settings = settings.model_copy(update={"slack_api_url": slack.url, **sandbox.overrides})
        ...  # open_services, Shell(...)
        await sandbox.attach(shell)    # webhooks flow, the alert fires, the hint is printed
        ...  # the read loop
        await sandbox.detach()         # PagerDuty writes delivered, the platform's state shown

With no scenario every step is a no-op, so the shell runs exactly as without the sandbox.

PagerDuty's webhooks come back through the bot's real HTTP route: `attach` serves
`bot/runtime/web.py`'s app (the same one `icbot serve` runs, so the V3 signature is checked) on
127.0.0.1 on a free port and subscribes the stand-in to its `/pagerduty/webhook`.
"""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from aiohttp import web
from pydantic import SecretStr
from slack_bolt.async_app import AsyncApp

from bot.core.errors import ConfigError
from bot.runtime.web import build_web_app
from commands.services import Services
from sandbox.jira import FakeJira
from sandbox.platform import SimulatedPlatform
from sandbox.slack_api import FakeSlack

if TYPE_CHECKING:
    from sandbox.smtp import FakeSmtp, ReceivedMail

NOTICE = "  ⚙ sandbox: "
# Email when Slack is down (issue 21): who gets it besides the roles, and how soon it starts.
SANDBOX_FALLBACK_EMAILS = "oncall@waqiti.example"
SANDBOX_SLACK_DOWN_AFTER = 20.0  # seconds (2 minutes in production): `/slack down`, `/wait 25`
JIRA_PEOPLE = ("dana", "erin", "sam")  # Jira users by their Slack email (an owner → assignee)
JIRA_DOMAIN = "waqiti.example"


class ShellLike(Protocol):
    """What the sandbox needs of `bot.runtime.shell.Shell`."""

    services: Services
    app: AsyncApp

    def flush(self) -> None: ...

    def print(self, text: str = "") -> None: ...


class ShellSandbox:
    def __init__(self, scenario: str | None, *, out: TextIO, state_dir: Path | None = None) -> None:
        self.scenario = scenario
        self.state_dir = state_dir
        self.out = out
        self.platform: SimulatedPlatform | None = None
        self._shell: ShellLike | None = None
        self._runner: web.AppRunner | None = None
        self.smtp: FakeSmtp | None = None  # receives the email fallback; prints what it gets
        self.jira: FakeJira | None = None  # Jira follow-ups (issue 21)
        self._jira_secret = secrets.token_hex(16)

    async def __aenter__(self) -> ShellSandbox:
        if self.scenario is not None:
            platform = SimulatedPlatform(self.scenario, state_dir=self.state_dir)
            try:
                await platform.start()
            except (OSError, RuntimeError) as exc:  # e.g. tansu missing (TansuNotFound)
                raise ConfigError(f"the sandbox could not start: {exc}") from exc
            self.platform = platform
            platform.on_notice.append(self._print_notice)
            from sandbox.smtp import FakeSmtp  # aiosmtpd: the `sandbox` extra, like the platform

            smtp = FakeSmtp()
            smtp.on_message.append(self._print_mail)
            try:
                await smtp.start()
            except OSError as exc:
                await platform.stop()
                raise ConfigError(f"the sandbox's SMTP server could not start: {exc}") from exc
            self.smtp = smtp
            await self._start_jira()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop_web()
        jira, self.jira = self.jira, None
        if jira is not None:
            await jira.stop()
        platform, self.platform = self.platform, None
        if platform is not None:
            await platform.stop()
        smtp, self.smtp = self.smtp, None
        if smtp is not None:
            await smtp.stop()

    @property
    def overrides(self) -> dict[str, Any]:
        """Settings that point the bot at the platform (empty without a scenario)."""
        if self.platform is None:
            return {}
        email: dict[str, Any] = {}
        if self.smtp is not None:
            email = {
                "smtp_url": SecretStr(self.smtp.url()),
                "fallback_emails": SANDBOX_FALLBACK_EMAILS,
                "slack_down_after": SANDBOX_SLACK_DOWN_AFTER,
            }
        return {**self.platform.settings_overrides(), **email, **self._jira_overrides()}

    async def attach(self, shell: ShellLike) -> None:
        """Serve the webhook route, connect PagerDuty to it, print what the drill is about."""
        platform = self.platform
        if platform is None:
            return
        self._shell = shell
        # The shell's person has a Slack email, so the email fallback writes to them too.
        name = getattr(shell, "user_name", None)
        if isinstance(name, str) and hasattr(shell, "slack"):
            shell.slack.add_user(name, email=f"{name}@waqiti.example")
        app = _web_app(shell.services, shell.app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        shell.print(platform.scenario.intro())
        self._attach_jira(shell, f"http://127.0.0.1:{port}/jira/webhook")
        await platform.connect_webhooks(f"http://127.0.0.1:{port}/pagerduty/webhook")
        # What the alert caused (an incident declared from PagerDuty) shows before the prompt.
        await shell.services.inflight.idle()
        with contextlib.suppress(TimeoutError):
            await shell.services.outbox.drain(timeout=10)
        shell.flush()

    async def detach(self) -> None:
        """Deliver what is still queued for PagerDuty, then say how the platform is doing."""
        platform, shell = self.platform, self._shell
        if platform is None or shell is None:
            return
        services = shell.services
        with contextlib.suppress(TimeoutError):
            await services.inflight.idle()
            if services.pager_queue is not None:
                await services.pager_queue.drain(timeout=10)
            if services.grafana_queue is not None:
                await services.grafana_queue.drain(timeout=10)
            await platform.pagerduty.drain_webhooks(timeout=10)
            await self._drain_jira(services)
            await services.outbox.drain(timeout=10)
        shell.flush()
        verdict = "healthy ✓" if platform.healthy() else "not healthy yet"
        shell.print(f"Sandbox {platform.scenario.name}: the platform is {verdict}")
        for line in platform.status():
            shell.print(f"  {line}")
        for line in self.jira.status() if self.jira is not None else []:
            shell.print(f"  Jira: {line}")
        await self._stop_web()

    async def _stop_web(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def _print_mail(self, mail: ReceivedMail) -> None:
        """What the SMTP server received, as the people it went to would read it."""
        body = "\n".join(f"      {line}" for line in mail.body.rstrip().splitlines())
        self._print_notice(f"✉ email to {', '.join(mail.recipients)}: {mail.subject}\n{body}")

    # -- Jira follow-ups (issue 21): the Jira stand-in, its people, its webhooks --------------

    async def _start_jira(self) -> None:
        jira = FakeJira(token=secrets.token_hex(16))
        await jira.start()
        jira.on_notice.append(self._print_notice)
        for name in JIRA_PEOPLE:
            jira.add_user(name.title(), f"{name}@{JIRA_DOMAIN}")
        self.jira = jira

    def _jira_overrides(self) -> dict[str, Any]:
        if self.jira is None:
            return {}
        return {
            "jira_url": self.jira.url,
            "jira_email": self.jira.email,
            "jira_api_token": SecretStr(self.jira.token),
            "jira_project": self.jira.project,
            "jira_webhook_secret": SecretStr(self._jira_secret),
        }

    def _attach_jira(self, shell: ShellLike, hook_url: str) -> None:
        """The sandbox's people have a Slack email Jira knows; Jira's webhooks reach the bot."""
        if self.jira is None:
            return
        slack = getattr(shell, "slack", None)  # the shell's Slack stand-in, where there is one
        if isinstance(slack, FakeSlack):
            for name in JIRA_PEOPLE:
                slack.add_user(name, email=f"{name}@{JIRA_DOMAIN}")
        self.jira.subscribe(hook_url, self._jira_secret)

    async def _drain_jira(self, services: Services) -> None:
        if services.jira_queue is not None:
            await services.jira_queue.drain(timeout=10)
        if self.jira is not None:
            await self.jira.deliver_webhooks()

    def _print_notice(self, text: str) -> None:
        self.out.write(f"{NOTICE}{text}\n")
        self.out.flush()


def _web_app(services: Services, bolt: AsyncApp) -> web.Application:
    # Only /pagerduty/webhook is used; Slack requests reach the shell's Bolt app directly, so
    # the Slack route gets a signing secret nobody knows.
    return build_web_app(services, bolt, signing_secret=secrets.token_hex(32))
