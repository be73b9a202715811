"""PagerDuty, as the domain sees it: the queue of PagerDuty writes (the `Pager` port: ports.py).

Every write (open, mirror a severity, note, resolve, add responders) is an outbox item in the
`pagerduty` channel, queued in the transaction of the change that causes it, and delivered in
order per incident by `PagerQueue` in every replica. When PagerDuty is down or slow, Slack
commands still answer at once; the writes wait, and the thread says PagerDuty is lagging
(once), then that it caught up.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from enum import StrEnum
from typing import Any

from bot.core import wording
from bot.core.errors import ErrorCode, IntegrationError
from bot.core.logs import get_logger
from bot.core.models import PagerIncident
from bot.delivery.outbox import LEASE, LeasedQueue
from bot.domain.policy import SeverityPolicy
from bot.domain.ports import Pager
from bot.domain.timeline import Kind
from bot.domain.uow import UnitOfWork
from bot.store import Conn
from bot.store import incidents as incidents_sql
from bot.store import outbox as outbox_sql
from bot.store.outbox import OutboxItem

log = get_logger(__name__)

MAX_NOTE = 25_000  # characters of a note PagerDuty takes (longer is refused)


class PagerKind(StrEnum):
    """What a PagerDuty outbox row asks for (the outbox's ``kind`` column, channel pagerduty)."""

    CREATE = "pd_create"
    UPDATE = "pd_update"
    NOTE = "pd_note"
    RESPONDERS = "pd_responders"


def targets(policy: SeverityPolicy, names: Iterable[str]) -> list[dict[str, str]]:
    """PagerDuty responder targets for contact names (those with a PagerDuty id)."""
    found = []
    for name in names:
        contact = policy.contacts.get(name)
        if contact is None:
            continue
        if contact.pagerduty_user:
            found.append({"type": "user_reference", "id": contact.pagerduty_user})
        if contact.pagerduty_escalation_policy:
            found.append(
                {"type": "escalation_policy_reference", "id": contact.pagerduty_escalation_policy}
            )
    return found


def incident_key(channel_id: str, number: int) -> str:
    """PagerDuty's idempotency key for our incident: a retried create never opens two."""
    return f"icbot:{channel_id}:INC-{number}"


async def enqueue(
    conn: Conn, incident_id: int, kind: PagerKind, *, key: str, payload: dict[str, Any]
) -> None:
    await outbox_sql.enqueue_pager(
        conn, incident_id=incident_id, kind=kind, key=f"inc{incident_id}:pd:{key}", payload=payload
    )


class PagerQueue(LeasedQueue):
    channel = "pagerduty"
    name = "pager"
    # PagerDuty's 4xx answers (but 429) refuse the request itself: asking again gets the same.
    permanent_attempts = 1

    def __init__(
        self,
        uow: UnitOfWork,
        pager: Pager,
        *,
        poll_interval: float = 1.0,
        lease: timedelta = LEASE,
    ) -> None:
        super().__init__(uow.pool, clock=uow.clock, poll_interval=poll_interval, lease=lease)
        self.uow = uow
        self.pager = pager

    async def _send(self, item: OutboxItem) -> str | None:
        p = item.payload
        if item.kind == PagerKind.CREATE:
            await self._ready(item)
            created = await self.pager.create_incident(
                title=p["title"], urgency=p["urgency"], incident_key=p["incident_key"],
                details=p.get("details", ""),
            )  # fmt: skip
            await self._linked(item.incident_id, created)
            return created.id
        incident = await self._incident(item.incident_id)
        if incident.pagerduty_id is None:
            raise IntegrationError(
                "pagerduty",
                ErrorCode.NOT_FOUND,
                "the PagerDuty incident was never opened",
                permanent=True,
            )
        await self._ready(item)
        if item.kind == PagerKind.UPDATE:
            await self.pager.update_incident(
                incident.pagerduty_id, status=p.get("status"), urgency=p.get("urgency"),
                priority=p.get("priority"), resolution=p.get("resolution"),
            )  # fmt: skip
        elif item.kind == PagerKind.NOTE:
            # A retry may follow a note PagerDuty added before this replica could record it:
            # the same words already there are that note (notes carry no key of ours).
            if item.attempts > 1 and p["text"][:MAX_NOTE] in await self.pager.notes(
                incident.pagerduty_id
            ):
                log.info("pager.note_already_added", item=item.dedupe_key)
            else:
                await self.pager.add_note(incident.pagerduty_id, p["text"])
        elif item.kind == PagerKind.RESPONDERS:
            targets = [(t["type"], t["id"]) for t in p["targets"]]
            await self.pager.add_responders(
                incident.pagerduty_id, targets=targets, message=p.get("message", "")
            )
        else:
            raise IntegrationError(
                "pagerduty", ErrorCode.REFUSED, f"unknown item {item.kind}", permanent=True
            )
        return incident.pagerduty_id

    async def _linked(self, incident_id: int, created: PagerIncident) -> None:
        async with self.uow.transaction() as tx:
            await incidents_sql.link_pagerduty(
                tx.conn, incident_id, pagerduty_id=created.id, url=created.html_url, now=tx.now
            )
            await tx.record(
                incident_id=incident_id,
                kind=Kind.PAGERDUTY,
                actor="pagerduty",
                data=wording.data(
                    what="opened",
                    pagerduty_id=created.id,
                    number=created.number,
                    url=created.html_url,
                ),
            )

    async def _on_failure(self, item: OutboxItem, exc: IntegrationError) -> None:
        if exc.permanent:
            if item.kind == PagerKind.CREATE:
                await self._refused(item.incident_id, exc)
            return
        await self._set_lagging(item.incident_id, lagging=True, reason=str(exc))

    async def _refused(self, incident_id: int, exc: IntegrationError) -> None:
        """PagerDuty refused to open the incident: say so in the thread, once."""
        why = exc.message
        async with self.uow.transaction() as tx:
            await tx.record(
                incident_id=incident_id,
                kind=Kind.PAGERDUTY,
                actor="icbot",
                data=wording.data(what="refused", refused=str(exc), why=why),
            )

    async def _on_success(self, item: OutboxItem) -> None:
        await self._set_lagging(item.incident_id, lagging=False, reason="")

    async def _set_lagging(self, incident_id: int, *, lagging: bool, reason: str) -> None:
        """Say so in the thread once when PagerDuty starts failing, and once when it recovers."""
        async with self.uow.transaction() as tx:
            if not await incidents_sql.set_pagerduty_lagging(tx.conn, incident_id, lagging=lagging):
                return
            pending = await outbox_sql.pending_for(tx.conn, incident_id, channel="pagerduty")
            said = (
                {
                    "what": "lagging",
                    "reason": reason.removeprefix("pagerduty: "),
                    "pending": pending,
                }
                if lagging
                else {"what": "caught_up"}
            )
            await tx.record(
                incident_id=incident_id,
                kind=Kind.PAGERDUTY,
                actor="icbot",
                data=wording.data(lagging=lagging, **said),
            )
