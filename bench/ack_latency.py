"""Ack latency of `/ic status` under a fixed request rate, next to a bare Bolt app.

    python bench/ack_latency.py [--rate 100] [--seconds 10] [--warmup 2] [--rounds 2]

One process (this one) serves both apps on 127.0.0.1, each on its own port: icbot as `icbot
serve` builds it (`build_web_app` + `build_slack_app`, outbox worker running, embedded
PostgreSQL) and a bare Bolt app whose only `/ic` listener acks. Two helpers run as child
processes of this file, so that neither shares the apps' event loop: FakeSlack, the Slack Web
API stand-in (`--fake-slack`), and the load generator (`--loadgen`, one per phase). The load is
open loop: request i is sent at start + i/rate whether or not earlier ones were answered, each
freshly signed. Phases alternate (bare, icbot, bare, icbot, ...) to control drift; after each
phase the server waits until icbot's post-ack work and its outbox are done, so no phase pays
for the one before.

It is a measurement, not a test: it prints a verdict and exits 0 whatever the verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

SCRIPT = str(Path(__file__).resolve())
HOST = "127.0.0.1"
CHANNEL_NAME = "waqiti-incidents"
USER_NAME = "bench-user"
SLACK_ACK_LIMIT = 3.0  # Slack shows the user an error if the ack takes longer
RATIO_TARGET = 1.5  # icbot p99 / bare p99
NEAR_LIMIT = 1.0  # "never near 3 s": every icbot ack under this, no errors
REQUEST_TIMEOUT = 10.0
SETTLE_TIMEOUT = 60.0
OTHER_LOAD_WARN = 0.1  # cores used by processes outside the benchmark during a phase


# ---------------------------------------------------------------- load generator (child process)


@dataclass
class LoadPlan:
    url: str
    signing_secret: str
    rate: float
    seconds: float
    warmup: float
    texts: list[str]  # request i sends texts[i % len(texts)]
    user_id: str
    user_name: str
    channel_id: str
    channel_name: str
    response_urls: list[str]


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # measured requests only, seconds
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    elapsed: float = 0.0  # first to last measured send
    max_send_lag: float = 0.0  # how late the generator was against its schedule
    cpu: float = 0.0  # CPU seconds the generator process used


async def _generate(plan: LoadPlan) -> LoadResult:
    from sandbox.slack_requests import SlackRequests

    signer = SlackRequests(plan.signing_secret)
    total = math.ceil(plan.rate * (plan.warmup + plan.seconds))
    skip = math.ceil(plan.rate * plan.warmup)
    result = LoadResult()
    send_times: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        req = signer.slash_command(
            "/ic",
            f"{plan.texts[i % len(plan.texts)]} #{i}",
            user_id=plan.user_id,
            user_name=plan.user_name,
            channel_id=plan.channel_id,
            channel_name=plan.channel_name,
            response_url=plan.response_urls[i % len(plan.response_urls)],
        )
        started = time.perf_counter()
        kind: str | None = None
        try:
            async with session.post(plan.url, data=req.body, headers=req.headers) as resp:
                await resp.read()
                if resp.status != 200:
                    kind = f"http {resp.status}"
        except TimeoutError:
            kind = "timeout"
        except aiohttp.ClientError as exc:
            kind = type(exc).__name__
        latency = time.perf_counter() - started
        if i < skip:
            return
        send_times.append(started)
        if kind is None:
            result.latencies.append(latency)
        else:
            result.errors += 1
            result.error_kinds[kind] = result.error_kinds.get(kind, 0) + 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks: list[asyncio.Task[None]] = []
        t0 = time.perf_counter() + 0.05
        for i in range(total):
            due = t0 + i / plan.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            result.max_send_lag = max(result.max_send_lag, time.perf_counter() - due)
            tasks.append(asyncio.create_task(one(session, i)))
        result.sent = len(tasks)
        await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT + 5)
        for task in tasks:
            task.cancel()
    if send_times:
        result.elapsed = max(send_times) - min(send_times)
    result.cpu = time.process_time()
    return result


def loadgen_main() -> None:
    """`--loadgen`: read a LoadPlan as JSON on stdin, write a LoadResult as JSON on stdout."""
    plan = LoadPlan(**json.loads(sys.stdin.read()))
    result = asyncio.run(_generate(plan))
    sys.stdout.write(json.dumps(result.__dict__))


async def run_load(plan: LoadPlan) -> LoadResult:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        SCRIPT,
        "--loadgen",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    budget = plan.warmup + plan.seconds + REQUEST_TIMEOUT + 30
    try:
        out, _ = await asyncio.wait_for(
            proc.communicate(json.dumps(plan.__dict__).encode()), budget
        )
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"load generator exited with {proc.returncode}")
    return LoadResult(**json.loads(out))


# ---------------------------------------------------------------- FakeSlack (child process)


@dataclass
class SlackStub:
    """What the parent needs to know about the FakeSlack child."""

    url: str
    token: str
    user_id: str
    channel_id: str
    response_urls: list[str]


async def _fake_slack(response_urls: int) -> None:
    from sandbox.slack_api import FakeSlack

    async with FakeSlack(channels=(CHANNEL_NAME,)) as slack:
        channel_id = slack.channel_id(CHANNEL_NAME)
        user_id = slack.add_user(USER_NAME)
        stub = SlackStub(
            url=slack.url,
            token=slack.token,
            user_id=user_id,
            channel_id=channel_id,
            response_urls=[
                slack.new_response_url(channel=channel_id, user=user_id)
                for _ in range(response_urls)
            ],
        )
        sys.stdout.write(json.dumps(stub.__dict__) + "\n")
        sys.stdout.flush()
        await asyncio.to_thread(sys.stdin.read)  # serve until the parent closes our stdin
        replies = sum(len(slack.thread(channel_id, m.ts)) for m in slack.roots(channel_id))
        summary = {
            "thread_replies": replies,
            "response_url_posts": len(slack.calls_to("response_url")),
            "api_calls": len(slack.calls),
        }
        sys.stdout.write(json.dumps(summary) + "\n")


def fake_slack_main(response_urls: int) -> None:
    """`--fake-slack N`: serve FakeSlack; one JSON line (a SlackStub) out, a summary at EOF."""
    asyncio.run(_fake_slack(response_urls))


class FakeSlackProcess:
    def __init__(self, proc: asyncio.subprocess.Process, stub: SlackStub) -> None:
        self.proc = proc
        self.stub = stub

    async def finish(self) -> dict[str, int]:
        """Stop the child; return what it saw."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        line = await asyncio.wait_for(self.proc.stdout.readline(), 15)
        await asyncio.wait_for(self.proc.wait(), 15)
        summary: dict[str, int] = json.loads(line)
        return summary


