"""The due-prompt loop at scale: N open incidents, R replicas, every prompt on time and once.

    python bench/prompt_loop.py [--incidents 10000] [--replicas 3] [--window 60] [--grace 10]
    python bench/prompt_loop.py --incidents 500 --window 10          # a quick smoke run

What runs:
- PostgreSQL: `DATABASE_URL` if set (it must hold no incidents yet), otherwise an embedded
  server from pgserver in a temporary directory under /tmp, removed at the end.
- N open SEV2 incidents, bulk-inserted with COPY: thread already posted (so no cards), an
  incident commander, no escalation timer. Once every replica is ready their `next_prompt_at`
  are set uniformly at random over the next `--window` seconds (after a 1 s lead); with a 30 min
  SEV2 cadence each incident comes due exactly once during the run.
- R replicas, each a child process of this script (`--worker`) that builds the bot exactly as
  `icbot serve` does (`open_services`, workers running: the Prompter polling every `--poll`
  seconds and kicking its Outbox, the Outbox posting). Slack pacing is off
  (`ChannelPacer(per_second=0, burst=1)`): Slack's real 1 msg/s per channel limit is not what
  is measured here. `--slack-latency` makes every chat.postMessage answer that much later.
- FakeSlack, the Slack stand-in, served by this process on 127.0.0.1 and shared by all
  replicas. Each chat.postMessage is timestamped when the stand-in takes it (an `on_change`
  listener); its `find` is indexed so that 10,000 messages in one channel do not turn the
  stand-in itself into the bottleneck.

What is measured, per prompt: the delay from its due time to Slack receiving it (split into
due -> claimed, the timeline entry's `occurred_at`, and claimed -> posted); posted vs expected;
duplicates (the same `event_payload.key` posted twice, and incidents prompted twice in the
timeline); the database's CPU (every process of the postmaster, including backends that
exited, via psutil) and `pg_stat_database` deltas over the run; the replicas' and this
process's CPU. The run lasts `--window + --grace` seconds from the first due time and then
stops. It is a measurement, not a test: it prints a verdict and exits 0 whatever it says.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SCRIPT = str(Path(__file__).resolve())
CHANNEL_NAME = "waqiti-incidents"
COMMANDER = "UBENCHIC1"
SEVERITY = "sev2"
LEAD = 1.0  # seconds between setting the due times and the first of them
READY_TIMEOUT = 120.0
P99_TARGET = 1.0
OTHER_LOAD_WARN = 0.1  # CPUs kept busy by processes outside the benchmark
WORKER_ENV = "ICBOT_BENCH_WORKER"
PG_STAT_FIELDS = (
    "xact_commit", "xact_rollback", "blks_read", "blks_hit", "tup_returned", "tup_fetched",
    "tup_inserted", "tup_updated", "tup_deleted", "deadlocks",
)  # fmt: skip


# ---------------------------------------------------------------- replica (child process)


async def _worker(config: dict[str, Any]) -> None:
    from bot.core.settings import Settings
    from bot.delivery.outbox import ChannelPacer
    from bot.runtime.services import open_services

    settings = Settings(
        _env_file=None,
        slack_api_url=config["slack_url"],
        slack_bot_token=config["token"],
        incident_channel=CHANNEL_NAME,
        timer_poll_seconds=config["poll"],
        data_dir=Path(config["data_dir"]),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with open_services(
        settings,
        dsn=config["dsn"],
        token=config["token"],
        pacer=ChannelPacer(per_second=0, burst=1),
    ):
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        # Bounded even if the parent dies without stopping us.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=config["max_seconds"])


def worker_main() -> None:
    from bot.core import logs

    logs.configure("json", "INFO")  # as `icbot serve` logs; stderr goes to a file
    asyncio.run(_worker(json.loads(os.environ.pop(WORKER_ENV))))


@dataclass
class Replica:
    proc: asyncio.subprocess.Process
    log_path: Path

    async def ready(self) -> None:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout=READY_TIMEOUT)
        if line.strip() != b"ready":
            raise RuntimeError(f"replica {self.proc.pid} did not start; see {self.log_path}")

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    def log_counts(self) -> collections.Counter[str]:
        """Warnings and errors the replica logged, by event name."""
        counts: collections.Counter[str] = collections.Counter()
        with contextlib.suppress(OSError), self.log_path.open() as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:
                    counts["(unparsed line)"] += 1
                    continue
                if record.get("level") in ("warning", "error", "critical"):
                    counts[f"{record['level']}:{record.get('event')}"] += 1
        return counts


async def start_replica(config: dict[str, Any], log_path: Path) -> Replica:
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, SCRIPT, "--worker",
            env={**os.environ, WORKER_ENV: json.dumps(config)},  # the DSN stays out of argv
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=log_file,
        )  # fmt: skip
    return Replica(proc, log_path)


# ---------------------------------------------------------------- Slack stand-in (this process)


def indexed_fake_slack() -> Any:
    """FakeSlack whose `find` is a dict lookup instead of a scan of the channel's messages."""
    from sandbox.slack_api import FakeSlack, Message

    class IndexedFakeSlack(FakeSlack):
        def __init__(self) -> None:
            super().__init__(channels=(CHANNEL_NAME,))
            self.by_ts: dict[tuple[str, str], Message] = {}
            self.on_change.append(self._index)

        def _index(self, kind: str, obj: Any) -> None:
            if kind == "post" and isinstance(obj, Message):
                self.by_ts[(obj.channel, obj.ts)] = obj
            elif kind == "delete" and isinstance(obj, Message):
                self.by_ts.pop((obj.channel, obj.ts), None)

        def find(self, channel: str, ts: str) -> Message | None:
            return self.by_ts.get((self.channel_id(channel), ts))

    return IndexedFakeSlack()


