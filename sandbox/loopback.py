"""What every local stand-in shares: serving on 127.0.0.1 only, and waiting for a condition."""

from __future__ import annotations

import abc
import asyncio
import socket
import ssl
from collections.abc import Callable
from types import TracebackType
from typing import Self

from aiohttp import web


async def serve_on_loopback(
    app: web.Application, *, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    """Serve `app` on 127.0.0.1 on a free port; returns the runner (to clean up) and the port."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock, ssl_context=ssl_context).start()
    except BaseException:
        sock.close()
        await runner.cleanup()
        raise
    return runner, int(sock.getsockname()[1])


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll `predicate` until it is true; `TimeoutError` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() >= deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.005)


class StandIn(abc.ABC):
    """`async with StandIn() as s:` starts it and stops it; subclasses define start/stop."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Serve (on 127.0.0.1 only)."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop serving and release everything started."""

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        await wait_until(predicate, timeout)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
