"""The bot's own secrets: from the environment, or from Vault KV v2, and re-read while running.

::

    async with open_secrets(settings, required=("slack_bot_token", "slack_signing_secret")) as live:
        ...                         # settings now holds every secret; live.run_forever() re-reads

**Which.** :data:`SECRET_SETTINGS`: ``SLACK_BOT_TOKEN``, ``SLACK_SIGNING_SECRET``,
``SLACK_APP_TOKEN``, ``PAGERDUTY_API_TOKEN``, ``PAGERDUTY_WEBHOOK_SECRET`` and
``FEATURE_FLAG_TOKEN``. In Vault they are the keys of one KV v2 secret at
``VAULT_SECRETS_PATH`` (default ``icbot``, on the ``secret/`` mount), each named like the setting
in lower case (``slack_bot_token``, ...). Only the keys present are used; others are ignored.

**Precedence: the environment wins.** A secret set in the environment (or ``.env``) is used as
is and never read from Vault, so an operator can pin one value (during a Vault outage, or to try
a new token) without touching Vault; every secret *not* in the environment comes from Vault.
A key present in both is logged at start-up (the setting's name only), so a stale environment
value that shadows a rotated one is visible. This is also what the feature-flag token already
did (``FEATURE_FLAG_TOKEN``, else Vault).

**Start-up.** With ``VAULT_ADDR`` set, the path is read once (token or AppRole auth, hvac in its
own threads, bounded retries, see :mod:`bot.integrations.vault`). Every value goes through the
same validation as ``Settings`` (placeholders such as ``changeme`` are refused). Start-up stops
with a :class:`~bot.core.errors.ConfigError` that names the setting and where it was looked for,
never a value, when a required secret is missing or any secret is a placeholder, or when Vault
cannot be read.

**Rotation.** :meth:`LiveSecrets.run_forever` re-reads the path every ``interval`` seconds (60
by default). A changed value that passes validation is assigned to the one ``Settings`` object,
so everything that reads its settings when it acts (webhook secrets, the feature-flag token, the
signing secret through :meth:`LiveSecrets.getter`) uses it from then on; then the
:meth:`LiveSecrets.on_rotate` hooks run with the names that changed, for the objects that copied
a value at start (the Slack Web API client's token, PagerDuty's API key, the Socket Mode app
token). A value that is deleted from Vault or replaced by a placeholder is refused: the old
value stays and an error naming the setting is logged. A Vault that does not answer is logged
and retried at the next interval; the bot keeps running on the values it has.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from pydantic import SecretStr, ValidationError

from bot.core import metrics
from bot.core.errors import ConfigError, ErrorCode, IntegrationError
from bot.core.logs import get_logger
from bot.core.settings import Settings
from bot.integrations.vault import VaultSecrets

__all__ = [
    "SECRET_SETTINGS",
    "LiveSecrets",
    "env_name",
    "open_secrets",
    "require",
]

log = get_logger(__name__)

SECRET_SETTINGS: tuple[str, ...] = (
    "slack_bot_token",
    "slack_signing_secret",
    "slack_app_token",
    "pagerduty_api_token",
    "pagerduty_webhook_secret",
    "feature_flag_token",
)
DEFAULT_INTERVAL = 60.0

RotationHook = Callable[[frozenset[str]], None]


def env_name(setting: str) -> str:
    return setting.upper()


def _joined(names: Iterable[str]) -> str:
    listed = list(names)
    return listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]


def _value(settings: Settings, name: str) -> str | None:
    value = getattr(settings, name)
    return value.get_secret_value() if isinstance(value, SecretStr) else None


def require(settings: Settings, names: Sequence[str], *, vault_path: str | None = None) -> None:
    """ConfigError naming every setting of `names` that has no value (never a value)."""
    missing = [name for name in names if _value(settings, name) is None]
    if not missing:
        return
    message = f"{_joined(env_name(n) for n in missing)} must be set for this command"
    if vault_path is not None:
        keys = ("key " if len(missing) == 1 else "keys ") + ", ".join(missing)
        message += f" (in the environment, or as {keys} at {vault_path} in Vault)"
    raise ConfigError(message)


class LiveSecrets:
    """The secrets of one ``Settings``, loaded from Vault and kept current. See the module doc."""

    def __init__(
        self,
        settings: Settings,
        vault: VaultSecrets | None,
        *,
        path: str | None = None,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.settings = settings
        self.vault = vault
        self.path = (path if path is not None else settings.vault_secrets_path).strip("/")
        self.interval = interval
        # Set in the environment (or given explicitly): never read from Vault.
        self.pinned = frozenset(n for n in SECRET_SETTINGS if _value(settings, n) is not None)
        self.from_vault: frozenset[str] = frozenset()
        self._hooks: list[RotationHook] = []

    @property
    def where(self) -> str | None:
        """``secret/icbot``-style location for messages, or None without Vault."""
        if self.vault is None:
            return None
        return f"{self.vault.mount_point}/{self.path}"

    def on_rotate(self, hook: RotationHook) -> None:
        """Call `hook(names)` after values that changed in Vault were applied."""
        self._hooks.append(hook)

    def getter(self, name: str) -> Callable[[], str]:
        """A function returning the current value of setting `name` (for per-request use)."""
        if name not in SECRET_SETTINGS:
            raise ValueError(f"{name} is not one of the bot's secrets")

        def current() -> str:
            value = _value(self.settings, name)
            if value is None:
                raise ConfigError(f"{env_name(name)} is not set")
            return value

        return current

    # ------------------------------------------------------------------ reading

    async def _read(self) -> dict[str, SecretStr]:
        assert self.vault is not None
        return await self.vault.read_all(self.path)

    def _validated(self, name: str, raw: str) -> SecretStr | None:
        """The value as ``Settings`` would accept it (None if blank); ConfigError if refused."""
        probe = self.settings.model_copy()
        try:
            Settings.__pydantic_validator__.validate_assignment(probe, name, raw)
        except ValidationError as exc:
            # The messages name the rule, never the input; the input itself is not shown.
            reason = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            raise ConfigError(
                f"{env_name(name)} from Vault ({self.where}, key {name}): {reason}"
            ) from None
        value = getattr(probe, name)
        return value if isinstance(value, SecretStr) else None

    async def load(self) -> None:
        """Read every secret not set in the environment from Vault (no-op without Vault)."""
        if self.vault is None:
            return
        try:
            found = await self._read()
        except IntegrationError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                raise ConfigError(
                    f"VAULT_SECRETS_PATH: there is no secret at {self.where} in Vault"
                    f" (put the bot's secrets there as keys {', '.join(SECRET_SETTINGS)})"
                ) from None
            raise ConfigError(f"cannot read the bot's secrets from Vault: {exc}") from None
        problems: list[str] = []
        accepted: dict[str, SecretStr | None] = {}
        shadowed = sorted(n for n in self.pinned if n in found)
        for name in SECRET_SETTINGS:
            if name in self.pinned or name not in found:
                continue
            try:
                accepted[name] = self._validated(name, found[name].get_secret_value())
            except ConfigError as exc:
                problems.append(str(exc))
        if problems:
            raise ConfigError("; ".join(problems))
        for name, value in accepted.items():
            setattr(self.settings, name, value)
        self.from_vault = frozenset(n for n, v in accepted.items() if v is not None)
        if shadowed:
            log.warning("secrets.environment_wins", settings=[env_name(n) for n in shadowed])
        log.info(
            "secrets.loaded",
            vault=self.where,
            from_vault=sorted(env_name(n) for n in self.from_vault),
            from_environment=sorted(env_name(n) for n in self.pinned),
        )

    async def refresh(self) -> frozenset[str]:
        """Re-read Vault once; apply valid changes, refuse bad ones; returns what changed."""
        if self.vault is None:
            return frozenset()
        try:
            found = await self._read()
        except IntegrationError as exc:
            metrics.integration_error(exc.service)
            metrics.SECRET_RELOADS.labels("failed").inc()
            log.warning("secrets.reload_failed", vault=self.where, error=str(exc))
            return frozenset()
        changed: dict[str, SecretStr | None] = {}
        refused: list[str] = []
        for name in SECRET_SETTINGS:
            if name in self.pinned:
                continue
            current = _value(self.settings, name)
            if name not in found:
                if current is not None and name in self.from_vault:
                    refused.append(name)
                    log.error(
                        "secrets.reload_refused",
                        setting=env_name(name),
                        reason=f"key {name} was removed from {self.where}; keeping the old value",
                    )
                continue
            try:
                value = self._validated(name, found[name].get_secret_value())
            except ConfigError as exc:
                refused.append(name)
                log.error(
                    "secrets.reload_refused", setting=env_name(name), reason=f"{exc}; keeping it"
                )
                continue
            new = value.get_secret_value() if value is not None else None
            if new is None and current is not None:
                refused.append(name)
                log.error(
                    "secrets.reload_refused",
                    setting=env_name(name),
                    reason=f"key {name} at {self.where} is empty; keeping the old value",
                )
                continue
            if new != current:
                changed[name] = value
        for name, value in changed.items():
            setattr(self.settings, name, value)
        self.from_vault = self.from_vault | {n for n, v in changed.items() if v is not None}
        names = frozenset(changed)
        if refused:
            metrics.SECRET_RELOADS.labels("refused").inc()
        if names:
            metrics.SECRET_RELOADS.labels("rotated").inc()
            log.info("secrets.rotated", settings=sorted(env_name(n) for n in names))
            for hook in self._hooks:
                try:
                    hook(names)
                except Exception:
                    log.exception("secrets.rotation_hook_failed")
        elif not refused:
            metrics.SECRET_RELOADS.labels("unchanged").inc()
        return names

    async def run_forever(self) -> None:
        """Re-read every `interval` seconds until cancelled (nothing to do without Vault)."""
        if self.vault is None:
            return
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                metrics.SECRET_RELOADS.labels("failed").inc()
                log.exception("secrets.reload_crashed")


@contextlib.asynccontextmanager
async def open_secrets(
    settings: Settings,
    *,
    required: Sequence[str] = (),
    interval: float = DEFAULT_INTERVAL,
    vault: VaultSecrets | None = None,
) -> AsyncIterator[LiveSecrets]:
    """Load the secrets into `settings` (Vault when ``VAULT_ADDR`` is set) and check `required`.

    Raises ConfigError (naming settings, never values) when start-up must stop. The re-reading
    loop is the caller's to run (``live.run_forever()``), next to its other workers.
    """
    own = vault is None
    client = VaultSecrets.from_settings(settings) if vault is None else vault
    try:
        live = LiveSecrets(settings, client, interval=interval)
        await live.load()
        require(settings, required, vault_path=live.where)
        yield live
    finally:
        if own and client is not None:
            await client.close()


def describe(settings: Settings) -> dict[str, Any]:
    """Which secrets are set (names and True/False only), for diagnostics."""
    return {env_name(n): _value(settings, n) is not None for n in SECRET_SETTINGS}