@dataclass
class Received:
    """chat.postMessage calls as the stand-in took them: (wall time, metadata key)."""

    posts: list[tuple[float, str]] = field(default_factory=list)
    other: int = 0

    def listener(self, kind: str, obj: Any) -> None:
        if kind != "post":
            return
        metadata = getattr(obj, "metadata", None) or {}
        key = (metadata.get("event_payload") or {}).get("key")
        if key:
            self.posts.append((time.time(), str(key)))
        else:
            self.other += 1


# ---------------------------------------------------------------- database


@contextlib.asynccontextmanager
async def database(tmp: Path) -> AsyncIterator[tuple[str, bool]]:
    """(dsn, embedded?) of DATABASE_URL or of an embedded server under `tmp`."""
    from bot.store import db

    dsn = os.environ.get("DATABASE_URL")
    async with db.database(dsn, tmp) as uri:
        yield uri, not dsn


async def seed(pool: Any, *, count: int, channel_id: str) -> list[int]:
    """Insert `count` open SEV2 incidents with a posted thread and a commander; their ids."""
    now = datetime.now(UTC)
    declared = now - timedelta(minutes=20)
    async with pool.acquire() as conn:
        if await conn.fetchval("SELECT count(*) FROM incidents"):
            raise SystemExit("the database already holds incidents; use an empty one")
        base = int(declared.timestamp())
        await conn.copy_records_to_table(
            "incidents",
            columns=[
                "title", "severity", "status", "declared_by", "channel_id", "thread_ts",
                "declared_at", "updated_at", "card_version", "card_posted_version",
            ],
            records=[
                (
                    f"Bench incident {i}", SEVERITY, "investigating", COMMANDER, channel_id,
                    f"{base}.{i:06d}", declared, declared, 1, 1,
                )
                for i in range(count)
            ],
        )  # fmt: skip
        ids: list[int] = [r["id"] for r in await conn.fetch("SELECT id FROM incidents ORDER BY id")]
        await conn.copy_records_to_table(
            "incident_roles",
            columns=["incident_id", "role", "user_id", "assigned_by", "assigned_at"],
            records=[(i, "incident commander", COMMANDER, COMMANDER, declared) for i in ids],
        )
        await conn.execute("VACUUM ANALYZE incidents")
        await conn.execute("VACUUM ANALYZE incident_roles")
    return ids