@contextlib.asynccontextmanager
async def fake_slack_process(response_urls: int) -> AsyncIterator[FakeSlackProcess]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        SCRIPT,
        "--fake-slack",
        str(response_urls),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=2**22,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line:
            raise RuntimeError("FakeSlack did not start")
        yield FakeSlackProcess(proc, SlackStub(**json.loads(line)))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# ---------------------------------------------------------------- the worker process


@contextlib.asynccontextmanager
async def worker_process(*, dsn: str, slack_url: str, token: str) -> AsyncIterator[int]:
    """`--no-worker`: the outbox, prompt and other loops in a child process of their own, as
    `icbot worker` runs them (same `open_services(..., run_workers=True)`), with the bench's
    settings (pacer off, every other integration off). Yields its pid."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        SCRIPT,
        "--worker-child",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "BENCH_DSN": dsn, "BENCH_SLACK_URL": slack_url, "BENCH_TOKEN": token},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError("the worker process did not start")
        yield proc.pid
    finally:
        if proc.returncode is None:
            assert proc.stdin is not None
            proc.stdin.close()  # the child stops when its stdin closes
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def bench_settings(slack_url: str) -> Any:
    """Nothing from the environment or .env: Slack is FakeSlack and every other integration
    stays off, so all traffic stays on 127.0.0.1."""
    from bot.core.settings import Settings

    off = ("pagerduty_api_token", "kubeconfig", "kafka_bootstrap_servers", "vault_addr")
    os.environ.pop("KUBERNETES_SERVICE_HOST", None)  # no in-cluster Kubernetes either
    return Settings(
        _env_file=None,
        slack_api_url=slack_url,
        incident_channel=CHANNEL_NAME,
        **{name: None for name in off if name in Settings.model_fields},
    )


async def worker_child() -> None:
    from bot.core import logs
    from bot.delivery.outbox import ChannelPacer
    from bot.runtime.services import open_services

    logs.configure("json", "WARNING")
    async with open_services(
        bench_settings(os.environ["BENCH_SLACK_URL"]),
        dsn=os.environ["BENCH_DSN"],
        token=os.environ["BENCH_TOKEN"],
        pacer=ChannelPacer(per_second=0, burst=1),
        run_workers=True,
    ):
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin


async def repeat_check_cost(pool: Any, n: int = 2000) -> str:
    """What the repeat check before every command's ack (`once.seen`: one indexed lookup in
    `handled_requests`) costs, alone and sequentially, through the app's pool."""
    from bot.core.models import utcnow
    from bot.domain import once

    times: list[float] = []
    for i in range(n):
        request = once.Request(
            key=once.trigger_key(f"bench-{i}-{secrets.token_hex(4)}"), at=utcnow()
        )
        t = time.perf_counter()
        await once.seen(pool, request)
        times.append(time.perf_counter() - t)
    times.sort()
    rows = await pool.fetchval("SELECT count(*) FROM handled_requests")
    ms = [percentile(times, p) * 1000 for p in (50, 90, 99)]
    return (
        f"repeat check (once.seen, {n} sequential lookups, {rows} rows in handled_requests):"
        f" p50 {ms[0]:.2f} ms, p90 {ms[1]:.2f} ms, p99 {ms[2]:.2f} ms,"
        f" max {times[-1] * 1000:.2f} ms"
    )


