"""The approval policy (`approvals.yml`) and the approval flow. No Slack here.

A remediation is *proposed* (stored as a pending action with a dry-run preview, written to the
timeline whose entry becomes the approval card), *decided* by clicks — each one conditional
UPDATE, so a double click, two replicas or a Slack retry never count twice and nothing runs
late — and *run* exactly once by whoever's approval completed it, then verified. Every step is
in the hash-chained timeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.core import metrics, wording, yamlfile
from bot.core.errors import ConfigError, Conflict, NotFound, UserError
from bot.core.logs import get_logger
from bot.core.models import IC, Incident, TimelineEntry, normalise_role
from bot.core.wording import Code, Flavour, Said, Strong
from bot.domain.incidents import Incidents
from bot.domain.policy import Duration
from bot.domain.timeline import Kind
from bot.domain.uow import UnitOfWork
from bot.playbooks.remediations import REMEDIATIONS
from bot.playbooks.remediations.runner import Remediator
from bot.store import actions as actions_sql
from bot.store import incidents as incidents_sql
from bot.store import outbox as outbox_sql
from bot.store.actions import PendingAction
from bot.store.incidents import Grant

log = get_logger(__name__)


def _check_approver(value: str) -> str:
    if value in ("anyone", "incident_commander", "oncall"):
        return value
    kind, _, rest = value.partition(":")
    if kind == "role" and normalise_role(rest):
        return f"role:{normalise_role(rest)}"
    if kind in ("user", "group") and rest.strip():
        return f"{kind}:{rest.strip()}"
    raise ValueError(
        f"{value!r} is not an approver: use anyone, incident_commander, oncall, role:<name>,"
        " user:<Slack user id> or group:<Slack user-group id>"
    )


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    match: dict[str, Any]
    approvers: list[str] | None = None
    required: int | None = Field(default=None, ge=1, le=5)
    expires_after: Duration = None

    _approvers = field_validator("approvers")(
        lambda cls, v: None if v is None else [_check_approver(a) for a in v]
    )


class ActionPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    approvers: list[str] | None = None
    required: int | None = Field(default=None, ge=1, le=5)
    expires_after: Duration = None
    rules: list[Rule] = Field(default_factory=list)

    _approvers = field_validator("approvers")(
        lambda cls, v: None if v is None else [_check_approver(a) for a in v]
    )


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    approvers: list[str] = Field(default_factory=lambda: ["anyone"])
    required: int = Field(default=1, ge=1, le=5)
    expires_after: Duration = 900.0

    _approvers = field_validator("approvers")(lambda cls, v: [_check_approver(a) for a in v])


class ApprovalsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    defaults: Defaults = Field(default_factory=Defaults)
    remediations: dict[str, ActionPolicy] = Field(default_factory=dict)

    @field_validator("remediations")
    @classmethod
    def _known(cls, value: dict[str, ActionPolicy]) -> dict[str, ActionPolicy]:
        unknown = sorted(set(value) - set(REMEDIATIONS))
        if unknown:
            raise ValueError(f"unknown remediations: {', '.join(unknown)}")
        return value


@dataclass(frozen=True)
class Requirement:
    approvers: list[str]
    required: int
    expires_after: float


def load_approvals(playbooks_dir: Path) -> ApprovalsFile:
    path = playbooks_dir / "approvals.yml"
    if not path.exists():
        return ApprovalsFile()
    raw, root = yamlfile.read(path)
    try:
        return ApprovalsFile.model_validate(raw or {})
    except ValidationError as exc:
        raise ConfigError(yamlfile.problems(path, root, exc)) from exc


def requirement(policy: ApprovalsFile, action: str, params: dict[str, Any]) -> Requirement:
    """Defaults, overridden by the action's entry, overridden by its first matching rule."""
    d = policy.defaults
    approvers, required, expires = d.approvers, d.required, d.expires_after or 900.0
    entry = policy.remediations.get(action)
    layers: list[ActionPolicy | Rule] = []
    if entry is not None:
        layers.append(entry)
        layers += [r for r in entry.rules if all(params.get(k) == v for k, v in r.match.items())][
            :1
        ]
    for layer in layers:
        approvers = layer.approvers or approvers
        required = layer.required or required
        expires = layer.expires_after or expires
    return Requirement(approvers=list(approvers), required=required, expires_after=expires)


