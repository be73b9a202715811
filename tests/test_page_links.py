"""The incident page's link tokens (bot/pages/links.py): pure functions, no I/O but the key file."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from bot.core.settings import Settings
from bot.pages import links
from bot.pages.links import Check

KEY = links.derive_key("signing-secret-for-tests")
NOW = 1_800_000_000


def test_a_minted_token_opens_its_incident_until_it_expires() -> None:
    token = links.mint(KEY, 7, expires=NOW + 60)
    assert links.check(KEY, 7, token, now=NOW) is Check.VALID
    assert links.check(KEY, 7, token, now=NOW + 59.9) is Check.VALID
    assert links.check(KEY, 7, token, now=NOW + 60) is Check.EXPIRED


def test_a_token_for_one_incident_does_not_open_another() -> None:
    token = links.mint(KEY, 7, expires=NOW + 60)
    assert links.check(KEY, 8, token, now=NOW) is Check.FORGED
    assert links.check(KEY, 70, token, now=NOW) is Check.FORGED


def test_a_token_under_another_key_is_refused() -> None:
    token = links.mint(links.derive_key("another"), 7, expires=NOW + 60)
    assert links.check(KEY, 7, token, now=NOW) is Check.FORGED


def test_moving_the_expiry_of_a_token_breaks_it() -> None:
    token = links.mint(KEY, 7, expires=NOW + 60)
    mac = token.split(".", 1)[1]
    assert links.check(KEY, 7, f"{NOW + 10**6}.{mac}", now=NOW) is Check.FORGED


@given(st.text(max_size=80))
def test_any_other_string_is_refused_without_error(token: str) -> None:
    assert links.check(KEY, 7, token, now=NOW) is not Check.VALID


@given(st.integers(min_value=0, max_value=42), st.sampled_from("AQgw_-"))
def test_changing_any_character_of_a_token_breaks_it(position: int, char: str) -> None:
    token = links.mint(KEY, 7, expires=NOW + 60)
    position = len(token) - 1 - position
    altered = token[:position] + char + token[position + 1 :]
    if altered != token:
        assert links.check(KEY, 7, altered, now=NOW) is not Check.VALID


def test_missing_and_oversized_tokens_are_malformed() -> None:
    assert links.check(KEY, 7, None, now=NOW) is Check.MALFORMED
    assert links.check(KEY, 7, "", now=NOW) is Check.MALFORMED
    assert links.check(KEY, 7, "1" * 500, now=NOW) is Check.MALFORMED


def test_web_link_secret_wins_over_the_signing_secret_and_keys_differ_by_source() -> None:
    own = links.page_key(web_link_secret="pages", signing_secret="signing")
    derived = links.page_key(web_link_secret=None, signing_secret="signing")
    assert own is not None and derived is not None
    assert own != derived
    assert derived != b"signing"  # derived for this purpose, not the signing secret itself
    assert links.page_key(web_link_secret=None, signing_secret=None) is None


def test_without_secrets_a_local_key_is_kept_beside_the_database(tmp_path: Path) -> None:
    first = links.local_key(tmp_path)
    assert links.local_key(tmp_path) == first  # the shell's links open in `icbot web`
    assert stat.S_IMODE((tmp_path / links.LOCAL_KEY_FILE).stat().st_mode) == 0o600


def test_links_use_public_url_and_the_ttl(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        public_url="https://icbot.example/",
        web_link_secret="pages-secret-0123456789",
        web_link_ttl="2h",
        data_dir=tmp_path,
    )
    linker = links.linker(settings)
    now = datetime.fromtimestamp(NOW, UTC)
    url = linker.url(3, now=now, suffix=".svg")
    assert url.startswith("https://icbot.example/incidents/INC-3.svg?t=")
    token = url.split("?t=", 1)[1]
    assert token.startswith(f"{NOW + 7200}.")
    assert links.check(linker.key, 3, token, now=NOW + 7199) is Check.VALID
    assert not (tmp_path / links.LOCAL_KEY_FILE).exists()


def test_public_url_defaults_to_localhost_and_the_port() -> None:
    settings = Settings(_env_file=None, port=8123)  # type: ignore[call-arg]
    assert settings.page_base_url == "http://localhost:8123"
    assert settings.web_link_ttl == 7 * 24 * 3600
