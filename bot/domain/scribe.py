"""The scribe: what people say in an incident's thread goes into its timeline. No Slack here.

- A person's message in an incident thread is captured (`message`), with its permalink.
- An edit adds a `message_edited` entry naming the original; the original is left as it was.
- A deletion redacts every entry holding the message's words (`timeline.redact`): the text is
  dropped, the chain still verifies, and a `message_deleted` entry records what was blanked.
- A :pushpin: on a message of the war room or of a thread makes it a key event of its incident
  (`pinned`); when the last :pushpin: is removed it is one no more (`unpinned`).
- The message shortcut "Add to incident timeline" does the same for a message in any channel
  the app is in, for the incident the person chooses (`key_event_choices`, `key_event_target`).
  Both end in `mark_key_event`, so a message is one key event however it was pinned.
- `/ic action` records an action item for the post-mortem (`action_item`), and files it in Jira
  when Jira is configured (queued in the same transaction: `bot/domain/jira.py`).

Captured messages and edits are not posted back into the thread (they are already there);
pins, unpins and action items are. The bot's own messages are never captured.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.core import guard, wording
from bot.core.errors import Conflict, IntegrationError, NotFound, UsageError
from bot.core.logs import get_logger
from bot.core.models import Incident, TimelineEntry, incident_ref
from bot.domain import jira, timeline
from bot.domain.incidents import MAX_TEXT, Change, Incidents
from bot.domain.ports import ChatMessage, MessageSource
from bot.domain.uow import UnitOfWork
from bot.store import Conn
from bot.store import captures as captures_sql
from bot.store import outbox as outbox_sql
from bot.store import timeline as timeline_sql

log = get_logger(__name__)

PIN_REACTION = "pushpin"
MAX_CAPTURED = 4000  # characters of a message kept in the timeline (Slack allows 40,000)
BOT = "icbot"
CHOICE_DAYS = 7  # the shortcut offers open incidents and those resolved this many days back

ScribeKind = timeline.ScribeKind  # defined with the other kinds; imported from here too

# Entries that may carry a message's words (data["text"]); a deletion redacts them.
CONTENT_KINDS = (ScribeKind.MESSAGE, ScribeKind.MESSAGE_EDITED, ScribeKind.PINNED)


@dataclass(frozen=True)
class KeyEvent:
    """A message about to become a key event of an incident (see `Scribe.mark_key_event`)."""

    channel: str
    ts: str
    incident_id: int
    author: str  # a Slack user id, or BOT
    message: ChatMessage | None  # as Slack returned it, when it had to be read
    link: str


def fallback_permalink(channel: str, ts: str, thread_ts: str | None = None) -> str:
    """A link built from channel and ts, for when `chat.getPermalink` fails."""
    link = f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"
    if thread_ts and thread_ts != ts:
        link += f"?thread_ts={thread_ts}&cid={channel}"
    return link


def _clip(text: str) -> tuple[str, bool]:
    text = text.strip()
    if len(text) <= MAX_CAPTURED:
        return text, False
    return text[: MAX_CAPTURED - 1] + "…", True


def _words(message: ChatMessage) -> dict[str, object]:
    """The message's words as entry data (what a deletion drops)."""
    text, clipped = _clip(message.text)
    data: dict[str, object] = {"ts": message.ts, "text": text}
    if message.files:
        data["files"] = message.files
    if clipped:
        data["clipped"] = True
    return data


