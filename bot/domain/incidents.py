"""The incident lifecycle: declare, assign, severity, status, note, resolve. No Slack here.

Every change runs in one transaction with the timeline entry that describes it
(`timeline.record`) and with the card refresh it causes (an outbox item).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.core import wording
from bot.core.errors import Ambiguous, Choice, Conflict, NotFound, UsageError
from bot.core.models import (
    IC,
    MITIGATED_STAGES,
    Incident,
    PagerIncident,
    Status,
    TimelineEntry,
    incident_ref,
)
from bot.core.text import control_character
from bot.core.wording import Code, Person, Ping, Said
from bot.domain import handover, history, once, pager, prompts, timeline
from bot.domain.history import HistoryReport
from bot.domain.policy import SeverityPolicy
from bot.domain.ports import ResolveHook
from bot.domain.timeline import Kind, Verification
from bot.domain.uow import Tx, UnitOfWork
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


@dataclass(frozen=True)
class Entry:
    """The timeline entry a change writes (its actor is the change's), and the PagerDuty
    mirror of it, if any: (PagerKind, payload), keyed by the entry. `at`: when, if not the
    transaction's time."""

    kind: Kind
    text: str | None  # None: rendered from `data` (`wording.data(...)`)
    data: dict[str, Any]
    at: datetime | None = None
    mirror: tuple[pager.PagerKind, dict[str, Any]] | None = None


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
        uow: UnitOfWork,
        policy: SeverityPolicy,
        *,
        channel_id: str,
        pagerduty: bool = False,
        on_resolve: Sequence[ResolveHook] = (),
    ) -> None:
        self.uow = uow
        self.policy = policy
        self.channel_id = channel_id
        self.pagerduty = pagerduty  # mirror changes to PagerDuty (through its outbox)
        self.on_resolve = list(on_resolve)  # queued with every resolve (issue 21)

    async def _mirror(
        self, conn: Conn, incident_id: int, kind: pager.PagerKind, *, key: str, **payload: Any
    ) -> None:
        if self.pagerduty:
            await pager.enqueue(conn, incident_id, kind, key=key, payload=payload)

    async def _change(
        self,
        ref: int | None,
        *,
        actor: str,
        allow_resolved: bool = False,
        reload: bool = True,
        step: Callable[[Tx, Incident], Awaitable[Entry]],
    ) -> Change:
        """What every change is, in one transaction: the incident meant (locked), the step's
        own writes, the timeline entry it describes, its PagerDuty mirror; then the incident
        as it now is. The unit of work kicks the workers after the commit."""
        async with self.uow.transaction() as tx:
            incident = await self._target(tx.conn, ref, allow_resolved=allow_resolved)
            planned = await step(tx, incident)
            entry = await tx.record(
                incident_id=incident.id, kind=planned.kind, actor=actor, text=planned.text,
                data=planned.data, occurred_at=planned.at,
            )  # fmt: skip
            if planned.mirror is not None:
                kind, payload = planned.mirror
                await self._mirror(tx.conn, incident.id, kind, key=f"entry{entry.seq}", **payload)
            if reload:
                incident = await self._reload(tx.conn, incident.id)
        return Change(incident, entry)

    # -- queries -----------------------------------------------------------------------------

    async def get(self, ref: int | None, *, allow_resolved: bool = True) -> Incident:
        async with self.uow.connection() as conn:
            return await self._target(conn, ref, allow_resolved=allow_resolved, lock=False)

    async def list_recent(self, *, days: int = 7) -> list[Incident]:
        async with self.uow.connection() as conn:
            return await incidents_sql.list_recent(
                conn, resolved_since=self.uow.clock() - timedelta(days=days)
            )

    async def history(self, *, days: int) -> HistoryReport:
        """Every incident declared in the last `days`, with MTTA, MTTR and cadence figures."""
        now = self.uow.clock()
        since = now - timedelta(days=days)
        async with self.uow.snapshot() as conn:
            found = await incidents_sql.declared_since(conn, since)
            entries = await timeline_sql.entries_of_kinds(
                conn, [i.id for i in found], list(history.KINDS)
            )
        return history.report(found, entries, self.policy, since=since, now=now)

    async def timeline(self, ref: int | None) -> tuple[Incident, list[TimelineEntry]]:
        async with self.uow.connection() as conn:
            incident = await self._target(conn, ref, allow_resolved=True, lock=False)
            return incident, await timeline_sql.entries(conn, incident.id)

    async def verify(self, number: int) -> Verification:
        async with self.uow.snapshot() as conn:
            head = await timeline_sql.recorded_head(conn, number)
            if head is None:
                raise NotFound(f"{incident_ref(number)} does not exist.")
            entries = await timeline_sql.entries(conn, number)
        count, last = head
        return timeline.verify_chain(entries, count=count, head=last)

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
        async with self.uow.transaction() as tx:
            return await self.declare_in(
                tx, title=title, severity=severity, actor=actor, linked=linked,
                commander=commander,
            )  # fmt: skip

    async def declare_in(
        self,
        tx: Tx,
        *,
        title: str,
        severity: str | None,
        actor: str,
        linked: PagerIncident | None = None,
        commander: bool = True,
    ) -> Change:
        """`declare` inside the caller's unit of work (the alert intake declares together with
        its own dedupe rows).

        `commander=False`: the declarer (a system, such as alerting) is not made incident
        commander; the prompts mention the channel until someone is assigned.
        """
        conn = tx.conn
        title = " ".join(title.split())
        if not title:
            raise UsageError("Give the incident a title: `/ic declare Payments failing sev2`")
        if len(title) > MAX_TITLE:
            raise UsageError(f"The title is {len(title)} characters; keep it under {MAX_TITLE}.")
        sev = severity or self.policy.default
        level = self.policy.level(sev)
        now = tx.now
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
        paging = "linked" if linked is not None else "opening" if self.pagerduty else "off"
        entry = await tx.record(
            incident_id=number,
            kind=Kind.DECLARED,
            actor=actor,
            data=wording.data(
                title=title, severity=sev, commander=actor if commander else None,
                name=level.name, paging=paging,
                pagerduty_number=linked.number if linked is not None else None,
            ),
        )  # fmt: skip
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
        async def step(tx: Tx, incident: Incident) -> Entry:
            if incident.roles.get(role) == user:
                raise Conflict(Person(user), " is already ", Said(role), f" of {incident.ref}.")
            previous = await self._give_role(tx, incident, role, user, actor=actor)
            return Entry(Kind.ROLE, None, wording.data(role=role, user=user, previous=previous))

        return await self._change(ref, actor=actor, step=step)

    async def handover(self, *, ref: int | None, user: str, role: str | None, actor: str) -> Change:
        """Move a role to `user`, with a briefing for them stored in the entry's data.

        `role=None`: the role `actor` holds (incident commander first if several). Like
        `assign`, anyone may hand over a named role. Not mirrored to PagerDuty (assign isn't).
        """

        async def step(tx: Tx, incident: Incident) -> Entry:
            conn, now = tx.conn, tx.now
            named = role
            if named is None:
                held = handover.roles_held(incident, actor)
                if not held:
                    raise UsageError(
                        f"You hold no role in {incident.ref}, so say which one to hand over: ",
                        Code(f"/ic handover {incident.ref} <@{user}> <role>"),
                        ". Roles: ", *handover.roles_to_name(incident), ".",
                    )  # fmt: skip
                named = held[0]
            if incident.roles.get(named) == user:
                raise Conflict(
                    Person(user),
                    " is already ",
                    Said(named),
                    f" of {incident.ref}; nothing changed.",
                )
            window = await timeline_sql.since(conn, incident.id, at=now - handover.WINDOW)
            items = await timeline_sql.of_kinds(conn, incident.id, handover.ACTION_ITEM_KINDS)
            pending = await actions_sql.pending_for(conn, incident.id, now=now)
            previous = await self._give_role(tx, incident, named, user, actor=actor, how="handover")
            after = await self._reload(conn, incident.id)
            briefing = handover.briefing(
                after,
                severity_name=self.policy.level(after.severity).name,
                window=window,
                action_items=items,
                pending=pending,
                now=now,
            )
            return Entry(
                Kind.HANDOVER,
                None,
                wording.data(role=named, user=user, previous=previous, summary=briefing),
            )

        return await self._change(ref, actor=actor, step=step)

    async def set_severity(self, *, ref: int | None, severity: str, actor: str) -> Change:
        async def step(tx: Tx, incident: Incident) -> Entry:
            if incident.severity == severity:
                raise Conflict(f"{incident.ref} is already {severity.upper()}.")
            return await self.severity_step(tx, incident, severity, alert=None)

        return await self._change(ref, actor=actor, step=step)

    async def change_severity_in(
        self, tx: Tx, incident: Incident, severity: str, *, actor: str, alert: dict[str, Any]
    ) -> TimelineEntry:
        """Within the caller's unit of work (the incident row locked or about to be): the new
        severity, its prompt cadence, the timeline entry and the PagerDuty urgency/priority.
        `alert`: the alert that raised it (`name`, `service`, `severity`)."""
        planned = await self.severity_step(tx, incident, severity, alert=alert)
        entry = await tx.record(
            incident_id=incident.id, kind=planned.kind, actor=actor, text=planned.text,
            data=planned.data,
        )  # fmt: skip
        assert planned.mirror is not None
        kind, payload = planned.mirror
        await self._mirror(tx.conn, incident.id, kind, key=f"entry{entry.seq}", **payload)
        return entry

    async def severity_step(
        self, tx: Tx, incident: Incident, severity: str, *, alert: dict[str, Any] | None
    ) -> Entry:
        await self._bump(tx, incident.id, severity=severity)
        level = self.policy.level(severity)
        await prompts.plan_after_severity_change(tx.conn, incident, level, now=tx.now)
        return Entry(
            Kind.SEVERITY,
            None,
            wording.data(
                **{"from": incident.severity, "to": severity},
                name=level.name,
                **({"alert": alert} if alert else {}),
            ),
            mirror=(
                pager.PagerKind.UPDATE,
                {
                    "urgency": level.pagerduty_urgency,
                    "priority": f"P{severity.removeprefix('sev')}",
                },
            ),
        )

    async def post_status(self, *, ref: int | None, text: str, actor: str) -> Change:
        text = _checked_text(text, what="status update")

        async def step(tx: Tx, incident: Incident) -> Entry:
            now = tx.now
            fields: dict[str, object] = {"last_status": text, "last_status_at": now}
            stage = stage_of(text)
            if stage is not None:
                fields["status"] = stage.value
                if stage in MITIGATED_STAGES and incident.mitigated_at is None:
                    fields["mitigated_at"] = now
            if incident.acknowledged_at is None:
                fields["acknowledged_at"] = now
            await self._bump(tx, incident.id, **fields)
            level = self.policy.level(incident.severity)
            await prompts.plan_after_update(tx.conn, incident.id, level, now=now)
            return Entry(
                Kind.STATUS,
                None,
                wording.data(text=text, stage=stage.value if stage else None),
                mirror=(
                    pager.PagerKind.NOTE,
                    {"text": f"Status update (Slack user {actor}): {text}"},
                ),
            )

        return await self._change(ref, actor=actor, step=step)

    async def add_note(self, *, ref: int | None, text: str, actor: str) -> Change:
        text = _checked_text(text, what="note")

        async def step(tx: Tx, incident: Incident) -> Entry:
            return Entry(
                Kind.NOTE,
                None,
                wording.data(text=text),
                mirror=(pager.PagerKind.NOTE, {"text": f"Note (Slack user {actor}): {text}"}),
            )

        # Notes are the one thing a resolved incident still takes.
        return await self._change(ref, actor=actor, allow_resolved=True, reload=False, step=step)

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

        async def step(tx: Tx, incident: Incident) -> Entry:
            conn = tx.conn
            now = min(at, tx.now) if at is not None else tx.now
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
            await incidents_sql.bump(conn, incident.id, now=now, **fields)  # PagerDuty's time
            said: dict[str, Any] = {}  # what the hooks have to say, as data for the entry
            if self.on_resolve:
                resolved = await self._reload(conn, incident.id)
                before = await timeline_sql.of_kinds(conn, incident.id, [Kind.RESOLVED])
                for hook in self.on_resolve:
                    said |= await hook.on_resolve(tx, resolved, resolution=len(before) + 1) or {}
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
            resolution = summary or f"Resolved in Slack by {actor}"
            return Entry(
                Kind.RESOLVED,
                None,
                wording.data(
                    summary=summary,
                    duration_s=int((now - incident.declared_at).total_seconds()),
                    **(
                        {
                            "cancelled": [r.id for r in cancelled],
                            "cancelled_requests": [
                                {"id": r.id, "label": r.label} for r in cancelled
                            ],
                        }
                        if cancelled
                        else {}
                    ),
                    **said,
                ),
                at=now,
                mirror=(
                    (pager.PagerKind.UPDATE, {"status": "resolved", "resolution": resolution})
                    if mirror
                    else None
                ),
            )

        return await self._change(ref, actor=actor, step=step)

    async def page(self, *, ref: int | None, who: str, message: str | None, actor: str) -> Change:
        """`/ic page <contact>`: add a responder through PagerDuty, recorded in the timeline."""
        contact = self.policy.contacts.get(who)
        if contact is None:
            known = ", ".join(sorted(self.policy.contacts)) or "none"
            raise NotFound(
                Code(who), " is not a contact in severities.yml (contacts: ", known, ")."
            )
        if not self.pagerduty:
            handle = Ping(contact.slack or who)
            raise Conflict(
                "PagerDuty is not configured; mention ", handle, " in the thread instead."
            )
        wanted = pager.targets(self.policy, [who])
        if not wanted:
            raise Conflict(
                Code(who), " has no PagerDuty user or escalation policy in severities.yml."
            )
        message = _checked_text(message, what="message") if message else None

        async def step(tx: Tx, incident: Incident) -> Entry:
            return Entry(
                Kind.PAGED,
                None,
                wording.data(who=who, targets=wanted, message=message),
                mirror=(
                    pager.PagerKind.RESPONDERS,
                    {
                        "targets": wanted,
                        "message": message or f"Please join {incident.ref}: {incident.title}",
                    },
                ),
            )

        return await self._change(ref, actor=actor, reload=False, step=step)

    async def record_event(
        self,
        incident_id: int,
        *,
        kind: Kind,
        actor: str,
        data: dict[str, Any],
        text: str | None = None,
        acknowledged_at: datetime | None = None,
    ) -> Change:
        """An event from elsewhere (PagerDuty) into the timeline; an ack stamps the incident,
        at the declaration if it was acknowledged before (it still counts in MTTA). Without
        `text`, `data` is versioned and the words are rendered from it."""

        async def step(tx: Tx, incident: Incident) -> Entry:
            if acknowledged_at is not None and incident.acknowledged_at is None:
                acked = min(max(acknowledged_at, incident.declared_at), tx.now)
                await self._bump(tx, incident.id, acknowledged_at=acked)
            return Entry(kind, text, data)

        return await self._change(incident_id, actor=actor, allow_resolved=True, step=step)

    async def reopen(self, incident_id: int, *, actor: str, reason: str) -> Change:
        """A resolved incident comes back (reopened in PagerDuty): prompts start again."""

        async def step(tx: Tx, incident: Incident) -> Entry:
            if not incident.is_resolved:
                raise Conflict(f"{incident.ref} is not resolved.")
            await self._bump(tx, incident.id, status=Status.INVESTIGATING.value, resolved_at=None)
            level = self.policy.level(incident.severity)
            await prompts.plan_after_update(tx.conn, incident.id, level, now=tx.now)
            return Entry(Kind.REOPENED, None, wording.data(reason=reason))

        return await self._change(incident_id, actor=actor, allow_resolved=True, step=step)

    async def tick_checklist(
        self, *, reminder_id: int, ticked: list[int], actor: str, among: range | None = None
    ) -> Change | None:
        """Record what changed on a post-incident checklist; None if nothing did (a repeat).
        `ticked` is what is ticked among the steps `among` (a group of a long checklist; None:
        all steps); steps outside it keep their state."""
        async with self.uow.transaction() as tx:
            conn = tx.conn
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
            title = found.title or (stage.title if stage else found.stage)
            entry = await tx.record(
                incident_id=incident_id,
                kind=Kind.CHECKLIST_TICK,
                actor=actor,
                data=wording.data(
                    reminder=reminder_id, added=added, removed=removed, title=title,
                    ticked=[items[i] for i in added], unticked=[items[i] for i in removed],
                    done=len(now_ticked), of=len(items),
                ),
            )  # fmt: skip
            incident = await self._reload(conn, incident_id)
        return Change(incident, entry)

    # -- helpers -----------------------------------------------------------------------------

    async def _give_role(
        self, tx: Tx, incident: Incident, role: str, user: str, *, actor: str,
        how: str = "assigned",
    ) -> str | None:  # fmt: skip
        """Give `role` to `user` (a first role given also acknowledges the incident) and bump
        the card; returns who held the role before."""
        previous = await incidents_sql.set_role(
            tx.conn, incident.id, role=role, user_id=user, assigned_by=actor, now=tx.now, how=how
        )
        fields: dict[str, object] = {}
        if incident.acknowledged_at is None:
            fields["acknowledged_at"] = tx.now
        await self._bump(tx, incident.id, **fields)
        return previous

    async def _bump(self, tx: Tx, incident_id: int, **fields: object) -> None:
        """Change the incident row and queue its card (`incidents_sql.bump`)."""
        await incidents_sql.bump(tx.conn, incident_id, now=tx.now, **fields)

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
                raise NotFound(
                    f"{incident_ref(ref)} does not exist. ", Code("/ic list"), " shows incidents."
                )
            if incident.is_resolved and not allow_resolved:
                raise Conflict(
                    f"{incident.ref} is resolved; only notes can be added (",
                    Code(f"/ic note {incident.ref} …"), ").",
                )  # fmt: skip
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
