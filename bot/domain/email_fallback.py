"""Email when Slack is down: Slack's health as the outbox sees it, and the `email` queue.

`SlackWatch` hears every Slack outbox attempt (`Outbox.watchers`). A failure (an outage, a
5xx, a timeout, or Slack refusing our credentials; not a 429, nor a refusal of one message's
content) starts the clock unless it runs already; any post that goes through stops it. The
clock is one row in PostgreSQL (`slack_health`), not process memory: every replica posts, so
the replica that sees the threshold pass, the one that emails and the one whose post succeeds
again must agree, and a restart in the middle of an outage must neither forget it nor
announce it twice. Conditional updates on that row make each transition happen once.

When the failures have lasted `SLACK_DOWN_AFTER` (`SlackWatch.check`, run by `EmailQueue`
every round in every replica), each open incident's timeline records "Slack unreachable since
<time>, notifying by email" (once per outage), and every key event the Slack outbox has not
posted (`FOLDED` kinds are never emailed: they are chatter; status prompts are key events) is
queued in the `email` channel of the outbox, until a Slack post goes through again: then the
timeline records "Slack reachable again" (emailed too, so readers know to go back to Slack)
and nothing more is queued.

Recipients are the incident's role holders, by the email Slack's `users.info` showed while it
answered (cached in `user_emails`: when Slack is down it cannot be asked), and the
`FALLBACK_EMAILS`. SMTP offers no way to ask whether a message was delivered before, so a
crash between the server's answer and the commit sends that email again; it carries the same
`Message-ID` (made from the incident, the entry's sequence and hash), so receivers that
deduplicate drop the copy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from bot.core import wording
from bot.core.errors import ErrorCode, IntegrationError
from bot.core.logs import get_logger
from bot.core.timefmt import human_duration
from bot.delivery.outbox import LEASE, LeasedQueue
from bot.domain.ports import Directory, Mailer, MailRenderer
from bot.domain.timeline import Kind
from bot.domain.uow import UnitOfWork
from bot.store import fallback as fallback_sql
from bot.store import incidents as incidents_sql
from bot.store import timeline as timeline_sql
from bot.store.outbox import OutboxItem, OutboxKind

log = get_logger(__name__)

# Slack refusing one message (its content, or a message deleted since) says nothing about Slack.
MESSAGE_REFUSALS = frozenset(
    {"msg_too_long", "no_text", "invalid_blocks", "invalid_arguments", "message_not_found",
     "cant_update_message"}
)  # fmt: skip
EMAIL_CACHE_TTL = timedelta(days=1)
EMAIL_LOOKUPS_PER_ROUND = 20


class EmailKind(StrEnum):
    """What an email outbox row asks for (the outbox's ``kind`` column, channel email)."""

    ENTRY = "email_entry"  # a timeline entry, to the incident's people and FALLBACK_EMAILS


def counts_as_down(exc: IntegrationError) -> bool:
    """Does this failed post say Slack is down (rather than busy, or refusing one message)?"""
    if exc.code == ErrorCode.RATE_LIMITED or exc.retry_after is not None:
        return False
    return exc.reason not in MESSAGE_REFUSALS


class SlackWatch:
    """Slack's health, kept in `slack_health`; records the outage and the recovery, once."""

    def __init__(self, uow: UnitOfWork, *, down_after: timedelta) -> None:
        self.uow = uow
        self.down_after = down_after

    async def failed(self, exc: IntegrationError) -> None:
        if not counts_as_down(exc):
            return
        async with self.uow.connection() as conn:
            await fallback_sql.post_failed(conn, now=self.uow.clock(), error=str(exc))

    async def succeeded(self) -> None:
        async with self.uow.connection() as conn:
            health = await fallback_sql.health(conn)
        if health.failing_since is None and health.down_since is None:
            return  # the usual case, after every post: one read, no write, no lock
        async with self.uow.transaction() as tx:
            was = await fallback_sql.post_succeeded(tx.conn)
            if was is False or was is None:
                return  # nothing was failing, or not for long enough to be an outage
            assert isinstance(was, datetime)
            lasted = human_duration((tx.now - was).total_seconds())
            for incident_id in await fallback_sql.open_incidents_noticed(
                tx.conn, kind=Kind.SLACK_UNREACHABLE, since=was
            ):
                entry = await tx.record(
                    incident_id=incident_id,
                    kind=Kind.SLACK_REACHABLE,
                    actor="icbot",
                    data=wording.data(
                        since=was.isoformat(), lasted_s=(tx.now - was).total_seconds()
                    ),
                )
                await fallback_sql.enqueue_email(
                    tx.conn, incident_id=incident_id, timeline_id=entry.id, kind=EmailKind.ENTRY
                )
        log.info("slack.reachable", since=was.isoformat(), lasted=lasted)

    async def check(self) -> datetime | None:
        """When Slack is down, the outage's start (recorded and emailed); else None."""
        async with self.uow.connection() as conn:
            health = await fallback_sql.health(conn)
        if health.failing_since is None:
            return None
        since = health.down_since
        if since is None:
            async with self.uow.connection() as conn:
                since = await fallback_sql.mark_down(
                    conn, now=self.uow.clock(), after=self.down_after
                )
            if since is None:
                return None  # failing, not for long enough yet
            log.warning("slack.unreachable", since=since.isoformat())
        async with self.uow.transaction() as tx:
            # The row lock makes replicas take turns: each incident is told once per outage.
            if (await fallback_sql.health(tx.conn, lock=True)).down_since != since:
                return None  # it came back meanwhile
            for incident_id in await fallback_sql.open_incidents_noticed(
                tx.conn, kind=Kind.SLACK_UNREACHABLE, since=since, noticed=False
            ):
                await tx.record(
                    incident_id=incident_id,
                    kind=Kind.SLACK_UNREACHABLE,
                    actor="icbot",
                    data=wording.data(since=since.isoformat()),
                )
            await fallback_sql.enqueue_unposted(
                tx.conn, kind=EmailKind.ENTRY, reply_kind=OutboxKind.REPLY, since=since
            )
        return since


class EmailQueue(LeasedQueue):
    """The `email` channel: key events by email while Slack is down (see the module's doc)."""

    channel = fallback_sql.EMAIL_CHANNEL
    name = "email"
    # A 5xx answer refuses this message (a bad address, our credentials): a few tries, no more.
    permanent_attempts = 3

    def __init__(
        self,
        uow: UnitOfWork,
        mailer: Mailer,
        *,
        watch: SlackWatch,
        directory: Directory,
        renderer: MailRenderer,
        fallback: Sequence[str] = (),
        link: Callable[[int, datetime], str] | None = None,
        poll_interval: float = 1.0,
        lease: timedelta = LEASE,
    ) -> None:
        super().__init__(uow.pool, clock=uow.clock, poll_interval=poll_interval, lease=lease)
        self.uow = uow
        self.mailer = mailer
        self.watch = watch
        self.directory = directory
        self.renderer = renderer
        self.fallback = list(fallback)
        self.link = link

    async def run_round(self) -> int:
        if await self.watch.check() is None:
            await self.cache_emails()
        return await self.process_once()

    async def cache_emails(self) -> int:
        """Ask Slack, while it answers, for the emails of open incidents' role holders."""
        now = self.clock()
        async with self.uow.connection() as conn:
            wanted = await fallback_sql.uncached_role_holders(
                conn, stale_before=now - EMAIL_CACHE_TTL, limit=EMAIL_LOOKUPS_PER_ROUND
            )
        for user_id in wanted:
            try:
                person = await self.directory.member(user_id)
            except IntegrationError as exc:  # Slack is failing: the cache stays as it was
                log.info("email.lookup_failed", user=user_id, error=str(exc))
                return 0
            async with self.uow.connection() as conn:
                await fallback_sql.remember(conn, person, now=now)
        return len(wanted)

    async def _send(self, item: OutboxItem) -> str | None:
        async with self.uow.snapshot() as conn:
            incident = await incidents_sql.get(conn, item.incident_id)
            entry = await timeline_sql.get(conn, item.timeline_id) if item.timeline_id else None
            assert incident is not None and entry is not None
            people = await fallback_sql.people(conn, list(incident.roles.values()))
        to = _addresses([people[u].email for u in incident.roles.values() if u in people])
        to = _addresses([*to, *self.fallback])
        if not to:
            log.warning("email.no_recipients", item=item.dedupe_key)
            return None
        names = {p.user_id: p.name for p in people.values() if p.name}
        link = self.link(incident.id, self.clock()) if self.link is not None else None
        mail = self.renderer.entry_mail(incident, entry, names=names, link=link)
        await self._ready(item)
        return await self.mailer.send(
            to=to,
            subject=mail.subject,
            body=mail.body,
            key=f"icbot.inc{incident.id}.{entry.seq}.{entry.hash[:16]}",
            thread=f"icbot.inc{incident.id}.{incident.declared_at.timestamp():.0f}",
        )


def _addresses(found: Sequence[str | None]) -> list[str]:
    """Each address once (case-insensitively), in order; empty ones dropped."""
    seen: dict[str, str] = {}
    for address in found:
        if address and address.strip():
            seen.setdefault(address.strip().lower(), address.strip())
    return list(seen.values())