async def set_due_times(pool: Any, due: dict[int, datetime]) -> None:
    ids = list(due)
    async with pool.acquire() as conn:
        await conn.execute(
            """UPDATE incidents i SET next_prompt_at = d.due
               FROM unnest($1::bigint[], $2::timestamptz[]) AS d(id, due) WHERE i.id = d.id""",
            ids,
            [due[i] for i in ids],
        )


async def pg_stats(pool: Any) -> dict[str, int]:
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        row = await conn.fetchrow(
            f"SELECT {', '.join(PG_STAT_FIELDS)} FROM pg_stat_database"
            " WHERE datname = current_database()"
        )
    return {k: int(row[k] or 0) for k in PG_STAT_FIELDS}


async def pg_settings(pool: Any) -> dict[str, str]:
    names = ["server_version", "shared_buffers", "synchronous_commit", "fsync", "data_directory"]
    out: dict[str, str] = {}
    async with pool.acquire() as conn:
        for name in names:
            try:
                out[name] = str(await conn.fetchval(f"SHOW {name}"))
            except Exception as exc:  # data_directory needs pg_read_all_settings
                out[name] = f"n/a ({type(exc).__name__})"
    return out


class PgCpu:
    """CPU seconds of every process of one local postmaster, exited backends included."""

    def __init__(self, data_directory: str) -> None:
        import psutil  # type: ignore[import-untyped,unused-ignore]

        self.postmaster: Any = None
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            pid = int((Path(data_directory) / "postmaster.pid").read_text().split()[0])
            self.postmaster = psutil.Process(pid)

    def snapshot(self, client_pids: set[int]) -> dict[str, float] | None:
        """Totals by role: client backends, background processes (the postmaster, checkpointer,
        walwriter, autovacuum...), and exited children (reaped by the postmaster)."""
        import psutil  # type: ignore[import-untyped,unused-ignore]

        if self.postmaster is None:
            return None
        out = {"client backends": 0.0, "background": 0.0, "exited": 0.0}
        try:
            own = self.postmaster.cpu_times()
            out["background"] += own.user + own.system
            out["exited"] += own.children_user + own.children_system
            children = self.postmaster.children()
        except psutil.Error:
            return None
        for child in children:
            try:
                times = child.cpu_times()
            except psutil.Error:
                continue  # exited just now: shows up in 'exited' next time
            role = "client backends" if child.pid in client_pids else "background"
            out[role] += times.user + times.system
        return out


async def client_backends(pool: Any) -> set[int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'"
        )
    return {r["pid"] for r in rows}


def busy(times: Any) -> float:
    """Non-idle CPU seconds of the whole machine."""
    fields = ("user", "nice", "system", "irq", "softirq")
    return float(sum(getattr(times, name, 0.0) for name in fields))


def process_cpu(pids: Sequence[int]) -> float:
    import psutil  # type: ignore[import-untyped,unused-ignore]

    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


# ---------------------------------------------------------------- figures


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:,.0f} ms"


def distribution(label: str, values: Sequence[float]) -> str:
    s = sorted(values)
    cells = [_ms(percentile(s, p)) for p in (50, 90, 99)] + [_ms(s[-1] if s else math.nan)]
    return f"  {label:<28}" + "".join(f"{c:>11}" for c in cells)


@dataclass
class Outcome:
    expected: int
    delays: list[float]  # due -> Slack took the post, first post of each prompt
    claim_lags: list[float]  # due -> claimed (occurred_at of the timeline entry)
    post_lags: list[float]  # claimed -> Slack took the post
    posted_unique: int
    duplicate_posts: int
    double_prompted: int  # incidents with more than one prompt in the timeline
    missing: int
    outbox_pending: int
    outbox_failed: int
    max_attempts: int
    stray_posts: int  # posts that were not prompts of the benchmark's incidents
    busiest_second: int
    first_due: float
    last_post: float


