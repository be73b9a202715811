"""`/diagnose <playbook>`: run a playbook's checks concurrently and judge each one. No Slack.

Every check has its own timeout; one that fails or hangs is reported as such and never holds
back or hides the others. The report (findings, verdict, manual steps as a tickable
checklist, remediations) is one timeline entry of the incident, after a "diagnosing…" entry.
"""

from __future__ import annotations

import asyncio
import difflib
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bot.core import guard, metrics, wording
from bot.core.errors import IntegrationError, NotFound
from bot.core.logs import get_logger
from bot.core.metrics import REDACTIONS
from bot.core.models import Incident
from bot.core.numfmt import plural
from bot.core.wording import Code, Piece
from bot.domain.incidents import Incidents
from bot.domain.timeline import Kind
from bot.domain.uow import UnitOfWork
from bot.playbooks.catalogue import Catalogue, CheckRef, Playbook
from bot.playbooks.checks import CHECKS
from bot.playbooks.checks.probes import NotConfigured, Probes
from bot.store import timers as timers_sql

log = get_logger(__name__)

# How bad each band is, for the verdict (errors are not "healthy" either).
RANK = {
    "critical": 4,
    "error": 3,
    "timed out": 3,
    "warning": 2,
    "no data": 1,
    "normal": 0,
    "info": 0,
}


@dataclass(frozen=True)
class Finding:
    id: str
    title: str
    check: str
    band: str  # normal | warning | critical | info | no data | error | timed out
    value: float | None
    unit: str
    detail: str
    threshold: str | None
    elapsed_ms: int


@dataclass(frozen=True)
class Report:
    playbook: str
    title: str
    findings: list[Finding]
    verdict: str
    worst: str
    elapsed_ms: int

    def data(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook,
            "title": self.title,
            "verdict": self.verdict,
            "worst": self.worst,
            "elapsed_ms": self.elapsed_ms,
            "findings": [asdict(f) for f in self.findings],
        }


async def run_check(ref: CheckRef, probes: Probes) -> Finding:
    spec = CHECKS[ref.check]
    timeout = ref.timeout or 5.0
    started = time.perf_counter()

    def finding(band: str, detail: str, value: float | None = None, unit: str = "") -> Finding:
        threshold = ref.thresholds.describe() if ref.thresholds else None
        # A log line or an actuator value may hold a card number or a secret: the guard runs
        # here, before the finding is stored, posted or shown (bot/core/guard.py).
        guarded = guard.redact(detail)
        for kind in guarded.kinds:
            REDACTIONS.labels(kind=kind.value).inc()
        if guarded.changed:
            log.warning("diagnose.redacted", check=ref.check, id=ref.id, kinds=guarded.kinds)
        return Finding(
            id=ref.id, title=ref.title, check=ref.check, band=band, value=value, unit=unit,
            detail=guarded.text, threshold=threshold,
            elapsed_ms=int((time.perf_counter() - started) * 1000),
        )  # fmt: skip

    try:
        reading = await asyncio.wait_for(spec.run(ref.parsed_params(), probes), timeout)
    except TimeoutError:
        return finding("timed out", f"no answer within {timeout:g}s")
    except NotConfigured as exc:
        return finding("error", str(exc))
    except IntegrationError as exc:
        metrics.integration_error(exc.service)
        return finding("error", str(exc))
    except Exception as exc:  # a check's bug must not hide the other findings
        log.exception("diagnose.check_failed", check=ref.check, id=ref.id)
        return finding("error", f"the check failed ({type(exc).__name__})")
    if reading.value is None:
        return finding("no data", reading.detail, None, reading.unit)
    band = ref.thresholds.band(reading.value) if ref.thresholds else "info"
    return finding(band, reading.detail, reading.value, reading.unit)


