"""The incident lifecycle: declare, assign, severity, status, note, resolve. No Slack here.

Every change runs in one transaction with the timeline entry that describes it
(`timeline.record`) and with the card refresh it causes (an outbox item).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from bot.core.errors import Ambiguous, Choice, Conflict, NotFound, UsageError
from bot.core.models import (
    IC,
    MITIGATED_STAGES,
    Clock,
    Incident,
    PagerIncident,
    Status,
    TimelineEntry,
    incident_ref,
    utcnow,
    who,
)
from bot.core.text import control_character
from bot.core.timefmt import human_duration
from bot.domain import handover, history, once, pager, prompts, timeline
from bot.domain.history import HistoryReport
from bot.domain.policy import SeverityPolicy
from bot.domain.timeline import Kind, Verification
from bot.store import Conn
from bot.store import actions as actions_sql
from bot.store import incidents as incidents_sql
from bot.store import outbox as outbox_sql
from bot.store import timeline as timeline_sql
from bot.store import timers as timers_sql

MAX_TITLE = 150
MAX_TEXT = 3000


@dataclass(frozen=True)
class Change:
    """What a command did: the incident after it, and the entry it wrote."""

    incident: Incident
    entry: TimelineEntry


def stage_of(text: str) -> Status | None:
    """`Mitigating: rolled back` → MITIGATING. The first word may name a lifecycle stage."""
    first = text.strip().split(maxsplit=1)[0] if text.strip() else ""
    word = first.strip(".:;,!-—").lower()
    try:
        stage = Status(word)
    except ValueError:
        return None
    return None if stage is Status.RESOLVED else stage


class Incidents:
    def __init__(
        self,
        pool: asyncpg.Pool,
        policy: SeverityPolicy,
        *,
        channel_id: str,
        clock: Clock = utcnow,
        on_change: Callable[[], None] = lambda: None,
        pagerduty: bool = False,
    ) -> None:
        self.pool = pool
        self.policy = policy
        self.channel_id = channel_id
        self.clock = clock
        self.on_change = on_change
        self.pagerduty = pagerduty  # mirror changes to PagerDuty (through its outbox)

    async def _mirror(
        self, conn: Conn, incident_id: int, kind: pager.PagerKind, *, key: str, **payload: Any
    ) -> None:
        if self.pagerduty:
            await pager.enqueue(conn, incident_id, kind, key=key, payload=payload)

    # -- queries -----------------------------------------------------------------------------

    async def get(self, ref: int | None, *, allow_resolved: bool = True) -> Incident:
        async with self.pool.acquire() as conn:
            return await self._target(conn, ref, allow_resolved=allow_resolved, lock=False)

    async def list_recent(self, *, days: int = 7) -> list[Incident]:
        async with self.pool.acquire() as conn:
            return await incidents_sql.list_recent(
                conn, resolved_since=self.clock() - timedelta(days=days)
            )

    async def history(self, *, days: int) -> HistoryReport:
        """Every incident declared in the last `days`, with MTTA, MTTR and cadence figures."""
        now = self.clock()
        since = now - timedelta(days=days)
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            found = await incidents_sql.declared_since(conn, since)
            entries = await timeline_sql.entries_of_kinds(
                conn, [i.id for i in found], list(history.KINDS)
            )
        return history.report(found, entries, self.policy, since=since, now=now)

    async def timeline(self, ref: int | None) -> tuple[Incident, list[TimelineEntry]]:
        async with self.pool.acquire() as conn:
            incident = await self._target(conn, ref, allow_resolved=True, lock=False)
            return incident, await timeline_sql.entries(conn, incident.id)

    async def verify(self, number: int) -> Verification:
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            row = await conn.fetchrow(
                "SELECT timeline_count, timeline_head FROM incidents WHERE id = $1", number
            )
            if row is None:
                raise NotFound(f"{incident_ref(number)} does not exist.")
            entries = await timeline_sql.entries(conn, number)
        return timeline.verify_chain(
            entries, count=row["timeline_count"], head=row["timeline_head"]
        )

    # -- changes -----------------------------------------------------------------------------

    async def declare(
        self,
        *,
        title: str,
        severity: str | None,
        actor: str,
        linked: PagerIncident | None = None,
        commander: bool = True,
    ) -> Change:
        """Open an incident. `linked`: it was triggered in PagerDuty, so adopt that one.
        `commander`: the declarer becomes incident commander (see `declare_in`)."""
        async with self.pool.acquire() as conn, conn.transaction():
            change = await self.declare_in(
                conn, title=title, severity=severity, actor=actor, linked=linked,
                commander=commander,
            )  # fmt: skip
        self.on_change()
        return change

    async def declare_in(
        self,
        conn: Conn,
        *,
        title: str,
        severity: str | None,
        actor: str,
        linked: PagerIncident | None = None,
        commander: bool = True,
    ) -> Change:
        """`declare` inside the caller's transaction, which must commit it and then call
        `on_change()` (the alert intake declares together with its own dedupe rows).

        `commander=False`: the declarer (a system, such as alerting) is not made incident
        commander; the prompts mention the channel until someone is assigned.
        """
        if not conn.is_in_transaction():
            raise RuntimeError("declare_in must run inside the caller's transaction")
        title = " ".join(title.split())
        if not title:
            raise UsageError("Give the incident a title: `/ic declare Payments failing sev2`")
        if len(title) > MAX_TITLE:
            raise UsageError(f"The title is {len(title)} characters; keep it under {MAX_TITLE}.")
        sev = severity or self.policy.default
        level = self.policy.level(sev)
        now = self.clock()
        await once.claim(conn)  # before the number is taken: a repeat burns none
        number = await incidents_sql.insert(
            conn,
            title=title,
            severity=sev,
            declared_by=actor,
            channel_id=self.channel_id,
            now=now,
            pagerduty_id=linked.id if linked else None,
            pagerduty_url=linked.html_url if linked else None,
        )
        if commander:
            await incidents_sql.set_role(
                conn, number, role=IC, user_id=actor, assigned_by=actor, now=now, how="declared"
            )
        await outbox_sql.enqueue_card(conn, incident_id=number, version=1)
        await prompts.plan_after_declare(conn, number, level, now=now)
        if linked is not None:
            paging = f" Triggered in PagerDuty as #{linked.number}."
        elif self.pagerduty:
            paging = " Opening a PagerDuty incident."
        else:
            paging = " PagerDuty is not configured, so nobody was paged."
        declarer = who(actor)
        lead = (
            f"{declarer} is incident commander until reassigned."
            if commander
            else "Nobody is incident commander yet: `/ic assign @you ic`."
        )
        entry = await timeline.record(
            conn,
            incident_id=number,
            kind=Kind.DECLARED,
            actor=actor,
            occurred_at=now,
            text=(
                f"{declarer} declared {incident_ref(number)} ({sev.upper()} · {level.name}):"
                f" {title}. {lead}{paging}"
            ),
            data={"title": title, "severity": sev, "commander": actor if commander else None},
        )
        if linked is None:
            await self._mirror(
                conn,
                number,
                pager.PagerKind.CREATE,
                key="create",
                title=f"{incident_ref(number)}: {title}",
                urgency=level.pagerduty_urgency,
                incident_key=pager.incident_key(self.channel_id, number),
                details=f"Declared in Slack by {actor} as {sev.upper()} ({level.name}).",
            )
        incident = await self._reload(conn, number)
        return Change(incident, entry)

    async def assign(self, *, ref: int | None, user: str, role: str, actor: str) -> Change:
        now = self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            incident = await self._target(conn, ref, allow_resolved=False)
            if incident.roles.get(role) == user:
                raise Conflict(f"<@{user}> is already {role} of {incident.ref}.")
            previous = await self._give_role(conn, incident, role, user, actor=actor, now=now)
            replacing = f", replacing <@{previous}>" if previous else ""
            entry = await timeline.record(
                conn,
                incident_id=incident.id,
                kind=Kind.ROLE,
                actor=actor,
                occurred_at=now,
                text=f"<@{user}> is now {role}{replacing} (assigned by <@{actor}>).",
                data={"role": role, "user": user, "previous": previous},
            )
            incident = await self._reload(conn, incident.id)
        self.on_change()
        return Change(incident, entry)

    async def handover(self, *, ref: int | None, user: str, role: str | None, actor: str) -> Change:
        """Move a role to `user`, with a briefing for them stored in the entry's data.

        `role=None`: the role `actor` holds (incident commander first if several). Like
        `assign`, anyone may hand over a named role. Not mirrored to PagerDuty (assign isn't).
        """
        now = self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            incident = await self._target(conn, ref, allow_resolved=False)
            if role is None:
                held = handover.roles_held(incident, actor)
                if not held:
                    raise UsageError(
                        f"You hold no role in {incident.ref}, so say which one to hand over:"
                        f" `/ic handover {incident.ref} <@{user}> <role>`. Roles:"
                        f" {handover.roles_to_name(incident)}."
                    )
                role = held[0]
            if incident.roles.get(role) == user:
                raise Conflict(f"<@{user}> is already {role} of {incident.ref}; nothing changed.")
            window = await timeline_sql.since(conn, incident.id, at=now - handover.WINDOW)
            items = await timeline_sql.of_kinds(conn, incident.id, handover.ACTION_ITEM_KINDS)
            pending = await actions_sql.pending_for(conn, incident.id, now=now)
            previous = await self._give_role(
                conn, incident, role, user, actor=actor, now=now, how="handover"
            )
            after = await self._reload(conn, incident.id)
            if previous == actor:
                text = f"{who(actor)} handed {role} of {incident.ref} over to {who(user)}."
            else:
                since = f" from {who(previous)}" if previous else " (nobody held it)"
                by = "" if actor == user else f", handed over by {who(actor)}"
                text = f"{who(user)} takes over as {role} of {incident.ref}{since}{by}."
            entry = await timeline.record(
                conn,
                incident_id=incident.id,
                kind=Kind.HANDOVER,
                actor=actor,
                occurred_at=now,
                text=text,
                data={
                    "role": role,
                    "user": user,
                    "previous": previous,
                    "summary": handover.briefing(
                        after,
                        severity_name=self.policy.level(after.severity).name,
                        window=window,
                        action_items=items,
                        pending=pending,
                        now=now,
                    ),
                },
            )
        self.on_change()
        return Change(after, entry)

    async def set_severity(self, *, ref: int | None, severity: str, actor: str) -> Change:
        now = self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            incident = await self._target(conn, ref, allow_resolved=False)
            if incident.severity == severity:
                raise Conflict(f"{incident.ref} is already {severity.upper()}.")
            entry = await self.change_severity_in(
                conn, incident, severity, actor=actor, because=f"by <@{actor}>", now=now
            )
            incident = await self._reload(conn, incident.id)
        self.on_change()
        return Change(incident, entry)

    async def change_severity_in(
        self, conn: Conn, incident: Incident, severity: str, *, actor: str, because: str,
        now: datetime,
    ) -> TimelineEntry:  # fmt: skip
        """Within the caller's transaction (the incident row locked or about to be): the new
        severity, its prompt cadence, the timeline entry and the PagerDuty urgency/priority."""
        await self._bump(conn, incident.id, now=now, severity=severity)
        level = self.policy.level(severity)
        await prompts.plan_after_severity_change(conn, incident, level, now=now)
        entry = await timeline.record(
            conn,
            incident_id=incident.id,
            kind=Kind.SEVERITY,
            actor=actor,
            occurred_at=now,
            text=(
                f"Severity {incident.severity.upper()} → {severity.upper()} ({level.name})"
                f" {because}."
            ),
            data={"from": incident.severity, "to": severity},
        )
        await self._mirror(
            conn,
            incident.id,
            pager.PagerKind.UPDATE,
            key=f"entry{entry.seq}",
            urgency=level.pagerduty_urgency,
            priority=f"P{severity.removeprefix('sev')}",
        )
        return entry

    async def post_status(self, *, ref: int | None, text: str, actor: str) -> Change:
        text = _checked_text(text, what="status update")
        now = self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            incident = await self._target(conn, ref, allow_resolved=False)
            fields: dict[str, object] = {"last_status": text, "last_status_at": now}
            stage = stage_of(text)
            if stage is not None:
                fields["status"] = stage.value
                if stage in MITIGATED_STAGES and incident.mitigated_at is None:
                    fields["mitigated_at"] = now
            if incident.acknowledged_at is None:
                fields["acknowledged_at"] = now
            await self._bump(conn, incident.id, now=now, **fields)
            level = self.policy.level(incident.severity)
            await prompts.plan_after_update(conn, incident.id, level, now=now)
            entry = await timeline.record(
                conn,
                incident_id=incident.id,
                kind=Kind.STATUS,
                actor=actor,
                occurred_at=now,
                text=f"Status update from <@{actor}>: {text}",
                data={"text": text, "stage": stage.value if stage else None},
            )
            await self._mirror(
                conn, incident.id, pager.PagerKind.NOTE, key=f"entry{entry.seq}",
                text=f"Status update (Slack user {actor}): {text}",
            )  # fmt: skip
            incident = await self._reload(conn, incident.id)
        self.on_change()
        return Change(incident, entry)

    async def add_note(self, *, ref: int | None, text: str, actor: str) -> Change:
        text = _checked_text(text, what="note")
        now = self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            # Notes are the one thing a resolved incident still takes.
            incident = await self._target(conn, ref, allow_resolved=True)
            entry = await timeline.record(
                conn,
                incident_id=incident.id,
                kind=Kind.NOTE,
                actor=actor,
                occurred_at=now,
                text=f"Note from <@{actor}>: {text}",
                data={"text": text},
            )
            await self._mirror(
                conn, incident.id, pager.PagerKind.NOTE, key=f"entry{entry.seq}",
                text=f"Note (Slack user {actor}): {text}",
            )  # fmt: skip
        self.on_change()
        return Change(incident, entry)

    async def resolve(
        self,
        *,
        ref: int | None,
        summary: str | None,
        actor: str,
        mirror: bool = True,
        at: datetime | None = None,
    ) -> Change:
        """Resolve; `mirror=False` when the resolution came from PagerDuty itself, whose own
        time (`at`) then stamps it, so resolve times (MTTR) are PagerDuty's when it resolved;
        never later than now, nor earlier than the declaration (PagerDuty may have resolved
        it before its webhook declared it here)."""
        summary = _checked_text(summary, what="summary") if summary else None
        now = min(at, self.clock()) if at is not None else self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            incident = await self._target(conn, ref, allow_resolved=False)
            now = max(now, incident.declared_at)
            fields: dict[str, object] = {
                "status": Status.RESOLVED.value,
                "resolved_at": now,
                "summary": summary,
            }
            if incident.mitigated_at is None:
                fields["mitigated_at"] = now
            if incident.acknowledged_at is None:
                fields["acknowledged_at"] = now
            await self._bump(conn, incident.id, now=now, **fields)
            await prompts.plan_after_resolve(conn, incident.id, self.policy, now=now)
            # Requests end with their incident: no click counts after this, and reopening
            # does not bring them back.
            cancelled = await actions_sql.cancel_open(
                conn, incident.id, now=now,
                result={"ok": False, "summary": f"Cancelled: {incident.ref} was resolved"},
            )  # fmt: skip
            for request in cancelled:
                if request.entry_id is not None:
                    await outbox_sql.enqueue_refresh(
                        conn, incident_id=incident.id, timeline_id=request.entry_id,
                        version="cancelled",
                    )  # fmt: skip
            duration = human_duration((now - incident.declared_at).total_seconds())
            tail = f" Summary: {summary}" if summary else ""
            if cancelled:
                tail += "\nCancelled pending requests: " + ", ".join(
                    f"*{r.label}* (#{r.id})" for r in cancelled
                )
            entry = await timeline.record(
                conn,
                incident_id=incident.id,
                kind=Kind.RESOLVED,
                actor=actor,
                occurred_at=now,
                text=f"{who(actor)} resolved {incident.ref} after {duration}.{tail}",
                data={
                    "summary": summary,
                    "duration_s": int((now - incident.declared_at).total_seconds()),
                    **({"cancelled": [r.id for r in cancelled]} if cancelled else {}),
                },
            )
            if mirror:
                await self._mirror(
                    conn, incident.id, pager.PagerKind.UPDATE, key=f"entry{entry.seq}",
                    status="resolved", resolution=summary or f"Resolved in Slack by {actor}",
                )  # fmt: skip
            incident = await self._reload(conn, incident.id)
        self.on_change()
        return Change(incident, entry)

    async def page(self, *, ref: int | None, who: str, message: str | None, actor: str) -> Change:
        """`/ic page <contact>`: add a responder through PagerDuty, recorded in the timeline."""
        contact = self.policy.contacts.get(who)
        if contact is None:
            known = ", ".join(sorted(self.policy.contacts)) or "none"
            raise NotFound(f"`{who}` is not a contact in severities.yml (contacts: {known}).")
        if not self.pagerduty:
            handle = prompts.mention(contact.slack) or who
            raise Conflict(f"PagerDuty is not configured; mention {handle} in the thread instead.")
        wanted = pager.targets(self.policy, [who])
        if not wanted:
            raise Conflict(f"`{who}` has no PagerDuty user or escalation policy in severities.yml.")
        message = _checked_text(message, what="message") if message else None
        now = self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            incident = await self._target(conn, ref, allow_resolved=False)
            tail = f": {message}" if message else ""
            entry = await timeline.record(
                conn, incident_id=incident.id, kind=Kind.PAGED, actor=actor, occurred_at=now,
                text=f"<@{actor}> paged {who} through PagerDuty{tail}",
                data={"who": who, "targets": wanted, "message": message},
            )  # fmt: skip
            await self._mirror(
                conn, incident.id, pager.PagerKind.RESPONDERS, key=f"entry{entry.seq}",
                targets=wanted, message=message or f"Please join {incident.ref}: {incident.title}",
            )  # fmt: skip
        self.on_change()
        return Change(incident, entry)

    async def record_event(
        self,
        incident_id: int,
        *,
        kind: Kind,
        text: str,
        actor: str,
        data: dict[str, Any],
        acknowledged_at: datetime | None = None,
    ) -> Change:
        """An event from elsewhere (PagerDuty) into the timeline; an ack stamps the incident,
        at the declaration if it was acknowledged before (it still counts in MTTA)."""
        now = self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            incident = await self._target(conn, incident_id, allow_resolved=True)
            if acknowledged_at is not None and incident.acknowledged_at is None:
                acknowledged_at = min(max(acknowledged_at, incident.declared_at), now)
                await self._bump(conn, incident.id, now=now, acknowledged_at=acknowledged_at)
            entry = await timeline.record(
                conn, incident_id=incident.id, kind=kind, actor=actor, occurred_at=now,
                text=text, data=data,
            )  # fmt: skip
            incident = await self._reload(conn, incident.id)
        self.on_change()
        return Change(incident, entry)

    async def reopen(self, incident_id: int, *, actor: str, reason: str) -> Change:
        """A resolved incident comes back (reopened in PagerDuty): prompts start again."""
        now = self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            incident = await self._target(conn, incident_id, allow_resolved=True)
            if not incident.is_resolved:
                raise Conflict(f"{incident.ref} is not resolved.")
            await self._bump(
                conn, incident.id, now=now, status=Status.INVESTIGATING.value, resolved_at=None
            )
            level = self.policy.level(incident.severity)
            await prompts.plan_after_update(conn, incident.id, level, now=now)
            entry = await timeline.record(
                conn, incident_id=incident.id, kind=Kind.REOPENED, actor=actor, occurred_at=now,
                text=f"{who(actor)} reopened {incident.ref}: {reason}", data={"reason": reason},
            )  # fmt: skip
            incident = await self._reload(conn, incident.id)
        self.on_change()
        return Change(incident, entry)

    async def tick_checklist(
        self, *, reminder_id: int, ticked: list[int], actor: str, among: range | None = None
    ) -> Change | None:
        """Record what changed on a post-incident checklist; None if nothing did (a repeat).
        `ticked` is what is ticked among the steps `among` (a group of a long checklist; None:
        all steps); steps outside it keep their state."""
        now = self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            found = await timers_sql.lock_reminder(conn, reminder_id)
            if found is None:
                raise NotFound("That checklist no longer exists.")
            incident_id, before = found.incident_id, found.ticked
            stage = self.policy.stage(found.stage)
            items = found.items if found.items is not None else list(stage.items if stage else [])
            now_ticked = sorted({i for i in ticked if 0 <= i < len(items)})
            if among is not None:
                kept = {i for i in before if i not in among}
                now_ticked = sorted(kept | {i for i in now_ticked if i in among})
            added = [i for i in now_ticked if i not in before]
            removed = [i for i in before if i not in now_ticked]
            if not added and not removed:
                return None
            await timers_sql.set_ticked(conn, reminder_id, now_ticked)
            parts = [f"ticked “{items[i]}”" for i in added]
            parts += [f"unticked “{items[i]}”" for i in removed]
            title = found.title or (stage.title if stage else found.stage)
            done = f"{len(now_ticked)}/{len(items)} done"
            entry = await timeline.record(
                conn,
                incident_id=incident_id,
                kind=Kind.CHECKLIST_TICK,
                actor=actor,
                occurred_at=now,
                text=f"<@{actor}> {', '.join(parts)} — {title} ({done}).",
                data={"reminder": reminder_id, "added": added, "removed": removed},
            )
            incident = await self._reload(conn, incident_id)
        self.on_change()
        return Change(incident, entry)

    # -- helpers -----------------------------------------------------------------------------

    async def _give_role(
        self, conn: Conn, incident: Incident, role: str, user: str, *, actor: str, now: datetime,
        how: str = "assigned",
    ) -> str | None:  # fmt: skip
        """Give `role` to `user` (a first role given also acknowledges the incident) and bump
        the card; returns who held the role before."""
        previous = await incidents_sql.set_role(
            conn, incident.id, role=role, user_id=user, assigned_by=actor, now=now, how=how
        )
        fields: dict[str, object] = {}
        if incident.acknowledged_at is None:
            fields["acknowledged_at"] = now
        await self._bump(conn, incident.id, now=now, **fields)
        return previous

    async def _bump(self, conn: Conn, incident_id: int, *, now: datetime, **fields: object) -> None:
        version = await incidents_sql.update(conn, incident_id, now=now, **fields)
        await outbox_sql.enqueue_card(conn, incident_id=incident_id, version=version)

    async def _reload(self, conn: Conn, incident_id: int) -> Incident:
        incident = await incidents_sql.get(conn, incident_id)
        assert incident is not None
        return incident

    async def _target(
        self, conn: Conn, ref: int | None, *, allow_resolved: bool, lock: bool = True
    ) -> Incident:
        """The incident a command means: the one named, or the only open one, or ask."""
        if ref is not None:
            incident = await incidents_sql.get(conn, ref, lock=lock)
            if incident is None:
                raise NotFound(f"{incident_ref(ref)} does not exist. `/ic list` shows incidents.")
            if incident.is_resolved and not allow_resolved:
                raise Conflict(
                    f"{incident.ref} is resolved; only notes can be added"
                    f" (`/ic note {incident.ref} …`)."
                )
            return incident
        open_incidents = await incidents_sql.list_open(conn)
        if not open_incidents and allow_resolved:
            # Reading the timeline or adding a note right after resolving: the latest incident.
            latest = await incidents_sql.latest(conn)
            if latest is not None:
                open_incidents = [latest]
        if not open_incidents:
            raise NotFound("There is no open incident. Declare one: `/ic declare <title> [sev1-4]`")
        if len(open_incidents) > 1:
            raise Ambiguous(
                "Several incidents are open. Which one?",
                [Choice(label=f"{i.ref} {i.title}", value=str(i.id)) for i in open_incidents],
            )
        only = open_incidents[0]
        if lock:
            locked = await incidents_sql.get(conn, only.id, lock=True)
            assert locked is not None
            if locked.is_resolved and not allow_resolved:
                raise Conflict(f"{locked.ref} was just resolved.")
            return locked
        return only


def _checked_text(text: str | None, *, what: str) -> str:
    cleaned = (text or "").strip()
    if not cleaned:
        raise UsageError(f"The {what} is empty.")
    if len(cleaned) > MAX_TEXT:
        raise UsageError(f"The {what} is {len(cleaned)} characters; keep it under {MAX_TEXT}.")
    found = control_character(cleaned)
    if found is not None:
        raise UsageError(f"The {what} holds a control character ({found}); remove it.")
    return cleaned
