"""`Secrets` over hvac: read and rotate keys in a Vault / OpenBao KV v2 mount.

::

    vault = VaultSecrets("https://vault:8200", token=token)            # or role_id=, secret_id=
    token = await vault.read("icbot", "slack_bot_token")               # SecretStr
    result = await vault.rotate("payments/db", "password")             # RotationResult, no value
    old = await vault.read("payments/db", "password", version=result.old_version)  # rollback

hvac is synchronous (requests underneath), so every call runs in a dedicated two-thread pool
(``vault-*`` threads), never on the event loop. Each HTTP request has a timeout (5 s by
default); reads are retried a bounded number of times on transport errors, 429 and 5xx, with
a short back-off; the whole call is also bounded on the asyncio side, so a caller never waits
longer than ``timeout * attempts`` plus the back-off.

Rotation writes a *new* KV v2 version: ``key`` gets a fresh random value
(``secrets.token_urlsafe(32)`` unless one is given), every other key of the current version is
kept, and the write carries ``cas=<the version just read>``. So:

* two rotations of one path through the *same* ``VaultSecrets`` are serialised (a per-path
  lock): both succeed, one after the other, each on top of the other's version;
* two writers in different processes (replicas, a human with the CLI) cannot lose an update:
  the second write fails Vault's check-and-set and raises a ``conflict`` ``IntegrationError``
  (``permanent=True``: nothing was written; re-reading and rotating again is a new decision,
  not a retry). Writes are never retried blindly: a write whose answer was lost raises
  "outcome unknown" rather than risk a second rotation.

The old version stays readable (``read(..., version=old_version)``) for rollback.

AppRole: with ``role_id``/``secret_id`` the client logs in on first use, renews its token
(``renew-self``) when two thirds of its TTL have passed, logs in again if renewal fails, and
logs in again once if Vault answers 403 (token revoked or expired behind our back).

Errors are ``IntegrationError("vault", message)``. Messages name the operation and the path,
never a secret value or a token (hvac's own exception is kept as ``__cause__``; it carries
Vault's error text and the URL, which hold neither). "not found" errors are ``permanent``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import hvac  # type: ignore[import-untyped]
from hvac import exceptions as hvac_errors
from pydantic import SecretStr

from bot.core.errors import ConfigError, ErrorCode, IntegrationError
from bot.core.logs import get_logger
from bot.core.settings import Settings

if TYPE_CHECKING:
    from bot.domain.ports import SecretOps

__all__ = ["RotationResult", "VaultSecrets"]

log = get_logger(__name__)
T = TypeVar("T")

SYSTEM = "vault"
TIMEOUT = 5.0
ATTEMPTS = 3
BACKOFF = 0.2
_CAS_MISMATCH = "check-and-set"
# Retried for reads (and, for writes, only where Vault did not process the request).
_TRANSIENT: tuple[type[BaseException], ...] = (
    hvac_errors.VaultDown,  # 503: sealed, standby, starting
    hvac_errors.RateLimitExceeded,  # 429
    hvac_errors.InternalServerError,  # 500
    hvac_errors.BadGateway,  # 502
    OSError,  # requests' ConnectionError / Timeout derive from IOError
)
_NOT_PROCESSED: tuple[type[BaseException], ...] = (
    hvac_errors.VaultDown,
    hvac_errors.RateLimitExceeded,
)
_STATUS = {
    hvac_errors.InvalidRequest: 400,
    hvac_errors.Unauthorized: 401,
    hvac_errors.Forbidden: 403,
    hvac_errors.InvalidPath: 404,
    hvac_errors.RateLimitExceeded: 429,
    hvac_errors.InternalServerError: 500,
    hvac_errors.VaultNotInitialized: 501,
    hvac_errors.BadGateway: 502,
    hvac_errors.VaultDown: 503,
}


@dataclass(frozen=True)
class RotationResult:
    """What a rotation did. Deliberately holds no value, old or new."""

    path: str
    key: str
    old_version: int
    new_version: int


def _safe_addr(addr: str) -> str:
    """``scheme://host:port`` of ``addr``: never any user-info that might hold a password."""
    parts = urlsplit(addr)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}" if parts.scheme else "(no address)"


def _clean_path(path: str, mount: str | None = None) -> str:
    """A path inside the mount. Written as the runbook and the `vault kv` CLI write it
    (`secret/alerting/pagerduty` = mount `secret`, path `alerting/pagerduty`), the mount
    prefix is taken off; a path without it (`alerting/pagerduty`) is already inside."""
    cleaned = path.strip().strip("/")
    if mount and cleaned.startswith(f"{mount}/"):
        cleaned = cleaned.removeprefix(f"{mount}/")
    if not cleaned or any(part in ("", ".", "..") for part in cleaned.split("/")):
        raise IntegrationError(
            SYSTEM, ErrorCode.REFUSED, f"invalid secret path {path!r}", permanent=True
        )
    return cleaned


