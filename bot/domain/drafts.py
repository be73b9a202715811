"""The post-mortem draft, posted into its incident's thread as a Markdown file. No Slack here.

`Drafts.post` renders the draft from the timeline (`bot.domain.postmortem.render`), shares it
through the `Chat` capability as `postmortem-INC-n.md` in the incident's thread, and records that
(`Kind.POSTMORTEM_POSTED`, a line of the thread's digest) in the same transaction: an upload
that fails records nothing. Drafts leave those entries out, so posting one changes no draft:
the file holds the bytes `icbot postmortem INC-n` prints, and the entry's `upto` (the last
entry the draft was built from) rebuilds it from the timeline alone later.

Asking again posts a fresh draft (drafts evolve with the timeline), but one request is posted
once: the Slack request is claimed (`bot.domain.once`) at the top of the transaction, before the
upload, so a retry of that request, even one arriving while the first still uploads, waits for
the first and then does nothing; an upload that fails rolls the claim back with the rest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.core import wording
from bot.core.errors import Conflict, NotFound
from bot.core.mentions import mentioned, with_names
from bot.core.models import Incident, TimelineEntry, incident_ref
from bot.core.wording import Code, Emoji, Flavour, Link, Person, Piece, Strong
from bot.domain import once
from bot.domain.incidents import Incidents
from bot.domain.ports import Chat, Directory
from bot.domain.postmortem import Figures, figures, render
from bot.domain.timeline import Kind
from bot.domain.uow import UnitOfWork
from bot.store import digests as digests_sql
from bot.store import incidents as incidents_sql
from bot.store import timeline as timeline_sql


@dataclass(frozen=True)
class Posted:
    """A draft just posted in the incident's thread."""

    incident: Incident
    entry: TimelineEntry  # the POSTMORTEM_POSTED entry
    draft: str  # the file's content
    figures: Figures

    @property
    def filename(self) -> str:
        return str(self.entry.data.get("name") or filename(self.incident))

    @property
    def permalink(self) -> str:
        return str(self.entry.data.get("permalink") or "")


def filename(incident: Incident) -> str:
    return f"postmortem-{incident.ref}.md"


async def named(draft: str, directory: Directory | None) -> str:
    """The draft with `<@U…>` as @names: a file in Slack shows mentions as typed, raw ids."""
    if directory is None:
        return draft
    return with_names(draft, await directory.names(mentioned(draft)))


def title(incident: Incident) -> str:
    return f"{incident.ref} post-mortem draft"


def comment(
    incident: Incident, *, actor: str, shown: Figures, picture: str | None = None
) -> list[Piece]:
    """The message that carries the file in the thread, as wording pieces: who asked, the
    figures, and the link to the incident's picture (its timeline as SVG) when there is one."""
    link: list[Piece] = [" Timeline picture: ", Link(picture)] if picture else []
    return [
        Emoji("page_facing_up"), " Post-mortem draft of ", Strong(incident.ref),
        ", asked for by ", Person(actor), f". {shown.line()}. Built from {shown.entries}"
        " timeline entries; ", Code(f"/ic postmortem {incident.ref}"),
        " posts a fresh one as the timeline grows.",
        *link,
    ]  # fmt: skip


class Drafts:
    def __init__(
        self,
        uow: UnitOfWork,
        incidents: Incidents,
        chat: Chat,
        *,
        picture_link: Callable[[Incident], str] | None = None,
        directory: Directory | None = None,
    ) -> None:
        self.uow = uow
        self.incidents = incidents
        self.chat = chat
        self.picture_link = picture_link  # the incident page's SVG, linked from the post
        self.directory = directory  # people's names for the file's mentions

    async def post(self, incident_id: int, *, actor: str) -> Posted:
        """Post the draft of the incident in its thread. Raises IntegrationError when Slack
        fails (nothing is recorded then), Conflict while the incident has no thread yet,
        Repeated for a repeat of a Slack request that posted it already (bot.domain.once)."""
        async with self.uow.transaction() as tx:
            await once.claim(tx.conn)  # before the upload: a repeat waits here, then stops
            incident = await incidents_sql.get(tx.conn, incident_id)
            if incident is None:
                raise NotFound(f"{incident_ref(incident_id)} does not exist.")
            entries = await timeline_sql.entries(tx.conn, incident.id)
            if incident.thread_ts is None:
                raise Conflict(
                    f"{incident.ref}'s card is not in <#{incident.channel_id}> yet, so its"
                    " thread has no place for the draft; try again in a moment."
                )
            draft = await named(render(incident, entries), self.directory)
            shown = figures(incident, entries)
            shared = await self.chat.share_file(
                channel=incident.channel_id,
                thread_ts=incident.thread_ts,
                filename=filename(incident),
                title=title(incident),
                content=draft,
                comment=wording.join(
                    comment(
                        incident,
                        actor=actor,
                        shown=shown,
                        picture=self.picture_link(incident) if self.picture_link else None,
                    ),
                    Flavour.SLACK,
                ),
            )
            # The file is below the open digest now: later chatter starts a new one under it.
            await digests_sql.close(tx.conn, incident.id)
            lines = draft.count("\n")
            data: dict[str, Any] = {
                "v": wording.VERSION,
                "file": shared.id,
                "name": shared.name,
                "title": shared.title,
                "permalink": shared.permalink,
                "sha256": hashlib.sha256(draft.encode()).hexdigest(),
                "lines": lines,
                "entries": shown.entries,
                "upto": max((e.seq for e in entries), default=0),
            }
            entry = await tx.record(
                incident_id=incident.id,
                kind=Kind.POSTMORTEM_POSTED,
                actor=actor,
                data=data,
            )
        return Posted(incident, entry, draft, shown)
