"""The bot's own secrets from a real OpenBao dev server: start-up, precedence, rotation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from pydantic import SecretStr

from bot.core import metrics
from bot.core.errors import ConfigError
from bot.core.settings import Settings
from bot.delivery.outbox import ChannelPacer
from bot.integrations.vault import VaultSecrets
from bot.runtime.secrets import LiveSecrets, open_secrets
from bot.runtime.serve import follow_rotation, use_current_token
from bot.runtime.services import open_services
from bot.runtime.web import build_web_app
from commands.app import build_slack_app
from commands.services import Services
from sandbox.slack_api import FakeSlack
from sandbox.slack_requests import SlackRequests
from sandbox.vault_server import OpenBaoDevServer
from tests.conftest import make_settings
from tests.ship.helpers import clean_env, free_port, run_to_exit, start, wait_ready

SIGNING_1 = "signing-secret-one-0123456789abcdef"
SIGNING_2 = "signing-secret-two-fedcba9876543210"


def _path() -> str:
    return f"icbot-{uuid.uuid4().hex[:10]}"


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
def captured() -> Iterator[list[MutableMapping[str, Any]]]:
    with structlog.testing.capture_logs() as logs:
        yield logs


def _bare(**values: Any) -> Settings:
    """Settings with nothing from the environment but what is given."""
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def _reloads(result: str) -> float:
    value = metrics.REGISTRY.get_sample_value("icbot_secret_reloads_total", {"result": result})
    return value or 0.0


# ---------------------------------------------------------------------- LiveSecrets, in process


async def test_secrets_not_in_the_environment_come_from_vault_and_the_environment_wins(
    bao: OpenBaoDevServer, captured: list[MutableMapping[str, Any]]
) -> None:
    path = _path()
    await bao.put_secret(
        path,
        {
            "slack_bot_token": "xoxb-from-vault-1",
            "slack_signing_secret": "vault-signing-never-used",
            "pagerduty_webhook_secret": "pd-from-vault-1",
            "unrelated_key": "ignored",
        },
    )
    settings = _bare(
        vault_addr=bao.addr,
        vault_token=bao.root_token,
        vault_secrets_path=path,
        slack_signing_secret=SIGNING_1,  # "from the environment"
    )
    async with open_secrets(settings, required=("slack_bot_token", "slack_signing_secret")) as live:
        assert settings.slack_bot_token is not None and settings.slack_signing_secret is not None
        assert settings.slack_bot_token.get_secret_value() == "xoxb-from-vault-1"
        assert settings.slack_signing_secret.get_secret_value() == SIGNING_1
        assert settings.pagerduty_webhook_secrets == ["pd-from-vault-1"]
        assert live.pinned == {"slack_signing_secret"}
        await bao.put_secret(
            path, {"slack_bot_token": "xoxb-from-vault-1", "slack_signing_secret": "rotated"}
        )
        assert "slack_signing_secret" not in await live.refresh()  # never re-read either
        assert settings.slack_signing_secret.get_secret_value() == SIGNING_1
    shadowed = [e for e in captured if e["event"] == "secrets.environment_wins"]
    assert shadowed and shadowed[0]["settings"] == ["SLACK_SIGNING_SECRET"]
    loaded = next(e for e in captured if e["event"] == "secrets.loaded")
    assert loaded["from_vault"] == ["PAGERDUTY_WEBHOOK_SECRET", "SLACK_BOT_TOKEN"]
    assert "vault-signing-never-used" not in repr(captured) and "xoxb-from-vault" not in repr(
        captured
    )


async def test_refresh_applies_rotated_values_and_refuses_removed_or_placeholder_ones(
    bao: OpenBaoDevServer, captured: list[MutableMapping[str, Any]]
) -> None:
    path = _path()
    first = {
        "slack_bot_token": "xoxb-first-value",
        "pagerduty_webhook_secret": "pd-first",
        "feature_flag_token": "flag-first",
    }
    await bao.put_secret(path, first)
    settings = _bare(vault_addr=bao.addr, vault_token=bao.root_token, vault_secrets_path=path)
    seen: list[frozenset[str]] = []
    async with open_secrets(settings) as live:
        live.on_rotate(seen.append)
        unchanged = _reloads("unchanged")
        assert await live.refresh() == frozenset()
        assert _reloads("unchanged") == unchanged + 1

        await bao.put_secret(path, {**first, "pagerduty_webhook_secret": "pd-first,pd-second"})
        rotated = _reloads("rotated")
        assert await live.refresh() == {"pagerduty_webhook_secret"}
        assert settings.pagerduty_webhook_secrets == ["pd-first", "pd-second"]
        assert seen == [frozenset({"pagerduty_webhook_secret"})]
        assert _reloads("rotated") == rotated + 1

        # A removed key and a placeholder are refused; the values in use stay.
        await bao.put_secret(
            path, {"pagerduty_webhook_secret": "pd-second", "feature_flag_token": "changeme"}
        )
        refused = _reloads("refused")
        assert await live.refresh() == {"pagerduty_webhook_secret"}
        assert settings.slack_bot_token == SecretStr("xoxb-first-value")
        assert settings.feature_flag_token == SecretStr("flag-first")
        assert _reloads("refused") == refused + 1
    refusals = {
        e["setting"]: e["reason"] for e in captured if e["event"] == "secrets.reload_refused"
    }
    assert set(refusals) == {"SLACK_BOT_TOKEN", "FEATURE_FLAG_TOKEN"}
    assert (
        "removed" in refusals["SLACK_BOT_TOKEN"] and "placeholder" in refusals["FEATURE_FLAG_TOKEN"]
    )
    everything = repr(captured)
    for value in ("xoxb-first-value", "pd-first", "pd-second", "flag-first"):
        assert value not in everything


async def test_vault_down_at_a_refresh_keeps_the_values_and_counts_a_failure() -> None:
    settings = _bare(slack_bot_token="xoxb-kept-value")
    dead = VaultSecrets(f"http://127.0.0.1:{free_port()}", token="t", timeout=0.3, attempts=1)
    live = LiveSecrets(settings, dead, path="icbot")
    failed = _reloads("failed")
    try:
        assert await live.refresh() == frozenset()
    finally:
        await dead.close()
    assert settings.slack_bot_token == SecretStr("xoxb-kept-value")
    assert _reloads("failed") == failed + 1


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        ({"slack_bot_token": "xoxb-your-token", "slack_signing_secret": SIGNING_1},
         "SLACK_BOT_TOKEN from Vault (secret/{path}, key slack_bot_token): is a placeholder"),
        ({"slack_bot_token": "xoxb-real-0123"},
         "SLACK_SIGNING_SECRET must be set for this command (in the environment, or as key"
         " slack_signing_secret at secret/{path} in Vault)"),
        (None, "VAULT_SECRETS_PATH: there is no secret at secret/{path} in Vault"),
    ],
)  # fmt: skip
async def test_missing_or_placeholder_secrets_stop_start_up_naming_the_setting(
    bao: OpenBaoDevServer, stored: dict[str, str] | None, message: str
) -> None:
    path = _path()
    if stored is not None:
        await bao.put_secret(path, stored)
    settings = _bare(vault_addr=bao.addr, vault_token=bao.root_token, vault_secrets_path=path)
    with pytest.raises(ConfigError) as refused:
        async with open_secrets(settings, required=("slack_bot_token", "slack_signing_secret")):
            pass
    assert str(refused.value).startswith(message.format(path=path))
    for value in (stored or {}).values():
        assert value not in str(refused.value)


async def test_an_unreachable_vault_stops_start_up() -> None:
    settings = _bare(vault_addr=f"http://127.0.0.1:{free_port()}", vault_token="t-unreachable")
    with pytest.raises(ConfigError, match="cannot read the bot's secrets from Vault") as refused:
        async with open_secrets(settings, required=("slack_bot_token",)):
            pass
    assert "t-unreachable" not in str(refused.value)


# ---------------------------------------------------------------------- rotation reaches the app


@asynccontextmanager
async def _app(
    settings: Settings, dsn: str, live: LiveSecrets
) -> AsyncIterator[tuple[Services, str]]:
    """The real app (as `icbot serve` wires it) on 127.0.0.1, following `live`."""
    assert settings.slack_bot_token is not None and settings.slack_signing_secret is not None
    async with open_services(
        settings,
        dsn=dsn,
        token=settings.slack_bot_token.get_secret_value(),
        pacer=ChannelPacer(per_second=0, burst=1),
        run_workers=False,
    ) as services:
        bolt = build_slack_app(services)
        use_current_token(bolt, services.client)
        app = build_web_app(
            services, bolt, signing_secret=settings.slack_signing_secret.get_secret_value()
        )
        follow_rotation(live, services, web_app=app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            yield services, f"http://127.0.0.1:{runner.addresses[0][1]}"
        finally:
            await runner.cleanup()


async def test_rotated_slack_secrets_reach_the_running_app_without_a_restart(
    bao: OpenBaoDevServer, dsn: str, slack: FakeSlack
) -> None:
    path = _path()
    await bao.put_secret(path, {"slack_bot_token": slack.token, "slack_signing_secret": SIGNING_1})
    settings = make_settings(
        slack,
        slack_bot_token=None,
        slack_signing_secret=None,
        vault_addr=bao.addr,
        vault_token=bao.root_token,
        vault_secrets_path=path,
    )
    dana = slack.add_user("dana")
    channel = slack.channel_id("waqiti-incidents")

    def command(secret: str, text: str) -> Any:
        return SlackRequests(secret, team_id=slack.team_id).slash_command(
            "/ic", text, user_id=dana, user_name="dana", channel_id=channel,
            channel_name="waqiti-incidents",
            response_url=slack.new_response_url(channel=channel, user=dana),
        )  # fmt: skip

    async with (
        open_secrets(settings, required=("slack_bot_token", "slack_signing_secret")) as live,
        _app(settings, dsn, live) as (services, base),
        aiohttp.ClientSession() as http,
    ):

        async def post(request: Any) -> int:
            async with http.post(
                f"{base}/slack/events", data=request.body.encode(), headers=request.headers
            ) as resp:
                return resp.status

        assert await post(command(SIGNING_1, "declare Ledger down sev2")) == 200
        await services.inflight.idle()
        await services.outbox.drain(timeout=10)
        assert len(slack.roots("waqiti-incidents")) == 1

        # Rotate both in Vault (and in Slack: the old bot token stops working there).
        new_token = "xoxb-rotated-0123456789"
        slack.token = new_token
        await bao.put_secret(
            path, {"slack_bot_token": new_token, "slack_signing_secret": SIGNING_2}
        )
        assert await live.refresh() == {"slack_bot_token", "slack_signing_secret"}

        assert await post(command(SIGNING_1, "note signed with the old secret")) == 401
        assert await post(command(SIGNING_2, "note signed with the new secret")) == 200
        await services.inflight.idle()
        await services.outbox.drain(timeout=10)  # the outbox posts with the new token
        card = slack.roots("waqiti-incidents")[0]
        assert any("new secret" in m.text for m in slack.thread("waqiti-incidents", card.ts))

        # Listeners' own client (Bolt's per-request one) uses the new token too.
        mention = SlackRequests(SIGNING_2, team_id=slack.team_id).event(
            {"type": "app_mention", "user": dana, "channel": channel, "text": "<@icbot> hi",
             "ts": "1700000000.000100", "event_ts": "1700000000.000100"}
        )  # fmt: skip
        assert await post(mention) == 200
        await slack.wait_for(
            lambda: any("I run incidents here" in m.text for m in slack.messages[channel])
        )


# ---------------------------------------------------------------------- icbot serve


async def test_serve_takes_its_secrets_from_openbao_and_picks_up_a_rotation(
    bao: OpenBaoDevServer, dsn: str, slack: FakeSlack
) -> None:
    path = _path()
    await bao.put_secret(path, {"slack_bot_token": slack.token, "slack_signing_secret": SIGNING_1})
    port = free_port()
    env = clean_env(
        DATABASE_URL=dsn,
        SLACK_API_URL=slack.url,
        VAULT_ADDR=bao.addr,
        VAULT_TOKEN=bao.root_token,
        VAULT_SECRETS_PATH=path,
        SECRETS_REFRESH_SECONDS="0.2",
        PORT=str(port),
    )
    bot = await start("serve", env, port=port)
    dana = slack.add_user("dana")
    channel = slack.channel_id("waqiti-incidents")

    def command(secret: str, text: str) -> Any:
        return SlackRequests(secret, team_id=slack.team_id).slash_command(
            "/ic", text, user_id=dana, user_name="dana", channel_id=channel,
            channel_name="waqiti-incidents",
            response_url=slack.new_response_url(channel=channel, user=dana),
        )  # fmt: skip

    try:
        await wait_ready(bot)
        async with aiohttp.ClientSession() as http:

            async def post(request: Any) -> int:
                async with http.post(
                    f"{bot.base}/slack/events", data=request.body.encode(), headers=request.headers
                ) as resp:
                    return resp.status

            assert await post(command(SIGNING_1, "declare Ledger down sev2")) == 200
            await slack.wait_for(lambda: len(slack.roots("waqiti-incidents")) == 1, timeout=15)

            new_token = "xoxb-rotated-by-vault-42"
            slack.token = new_token
            await bao.put_secret(
                path, {"slack_bot_token": new_token, "slack_signing_secret": SIGNING_2}
            )
            for _ in range(100):  # the re-read runs every 0.2 s
                if await post(command(SIGNING_2, "status Mitigating after rotation")) == 200:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the rotated signing secret was never accepted")
            assert await post(command(SIGNING_1, "note old secret")) == 401
            card = slack.roots("waqiti-incidents")[0]
            await slack.wait_for(
                lambda: any(
                    "after rotation" in m.text for m in slack.thread("waqiti-incidents", card.ts)
                ),
                timeout=15,
            )
        assert bot.proc.returncode is None  # the same process all along
    finally:
        code = await bot.stop()
    assert code == 0, bot.text[-3000:]
    events = bot.events()
    loaded = next(e for e in events if e["event"] == "secrets.loaded")
    assert loaded["from_vault"] == ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"]
    assert any(
        e["event"] == "secrets.rotated"
        and e["settings"] == ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"]
        for e in events
    )
    for value in (SIGNING_1, SIGNING_2, new_token, bao.root_token):
        assert value not in bot.text


async def test_serve_refuses_a_placeholder_from_vault_without_showing_it(
    bao: OpenBaoDevServer, dsn: str
) -> None:
    path = _path()
    await bao.put_secret(
        path, {"slack_bot_token": "xoxb-your-token", "slack_signing_secret": SIGNING_1}
    )
    env = clean_env(
        DATABASE_URL=dsn, VAULT_ADDR=bao.addr, VAULT_TOKEN=bao.root_token, VAULT_SECRETS_PATH=path
    )
    bot = await run_to_exit("serve", env)
    assert bot.proc.returncode == 2
    assert f"SLACK_BOT_TOKEN from Vault (secret/{path}, key slack_bot_token)" in bot.text
    assert "placeholder" in bot.text
    assert "xoxb-your-token" not in bot.text and SIGNING_1 not in bot.text