# ---------------------------------------------------------------- statistics and report


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Row:
    label: str
    rate: float
    n: int
    p50: float
    p90: float
    p99: float
    max: float
    errors: int

    @classmethod
    def of(cls, label: str, results: Sequence[LoadResult]) -> Row:
        lat = sorted(x for r in results for x in r.latencies)
        measured = sum(len(r.latencies) + r.errors for r in results)
        elapsed = sum(r.elapsed for r in results)
        return cls(
            label=label,
            rate=(measured - len(results)) / elapsed if elapsed > 0 else float("nan"),
            n=len(lat),
            p50=percentile(lat, 50),
            p90=percentile(lat, 90),
            p99=percentile(lat, 99),
            max=lat[-1] if lat else float("nan"),
            errors=sum(r.errors for r in results),
        )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def render(rows: Sequence[Row]) -> str:
    head = (
        f"{'phase':<14} {'rate/s':>7} {'n':>6} {'p50 ms':>8} {'p90 ms':>8}"
        f" {'p99 ms':>8} {'max ms':>8} {'errors':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.label:<14} {r.rate:7.1f} {r.n:6d} {_ms(r.p50)} {_ms(r.p90)}"
            f" {_ms(r.p99)} {_ms(r.max)} {r.errors:6d}"
        )
    return "\n".join(lines)


def verdict(bare: Row, icbot: Row) -> list[str]:
    ratio = icbot.p99 / bare.p99 if bare.p99 > 0 else float("inf")
    ratio_ok = ratio <= RATIO_TARGET
    near_ok = icbot.max < NEAR_LIMIT and icbot.errors == 0 and bare.errors == 0
    return [
        f"p99 ratio icbot/bare: {ratio:.2f}x (target <= {RATIO_TARGET}x): "
        + ("PASS" if ratio_ok else "FAIL"),
        f"Slack's {SLACK_ACK_LIMIT:.0f} s limit: icbot max {icbot.max * 1000:.1f} ms"
        f" ({icbot.max / SLACK_ACK_LIMIT:.1%} of it), errors {icbot.errors}"
        f" (criterion: max < {NEAR_LIMIT:.0f} s, no errors): " + ("PASS" if near_ok else "FAIL"),
    ]


# ---------------------------------------------------------------- the server side


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1, a free port; yield its /slack/events URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host=HOST, port=0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}/slack/events"
    finally:
        await runner.cleanup()


def build_bare_app(
    *, token: str, base_url: str, signing_secret: str, process_before_response: bool = False
) -> web.Application:
    """A Bolt app that only acks `/ic`, verifying signatures itself (Bolt's default).

    `process_before_response=True` (the `bare-pbr` reference phase, `--reference`) answers when
    the listener returns instead of polling for the ack every 10 ms, as icbot does."""
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
    from slack_bolt.async_app import AsyncAck, AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    bolt = AsyncApp(
        client=AsyncWebClient(token=token, base_url=base_url),
        request_verification_enabled=True,
        signing_secret=signing_secret,
        process_before_response=process_before_response,
    )

    @bolt.command("/ic")
    async def only_ack(ack: AsyncAck) -> None:
        await ack()

    async def events(request: web.Request) -> web.Response:
        bolt_response = await bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    app = web.Application()
    app.router.add_post("/slack/events", events)
    return app