GroupMembers = Callable[[str], Awaitable[set[str]]]
OnCallMembers = Callable[[], Awaitable[set[str]]]


async def _nobody() -> set[str]:
    return set()


async def ineligible(
    approvers: list[str],
    user: str,
    *,
    grants: dict[str, Grant],
    requested_at: datetime,
    members: GroupMembers,
    oncall: OnCallMembers = _nobody,
) -> str | None:
    """Why `user` may not decide a request made at `requested_at` (None: they may).

    Group, user and on-call rules are checked now. A role rule (`incident_commander`,
    `role:<name>`) is met only by someone who held the role when the request was made, still
    holds it, and did not give it to themselves: a role taken after seeing the request, or
    self-assigned, cannot open the gate (being incident commander since declaring counts).
    """
    reasons = []
    for rule in approvers:
        if rule == "anyone":
            return None
        if rule == "oncall":
            if user in await oncall():
                return None
            continue
        kind, _, rest = rule.partition(":")
        role = IC if rule == "incident_commander" else rest if kind == "role" else None
        if role is not None:
            grant = grants.get(role)
            if grant is None or grant.user_id != user:
                continue
            if grant.self_given:
                reasons.append(f"you assigned yourself {role}, and a role counts only when"
                               " someone else gives it")  # fmt: skip
            elif grant.assigned_at > requested_at:
                reasons.append(f"you became {role} after this was requested")
            else:
                return None
            continue
        if kind == "user" and rest == user:
            return None
        if kind == "group" and user in await members(rest):
            return None
    why = f"Only {describe(approvers)} may decide this request"
    return f"{why}: {'; '.join(reasons)}." if reasons else f"{why}."


def describe(approvers: list[str]) -> str:
    """Who may approve, as the request's entry says it (`bot.core.wording.approvers`)."""
    return wording.join(wording.approvers(approvers), Flavour.SLACK, typed=True)


@dataclass(frozen=True)
class Decision:
    action: PendingAction
    entry: TimelineEntry  # what the click recorded; its words are for the person who clicked
    run: bool  # this click completed the approvals: the caller runs the action now