def verdict(findings: Sequence[Finding]) -> tuple[str, str]:
    """(worst band, one line a tired human can act on)."""
    if not findings:
        return "info", "No automated checks: follow the steps below."
    worst = max(findings, key=lambda f: RANK.get(f.band, 0)).band
    critical = [f.title for f in findings if f.band == "critical"]
    warning = [f.title for f in findings if f.band == "warning"]
    broken = [f.title for f in findings if f.band in ("error", "timed out")]
    parts = []
    if critical:
        parts.append("CRITICAL: " + ", ".join(critical))
    if warning:
        parts.append("warning: " + ", ".join(warning))
    if broken:
        parts.append(f"{plural(len(broken), 'check')} could not run ({', '.join(broken)})")
    if not parts:
        return worst, "All checks are within normal ranges."
    return worst, "; ".join(parts) + "."


async def run_playbook(playbook: Playbook, probes: Probes) -> Report:
    started = time.perf_counter()
    findings = list(await asyncio.gather(*(run_check(ref, probes) for ref in playbook.checks)))
    worst, line = verdict(findings)
    return Report(
        playbook=playbook.name,
        title=playbook.title,
        findings=findings,
        verdict=line,
        worst=worst,
        elapsed_ms=int((time.perf_counter() - started) * 1000),
    )


class Diagnoser:
    def __init__(
        self, catalogue: Catalogue, probes: Probes, incidents: Incidents, *, uow: UnitOfWork
    ) -> None:
        self.uow = uow
        self.catalogue = catalogue
        self.probes = probes
        self.incidents = incidents

    def playbook(self, name: str) -> Playbook:
        found = self.catalogue.find(name)
        if found is None:
            known = ", ".join(sorted(self.catalogue.playbooks))
            close = difflib.get_close_matches(name.lower(), self.catalogue.playbooks, n=1)
            hint: list[Piece] = [" Did you mean ", Code(close[0]), "?"] if close else []
            raise NotFound(
                "There is no playbook ", Code(name[:40]), ".", *hint, f" Playbooks: {known}"
            )
        return found

    async def incident(self, ref: int | None) -> Incident | None:
        """The incident to report into: named, the only open one, none (ask if several)."""
        if ref is not None:
            return await self.incidents.get(ref, allow_resolved=False)
        open_ones = [i for i in await self.incidents.list_recent() if not i.is_resolved]
        if not open_ones:
            return None
        return await self.incidents.get(None, allow_resolved=False)

    async def diagnose(
        self, playbook: Playbook, incident: Incident | None, *, actor: str
    ) -> Report:
        if incident is not None:
            await self.incidents.record_event(
                incident.id, kind=Kind.DIAGNOSIS_STARTED, actor=actor,
                data=wording.data(playbook=playbook.name, title=playbook.title),
            )  # fmt: skip
        report = await run_playbook(playbook, self.probes)
        log.info("diagnose.done", playbook=playbook.name, worst=report.worst, ms=report.elapsed_ms)
        if incident is not None:
            await self._record_report(incident, playbook, report, actor=actor)
        return report

    async def _record_report(
        self, incident: Incident, playbook: Playbook, report: Report, *, actor: str
    ) -> None:
        async with self.uow.transaction() as tx:
            conn, now = tx.conn, tx.now
            checklist_id = None
            if playbook.steps:
                checklist_id = await timers_sql.add_checklist(
                    conn, incident_id=incident.id, key=f"diagnose:{playbook.name}",
                    title=f"{playbook.title}: manual steps", items=playbook.steps, now=now,
                )  # fmt: skip
            data = wording.data(
                **report.data(),
                steps=playbook.steps,
                reminder=checklist_id,
                remediations=[
                    {"action": r.action, "label": r.label, "when": r.when}
                    for r in playbook.remediations
                ],
                escalation=playbook.escalation,
            )
            entry = await tx.record(
                incident_id=incident.id, kind=Kind.DIAGNOSIS, actor=actor, data=data
            )
            if checklist_id is not None:
                await timers_sql.set_checklist_entry(conn, checklist_id, entry.id)
