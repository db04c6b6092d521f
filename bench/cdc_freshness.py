"""CDC freshness: a row change in the replica -> the queue (`call_tasks`) reflects it.

    .venv/bin/python -m bench.cdc_freshness [--users 20000] [--rate 50] [--seconds 60]
                                            [--burst 5000] [--writers 8] [--no-record]

Runs the product's path end to end on one machine, each part as its own process as in
production: a MariaDB of its own with the binlog on (`adapters.local_mariadb`), seeded with
demo data; the Temporal dev server (SQLite, WAL); the outreach worker (`dialler worker
outreach`, default rules; its schedules paused so no catch-up fires mid-phase); the CDC
worker (`dialler sync start`, binlog source, default lanes). This process only writes the
changes and watches `call_tasks`. Every claimant with a task is first brought under a
workflow (one reconcile run), so changes reach running workflows as in steady operation.

Each change flips one claimant's `is_vulnerable` (vulnerable claimants are routed to people
only, so every flip makes the workflow rewrite its task with `route_to_people_only` changed);
no claimant is changed twice. Freshness of a change = the task row's `updated_at` (set by
PostgreSQL when the workflow's activity wrote it) minus the time just before the UPDATE was
sent to MariaDB (same host clock). Two phases:

- steady: `--rate` changes per second for `--seconds`, one UPDATE per transaction;
- burst: `--burst` changes written as fast as `--writers` connections can, then drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

from redis.asyncio import Redis
from sqlalchemy import select, text, update
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError

from adapters.cdc_metrics import read_metrics
from adapters.local_mariadb import temporary_mariadb
from adapters.rules_file import load_rules_file
from adapters.temporal import connect_temporal
from bench.harness.cli import Figure, RunRecord, Table, finish, params, parser, run, say, verdict
from bench.harness.machine import Phase, PhaseLoad, code_version, load_table, machine_info, stamp
from bench.harness.seed import expected_members, seed
from bench.harness.stack import (
    Child,
    Databases,
    child_process,
    dev_server,
    dialler,
    free_port,
    scratch_databases,
    stack_env,
)
from bench.harness.stats import ms, percentile
from config.settings import CdcSource, Settings
from schemas import dialler_db as db
from schemas import replica
from schemas.reconcile import ReconcileInput
from workers.schedules import planned_schedules
from workflows.outreach import workflow_id_for

TASK_QUEUE = "bench-cdc"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
POLL_SECONDS = 0.05
DRAIN_LIMIT_SECONDS = 600.0
TARGET_P95 = 1.0  # DESIGN.md section 5: replica change -> queue, p95 <= 1 s at the steady rate


@dataclass
class Probe:
    user_id: int
    vulnerable: bool  # the value written
    written_at: float  # epoch seconds, just before the UPDATE was sent
    reflected_at: float | None = None

    @property
    def freshness(self) -> float:
        assert self.reflected_at is not None
        return self.reflected_at - self.written_at


@dataclass
class PhaseResult:
    name: str
    probes: list[Probe]
    write_seconds: float
    drained_seconds: float | None  # from the first write until the last change was reflected
    load: PhaseLoad | None = None
    cores: dict[str, float] = field(default_factory=dict)  # per worker process
    lag_seen: list[float] = field(default_factory=list)  # the worker's own lag figure
    to_signal: list[float] = field(default_factory=list)  # write -> signal in the history

    def freshness(self) -> list[float]:
        return [p.freshness for p in self.probes if p.reflected_at is not None]


async def signal_delays(client: Client, probes: list[Probe], sample: int = 200) -> list[float]:
    """For a sample of probes: the UPDATE sent -> the `change` signal recorded in the
    claimant's workflow history (the CDC part of freshness; the rest is the workflow)."""
    delays: list[float] = []
    chosen = random.Random(7).sample(probes, min(sample, len(probes)))
    for probe in chosen:
        handle = client.get_workflow_handle(workflow_id_for(probe.user_id))
        async for event in handle.fetch_history_events():
            if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                continue
            payloads = event.workflow_execution_signaled_event_attributes.input.payloads
            body = json.loads(payloads[0].data) if payloads else {}
            if body.get("kind") == "vulnerability_changed" and body.get("is_vulnerable") is (
                probe.vulnerable
            ):
                at = event.event_time.ToDatetime(tzinfo=UTC).timestamp()
                delays.append(at - probe.written_at)
    return delays


