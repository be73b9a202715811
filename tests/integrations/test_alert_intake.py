"""Alert intake: alert storms become one incident per service, exactly once.

Two halves. The domain (`bot.domain.alerts.AlertIntake`) against real PostgreSQL with an in-memory
`AlertSource` and dead-letter list, so grouping, counters, the fence and dead letters are
tested without Kafka or Slack. Then the real thing: a tansu broker (one per module, memory
storage, a free 127.0.0.1 port; every test uses its own topics and consumer group), the
aiokafka consumer and producer, and the bot's app with the Slack stand-in for the cards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bot.core.errors import ErrorCode, IntegrationError
from bot.core.metrics import REGISTRY
from bot.core.settings import BUNDLED_PLAYBOOKS
from bot.domain import alerts as alerts_mod
from bot.domain.alerts import (
    AlertIntake,
    BatchResult,
    MalformedAlert,
    map_severity,
    parse_alert,
    resume_positions,
)
from bot.domain.incidents import Incidents
from bot.domain.policy import SeverityPolicy, load_severity_policy
from bot.domain.ports import RawRecord
from bot.domain.uow import UnitOfWork
from bot.integrations.kafka_io import KafkaAlertSource, KafkaDeadLetters, KafkaProducerClient
from bot.store import db
from commands import blocks
from sandbox.kafka_broker import TansuBroker
from sandbox.slack_api import FakeSlack
from tests.conftest import running_bot

REPO = Path(__file__).resolve().parent.parent.parent
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # the start of a 5-minute window


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def alert(
    service: str = "payments",
    fingerprint: str = "fp-1",
    *,
    status: str = "firing",
    name: str = "HighErrorRate",
    severity: str = "critical",
    summary: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "source": "prometheus",
        "alert_name": name,
        "service": service,
        "severity": severity,
        "summary": summary or f"{name} on {service}",
        "labels": {"env": "prod", "team": service},
        "fingerprint": fingerprint,
        "status": status,
        **extra,
    }


# ------------------------------------------------------------------ the domain, no Kafka


class ListSource:
    """An `AlertSource` over a list, one partition per topic name given."""

    def __init__(self) -> None:
        self.records: list[RawRecord] = []
        self.position = 0
        self.committed: dict[tuple[str, int], int] = {}
        self.rewound: list[Mapping[tuple[str, int], int]] = []

    def add(
        self, *alerts: dict[str, Any] | bytes | None, at: datetime = T0, partition: int = 0
    ) -> list[RawRecord]:
        added = []
        for item in alerts:
            value = item if isinstance(item, bytes) or item is None else json.dumps(item).encode()
            offset = sum(1 for r in self.records if r.partition == partition)
            record = RawRecord(
                topic="alerts", partition=partition, offset=offset,
                timestamp_ms=int(at.timestamp() * 1000), key=None, value=value,
            )  # fmt: skip
            self.records.append(record)
            added.append(record)
        return added

    async def fetch(self, *, max_records: int, timeout: float) -> list[RawRecord]:
        batch = self.records[self.position : self.position + max_records]
        self.position += len(batch)
        return batch

    async def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        self.committed.update(offsets)

    async def rewind(self, offsets: Mapping[tuple[str, int], int]) -> None:
        self.rewound.append(dict(offsets))
        self.position = min(
            i for i, r in enumerate(self.records) if r.offset == offsets.get(r.tp, -1)
        )

    def lag(self) -> dict[tuple[str, int], int]:
        return {}


class DeadLetterList:
    def __init__(self) -> None:
        self.letters: list[tuple[RawRecord, str]] = []
        self.fail: Exception | None = None

    async def dead_letter(self, record: RawRecord, reason: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.letters.append((record, reason))


@pytest.fixture
def policy() -> SeverityPolicy:
    return load_severity_policy(BUNDLED_PLAYBOOKS)


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(dsn)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
def incidents(pool: asyncpg.Pool, policy: SeverityPolicy) -> Incidents:
    return Incidents(UnitOfWork(pool), policy, channel_id="C0INCIDENTS")


def make_intake(
    pool: asyncpg.Pool,
    incidents: Incidents,
    source: Any,
    dead: DeadLetterList | None = None,
    *,
    group: str = "icbot-test",
    window: float = 300,
) -> AlertIntake:
    return AlertIntake(
        UnitOfWork(pool), incidents, incidents.policy, source=source,
        dead_letters=dead or DeadLetterList(),
        group_id=group, window=timedelta(seconds=window), batch=1000,
    )  # fmt: skip


async def run_all(intake: AlertIntake) -> list[BatchResult]:
    results = []
    while (result := await intake.process_once()) is not None:
        results.append(result)
    return results


async def rows(pool: asyncpg.Pool, sql: str, *args: Any) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        return [dict(r) for r in await conn.fetch(sql, *args)]


async def kinds(pool: asyncpg.Pool, incident_id: int) -> list[str]:
    found = await rows(
        pool, "SELECT kind FROM timeline WHERE incident_id = $1 ORDER BY seq", incident_id
    )
    return [r["kind"] for r in found]


def test_alerts_are_parsed_and_unreadable_ones_say_why() -> None:
    parsed = parse_alert(json.dumps(alert(severity="WARNING", status="Resolved")).encode())
    assert (parsed.service, parsed.fingerprint, parsed.status.value) == (
        "payments", "fp-1", "resolved",
    )  # fmt: skip
    assert parsed.severity == "warning" and parsed.labels == {"env": "prod", "team": "payments"}
    # Prometheus' spelling of the name, and the optional fields' defaults
    minimal = parse_alert(b'{"alertname":"Up","service":"s","fingerprint":"f","status":"firing"}')
    assert (minimal.alert_name, minimal.summary, minimal.source, minimal.severity) == (
        "Up", "Up", "unknown", "",
    )  # fmt: skip

    def reason(value: bytes | None) -> str:
        with pytest.raises(MalformedAlert) as err:
            parse_alert(value)
        return err.value.reason

    assert reason(None) == "empty record (no value)"
    assert reason(b"{not json").startswith("not JSON: ")
    assert reason(b"\xff\xfe").startswith("not UTF-8")
    assert reason(b"[1, 2]") == "not a JSON object but list"
    assert reason(json.dumps({**alert(), "service": None}).encode()) == "missing field 'service'"
    assert reason(json.dumps(alert(status="pending")).encode()) == (
        "status 'pending' is neither 'firing' nor 'resolved'"
    )
    assert reason(json.dumps({**alert(), "fingerprint": 42}).encode()) == (
        "field 'fingerprint' must be a string, not int"
    )
    assert reason(json.dumps({**alert(), "labels": ["a"]}).encode()) == (
        "field 'labels' must be an object, not list"
    )
    assert "NUL" in reason(json.dumps(alert(service="pay\u0000ments")).encode())
    assert "lone surrogate" in reason(b'{"service":"\\ud800","fingerprint":"f","alert_name":"n",'
                                      b'"status":"firing"}')  # fmt: skip
    assert reason(b" " * (64 * 1024 + 1)).startswith("record is 65537 bytes")


def test_severity_words_map_onto_the_policy(policy: SeverityPolicy) -> None:
    assert map_severity("critical", policy) == "sev1"
    assert map_severity("P2", policy) == "sev2"
    assert map_severity("warning", policy) == "sev3"
    assert map_severity("info", policy) == "sev4"
    assert map_severity("", policy) == policy.default
    assert map_severity("apocalyptic", policy) == policy.default  # never dropped for a word


async def test_repeats_of_one_alert_are_one_incident_and_a_counter_not_posts(
    pool: asyncpg.Pool, incidents: Incidents
) -> None:
    source = ListSource()
    source.add(*[alert() for _ in range(50)])
    [result] = await run_all(make_intake(pool, incidents, source))
    assert result.stored == 50 and result.declared == [1]
    [incident] = await rows(pool, "SELECT id, title, severity, alert_count FROM incidents")
    assert incident == {
        "id": 1, "title": "payments: HighErrorRate — HighErrorRate on payments",
        "severity": "sev1", "alert_count": 50,
    }  # fmt: skip
    assert await kinds(pool, 1) == ["declared", "alert_firing"]
    # nobody is made commander by a machine: the prompts go to the channel until someone is
    assert await rows(pool, "SELECT role FROM incident_roles") == []
    assert source.committed == {("alerts", 0): 50}

    source.add(*[alert() for _ in range(25)])
    await run_all(make_intake(pool, incidents, source))
    assert (await rows(pool, "SELECT alert_count FROM incidents"))[0]["alert_count"] == 75
    assert await kinds(pool, 1) == ["declared", "alert_firing"]  # still no new post
    [group] = await rows(pool, "SELECT firing, status FROM alert_groups")
    assert group == {"firing": 75, "status": "firing"}


async def test_each_service_has_its_own_incident_and_new_alerts_attach_to_it(
    pool: asyncpg.Pool, incidents: Incidents
) -> None:
    source = ListSource()
    intake = make_intake(pool, incidents, source)
    source.add(alert("payments", "fp-1"), alert("ledger", "fp-9", severity="warning"))
    await run_all(intake)
    source.add(alert("payments", "fp-2", name="LatencyHigh"), alert("payments", "fp-1"))
    await run_all(intake)
    found = await rows(pool, "SELECT id, title, severity, alert_count FROM incidents ORDER BY id")
    assert [(r["title"], r["severity"], r["alert_count"]) for r in found] == [
        ("payments: HighErrorRate — HighErrorRate on payments", "sev1", 3),
        ("ledger: HighErrorRate — HighErrorRate on ledger", "sev3", 1),
    ]
    payments = found[0]["id"]
    assert await kinds(pool, payments) == ["declared", "alert_firing", "alert_firing"]
    [attached] = await rows(
        pool, "SELECT text FROM timeline WHERE incident_id = $1 AND seq = 3", payments
    )
    assert attached["text"] == (
        "Alert *LatencyHigh* on `payments` is firing (prometheus, severity critical → SEV1):"
        " LatencyHigh on payments"
    )


async def test_a_resolved_alert_is_recorded_once_and_firing_again_is_news(
    pool: asyncpg.Pool, incidents: Incidents
) -> None:
    source = ListSource()
    intake = make_intake(pool, incidents, source)
    source.add(alert(), alert(), at=T0)
    source.add(alert(status="resolved"), at=T0 + timedelta(seconds=30))
    await run_all(intake)
    source.add(alert(status="resolved"), at=T0 + timedelta(seconds=40))  # a repeat
    source.add(alert(status="resolved"), at=T0 - timedelta(seconds=40))  # older than its firing
    await run_all(intake)
    assert await kinds(pool, 1) == ["declared", "alert_firing", "alert_resolved"]
    [entry] = await rows(pool, "SELECT text FROM timeline WHERE kind = 'alert_resolved'")
    assert entry["text"] == (
        "Alert *HighErrorRate* on `payments` resolved (2 firing notifications in its window)."
    )
    source.add(alert(), at=T0 + timedelta(seconds=60))
    await run_all(intake)
    assert await kinds(pool, 1) == ["declared", "alert_firing", "alert_resolved", "alert_firing"]
    [again] = await rows(pool, "SELECT text FROM timeline WHERE seq = 4")
    assert "is firing again" in again["text"]
    [group] = await rows(pool, "SELECT firing, resolved, status FROM alert_groups")
    assert group == {"firing": 3, "resolved": 3, "status": "firing"}
    # a resolve for an alert never seen firing changes nothing
    source.add(alert("search", "fp-x", status="resolved"))
    await run_all(intake)
    assert len(await rows(pool, "SELECT id FROM incidents")) == 1


async def test_a_storm_that_goes_on_into_the_next_window_posts_nothing_new(
    pool: asyncpg.Pool, incidents: Incidents
) -> None:
    source = ListSource()
    for minute in range(12):  # one alert a minute for 12 minutes, windows of 5 minutes
        source.add(alert(), at=T0 + timedelta(minutes=minute))
    await run_all(make_intake(pool, incidents, source))
    groups = await rows(pool, "SELECT window_start, firing FROM alert_groups ORDER BY 1")
    assert [g["firing"] for g in groups] == [5, 5, 2]
    assert await kinds(pool, 1) == ["declared", "alert_firing"]
    assert (await rows(pool, "SELECT alert_count FROM incidents"))[0]["alert_count"] == 12


async def test_after_the_incident_is_resolved_the_next_window_declares_a_new_one(
    pool: asyncpg.Pool, incidents: Incidents
) -> None:
    source = ListSource()
    intake = make_intake(pool, incidents, source)
    source.add(alert(), at=T0)
    await run_all(intake)
    await incidents.resolve(ref=1, summary="rolled back", actor="U1")
    source.add(alert(), at=T0 + timedelta(minutes=1))  # the same window: counted on INC-1
    await run_all(intake)
    assert [r["alert_count"] for r in await rows(pool, "SELECT alert_count FROM incidents")] == [2]
    source.add(alert(), at=T0 + timedelta(minutes=5))  # a new window: a new incident
    await run_all(intake)
    found = await rows(pool, "SELECT id, alert_count, resolved_at IS NULL AS open FROM incidents")
    assert sorted((r["id"], r["alert_count"], r["open"]) for r in found) == [
        (1, 2, False), (2, 1, True),
    ]  # fmt: skip


async def test_outside_text_cannot_ping_the_channel(
    pool: asyncpg.Pool, incidents: Incidents
) -> None:
    source = ListSource()
    source.add(alert(summary="<!channel> wake up <https://evil.example|click>"))
    await run_all(make_intake(pool, incidents, source))
    texts = [r["text"] for r in await rows(pool, "SELECT text FROM timeline")]
    titles = [r["title"] for r in await rows(pool, "SELECT title FROM incidents")]
    assert "<!channel> wake up" in titles[0]  # kept as the alert said it
    incident, entries = await incidents.timeline(1)
    posted = [
        blocks.incident_card(incident, incidents.policy, now=incident.declared_at),
        *[blocks.timeline_reply(e) for e in entries],
    ]
    for message in posted:
        shown = message.text + json.dumps(message.blocks)
        assert "<!channel>" not in shown and "|click>" not in shown
    assert any("@channel wake up" in json.dumps(m.blocks) for m in posted)
    assert texts


async def test_a_redelivered_batch_after_a_crash_before_the_commit_changes_nothing(
    pool: asyncpg.Pool, incidents: Incidents
) -> None:
    source = ListSource()
    records = source.add(*[alert(s, f"fp-{s}") for s in ("a", "b", "c") * 100])
    intake = make_intake(pool, incidents, source)
    first = await intake.handle(records)  # stored; then the process "dies" before committing
    assert first.stored == 300 and len(first.declared) == 3
    again = await intake.handle(records)  # Kafka hands the same batch to the next consumer
    assert (again.stored, again.duplicates, again.declared) == (300 - 300, 300, [])
    counts = await rows(pool, "SELECT alert_count FROM incidents ORDER BY id")
    assert [r["alert_count"] for r in counts] == [100, 100, 100]
    assert len(await rows(pool, "SELECT id FROM timeline")) == 6  # declared + firing, each


async def test_two_replicas_handed_the_same_batch_store_it_once(
    pool: asyncpg.Pool, incidents: Incidents
) -> None:
    source = ListSource()
    records = source.add(*[alert(s, f"fp-{i % 7}") for i, s in enumerate(["a", "b"] * 200)])
    one, two = make_intake(pool, incidents, source), make_intake(pool, incidents, source)
    results = await asyncio.gather(one.handle(records), two.handle(records))
    assert sorted(r.stored for r in results) == [0, 400]
    counts = await rows(pool, "SELECT alert_count FROM incidents ORDER BY id")
    assert [r["alert_count"] for r in counts] == [200, 200]


async def test_replayed_under_another_group_declares_nothing_new(
    pool: asyncpg.Pool, incidents: Incidents
) -> None:
    """The (service, fingerprint, window) key alone stops a second declaration."""
    source = ListSource()
    records = source.add(*[alert(s, "fp") for s in ("a", "b", "c") * 10])
    await make_intake(pool, incidents, source, group="deploy-1").handle(records)
    replay = await make_intake(pool, incidents, source, group="deploy-2").handle(records)
    assert replay.stored == 30 and replay.declared == []
    assert len(await rows(pool, "SELECT id FROM incidents")) == 3


async def test_malformed_records_are_dead_lettered_with_the_reason_and_the_rest_stored(
    pool: asyncpg.Pool, incidents: Incidents
) -> None:
    source, dead = ListSource(), DeadLetterList()
    source.add(alert(), b"{oops", None, json.dumps(alert(status="maybe")).encode(), alert())
    [result] = await run_all(make_intake(pool, incidents, source, dead))
    assert (result.stored, result.dead_letters) == (2, 3)
    assert [(r.offset, why) for r, why in dead.letters] == [
        (1, "not JSON: Expecting property name enclosed in double quotes (line 1 column 2)"),
        (2, "empty record (no value)"),
        (3, "status 'maybe' is neither 'firing' nor 'resolved'"),
    ]
    assert source.committed == {("alerts", 0): 5}
    assert (await rows(pool, "SELECT alert_count FROM incidents"))[0]["alert_count"] == 2


async def test_the_counter_reaches_the_card_even_if_the_outbox_takes_it_mid_batch(
    pool: asyncpg.Pool, incidents: Incidents, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch relies on a card refresh still queued; if the outbox leases it before the batch
    commits (and so renders the count before it), the batch queues another after its commit."""
    source = ListSource()
    intake = make_intake(pool, incidents, source)
    source.add(alert())
    await run_all(intake)
    real_waiting = alerts_mod.alerts_sql.waiting_card

    async def taken_meanwhile(conn: Any, incident_id: int) -> int | None:
        item = await real_waiting(conn, incident_id)
        async with pool.acquire() as other:  # the outbox, in another replica, leases it now
            await other.execute(
                "UPDATE outbox SET claimed_until = now() + interval '30 s' WHERE id = $1", item
            )
        return item

    monkeypatch.setattr(alerts_mod.alerts_sql, "waiting_card", taken_meanwhile)
    source.add(alert(), alert())
    await run_all(intake)
    cards = await rows(
        pool, "SELECT dedupe_key, claimed_until IS NULL AS waiting FROM outbox"
        " WHERE kind = 'card' ORDER BY id",
    )  # fmt: skip
    [version] = await rows(pool, "SELECT card_version FROM incidents")
    assert cards[-1] == {"dedupe_key": f"inc1:card{version['card_version']}", "waiting": True}