def analyse(
    *,
    due: dict[int, datetime],
    posts: list[tuple[float, str]],
    claimed: dict[int, list[datetime]],
    outbox_pending: int,
    outbox_failed: int,
    max_attempts: int,
    other_posts: int,
) -> Outcome:
    first: dict[str, float] = {}
    seen: collections.Counter[str] = collections.Counter()
    stray = other_posts
    for at, key in posts:
        seen[key] += 1
        first.setdefault(key, at)
    delays: list[float] = []
    post_lags: list[float] = []
    claim_lags: list[float] = []
    prompted: set[int] = set()
    for key, at in first.items():
        incident, _, entry = key.partition(":")
        try:
            incident_id = int(incident.removeprefix("inc"))
        except ValueError:
            stray += 1
            continue
        if incident_id not in due or entry != "entry1":
            stray += 1
            continue
        prompted.add(incident_id)
        delays.append(at - due[incident_id].timestamp())
        occurred = claimed.get(incident_id)
        if occurred:
            post_lags.append(at - occurred[0].timestamp())
    for incident_id, occurred in claimed.items():
        claim_lags.append((occurred[0] - due[incident_id]).total_seconds())
    per_second = collections.Counter(int(at) for at, _ in posts)
    return Outcome(
        expected=len(due),
        delays=delays,
        claim_lags=claim_lags,
        post_lags=post_lags,
        posted_unique=len(prompted),
        duplicate_posts=sum(n - 1 for n in seen.values() if n > 1),
        double_prompted=sum(1 for occurred in claimed.values() if len(occurred) > 1),
        missing=len(due) - len(prompted),
        outbox_pending=outbox_pending,
        outbox_failed=outbox_failed,
        max_attempts=max_attempts,
        stray_posts=stray,
        busiest_second=max(per_second.values(), default=0),
        first_due=min(d.timestamp() for d in due.values()),
        last_post=max((at for at, _ in posts), default=math.nan),
    )


def render(
    args: argparse.Namespace,
    out: Outcome,
    *,
    span: float,
    pg_cpu: dict[str, float] | None,
    stats: dict[str, int],
    replica_cpu: float,
    parent_cpu: float,
    system_busy: float,
    settings: dict[str, str],
    log_counts: collections.Counter[str],
) -> str:
    lines = [
        f"prompt loop: {args.incidents:,} open SEV2 incidents due uniformly over {args.window:g} s,"
        f" {args.replicas} replicas (Prompter poll {args.poll:g} s, Outbox unpaced),"
        f" Slack answers after {args.slack_latency * 1000:.0f} ms;"
        f" measured span {span:.1f} s on {os.cpu_count()} CPUs",
        f"PostgreSQL {settings.get('server_version')}, shared_buffers"
        f" {settings.get('shared_buffers')}, synchronous_commit"
        f" {settings.get('synchronous_commit')}, fsync {settings.get('fsync')}",
        "",
        f"  {'delay (due -> Slack)':<28}{'p50':>11}{'p90':>11}{'p99':>11}{'max':>11}",
        distribution("due -> Slack took the post", out.delays),
        distribution("  due -> claimed (timeline)", out.claim_lags),
        distribution("  claimed -> Slack", out.post_lags),
        "",
        f"  posted / expected            {out.posted_unique:,} / {out.expected:,}"
        f"   (missing {out.missing:,}; outbox still pending {out.outbox_pending:,},"
        f" failed {out.outbox_failed:,}; max attempts {out.max_attempts})",
        f"  duplicates                   {out.duplicate_posts} posted twice (same metadata key),"
        f" {out.double_prompted} incidents prompted twice in the timeline,"
        f" {out.stray_posts} stray posts",
        f"  throughput                   {args.incidents / args.window:,.0f}/s offered,"
        f" busiest second {out.busiest_second}/s;"
        f" last post {out.last_post - out.first_due - args.window:+.1f} s after the window",
    ]
    lines.append("")
    lines.append(f"  CPU over the span ({span:.1f} s)        seconds     cores  ms/prompt*")
    rows: list[tuple[str, float | None]] = []
    if pg_cpu is None:
        rows.append(("PostgreSQL (not local: n/a)", None))
    else:
        rows.append(("PostgreSQL, all processes", sum(pg_cpu.values())))
        rows.extend((f"  {k}", v) for k, v in pg_cpu.items())
    rows.append((f"replicas ({args.replicas} processes)", replica_cpu))
    rows.append(("this process (FakeSlack, harness)", parent_cpu))
    ours = (sum(pg_cpu.values()) if pg_cpu else 0.0) + replica_cpu + parent_cpu
    rows.append(("other processes on the machine", max(0.0, system_busy - ours)))
    for label, value in rows:
        if value is None:
            lines.append(f"  {label:<36}{'n/a':>8}")
            continue
        per = value / out.expected * 1000
        lines.append(f"  {label:<36}{value:>8.2f}{value / span:>10.2f}{per:>12.2f}")
    other = max(0.0, system_busy - ours) / span
    if other > OTHER_LOAD_WARN:
        lines.append(
            f"  ! other processes kept {other:.2f} of {os.cpu_count()} CPUs busy: contended figures"
        )
    lines.append("")
    per_prompt = out.expected
    lines.append("  pg_stat_database over the span        total   per prompt*")
    for name in PG_STAT_FIELDS:
        value = stats.get(name, 0)
        lines.append(f"  {name:<36}{value:>9,}{value / per_prompt:>13.1f}")
    lines.append(f"  * divided by the {out.expected:,} prompts due, whether or not all were posted")
    if log_counts:
        lines.append("")
        lines.append(
            "  replica warnings/errors: "
            + ", ".join(f"{k} x{v}" for k, v in log_counts.most_common())
        )
    return "\n".join(lines)


