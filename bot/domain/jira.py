"""Jira follow-ups: each action item becomes a Jira issue, and a tick on either side shows on both.

- `/ic action <text> [@owner]` records the item (`Scribe.add_action_item`) and, in the same
  transaction, queues a `jira_create` outbox item in the `jira` channel whose key is the item
  (its entry's seq), so an item is filed once however often the command or the queue runs.
- `JiraQueue` files it: the owner's Slack email (`users.info`) names the Jira assignee when
  Jira knows that address; the issue carries the labels `icbot`, `inc-<n>` and the item's own
  label, by which a retry after a crash (Jira answered, our commit did not happen) finds the
  issue already filed instead of filing a second. The key and link go to the thread
  (`Kind.JIRA_LINKED`) and the post-mortem's action items.
- Ticking in Slack (`/ic action done <n>`) records `Kind.ACTION_ITEM_DONE` and queues a
  `jira_done` item: the issue is moved to a status of the Done category. Resolving the issue in
  Jira comes back by webhook (`resolved_in_jira`) and ticks the item, once.

With Jira not configured the items are recorded and ticked all the same; only nothing is filed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum

from bot.core import wording
from bot.core.errors import ErrorCode, IntegrationError, NotFound, UsageError
from bot.core.logs import get_logger
from bot.core.models import Incident, TimelineEntry
from bot.core.numfmt import plural
from bot.delivery.outbox import LEASE, LeasedQueue
from bot.domain.incidents import Change, Incidents
from bot.domain.ports import Directory, FollowUp, JiraIssue, Tracker
from bot.domain.timeline import Kind
from bot.domain.uow import UnitOfWork
from bot.store import Conn
from bot.store import jira as jira_sql
from bot.store import timeline as timeline_sql
from bot.store.outbox import OutboxItem

log = get_logger(__name__)

SUMMARY_MAX = 255  # Jira's limit on an issue's summary
JIRA_ACTOR = "jira"


class JiraKind(StrEnum):
    """What a Jira outbox row asks for (the outbox's ``kind`` column, channel jira)."""

    CREATE = "jira_create"
    DONE = "jira_done"


def item_label(incident: Incident, item_seq: int) -> str:
    """The label that names one action item in Jira (labels hold no spaces)."""
    return f"icbot-{incident.channel_id}-inc{incident.id}-item{item_seq}"


def outbox_key(incident_id: int, kind: JiraKind, item_seq: int) -> str:
    return f"inc{incident_id}:jira:{kind}:{item_seq}"


async def queue_issue(conn: Conn, incident: Incident, entry: TimelineEntry, *, number: int) -> None:
    """File `entry` (an action item) in Jira: queued in the transaction that records it."""
    await jira_sql.enqueue(
        conn,
        incident_id=incident.id,
        kind=JiraKind.CREATE,
        key=outbox_key(incident.id, JiraKind.CREATE, entry.seq),
        payload={
            "item": entry.seq,
            "number": number,
            "text": entry.data.get("text") or "",
            "owner": entry.data.get("owner"),
        },
    )


async def action_items(conn: Conn, incident_id: int) -> list[TimelineEntry]:
    """The incident's action items, in order: item n is the n-th."""
    return await timeline_sql.of_kinds(conn, incident_id, [Kind.ACTION_ITEM])


class Followups:
    """Ticking action items, from Slack or from Jira; `jira` says whether Jira is configured."""

    def __init__(self, uow: UnitOfWork, incidents: Incidents, *, jira: bool) -> None:
        self.uow = uow
        self.incidents = incidents
        self.jira = jira

    async def number(self, change: Change) -> int:
        """The number of the action item `change` recorded (its place among the items)."""
        async with self.uow.connection() as conn:
            items = await action_items(conn, change.incident.id)
        return next((n for n, e in enumerate(items, 1) if e.seq == change.entry.seq), len(items))

    async def tick(self, *, ref: int | None, number: int, actor: str) -> Change:
        """`/ic action done [INC-n] <n>`: item n is done. Raises NotFound, Conflict (done)."""
        incident = await self.incidents.get(ref, allow_resolved=True)
        async with self.uow.transaction() as tx:
            items = await action_items(tx.conn, incident.id)
            if not 1 <= number <= len(items):
                raise NotFound(
                    f"{incident.ref} has {plural(len(items), 'action item')};"
                    f" there is no item {number}."
                    " `/ic postmortem` lists them."
                    if items
                    else f"{incident.ref} has no action items yet."
                )
            item = items[number - 1]
            if not await jira_sql.tick(
                tx.conn, incident_id=incident.id, item_seq=item.seq, by=actor, now=tx.now
            ):
                raise UsageError(f"Action item {number} of {incident.ref} is done already.")
            state = await jira_sql.get(tx.conn, incident.id, item.seq)
            key = state.jira_key if state else None
            entry = await tx.record(
                incident_id=incident.id,
                kind=Kind.ACTION_ITEM_DONE,
                actor=actor,
                data=wording.data(
                    item=item.seq,
                    number=number,
                    via="slack",
                    key=key,
                    text=item.data.get("text") or "",
                ),
            )
            if self.jira:
                await jira_sql.enqueue(
                    tx.conn,
                    incident_id=incident.id,
                    kind=JiraKind.DONE,
                    key=outbox_key(incident.id, JiraKind.DONE, item.seq),
                    payload={"item": item.seq, "number": number},
                )
        return Change(incident, entry)

    async def resolved_in_jira(self, key: str, *, by: str | None) -> str:
        """The issue `key` reached a Done status in Jira: tick its item, once.

        Returns what happened: "ticked", "already done", or "unknown issue" (not one of ours).
        """
        async with self.uow.transaction() as tx:
            state = await jira_sql.by_jira_key(tx.conn, key)
            if state is None:
                return "unknown issue"
            actor = f"{JIRA_ACTOR}:{by}" if by else JIRA_ACTOR
            if not await jira_sql.tick(
                tx.conn, incident_id=state.incident_id, item_seq=state.item_seq, by=actor,
                now=tx.now,
            ):  # fmt: skip
                return "already done"
            items = await action_items(tx.conn, state.incident_id)
            number = next((n for n, e in enumerate(items, 1) if e.seq == state.item_seq), 0)
            text = next((e.data.get("text") for e in items if e.seq == state.item_seq), "")
            await tx.record(
                incident_id=state.incident_id,
                kind=Kind.ACTION_ITEM_DONE,
                actor=actor,
                data=wording.data(item=state.item_seq, number=number, via="jira", key=key,
                                  by=by, text=text or ""),
            )  # fmt: skip
        return "ticked"


class JiraQueue(LeasedQueue):
    """Delivers the `jira` outbox channel: files the issues, moves them to Done."""

    channel = jira_sql.CHANNEL
    name = "jira"
    # Jira's 4xx answers (but 429) refuse the request itself: asking again gets the same.
    permanent_attempts = 1

    def __init__(
        self,
        uow: UnitOfWork,
        tracker: Tracker,
        directory: Directory,
        *,
        page_link: Callable[[int], str | None] = lambda _incident_id: None,
        poll_interval: float = 1.0,
        lease: timedelta = LEASE,
    ) -> None:
        super().__init__(uow.pool, clock=uow.clock, poll_interval=poll_interval, lease=lease)
        self.uow = uow
        self.tracker = tracker
        self.directory = directory
        self.page_link = page_link

    async def _send(self, item: OutboxItem) -> str | None:
        incident = await self._incident(item.incident_id)
        if item.kind == JiraKind.CREATE:
            return await self._create(item, incident)
        if item.kind == JiraKind.DONE:
            return await self._done(item, incident)
        raise IntegrationError(
            "jira", ErrorCode.REFUSED, f"unknown item {item.kind}", permanent=True
        )

    async def _create(self, item: OutboxItem, incident: Incident) -> str:
        p = item.payload
        seq = int(p["item"])
        label = item_label(incident, seq)
        issue = None
        if item.attempts > 1:
            async with self.uow.connection() as conn:
                state = await jira_sql.get(conn, incident.id, seq)
            if state is not None and state.jira_key and state.jira_url:
                return state.jira_key  # linked already; only the outbox did not hear of it
            # An earlier attempt may have filed it and died before it could say so.
            issue = await self.tracker.find_issue(label=label)
            if issue is not None:
                log.info("jira.already_filed", item=item.dedupe_key, key=issue.key)
        if issue is None:
            owner = p.get("owner")
            email = await self._email(str(owner)) if owner else None
            assignee = await self.tracker.find_user(email) if email else None
            text = " ".join(str(p.get("text") or "").split())
            summary = text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"
            follow_up = FollowUp(
                summary=summary,
                text=text,
                incident=f"{incident.ref}: {incident.title}",
                page_url=self.page_link(incident.id),
                owner=email or (f"Slack user {owner}" if owner else None),
                labels=["icbot", f"inc-{incident.id}", label],
            )
            await self._ready(item)
            issue = await self.tracker.create_issue(follow_up, assignee=assignee)
        await self.record_link(item, issue)
        return issue.key

    async def record_link(self, item: OutboxItem, issue: JiraIssue) -> None:
        """The commit after Jira's answer: the item's key, and a thread reply saying so, once."""
        p = item.payload
        async with self.uow.transaction() as tx:
            fresh = await jira_sql.link(
                tx.conn, incident_id=item.incident_id, item_seq=int(p["item"]), key=issue.key,
                url=issue.url,
            )  # fmt: skip
            if not fresh:
                return
            text = " ".join(str(p.get("text") or "").split())
            await tx.record(
                incident_id=item.incident_id,
                kind=Kind.JIRA_LINKED,
                actor=JIRA_ACTOR,
                data=wording.data(item=int(p["item"]), number=int(p["number"]), key=issue.key,
                                  url=issue.url, text=text),
            )  # fmt: skip

    async def _done(self, item: OutboxItem, incident: Incident) -> str | None:
        async with self.uow.connection() as conn:
            state = await jira_sql.get(conn, incident.id, int(item.payload["item"]))
        if state is None or state.jira_key is None:
            return None  # never filed (Jira refused it, or was off then): nothing to move
        await self._ready(item)
        moved = await self.tracker.resolve_issue(state.jira_key)
        log.info("jira.resolved", key=state.jira_key, moved=moved)
        return state.jira_key

    async def _email(self, user_id: str) -> str | None:
        try:
            return (await self.directory.member(user_id)).email
        except IntegrationError as exc:  # filed without an assignee rather than not at all
            log.warning("jira.owner_email_unknown", user=user_id, error=str(exc))
            return None

    async def _on_failure(self, item: OutboxItem, exc: IntegrationError) -> None:
        if not exc.permanent:
            return
        async with self.uow.transaction() as tx:
            await tx.record(
                incident_id=item.incident_id,
                kind=Kind.JIRA,
                actor="icbot",
                data=wording.data(
                    refused=str(exc),
                    item=item.payload.get("item"),
                    number=item.payload.get("number"),
                    filing=item.kind == JiraKind.CREATE,
                    why=exc.message,
                ),
            )


def _field(node: object, *path: str) -> object:
    for name in path:
        if not isinstance(node, dict):
            return None
        node = node.get(name)
    return node


def resolved_issue(body: dict[str, object]) -> tuple[str, str | None] | None:
    """(issue key, who) when a webhook says an issue now has a Done status, else None.

    Jira Cloud's `jira:issue_updated` event carries the issue as it is after the change
    (https://developer.atlassian.com/cloud/jira/platform/webhooks/#example-callback-for-an-issue-related-event).
    Raises ValueError for a body that is not such an event at all.
    """
    event = body.get("webhookEvent")
    if not isinstance(event, str):
        raise ValueError("no webhookEvent")
    if event != "jira:issue_updated":
        return None
    key = _field(body, "issue", "key")
    if not isinstance(key, str) or not key:
        raise ValueError("no issue key")
    if _field(body, "issue", "fields", "status", "statusCategory", "key") != "done":
        return None
    by = _field(body, "user", "displayName")
    return key, str(by)[:80] if isinstance(by, str) and by else None
