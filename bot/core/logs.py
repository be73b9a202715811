"""structlog, configured once per process. Secrets are redacted before rendering.

One set of rules: card numbers and secrets in any logged text are redacted by the guard's
(`bot/core/guard.py`, "[redacted: Slack bot token]"); on top of them, values under secret-looking
keys, bearer credentials, passwords in URLs and Slack signatures become "[redacted]".
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from bot.core import guard

_SECRET_KEYS = re.compile(r"(token|secret|password|authorization|signature|dsn|database_url)", re.I)
# Slack tokens, bearer credentials and passwords inside URLs, wherever they appear in text.
_SECRET_VALUES = re.compile(
    r"(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|Bearer\s+[A-Za-z0-9._~+/=-]+"
    r"|Token token=[A-Za-z0-9._~+/=-]+|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)|v0=[0-9a-f]{16,})"
)
REDACTED = "[redacted]"


def redact_text(text: str) -> str:
    return _SECRET_VALUES.sub(REDACTED, guard.redact(text).text)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            k: REDACTED if _SECRET_KEYS.search(str(k)) else _redact(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if _SECRET_KEYS.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact(event_dict[key])
    return event_dict


_configured = False


def configure(fmt: str, level: str = "INFO") -> None:
    """Set up structlog and route stdlib logging (bolt, aiohttp, asyncpg) through it."""
    global _configured
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_processor,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared], processor=renderer
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter stays at WARNING unless asked for.
    for noisy in ("slack_bolt", "slack_sdk", "aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    _configured = True


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)