def verdict(out: Outcome) -> list[str]:
    p99 = percentile(sorted(out.delays), 99) if out.delays else math.inf
    checks = [
        (f"every prompt posted ({out.posted_unique:,}/{out.expected:,})", out.missing == 0),
        (f"p99 due -> Slack under {P99_TARGET:g} s ({_ms(p99)})", p99 < P99_TARGET),
        (
            "zero duplicates",
            out.duplicate_posts == 0 and out.double_prompted == 0,
        ),
    ]
    lines = [f"  {'PASS' if ok else 'FAIL'}  {text}" for text, ok in checks]
    met = all(ok for _, ok in checks)
    lines.append("verdict: " + ("target met" if met else "target NOT met"))
    return lines


# ---------------------------------------------------------------- the run


async def run(args: argparse.Namespace) -> None:
    import psutil  # type: ignore[import-untyped,unused-ignore]

    from bot.core import logs
    from bot.store import db

    logs.configure("console", "WARNING")
    tmp = Path(tempfile.mkdtemp(prefix="icbot-bench-prompts-", dir="/tmp"))
    replicas: list[Replica] = []
    try:
        fake = indexed_fake_slack()
        received = Received()
        fake.on_change.append(received.listener)
        if args.slack_latency:
            fake.latency["chat.postMessage"] = args.slack_latency
        await fake.start()
        async with database(tmp) as (dsn, embedded):
            pool = await db.create_pool(dsn, min_size=1, max_size=2)
            try:
                async with pool.acquire() as conn:
                    await db.migrate(conn)
                t = time.perf_counter()
                ids = await seed(
                    pool, count=args.incidents, channel_id=fake.channel_id(CHANNEL_NAME)
                )
                print(
                    f"seeded {len(ids):,} incidents in {time.perf_counter() - t:.1f} s"
                    f" ({'embedded PostgreSQL under ' + str(tmp) if embedded else 'DATABASE_URL'})",
                    flush=True,
                )
                settings = await pg_settings(pool)
                pg = PgCpu(settings.get("data_directory", ""))

                run_for = LEAD + args.window + args.grace
                config = {
                    "dsn": dsn,
                    "slack_url": fake.url,
                    "token": fake.token,
                    "poll": args.poll,
                    "data_dir": str(tmp / "replica"),
                    "max_seconds": run_for + READY_TIMEOUT + 60,
                }
                for n in range(args.replicas):
                    replicas.append(await start_replica(config, tmp / f"replica{n}.log"))
                await asyncio.gather(*(r.ready() for r in replicas))
                print(f"{len(replicas)} replicas ready; running {run_for:.0f} s", flush=True)

                rng = random.Random(args.seed)
                start = datetime.now(UTC) + timedelta(seconds=LEAD)
                due = {i: start + timedelta(seconds=rng.uniform(0, args.window)) for i in ids}
                await set_due_times(pool, due)

                pids = [r.proc.pid for r in replicas]
                stats_before = await pg_stats(pool)
                cpu_before = pg.snapshot(await client_backends(pool))
                replica_before = process_cpu(pids)
                parent_before = psutil.Process().cpu_times()
                system_before = psutil.cpu_times()
                t0 = time.monotonic()
                deadline = start.timestamp() + args.window + args.grace
                while (now := time.time()) < deadline:
                    await asyncio.sleep(min(5.0, deadline - now))
                    elapsed = time.time() - start.timestamp()
                    due_so_far = sum(1 for d in due.values() if d.timestamp() <= time.time())
                    claimed_so_far = await pool.fetchval(
                        "SELECT count(*) FROM timeline WHERE kind = 'status_prompt'"
                    )
                    print(
                        f"  t={elapsed:5.1f} s  due {due_so_far:,}  claimed {claimed_so_far:,}"
                        f"  posted {len(received.posts):,}",
                        flush=True,
                    )
                span = time.monotonic() - t0
                cpu_after = pg.snapshot(await client_backends(pool))
                replica_cpu = process_cpu(pids) - replica_before
                parent_after = psutil.Process().cpu_times()
                system_after = psutil.cpu_times()
                parent_cpu = (parent_after.user + parent_after.system) - (
                    parent_before.user + parent_before.system
                )
                stats_after = await pg_stats(pool)

                for replica in replicas:
                    await replica.stop()
                log_counts: collections.Counter[str] = collections.Counter()
                for replica in replicas:
                    log_counts.update(replica.log_counts())

                async with pool.acquire() as conn:
                    rows = await conn.fetch(
                        "SELECT incident_id, occurred_at FROM timeline"
                        " WHERE kind = 'status_prompt' ORDER BY id"
                    )
                    box = await conn.fetchrow(
                        """SELECT count(*) FILTER (WHERE done_at IS NULL) AS pending,
                                  count(*) FILTER (WHERE failed) AS failed,
                                  coalesce(max(attempts), 0) AS max_attempts
                           FROM outbox WHERE channel = 'slack'"""
                    )
            finally:
                await pool.close()
        await fake.stop()
    finally:
        for replica in replicas:
            if replica.proc.returncode is None:
                replica.proc.kill()
                await replica.proc.wait()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    assert box is not None
    claimed: dict[int, list[datetime]] = collections.defaultdict(list)
    for row in rows:
        claimed[row["incident_id"]].append(row["occurred_at"])
    outcome = analyse(
        due=due,
        posts=received.posts,
        claimed=claimed,
        outbox_pending=box["pending"],
        outbox_failed=box["failed"],
        max_attempts=box["max_attempts"],
        other_posts=received.other,
    )
    pg_cpu = None
    if cpu_before is not None and cpu_after is not None:
        pg_cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_after}
    print()
    print(
        render(
            args,
            outcome,
            span=span,
            pg_cpu=pg_cpu,
            stats={k: stats_after[k] - stats_before[k] for k in PG_STAT_FIELDS},
            replica_cpu=replica_cpu,
            parent_cpu=parent_cpu,
            system_busy=busy(system_after) - busy(system_before),
            settings=settings,
            log_counts=log_counts,
        )
    )
    print()
    print("\n".join(verdict(outcome)))
    if args.keep:
        print(f"(kept {tmp})")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--window", type=float, default=60.0, help="seconds the due times span")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds after the window")
    parser.add_argument("--poll", type=float, default=0.2, help="Prompter poll interval, s")
    parser.add_argument(
        "--slack-latency", type=float, default=0.0, help="chat.postMessage answer delay, s"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (replica logs)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main()
        return
    if args.incidents < 1 or args.replicas < 1 or args.window <= 0 or args.grace < 0:
        parser.error("--incidents and --replicas must be >= 1, --window > 0, --grace >= 0")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