async def test_a_record_the_database_refuses_goes_to_the_dead_letters_alone(
    pool: asyncpg.Pool, incidents: Incidents, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_insert = alerts_mod.alerts_sql.insert_groups

    async def picky_insert(conn: Any, rows_: Any) -> None:
        if any(r.service == "poison" for r in rows_):
            raise asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence")
        await real_insert(conn, rows_)

    monkeypatch.setattr(alerts_mod.alerts_sql, "insert_groups", picky_insert)
    source, dead = ListSource(), DeadLetterList()
    source.add(alert("a", "1"), alert("poison", "2"), alert("b", "3"))
    [result] = await run_all(make_intake(pool, incidents, source, dead))
    assert (result.stored, result.dead_letters) == (2, 1)
    assert [(r.offset, why) for r, why in dead.letters] == [
        (1, "refused by the database: invalid byte sequence")
    ]
    assert len(await rows(pool, "SELECT id FROM incidents")) == 2
    assert source.committed == {("alerts", 0): 3}


async def test_a_failed_round_is_rewound_and_retried_without_double_effects(
    pool: asyncpg.Pool, incidents: Incidents
) -> None:
    source, dead = ListSource(), DeadLetterList()
    source.add(alert(), b"junk", alert())
    intake = make_intake(pool, incidents, source, dead)
    dead.fail = IntegrationError("kafka", ErrorCode.UNAVAILABLE, "dead-letter topic unavailable")
    with pytest.raises(IntegrationError):
        await intake.process_once()
    assert source.rewound == [{("alerts", 0): 0}] and source.committed == {}
    assert await rows(pool, "SELECT id FROM incidents") == []  # nothing stored before the DLQ
    dead.fail = None
    await run_all(intake)
    assert (await rows(pool, "SELECT alert_count FROM incidents"))[0]["alert_count"] == 2
    assert len(dead.letters) == 1 and source.committed == {("alerts", 0): 3}


async def test_resuming_trusts_the_fence_unless_the_topic_was_recreated(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO kafka_offsets (group_id, topic, partition, next_offset)"
            " VALUES ('g', 'alerts', 0, 500), ('g', 'alerts', 1, 800), ('g', 'alerts', 2, 900)"
        )
    lookup = resume_positions(pool, "g")
    seek = await lookup(
        {
            ("alerts", 0): (400, 1000),  # Kafka's commit lags the fence: resume at the fence
            ("alerts", 1): (None, 1000),  # no commit (expired): the fence still holds
            ("alerts", 2): (None, 3),  # no commit and the log is shorter: a new topic
            ("alerts", 3): (None, 10),  # never stored anything: Kafka decides
        }
    )
    assert seek == {("alerts", 0): 500, ("alerts", 1): 800}
    left = await rows(pool, "SELECT partition FROM kafka_offsets ORDER BY 1")
    assert [r["partition"] for r in left] == [0, 1]


# ------------------------------------------------------------------ against a real broker


@pytest.fixture(scope="module")
async def broker() -> AsyncIterator[TansuBroker]:
    b = TansuBroker()
    try:
        await b.start()
    except Exception as exc:
        pytest.fail(f"tansu broker could not start: {exc}", pytrace=False)
    try:
        yield b
    finally:
        await b.stop()


async def produce(
    broker: TansuBroker, topic: str, values: list[bytes], *, one_per_batch: bool = False
) -> None:
    """Key = nothing (spread over partitions); batched unless `one_per_batch` (tansu's log end)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap, enable_idempotence=False, linger_ms=5
    )
    await producer.start()
    try:
        if one_per_batch:
            for value in values:
                await producer.send_and_wait(topic, value)
        else:
            futures = [await producer.send(topic, value) for value in values]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_all(
    broker: TansuBroker, topic: str, count: int, *, partitions: int = 1, timeout: float = 20
) -> list[Any]:
    """The first `count` records of `topic` (from the beginning, every partition)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                found.extend(messages)
        return found
    finally:
        await consumer.stop()


async def wait_assigned(source: KafkaAlertSource, *, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not source.assignment():
        assert time.monotonic() < deadline, "the consumer never joined its group"
        await asyncio.sleep(0.05)


def storm(total: int, services: list[str], rules: int, seed: int = 12) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        alert(service, f"{service}-rule{r}", name=f"Rule{r}", severity="critical")
        for service, r in ((rng.choice(services), rng.randrange(rules)) for _ in range(total))
    ]


async def test_a_storm_of_10000_alerts_for_3_services_is_3_incidents_with_exact_counters(
    broker: TansuBroker, dsn: str, slack: FakeSlack
) -> None:
    topic = _name("alerts")
    await broker.create_topic(topic, partitions=3)
    services = ["payments", "ledger", "fraud"]
    alerts = storm(10_000, services, rules=4)
    expected = {s: sum(1 for a in alerts if a["service"] == s) for s in services}
    settings = {
        "kafka_bootstrap_servers": broker.bootstrap, "kafka_alert_topics": topic,
        "kafka_group_id": _name("icbot"), "kafka_dead_letter_topic": _name("dlq"),
        "kafka_alert_offset_reset": "earliest",
    }  # fmt: skip
    async with running_bot(dsn, slack, **settings) as bot:
        intake = bot.services.alert_intake
        assert intake is not None
        source = cast(KafkaAlertSource, intake.source)
        task = asyncio.create_task(intake.run_forever())
        try:
            await wait_assigned(source)
            started = time.monotonic()
            await produce(broker, topic, [json.dumps(a).encode() for a in alerts])
            while True:
                total = await bot.fetch("SELECT COALESCE(sum(alert_count), 0) AS n FROM incidents")
                if total[0]["n"] >= 10_000:
                    break
                assert time.monotonic() - started < 20, f"only {total[0]['n']} stored"
                await asyncio.sleep(0.05)
            elapsed = time.monotonic() - started
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await bot.settle()
        found = await bot.fetch("SELECT id, title, alert_count FROM incidents ORDER BY id")
        assert len(found) == 3
        by_service = {r["title"].split(":")[0]: r for r in found}
        assert {s: r["alert_count"] for s, r in by_service.items()} == expected
        roots = slack.roots("waqiti-incidents")
        assert len(roots) == 3
        for service, row in by_service.items():
            # cards are posted in whichever order the outbox gets to them
            [card] = [m for m in roots if m.text.startswith(f"INC-{row['id']} ")]
            assert card.blocks[0]["text"]["text"].startswith(f"INC-{row['id']} · SEV1 · {service}")
            fields = [f["text"] for f in card.blocks[1]["fields"]]
            assert f"*Alerts*\n:bell: {expected[service]:,} received" in fields
            thread = slack.thread("waqiti-incidents", card.ts)
            # the declaration and the alerts first seen: no post per repeat
            assert 2 <= len(thread) <= 1 + 4, [m.text for m in thread]
        print(f"\n10,000 alerts stored in {elapsed:.2f} s")


async def test_a_poison_message_lands_in_the_dead_letter_topic_and_the_consumer_goes_on(
    broker: TansuBroker, dsn: str, slack: FakeSlack
) -> None:
    topic, dlq = _name("alerts"), _name("dead")
    await broker.create_topic(topic, partitions=1)
    await broker.create_topic(dlq, partitions=1)
    values = [
        json.dumps(alert("checkout", "c1")).encode(),
        b"\x00\x01 not an alert",
        json.dumps({"service": "checkout"}).encode(),
        json.dumps(alert("checkout", "c1")).encode(),
    ]
    await produce(broker, topic, values, one_per_batch=True)
    settings = {
        "kafka_bootstrap_servers": broker.bootstrap, "kafka_alert_topics": topic,
        "kafka_group_id": _name("icbot"), "kafka_dead_letter_topic": dlq,
        "kafka_alert_offset_reset": "earliest",
    }  # fmt: skip
    async with running_bot(dsn, slack, **settings) as bot:
        intake = bot.services.alert_intake
        assert intake is not None
        task = asyncio.create_task(intake.run_forever())
        try:
            letters = await read_all(broker, dlq, 2, timeout=30)
            await produce(broker, topic, [json.dumps(alert("checkout", "c2")).encode()])
            deadline = time.monotonic() + 10
            # (the dead letters go out before the batch around them is stored)
            while (await bot.fetch("SELECT COALESCE(sum(alert_count), 0) AS n FROM incidents"))[0][
                "n"
            ] < 3:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert [m.value for m in letters] == [values[1], values[2]]
        headers = [dict(m.headers) for m in letters]
        assert headers[0]["icbot.dead_letter.reason"] == (
            b"not JSON: Expecting value (line 1 column 1)"
        )
        assert headers[1]["icbot.dead_letter.reason"] == b"missing field 'status'"
        assert headers[1]["icbot.dead_letter.topic"] == topic.encode()
        assert headers[1]["icbot.dead_letter.offset"] == b"2"
        assert len(await bot.fetch("SELECT id FROM incidents")) == 1


async def test_the_consumers_lag_is_exported_on_metrics(
    broker: TansuBroker, dsn: str, slack: FakeSlack
) -> None:
    topic = _name("alerts")
    await broker.create_topic(topic, partitions=1)
    await produce(broker, topic, [json.dumps(alert()).encode()] * 50, one_per_batch=True)
    settings = {
        "kafka_bootstrap_servers": broker.bootstrap, "kafka_alert_topics": topic,
        "kafka_group_id": _name("icbot"), "kafka_alert_offset_reset": "earliest",
        "kafka_alert_batch": 20,
    }  # fmt: skip
    async with running_bot(dsn, slack, **settings) as bot:
        intake = bot.services.alert_intake
        assert intake is not None
        series = {"topic": topic, "partition": "0"}
        while (first := await intake.process_once()) is None:
            pass  # joining the group
        behind = 50 - first.stored  # at most 20 read (KAFKA_ALERT_BATCH), the rest waits
        assert behind >= 30
        assert REGISTRY.get_sample_value("icbot_kafka_consumer_lag", series) == behind
        async with bot.http.get(f"{bot.base}/metrics") as resp:
            body = await resp.text()
        assert f'icbot_kafka_consumer_lag{{partition="0",topic="{topic}"}} {behind:.1f}' in body
        while await intake.process_once() is not None:
            pass
        assert REGISTRY.get_sample_value("icbot_kafka_consumer_lag", series) == 0
        await cast(KafkaAlertSource, intake.source).close()


# -- a consumer killed -9 between storing a batch and committing its offsets


async def _child(dsn: str, bootstrap: str, topic: str, group: str, marker: str) -> None:
    """The doomed consumer: stores batches; after the third is stored, signals and hangs."""
    pool = await db.create_pool(dsn)
    policy = load_severity_policy(BUNDLED_PLAYBOOKS)
    batches, stored = 0, 0
    committed: dict[tuple[str, int], int] = {}

    async def hang_after_third(result: BatchResult) -> None:
        nonlocal batches, stored
        batches, stored = batches + 1, stored + result.stored
        if batches == 3:
            state = {"stored": stored, "committed": sum(committed.values())}
            await asyncio.to_thread(Path(marker + ".tmp").write_text, json.dumps(state))
            os.replace(marker + ".tmp", marker)  # whole, or not there
            await asyncio.sleep(3600)  # killed here: stored, not committed
        committed.update(result.commit)  # what run_forever commits next

    producer = KafkaProducerClient(bootstrap, idempotent=False)
    intake = AlertIntake(
        UnitOfWork(pool), Incidents(UnitOfWork(pool), policy, channel_id="C0INCIDENTS"), policy,
        source=KafkaAlertSource(bootstrap, topics=[topic], group_id=group,
                                resume=resume_positions(pool, group), offset_reset="earliest",
                                session_timeout_ms=6000, clamp_negative_lag=True),
        dead_letters=KafkaDeadLetters(producer, topic + "-dlq"), group_id=group,
        batch=500, after_store=hang_after_third,
    )  # fmt: skip
    await intake.run_forever()


async def committed(broker: TansuBroker, group: str, topic: str, partitions: int) -> int:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        total = 0
        for p in range(partitions):
            total += await consumer.committed(TopicPartition(topic, p)) or 0
        return total
    finally:
        await consumer.stop()


async def test_a_consumer_killed_between_store_and_commit_declares_nothing_twice(
    broker: TansuBroker, dsn: str, pool: asyncpg.Pool, incidents: Incidents, tmp_path: Path
) -> None:
    topic, group = _name("alerts"), _name("icbot")
    await broker.create_topic(topic, partitions=3)
    services = ["payments", "ledger", "fraud"]
    alerts = storm(3000, services, rules=3, seed=7)
    expected = {s: sum(1 for a in alerts if a["service"] == s) for s in services}
    await produce(broker, topic, [json.dumps(a).encode() for a in alerts])
    marker = tmp_path / "stored-third-batch"
    code = (
        "import asyncio, sys; from tests.integrations.test_alert_intake import _child;"
        " asyncio.run(_child(*sys.argv[1:]))"
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, dsn, broker.bootstrap, topic, group, str(marker),
        cwd=str(REPO), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.returncode is None, "the child consumer died on its own"
            assert time.monotonic() < deadline, "the child never stored three batches"
            await asyncio.sleep(0.05)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        await child.wait()
    # Killed with three batches stored and only the first two committed to Kafka.
    state = json.loads(marker.read_text())
    stored = await rows(pool, "SELECT COALESCE(sum(alert_count), 0) AS n FROM incidents")
    assert stored[0]["n"] == state["stored"] > state["committed"]
    assert await committed(broker, group, topic, 3) == state["committed"]
    before = await rows(pool, "SELECT id, title FROM incidents ORDER BY id")

    # The restarted consumer, in the same group: it finishes the topic, and only that.
    source = KafkaAlertSource(
        broker.bootstrap, topics=[topic], group_id=group, resume=resume_positions(pool, group),
        offset_reset="earliest", session_timeout_ms=6000, clamp_negative_lag=True,
    )  # fmt: skip
    producer = KafkaProducerClient(broker.bootstrap, idempotent=False)
    intake = AlertIntake(
        UnitOfWork(pool), incidents, incidents.policy, source=source, group_id=group, batch=500,
        dead_letters=KafkaDeadLetters(producer, topic + "-dlq"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            total = await rows(pool, "SELECT COALESCE(sum(alert_count), 0) AS n FROM incidents")
            if total[0]["n"] >= 3000:
                break
            assert time.monotonic() < deadline, f"stuck at {total[0]['n']}"
            await intake.process_once()
        for _ in range(3):  # anything redelivered now would show up as a change
            await intake.process_once()
    finally:
        await source.close()
        await producer.close()
    after = await rows(pool, "SELECT id, title, alert_count FROM incidents ORDER BY id")
    assert [(r["id"], r["title"]) for r in after] == [(r["id"], r["title"]) for r in before]
    assert {r["title"].split(":")[0]: r["alert_count"] for r in after} == expected
    groups = await rows(pool, "SELECT service, sum(firing) AS n FROM alert_groups GROUP BY 1")
    assert {g["service"]: g["n"] for g in groups} == expected
    assert await committed(broker, group, topic, 3) == 3000


async def test_after_the_broker_lost_its_log_new_alerts_are_not_skipped_as_stored(
    pool: asyncpg.Pool, incidents: Incidents
) -> None:
    """tansu keeps its log in memory: restarted, the topic starts again at offset 0, below the
    fence. The consumer's position is then out of range; the fence is dropped, not obeyed."""
    topic, group = _name("alerts"), _name("icbot")
    first = TansuBroker()
    await first.start()
    second = TansuBroker(port=first.port)
    source = KafkaAlertSource(
        first.bootstrap, topics=[topic], group_id=group, resume=resume_positions(pool, group),
        offset_reset="earliest", session_timeout_ms=6000, clamp_negative_lag=True,
    )  # fmt: skip
    producer = KafkaProducerClient(first.bootstrap, idempotent=False)
    intake = AlertIntake(
        UnitOfWork(pool), incidents, incidents.policy, source=source, group_id=group,
        dead_letters=KafkaDeadLetters(producer, topic + "-dlq"),
    )  # fmt: skip

    async def counted(expected: int) -> None:
        deadline = time.monotonic() + 30
        while True:
            found = await rows(pool, "SELECT COALESCE(sum(alert_count), 0) AS n FROM incidents")
            if found[0]["n"] >= expected:
                assert found[0]["n"] == expected
                return
            assert time.monotonic() < deadline, f"stuck at {found[0]['n']} of {expected}"
            with contextlib.suppress(IntegrationError):  # while the broker is away
                await intake.process_once()

    try:
        await first.create_topic(topic, partitions=1)
        await produce(
            first, topic, [json.dumps(alert("payments")).encode()] * 20, one_per_batch=True
        )
        await counted(20)
        await first.stop()
        await second.start()  # the same address, an empty log
        await second.create_topic(topic, partitions=1)
        await produce(second, topic, [json.dumps(alert("ledger")).encode()] * 5, one_per_batch=True)
        await counted(25)
    finally:
        await source.close()
        await producer.close()
        await first.stop()
        await second.stop()
    found = await rows(pool, "SELECT title, alert_count FROM incidents ORDER BY id")
    assert [(r["title"].split(":")[0], r["alert_count"]) for r in found] == [
        ("payments", 20), ("ledger", 5),
    ]  # fmt: skip


async def test_a_more_severe_alert_raises_the_severity_the_alerts_chose(
    pool: asyncpg.Pool, incidents: Incidents
) -> None:
    source = ListSource()
    intake = make_intake(pool, incidents, source)
    source.add(alert("ledger", "fp-1", severity="warning"))
    await run_all(intake)
    source.add(alert("ledger", "fp-2", name="LedgerDown", severity="critical"))
    source.add(alert("ledger", "fp-3", name="Slow", severity="warning"))  # less severe: no change
    await run_all(intake)
    [incident] = await rows(pool, "SELECT id, severity FROM incidents")
    assert incident["severity"] == "sev1"
    changes = await rows(
        pool, "SELECT actor, text, data FROM timeline WHERE kind = 'severity_changed'"
    )
    assert [(c["actor"], c["data"]["from"], c["data"]["to"]) for c in changes] == [
        ("alerts", "sev3", "sev1")
    ]
    assert "by alert *LedgerDown* on `ledger` (severity critical)" in changes[0]["text"]
    assert (await incidents.verify(incident["id"])).ok


async def test_an_alert_never_overrides_a_severity_a_person_chose(
    pool: asyncpg.Pool, incidents: Incidents
) -> None:
    source = ListSource()
    intake = make_intake(pool, incidents, source)
    source.add(alert("ledger", "fp-1", severity="warning"))
    await run_all(intake)
    [incident] = await rows(pool, "SELECT id FROM incidents")
    await incidents.set_severity(ref=incident["id"], severity="sev4", actor="U0DANA")
    source.add(alert("ledger", "fp-2", name="LedgerDown", severity="critical"))
    await run_all(intake)
    [after] = await rows(pool, "SELECT severity FROM incidents")
    assert after["severity"] == "sev4"
    assert (await kinds(pool, incident["id"]))[-1] == "alert_firing"