def cdc_worker(
    env: dict[str, str], logs: Path, redis: Redis
) -> contextlib.AbstractAsyncContextManager[Child]:
    """`dialler sync start`: ready once it publishes its metrics, which it does after it
    has stored the position it reads from. (Metrics left in Redis by an earlier run do not
    count: writing before the worker has its position would lose those changes, since a
    first start reads from the server's position at that moment.)"""
    launched = time.time()

    async def ready() -> bool:
        beat = (await read_metrics(redis, "binlog")).get("heartbeat_at")
        return beat is not None and float(beat) > launched

    return child_process("cdc-worker", dialler("sync", "start"), env, logs, ready=ready,
                         stop_within=30)  # fmt: skip


def outreach_worker(
    env: dict[str, str], logs: Path, client: Client
) -> contextlib.AbstractAsyncContextManager[Child]:
    """`dialler worker outreach`: ready once it has provisioned its schedules, which are then
    paused (a catch-up or reconcile firing mid-phase would refresh claimants the benchmark
    is timing)."""

    async def ready() -> bool:
        try:
            for planned in planned_schedules():
                await client.get_schedule_handle(planned.schedule_id).pause(note="benchmark")
        except RPCError:
            return False
        return True

    return child_process("outreach-worker", dialler("worker", "outreach"), env, logs,
                         ready=ready, stop_within=30)  # fmt: skip


class Watcher:
    """Polls `call_tasks` for the probes not yet reflected."""

    def __init__(self, dbs: Databases) -> None:
        self._dialler = dbs.dialler
        self.pending: dict[int, Probe] = {}
        self.changed = asyncio.Event()

    def add(self, probe: Probe) -> None:
        self.pending[probe.user_id] = probe

    async def run(self) -> None:
        tasks = db.call_tasks
        while True:
            ids = list(self.pending)
            for start in range(0, len(ids), 2000):
                async with self._dialler.connect() as conn:
                    rows = await conn.execute(
                        select(
                            tasks.c.user_id, tasks.c.route_to_people_only, tasks.c.updated_at
                        ).where(tasks.c.user_id.in_(ids[start : start + 2000]))
                    )
                    for user_id, people_only, updated_at in rows:
                        probe = self.pending.get(int(user_id))
                        if probe is None or bool(people_only) != probe.vulnerable:
                            continue
                        probe.reflected_at = updated_at.timestamp()
                        del self.pending[probe.user_id]
                        self.changed.set()
            await asyncio.sleep(POLL_SECONDS)

    async def drained(self, within: float) -> bool:
        deadline = time.monotonic() + within
        while self.pending:
            if time.monotonic() > deadline:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 1.0)
        return True


async def flip(dbs: Databases, probe_user: int, vulnerable: bool) -> float:
    """Write one change; returns the time just before it was sent."""
    async with dbs.replica.connect() as conn:
        written_at = time.time()
        await conn.execute(
            update(replica.users)
            .where(replica.users.c.id == probe_user)
            .values(is_vulnerable=vulnerable)
        )
        await conn.commit()
    return written_at


async def lag_sampler(redis: Redis, into: list[float]) -> None:
    while True:
        lag = (await read_metrics(redis, "binlog")).get("lag_seconds")
        if lag:
            into.append(float(lag))
        await asyncio.sleep(1.0)


async def measure(
    name: str,
    label: str,
    probes: list[Probe],
    write: Callable[[Watcher], Awaitable[None]],
    dbs: Databases,
    redis: Redis,
    pids: Mapping[str, int],
    temporal_pid: int,
) -> PhaseResult:
    """Watch `call_tasks` while `write(watcher)` sends the changes (adding each probe to the
    watcher), then until all are reflected (or DRAIN_LIMIT_SECONDS pass)."""
    watcher = Watcher(dbs)
    lags: list[float] = []
    async with Phase(label, temporal_pid, pids) as phase:
        watching = asyncio.create_task(watcher.run())
        sampling = asyncio.create_task(lag_sampler(redis, lags))
        began, first_write = time.monotonic(), time.time()
        await write(watcher)
        write_seconds = time.monotonic() - began
        drained = await watcher.drained(DRAIN_LIMIT_SECONDS)
        last = max((p.reflected_at or 0.0) for p in probes)
        watching.cancel()
        sampling.cancel()
    return PhaseResult(
        name, probes, write_seconds, last - first_write if drained else None, phase.load,
        {n: phase.load.cores[n] for n in pids}, lags,
    )  # fmt: skip


