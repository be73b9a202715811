"""aiokafka adapters for the alert intake and the incident-events stream.

* `KafkaAlertSource` — the intake's consumer: a group member on the alert topics, manual
  commits only, batches with ``getmany``. It places every partition itself (aiokafka's own
  reset is off): on assignment at the intake's fence in PostgreSQL
  (`bot.domain.alerts.resume_positions`), which is never behind the committed offset, else at the
  committed offset, else by KAFKA_ALERT_OFFSET_RESET; after an out-of-range fetch (the log
  was truncated, or re-created empty) the same way, with the fence checked against the log
  first. Its lag per owned partition (high watermark minus the next offset to process) comes
  from the fetch responses: no extra requests.
* `KafkaProducerClient` — one producer shared by `KafkaDeadLetters` (malformed alerts, with
  the reason in headers) and `KafkaEventSink` (timeline entries: one record batch per call on
  the key's partition, so a batch is appended whole or not at all, in order).

Every aiokafka failure becomes ``IntegrationError("kafka", …)``; a producer that failed is
closed and started again on next use (a broker that restarted is a new cluster to it).

tansu (tests, sandbox) shapes a few choices, two of them settings: the idempotent producer
does not work there (``idempotent=False``, KAFKA_IDEMPOTENT_PRODUCER; ordering comes from one
batch per call either way), its ``ListOffsets`` under-reports the log end after a batch of
several records (``clamp_negative_lag=True``, KAFKA_CLAMP_NEGATIVE_LAG; the resume check trusts
a committed offset over the log end regardless), and joining a group takes about 5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.abc import ConsumerRebalanceListener  # type: ignore[import-untyped]
from aiokafka.errors import (  # type: ignore[import-untyped]
    IllegalStateError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NoOffsetForPartitionError,
    OffsetOutOfRangeError,
    TopicAuthorizationFailedError,
)
from aiokafka.partitioner import DefaultPartitioner  # type: ignore[import-untyped]
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped]

from bot.core.errors import ErrorCode, IntegrationError
from bot.core.logs import get_logger
from bot.domain.alerts import ResumeLookup
from bot.domain.ports import RawRecord

if TYPE_CHECKING:
    from bot.domain.ports import AlertSource, DeadLetters, EventSink

__all__ = ["KafkaAlertSource", "KafkaDeadLetters", "KafkaEventSink", "KafkaProducerClient"]

log = get_logger(__name__)

SYSTEM = "kafka"
TP = tuple[str, int]
_PERMANENT = (MessageSizeTooLargeError, TopicAuthorizationFailedError)


def _code(exc: BaseException) -> ErrorCode:
    if isinstance(exc, TopicAuthorizationFailedError):
        return ErrorCode.DENIED
    if isinstance(exc, MessageSizeTooLargeError):
        return ErrorCode.REFUSED
    if isinstance(exc, TimeoutError | KafkaTimeoutError):
        return ErrorCode.TIMEOUT
    return ErrorCode.UNAVAILABLE


def _error(what: str, exc: BaseException) -> IntegrationError:
    text = str(exc) or type(exc).__name__
    return IntegrationError(
        SYSTEM, _code(exc), f"{what}: {text}", permanent=isinstance(exc, _PERMANENT)
    )


class _Resume(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: KafkaAlertSource, consumer: Any) -> None:
        self.source = source
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.source._forget({(tp.topic, tp.partition) for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.source._resume(self.consumer, list(assigned))


class KafkaAlertSource:
    """`bot.domain.ports.AlertSource` over an `AIOKafkaConsumer` in a consumer group."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topics: Sequence[str],
        group_id: str,
        resume: ResumeLookup | None = None,
        offset_reset: str = "latest",
        client_id: str = "icbot-alerts",
        request_timeout_ms: int = 10_000,
        session_timeout_ms: int = 10_000,
        fetch_max_wait_ms: int = 100,
        clamp_negative_lag: bool = False,
    ) -> None:
        if not topics:
            raise ValueError("no alert topics")
        if offset_reset not in ("earliest", "latest"):
            raise ValueError(f"offset_reset must be earliest or latest, not {offset_reset!r}")
        self.topics = list(topics)
        self.group_id = group_id
        self.offset_reset = offset_reset
        self.clamp_negative_lag = clamp_negative_lag
        self._resume_lookup = resume
        self._options: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "group_id": group_id,
            "client_id": client_id,
            "enable_auto_commit": False,
            # Never reset a position behind our back: `_position` decides (see its docstring).
            "auto_offset_reset": "none",
            "request_timeout_ms": request_timeout_ms,
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": max(1000, session_timeout_ms // 3),
            "fetch_max_wait_ms": fetch_max_wait_ms,
        }
        self._consumer: Any = None
        self._start_lock = asyncio.Lock()
        self._next: dict[TP, int] = {}  # next offset to process, per owned partition

    async def start(self) -> None:
        async with self._start_lock:
            if self._consumer is not None:
                return
            consumer = AIOKafkaConsumer(**self._options)
            consumer.subscribe(self.topics, listener=_Resume(self, consumer))
            try:
                await consumer.start()
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    await consumer.stop()
                if isinstance(exc, KafkaError | OSError):
                    raise _error("connect", exc) from exc
                raise
            self._consumer = consumer

    async def close(self) -> None:
        async with self._start_lock:
            consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _resume(self, consumer: Any, assigned: list[Any]) -> None:
        """On assignment: continue each partition at the fence stored with the changes."""
        keys = {(tp.topic, tp.partition) for tp in assigned}
        self._next = {tp: off for tp, off in self._next.items() if tp in keys}
        if not assigned:
            return
        try:
            await self._position(consumer, list(assigned), trust_commit=True)
        except Exception:
            # Kafka's committed offsets apply, and the fence still skips what was stored.
            log.exception("alert_intake.resume_failed", group=self.group_id)

    async def _position(self, consumer: Any, tps: list[Any], *, trust_commit: bool) -> None:
        """Place each partition: at the fence, else at the committed offset, else by policy.

        The consumer never resets a position by itself (``auto_offset_reset="none"``): its
        own reset after an out-of-range fetch would hand over records of a re-created topic
        below the fence, which the intake would then skip as already stored. Here the fence
        is checked against the log first (`bot.domain.alerts.resume_positions`). `trust_commit`
        is False after an out-of-range fetch: the committed offset is as stale as the position.
        """
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        known: dict[TP, tuple[int | None, int]] = {}
        for tp in tps:
            committed = await consumer.committed(tp) if trust_commit else None
            known[(tp.topic, tp.partition)] = (committed, int(ends[tp]))
        fences = await self._resume_lookup(known) if self._resume_lookup is not None else {}
        behind = {}
        for tp in tps:
            key = (tp.topic, tp.partition)
            committed = known[key][0]
            if key in fences:
                target = max(fences[key], int(starts[tp]))
                if committed is None or committed < target:
                    behind[tp] = target  # stored before a crash, never committed
            elif committed is None:
                target = int(starts[tp] if self.offset_reset == "earliest" else ends[tp])
            else:
                target = max(committed, int(starts[tp]))
            consumer.seek(tp, target)
            log.info("alert_intake.positioned", topic=key[0], partition=key[1], offset=target)
        if behind:  # tell Kafka too, so its own lag view (`kafka.consumer_lag`) is right
            try:
                await consumer.commit(behind)
            except KafkaError as exc:
                log.warning("alert_intake.position_commit_failed", error=str(exc))

    async def _reposition(self, consumer: Any, tps: list[Any], *, trust_commit: bool) -> None:
        owned = set(consumer.assignment())
        tps = [tp for tp in tps if tp in owned]
        if not tps:
            return
        try:
            await self._position(consumer, tps, trust_commit=trust_commit)
        except (KafkaError, OSError) as exc:
            raise _error("position", exc) from exc

    def _forget(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self._next.pop(tp, None)

    async def fetch(self, *, max_records: int, timeout: float) -> list[RawRecord]:
        await self.start()
        consumer = self._consumer
        try:
            batches = await consumer.getmany(
                timeout_ms=int(timeout * 1000), max_records=max_records
            )
        except OffsetOutOfRangeError as exc:
            # The log no longer has our position: truncated by retention, or the topic was
            # deleted and re-created (a broker without persistent storage restarted).
            positions: dict[Any, int] = exc.args[0] if exc.args else {}
            log.error(
                "alert_intake.offset_out_of_range",
                positions={f"{tp.topic}[{tp.partition}]": off for tp, off in positions.items()},
            )
            await self._reposition(consumer, list(positions), trust_commit=False)
            return []
        except NoOffsetForPartitionError as exc:
            await self._reposition(consumer, list(exc.args[:1]), trust_commit=True)
            return []
        except KafkaError as exc:
            raise _error("fetch", exc) from exc
        records: list[RawRecord] = []
        for tp, messages in batches.items():
            for m in messages:
                records.append(
                    RawRecord(
                        topic=tp.topic,
                        partition=tp.partition,
                        offset=m.offset,
                        timestamp_ms=m.timestamp if m.timestamp is not None else -1,
                        key=m.key,
                        value=m.value,
                    )
                )
            if messages:
                self._next[(tp.topic, tp.partition)] = messages[-1].offset + 1
        return records

    async def commit(self, offsets: Mapping[TP, int]) -> None:
        if not offsets or self._consumer is None:
            return
        try:
            await self._consumer.commit({TopicPartition(t, p): o for (t, p), o in offsets.items()})
        except KafkaError as exc:
            raise _error("commit", exc) from exc

    async def rewind(self, offsets: Mapping[TP, int]) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        owned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        for (topic, partition), offset in offsets.items():
            if (topic, partition) not in owned:
                continue  # revoked meanwhile: its new owner starts from the fence
            with contextlib.suppress(IllegalStateError):
                consumer.seek(TopicPartition(topic, partition), offset)
                self._next[(topic, partition)] = offset

    def assignment(self) -> set[TP]:
        """The partitions this replica owns now (empty until it joined its group)."""
        if self._consumer is None:
            return set()
        return {(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def lag(self) -> dict[TP, int]:
        consumer = self._consumer
        if consumer is None:
            return {}
        found: dict[TP, int] = {}
        for tp in consumer.assignment():
            key = (tp.topic, tp.partition)
            high = consumer.highwater(tp)
            if high is None or key not in self._next:
                continue
            lag = int(high) - self._next[key]
            found[key] = max(0, lag) if self.clamp_negative_lag else lag
        return found


class KafkaProducerClient:
    """One producer for dead letters and events; started on first use, restarted after errors."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "icbot",
        request_timeout_ms: int = 10_000,
        max_batch_size: int = 256 * 1024,
        idempotent: bool = True,
    ) -> None:
        self._options: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "client_id": client_id,
            "request_timeout_ms": request_timeout_ms,
            "enable_idempotence": idempotent,  # tansu refuses it; order: one batch per call
            "acks": "all",
            "linger_ms": 0,
            "max_batch_size": max_batch_size,
        }
        self._timeout = 2 * request_timeout_ms / 1000
        self._producer: Any = None
        self._lock = asyncio.Lock()
        self._partitioner = DefaultPartitioner()

    async def _get(self) -> Any:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(**self._options)
                try:
                    async with asyncio.timeout(self._timeout):
                        await producer.start()
                except BaseException as exc:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    if isinstance(exc, KafkaError | OSError | TimeoutError):
                        raise _error("connect", exc) from exc
                    raise
                self._producer = producer
            return self._producer

    async def _reset(self, broken: Any) -> None:
        async with self._lock:
            if self._producer is not broken:
                return
            self._producer = None
        with contextlib.suppress(Exception):
            await broken.stop()

    async def close(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """One record, waited for until the broker acknowledged it."""
        producer = await self._get()
        try:
            async with asyncio.timeout(self._timeout):
                future = await producer.send(topic, value, key=key, headers=list(headers))
                await future
        except (KafkaError, OSError, TimeoutError) as exc:
            await self._reset(producer)
            raise _error(f"send to {topic}", exc) from exc

    async def send_batch(self, topic: str, key: bytes, values: Sequence[bytes]) -> int:
        """As many of `values` as fit in one record batch, on `key`'s partition; how many."""
        if not values:
            return 0
        producer = await self._get()
        try:
            async with asyncio.timeout(self._timeout):
                partitions = sorted(await producer.partitions_for(topic))
                if not partitions:
                    raise IntegrationError(
                        SYSTEM, ErrorCode.UNAVAILABLE, f"topic {topic!r} has no partitions"
                    )
                partition = self._partitioner(key, partitions, partitions)
                batch = producer.create_batch()
                count = 0
                for value in values:
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        break
                    count += 1
                future = await producer.send_batch(batch, topic, partition=partition)
                await future
        except (KafkaError, OSError, TimeoutError) as exc:
            await self._reset(producer)
            raise _error(f"send to {topic}", exc) from exc
        return count


class KafkaDeadLetters:
    """`bot.domain.ports.DeadLetters`: the record as it came, the reason and its origin in
    headers."""

    def __init__(self, producer: KafkaProducerClient, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    async def dead_letter(self, record: RawRecord, reason: str) -> None:
        await self.producer.send(
            self.topic,
            record.value if record.value is not None else b"",
            key=record.key,
            headers=[
                ("icbot.dead_letter.reason", reason.encode("utf-8")),
                ("icbot.dead_letter.topic", record.topic.encode("utf-8")),
                ("icbot.dead_letter.partition", str(record.partition).encode()),
                ("icbot.dead_letter.offset", str(record.offset).encode()),
            ],
        )


class KafkaEventSink:
    """`bot.domain.ports.EventSink` on one topic."""

    def __init__(self, producer: KafkaProducerClient, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    async def publish(self, key: bytes, values: Sequence[bytes]) -> int:
        return await self.producer.send_batch(self.topic, key, values)


if TYPE_CHECKING:  # mypy proves the adapters are the ports (bot/domain/ports.py)

    def _conforms(
        source: KafkaAlertSource, dead_letters: KafkaDeadLetters, events: KafkaEventSink
    ) -> tuple[AlertSource, DeadLetters, EventSink]:
        return source, dead_letters, events
