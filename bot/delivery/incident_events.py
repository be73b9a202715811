"""Incident events out: every timeline entry, published to Kafka in order, none lost.

The timeline is the transactional outbox. Entries are written in the transaction of the change
they describe, with a contiguous `seq` per incident, and the incident row is locked while an
entry is appended, so the committed entries of an incident are always a prefix 1..n. Each
incident has a high-water mark, `incident_event_marks.published_seq`: a worker in every
replica leases incidents whose timeline is ahead of their mark, publishes the entries after
it in `seq` order (key = incident id, so one partition and one order per incident), and moves
the mark only after the broker acknowledged them. `timeline.record` and its callers do not
change.

Order: per incident, at most one publish is in flight (the lease), and a publish is one record
batch on one partition, which the broker appends whole or not at all; the next publish of that
incident starts only after the mark moved. So while Kafka is down the backlog waits in
PostgreSQL (retried with back-off) and nothing is dropped or overtaken. Delivery is at least
once: when an acknowledgement is lost the same entries are sent again, and a lease that ran out
mid-publish can let two replicas send the same entries; consumers drop an event whose `seq` is
not above the last one they applied for its incident (`hash` and `prev_hash` also let them
verify the chain).

The value is JSON: ``{"incident", "seq", "kind", "actor", "text", "data", "occurred_at",
"hash", "prev_hash"}`` (`occurred_at` in ISO 8601, UTC).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, timedelta
from typing import Any

import asyncpg
from prometheus_client import Counter, Gauge

from bot.core.errors import ErrorCode, IntegrationError
from bot.core.logs import get_logger
from bot.core.metrics import REGISTRY, integration_error
from bot.core.models import Clock, TimelineEntry, utcnow
from bot.delivery.worker import Worker
from bot.domain.ports import EventSink
from bot.store import incident_events as events_sql
from bot.store.incident_events import Claim

log = get_logger(__name__)

LEASE = timedelta(seconds=30)
MAX_BACKOFF = 60.0
MAX_VALUE_BYTES = 512 * 1024  # larger entries are sent without their `data`

PUBLISHED = Counter(
    "icbot_incident_events_published_total",
    "Timeline entries published to the incident-events topic (acknowledged by the broker).",
    registry=REGISTRY,
)
BACKLOG = Gauge(
    "icbot_incident_events_backlog",
    "Timeline entries not yet published to the incident-events topic (database-wide: use max).",
    registry=REGISTRY,
)


def event_value(entry: TimelineEntry) -> bytes:
    body: dict[str, Any] = {
        "incident": entry.incident_id,
        "seq": entry.seq,
        "kind": entry.kind,
        "actor": entry.actor,
        "text": entry.text,
        "data": entry.data,
        "occurred_at": entry.occurred_at.astimezone(UTC).isoformat(),
        "hash": entry.hash,
        "prev_hash": entry.prev_hash,
    }
    value = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(value) > MAX_VALUE_BYTES:
        body["data"] = None
        body["truncated"] = True
        value = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return value


class IncidentEvents(Worker):
    """The publishing loop every replica runs (the `LeasedQueue` pattern over marks)."""

    name = "incident_events"

    def __init__(
        self,
        pool: asyncpg.Pool,
        sink: EventSink,
        *,
        clock: Clock = utcnow,
        poll_interval: float = 1.0,
        lease: timedelta = LEASE,
        incidents_per_round: int = 20,
        entries_per_publish: int = 500,
    ) -> None:
        super().__init__(poll_interval=poll_interval)
        self.pool = pool
        self.sink = sink
        self.clock = clock
        self.lease = lease
        self.incidents_per_round = incidents_per_round
        self.entries_per_publish = entries_per_publish
        self._lock = asyncio.Lock()

    async def run_round(self) -> int:
        return await self.process_once()

    async def _idle(self) -> None:
        await self._refresh_backlog()

    async def drain(self, *, timeout: float = 30.0) -> None:
        """Publish everything recorded so far (tests and the shell); waits out back-offs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.process_once():
                continue
            async with self.pool.acquire() as conn:
                pending, _ = await events_sql.backlog(conn)
                if pending == 0:
                    BACKLOG.set(0)
                    return
                due = await events_sql.next_due(conn)
            wait = 0.05
            if due is not None:
                wait = min(max((due - self.clock()).total_seconds(), 0.01), 1.0)
            await asyncio.sleep(wait)
        raise TimeoutError("the incident events did not drain")

    async def process_once(self) -> int:
        """One round: lease incidents with unpublished entries and publish them. Entries sent."""
        async with self._lock:
            async with self.pool.acquire() as conn, conn.transaction():
                claims = await events_sql.claim(
                    conn, now=self.clock(), lease=self.lease, limit=self.incidents_per_round
                )
            if not claims:
                return 0
            sent = await asyncio.gather(*(self._publish(c) for c in claims))
            return sum(sent)

    async def _publish(self, claim: Claim) -> int:
        async with self.pool.acquire() as conn:
            entries = await events_sql.entries_after(
                conn, claim.incident_id, claim.published_seq, limit=self.entries_per_publish
            )
            if not entries:  # another replica got there first
                await events_sql.advance(conn, claim, seq=claim.published_seq, now=self.clock())
                return 0
            # Still ours right before the outside call (the wait for the pool can be long).
            if not await events_sql.renew(conn, claim, now=self.clock(), lease=self.lease):
                return 0
        try:
            sent = await self.sink.publish(
                str(claim.incident_id).encode(), [event_value(e) for e in entries]
            )
        except IntegrationError as exc:
            await self._failed(claim, exc)
            return 0
        if sent <= 0:
            await self._failed(
                claim, IntegrationError("kafka", ErrorCode.UNAVAILABLE, "nothing was accepted")
            )
            return 0
        async with self.pool.acquire() as conn:
            await events_sql.advance(conn, claim, seq=entries[sent - 1].seq, now=self.clock())
        PUBLISHED.inc(sent)
        return sent

    async def _failed(self, claim: Claim, exc: IntegrationError) -> None:
        integration_error(exc.service)
        delay = min(MAX_BACKOFF, 0.5 * 2 ** min(claim.attempts, 7))
        log.warning(
            f"{self.name}.retry", incident=claim.incident_id, error=str(exc), in_seconds=delay
        )
        async with self.pool.acquire() as conn:
            await events_sql.retry_later(
                conn, claim, at=self.clock() + timedelta(seconds=delay), error=str(exc)
            )

    async def _refresh_backlog(self) -> None:
        with contextlib.suppress(Exception):
            async with self.pool.acquire() as conn:
                pending, _ = await events_sql.backlog(conn)
            BACKLOG.set(pending)
