"""Exactly once per request from outside. No Slack here: the edge names the request, this
claims it. Written for Slack; PagerDuty webhook events use it too (`bot.domain.pager_events`).

Slack may deliver one request more than once (retries, a replay within its 5-minute window, a
double submit of a form). Each request has a key: a slash command's, button's or shortcut's
`trigger_id`, a view submission's view id and hash (see `commands.app`). The edge opens a `scope`
for it; everything the request then does runs inside that scope (a context variable, copied
into the tasks it starts), and the request is claimed as a row of `handled_requests`, across
replicas:

- **With the work, when the work is a database change.** `timeline.record` (every change
  writes its entry) claims the request in the transaction of the change, and work with an
  outside effect before its entry (a file upload, a new incident number) claims at the top of
  its transaction. So the claim commits with the change, and a change that fails rolls its
  claim back: a genuine retry then runs. A repeat claims the same key and gets `Repeated`
  (if the first is still running, its claim waits for the first to commit or roll back), which
  rolls its transaction back; the edge answers it nothing.
- **First, when the work changes nothing** (a listing, a form opened): `claim_first` just
  before the reply or the call to Slack, in a transaction of its own.

A claim is made once per delivery (`owner`): the same delivery claiming again, in a later
transaction of the same work, succeeds. Claims older than their window (`WINDOW` for Slack)
no longer count and are pruned (`prune`). Events (`event_id`) are claimed first, before their
listeners run (`claim_event`): their listeners are made idempotent instead (see
`commands.scribe`).
"""

from __future__ import annotations

import contextvars
import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from bot.core.errors import Repeated
from bot.store import Conn
from bot.store import requests as requests_sql

WINDOW = timedelta(minutes=30)  # a Slack repeat within this is dropped; older claims pruned
PAGERDUTY_WINDOW = timedelta(hours=72)  # PagerDuty redelivers a webhook for up to 48 hours


@dataclass(frozen=True)
class Request:
    """One delivery of a request: its key, when it came, how long a claim of it counts, and
    who claims (this delivery)."""

    key: str
    at: datetime
    window: timedelta = WINDOW
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class _Scope:
    request: Request
    pool: asyncpg.Pool


_current: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar(
    "slack_request", default=None
)


def digest(value: str) -> str:
    """What is stored of a request's id (a trigger_id is a short-lived credential)."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def trigger_key(trigger_id: str) -> str:
    return f"trigger:{digest(trigger_id)}"


def view_key(view_id: str, view_hash: str) -> str:
    return f"view:{digest(f'{view_id}:{view_hash}')}"


def event_key(event_id: str) -> str:
    return f"event:{event_id[:200]}"


def pagerduty_key(event_id: str) -> str:
    return f"pagerduty:{event_id[:200]}"


def current() -> Request | None:
    found = _current.get()
    return found.request if found is not None else None


@contextmanager
def scope(request: Request, *, pool: asyncpg.Pool) -> Iterator[None]:
    """Run the request's work (and the tasks it starts) as `request`; `pool` is where
    `claim_first` claims it."""
    token = _current.set(_Scope(request, pool))
    try:
        yield
    finally:
        _current.reset(token)


async def claim(conn: Conn) -> None:
    """Claim the current request in the caller's transaction; raises Repeated if another
    delivery of it has (or is about to have) done its work. No request in scope: nothing."""
    found = _current.get()
    if found is None:
        return
    request = found.request
    if not conn.is_in_transaction():
        raise RuntimeError("once.claim must run inside the transaction of the work")
    if not await requests_sql.claim(
        conn, key=request.key, owner=request.owner, at=request.at, window=request.window
    ):
        raise Repeated(request.key)


async def claim_first() -> None:
    """Claim the current request on its own, before an effect that is not a database change
    (a reply, a form opened); raises Repeated if another delivery has it."""
    found = _current.get()
    if found is None:
        return
    async with found.pool.acquire() as conn, conn.transaction():
        await claim(conn)


async def seen(pool: asyncpg.Pool, request: Request) -> bool:
    """Whether `request` was already handled (claimed and committed): the cheap early check."""
    async with pool.acquire() as conn:
        return await requests_sql.is_claimed(conn, key=request.key, at=request.at)


async def claim_event(pool: asyncpg.Pool, request: Request) -> bool:
    """Claim an event before its listeners run; False if it was handled already."""
    async with pool.acquire() as conn:
        return await requests_sql.claim(
            conn, key=request.key, owner=request.owner, at=request.at, window=request.window
        )


async def prune(pool: asyncpg.Pool, *, now: datetime) -> int:
    async with pool.acquire() as conn:
        return await requests_sql.prune(conn, now=now)