def steady_writes(
    dbs: Databases, probes: list[Probe], rate: float
) -> Callable[[Watcher], Awaitable[None]]:
    """`rate` changes a second, one UPDATE per transaction, on an absolute schedule: a slow
    write does not slow the offered rate down. Each probe is watched from its own write."""

    async def write(watcher: Watcher) -> None:
        began = time.monotonic()
        for n, probe in enumerate(probes):
            delay = began + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            watcher.add(probe)
            probe.written_at = await flip(dbs, probe.user_id, probe.vulnerable)

    return write


def burst_writes(
    dbs: Databases, probes: list[Probe], writers: int
) -> Callable[[Watcher], Awaitable[None]]:
    """Every change as fast as `writers` connections can write them, all watched at once."""
    queue: asyncio.Queue[Probe] = asyncio.Queue()
    for probe in probes:
        queue.put_nowait(probe)

    async def writer() -> None:
        while not queue.empty():
            probe = queue.get_nowait()
            probe.written_at = await flip(dbs, probe.user_id, probe.vulnerable)

    async def write(watcher: Watcher) -> None:
        for probe in probes:
            watcher.add(probe)
        await asyncio.gather(*(writer() for _ in range(writers)))

    return write


async def bring_under_workflows(dbs: Databases, client: Client, expected: int) -> float:
    began = time.monotonic()
    await client.execute_workflow(
        "Reconcile",  # the workflow type, as registered
        ReconcileInput(),
        id=f"bench-reconcile-{uuid.uuid4().hex[:6]}",
        task_queue=TASK_QUEUE,
    )
    while True:
        async with dbs.dialler.connect() as conn:
            published = await conn.scalar(
                text("SELECT count(*) FROM call_tasks WHERE status IN ('ready', 'claimed')")
            )
        if int(published or 0) >= expected:
            return time.monotonic() - began
        if time.monotonic() - began > 1800:
            raise RuntimeError(f"only {published} of {expected} claimants came under workflows")
        await asyncio.sleep(1.0)


async def pick_pool(dbs: Databases, size: int) -> list[tuple[int, bool]]:
    """Distinct claimants with a ready task, shuffled, with their current vulnerability."""
    async with dbs.dialler.connect() as conn:
        ids = [
            int(u)
            for (u,) in await conn.execute(
                select(db.call_tasks.c.user_id).where(db.call_tasks.c.status == "ready")
            )
        ]
    random.Random(2026).shuffle(ids)
    ids = ids[:size]
    if len(ids) < size:
        raise RuntimeError(f"{len(ids)} claimants with a ready task; need {size}: raise --users")
    async with dbs.replica.connect() as conn:
        flags = dict(
            (
                await conn.execute(
                    select(replica.users.c.id, replica.users.c.is_vulnerable).where(
                        replica.users.c.id.in_(ids)
                    )
                )
            ).all()
        )
    return [(u, bool(flags[u])) for u in ids]


def figures(result: PhaseResult) -> list[str]:
    values = result.freshness()
    reflected = len(values)
    drained = "no" if result.drained_seconds is None else f"{result.drained_seconds:.1f} s"
    offered = len(result.probes) / result.write_seconds if result.write_seconds else 0.0
    lag = f"{max(result.lag_seen):.1f} s" if result.lag_seen else "?"
    signal = result.to_signal
    return [
        result.name,
        f"{reflected:,}/{len(result.probes):,}",
        f"{offered:.1f}/s",
        ms(percentile(values, 50)),
        ms(percentile(values, 95)),
        ms(percentile(values, 99)),
        ms(max(values)) if values else "?",
        drained,
        f"{ms(percentile(signal, 50))} / {ms(percentile(signal, 95))} ({len(signal)})",
        " / ".join(f"{cores:.2f}" for cores in result.cores.values()),
        lag,
    ]