async def post_once(url: str, body: str, headers: dict[str, str]) -> int:
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, data=body, headers=headers) as resp,
    ):
        await resp.read()
        return resp.status


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], *, timeout: float, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} within {timeout}s")
        await asyncio.sleep(0.05)


class CpuUse:
    """CPU seconds used on this host (Linux /proc), split by who used them.

    Groups: this process ("server"), the embedded PostgreSQL's processes, the FakeSlack child,
    and everything else (other processes on the machine); the load generator reports its own.
    """

    def __init__(
        self, *, postmaster: int | None, fake_slack: int | None, worker: int | None = None
    ) -> None:
        self.roots = {"server": os.getpid(), "postgres": postmaster, "fake-slack": fake_slack}
        if worker is not None:  # --no-worker: the background loops' own process
            self.roots["worker"] = worker
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def snapshot(self) -> dict[str, float] | None:
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:9]]
            stats: dict[int, tuple[int, float]] = {}
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    with contextlib.suppress(OSError, ValueError, IndexError):
                        with open(f"/proc/{entry.name}/stat") as f:
                            rest = f.read().rsplit(")", 1)[1].split()
                        used = (int(rest[11]) + int(rest[12])) / self.tick
                        stats[int(entry.name)] = (int(rest[1]), used)
        except OSError:
            return None
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        out = {"host": (sum(v) - v[3] - v[4]) / self.tick}  # all but idle and iowait
        for name, root in self.roots.items():
            total, todo = 0.0, [root] if root in stats else []
            while todo:
                pid = todo.pop()
                total += stats[pid][1]
                # The server's own children are counted on their own (or, the generator, by it).
                todo.extend(c for c in children.get(pid, []) if name != "server")
            out[name] = total
        return out

    @staticmethod
    def summary(
        before: dict[str, float] | None, after: dict[str, float] | None, loadgen: float, wall: float
    ) -> tuple[str, float]:
        """A line of cores used per group, and the cores used by other processes."""
        if before is None or after is None or wall <= 0:
            return "cpu: n/a", 0.0
        used = {k: (after[k] - before[k]) / wall for k in after}
        used["loadgen"] = loadgen / wall
        other = max(0.0, used.pop("host") - sum(used.values()))
        parts = ", ".join(f"{k} {v:.2f}" for k, v in used.items())
        return f"cores used: {parts}, other processes {other:.2f}", other


