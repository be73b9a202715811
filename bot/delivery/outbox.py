"""Posts the timeline and the incident cards to Slack: at least once, never twice, in order.

Items are rows in `outbox`, written in the same transaction as the change they announce. A
worker leases the oldest unfinished item of each incident, posts it, and marks it done. If a
worker dies after Slack accepted a post but before marking it, the item's next attempt first
looks for the post by its metadata key, so it is not posted twice. A 429 pauses the channel
for `Retry-After`; other failures back off; nothing is dropped unless Slack refuses the same
request permanently several times (logged as an error, the timeline in PostgreSQL keeps it).
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg

from bot.core import metrics
from bot.core.errors import IntegrationError
from bot.core.ids import Metadata
from bot.core.logs import get_logger
from bot.core.models import Clock, Incident, TimelineEntry, utcnow
from bot.delivery.worker import Worker
from bot.domain import timeline
from bot.domain.policy import SeverityPolicy
from bot.domain.ports import Chat, Rendered, Renderer, Watcher
from bot.domain.timeline import Kind
from bot.store import actions as actions_sql
from bot.store import digests as digests_sql
from bot.store import incidents as incidents_sql
from bot.store import outbox as outbox_sql
from bot.store import timeline as timeline_sql
from bot.store.outbox import OutboxItem, OutboxKind

log = get_logger(__name__)

LEASE = timedelta(seconds=30)
GONE = ("message_not_found", "cant_update_message")  # a message deleted in Slack
MAX_PERMANENT_FAILURES = 5
MAX_BACKOFF = 60.0


class LeaseLost(Exception):
    """Another replica took the item over while this one waited its turn."""


class ChannelPacer:
    """Slack allows about one message per second per channel, with short bursts."""

    def __init__(
        self,
        *,
        per_second: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.burst = burst
        self._clock = clock  # seconds, monotonic; tests give a clock that `sleep` moves on
        self._sleep = sleep
        self._next: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def pause(self, channel: str, seconds: float) -> None:
        self._next[channel] = max(self._next.get(channel, 0.0), self._clock() + seconds)

    async def wait(self, channel: str) -> None:
        """Wait for `channel`'s next slot; concurrent callers take turns."""
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            await self._wait(channel)

    async def _wait(self, channel: str) -> None:
        if self.interval == 0.0:
            delay = self._next.get(channel, 0.0) - self._clock()
            if delay > 0:
                await self._sleep(delay)
            return
        now = self._clock()
        # `_next` is the time at which the bucket would be full again, minus the burst credit.
        earliest = self._next.get(channel, 0.0) - self.interval * (self.burst - 1)
        if earliest > now:
            await self._sleep(earliest - now)
            now = self._clock()
        self._next[channel] = max(self._next.get(channel, 0.0), now) + self.interval