class Scribe:
    def __init__(
        self, uow: UnitOfWork, incidents: Incidents, messages: MessageSource, *, jira: bool = False
    ) -> None:
        self.uow = uow
        self.incidents = incidents
        self.messages = messages
        self.jira = jira  # Jira configured: each action item is filed there (bot/domain/jira.py)

    # -- listening ---------------------------------------------------------------------------

    async def message_posted(self, message: ChatMessage) -> TimelineEntry | None:
        """Capture a person's reply in an incident thread; None if it is not one (or a repeat)."""
        if message.is_bot or not message.user or not message.is_reply:
            return None
        if not message.text.strip() and not message.files:
            return None
        assert message.thread_ts is not None
        async with self.uow.connection() as conn:
            incident_id = await captures_sql.incident_for_thread(
                conn, message.channel, message.thread_ts
            )
        if incident_id is None:
            return None
        link = await self._permalink(message.channel, message.ts, message.thread_ts)
        async with self.uow.transaction() as tx:
            fresh = await captures_sql.insert(
                tx.conn, channel_id=message.channel, message_ts=message.ts,
                incident_id=incident_id, author=message.user, captured=True,
            )  # fmt: skip
            if not fresh:
                return None  # a repeat delivery, or it was deleted before we saw it
            entry = await tx.record(
                incident_id=incident_id, kind=ScribeKind.MESSAGE, actor=message.user,
                data=wording.data(**_words(message), permalink=link),
            )  # fmt: skip
        log.info("scribe.captured", incident=incident_id, ts=message.ts, seq=entry.seq)
        return entry

    async def message_edited(self, message: ChatMessage) -> TimelineEntry | None:
        """Record the new text of a known message; an unknown thread reply is captured as is."""
        if message.is_bot or not message.user:
            return None
        async with self.uow.connection() as conn:
            known = await captures_sql.get(conn, message.channel, message.ts)
        if known is None:
            return await self.message_posted(message)  # its `message` event is late or lost
        async with self.uow.transaction() as tx:
            capture = await captures_sql.get(tx.conn, message.channel, message.ts, lock=True)
            if capture is None or capture.deleted_at is not None:
                return None
            versions = await captures_sql.content_entries(
                tx.conn, capture.incident_id, message.ts, kinds=CONTENT_KINDS
            )
            words = _words(message)
            stored = guard.redact(str(words["text"])).text  # as `timeline.record` keeps it
            if not versions or versions[-1].data.get("text") == stored:
                return None  # nothing of its words known, or an unfurl: the words did not change
            original = versions[0].seq
            entry = await tx.record(
                incident_id=capture.incident_id, kind=ScribeKind.MESSAGE_EDITED,
                actor=message.user,
                data=wording.data(**words, edits=original),
            )  # fmt: skip
        return entry

    async def message_deleted(
        self, *, channel: str, ts: str, thread_ts: str | None, author: str | None
    ) -> TimelineEntry | None:
        """Drop a deleted message's words from the timeline, keeping the chain verifiable."""
        now = self.uow.clock()
        async with self.uow.transaction() as tx:
            capture = await captures_sql.get(tx.conn, channel, ts, lock=True)
            if capture is None and not await self._tombstone(
                tx.conn, channel, ts, thread_ts, author
            ):
                # Not in an incident thread, or captured by another replica meanwhile: look again.
                capture = await captures_sql.get(tx.conn, channel, ts, lock=True)
            if capture is None or capture.deleted_at is not None:
                return None
            await captures_sql.mark_deleted(tx.conn, channel, ts, at=now)
            targets = await captures_sql.content_entries(
                tx.conn, capture.incident_id, ts, kinds=CONTENT_KINDS
            )
            if not targets:
                return None
            # Post-mortem drafts built since its first version may quote it: they go too.
            drafts = [
                d for d in await timeline_sql.of_kinds(
                    tx.conn, capture.incident_id, [timeline.Kind.POSTMORTEM_POSTED]
                )
                if d.data.get("file")
                and int(d.data.get("upto") or 0) >= min(t.seq for t in targets)
            ]  # fmt: skip
            entry = await timeline.redact(
                tx.conn, incident_id=capture.incident_id, targets=targets,
                kind=ScribeKind.MESSAGE_DELETED, actor=BOT, occurred_at=now,
                data=wording.data(ts=ts, author=capture.author,
                                  drafts_removed=[str(d.data["file"]) for d in drafts]),
                announce=True,
            )  # fmt: skip
            for draft in drafts:
                await outbox_sql.enqueue_file_delete(
                    tx.conn, incident_id=capture.incident_id, file_id=str(draft.data["file"])
                )
        log.info("scribe.redacted", incident=capture.incident_id, ts=ts, entries=len(targets))
        return entry

    async def _tombstone(
        self, conn: Conn, channel: str, ts: str, thread_ts: str | None, author: str | None
    ) -> bool:
        """Deleted before its `message` event was handled: remember it so it is never captured.

        True if a tombstone was written; False if the message was not in an incident thread,
        or if it was captured meanwhile (the insert lost to the capture's).
        """
        if not thread_ts or thread_ts == ts or not author:
            return False
        incident_id = await captures_sql.incident_for_thread(conn, channel, thread_ts)
        if incident_id is None:
            return False
        return await captures_sql.insert(
            conn, channel_id=channel, message_ts=ts, incident_id=incident_id,
            author=author, captured=False, deleted_at=self.uow.clock(),
        )  # fmt: skip

    # -- pins --------------------------------------------------------------------------------

    async def pin(self, *, channel: str, ts: str, by: str) -> TimelineEntry | None:
        """A :pushpin: from `by`: the message becomes a key event of its incident.

        None if the message belongs to no incident, is deleted, or was pinned already.
        Raises NotFound / Conflict for a war-room message when not exactly one incident is open.
        """
        async with self.uow.connection() as conn:
            known = await captures_sql.get(conn, channel, ts)
        found: ChatMessage | None = None
        if known is not None:
            incident_id, author = known.incident_id, known.author
        else:
            placed = await self._place(channel, ts)
            if placed is None:
                return None
            incident_id, author, found = placed
        link = await self._permalink(channel, ts, found.thread_ts if found else None)
        target = KeyEvent(
            channel=channel, ts=ts, incident_id=incident_id, author=author, message=found,
            link=link,
        )  # fmt: skip
        return await self.mark_key_event(target, by=by)

    async def unpin(self, *, channel: str, ts: str, by: str) -> TimelineEntry | None:
        """`by` took their :pushpin: away; the last one to go makes it an ordinary message."""
        async with self.uow.transaction() as tx:
            capture = await captures_sql.get(tx.conn, channel, ts, lock=True)
            if capture is None or by not in capture.pinned_by:
                return None
            remaining = [user for user in capture.pinned_by if user != by]
            await captures_sql.set_pinned_by(tx.conn, channel, ts, users=remaining)
            if remaining or capture.deleted_at is not None:
                return None
            entry = await tx.record(
                incident_id=capture.incident_id, kind=ScribeKind.UNPINNED, actor=by,
                data=wording.data(ts=ts, by=by, author=capture.author),
            )  # fmt: skip
        return entry

    async def _place(self, channel: str, ts: str) -> tuple[int, str, ChatMessage | None] | None:
        """(incident, author, the message) for a message not captured: None if not ours."""
        async with self.uow.connection() as conn:
            bot_post = await captures_sql.incident_for_bot_post(conn, channel, ts)
        found = await self._fetch(channel, ts)
        if bot_post is not None:
            return bot_post, BOT, found
        if found is None or found.user is None:
            return None
        author = BOT if found.is_bot else found.user
        async with self.uow.connection() as conn:
            if found.is_reply:
                assert found.thread_ts is not None
                incident_id = await captures_sql.incident_for_thread(conn, channel, found.thread_ts)
                return None if incident_id is None else (incident_id, author, found)
            if channel != self.incidents.channel_id:
                return None
            open_ids = await captures_sql.open_incidents(conn, channel)
        if not open_ids:
            raise NotFound("No incident is open, so that :pushpin: was not recorded.")
        if len(open_ids) > 1:
            raise Conflict(
                "Several incidents are open, so I can't tell which one that message belongs to."
                " Pin it in the incident's thread, or use `/ic note INC-n …`."
            )
        return open_ids[0], author, found

    async def key_event_target(self, *, channel: str, ts: str, incident_id: int) -> KeyEvent:
        """What marking the message as a key event of `incident_id` would write; reads only.

        The message shortcut's check before it answers the form: raises NotFound / Conflict
        (shown in the form) when the incident is not one the form offers, when the message is
        gone, or when it already belongs to another incident; IntegrationError if Slack fails.
        """
        incident = await self.incidents.get(incident_id)
        if not self._offered(incident):
            raise Conflict(
                f"{incident.ref} was resolved more than {CHOICE_DAYS} days ago;"
                " choose a newer incident."
            )
        async with self.uow.connection() as conn:
            known = await captures_sql.get(conn, channel, ts)
            bot_post = await captures_sql.incident_for_bot_post(conn, channel, ts)
        owner = known.incident_id if known is not None else bot_post
        if owner is not None and owner != incident_id:
            raise Conflict(
                f"That message is part of {incident_ref(owner)}'s timeline;"
                f" it can only be a key event of {incident_ref(owner)}."
            )
        if known is not None:
            if known.deleted_at is not None:
                raise NotFound("That message was deleted in Slack; there is nothing to add.")
            link = await self._permalink(channel, ts, None)
            return KeyEvent(
                channel=channel, ts=ts, incident_id=incident_id, author=known.author,
                message=None, link=link,
            )  # fmt: skip
        found = await self.messages.message(channel, ts)
        if found is None and bot_post is None:
            raise NotFound("That message no longer exists in Slack; there is nothing to add.")
        if bot_post is not None:
            author = BOT
        elif found is not None and found.user:
            author = found.user
        else:
            raise NotFound(
                "That message has no author Slack can name (a webhook's post?);"
                " quote it with `/ic note` instead."
            )
        link = await self._permalink(channel, ts, found.thread_ts if found else None)
        return KeyEvent(
            channel=channel, ts=ts, incident_id=incident_id, author=author, message=found,
            link=link,
        )  # fmt: skip

    async def mark_key_event(self, target: KeyEvent, *, by: str) -> TimelineEntry | None:
        """Make the message a key event of its incident, as `by`; both pins end here.

        None if it already was one (or `by` had marked it already) or it was deleted: a
        message is one key event however often and however it is pinned. Raises Conflict if the
        message was meanwhile placed in another incident's timeline.
        """
        channel, ts = target.channel, target.ts
        async with self.uow.transaction() as tx:
            await captures_sql.insert(
                tx.conn, channel_id=channel, message_ts=ts, incident_id=target.incident_id,
                author=target.author, captured=False,
            )  # fmt: skip
            capture = await captures_sql.get(tx.conn, channel, ts, lock=True)
            assert capture is not None
            if capture.incident_id != target.incident_id:
                raise Conflict(
                    f"That message is part of {incident_ref(capture.incident_id)}'s timeline."
                )
            if capture.deleted_at is not None or by in capture.pinned_by:
                return None
            await captures_sql.set_pinned_by(tx.conn, channel, ts, users=[*capture.pinned_by, by])
            if capture.pinned_by:
                return None  # a key event already; the first pin is the one recorded
            data = wording.data(ts=ts, by=by, author=capture.author, permalink=target.link)
            words = await captures_sql.content_entries(
                tx.conn, capture.incident_id, ts, kinds=CONTENT_KINDS
            )
            if not words and target.message is not None:
                data.update(_words(target.message))  # its words are not in the timeline yet
            entry = await tx.record(
                incident_id=capture.incident_id, kind=ScribeKind.PINNED, actor=by,
                data=data,
            )  # fmt: skip
        return entry

    async def key_event_choices(
        self, *, channel: str, message: ChatMessage
    ) -> tuple[list[Incident], Incident | None]:
        """The incidents the message shortcut offers (open ones, then those resolved in the
        last CHOICE_DAYS days) and the one to preselect: the incident whose thread (or timeline)
        the message is in, else the only open one."""
        choices = await self.incidents.list_recent(days=CHOICE_DAYS)
        async with self.uow.connection() as conn:
            known = await captures_sql.get(conn, channel, message.ts)
            owner = known.incident_id if known is not None else None
            if owner is None:
                thread = message.thread_ts or message.ts  # a reply, or the card itself
                owner = await captures_sql.incident_for_thread(conn, channel, thread)
            if owner is None:
                owner = await captures_sql.incident_for_bot_post(conn, channel, message.ts)
        preselected = next((i for i in choices if i.id == owner), None)
        if preselected is None and owner is not None:
            incident = await self.incidents.get(owner)
            if self._offered(incident):  # offered, but past the listing's first page
                preselected = incident
                choices = [incident, *choices]
        if preselected is None and owner is None:
            open_now = [i for i in choices if not i.is_resolved]
            preselected = open_now[0] if len(open_now) == 1 else None
        return choices, preselected

    def _offered(self, incident: Incident) -> bool:
        resolved = incident.resolved_at
        return resolved is None or resolved >= self.uow.clock() - timedelta(days=CHOICE_DAYS)

    # -- action items ------------------------------------------------------------------------

    async def add_action_item(
        self, *, ref: int | None, text: str, owner: str | None, actor: str
    ) -> Change:
        """`/ic action <text> [@owner]`: a follow-up for the post-mortem (resolved is fine)."""
        text = " ".join(text.split())
        if not text:
            raise UsageError("Say what needs doing: `/ic action Add an alert on lag @dana`")
        if len(text) > MAX_TEXT:
            raise UsageError(
                f"The action item is {len(text)} characters; keep it under {MAX_TEXT}."
            )
        incident = await self.incidents.get(ref, allow_resolved=True)
        async with self.uow.transaction() as tx:
            entry = await tx.record(
                incident_id=incident.id, kind=ScribeKind.ACTION_ITEM, actor=actor,
                data=wording.data(text=text, owner=owner),
            )  # fmt: skip
            if self.jira:
                number = len(await jira.action_items(tx.conn, incident.id))
                await jira.queue_issue(tx.conn, incident, entry, number=number)
        return Change(incident, entry)

    # -- Slack, with fallbacks ---------------------------------------------------------------

    async def _permalink(self, channel: str, ts: str, thread_ts: str | None) -> str:
        try:
            return await self.messages.permalink(channel, ts)
        except IntegrationError as exc:
            log.warning("scribe.permalink_failed", channel=channel, ts=ts, error=str(exc))
            return fallback_permalink(channel, ts, thread_ts)

    async def _fetch(self, channel: str, ts: str) -> ChatMessage | None:
        try:
            return await self.messages.message(channel, ts)
        except IntegrationError as exc:
            log.warning("scribe.fetch_failed", channel=channel, ts=ts, error=str(exc))
            return None
