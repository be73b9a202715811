"""What the sandbox's child servers share (the tansu broker, the OpenBao dev server).

Finding the bundled binary; one process on 127.0.0.1 on a free port, its output in a log file
(a temporary one unless given, removed on stop); waiting until it answers, retrying on another
port if the first was taken in between; stopping it by its own PID (SIGINT, then SIGKILL);
and quoting the log's tail when it would not start.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self


def executable(path: str | Path) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_binary(
    *,
    env_var: str,
    package: str,
    bin_name: str,
    path_name: str,
    missing: Callable[[str], Exception],
    install: str,
    fallback: Callable[[], str | None] | None = None,
) -> str:
    """$`env_var`, else the binary bundled in `package`'s bin/ (or what `fallback` finds), else
    `path_name` on PATH; raises `missing(...)` naming `install` and the variable otherwise."""
    override = os.environ.get(env_var)
    if override:
        if not executable(override):
            raise missing(f"${env_var}={override!r} is not an executable file")
        return override
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            bundled = Path(location) / "bin" / bin_name
            if executable(bundled):
                return str(bundled)
        if fallback is not None and (found := fallback()):
            return found
    on_path = shutil.which(path_name)
    if on_path:
        return on_path
    raise missing(f"no {path_name} binary: {install}, set ${env_var}, or put {path_name} on PATH")


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ChildServer(abc.ABC):
    """One server process on `host`, started by `start()` and stopped by its PID."""

    label = "server"  # in errors: "<label> (<binary>) did not start ..."
    log_prefix = "icbot-child-"
    first_delay = 0.01  # the first pause between readiness checks (then doubling, to 0.2 s)

    def __init__(
        self,
        *,
        host: str,
        port: int | None,
        binary: str | None,
        startup_timeout: float,
        log_path: Path | None,
    ) -> None:
        self.host = host
        self._want_port = port
        self._binary = binary
        self.startup_timeout = startup_timeout
        self._log_path = log_path
        self._log: IO[bytes] | None = None
        self._own_log = False  # a temporary log file we made: removed by stop()
        self._proc: asyncio.subprocess.Process | None = None
        self._port: int | None = None

    @abc.abstractmethod
    def _find_binary(self) -> str: ...

    @abc.abstractmethod
    async def _spawn(self, binary: str, port: int, log: IO[bytes]) -> asyncio.subprocess.Process:
        """Start the process listening on `port`, its output to `log`."""

    @abc.abstractmethod
    async def _ready(self, port: int) -> str | None:
        """None once the server on `port` answers as it should; else what is still missing."""

    def _pick_port(self) -> int:
        return free_port(self.host)

    def _redact(self, text: str) -> str:
        """What may not be quoted from the log in an error (nothing by default)."""
        return text

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    async def start(self) -> None:
        """Launch on a free port (or the one given) and return once it answers."""
        if self._proc is not None:
            return
        binary = self._binary or self._find_binary()
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix=self.log_prefix, suffix=".log")  # mode 0600
            os.close(fd)
            self._log_path = Path(name)
            self._own_log = True
        problems: list[str] = []
        attempts = 1 if self._want_port is not None else 3
        for _ in range(attempts):  # a free port can be taken before the server binds it
            port = self._want_port or self._pick_port()
            problem = await self._launch(binary, port)
            if problem is None:
                self._port = port
                return
            problems.append(problem)
        raise RuntimeError(
            f"{self.label} ({binary}) did not start on {self.host} (log: {self._log_path}): "
            + " | ".join(problems)
        )

    async def _launch(self, binary: str, port: int) -> str | None:
        """Start one process; None once it answers, else why not (and it is stopped)."""
        assert self._log_path is not None
        self._log = self._log_path.open("ab")
        try:
            self._proc = await self._spawn(binary, port, self._log)
        except OSError as exc:
            self._log.close()
            self._log = None
            if self._own_log:
                self._log_path.unlink(missing_ok=True)
                self._log_path, self._own_log = None, False
            raise RuntimeError(f"cannot run {self.label} ({binary}): {exc}") from exc
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.startup_timeout
        delay = self.first_delay
        while True:
            if self._proc.returncode is not None:
                code = self._proc.returncode
                await self._reap()
                return f"exited with {code} on port {port}: {self._log_tail()}"
            missing = await self._ready(port)
            if missing is None:
                return None
            if loop.time() >= deadline:
                await self._reap()
                return (
                    f"not ready on port {port} within {self.startup_timeout:g}s ({missing}): "
                    f"{self._log_tail()}"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def stop(self) -> None:
        """Stop the process by its PID (SIGINT, SIGKILL after 5 s); idempotent.

        A temporary log file made by :meth:`start` is removed (one passed as ``log_path`` is
        kept; so is the log of a server that failed to start).
        """
        await self._reap()
        self._port = None
        if self._own_log and self._log_path is not None:
            with contextlib.suppress(OSError):
                self._log_path.unlink()
            self._log_path, self._own_log = None, False

    async def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            # SIGINT, not SIGTERM: on SIGTERM tansu waits up to 5 s for open client
            # connections to go; on SIGINT (its Ctrl-C path) both exit at once.
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                await proc.wait()
        elif proc is not None:
            await proc.wait()
        log, self._log = self._log, None
        if log is not None:
            log.close()

    def _log_tail(self, limit: int = 2000) -> str:
        if self._log_path is None:
            return ""
        try:
            text = self._log_path.read_bytes()[-limit:].decode("utf-8", "replace").strip()
        except OSError:
            return ""
        return self._redact(text) or "(no output)"

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