class LeasedQueue(Worker):
    """Delivers one outbox channel's items: leased, in order per incident, retried.

    Subclasses say how to deliver one item (`_send`) and may react to a failure.
    """

    channel = ""
    name = "outbox"
    # Attempts an item gets while the answer is a permanent failure (a refusal, not an outage).
    permanent_attempts = MAX_PERMANENT_FAILURES

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        clock: Clock = utcnow,
        poll_interval: float = 1.0,
        lease: timedelta = LEASE,
    ) -> None:
        super().__init__(poll_interval=poll_interval)
        self.pool = pool
        self.clock = clock
        self.lease = lease
        self._lock = asyncio.Lock()
        self.on_posted: list[Callable[[OutboxItem], None]] = []

    async def _incident(self, incident_id: int) -> Incident:
        """The incident an item belongs to, as it is now."""
        async with self.pool.acquire() as conn:
            incident = await incidents_sql.get(conn, incident_id)
        assert incident is not None
        return incident

    @abc.abstractmethod
    async def _send(self, item: OutboxItem) -> str | None:
        """Deliver one item; returns an id to remember (a Slack ts), raises IntegrationError."""

    async def _on_failure(self, item: OutboxItem, exc: IntegrationError) -> None:
        """Called before the item is re-planned (or given up); nothing by default."""

    async def _on_success(self, item: OutboxItem) -> None:
        """Called after the item is marked done; nothing by default."""

    async def run_round(self) -> int:
        return await self.process_once()

    async def drain(self, *, timeout: float = 30.0) -> None:
        """Post everything due now (and what falls due within `timeout`): the shell and tests."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.process_once():
                continue
            async with self.pool.acquire() as conn:
                if await outbox_sql.pending_count(conn, self.channel) == 0:
                    return
                due = await outbox_sql.next_due(conn, self.channel)
            wait = 0.05
            if due is not None:
                wait = min(max((due - self.clock()).total_seconds(), 0.01), 1.0)
            await asyncio.sleep(wait)
        raise TimeoutError("the outbox did not drain")

    async def process_once(self, *, limit: int = 20) -> int:
        async with self._lock:
            async with self.pool.acquire() as conn:
                items = await outbox_sql.claim(
                    conn, now=self.clock(), lease=self.lease, limit=limit, channel=self.channel
                )
            # At most one item per incident is claimed, so delivering them concurrently keeps
            # each incident's order; the pacer still spaces posts within a channel.
            await asyncio.gather(*(self._deliver(item) for item in items))
            return len(items)

    async def _deliver(self, item: OutboxItem) -> None:
        try:
            posted_ts = await self._send(item)
        except LeaseLost:
            log.info(f"{self.name}.lease_lost", item=item.dedupe_key)
            return
        except IntegrationError as exc:
            await self._failed(item, exc)
            return
        async with self.pool.acquire() as conn:
            await outbox_sql.complete(conn, item.id, now=self.clock(), posted_ts=posted_ts)
        await self._on_success(item)
        metrics.OUTBOX_POSTED.labels(self.channel, item.kind).inc()
        for hook in self.on_posted:
            hook(item)

    async def _failed(self, item: OutboxItem, exc: IntegrationError) -> None:
        metrics.integration_error(exc.service)
        now = self.clock()
        await self._on_failure(item, exc)
        async with self.pool.acquire() as conn:
            if exc.permanent and item.attempts >= self.permanent_attempts:
                log.error(f"{self.name}.gave_up", item=item.dedupe_key, error=str(exc))
                await outbox_sql.give_up(conn, item.id, now=now, error=str(exc))
                return
            delay = (
                exc.retry_after
                if exc.retry_after is not None
                else min(MAX_BACKOFF, 2.0 ** min(item.attempts, 6) / 2)
            )
            log.warning(
                f"{self.name}.retry", item=item.dedupe_key, error=str(exc), in_seconds=delay
            )
            metrics.OUTBOX_RETRIES.labels(self.channel).inc()
            await outbox_sql.retry_later(
                conn, item.id, at=now + timedelta(seconds=delay), error=str(exc)
            )

    async def _ready(self, item: OutboxItem) -> None:
        """Make sure the item is still ours to deliver, right before the outside call.

        A wait (a burst in one channel, a slow call before it) can outlast the lease, and then
        another replica may have taken the item over; renewing the lease settles who delivers.
        """
        async with self.pool.acquire() as conn:
            if not await outbox_sql.renew(conn, item, now=self.clock(), lease=self.lease):
                raise LeaseLost(item.dedupe_key)


class Outbox(LeasedQueue):
    """The Slack channel: incident cards and thread replies, worded by `renderer`."""

    channel = "slack"
    name = "outbox"

    def __init__(
        self,
        pool: asyncpg.Pool,
        chat: Chat,
        policy: SeverityPolicy,
        *,
        renderer: Renderer,
        clock: Clock = utcnow,
        pacer: ChannelPacer | None = None,
        poll_interval: float = 1.0,
        lease: timedelta = LEASE,
    ) -> None:
        super().__init__(pool, clock=clock, poll_interval=poll_interval, lease=lease)
        self.chat = chat
        self.policy = policy
        self.renderer = renderer
        self.pacer = pacer or ChannelPacer(per_second=1.0, burst=3)
        self.watchers: list[Watcher] = []

    async def _on_success(self, item: OutboxItem) -> None:
        for watcher in self.watchers:
            await watcher.succeeded()

    async def _on_failure(self, item: OutboxItem, exc: IntegrationError) -> None:
        for watcher in self.watchers:
            await watcher.failed(exc)
        if exc.retry_after is None:
            return
        async with self.pool.acquire() as conn:
            incident = await incidents_sql.get(conn, item.incident_id)
        if incident is not None:
            self.pacer.pause(incident.channel_id, exc.retry_after)

    async def _paced(self, item: OutboxItem, channel: str) -> None:
        await self.pacer.wait(channel)
        await self._ready(item)

    async def _send(self, item: OutboxItem) -> str | None:
        if item.kind == OutboxKind.FILE_DELETE:
            await self._ready(item)
            await self.chat.delete_file(str(item.payload["file"]))
            return None
        async with self.pool.acquire() as conn:
            incident = await incidents_sql.get(conn, item.incident_id)
            entry = await timeline_sql.get(conn, item.timeline_id) if item.timeline_id else None
            posted_version = await incidents_sql.card_posted_version(conn, item.incident_id)
        assert incident is not None
        if item.kind == OutboxKind.CARD or incident.thread_ts is None:
            thread_ts = await self._card(item, incident, posted_version)
            if item.kind == OutboxKind.CARD:
                return thread_ts
            incident = await self._incident(incident.id)
        assert entry is not None and incident.thread_ts is not None
        if item.kind == OutboxKind.REFRESH:
            return await self._refresh(item, incident, entry)
        if item.kind == OutboxKind.DIGEST:
            return await self._digest(item, incident, entry)
        key = item.dedupe_key
        if item.attempts > 1:
            found = await self.chat.find_posted(
                channel=incident.channel_id,
                thread_ts=incident.thread_ts,
                event_type=Metadata.ENTRY,
                key=key,
            )
            if found:
                log.info("outbox.already_posted", item=key)
                return found
        message = await self._render(entry)
        await self._paced(item, incident.channel_id)
        async with self.pool.acquire() as conn:
            # This reply goes below the digest: later chatter starts a new digest message.
            # (Safe before the post: nothing of this incident is posted before it is.)
            await digests_sql.close(conn, incident.id)
        return await self.chat.post(
            channel=incident.channel_id,
            thread_ts=incident.thread_ts,
            text=message.text,
            blocks=message.blocks,
            metadata={"event_type": Metadata.ENTRY, "event_payload": {"key": key}},
        )

    async def _digest(self, item: OutboxItem, incident: Incident, entry: TimelineEntry) -> str:
        """Show a folded entry: in the open digest message (edited), or in a new one.

        An update shows every folded entry up to the next key event, so the items queued behind
        this one find themselves shown already and cost no call. A redaction also re-renders
        the older digest messages that showed the deleted words.
        """
        async with self.pool.acquire() as conn:
            segment = await digests_sql.open_segment(conn, incident.id)
            refs = entry.data.get("redacts")
            redacted = [int(r["seq"]) for r in refs if isinstance(r, dict) and "seq" in r] if (
                isinstance(refs, list)
            ) else []  # fmt: skip
            older = await digests_sql.covering(conn, incident.id, redacted) if redacted else []
        for old in older:
            if segment is None or old.first_seq != segment.first_seq:
                await self._show_digest(
                    item, incident, first=old.first_seq, before=old.last_seq + 1, ts=old.ts
                )
        if segment is not None and segment.last_seq >= entry.seq:
            return segment.ts  # an earlier update already showed it
        if segment is None:
            return await self._show_digest(item, incident, first=entry.seq, before=None, ts=None)
        return await self._show_digest(
            item, incident, first=segment.first_seq, before=None, ts=segment.ts
        )

    async def _show_digest(
        self, item: OutboxItem, incident: Incident, *, first: int, before: int | None,
        ts: str | None,
    ) -> str:  # fmt: skip
        """Post or edit the digest message of the segment starting at entry `first`.

        `before=None`: the open segment, up to the next key event still to be posted; else an
        older segment's fixed range (re-rendered after a redaction).
        """
        assert incident.thread_ts is not None
        channel = incident.channel_id
        current = before is None
        # One snapshot: a key event committed between the two reads must not be overtaken.
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            if before is None:
                before = await digests_sql.next_reply_seq(conn, incident.id, after=first)
            entries = await timeline_sql.of_kinds(
                conn, incident.id, timeline.FOLDED, first=first, before=before
            )
        message = self.renderer.thread_digest(entries)
        key = f"inc{incident.id}:digest{first}"
        if ts is None and item.attempts > 1:
            ts = await self.chat.find_posted(
                channel=channel, thread_ts=incident.thread_ts, event_type=Metadata.DIGEST, key=key
            )
        await self._paced(item, channel)
        if ts is not None:
            try:
                await self.chat.update(
                    channel=channel, ts=ts, text=message.text, blocks=message.blocks
                )
            except IntegrationError as exc:
                if exc.reason not in GONE:
                    raise
                # Someone deleted the digest in Slack: its words went with it. The open
                # segment starts a new message; an older one has nothing left to show.
                log.info("outbox.digest_gone", item=item.dedupe_key, ts=ts)
                async with self.pool.acquire() as conn:
                    await digests_sql.forget(conn, incident.id, first)
                if not current:
                    return ts
                ts = None
        if ts is None:
            ts = await self.chat.post(
                channel=channel,
                thread_ts=incident.thread_ts,
                text=message.text,
                blocks=message.blocks,
                metadata={"event_type": Metadata.DIGEST, "event_payload": {"key": key}},
            )
        async with self.pool.acquire() as conn:
            kept = await digests_sql.save(
                conn, incident_id=incident.id, first_seq=first,
                last_seq=max([first, *(e.seq for e in entries)]), ts=ts,
            )  # fmt: skip
        if kept != ts:
            # Another worker posted this segment first (our lease ran out mid-post): keep
            # theirs, up to date, and take ours away so no copy is left that nobody edits.
            await self.chat.delete(channel=channel, ts=ts)
            await self.chat.update(
                channel=channel, ts=kept, text=message.text, blocks=message.blocks
            )
        return kept

    async def _render(self, entry: TimelineEntry) -> Rendered:
        """An entry as a thread reply; an approval card shows its request's state now."""
        if entry.kind == Kind.APPROVAL_REQUESTED:
            async with self.pool.acquire() as conn:
                pending = await actions_sql.get(conn, int(entry.data["pending_id"]))
            if pending is not None:
                return self.renderer.approval_card(entry, pending)
        return self.renderer.timeline_reply(entry)

    async def _refresh(
        self, item: OutboxItem, incident: Incident, entry: TimelineEntry
    ) -> str | None:
        """Edit an already posted reply in place (the approval card after a decision)."""
        async with self.pool.acquire() as conn:
            ts = await outbox_sql.posted_ts(conn, entry.id)
            later = await outbox_sql.later_refresh(conn, item)
        if ts is None:
            return None  # never posted (gave up): nothing to edit
        if later:
            return ts  # a later refresh of this reply renders the state as it is then
        message = await self._render(entry)
        await self._paced(item, incident.channel_id)
        await self.chat.update(
            channel=incident.channel_id, ts=ts, text=message.text, blocks=message.blocks
        )
        return ts

    async def _card(self, item: OutboxItem, incident: Incident, posted_version: int) -> str | None:
        """Post the card as the thread root, or bring it up to date. Returns the thread ts."""
        message = self.renderer.incident_card(incident, self.policy, now=self.clock())
        channel = incident.channel_id
        thread_ts = incident.thread_ts
        if thread_ts is None:
            key = f"inc{incident.id}:card"
            if item.attempts > 1:
                thread_ts = await self.chat.find_posted(
                    channel=channel, thread_ts=None, event_type=Metadata.CARD, key=key
                )
            if thread_ts is None:
                await self._paced(item, channel)
                thread_ts = await self.chat.post(
                    channel=channel,
                    text=message.text,
                    blocks=message.blocks,
                    metadata={
                        "event_type": Metadata.CARD,
                        "event_payload": {"key": key, "incident": incident.id},
                    },
                )
            async with self.pool.acquire() as conn:
                await incidents_sql.set_thread(conn, incident.id, thread_ts=thread_ts)
                await incidents_sql.mark_card_posted(
                    conn, incident.id, version=incident.card_version
                )
            return thread_ts
        if posted_version >= incident.card_version:
            return thread_ts  # a later update already showed this state
        await self._paced(item, channel)
        await self.chat.update(
            channel=channel, ts=thread_ts, text=message.text, blocks=message.blocks
        )
        async with self.pool.acquire() as conn:
            await incidents_sql.mark_card_posted(conn, incident.id, version=incident.card_version)
        return thread_ts
