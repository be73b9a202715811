"""Status prompts, escalation timers and post-incident reminders. No Slack here.

Timers are columns of the incident row (`next_prompt_at`, `prompt_seq`, `unanswered`,
`escalate_at`) and rows of `reminders`. Every replica runs `Prompter.run_forever()`; a due
timer is claimed with `FOR UPDATE SKIP LOCKED` and, in the same transaction, written to the
timeline and re-planned, so exactly one replica acts on it. The timeline entry reaches the
thread through the outbox, which posts it once (see bot/delivery/outbox.py). The next time is
planned from *now*, so a bot that was down for an hour posts one catch-up prompt, not four.

The prompt ladder when nobody answers, for a cadence C (`status_every`):
  due → prompt; +C/2 → second prompt; +C/2 → escalate to the severity's contacts; then a
  prompt every C until an update arrives. Any status update starts again from "due in C".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from bot.core import metrics, wording
from bot.core.logs import get_logger
from bot.core.models import Incident
from bot.core.timefmt import human_duration
from bot.delivery.worker import Worker
from bot.domain import pager, timeline
from bot.domain.policy import SeverityLevel, SeverityPolicy
from bot.domain.timeline import Kind
from bot.domain.uow import UnitOfWork
from bot.store import Conn
from bot.store import incidents as incidents_sql
from bot.store import timers as timers_sql

log = get_logger(__name__)

BATCH = 200


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def first_prompt_at(level: SeverityLevel, *, since: datetime) -> datetime | None:
    cadence = _seconds(level.status_every)
    return None if cadence is None else since + cadence


def escalation_at(level: SeverityLevel, *, declared_at: datetime, now: datetime) -> datetime | None:
    delay = _seconds(level.escalate_after)
    if delay is None or not level.escalate_to:
        return None
    return max(declared_at + delay, now)


def contact_handles(policy: SeverityPolicy, names: list[str]) -> list[str]:
    """Each contact's Slack handle (user or group id), or its name if it has none."""
    handles = []
    for name in names:
        contact = policy.contacts.get(name)
        handles.append((contact.slack if contact else None) or name)
    return handles


async def plan_after_declare(
    conn: Conn, incident_id: int, level: SeverityLevel, *, now: datetime
) -> None:
    await timers_sql.set_timers(
        conn,
        incident_id,
        next_prompt_at=first_prompt_at(level, since=now),
        unanswered=0,
        escalate_at=escalation_at(level, declared_at=now, now=now),
    )


async def plan_after_update(
    conn: Conn, incident_id: int, level: SeverityLevel, *, now: datetime
) -> None:
    """A status update answers every outstanding prompt and restarts the clock."""
    await timers_sql.set_timers(
        conn, incident_id, next_prompt_at=first_prompt_at(level, since=now), unanswered=0
    )


async def plan_after_severity_change(
    conn: Conn, incident: Incident, level: SeverityLevel, *, now: datetime
) -> None:
    """Re-plan at once: the new cadence counts from the last update (or the declaration)."""
    since = incident.last_status_at or incident.declared_at
    due = first_prompt_at(level, since=since)
    fields: dict[str, object] = {
        "next_prompt_at": None if due is None else max(due, now),
        "unanswered": 0,
    }
    if incident.escalated_at is None:
        fields["escalate_at"] = escalation_at(level, declared_at=incident.declared_at, now=now)
    await timers_sql.set_timers(conn, incident.id, **fields)


async def plan_after_resolve(
    conn: Conn, incident_id: int, policy: SeverityPolicy, *, now: datetime
) -> None:
    await timers_sql.set_timers(conn, incident_id, next_prompt_at=None, escalate_at=None)
    for stage in policy.post_incident:
        assert stage.after is not None
        await timers_sql.schedule_reminder(
            conn,
            incident_id=incident_id,
            stage=stage.key,
            due_at=now + timedelta(seconds=stage.after),
        )


