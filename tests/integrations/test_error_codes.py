"""Integration errors carry a code set by the adapter; callers decide on the code, never the text.

Against the real OpenBao dev server (like ``test_vault.py``) and a port where nothing listens.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from bot.core import metrics
from bot.core.errors import ConfigError, ErrorCode, IntegrationError
from bot.core.settings import Settings
from bot.integrations.vault import VaultSecrets
from bot.playbooks.remediations.runner import Remediator
from bot.runtime.secrets import LiveSecrets
from sandbox.child import free_port
from sandbox.vault_server import OpenBaoDevServer


@pytest.fixture(scope="module")
async def bao() -> AsyncIterator[OpenBaoDevServer]:
    server = OpenBaoDevServer()
    try:
        await server.start()
    except Exception as exc:
        pytest.fail(f"OpenBao dev server could not start: {exc}", pytrace=False)
    try:
        yield server
    finally:
        await server.stop()


def _down() -> str:
    return f"http://127.0.0.1:{free_port('127.0.0.1')}"  # nothing listens there


async def test_vault_errors_carry_the_code_the_adapter_chose(bao: OpenBaoDevServer) -> None:
    async with VaultSecrets(bao.addr, token=SecretStr(bao.root_token)) as vault:
        with pytest.raises(IntegrationError) as missing:
            await vault.read("codes/missing", "password")
    assert (missing.value.service, missing.value.code) == ("vault", ErrorCode.NOT_FOUND)
    async with VaultSecrets(bao.addr, token="s.wrong-token-0123456789") as wrong:
        with pytest.raises(IntegrationError) as denied:
            await wrong.read("codes/missing", "password")
    assert denied.value.code == ErrorCode.DENIED
    async with VaultSecrets(_down(), token="t", timeout=1, attempts=1, backoff=0.01) as down:
        with pytest.raises(IntegrationError) as unreachable:
            await down.read("codes/x", "password")
    assert unreachable.value.code == ErrorCode.UNAVAILABLE
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        addr = f"http://127.0.0.1:{silent.getsockname()[1]}"
        async with VaultSecrets(addr, token="t", timeout=0.3, attempts=1, backoff=0.01) as slow:
            with pytest.raises(IntegrationError) as late:
                await slow.read("codes/x", "password")
    assert late.value.code == ErrorCode.TIMEOUT


async def test_a_secret_path_that_says_not_found_is_not_taken_for_a_missing_secret() -> None:
    """Vault is down; the path's own words must not turn that into "there is no secret"."""
    async with VaultSecrets(_down(), token="t", timeout=1, attempts=1, backoff=0.01) as down:
        remediator = Remediator(None, secrets=down)
        with pytest.raises(IntegrationError) as caught:
            await remediator.vault_versions("team not found/db")
        assert caught.value.code == ErrorCode.UNAVAILABLE
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        live = LiveSecrets(settings, down, path="bot not found")
        with pytest.raises(ConfigError) as config:
            await live.load()
    assert "cannot read the bot's secrets from Vault" in str(config.value)
    assert "there is no secret" not in str(config.value)


def test_raising_an_integration_error_counts_nothing_until_it_is_handled() -> None:
    counter = metrics.INTEGRATION_ERRORS.labels("vault")
    before = counter._value.get()
    IntegrationError("vault", ErrorCode.UNAVAILABLE, "made, not handled")
    assert counter._value.get() == before