async def main() -> int:
    cli = parser(__doc__)
    cli.add_argument("--users", type=int, default=20_000)
    cli.add_argument("--rate", type=float, default=50.0, help="steady changes per second")
    cli.add_argument("--seconds", type=float, default=60.0, help="steady phase length")
    cli.add_argument("--burst", type=int, default=5_000, help="changes in the burst")
    cli.add_argument("--writers", type=int, default=8, help="connections writing the burst")
    args = cli.parse_args()
    steady_count = int(args.rate * args.seconds)
    rules = load_rules_file(Settings(_env_file=None).rules_file)  # type: ignore[call-arg]
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    results: list[PhaseResult] = []
    logs = Path(tempfile.mkdtemp(prefix="bench-cdc-"))
    try:
        async with (
            dev_server() as server,
            temporary_mariadb(free_port()) as mariadb,
            scratch_databases("cdc", mysql_host=f"127.0.0.1:{mariadb.port}") as dbs,
        ):
            machine = await machine_info(dbs)
            seeded = await seed(dbs, args.users)
            expected = len(await expected_members(dbs, rules, seeded.now))
            settings = dbs.settings(server.address, TASK_QUEUE, redis_url=REDIS_URL,
                                    cdc_source=CdcSource.BINLOG)  # fmt: skip
            env = stack_env(dbs, server.address, TASK_QUEUE, REDIS_URL, CDC_SOURCE="binlog",
                            LOG_LEVEL="WARNING")  # fmt: skip
            client = await connect_temporal(settings)  # as the workers build theirs
            async with outreach_worker(env, logs, client) as worker:
                say(f"bringing {expected:,} claimants under workflows")
                took = await bring_under_workflows(dbs, client, expected)
                say(f"  done in {took:.0f} s")
                pool = await pick_pool(dbs, steady_count + args.burst)
                async with cdc_worker(env, logs, redis) as cdc:
                    pids = {"cdc": cdc.pid, "outreach": worker.pid}
                    say(f"steady: {args.rate:g} changes/s for {args.seconds:g} s")
                    steady_probes = [Probe(u, not v, 0.0) for u, v in pool[:steady_count]]
                    results.append(await measure(
                        f"steady {args.rate:g} changes/s for {args.seconds:g} s",
                        f"steady {args.rate:g}/s", steady_probes,
                        steady_writes(dbs, steady_probes, args.rate), dbs, redis, pids, server.pid,
                    ))  # fmt: skip
                    say(f"burst: {args.burst:,} changes")
                    burst_probes = [Probe(u, not v, 0.0) for u, v in pool[steady_count:]]
                    results.append(await measure(
                        f"burst of {len(burst_probes):,} changes ({args.writers} writers)",
                        f"burst of {len(burst_probes):,}", burst_probes,
                        burst_writes(dbs, burst_probes, args.writers), dbs, redis, pids, server.pid,
                    ))  # fmt: skip
                    metrics = await read_metrics(redis, "binlog")
                for result in results:
                    result.to_signal = await signal_delays(client, result.probes)
    finally:
        await redis.aclose()
        say(f"worker logs kept in {logs}")

    table = Table(
        "Freshness: replica UPDATE sent -> `call_tasks.updated_at` of the task write that "
        "reflects it",
        [
            "phase",
            "reflected",
            "written at",
            "p50",
            "p95",
            "p99",
            "max",
            "all reflected after",
            "write -> signal p50 / p95 (sample)",
            "cores: CDC worker / outreach worker",
            "worker's max lag",
        ],
        [figures(result) for result in results],
    )
    loads = load_table([r.load for r in results if r.load is not None])
    steady = results[0].freshness()
    p95 = percentile(steady, 95) if steady else float("nan")
    met = verdict(p95 <= TARGET_P95, args.rate >= 50)
    notes = [
        f"{args.users:,} demo claimants ({expected:,} in a queue, all under workflows first); "
        f"each change flips one claimant's `is_vulnerable`, no claimant twice.",
        "MariaDB 10.11 of its own with the binlog (ROW, FULL image and metadata); the CDC "
        f"worker (`dialler sync start`, binlog source, {settings.cdc_lanes} lanes) and the "
        "outreach worker (`dialler worker outreach`, schedules paused) as their own "
        "processes; Temporal dev server (SQLite, WAL). Write -> signal: the `change` signal's "
        "time in the claimant's history (the CDC part); the rest is the workflow's.",
        f"Target (DESIGN.md section 5): p95 <= {TARGET_P95:g} s at the steady rate: {met}.",
        f"CDC worker totals: {metrics.get('events_applied', '?')} events applied, "
        f"{metrics.get('dead_letters', '?')} dead letters, {metrics.get('errors', '?')} errors.",
        "The worker's own lag figure comes from binlog commit times, which have whole seconds.",
    ]
    burst = results[1]
    headline = [
        Figure(f"CDC freshness p95, steady {args.rate:g} changes/s", ms(p95),
               f"≤ {TARGET_P95:g} s at 50 changes/s", met),
        Figure(f"CDC freshness p50, steady {args.rate:g} changes/s", ms(percentile(steady, 50))),
        Figure(f"burst of {args.burst:,}: all reflected after",
               "not drained" if burst.drained_seconds is None
               else f"{burst.drained_seconds:.1f} s"),
    ]  # fmt: skip
    record = RunRecord("cdc_freshness", "CDC freshness", stamp(), code_version(), machine,
                       params(args), headline, notes, [table, loads])  # fmt: skip
    finish(record, no_record=args.no_record)
    return 0


if __name__ == "__main__":
    run(main)