class Approvals:
    def __init__(
        self,
        uow: UnitOfWork,
        incidents: Incidents,
        policy: ApprovalsFile,
        remediator: Remediator,
        *,
        members: GroupMembers,
        oncall: OnCallMembers = _nobody,
        lease: timedelta = timedelta(seconds=60),
    ) -> None:
        # A run whose heartbeat is older than `lease`, or an approved request not started
        # within it, was left by a dead process (see `fail_interrupted`).
        self.lease = lease
        self.oncall = oncall
        self.uow = uow
        self.incidents = incidents
        self.policy = policy
        self.remediator = remediator
        self.members = members

    async def propose(
        self,
        *,
        ref: int | None,
        action: str,
        params: dict[str, Any],
        label: str,
        actor: str,
    ) -> PendingAction:
        spec = REMEDIATIONS.get(action)
        if spec is None:
            raise NotFound("There is no remediation ", Code(action), ".")
        if "namespace" in spec.params.model_fields and not params.get("namespace"):
            params = {**params, "namespace": self.remediator.namespace}
        try:
            parsed = spec.params.model_validate(params)
        except ValidationError as exc:
            problems = "; ".join(e["msg"] for e in exc.errors())
            raise UserError("Bad parameters for ", Code(action), ": ", Said(problems)) from exc
        incident = await self.incidents.get(ref, allow_resolved=False)
        preview = await self.remediator.preview(action, parsed)  # refuses unknown targets
        need = requirement(self.policy, action, parsed.model_dump())
        now = self.uow.clock()
        async with self.uow.transaction() as tx:
            pending = await actions_sql.insert(
                tx.conn,
                incident_id=incident.id,
                action=action,
                label=label,
                params=parsed.model_dump(mode="json"),
                preview=preview.stored(),
                requested_by=actor,
                requested_at=now,
                expires_at=now + timedelta(seconds=need.expires_after),
                required=need.required,
                approvers=need.approvers,
                target=spec.target(parsed) if spec.target else None,
            )
            entry = await tx.record(
                incident_id=incident.id,
                kind=Kind.APPROVAL_REQUESTED,
                actor=actor,
                occurred_at=now,
                data=wording.data(
                    pending_id=pending.id, action=action, params=pending.params, label=label,
                    required=need.required, approvers=need.approvers, preview=preview.lines,
                ),
            )  # fmt: skip
            await actions_sql.set_entry(tx.conn, pending.id, entry.id)
        log.info("remediation.requested", pending_id=pending.id, action=action, actor=actor)
        return pending

    async def get(self, pending_id: int) -> PendingAction:
        async with self.uow.connection() as conn:
            pending = await actions_sql.get(conn, pending_id)
        if pending is None:
            raise NotFound("That request no longer exists.")
        return pending

    async def decide(self, pending_id: int, *, user: str, approve: bool) -> Decision:
        pending = await self.get(pending_id)
        incident = await self.incidents.get(pending.incident_id)
        now = self.uow.clock()
        refusal = await self._refusal(pending, incident, user=user, now=now)
        if refusal:
            metrics.approval("refused")
            raise Conflict(refusal)
        async with self.uow.transaction() as tx:
            if approve:
                after = await actions_sql.add_approval(tx.conn, pending_id, user=user, now=now)
            else:
                after = await actions_sql.deny(tx.conn, pending_id, user=user, now=now)
            if after is None:  # somebody else's click won the race
                latest = await actions_sql.get(tx.conn, pending_id)
                assert latest is not None
                metrics.approval("refused")
                raise Conflict(self._why_not(latest, user=user, now=now))
            if not approve:
                kind, decision = Kind.APPROVAL_DENIED, "denied"
            elif after.status == "approved":
                kind, decision = Kind.APPROVED, "approved"
            else:
                kind, decision = Kind.APPROVAL_GIVEN, "partial"
            entry = await tx.record(
                incident_id=after.incident_id, kind=kind, actor=user, occurred_at=now,
                data=wording.data(
                    pending_id=after.id, label=after.label, decision=decision,
                    approvals=len(after.approvals), required=after.required,
                ),
            )  # fmt: skip
            await self._refresh_card(tx.conn, after)
        log.info("remediation.decided", pending_id=pending_id, by=user, status=after.status)
        metrics.approval(
            "denied" if not approve else "approved" if after.status == "approved" else "partial"
        )
        return Decision(action=after, entry=entry, run=approve and after.status == "approved")

    async def _refusal(
        self, pending: PendingAction, incident: Incident, *, user: str, now: Any
    ) -> str | None:
        if pending.status != "pending" or pending.expires_at <= now:
            return self._why_not(pending, user=user, now=now)
        if user == pending.requested_by:
            return "You asked for this; someone else has to approve (or deny) it."
        if user in pending.approvals:
            return "You already approved this; it needs another person."
        async with self.uow.connection() as conn:
            grants = await incidents_sql.grants(conn, incident.id)
        return await ineligible(
            pending.approvers, user, grants=grants, requested_at=pending.requested_at,
            members=self.members, oncall=self.oncall,
        )  # fmt: skip

    @staticmethod
    def _why_not(pending: PendingAction, *, user: str, now: Any) -> str:
        if pending.status == "pending" and pending.expires_at <= now:
            return "This request has expired; ask again if it is still needed."
        if pending.status == "pending" and user in pending.approvals:
            return "You already approved this; it needs another person."
        if pending.status == "pending":
            return "You asked for this; someone else has to approve (or deny) it."
        if pending.status in ("cancelled", "changed"):
            summary = (pending.result or {}).get("summary") or "it can no longer run"
            return f"This request was {pending.status} ({summary}); nothing was done."
        by = f" by <@{pending.decided_by}>" if pending.decided_by else ""
        return f"This request was already {pending.status}{by}."

    async def run(self, pending_id: int) -> PendingAction:
        """Carry out an approved request, once: only the approved -> running step may start it,
        only while no other run holds its target, and only if the target is still as the
        preview showed it."""
        for _ in range(3):  # the run holding the target may end between two looks
            async with self.uow.connection() as conn:
                if await actions_sql.start_run(conn, pending_id, now=self.uow.clock()):
                    break
            await self._not_started(pending_id)
        else:
            raise Conflict("This request could not start; ask for it again.")
        pending = await self.get(pending_id)
        spec = REMEDIATIONS[pending.action]
        params = spec.params.model_validate(pending.params)
        beating = asyncio.create_task(self._heartbeat(pending_id), name=f"heartbeat-{pending_id}")
        try:
            return await self._run_started(pending, params)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating

    async def _run_started(self, pending: PendingAction, params: Any) -> PendingAction:
        pending_id = pending.id
        try:
            changed = await self.remediator.changed(pending.action, params, pending.preview)
        except Exception as exc:
            log.exception("remediation.recheck_failed", pending_id=pending_id)
            changed = f"it could not be read again before running ({exc})"
        if changed is not None:
            return await self._finish(
                pending, status="changed",
                result={"ok": False, "summary": changed, "verification": "not run",
                        "changed": True},
            )  # fmt: skip
        await self._note(pending, Kind.REMEDIATION_STARTED)
        started = time.monotonic()
        try:
            outcome = await self.remediator.run(pending.action, params, pending.preview)
            ok, summary, verification = outcome.ok, outcome.summary, outcome.verification
            retryable = outcome.retryable and not ok
        except Exception as exc:
            log.exception("remediation.failed", pending_id=pending_id)
            ok, summary, verification, retryable = False, f"failed: {exc}", "not verified", False
        status = "succeeded" if ok else "failed"
        metrics.remediation_run(pending.action, ok=ok, seconds=time.monotonic() - started)
        result: dict[str, Any] = {"ok": ok, "summary": summary, "verification": verification}
        if retryable:
            result["retryable"] = True  # the card offers Request again
        return await self._finish(pending, status=status, result=result, ran=True)

    async def _finish(
        self, pending: PendingAction, *, status: str, result: dict[str, Any], ran: bool = False
    ) -> PendingAction:
        pending_id = pending.id
        async with self.uow.transaction() as tx:
            late = not await actions_sql.transition(
                tx.conn, pending_id, from_status="running", to_status=status, result=result
            )
            if late:
                # The sweeper took this run for one a dead process left (its heartbeat
                # stopped): the real outcome replaces its guess, and the thread says so.
                await actions_sql.finish_interrupted(
                    tx.conn, pending_id, status=status, result=result
                )
            await tx.record(
                incident_id=pending.incident_id, kind=Kind.REMEDIATION_RESULT, actor="icbot",
                data=wording.data(
                    pending_id=pending_id, label=pending.label, **result,
                    **({"ran": True} if ran else {}), **({"late": True} if late else {}),
                ),
            )  # fmt: skip
            latest = await actions_sql.get(tx.conn, pending_id)
            assert latest is not None
            await self._refresh_card(tx.conn, latest)
        log.info("remediation.finished", pending_id=pending_id, status=latest.status)
        return latest

    async def _not_started(self, pending_id: int) -> None:
        """start_run said no: not waiting to run, or another run holds the target. The latter
        ends this request (never queued behind the other: the state it was approved against
        will not be the state after that run). Returns if neither is so any more (try again)."""
        pending = await self.get(pending_id)
        if pending.status != "approved" or pending.target is None:
            raise Conflict("This request is not waiting to run.")
        async with self.uow.connection() as conn:
            other = await actions_sql.running_on(conn, pending.target)
        if other is None:
            return
        summary = (
            f"not run: request #{other.id} ({other.label}) is running on {pending.target};"
            " nothing was done; ask again once it has finished"
        )
        result = {"ok": False, "summary": summary, "verification": "not run", "busy": other.id}
        now = self.uow.clock()
        async with self.uow.transaction() as tx:
            if not await actions_sql.transition(
                tx.conn, pending_id, from_status="approved", to_status="failed", result=result
            ):
                raise Conflict("This request is not waiting to run.")
            await tx.record(
                incident_id=pending.incident_id, kind=Kind.REMEDIATION_RESULT,
                actor="icbot", occurred_at=now,
                data=wording.data(pending_id=pending_id, label=pending.label, **result),
            )  # fmt: skip
            latest = await actions_sql.get(tx.conn, pending_id)
            assert latest is not None
            await self._refresh_card(tx.conn, latest)
        log.info("remediation.busy", pending_id=pending_id, running=other.id)
        raise Conflict(Strong(pending.label), " was not run: ", Said(summary), ".")

    async def _heartbeat(self, pending_id: int) -> None:
        """While the run lasts, tell other replicas this process is alive (see
        `fail_interrupted`)."""
        while True:
            await asyncio.sleep(max(self.lease.total_seconds() / 4, 0.1))
            try:
                async with self.uow.connection() as conn:
                    if not await actions_sql.heartbeat(conn, pending_id, now=self.uow.clock()):
                        return
            except Exception:
                log.warning("remediation.heartbeat_failed", pending_id=pending_id, exc_info=True)

    async def request_again(self, pending_id: int, *, actor: str) -> PendingAction:
        """A fresh request, with a fresh preview, for one that could not run as approved."""
        old = await self.get(pending_id)
        if old.status not in ("changed", "failed", "expired", "denied", "cancelled"):
            raise Conflict("That request is still open; use its own buttons.")
        return await self.propose(
            ref=old.incident_id, action=old.action, params=old.params, label=old.label,
            actor=actor,
        )  # fmt: skip

    async def _note(self, pending: PendingAction, kind: Kind) -> None:
        await self.incidents.record_event(
            pending.incident_id, kind=kind, actor="icbot",
            data=wording.data(pending_id=pending.id, label=pending.label),
        )  # fmt: skip

    async def _refresh_card(self, conn: Any, pending: PendingAction) -> None:
        if pending.entry_id is not None:
            await outbox_sql.enqueue_refresh(
                conn, incident_id=pending.incident_id, timeline_id=pending.entry_id,
                version=f"{pending.status}{len(pending.approvals)}",
            )  # fmt: skip

    async def fail_interrupted(self) -> int:
        """Requests a dead process left behind: approved but never started, or running with
        no heartbeat for `lease` (about a minute). Marked failed, never re-run (exactly once
        means at most once here: whether a cut-short run changed anything is for a person to
        check)."""
        now = self.uow.clock()
        results = {
            "approved": {
                "ok": False,
                "summary": "not run: the bot stopped before starting it, so nothing was done;"
                " request it again if it is still needed",
                "verification": "not run",
            },
            "running": {
                "ok": False,
                "summary": "interrupted: the bot restarted; effect unknown, check before retrying",
                "verification": "not verified",
                "interrupted": True,
            },
        }
        async with self.uow.transaction() as tx:
            stale = await actions_sql.claim_interrupted(
                tx.conn,
                approved_before=now - self.lease,
                running_before=now - self.lease,
                results=results,
                limit=100,
            )
            for pending, was in stale:
                result = results[was]
                said = {"pending_id": pending.id, "label": pending.label, "interrupted": was}
                await tx.record(
                    incident_id=pending.incident_id, kind=Kind.REMEDIATION_RESULT,
                    actor="icbot", occurred_at=now, data=wording.data(**{**said, **result}),
                )  # fmt: skip
                await self._refresh_card(tx.conn, pending)
        if stale:
            log.warning("remediation.interrupted", ids=[p.id for p, _ in stale])
        return len(stale)

    async def expire_due(self) -> int:
        """Mark requests past their expiry as expired (any replica; each once)."""
        now = self.uow.clock()
        async with self.uow.transaction() as tx:
            expired = await actions_sql.claim_expired(tx.conn, now=now, limit=100)
            for pending in expired:
                await tx.record(
                    incident_id=pending.incident_id, kind=Kind.APPROVAL_EXPIRED,
                    actor="icbot", occurred_at=now,
                    data=wording.data(pending_id=pending.id, label=pending.label),
                )  # fmt: skip
                await self._refresh_card(tx.conn, pending)
        if expired:
            metrics.approval("expired", len(expired))
        return len(expired)