class Prompter(Worker):
    name = "prompts"

    def __init__(
        self,
        uow: UnitOfWork,
        policy: SeverityPolicy,
        *,
        poll_interval: float = 1.0,
        pagerduty: bool = False,
        sweepers: list[Callable[[], Awaitable[int]]] | None = None,
    ) -> None:
        super().__init__(poll_interval=poll_interval)
        self.sweepers = list(sweepers or [])  # other timed chores, e.g. expiring approvals
        self.uow = uow
        self.policy = policy
        self.pagerduty = pagerduty

    async def _page(self, conn: Conn, incident: Incident, names: list[str], *, key: str) -> str:
        """Page `names` through PagerDuty when it is configured; how they were reached: `off`,
        `no_ids` (the mention is the page) or `paged` (`bot.core.wording` says it)."""
        wanted = pager.targets(self.policy, names) if self.pagerduty else []
        if not wanted:
            return "no_ids" if self.pagerduty else "off"
        await pager.enqueue(
            conn, incident.id, pager.PagerKind.RESPONDERS, key=key,
            payload={"targets": wanted, "message": f"Needed on {incident.ref}: {incident.title}"},
        )  # fmt: skip
        return "paged"

    async def run_round(self) -> int:
        return await self.tick()

    async def tick(self) -> int:
        """Act on every timer due now; returns how many were handled."""
        now = self.uow.clock()
        handled = 0
        async with self.uow.transaction() as tx:
            for incident_id in await timers_sql.claim_due_escalations(
                tx.conn, now=now, limit=BATCH
            ):
                await self._escalate_by_policy(tx.conn, incident_id, now=now)
                handled += 1
        async with self.uow.transaction() as tx:
            for incident_id in await timers_sql.claim_due_prompts(tx.conn, now=now, limit=BATCH):
                await self._prompt(tx.conn, incident_id, now=now)
                handled += 1
        async with self.uow.transaction() as tx:
            for reminder_id, incident_id, stage in await timers_sql.claim_due_reminders(
                tx.conn, now=now, limit=BATCH
            ):
                await self._remind(tx.conn, reminder_id, incident_id, stage, now=now)
                handled += 1
        for sweep in self.sweepers:
            handled += await sweep()
        return handled

    async def _load(self, conn: Conn, incident_id: int) -> Incident:
        incident = await incidents_sql.get(conn, incident_id)
        assert incident is not None
        return incident

    async def _prompt(self, conn: Conn, incident_id: int, *, now: datetime) -> None:
        incident = await self._load(conn, incident_id)
        level = self.policy.level(incident.severity)
        cadence = _seconds(level.status_every)
        if cadence is None:
            await timers_sql.set_timers(conn, incident_id, next_prompt_at=None)
            return
        unanswered = incident.unanswered + 1
        seq = incident.prompt_seq + 1
        since = human_duration(
            (now - (incident.last_status_at or incident.declared_at)).total_seconds()
        )
        if unanswered == 3:
            how = await self._page(conn, incident, level.escalate_to, key=f"prompt{seq}")
            await timeline.record(
                conn,
                incident_id=incident_id,
                kind=Kind.PROMPT_ESCALATED,
                actor="icbot",
                occurred_at=now,
                data=wording.data(
                    prompt_seq=seq, contacts=level.escalate_to, who=incident.commander,
                    pings=contact_handles(self.policy, level.escalate_to), since=since,
                    paging=how,
                ),
            )  # fmt: skip
            next_at = now + cadence
        else:
            await timeline.record(
                conn,
                incident_id=incident_id,
                kind=Kind.PROMPT,
                actor="icbot",
                occurred_at=now,
                data=wording.data(
                    prompt_seq=seq, reminder=unanswered == 2, template=level.prompt,
                    who=incident.commander, title=incident.title,
                    severity=incident.severity, since=since,
                ),
            )  # fmt: skip
            next_at = now + (cadence / 2 if unanswered <= 2 else cadence)
        await timers_sql.set_timers(
            conn, incident_id, next_prompt_at=next_at, unanswered=unanswered, prompt_seq=seq
        )
        log.info("prompts.posted", incident=incident.ref, seq=seq, unanswered=unanswered)
        kind = "escalation" if unanswered == 3 else "reminder" if unanswered == 2 else "prompt"
        metrics.prompt_posted(incident.severity, kind)

    async def _escalate_by_policy(self, conn: Conn, incident_id: int, *, now: datetime) -> None:
        incident = await self._load(conn, incident_id)
        level = self.policy.level(incident.severity)
        how = await self._page(conn, incident, level.escalate_to, key="policy-escalation")
        await timeline.record(
            conn,
            incident_id=incident_id,
            kind=Kind.ESCALATED,
            actor="icbot",
            occurred_at=now,
            data=wording.data(
                contacts=level.escalate_to, policy=incident.severity,
                pings=contact_handles(self.policy, level.escalate_to),
                after_s=level.escalate_after, title=incident.title, paging=how,
            ),
        )  # fmt: skip
        await timers_sql.set_timers(conn, incident_id, escalate_at=None, escalated_at=now)

    async def _remind(
        self, conn: Conn, reminder_id: int, incident_id: int, stage_key: str, *, now: datetime
    ) -> None:
        stage = self.policy.stage(stage_key)
        if stage is None:  # the stage was removed from the policy since
            await timers_sql.mark_reminder_posted(conn, reminder_id, now=now, entry_id=None)
            return
        incident = await self._load(conn, incident_id)
        entry = await timeline.record(
            conn,
            incident_id=incident_id,
            kind=Kind.CHECKLIST,
            actor="icbot",
            occurred_at=now,
            data=wording.data(
                reminder=reminder_id,
                stage=stage.key,
                items=stage.items,
                title=stage.title,
                who=incident.commander,
            ),
        )
        await timers_sql.mark_reminder_posted(conn, reminder_id, now=now, entry_id=entry.id)

    async def next_due(self) -> datetime | None:
        async with self.uow.connection() as conn:
            return await timers_sql.next_due(conn)
