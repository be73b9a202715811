"""Alert intake: alerts read from Kafka become incidents, once each. No Kafka or Slack here.

An alert is a JSON object (`parse_alert`)::

    {"source": "prometheus", "alert_name": "HighErrorRate", "service": "payments",
     "severity": "critical", "summary": "5xx above 5% for 5m", "labels": {"env": "prod"},
     "fingerprint": "4f1c0e", "status": "firing"}

`service`, `fingerprint`, `alert_name` (or `alertname`) and `status` (`firing` | `resolved`)
are required. Anything unreadable goes to the dead-letter topic with the reason, and the
consumer goes on.

Grouping. Alerts with the same (service, fingerprint) in the same tumbling window (the record's
Kafka timestamp rounded down to `window`) are one group, a row of `alert_groups`:

* the first firing alert of a group attaches it to the open incident of its service (an
  incident that alerts of that service were attached to), or declares one with the severity
  mapped from the alert's (`map_severity`), as the system actor ``alerts`` (nobody is made
  incident commander: the status prompts mention the channel until someone is assigned);
* every firing alert adds one to the incident's alert counter, which the card shows; repeats
  post nothing. A group of a fingerprint that was already firing on the same incident (the
  storm went on into the next window) posts nothing either; a new fingerprint, or one that
  fires again after it resolved, is one `alert_firing` timeline entry (one per incident and
  batch, listing them);
* a resolved alert resolves the newest group of its (service, fingerprint), once: one
  `alert_resolved` entry (again one per incident and batch). A resolve older than the group's
  last firing alert, a repeat, or one with no group is only counted.

After an incident is resolved, its groups stay attached to it until their window ends; the
first firing alert in a later window declares a new incident.

Exactly-once effect. A batch (``getmany``) is stored in one transaction that also advances the
intake's fence, the next offset per (consumer group, partition) in `kafka_offsets`; the Kafka
offsets are committed only after it. A batch redelivered after a crash between the two finds
its records behind the fence and skips them, so nothing is counted or declared twice. The
unique (service, fingerprint, window_start) of a group is the second line: even replayed under
another consumer group (whose fence is its own), an alert finds its group and its incident and
declares nothing, though it is counted again. Dead
letters are sent before that transaction, so they are at least once (a crash in between sends
them again).

A batch whose records the database refuses as data (a value PostgreSQL cannot store) is
stored again record by record, and a record refused on its own goes to the dead-letter topic;
any other failure (database or Kafka down) rewinds the consumer to the batch's first offsets
and retries with back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import asyncpg
from prometheus_client import Counter, Gauge, Histogram

from bot.core import wording
from bot.core.errors import UserError
from bot.core.logs import get_logger
from bot.core.metrics import REGISTRY
from bot.delivery.worker import Worker
from bot.domain.incidents import Incidents
from bot.domain.policy import SeverityPolicy
from bot.domain.ports import AlertSource, DeadLetters, RawRecord, TopicPartition
from bot.domain.timeline import Kind
from bot.domain.uow import Tx, UnitOfWork
from bot.store import Conn
from bot.store import alerts as alerts_sql
from bot.store import incidents as incidents_sql
from bot.store import outbox as outbox_sql
from bot.store import timeline as timeline_sql
from bot.store.alerts import GroupRow

log = get_logger(__name__)

ACTOR = "alerts"  # who declares and records for the intake (shown as "Alerting")
MAX_MESSAGE_BYTES = 64 * 1024
MAX_LABELS = 64
TITLE_LIMIT = 150


# The alert's severity word -> a key of severities.yml; an unknown word maps to the default.
SEVERITY_WORDS: Mapping[str, str] = {
    **dict.fromkeys(("critical", "crit", "fatal", "emergency", "page", "p1", "sev1"), "sev1"),
    **dict.fromkeys(("high", "error", "err", "major", "p2", "sev2"), "sev2"),
    **dict.fromkeys(("warning", "warn", "medium", "minor", "p3", "sev3"), "sev3"),
    **dict.fromkeys(("info", "informational", "low", "none", "p4", "sev4"), "sev4"),
}

# -- metrics (the shared registry: served on /metrics) ---------------------------------------

CONSUMER_LAG = Gauge(
    "icbot_kafka_consumer_lag",
    "Alerts not yet read by this replica's intake consumer, per partition it owns"
    " (high watermark minus next offset); sum over replicas.",
    ["topic", "partition"],
    registry=REGISTRY,
)
ALERTS = Counter(
    "icbot_alerts_total",
    "Alert records read from Kafka, by what became of them.",
    ["outcome"],
    registry=REGISTRY,
)
ALERT_BATCH_SECONDS = Histogram(
    "icbot_alert_batch_seconds",
    "Time to store one batch of alerts (parse, dead letters, one transaction).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
OUTCOMES = ("declared", "attached", "repeat", "resolved", "ignored", "duplicate", "dead_letter")
for _outcome in OUTCOMES:
    ALERTS.labels(_outcome)


# -- the alert ---------------------------------------------------------------------------------


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Alert:
    source: str
    alert_name: str
    service: str
    severity: str  # the alert's own word, lower case ("" if none)
    summary: str
    labels: dict[str, str]
    fingerprint: str
    status: AlertStatus


class MalformedAlert(ValueError):
    """The record is not an alert; `reason` says why (it goes with the dead letter)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _storable(text: str, what: str) -> None:
    """PostgreSQL takes neither NUL characters nor lone surrogates (JSON `\\u0000`, `\\ud800`)."""
    if "\x00" in text:
        raise MalformedAlert(f"{what} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedAlert(f"{what} is not valid Unicode (a lone surrogate)") from None


def _text(obj: Mapping[str, Any], *names: str, limit: int, default: str | None = None) -> str:
    for name in names:
        if name in obj and obj[name] is not None:
            value = obj[name]
            break
    else:
        if default is not None:
            return default
        raise MalformedAlert(f"missing field {names[0]!r}")
    if not isinstance(value, str):
        raise MalformedAlert(f"field {names[0]!r} must be a string, not {type(value).__name__}")
    value = value.strip()
    if not value:
        if default is not None:
            return default
        raise MalformedAlert(f"field {names[0]!r} is empty")
    if len(value) > limit:
        raise MalformedAlert(f"field {names[0]!r} is {len(value)} characters; the limit is {limit}")
    _storable(value, f"field {names[0]!r}")
    return value


def _labels(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise MalformedAlert(f"field 'labels' must be an object, not {type(raw).__name__}")
    if len(raw) > MAX_LABELS:
        raise MalformedAlert(f"{len(raw)} labels; the limit is {MAX_LABELS}")
    labels: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str | int | float | bool):
            raise MalformedAlert(f"label {key!r} must be a string, number or boolean")
        text = str(value)
        if len(key) > 200 or len(text) > 1000:
            raise MalformedAlert(f"label {key[:50]!r} is too long (200 / 1000 characters)")
        _storable(key, "a label name")
        _storable(text, f"label {key[:50]!r}")
        labels[key] = text
    return labels


def parse_alert(value: bytes | None) -> Alert:
    """Read one record's value; raises `MalformedAlert` with the reason."""
    if value is None:
        raise MalformedAlert("empty record (no value)")
    if len(value) > MAX_MESSAGE_BYTES:
        raise MalformedAlert(f"record is {len(value)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    try:
        obj = json.loads(value.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MalformedAlert(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise MalformedAlert(
            f"not JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(obj, dict):
        raise MalformedAlert(f"not a JSON object but {type(obj).__name__}")
    status_word = _text(obj, "status", limit=20).lower()
    try:
        status = AlertStatus(status_word)
    except ValueError:
        raise MalformedAlert(f"status {status_word!r} is neither 'firing' nor 'resolved'") from None
    name = _text(obj, "alert_name", "alertname", limit=200)
    return Alert(
        source=_text(obj, "source", limit=100, default="unknown"),
        alert_name=name,
        service=_text(obj, "service", limit=100),
        severity=_text(obj, "severity", limit=50, default="").lower(),
        summary=_text(obj, "summary", limit=1000, default=name),
        labels=_labels(obj.get("labels")),
        fingerprint=_text(obj, "fingerprint", limit=200),
        status=status,
    )


def _rank(severity: str) -> int:
    """sev1 -> 1 (the most severe) ... sev4 -> 4."""
    return int(severity.removeprefix("sev"))


def map_severity(word: str, policy: SeverityPolicy) -> str:
    """The policy severity for an alert's word (`critical` -> sev1); unknown -> the default."""
    mapped = SEVERITY_WORDS.get(word.strip().lower())
    return mapped if mapped is not None and mapped in policy.levels else policy.default


def incident_title(alert: Alert) -> str:
    title = f"{alert.service}: {alert.alert_name}"
    if alert.summary != alert.alert_name:
        title += f" — {alert.summary}"
    title = " ".join(title.split())  # kept as the alert says; made inert when posted
    return title if len(title) <= TITLE_LIMIT else title[: TITLE_LIMIT - 1] + "…"


# -- what the intake talks to ----------------------------------------------------------------


# partition -> (the group's committed offset in Kafka or None, the log-end offset)
ResumeLookup = Callable[
    [Mapping[TopicPartition, tuple[int | None, int]]], Awaitable[dict[TopicPartition, int]]
]


def resume_positions(pool: asyncpg.Pool, group_id: str) -> ResumeLookup:
    """For the consumer: where to resume each partition (newly assigned, or whose position
    fell out of the log). Given, per partition, Kafka's committed offset (None if there is
    none, or if it cannot be trusted) and the log-end offset, returns the fences to seek to.

    At the fence, normally. A fence beyond the log end while Kafka has no committed offset for
    the group means the topic is not the one the fence was written for (deleted and re-created,
    or a broker without persistent storage restarted): that fence is dropped, loudly, or every
    new alert below it would be skipped as already stored.
    """

    async def lookup(
        partitions: Mapping[TopicPartition, tuple[int | None, int]],
    ) -> dict[TopicPartition, int]:
        seek: dict[TopicPartition, int] = {}
        async with pool.acquire() as conn:
            found = await alerts_sql.fences(conn, group_id, list(partitions))
            for tp, fence in sorted(found.items()):
                committed, end = partitions[tp]
                if committed is None and fence > end:
                    log.error(
                        "alert_intake.fence_dropped", topic=tp[0], partition=tp[1],
                        fence=fence, log_end=end,
                    )  # fmt: skip
                    await alerts_sql.drop_fence(conn, group_id, tp)
                elif fence > 0:
                    seek[tp] = fence
        return seek

    return lookup


# -- planning one batch ----------------------------------------------------------------------


@dataclass(eq=False)
class _NewIncident:
    """An incident to declare at the end of the planning (its id is known after)."""

    alert: Alert
    id: int | None = None


IncidentRef = int | _NewIncident


@dataclass
class _Group:
    row: GroupRow
    incident: IncidentRef | None
    is_new: bool = False
    dirty: bool = False


@dataclass
class _Effect:
    """What one batch does to one incident."""

    firing: int = 0  # firing alerts to add to its counter
    fired: list[tuple[_Group, Alert, bool]] = field(default_factory=list)  # (group, alert, again)
    resolved: list[_Group] = field(default_factory=list)


@dataclass(frozen=True)
class _CardWatch:
    """A card refresh waiting in the outbox that a batch relied on to show its counter."""

    incident_id: int
    item_id: int
    version: int


@dataclass(frozen=True)
class BatchResult:
    stored: int  # alerts applied
    duplicates: int  # behind the fence (already stored)
    dead_letters: int
    declared: list[int]
    commit: dict[TopicPartition, int]  # next offset per partition, to commit to Kafka


def _record_time(record: RawRecord, fallback: datetime) -> datetime:
    if record.timestamp_ms < 0:
        return fallback
    return datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)


def window_start(at: datetime, window: float) -> datetime:
    seconds = math.floor(at.timestamp() / window) * window
    return datetime.fromtimestamp(seconds, UTC)


class _Planner:
    """Walks one batch's alerts in order against the stored groups (all under the locks)."""

    def __init__(
        self,
        groups: dict[tuple[str, str], GroupRow],
        open_by_service: dict[str, int],
        *,
        window: float,
    ) -> None:
        self.window = window
        # The newest group per (service, fingerprint); `touched` also keeps the ones a later
        # window of the same batch replaced there.
        self.groups = {
            key: _Group(row, row.incident_id if row.incident_open else None)
            for key, row in groups.items()
        }
        self.touched: list[_Group] = list(self.groups.values())
        self.by_service: dict[str, IncidentRef] = dict(open_by_service)
        self.effects: dict[int | _NewIncident, _Effect] = {}
        self.new_incidents: list[_NewIncident] = []
        self.outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)

    def _incident_of(self, group: _Group) -> IncidentRef | None:
        if group.incident is not None:
            return group.incident
        return group.row.incident_id  # a resolved incident: counted, not reopened

    def _open_incident(self, alert: Alert) -> tuple[IncidentRef, bool]:
        """The open incident of the alert's service, declaring one if there is none."""
        found = self.by_service.get(alert.service)
        if found is not None:
            return found, False
        new = _NewIncident(alert)
        self.new_incidents.append(new)
        self.by_service[alert.service] = new
        return new, True

    def _effect(self, incident: IncidentRef) -> _Effect:
        return self.effects.setdefault(incident, _Effect())

    def add(self, at: datetime, alert: Alert) -> None:
        key = (alert.service, alert.fingerprint)
        group = self.groups.get(key)
        if alert.status is AlertStatus.RESOLVED:
            self._resolve(group, at)
            return
        start = window_start(at, self.window)
        if group is None or start > group.row.window_start:
            previous = group
            incident, declared = self._open_incident(alert)
            group = _Group(
                GroupRow(
                    id=None, service=alert.service, fingerprint=alert.fingerprint,
                    window_start=start, incident_id=None, alert_name=alert.alert_name,
                    source=alert.source, severity=alert.severity, summary=alert.summary,
                    labels=alert.labels, status=AlertStatus.FIRING.value, firing=0, resolved=0,
                    first_at=at, last_firing_at=at, resolved_at=None,
                ),
                incident,
                is_new=True,
            )  # fmt: skip
            self.groups[key] = group
            self.touched.append(group)
            continued = (
                previous is not None
                and previous.row.status == AlertStatus.FIRING.value
                and previous.incident == incident
            )
            if not continued:
                self._effect(incident).fired.append((group, alert, False))
            self.outcomes["declared" if declared else "attached"] += 1
        elif group.row.status == AlertStatus.RESOLVED.value and (
            group.row.resolved_at is None or at >= group.row.resolved_at
        ):
            # It fires again after it resolved: back on the open incident (or a new one).
            declared = False
            if group.incident is not None:
                incident = group.incident
            else:
                incident, declared = self._open_incident(alert)
            group.incident = incident
            group.row.status = AlertStatus.FIRING.value
            group.row.resolved_at = None
            self._effect(incident).fired.append((group, alert, True))
            self.outcomes["declared" if declared else "attached"] += 1
        else:
            self.outcomes["repeat"] += 1
        group.dirty = True
        group.row.firing += 1
        group.row.last_firing_at = max(group.row.last_firing_at, at)
        target = self._incident_of(group)
        if target is not None:
            self._effect(target).firing += 1

    def _resolve(self, group: _Group | None, at: datetime) -> None:
        if group is None:
            self.outcomes["ignored"] += 1  # never saw it fire
            return
        group.dirty = True
        group.row.resolved += 1
        if group.row.status == AlertStatus.RESOLVED.value or at < group.row.last_firing_at:
            self.outcomes["ignored"] += 1  # a repeat, or older than its last firing alert
            return
        group.row.status = AlertStatus.RESOLVED.value
        group.row.resolved_at = at
        self.outcomes["resolved"] += 1
        target = self._incident_of(group)
        if target is not None:
            self._effect(target).resolved.append(group)


def _incident_id(ref: IncidentRef) -> int:
    if isinstance(ref, _NewIncident):
        assert ref.id is not None
        return ref.id
    return ref


def _alert_data(group: _Group) -> dict[str, Any]:
    row = group.row
    return {
        "group": row.id,
        "service": row.service,
        "fingerprint": row.fingerprint,
        "alert_name": row.alert_name,
        "source": row.source,
        "severity": row.severity,
        "summary": row.summary,
        "labels": row.labels,
        "window_start": row.window_start.isoformat(),
    }


# -- the intake --------------------------------------------------------------------------------


class AlertIntake(Worker):
    """Reads alert batches, stores their effect exactly once, then commits the offsets."""

    name = "alert_intake"

    def __init__(
        self,
        uow: UnitOfWork,
        incidents: Incidents,
        policy: SeverityPolicy,
        *,
        source: AlertSource,
        dead_letters: DeadLetters,
        group_id: str,
        window: timedelta = timedelta(minutes=5),
        batch: int = 1000,
        poll_timeout: float = 0.5,
        after_store: Callable[[BatchResult], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(poll_interval=0.0)
        self.uow = uow
        self.incidents = incidents
        self.policy = policy
        self.source = source
        self.dead_letters = dead_letters
        self.group_id = group_id
        self.window = window.total_seconds()
        if self.window <= 0:
            raise ValueError("the alert window must be positive")
        self.batch = batch
        self.poll_timeout = poll_timeout
        self.after_store = after_store  # tests: runs between the store and the offset commit
        self._lag_series: set[TopicPartition] = set()
        self._uncommitted: dict[TopicPartition, int] = {}
        self._commit_failures = 0

    async def run_round(self) -> int:
        """One fetch (it waits up to `poll_timeout` for records), so never idle in between."""
        await self.process_once()
        return 1

    async def process_once(self) -> BatchResult | None:
        """Fetch one batch, store it, commit its offsets; None if nothing came."""
        records = await self.source.fetch(max_records=self.batch, timeout=self.poll_timeout)
        if not records:
            if self._uncommitted:
                await self._commit({})
            self._export_lag()
            return None
        try:
            result = await self.handle(records)
        except BaseException:
            # Read the same records again next round (the fence skips what was stored).
            first: dict[TopicPartition, int] = {}
            for record in records:
                first[record.tp] = min(first.get(record.tp, record.offset), record.offset)
            with contextlib.suppress(Exception):
                await self.source.rewind(first)
            raise
        if self.after_store is not None:
            await self.after_store(result)
        await self._commit(result.commit)
        self._export_lag()
        return result

    async def _commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit to Kafka, with what an earlier failed commit left (tried a few times more).

        A failed commit only costs a redelivery that the fence skips (a rebalance makes the
        commit of the generation before fail), so it is logged, not raised.
        """
        for tp, offset in offsets.items():
            self._uncommitted[tp] = max(self._uncommitted.get(tp, 0), offset)
        try:
            await self.source.commit(self._uncommitted)
        except Exception as exc:
            self._commit_failures += 1
            log.warning(
                f"{self.name}.commit_failed", error=str(exc), failures=self._commit_failures
            )
            if self._commit_failures < 3:
                return
        self._uncommitted.clear()
        self._commit_failures = 0

    async def handle(self, records: Sequence[RawRecord]) -> BatchResult:
        """Store one batch (dead letters first); returns the offsets to commit."""
        started = time.perf_counter()
        commit: dict[TopicPartition, int] = {}
        for record in records:
            commit[record.tp] = max(commit.get(record.tp, 0), record.offset + 1)
        async with self.uow.connection() as conn:
            fence = await alerts_sql.fences(conn, self.group_id, list(commit))
        fresh = [r for r in records if r.offset >= fence.get(r.tp, 0)]
        # A redelivered batch must not move the committed offset back behind the fence.
        commit = {tp: max(end, fence.get(tp, 0)) for tp, end in commit.items()}
        good: list[tuple[RawRecord, Alert]] = []
        malformed: list[tuple[RawRecord, str]] = []
        for record in fresh:
            try:
                good.append((record, parse_alert(record.value)))
            except MalformedAlert as exc:
                malformed.append((record, exc.reason))
        for record, reason in malformed:
            log.warning(
                f"{self.name}.dead_letter", topic=record.topic, partition=record.partition,
                offset=record.offset, reason=reason,
            )  # fmt: skip
        # Sent (and acknowledged) before the fence moves past them: at least once.
        await asyncio.gather(*(self.dead_letters.dead_letter(r, why) for r, why in malformed))
        bad = len(malformed)
        try:
            stored, declared, duplicates = await self._store(good, commit)
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, UserError) as exc:
            log.warning(f"{self.name}.batch_refused", error=str(exc), records=len(good))
            stored, declared, duplicates, refused = await self._store_one_by_one(good, commit)
            bad += refused
        duplicates += len(records) - len(fresh)
        ALERTS.labels("duplicate").inc(duplicates)
        ALERTS.labels("dead_letter").inc(bad)
        ALERT_BATCH_SECONDS.observe(time.perf_counter() - started)
        return BatchResult(
            stored=stored, duplicates=duplicates, dead_letters=bad, declared=declared,
            commit=commit,
        )  # fmt: skip

    async def _store(
        self, good: Sequence[tuple[RawRecord, Alert]], commit: Mapping[TopicPartition, int]
    ) -> tuple[int, list[int], int]:
        """One transaction: the fence, the groups, the incidents. (stored, declared, skipped)"""
        async with self.uow.transaction() as tx:
            fence = await alerts_sql.lock_fences(tx.conn, self.group_id, list(commit))
            todo = [(r, a) for r, a in good if r.offset >= fence[r.tp]]
            declared, outcomes, cards = await self._apply(tx, todo) if todo else ([], {}, [])
            await alerts_sql.advance_fences(tx.conn, self.group_id, commit, now=tx.now)
        async with self.uow.transaction() as tx:  # kicks the outbox if it queued a card
            await self._recheck_cards(tx.conn, cards)
        for outcome, count in outcomes.items():
            if count:
                ALERTS.labels(outcome).inc(count)
        return len(todo), declared, len(good) - len(todo)

    async def _store_one_by_one(
        self, good: Sequence[tuple[RawRecord, Alert]], commit: Mapping[TopicPartition, int]
    ) -> tuple[int, list[int], int, int]:
        stored, skipped, refused = 0, 0, 0
        declared: list[int] = []
        for record, alert in good:
            try:
                n, ids, dup = await self._store([(record, alert)], {record.tp: record.offset + 1})
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, UserError) as e:
                await self.dead_letters.dead_letter(record, f"refused by the database: {e}")
                refused += 1
                continue
            stored, skipped = stored + n, skipped + dup
            declared += ids
        # Everything up to the batch's end is now stored or dead-lettered.
        async with self.uow.transaction() as tx:
            await alerts_sql.lock_fences(tx.conn, self.group_id, list(commit))
            await alerts_sql.advance_fences(tx.conn, self.group_id, commit, now=tx.now)
        return stored, declared, skipped, refused

    async def _apply(
        self, tx: Tx, todo: Sequence[tuple[RawRecord, Alert]]
    ) -> tuple[list[int], dict[str, int], list[_CardWatch]]:
        conn, now = tx.conn, tx.now
        await alerts_sql.lock_services(conn, {a.service for _, a in todo})
        stored = await alerts_sql.latest_groups(conn, {(a.service, a.fingerprint) for _, a in todo})
        open_by_service = await alerts_sql.open_incidents(conn, {a.service for _, a in todo})
        planner = _Planner(stored, open_by_service, window=self.window)
        timed = sorted(
            ((_record_time(r, now), r, a) for r, a in todo),
            key=lambda t: (t[0], t[1].topic, t[1].partition, t[1].offset),
        )
        for at, _record, alert in timed:
            planner.add(at, alert)
        for new in planner.new_incidents:
            change = await self.incidents.declare_in(
                tx,
                title=incident_title(new.alert),
                severity=map_severity(new.alert.severity, self.policy),
                actor=ACTOR,
                commander=False,
            )
            new.id = change.incident.id
            log.info(
                f"{self.name}.declared", incident=new.id, service=new.alert.service,
                alert=new.alert.alert_name, fingerprint=new.alert.fingerprint,
            )  # fmt: skip
        inserts: list[GroupRow] = []
        updates: list[GroupRow] = []
        for group in planner.touched:
            if not group.dirty:
                continue
            if group.incident is not None:
                group.row.incident_id = _incident_id(group.incident)
            (inserts if group.is_new else updates).append(group.row)
        await alerts_sql.insert_groups(conn, inserts)
        await alerts_sql.update_groups(conn, updates)
        effects = sorted(
            ((_incident_id(ref), effect) for ref, effect in planner.effects.items()),
            key=lambda item: item[0],
        )
        cards: list[_CardWatch] = []
        for incident_id, effect in effects:
            watch = await self._record(tx, incident_id, effect)
            if watch is not None:
                cards.append(watch)
        return [_incident_id(new) for new in planner.new_incidents], planner.outcomes, cards

    async def _raise_severity(self, tx: Tx, incident_id: int, effect: _Effect) -> None:
        """A more severe alert joining an open incident raises its severity, unless a person
        chose the severity (declared it, or changed it): theirs stands, and the alert's entry
        in the thread already says how severe the alert is."""
        worst = min(effect.fired, key=lambda f: _rank(map_severity(f[1].severity, self.policy)))
        wanted = map_severity(worst[1].severity, self.policy)
        conn = tx.conn
        incident = await incidents_sql.get(conn, incident_id)
        if incident is None or incident.is_resolved:
            return
        if _rank(wanted) >= _rank(incident.severity):
            return
        # Who chose the severity it has: the last change, or else whoever declared it.
        chosen = await timeline_sql.last_of_kind(
            conn, incident_id, Kind.SEVERITY
        ) or await timeline_sql.last_of_kind(conn, incident_id, Kind.DECLARED)
        if chosen is not None and chosen.actor != ACTOR:
            return
        await self.incidents.change_severity_in(
            tx, incident, wanted, actor=ACTOR,
            alert={"name": worst[0].row.alert_name, "service": worst[0].row.service,
                   "severity": worst[1].severity or "none"},
        )  # fmt: skip

    async def _record(self, tx: Tx, incident_id: int, effect: _Effect) -> _CardWatch | None:
        """The timeline entries and the counter of one incident for one batch."""
        conn, now = tx.conn, tx.now
        if effect.fired:
            alert = effect.fired[0][1]
            fired = {  # the one alert that fired, as it came (the group keeps its first words)
                "source": alert.source, "severity": alert.severity or "none",
                "mapped": map_severity(alert.severity, self.policy), "summary": alert.summary,
            }  # fmt: skip
            await tx.record(
                incident_id=incident_id, kind=Kind.ALERT_FIRING, actor=ACTOR,
                data=wording.data(
                    alerts=[{**_alert_data(g), "again": again}
                            for g, _, again in effect.fired[:50]],
                    count=len(effect.fired),
                    **({"fired": fired} if len(effect.fired) == 1 else {}),
                ),
            )  # fmt: skip
            await self._raise_severity(tx, incident_id, effect)
        if effect.resolved:
            await tx.record(
                incident_id=incident_id, kind=Kind.ALERT_RESOLVED, actor=ACTOR,
                data=wording.data(
                    alerts=[{**_alert_data(g), "firing": g.row.firing}
                            for g in effect.resolved[:50]],
                    count=len(effect.resolved),
                ),
            )  # fmt: skip
        if not effect.firing:
            return None
        # The counter changed the card. A card refresh renders the incident as it is when it
        # is sent, so one still waiting will show this too: a storm queues one per card post,
        # not one per batch. Unless the outbox takes it before this commits (see below).
        version = await alerts_sql.add_alerts(conn, incident_id, effect.firing, now=now)
        waiting = await alerts_sql.waiting_card(conn, incident_id)
        if waiting is None:
            await outbox_sql.enqueue_card(conn, incident_id=incident_id, version=version)
            return None
        return _CardWatch(incident_id, waiting, version)

    async def _recheck_cards(self, conn: Conn, cards: Sequence[_CardWatch]) -> None:
        """After the commit: a refresh relied on that was taken meanwhile may have rendered
        the card as it was before it, so queue another (a no-op if it showed this version)."""
        for card in cards:
            if not await alerts_sql.card_still_waiting(conn, card.item_id):
                await outbox_sql.enqueue_card(
                    conn, incident_id=card.incident_id, version=card.version
                )

    def _export_lag(self) -> None:
        lag = self.source.lag()
        for tp in self._lag_series - set(lag):
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(tp[0], str(tp[1]))
        for (topic, partition), value in lag.items():
            CONSUMER_LAG.labels(topic, str(partition)).set(value)
        self._lag_series = set(lag)
