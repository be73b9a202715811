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
from typing import Any, Protocol, TextIO

from aiohttp import web
from slack_bolt.async_app import AsyncApp

from bot.core.errors import ConfigError
from bot.runtime.web import build_web_app
from commands.services import Services
from sandbox.platform import SimulatedPlatform

NOTICE = "  ⚙ sandbox: "


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

    async def __aenter__(self) -> ShellSandbox:
        if self.scenario is not None:
            platform = SimulatedPlatform(self.scenario, state_dir=self.state_dir)
            try:
                await platform.start()
            except (OSError, RuntimeError) as exc:  # e.g. tansu missing (TansuNotFound)
                raise ConfigError(f"the sandbox could not start: {exc}") from exc
            self.platform = platform
            platform.on_notice.append(self._print_notice)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop_web()
        platform, self.platform = self.platform, None
        if platform is not None:
            await platform.stop()

    @property
    def overrides(self) -> dict[str, Any]:
        """Settings that point the bot at the platform (empty without a scenario)."""
        return self.platform.settings_overrides() if self.platform is not None else {}

    async def attach(self, shell: ShellLike) -> None:
        """Serve the webhook route, connect PagerDuty to it, print what the drill is about."""
        platform = self.platform
        if platform is None:
            return
        self._shell = shell
        app = _web_app(shell.services, shell.app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        shell.print(platform.scenario.intro())
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
            await services.outbox.drain(timeout=10)
        shell.flush()
        verdict = "healthy ✓" if platform.healthy() else "not healthy yet"
        shell.print(f"Sandbox {platform.scenario.name}: the platform is {verdict}")
        for line in platform.status():
            shell.print(f"  {line}")
        await self._stop_web()

    async def _stop_web(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def _print_notice(self, text: str) -> None:
        self.out.write(f"{NOTICE}{text}\n")
        self.out.flush()


def _web_app(services: Services, bolt: AsyncApp) -> web.Application:
    # Only /pagerduty/webhook is used; Slack requests reach the shell's Bolt app directly, so
    # the Slack route gets a signing secret nobody knows.
    return build_web_app(services, bolt, signing_secret=secrets.token_hex(32))
