"""Signed, expiring links to an incident's page. Pure functions, except `local_key` (a file).

A token is `<expiry>.<mac>`: the expiry in Unix seconds and an HMAC-SHA256, keyed by the
page key, over the incident and that expiry. Changing either breaks the MAC, so a token for
INC-3 opens nothing but INC-3, and only until it expires. Checking compares in constant time.

The key is `WEB_LINK_SECRET`, else derived from `SLACK_SIGNING_SECRET` (so a deployment needs
no new secret), else, for a laptop (`icbot shell` and `icbot web` on the embedded database),
a random key kept beside that database, so the shell's links open in `icbot web`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from urllib.parse import quote

from bot.core.models import incident_ref
from bot.core.settings import Settings

PURPOSE = b"icbot incident page links v1"  # derivation label: a key for nothing else
LOCAL_KEY_FILE = "web-link.key"
_TOKEN = re.compile(r"^(\d{1,12})\.([A-Za-z0-9_-]{43})$")
MAX_TOKEN = 64  # anything longer is not ours; refused before any parsing


class Check(StrEnum):
    VALID = "valid"
    MALFORMED = "malformed"  # missing, too long or not `<expiry>.<mac>`
    FORGED = "forged"  # the MAC does not match: altered, or for another incident or key
    EXPIRED = "expired"


def derive_key(secret: str) -> bytes:
    """A page key from a secret meant for something else (the Slack signing secret)."""
    return hmac.new(secret.encode("utf-8"), PURPOSE, hashlib.sha256).digest()


def page_key(*, web_link_secret: str | None, signing_secret: str | None) -> bytes | None:
    """`WEB_LINK_SECRET` (used as given), else one derived from the signing secret; None if
    neither is set (the caller then uses `local_key`)."""
    if web_link_secret:
        return hashlib.sha256(PURPOSE + b"\n" + web_link_secret.encode("utf-8")).digest()
    if signing_secret:
        return derive_key(signing_secret)
    return None


def local_key(data_dir: Path) -> bytes:
    """The laptop's key, created (0600) beside the embedded database on first use. Made
    whole in a file of its own and then linked into place, so two processes starting at
    once agree on one key."""
    path = data_dir / LOCAL_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fresh = data_dir / f".{LOCAL_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(32))
            os.link(fresh, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            fresh.unlink(missing_ok=True)
    raw = path.read_bytes()
    if len(raw) < 32:
        raise ValueError(f"{path} is not a page key (remove it to make a new one)")
    return raw[:32]


def _mac(key: bytes, incident_id: int, expires: int) -> str:
    message = f"{incident_ref(incident_id)}\n{expires}".encode("ascii")
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def mint(key: bytes, incident_id: int, *, expires: int) -> str:
    """A token that opens `incident_id`'s page until `expires` (Unix seconds)."""
    return f"{expires}.{_mac(key, incident_id, expires)}"


def check(key: bytes, incident_id: int, token: str | None, *, now: float) -> Check:
    """Whether `token` opens `incident_id`'s page at `now` (Unix seconds)."""
    if not token or len(token) > MAX_TOKEN:
        return Check.MALFORMED
    match = _TOKEN.match(token)
    if match is None:
        return Check.MALFORMED
    expires = int(match.group(1))
    if not hmac.compare_digest(match.group(2), _mac(key, incident_id, expires)):
        return Check.FORGED
    if now >= expires:
        return Check.EXPIRED
    return Check.VALID


def page_url(base: str, incident_id: int, token: str, *, suffix: str = "") -> str:
    """`<base>/incidents/INC-n<suffix>?t=<token>`; `suffix` is "", ".svg", ".md" or ".json"."""
    return f"{base.rstrip('/')}/incidents/{incident_ref(incident_id)}{suffix}?t={quote(token)}"


@dataclass(frozen=True)
class Linker:
    """Mints page links: the key, where people reach the bot, and how long a link lasts."""

    key: bytes
    base: str
    ttl: float  # seconds

    def token(self, incident_id: int, *, now: datetime) -> str:
        return mint(self.key, incident_id, expires=int(now.timestamp() + self.ttl))

    def url(self, incident_id: int, *, now: datetime, suffix: str = "") -> str:
        token = self.token(incident_id, now=now)
        return page_url(self.base, incident_id, token, suffix=suffix)


def linker(settings: Settings) -> Linker:
    """The links of this deployment (see the module's docstring for where the key comes from)."""
    secret = settings.web_link_secret
    signing = settings.slack_signing_secret
    key = page_key(
        web_link_secret=secret.get_secret_value() if secret else None,
        signing_secret=signing.get_secret_value() if signing else None,
    )
    if key is None:
        key = local_key(settings.data_dir)
    return Linker(key=key, base=settings.page_base_url, ttl=settings.web_link_ttl)