class LoopLag:
    """How late the server's event loop wakes a short sleep: time it spent busy elsewhere."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.samples: list[float] = []

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(self.interval)
            self.samples.append(loop.time() - t - self.interval)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[LoopLag]:
        task = asyncio.create_task(self._sample())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def summary(self) -> str:
        lag = sorted(self.samples) or [float("nan")]
        return f"loop lag p99 {percentile(lag, 99) * 1000:.1f} ms, max {lag[-1] * 1000:.1f} ms"


async def bench(args: argparse.Namespace) -> None:
    from bot.core import logs
    from bot.delivery.outbox import ChannelPacer
    from bot.runtime.serve import freeze_startup_objects
    from bot.runtime.services import open_services
    from bot.runtime.web import build_web_app
    from bot.store import db
    from bot.store import outbox as outbox_sql
    from commands.app import build_slack_app
    from sandbox.slack_requests import SlackRequests

    logs.configure("json", "WARNING")
    signing_secret = "bench-" + secrets.token_hex(16)
    data_dir = Path(tempfile.mkdtemp(prefix="icbot-bench-", dir="/tmp"))
    began = time.monotonic()
    try:
        async with contextlib.AsyncExitStack() as stack:
            # One response_url per request would be thousands; Slack takes five posts to one,
            # FakeSlack any number, and nothing here reads the replies: reuse a pool of them.
            fake = await stack.enter_async_context(
                fake_slack_process(min(500, max(10, int(args.rate * 2))))
            )
            slack = fake.stub
            user_id, channel_id = slack.user_id, slack.channel_id
            settings = bench_settings(slack.url)
            dsn = await stack.enter_async_context(
                db.database(os.environ.get("DATABASE_URL"), data_dir)
            )
            # No per-channel pacing: the run queues two outbox items per status update, which
            # at Slack's ~1 message/s would be a backlog of thousands. See bench/README.md.
            services = await stack.enter_async_context(
                open_services(
                    settings,
                    dsn=dsn,
                    token=slack.token,
                    pacer=ChannelPacer(per_second=0, burst=1),
                    run_workers=not args.no_worker,
                )
            )
            worker_pid = (
                await stack.enter_async_context(
                    worker_process(dsn=dsn, slack_url=slack.url, token=slack.token)
                )
                if args.no_worker
                else None
            )
            icbot_url = await stack.enter_async_context(
                serve(
                    build_web_app(
                        services, build_slack_app(services), signing_secret=signing_secret
                    )
                )
            )
            bare_url = await stack.enter_async_context(
                serve(
                    build_bare_app(
                        token=slack.token, base_url=slack.url, signing_secret=signing_secret
                    )
                )
            )
            # As `icbot serve` does once it is up (bot/runtime/serve.py): start-up objects out of
            # the garbage collector's way.
            freeze_startup_objects()
            reference_url = (
                await stack.enter_async_context(
                    serve(
                        build_bare_app(
                            token=slack.token,
                            base_url=slack.url,
                            signing_secret=signing_secret,
                            process_before_response=True,
                        )
                    )
                )
                if args.reference
                else None
            )
            signer = SlackRequests(signing_secret)

            async def send(text: str) -> None:
                req = signer.slash_command(
                    "/ic",
                    text,
                    user_id=user_id,
                    user_name=USER_NAME,
                    channel_id=channel_id,
                    channel_name=CHANNEL_NAME,
                    response_url=slack.response_urls[0],
                )
                status = await post_once(icbot_url, req.body, req.headers)
                if status != 200:
                    raise RuntimeError(f"/ic {text} answered HTTP {status}")

            async def outbox_empty() -> bool:
                async with services.pool.acquire() as conn:
                    return bool(await outbox_sql.pending_count(conn) == 0)

            async def settle(what: str) -> float:
                """Wait for post-ack work, then for the outbox; return the seconds it took."""
                t = time.monotonic()
                try:
                    await services.inflight.idle(SETTLE_TIMEOUT)
                    await wait_until(outbox_empty, timeout=SETTLE_TIMEOUT, what=what)
                except TimeoutError as exc:
                    print(f"WARNING: {exc}; the next phase shares the machine with it")
                return time.monotonic() - t

            before = {i.id for i in await services.incidents.list_recent()}
            for k in range(1, args.incidents + 1):
                await send(f"declare Bench incident {k} sev2")

            async def declared() -> bool:
                fresh = [i for i in await services.incidents.list_recent() if i.id not in before]
                return len(fresh) >= int(args.incidents)

            await wait_until(declared, timeout=15, what="the incidents were not declared")
            await settle("the declarations did not settle")
            mine = sorted(
                (i for i in await services.incidents.list_recent() if i.id not in before),
                key=lambda i: i.id,
            )
            refs = [i.ref for i in mine]
            print(await repeat_check_cost(services.pool), flush=True)
            apart = " (--no-worker: its loops in a process of their own)" if args.no_worker else ""
            print(
                f"declared {', '.join(refs)}; {args.rounds} round(s) of bare then icbot{apart},"
                f" {args.rate:g} req/s, {args.warmup:g}s warm-up + {args.seconds:g}s measured"
                " per phase",
                flush=True,
            )
            pidfile = data_dir / "pgdata" / "postmaster.pid"
            postmaster = int(pidfile.read_text().split()[0]) if pidfile.exists() else None
            cpu = CpuUse(postmaster=postmaster, fake_slack=fake.proc.pid, worker=worker_pid)
            busiest_other = 0.0
            results: dict[str, list[LoadResult]] = {"bare": [], "icbot": [], "bare-pbr": []}
            rows: list[Row] = []
            phases = [("bare", bare_url), ("icbot", icbot_url)]
            if reference_url is not None:
                phases.append(("bare-pbr", reference_url))
            for n in range(1, args.rounds + 1):
                for name, url in phases:
                    plan = LoadPlan(
                        url=url,
                        signing_secret=signing_secret,
                        rate=args.rate,
                        seconds=args.seconds,
                        warmup=args.warmup,
                        texts=[f"status {ref} bench round {n}" for ref in refs],
                        user_id=user_id,
                        user_name=USER_NAME,
                        channel_id=channel_id,
                        channel_name=CHANNEL_NAME,
                        response_urls=slack.response_urls,
                    )
                    cpu0, t0 = cpu.snapshot(), time.monotonic()
                    async with LoopLag().running() as lag:
                        result = await run_load(plan)
                    cpu_line, other = CpuUse.summary(
                        cpu0, cpu.snapshot(), result.cpu, time.monotonic() - t0
                    )
                    busiest_other = max(busiest_other, other)
                    settled = await settle(f"{name} #{n} did not settle")
                    results[name].append(result)
                    rows.append(Row.of(f"{name} #{n}", [result]))
                    kinds = ", ".join(f"{k}: {v}" for k, v in result.error_kinds.items())
                    print(
                        f"  {name} #{n}: {len(result.latencies)} ok, {result.errors} errors"
                        f"{' (' + kinds + ')' if kinds else ''}; {lag.summary()};"
                        f" generator late by <= {result.max_send_lag * 1000:.1f} ms;"
                        f" outbox settled in {settled:.1f}s\n      {cpu_line}",
                        flush=True,
                    )
            bare = Row.of("bare (all)", results["bare"])
            icbot = Row.of("icbot (all)", results["icbot"])
            reference = (
                [Row.of("bare-pbr (all)", results["bare-pbr"])] if results["bare-pbr"] else []
            )
            print()
            print(render([*rows, bare, icbot, *reference]))
            print()
            for line in verdict(bare, icbot):
                print(line)
            if reference:
                print(
                    f"reference: icbot p99 / bare-pbr p99 = {icbot.p99 / reference[0].p99:.2f}x"
                    " (a bare app with process_before_response=True; not the issue's target)"
                )
            if busiest_other > OTHER_LOAD_WARN:
                print(
                    f"WARNING: other processes used up to {busiest_other:.2f} cores during a"
                    " phase; these figures are not from an idle machine."
                )

            # Leave nothing open or queued (matters with DATABASE_URL).
            t = time.monotonic()
            for incident in mine:
                await services.incidents.resolve(
                    ref=incident.id, summary="benchmark finished", actor=user_id
                )
            try:
                await services.outbox.drain(timeout=SETTLE_TIMEOUT)
            except TimeoutError:
                print(f"WARNING: the outbox did not drain within {SETTLE_TIMEOUT:.0f}s")
            seen = await fake.finish()
            sent = sum(r.sent for r in results["icbot"])
            print(
                f"outbox drained ({time.monotonic() - t:.1f}s); FakeSlack saw"
                f" {seen['thread_replies']} thread replies, {seen['response_url_posts']}"
                f" response_url posts, {seen['api_calls']} calls in all, for {sent} status updates"
            )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"total {time.monotonic() - began:.0f}s", flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--rate", type=float, default=100.0, help="requests per second (default 100)")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per phase")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per phase")
    p.add_argument("--rounds", type=int, default=2, help="bare+icbot rounds (default 2)")
    p.add_argument(
        "--reference",
        action="store_true",
        help="also run a bare app with process_before_response=True (bare-pbr) each round",
    )
    p.add_argument(
        "--incidents",
        type=int,
        default=10,
        help="open incidents the status updates go to, round-robin (default 10)",
    )
    p.add_argument(
        "--no-worker",
        action="store_true",
        help="icbot as `serve --no-worker`, its background loops in a separate worker process",
    )
    p.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--fake-slack", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not (args.loadgen or args.fake_slack or args.worker_child):
        if not 0 < args.rate <= 2000:
            p.error("--rate must be in (0, 2000]")
        if not 0 < args.seconds <= 600 or not 0 <= args.warmup <= 60:
            p.error("--seconds must be in (0, 600] and --warmup in [0, 60]")
        if not 1 <= args.rounds <= 20:
            p.error("--rounds must be in [1, 20]")
        if not 1 <= args.incidents <= 20:
            p.error("--incidents must be in [1, 20]")
    return args


def main() -> None:
    args = parse_args()
    if args.loadgen:
        loadgen_main()
        return
    if args.fake_slack:
        fake_slack_main(args.fake_slack)
        return
    if args.worker_child:
        asyncio.run(worker_child())
        return
    try:
        asyncio.run(_until_signalled(bench(args)))
    except (asyncio.CancelledError, KeyboardInterrupt):
        sys.exit("interrupted")


async def _until_signalled(work: Awaitable[None]) -> None:
    """Run `work`; SIGTERM cancels it like Ctrl-C does, so the embedded PostgreSQL stops."""
    task = asyncio.ensure_future(work)
    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    await task


if __name__ == "__main__":
    main()
