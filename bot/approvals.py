"""The approval policy (`approvals.yml`) and the approval flow. No Slack here.

A remediation is *proposed* (stored as a pending action with a dry-run preview, written to the
timeline whose entry becomes the approval card), *decided* by clicks — each one conditional
UPDATE, so a double click, two replicas or a Slack retry never count twice and nothing runs
late — and *run* exactly once by whoever's approval completed it, then verified. Every step is
in the hash-chained timeline.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot import metrics, timeline
from bot.errors import ConfigError, Conflict, NotFound, UserError
from bot.incidents import Incidents
from bot.logs import get_logger
from bot.models import Incident, normalise_role
from bot.policy import Duration
from bot.remediation import REMEDIATIONS
from bot.remediation.runner import Remediator
from bot.store import actions as actions_sql
from bot.store import outbox as outbox_sql
from bot.store.actions import PendingAction
from bot.timeline import Kind

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
    try:
        return ApprovalsFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


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


async def may_approve(
    approvers: list[str],
    user: str,
    incident: Incident,
    members: GroupMembers,
    oncall: OnCallMembers = _nobody,
) -> bool:
    for rule in approvers:
        if rule == "anyone":
            return True
        if rule == "incident_commander" and incident.commander == user:
            return True
        if rule == "oncall" and user in await oncall():
            return True
        kind, _, rest = rule.partition(":")
        if kind == "role" and incident.roles.get(rest) == user:
            return True
        if kind == "user" and rest == user:
            return True
        if kind == "group" and user in await members(rest):
            return True
    return False


def describe(approvers: list[str]) -> str:
    words = {
        "anyone": "anyone",
        "incident_commander": "the incident commander",
        "oncall": "whoever is on call in PagerDuty",
    }
    out = []
    for rule in approvers:
        kind, _, rest = rule.partition(":")
        out.append(
            words.get(rule)
            or {"role": f"the {rest}", "user": f"<@{rest}>", "group": f"<!subteam^{rest}>"}[kind]
        )
    return " or ".join(out)


@dataclass(frozen=True)
class Decision:
    action: PendingAction
    message: str  # for the person who clicked
    run: bool  # this click completed the approvals: the caller runs the action now


class Approvals:
    def __init__(
        self,
        incidents: Incidents,
        policy: ApprovalsFile,
        remediator: Remediator,
        *,
        members: GroupMembers,
        oncall: OnCallMembers = _nobody,
        run_limit: timedelta = timedelta(minutes=10),
        start_grace: timedelta = timedelta(minutes=2),
    ) -> None:
        # A run that started longer than `run_limit` ago, or an approved request not started
        # within `start_grace`, was cut short by a dead process (see `fail_interrupted`).
        self.run_limit = run_limit
        self.start_grace = start_grace
        self.oncall = oncall
        self.incidents = incidents
        self.pool = incidents.pool
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
            raise NotFound(f"There is no remediation `{action}`.")
        try:
            parsed = spec.params.model_validate(params)
        except ValidationError as exc:
            problems = "; ".join(e["msg"] for e in exc.errors())
            raise UserError(f"Bad parameters for `{action}`: {problems}") from exc
        incident = await self.incidents.get(ref, allow_resolved=False)
        preview = await self.remediator.preview(action, parsed)  # refuses unknown targets
        need = requirement(self.policy, action, parsed.model_dump())
        now = self.incidents.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            pending = await actions_sql.insert(
                conn,
                incident_id=incident.id,
                action=action,
                label=label,
                params=parsed.model_dump(mode="json"),
                preview={"lines": preview.lines, **preview.data},
                requested_by=actor,
                requested_at=now,
                expires_at=now + timedelta(seconds=need.expires_after),
                required=need.required,
                approvers=need.approvers,
            )
            who = describe(need.approvers)
            entry = await timeline.record(
                conn,
                incident_id=incident.id,
                kind=Kind.APPROVAL_REQUESTED,
                actor=actor,
                occurred_at=now,
                text=(
                    f"<@{actor}> requests *{label}* (`{action}`), needing {need.required}"
                    f" approval(s) from {who}: " + "; ".join(preview.lines)
                ),
                data={"pending_id": pending.id, "action": action, "params": pending.params},
            )
            await actions_sql.set_entry(conn, pending.id, entry.id)
        self.incidents.on_change()
        log.info("remediation.requested", pending_id=pending.id, action=action, actor=actor)
        return pending

    async def get(self, pending_id: int) -> PendingAction:
        async with self.pool.acquire() as conn:
            pending = await actions_sql.get(conn, pending_id)
        if pending is None:
            raise NotFound("That request no longer exists.")
        return pending

    async def decide(self, pending_id: int, *, user: str, approve: bool) -> Decision:
        pending = await self.get(pending_id)
        incident = await self.incidents.get(pending.incident_id)
        now = self.incidents.clock()
        refusal = await self._refusal(pending, incident, user=user, now=now)
        if refusal:
            metrics.approval("refused")
            raise Conflict(refusal)
        async with self.pool.acquire() as conn, conn.transaction():
            if approve:
                after = await actions_sql.add_approval(conn, pending_id, user=user, now=now)
            else:
                after = await actions_sql.deny(conn, pending_id, user=user, now=now)
            if after is None:  # somebody else's click won the race
                latest = await actions_sql.get(conn, pending_id)
                assert latest is not None
                metrics.approval("refused")
                raise Conflict(self._why_not(latest, user=user, now=now))
            if not approve:
                text = f"<@{user}> denied *{after.label}*; nothing was done."
                kind = Kind.APPROVAL_DENIED
            elif after.status == "approved":
                text = f"<@{user}> approved *{after.label}*; running it now."
                kind = Kind.APPROVED
            else:
                text = (
                    f"<@{user}> approved *{after.label}* ({len(after.approvals)} of"
                    f" {after.required}); waiting for another approver."
                )
                kind = Kind.APPROVAL_GIVEN
            await timeline.record(
                conn, incident_id=after.incident_id, kind=kind, actor=user, occurred_at=now,
                text=text, data={"pending_id": after.id},
            )  # fmt: skip
            await self._refresh_card(conn, after)
        self.incidents.on_change()
        log.info("remediation.decided", pending_id=pending_id, by=user, status=after.status)
        metrics.approval(
            "denied" if not approve else "approved" if after.status == "approved" else "partial"
        )
        return Decision(action=after, message=text, run=approve and after.status == "approved")

    async def _refusal(
        self, pending: PendingAction, incident: Incident, *, user: str, now: Any
    ) -> str | None:
        if pending.status != "pending" or pending.expires_at <= now:
            return self._why_not(pending, user=user, now=now)
        if user == pending.requested_by:
            return "You asked for this; someone else has to approve (or deny) it."
        if user in pending.approvals:
            return "You already approved this; it needs another person."
        if not await may_approve(pending.approvers, user, incident, self.members, self.oncall):
            return f"Only {describe(pending.approvers)} may decide this request."
        return None

    @staticmethod
    def _why_not(pending: PendingAction, *, user: str, now: Any) -> str:
        if pending.status == "pending" and pending.expires_at <= now:
            return "This request has expired; ask again if it is still needed."
        if pending.status == "pending" and user in pending.approvals:
            return "You already approved this; it needs another person."
        if pending.status == "pending":
            return "You asked for this; someone else has to approve (or deny) it."
        by = f" by <@{pending.decided_by}>" if pending.decided_by else ""
        return f"This request was already {pending.status}{by}."

    async def run(self, pending_id: int) -> PendingAction:
        """Carry out an approved request, once: only the approved -> running step may start it."""
        async with self.pool.acquire() as conn:
            if not await actions_sql.start_run(conn, pending_id, now=self.incidents.clock()):
                raise Conflict("This request is not waiting to run.")
        pending = await self.get(pending_id)
        spec = REMEDIATIONS[pending.action]
        params = spec.params.model_validate(pending.params)
        await self._note(pending, Kind.REMEDIATION_STARTED, f"Running *{pending.label}*…")
        started = time.monotonic()
        try:
            outcome = await self.remediator.run(pending.action, params, pending.preview)
            ok, summary, verification = outcome.ok, outcome.summary, outcome.verification
        except Exception as exc:
            log.exception("remediation.failed", pending_id=pending_id)
            ok, summary, verification = False, f"failed: {exc}", "not verified"
        status = "succeeded" if ok else "failed"
        metrics.remediation_run(pending.action, ok=ok, seconds=time.monotonic() - started)
        result = {"ok": ok, "summary": summary, "verification": verification}
        async with self.pool.acquire() as conn, conn.transaction():
            late = not await actions_sql.transition(
                conn, pending_id, from_status="running", to_status=status, result=result
            )
            if late:
                # The sweeper took this run for one a dead process left (it ran past the run
                # limit): the real outcome replaces its guess, and the thread says so.
                await actions_sql.finish_interrupted(conn, pending_id, status=status, result=result)
            mark = ":white_check_mark:" if ok else ":x:"
            after = " (it finished after it had been reported interrupted)" if late else ""
            await timeline.record(
                conn, incident_id=pending.incident_id, kind=Kind.REMEDIATION_RESULT,
                actor="icbot", occurred_at=self.incidents.clock(),
                text=f"{mark} {pending.label}: {summary}. Verification: {verification}{after}",
                data={"pending_id": pending_id, **result, **({"late": True} if late else {})},
            )  # fmt: skip
            latest = await actions_sql.get(conn, pending_id)
            assert latest is not None
            await self._refresh_card(conn, latest)
        self.incidents.on_change()
        log.info("remediation.finished", pending_id=pending_id, status=status)
        return latest

    async def _note(self, pending: PendingAction, kind: str, text: str) -> None:
        await self.incidents.record_event(
            pending.incident_id, kind=kind, actor="icbot", text=text,
            data={"pending_id": pending.id},
        )  # fmt: skip

    async def _refresh_card(self, conn: Any, pending: PendingAction) -> None:
        if pending.entry_id is not None:
            await outbox_sql.enqueue_refresh(
                conn, incident_id=pending.incident_id, timeline_id=pending.entry_id,
                version=f"{pending.status}{len(pending.approvals)}",
            )  # fmt: skip

    async def fail_interrupted(self) -> int:
        """Requests a dead process left behind: approved but never started, or running for
        longer than any run takes. Marked failed, never re-run (exactly once means at most
        once here: whether a cut-short run changed anything is for a person to check)."""
        now = self.incidents.clock()
        results = {
            "approved": {
                "ok": False,
                "summary": "not run: the bot stopped before starting it, so nothing was done;"
                " request it again if it is still needed",
                "verification": "not run",
            },
            "running": {
                "ok": False,
                "summary": "interrupted: the bot stopped while it ran, so its effect is unknown;"
                " check the target before requesting it again",
                "verification": "not verified",
                "interrupted": True,
            },
        }
        async with self.pool.acquire() as conn, conn.transaction():
            stale = await actions_sql.claim_interrupted(
                conn,
                approved_before=now - self.start_grace,
                running_before=now - self.run_limit,
                results=results,
                limit=100,
            )
            for pending, was in stale:
                result = results[was]
                await timeline.record(
                    conn, incident_id=pending.incident_id, kind=Kind.REMEDIATION_RESULT,
                    actor="icbot", occurred_at=now,
                    text=f":x: {pending.label}: {result['summary']}.",
                    data={"pending_id": pending.id, "interrupted": was, **result},
                )  # fmt: skip
                await self._refresh_card(conn, pending)
        if stale:
            self.incidents.on_change()
            log.warning("remediation.interrupted", ids=[p.id for p, _ in stale])
        return len(stale)

    async def expire_due(self) -> int:
        """Mark requests past their expiry as expired (any replica; each once)."""
        now = self.incidents.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            expired = await actions_sql.claim_expired(conn, now=now, limit=100)
            for pending in expired:
                await timeline.record(
                    conn, incident_id=pending.incident_id, kind=Kind.APPROVAL_EXPIRED,
                    actor="icbot", occurred_at=now,
                    text=f"*{pending.label}* expired without enough approvals; nothing was done.",
                    data={"pending_id": pending.id},
                )  # fmt: skip
                await self._refresh_card(conn, pending)
        if expired:
            self.incidents.on_change()
            metrics.approval("expired", len(expired))
        return len(expired)
