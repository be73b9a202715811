"""Incident events out: every timeline entry reaches the incident-events topic, in order.

The publisher (`bot.delivery.incident_events.IncidentEvents`) is tested first against real
PostgreSQL with an in-memory sink (partial acknowledgements, failures, two replicas), then end to
end with the bot's app and tansu brokers (one per test, memory storage), including a broker that
goes away and comes back.

tansu keeps its log in memory only, so "the broker comes back" is a new tansu process on the
same port with the topic created again: it starts empty. What was published before the outage
is in the first broker's log, read before it is stopped; the test checks that the two logs
together hold every entry exactly once and in order, and that nothing recorded during the
outage was dropped. (A real Kafka cluster keeps its log across a restart; the publisher cannot
tell the difference, since it only ever continues from its marks in PostgreSQL.)
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from bot.core.errors import ErrorCode, IntegrationError
from bot.core.settings import BUNDLED_PLAYBOOKS
from bot.delivery.incident_events import IncidentEvents, event_value
from bot.domain import timeline
from bot.domain.incidents import Incidents
from bot.domain.policy import load_severity_policy
from bot.domain.uow import UnitOfWork
from bot.integrations.kafka_io import KafkaEventSink, KafkaProducerClient
from bot.store import db
from sandbox.kafka_broker import TansuBroker
from sandbox.slack_api import FakeSlack
from tests.conftest import Bot, running_bot


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class ListSink:
    """An `EventSink` that keeps what it was given, per key, and can be told to fail."""

    def __init__(self, *, per_call: int = 10_000) -> None:
        self.per_call = per_call
        self.log: dict[bytes, list[dict[str, Any]]] = defaultdict(list)
        self.fail: IntegrationError | None = None
        self.in_flight: set[bytes] = set()
        self.overlaps = 0

    async def publish(self, key: bytes, values: Sequence[bytes]) -> int:
        if key in self.in_flight:
            self.overlaps += 1
        self.in_flight.add(key)
        try:
            await asyncio.sleep(0.001)
            if self.fail is not None:
                raise self.fail
            taken = list(values[: self.per_call])
            self.log[key].extend(json.loads(v) for v in taken)
            return len(taken)
        finally:
            self.in_flight.discard(key)

    def seqs(self, incident: int) -> list[int]:
        return [e["seq"] for e in self.log[str(incident).encode()]]


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(dsn)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
def incidents(pool: asyncpg.Pool) -> Incidents:
    return Incidents(
        UnitOfWork(pool), load_severity_policy(BUNDLED_PLAYBOOKS), channel_id="C0INCIDENTS"
    )


async def some_history(incidents: Incidents, *, count: int = 2, notes: int = 3) -> None:
    for n in range(count):
        change = await incidents.declare(title=f"Payments failing {n}", severity="sev2", actor="U1")
        for i in range(notes):
            await incidents.add_note(ref=change.incident.id, text=f"note {i}", actor="U2")


async def marks(pool: asyncpg.Pool) -> dict[int, int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT incident_id, published_seq FROM incident_event_marks")
    return {r["incident_id"]: r["published_seq"] for r in rows}


async def test_every_entry_is_published_once_in_seq_order(
    pool: asyncpg.Pool, incidents: Incidents
) -> None:
    await some_history(incidents)  # written before the publisher ever ran: published too
    sink = ListSink()
    events = IncidentEvents(pool, sink)
    await events.drain(timeout=10)
    assert sink.seqs(1) == [1, 2, 3, 4] and sink.seqs(2) == [1, 2, 3, 4]
    assert await marks(pool) == {1: 4, 2: 4}
    await incidents.post_status(ref=1, text="Mitigating: rolled back", actor="U1")
    await events.drain(timeout=10)
    await events.drain(timeout=10)
    assert sink.seqs(1) == [1, 2, 3, 4, 5] and sink.seqs(2) == [1, 2, 3, 4]


async def test_the_event_is_the_entry_and_its_chain_verifies(
    pool: asyncpg.Pool, incidents: Incidents
) -> None:
    await some_history(incidents, count=1, notes=2)
    sink = ListSink()
    await IncidentEvents(pool, sink).drain(timeout=10)
    events = sink.log[b"1"]
    assert set(events[0]) == {
        "incident", "seq", "kind", "actor", "text", "data", "occurred_at", "hash", "prev_hash",
    }  # fmt: skip
    assert (events[0]["kind"], events[0]["actor"], events[1]["text"]) == (
        "declared", "U1", "Note from <@U2>: note 0",
    )  # fmt: skip
    prev = ""
    for event in events:  # what a consumer can check without the database
        content = timeline.content_hash(
            incident_id=event["incident"], seq=event["seq"], kind=event["kind"],
            actor=event["actor"], text=event["text"], data=event["data"],
            occurred_at=datetime.fromisoformat(event["occurred_at"]),
        )  # fmt: skip
        assert event["prev_hash"] == prev
        assert timeline.chain_hash(prev, content) == event["hash"]
        prev = event["hash"]


async def test_a_partial_acknowledgement_moves_the_mark_only_that_far(
    pool: asyncpg.Pool, incidents: Incidents
) -> None:
    await some_history(incidents, count=1, notes=6)
    sink = ListSink(per_call=3)
    events = IncidentEvents(pool, sink)
    assert await events.process_once() == 3
    assert await marks(pool) == {1: 3}
    await events.drain(timeout=10)
    assert sink.seqs(1) == [1, 2, 3, 4, 5, 6, 7]


async def test_while_the_broker_fails_the_mark_waits_and_nothing_is_skipped(
    pool: asyncpg.Pool, incidents: Incidents
) -> None:
    await some_history(incidents, count=1, notes=1)
    sink = ListSink()
    events = IncidentEvents(pool, sink)
    await events.drain(timeout=10)
    sink.fail = IntegrationError("kafka", ErrorCode.UNAVAILABLE, "broker down")
    for i in range(3):
        await incidents.add_note(ref=1, text=f"during the outage {i}", actor="U2")
    assert await events.process_once() == 0
    async with pool.acquire() as conn:
        mark = await conn.fetchrow("SELECT * FROM incident_event_marks WHERE incident_id = 1")
    assert mark["published_seq"] == 2 and mark["attempts"] == 1
    assert mark["last_error"] == "kafka: broker down" and mark["claimed_until"] is None
    assert await events.process_once() == 0  # backing off: not even tried
    sink.fail = None
    await events.drain(timeout=10)
    assert sink.seqs(1) == [1, 2, 3, 4, 5]


async def test_two_replicas_never_publish_one_incident_at_the_same_time(
    pool: asyncpg.Pool, incidents: Incidents
) -> None:
    await some_history(incidents, count=6, notes=5)
    sink = ListSink(per_call=2)
    one, two = IncidentEvents(pool, sink), IncidentEvents(pool, sink)
    await asyncio.gather(one.drain(timeout=20), two.drain(timeout=20))
    assert sink.overlaps == 0
    for incident in range(1, 7):
        assert sink.seqs(incident) == [1, 2, 3, 4, 5, 6]


def test_an_oversized_entry_is_sent_without_its_data() -> None:
    from bot.core.models import TimelineEntry

    entry = TimelineEntry(
        id=1, incident_id=7, seq=3, kind="diagnosis", actor="icbot", text="findings",
        data={"blob": "x" * 600_000}, occurred_at=datetime.fromisoformat("2026-03-02T09:00:00+00:00"),
        content_hash="c", prev_hash="p", hash="h",
    )  # fmt: skip
    value = json.loads(event_value(entry))
    assert value["data"] is None and value["truncated"] is True and value["seq"] == 3


# ------------------------------------------------------------------ against a real broker


async def read_topic(bootstrap: str, topic: str, partitions: int, *, expect: int) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[Any] = []
        deadline = time.monotonic() + 20
        while len(found) < expect and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                found.extend(messages)
        return found
    finally:
        await consumer.stop()


def by_incident(records: list[Any]) -> dict[int, list[int]]:
    """Seqs per incident in log order; also checks that an incident stays on one partition."""
    seqs: dict[int, list[int]] = defaultdict(list)
    partition: dict[int, int] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        event = json.loads(record.value)
        assert record.key == str(event["incident"]).encode()
        assert partition.setdefault(event["incident"], record.partition) == record.partition
        seqs[event["incident"]].append(event["seq"])
    return dict(seqs)


async def publish_all(bot: Bot) -> None:
    events = bot.services.incident_events
    assert events is not None
    await events.drain(timeout=30)


async def test_slack_commands_become_events_on_the_topic(dsn: str, slack: FakeSlack) -> None:
    async with TansuBroker() as broker:
        topic = _name("incident-events")
        await broker.create_topic(topic, partitions=3)
        settings = {"kafka_bootstrap_servers": broker.bootstrap, "kafka_events_topic": topic}
        async with running_bot(dsn, slack, **settings) as bot:
            await bot.command("declare Payments failing sev2")
            await bot.command("declare Ledger lagging sev3")
            await bot.command("status INC-1 Identified: bad deploy")
            await bot.command("note INC-2 consumer restarted")
            await bot.command("resolve INC-1 rolled back")
            await publish_all(bot)
            counts = await bot.fetch("SELECT id, timeline_count FROM incidents ORDER BY id")
            expected = {r["id"]: list(range(1, r["timeline_count"] + 1)) for r in counts}
            records = await read_topic(
                broker.bootstrap, topic, 3, expect=sum(map(len, expected.values()))
            )
            assert by_incident(records) == expected
            kinds = [json.loads(r.value)["kind"] for r in records if r.key == b"1"]
            assert kinds[0] == "declared" and kinds[-1] == "resolved"


async def test_the_backlog_drains_in_order_after_the_broker_comes_back(
    dsn: str, slack: FakeSlack
) -> None:
    topic = _name("incident-events")
    first = TansuBroker()
    await first.start()
    port = first.port
    settings = {"kafka_bootstrap_servers": first.bootstrap, "kafka_events_topic": topic}
    try:
        await first.create_topic(topic, partitions=3)
        async with running_bot(dsn, slack, **settings) as bot:
            events = bot.services.incident_events
            assert events is not None
            # The bot's own producer, with a short request timeout so the outage shows sooner.
            producer = KafkaProducerClient(
                first.bootstrap, request_timeout_ms=1500, idempotent=False
            )
            events.sink = KafkaEventSink(producer, topic)
            for n in range(3):
                await bot.command(f"declare Service {n} degraded sev2")
            await publish_all(bot)
            before = await bot.fetch("SELECT incident_id, published_seq FROM incident_event_marks")
            published = {r["incident_id"]: r["published_seq"] for r in before}
            on_first = by_incident(
                await read_topic(first.bootstrap, topic, 3, expect=sum(published.values()))
            )
            assert on_first == {i: list(range(1, s + 1)) for i, s in published.items()}

            await first.stop()  # Kafka is down: commands keep working, entries wait
            for round_ in range(3):
                for n in (1, 2, 3):
                    await bot.command(f"note INC-{n} still degraded, round {round_}")
            started = time.monotonic()
            assert await events.process_once() == 0
            assert time.monotonic() - started < 5
            waiting = await bot.fetch(
                "SELECT m.incident_id, m.published_seq, m.attempts, i.timeline_count"
                " FROM incident_event_marks m JOIN incidents i ON i.id = m.incident_id"
            )
            assert all(r["published_seq"] == published[r["incident_id"]] for r in waiting)
            assert all(r["attempts"] == 1 for r in waiting)
            assert all(r["timeline_count"] > r["published_seq"] for r in waiting)

            second = TansuBroker(port=port)  # "back": a new, empty tansu on the same address
            await second.start()
            try:
                await second.create_topic(topic, partitions=3)
                bot.clock.advance(seconds=120)  # past the back-off, without waiting it out
                await publish_all(bot)
                counts = await bot.fetch("SELECT id, timeline_count FROM incidents")
                total = {r["id"]: r["timeline_count"] for r in counts}
                after = by_incident(
                    await read_topic(
                        second.bootstrap, topic, 3,
                        expect=sum(total[i] - published[i] for i in total),
                    )
                )  # fmt: skip
            finally:
                await second.stop()
                await producer.close()
        # The outage delayed the events, and dropped or reordered none of them.
        for incident, count in total.items():
            assert after[incident] == list(range(published[incident] + 1, count + 1))
            assert on_first[incident] + after[incident] == list(range(1, count + 1))
    finally:
        await first.stop()