def _as_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class VaultSecrets:
    """KV v2 secrets at ``mount_point`` of the Vault / OpenBao server at ``addr``."""

    def __init__(
        self,
        addr: str,
        *,
        token: str | SecretStr | None = None,
        role_id: str | None = None,
        secret_id: str | SecretStr | None = None,
        mount_point: str = "secret",
        approle_mount: str = "approle",
        timeout: float = TIMEOUT,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF,
        verify: bool | str = True,
    ) -> None:
        if isinstance(token, SecretStr):
            token = token.get_secret_value()
        if isinstance(secret_id, SecretStr):
            secret_id = secret_id.get_secret_value()
        if not token and not (role_id and secret_id):
            raise ValueError("VaultSecrets needs a token, or an AppRole role_id and secret_id")
        if attempts < 1 or timeout <= 0:
            raise ValueError("attempts must be >= 1 and timeout > 0")
        self.addr = addr.rstrip("/")
        self.mount_point = mount_point.strip("/")
        self.approle_mount = approle_mount.strip("/")
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self._role_id = role_id if not token else None
        self._secret_id = secret_id if not token else None
        # token="" (not None) stops hvac falling back to $VAULT_TOKEN or ~/.vault-token.
        self._client: Any = hvac.Client(
            url=self.addr, token=token or "", timeout=timeout, verify=verify
        )
        self._auth_lock = threading.Lock()
        self._renew_at: float | None = None  # monotonic; None = no renewal due (or not known)
        self._renewable = False
        self._path_locks: dict[str, asyncio.Lock] = {}
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="vault")
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> VaultSecrets | None:
        """The adapter the settings describe, or None when Vault is not configured."""
        if not settings.vault_addr:
            return None
        if settings.vault_token is not None:
            return cls(settings.vault_addr, token=settings.vault_token)
        if settings.vault_role_id and settings.vault_secret_id is not None:
            return cls(
                settings.vault_addr,
                role_id=settings.vault_role_id,
                secret_id=settings.vault_secret_id,
            )
        raise ConfigError(
            "VAULT_ADDR is set but neither VAULT_TOKEN nor VAULT_ROLE_ID and VAULT_SECRET_ID are"
        )

    @property
    def uses_approle(self) -> bool:
        return self._role_id is not None

    def __repr__(self) -> str:
        how = "approle" if self.uses_approle else "token"
        return f"VaultSecrets({_safe_addr(self.addr)!r}, auth={how}, mount={self.mount_point!r})"

    async def close(self) -> None:
        """Stop the thread pool; calls after this fail. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):
            self._client.adapter.close()

    async def __aenter__(self) -> VaultSecrets:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ the API

    async def read(self, path: str, key: str, *, version: int | None = None) -> SecretStr:
        """The value of ``key`` in the latest (or the given) version of ``path``."""
        path = _clean_path(path, self.mount_point)
        data, _ = await self._run(
            f"read {path}" + (f" version {version}" if version is not None else ""),
            partial(self._read_version, path, version),
        )
        if key not in data:
            raise IntegrationError(
                SYSTEM,
                ErrorCode.NOT_FOUND,
                f"key {key!r} not found in {self.mount_point}/{path}",
                permanent=True,
            )
        return SecretStr(_as_text(data[key]))

    async def read_all(self, path: str) -> dict[str, SecretStr]:
        """Every key of the latest version of ``path`` (e.g. the bot's own secrets)."""
        path = _clean_path(path, self.mount_point)
        data, _ = await self._run(f"read {path}", partial(self._read_version, path, None))
        return {k: SecretStr(_as_text(v)) for k, v in data.items()}

    async def versions(self, path: str) -> list[int]:
        """Versions of ``path`` that can still be read (not deleted or destroyed), ascending."""
        path = _clean_path(path, self.mount_point)
        return await self._run(f"list versions of {path}", partial(self._versions, path))

    async def rotate(self, path: str, key: str, *, new_value: str | None = None) -> RotationResult:
        """Write a new version of ``path`` with ``key`` replaced; see the module docstring."""
        path = _clean_path(path, self.mount_point)
        if new_value is not None and not new_value:
            raise IntegrationError(
                SYSTEM, ErrorCode.REFUSED, "the new value must not be empty", permanent=True
            )
        value = new_value if new_value is not None else secrets.token_urlsafe(32)
        lock = self._path_locks.setdefault(path, asyncio.Lock())
        async with lock:
            data, current = await self._run(
                f"rotate {path} (read)", partial(self._read_current, path)
            )
            if key not in data:
                raise IntegrationError(
                    SYSTEM,
                    ErrorCode.NOT_FOUND,
                    f"cannot rotate: key {key!r} not found in {self.mount_point}/{path}",
                    permanent=True,
                )
            updated = {**data, key: value}
            new_version = await self._run(
                f"rotate {path} (write)",
                partial(self._write, path, updated, current),
                idempotent=False,
            )
        log.info(
            "vault.rotated",
            path=path,
            key=key,
            old_version=current,
            new_version=new_version,
        )
        return RotationResult(path=path, key=key, old_version=current, new_version=new_version)

    # ------------------------------------------------------------------ sync, in the pool

    def _kv(self) -> Any:
        return self._client.secrets.kv.v2

    def _read_version(self, path: str, version: int | None) -> tuple[dict[str, Any], int]:
        answer = self._kv().read_secret_version(
            path=path,
            version=version,
            mount_point=self.mount_point,
            raise_on_deleted_version=True,
        )
        body = answer.get("data") or {}
        data = body.get("data")
        if not isinstance(data, dict):  # a deleted version answers 200 on some servers
            raise hvac_errors.InvalidPath("no data")
        return dict(data), int((body.get("metadata") or {}).get("version") or 0)

    def _read_current(self, path: str) -> tuple[dict[str, Any], int]:
        """The latest version's data and number (the CAS base of a rotation)."""
        return self._read_version(path, None)

    def _write(self, path: str, data: dict[str, Any], cas: int) -> int:
        try:
            answer = self._kv().create_or_update_secret(
                path=path, secret=data, cas=cas, mount_point=self.mount_point
            )
        except hvac_errors.InvalidRequest as exc:
            if any(_CAS_MISMATCH in str(e) for e in exc.errors or []):
                raise IntegrationError(
                    SYSTEM,
                    ErrorCode.CONFLICT,
                    f"conflict: {self.mount_point}/{path} changed after version {cas} was read "
                    "(another writer updated it); nothing was written",
                    permanent=True,
                ) from exc
            raise
        return int(answer["data"]["version"])

    def _versions(self, path: str) -> list[int]:
        answer = self._kv().read_secret_metadata(path=path, mount_point=self.mount_point)
        found = (answer.get("data") or {}).get("versions") or {}
        return sorted(
            int(number)
            for number, meta in found.items()
            if not meta.get("destroyed") and not meta.get("deletion_time")
        )

    # ------------------------------------------------------------------ auth (in the pool)

    def _ensure_auth(self) -> None:
        if self._role_id is None:
            return
        with self._auth_lock:
            if self._client.token and (self._renew_at is None or time.monotonic() < self._renew_at):
                return
            if self._client.token and self._renewable:
                try:
                    answer = self._client.auth.token.renew_self()
                except (hvac_errors.VaultError, OSError):
                    pass  # expired or revoked: log in again below
                else:
                    self._remember_lease(answer.get("auth") or {})
                    log.info("vault.token_renewed")
                    return
            self._login_locked()

    def _relogin(self, stale: str | None) -> None:
        with self._auth_lock:
            if self._client.token == stale:  # no other thread has logged in meanwhile
                self._login_locked()

    def _login_locked(self) -> None:
        self._client.token = None  # an expired token must not ride along with the login
        try:
            answer = self._client.auth.approle.login(
                role_id=self._role_id,
                secret_id=self._secret_id,
                use_token=True,
                mount_point=self.approle_mount,
            )
        except (hvac_errors.InvalidRequest, hvac_errors.Forbidden, hvac_errors.InvalidPath) as exc:
            raise IntegrationError(
                SYSTEM,
                ErrorCode.DENIED,
                f"AppRole login at auth/{self.approle_mount} was refused "
                "(unknown role_id, wrong or expired secret_id, or AppRole not enabled)",
                permanent=True,
            ) from exc
        self._remember_lease(answer.get("auth") or {})
        log.info("vault.login", method="approle", renewable=self._renewable)

    def _remember_lease(self, auth: dict[str, Any]) -> None:
        ttl = float(auth.get("lease_duration") or 0)
        self._renewable = bool(auth.get("renewable"))
        self._renew_at = time.monotonic() + ttl * 2 / 3 if ttl > 0 else None

    # ------------------------------------------------------------------ running calls

    async def _run(self, what: str, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        if self._closed:
            raise IntegrationError(
                SYSTEM, ErrorCode.UNAVAILABLE, f"{what}: the Vault client is closed", permanent=True
            )
        loop = asyncio.get_running_loop()
        # Each request is bounded by `timeout` in the thread; this bounds the caller too
        # (a login may precede the request, hence the extra timeout).
        budget = (self.timeout * 2 + 1) * self.attempts + self.backoff * 2**self.attempts
        try:
            async with asyncio.timeout(budget):
                return await loop.run_in_executor(
                    self._pool, partial(self._attempts, what, fn, idempotent)
                )
        except TimeoutError as exc:
            raise IntegrationError(
                SYSTEM,
                ErrorCode.TIMEOUT,
                f"{what}: no answer from {_safe_addr(self.addr)} within {budget:g}s",
            ) from exc
        except RuntimeError as exc:  # the pool was shut down under us
            if self._closed:
                raise IntegrationError(
                    SYSTEM,
                    ErrorCode.UNAVAILABLE,
                    f"{what}: the Vault client is closed",
                    permanent=True,
                ) from exc
            raise

    def _attempts(self, what: str, fn: Callable[[], T], idempotent: bool) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return self._once(fn)
            except IntegrationError:
                raise
            except _TRANSIENT as exc:
                retry = idempotent or isinstance(exc, _NOT_PROCESSED)
                if not retry or attempt == self.attempts:
                    raise self._error(exc, what, write=not idempotent) from exc
                time.sleep(self.backoff * 2 ** (attempt - 1))
            except hvac_errors.VaultError as exc:
                raise self._error(exc, what, write=not idempotent) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, fn: Callable[[], T]) -> T:
        self._ensure_auth()
        token = self._client.token
        try:
            return fn()
        except hvac_errors.Forbidden:
            if self._role_id is None:
                raise
            # 403 means Vault refused before doing anything: safe to log in again and repeat.
            self._relogin(token)
            return fn()

    def _error(self, exc: BaseException, what: str, *, write: bool) -> IntegrationError:
        status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), None)
        if isinstance(exc, hvac_errors.InvalidPath):
            return IntegrationError(
                SYSTEM,
                ErrorCode.NOT_FOUND,
                f"{what}: not found in the {self.mount_point}/ mount",
                permanent=True,
            )
        if isinstance(exc, hvac_errors.Forbidden | hvac_errors.Unauthorized):
            return IntegrationError(
                SYSTEM,
                ErrorCode.DENIED,
                f"{what}: permission denied (the Vault token is invalid or expired, "
                "or its policy does not allow this path)",
                permanent=True,
            )
        if isinstance(exc, hvac_errors.RateLimitExceeded):
            return IntegrationError(
                SYSTEM, ErrorCode.RATE_LIMITED, f"{what}: rate limited (HTTP 429)", retry_after=1.0
            )
        if isinstance(exc, hvac_errors.VaultDown):
            return IntegrationError(
                SYSTEM, ErrorCode.UNAVAILABLE, f"{what}: Vault is sealed or unavailable (HTTP 503)"
            )
        where = _safe_addr(self.addr)
        if write and isinstance(
            exc, OSError | hvac_errors.InternalServerError | hvac_errors.BadGateway
        ):
            label = f"HTTP {status}" if status else type(exc).__name__
            return IntegrationError(
                SYSTEM,
                ErrorCode.UNAVAILABLE,
                f"{what}: no clean answer from {where} ({label}); the outcome is unknown, "
                "check the secret's versions before rotating again",
                permanent=True,
            )
        if isinstance(exc, OSError):
            kind = type(exc).__name__
            if "Timeout" in kind:
                return IntegrationError(
                    SYSTEM,
                    ErrorCode.TIMEOUT,
                    f"{what}: no answer from Vault at {where} within {self.timeout:g}s",
                )
            return IntegrationError(
                SYSTEM, ErrorCode.UNAVAILABLE, f"{what}: cannot reach Vault at {where} ({kind})"
            )
        if isinstance(exc, hvac_errors.InvalidRequest | hvac_errors.VaultNotInitialized):
            return IntegrationError(
                SYSTEM,
                ErrorCode.REFUSED,
                f"{what}: rejected by Vault (HTTP {status})",
                permanent=True,
            )
        label = f"HTTP {status}" if status else type(exc).__name__
        return IntegrationError(
            SYSTEM,
            ErrorCode.for_status(status) if status else ErrorCode.UNAVAILABLE,
            f"{what}: Vault error ({label})",
        )


if TYPE_CHECKING:  # mypy proves the adapter is the port (bot/domain/ports.py)

    def _conforms(adapter: VaultSecrets) -> SecretOps:
        return adapter
