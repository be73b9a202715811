"""Running `icbot serve` / `icbot socket` as real processes, the way an operator (or a pod) does."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

# Settings the bot reads that must not leak in from the developer's shell.
_OWN = ("SLACK_", "VAULT_", "PAGERDUTY_", "FEATURE_FLAG", "KUBECONFIG", "KAFKA_", "DATABASE_URL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN)}
    env.pop("LOG_FORMAT", None)
    env.update(values)
    return env


@dataclass
class Icbot:
    proc: asyncio.subprocess.Process
    base: str
    stderr: bytes = b""
    terminated: bool = False

    def terminate(self) -> None:
        """SIGTERM, once (a second one tells the bot to stop waiting for its work)."""
        if self.proc.returncode is None and not self.terminated:
            self.terminated = True
            self.proc.send_signal(signal.SIGTERM)

    async def stop(self, *, timeout: float = 60) -> int:
        """SIGTERM (unless already sent), then wait for the exit; the exit status."""
        self.terminate()
        if not self.stderr:
            _, self.stderr = await asyncio.wait_for(self.proc.communicate(), timeout=timeout)
        assert self.proc.returncode is not None
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()

    @property
    def text(self) -> str:
        return self.stderr.decode(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        lines = [line for line in self.text.splitlines() if line.startswith("{")]
        return [json.loads(line) for line in lines]


async def start(command: str, env: Mapping[str, str], *, port: int) -> Icbot:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", command, env=dict(env), stderr=asyncio.subprocess.PIPE
    )
    return Icbot(proc, f"http://127.0.0.1:{port}")


async def wait_ready(bot: Icbot, *, timeout: float = 30) -> None:
    """Until GET /readyz is 200; fails with the process's log if it exits first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aiohttp.ClientSession() as http:
        while loop.time() < deadline:
            if bot.proc.returncode is not None:
                await bot.stop()
                pytest.fail(f"icbot exited {bot.proc.returncode}:\n{bot.text[-3000:]}")
            try:
                async with http.get(f"{bot.base}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    bot.kill()
    await bot.stop()
    pytest.fail(f"icbot never became ready:\n{bot.text[-3000:]}")


async def run_to_exit(command: str, env: Mapping[str, str], *, timeout: float = 60) -> Icbot:
    """Start a command that is expected to stop on its own (e.g. refuse to start)."""
    bot = await start(command, env, port=0)
    _, bot.stderr = await asyncio.wait_for(bot.proc.communicate(), timeout=timeout)
    return bot
