"""Shared benchmark plumbing: a Temporal dev server, scratch databases, demo data, load and
CPU accounting, percentiles, and the `docs/benchmarks.md` writer.

The machine has 2 cores and other engineers run tests on it at the same time, so every
measured phase records the load average and where the CPU went (this process, the Temporal
server, PostgreSQL, MariaDB, everything else) next to its figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as clock_time
from importlib.metadata import version
from pathlib import Path
from typing import Any, NoReturn

import httpx
from pydantic import TypeAdapter
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.client import Interceptor as ClientInterceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput
from temporalio.worker import Interceptor as WorkerInterceptor

from activities.reconcile import expected_queues
from adapters.provisioning import (
    create_replica_schema,
    drop_mysql_database,
    drop_postgres_database,
    ensure_mysql_database,
    ensure_postgres_database,
    migrate,
)
from adapters.queue_queries import due_callback_user_ids, outstanding_user_ids, unsigned_user_ids
from adapters.temporal import DATA_CONVERTER, dev_server_flags
from config.settings import Environment, Settings
from demo.data import generate
from demo.load import load_demo_data
from domain.rules import DiallerRules, parse_rules

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "docs" / "benchmarks.md"
PG_HOST = os.environ.get("BENCH_PG_HOST", "127.0.0.1:5432")
MYSQL_HOST = os.environ.get("BENCH_MYSQL_HOST", "127.0.0.1:3306")
NAMESPACE = "default"
TEMPORAL_PAYLOAD_LIMIT = 2 * 1024 * 1024  # the server's default blob size limit (error)

_REPORT_HEADER = """# Benchmarks

Figures from `bench/` (`.venv/bin/python -m bench.<name>`), newest at the bottom. Each run
appends a dated section with the machine it ran on and the load it saw: the machine has
2 cores shared with other engineers' test runs, so compare ratios measured in the same run,
not absolute figures across runs. Targets are in DESIGN.md section 5.
"""


# --- running a benchmark ---------------------------------------------------------------------


def run(main: Callable[[], Coroutine[Any, Any, int]]) -> NoReturn:
    """Run `main`, print any crash, and leave with `os._exit(rc)`: scripts that start
    Temporal's Rust core can crash at interpreter exit (SDK issue 300)."""
    rc = 1
    try:
        rc = asyncio.run(main())
    except SystemExit as exit:  # argparse's --help and usage errors
        rc = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
    except BaseException:
        traceback.print_exc()
        rc = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(rc)


def say(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def venv_binary(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: install the dev extras (make install)")
    return str(path)


def open_rules() -> DiallerRules:
    """Default rules with calling allowed all day, every day (as the workflow tests use), so
    every published task is claimable now. `model_copy` skips the DMA-hours validation on
    purpose."""
    rules = parse_rules("")
    windows = rules.calling_windows.model_copy(
        update={
            "weekday_open": clock_time(0, 0),
            "weekday_close": clock_time(23, 59, 59),
            "weekend_open": clock_time(0, 0),
            "weekend_close": clock_time(23, 59, 59),
            "bank_holidays": [],
        }
    )
    return rules.model_copy(update={"calling_windows": windows})


# --- statistics ------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# --- pydantic TypeAdapters ------------------------------------------------------------------


@dataclass
class TypeAdapterCount:
    built: Counter[str] = field(default_factory=Counter)
    cpu_seconds: float = 0.0  # thread CPU time spent building them


def count_type_adapters() -> TypeAdapterCount:
    """Count every `pydantic.TypeAdapter` built in this process from now on, by type, with
    the CPU time it took. The pydantic data converter caches adapters per converter
    instance, and the worker makes a payload converter per workflow run."""
    stats = TypeAdapterCount()
    original = TypeAdapter.__init__

    def counted(self: TypeAdapter[Any], type: Any, *args: Any, **kwargs: Any) -> None:
        began = time.thread_time()
        original(self, type, *args, **kwargs)
        stats.cpu_seconds += time.thread_time() - began
        stats.built[getattr(type, "__name__", str(type))] += 1

    TypeAdapter.__init__ = counted  # type: ignore[method-assign]
    return stats


# --- the Temporal dev server -----------------------------------------------------------------


@dataclass
class DevServer:
    address: str
    pid: int
    argv: list[str]


@contextlib.asynccontextmanager
async def dev_server() -> AsyncIterator[DevServer]:
    """`temporal server start-dev` from the venv on free ports, SQLite file with WAL (as
    `dialler dev` runs it), the outreach search attributes registered, no UI."""
    state = Path(tempfile.mkdtemp(prefix="bench-temporal-"))
    port = free_port()
    argv = [
        venv_binary("temporal"),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--http-port",
        str(free_port()),
        "--metrics-port",
        str(free_port()),
        "--headless",
        "--namespace",
        NAMESPACE,
        "--db-filename",
        str(state / "temporal.sqlite"),
        "--log-level",
        "error",
        *dev_server_flags(),
    ]
    log = (state / "server.log").open("wb")
    process = await asyncio.create_subprocess_exec(*argv, stdout=log, stderr=log)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"temporal dev server exited: {process.returncode}")
            try:
                client = await Client.connect(address, namespace=NAMESPACE)
                await client.count_workflows()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.25)
        yield DevServer(address=address, pid=process.pid, argv=argv)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=15)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()
        shutil.rmtree(state, ignore_errors=True)


class ActivityTap(ClientInterceptor, WorkerInterceptor):
    """Counts activity executions by type and notes when each workflow first completed one
    of `first_of` (wall clock). Given to the client, so workers built from it by
    `workers.outreach.build_worker` pick it up unchanged."""

    def __init__(self, first_of: frozenset[str] = frozenset()) -> None:
        self.first_of = first_of
        self.counts: Counter[str] = Counter()
        self.first_done: dict[str, float] = {}
        self.changed = asyncio.Event()

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _TapInbound(next, self)

    def note(self, activity_type: str, workflow_id: str | None) -> None:
        self.counts[activity_type] += 1
        if activity_type in self.first_of and workflow_id and workflow_id not in self.first_done:
            self.first_done[workflow_id] = time.time()
            self.changed.set()


class _TapInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, tap: ActivityTap) -> None:
        super().__init__(next)
        self._tap = tap

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        result = await super().execute_activity(input)
        info = activity.info()
        self._tap.note(info.activity_type, info.workflow_id)
        return result


class CoreMetrics:
    """Temporal core's own metrics (sticky cache, workflow task outcomes), scraped from a
    Prometheus endpoint on a free port of a runtime made for the benchmark's client."""

    def __init__(self) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self.runtime = Runtime(
            telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=self.address))
        )

    async def scrape(self) -> dict[str, float]:
        return await scrape_metrics(self.address)


async def scrape_metrics(address: str) -> dict[str, float]:
    """A Prometheus endpoint's metrics, each value summed over its label sets (histograms:
    `_count` and `_sum`; buckets left out)."""
    async with httpx.AsyncClient(timeout=10) as http:
        body = (await http.get(f"http://{address}/metrics")).text
    totals: dict[str, float] = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        if name.endswith("_bucket"):
            continue
        with contextlib.suppress(ValueError):
            totals[name] = totals.get(name, 0.0) + float(value)
    return totals


async def connect_client(
    address: str, tap: ActivityTap | None = None, metrics: CoreMetrics | None = None
) -> Client:
    """A client as the product builds one: its data converter, default namespace."""
    return await Client.connect(
        address,
        namespace=NAMESPACE,
        data_converter=DATA_CONVERTER,
        interceptors=[tap] if tap else [],
        identity="bench",
        runtime=metrics.runtime if metrics else None,
    )


@dataclass
class HistoryProfile:
    events: int
    workflow_tasks: int
    activities: Counter[str]
    task_timeouts: int = 0  # workflow tasks the server timed out (the worker was too slow)
    task_failures: int = 0


async def history_profile(client: Client, workflow_id: str) -> HistoryProfile:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    activities: Counter[str] = Counter()
    kinds = Counter(event.event_type for event in history.events)
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activities[event.activity_task_scheduled_event_attributes.activity_type.name] += 1
        elif local := _local_activity(event):
            activities[f"{local}(local)"] += 1
    return HistoryProfile(
        len(history.events),
        kinds[EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED],
        activities,
        kinds[EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT],
        kinds[EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED],
    )


def _local_activity(event: HistoryEvent) -> str | None:
    """The activity type of a local-activity marker, else None."""
    if not event.HasField("marker_recorded_event_attributes"):
        return None
    marker = event.marker_recorded_event_attributes
    if marker.marker_name != "core_local_activity" or "data" not in marker.details:
        return None
    with contextlib.suppress(ValueError, IndexError, KeyError):
        return str(json.loads(marker.details["data"].payloads[0].data)["activity_type"])
    return "?"


async def history_timeline(client: Client, workflow_id: str) -> list[str]:
    """The history as lines 'mm:ss.mmm event detail', activities named; a `publish_task`
    shows the task it wrote (ready or claimed, not_before), an update its name."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    scheduled: dict[int, str] = {}
    lines: list[str] = []
    for event in history.events:
        kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        at = event.event_time.ToDatetime(tzinfo=UTC)
        detail = ""
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            detail = attrs.activity_type.name
            scheduled[event.event_id] = detail
            if detail == "publish_task" and attrs.input.payloads:
                task = json.loads(attrs.input.payloads[0].data)
                state = "claimed" if task.get("claim") else "ready"
                detail += f" ({state}, not_before {task['assessment']['not_before']})"
        elif local := _local_activity(event):
            detail = f"local activity {local}"
        elif event.HasField("activity_task_completed_event_attributes"):
            detail = scheduled.get(
                event.activity_task_completed_event_attributes.scheduled_event_id, ""
            )
        elif event.HasField("workflow_execution_update_accepted_event_attributes"):
            accepted = event.workflow_execution_update_accepted_event_attributes
            detail = accepted.accepted_request.input.name
        elif kind.startswith("WORKFLOW_TASK") or kind == "WORKFLOW_EXECUTION_STARTED":
            continue
        lines.append(f"{at:%M:%S.%f}"[:-3] + f" {kind.lower()} {detail}".rstrip())
    return lines


def describe_profiles(profiles: Sequence[HistoryProfile]) -> str:
    """'events 23, workflow tasks 5, activities load_facts x2 assess x1 ...' (averages)."""
    if not profiles:
        return "no histories sampled"
    n = len(profiles)
    total: Counter[str] = Counter()
    for p in profiles:
        total.update(p.activities)
    acts = " ".join(f"{name} x{count / n:g}" for name, count in sorted(total.items()))
    events = sum(p.events for p in profiles) / n
    tasks = sum(p.workflow_tasks for p in profiles) / n
    text = f"{events:g} events, {tasks:g} workflow tasks, activities: {acts or 'none'}"
    timeouts = sum(p.task_timeouts for p in profiles) / n
    failures = sum(p.task_failures for p in profiles) / n
    if timeouts or failures:
        text += f"; workflow tasks timed out {timeouts:g}, failed {failures:g}"
    return text + (f" (mean of {n})" if n > 1 else "")


# --- scratch databases -----------------------------------------------------------------------


@dataclass
class Databases:
    pg_url: str
    mysql_url: str
    dialler: AsyncEngine
    replica: AsyncEngine
    extra: list[AsyncEngine] = field(default_factory=list)

    def dialler_engine(self, pool_size: int, max_overflow: int = 0) -> AsyncEngine:
        """Another engine on the scratch PostgreSQL database, disposed with the others."""
        engine = create_async_engine(self.pg_url, pool_size=pool_size, max_overflow=max_overflow)
        self.extra.append(engine)
        return engine

    def settings(self, temporal_address: str, task_queue: str) -> Settings:
        return Settings(
            _env_file=None,  # type: ignore[call-arg]
            environment=Environment.TEST,
            database_url=self.pg_url,
            replica_database_url=self.mysql_url,
            temporal_address=temporal_address,
            temporal_task_queue=task_queue,
        )


async def warm_pool(engine: AsyncEngine, connections: int, *, within: float = 300.0) -> None:
    """Open `connections` connections now and keep them pooled: PostgreSQL's
    max_connections (100) is shared with other engineers' test runs, so a benchmark takes
    what it needs before measuring, waiting (up to `within` seconds) while the server is
    full, rather than failing in the middle of a measurement."""
    deadline = time.monotonic() + within
    while True:
        try:
            async with contextlib.AsyncExitStack() as stack:
                for _ in range(connections):
                    conn = await stack.enter_async_context(engine.connect())
                    await conn.execute(text("SELECT 1"))
            return
        except DBAPIError as error:
            if "too many clients" not in str(error) or time.monotonic() > deadline:
                raise
            say(f"PostgreSQL is full (other test runs); waiting for {connections} connections")
            await asyncio.sleep(5)


@contextlib.asynccontextmanager
async def scratch_databases(
    tag: str, *, pg_pool: int = 20, pg_overflow: int | None = None, mysql_pool: int = 10
) -> AsyncIterator[Databases]:
    """`bench_<tag>_<pid>` on PostgreSQL (migrated) and MariaDB (replica schema), dropped on
    the way out. Pool sizes match the outreach worker's (`run_outreach_worker`)."""
    name = f"bench_{tag}_{os.getpid()}"
    pg = f"postgresql+asyncpg://postgres@{PG_HOST}/{name}"
    my = f"mysql+aiomysql://root@{MYSQL_HOST}/{name}"
    await drop_postgres_database(pg)
    await ensure_postgres_database(pg)
    await drop_mysql_database(my)
    await ensure_mysql_database(my)
    dbs: Databases | None = None
    try:
        await migrate(pg)
        overflow = pg_pool if pg_overflow is None else pg_overflow
        dialler = create_async_engine(pg, pool_size=pg_pool, max_overflow=overflow)
        replica = create_async_engine(
            my, pool_size=mysql_pool, max_overflow=mysql_pool, pool_recycle=3600
        )
        dbs = Databases(pg, my, dialler, replica)
        await create_replica_schema(replica)
        yield dbs
    finally:
        if dbs is not None:
            for engine in (dbs.dialler, dbs.replica, *dbs.extra):
                await engine.dispose()
        await drop_postgres_database(pg)
        await drop_mysql_database(my)


@dataclass
class Seeded:
    users: int
    rows: dict[str, int]
    generate_seconds: float
    load_seconds: float
    now: datetime


async def seed(dbs: Databases, users: int, now: datetime | None = None) -> Seeded:
    """Demo data for `users` claimants (replica rows + dialler callbacks), replacing any."""
    now = now or datetime.now(UTC)
    started = time.perf_counter()
    data = generate(users, now=now)
    generated = time.perf_counter() - started
    report = await load_demo_data(dbs.replica, dbs.dialler, data, replace=True)
    for table in ("users", "claims", "claim_requirements"):
        async with dbs.replica.connect() as conn:
            await conn.exec_driver_sql(f"ANALYZE TABLE `{table}`")
    async with dbs.dialler.connect() as conn:
        await conn.execute(text("ANALYZE callbacks"))
    return Seeded(users, report.rows, generated, report.seconds, now)


async def expected_members(dbs: Databases, rules: DiallerRules, now: datetime) -> dict[int, str]:
    """Each claimant's queue by the seed's three queries (what reconcile plans from)."""
    unsigned, outstanding, callback = await asyncio.gather(
        unsigned_user_ids(dbs.replica),
        outstanding_user_ids(dbs.replica),
        due_callback_user_ids(dbs.dialler, dbs.replica, now),
    )
    return expected_queues(callback, unsigned, outstanding, rules.stage_priority)


# --- load and CPU accounting -----------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")
# The MariaDB server the benchmark uses (set by `machine_info` from its pid file): other
# engineers run MariaDB servers of their own here, which should not count as ours.
_MARIADB_PID: list[int] = []


@dataclass
class CpuSnapshot:
    wall: float
    busy: float  # all cores, seconds
    groups: dict[str, float]  # seconds per process group
    threads: dict[str, float]  # seconds per thread group of this process


def _proc_stat(pid: str) -> tuple[str, list[str]] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    return comm, raw[raw.rindex(")") + 2 :].split()


def own_threads() -> dict[str, float]:
    """CPU seconds of this process's threads, grouped: the asyncio loop (main thread: client,
    activities, SQLAlchemy), the workflow activation threads (`temporal_workflow_*`: the
    sandboxed workflow code), Temporal core's native threads, other Python threads. Threads
    that have exited are not counted."""
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    main = threading.main_thread().native_id
    groups = {"loop": 0.0, "workflow threads": 0.0, "core": 0.0, "other threads": 0.0}
    for entry in os.listdir("/proc/self/task"):
        found = _proc_stat(f"self/task/{entry}")
        if found is None:
            continue
        seconds = (int(found[1][11]) + int(found[1][12])) / _TICK
        tid = int(entry)
        name = names.get(tid)
        if tid == main:
            groups["loop"] += seconds
        elif name is None:
            groups["core"] += seconds
        elif name.startswith("temporal_workflow_"):
            groups["workflow threads"] += seconds
        else:
            groups["other threads"] += seconds
    return groups


def cpu_snapshot(temporal_pid: int | None) -> CpuSnapshot:
    """CPU seconds so far: this process (the benchmark's client and workers, Temporal core
    threads included), the Temporal server, PostgreSQL (live backends plus those reaped by
    the postmaster), MariaDB, and the machine's total busy time."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    jiffies = [int(x) for x in fields]
    busy = (sum(jiffies[:8]) - jiffies[3] - jiffies[4]) / _TICK  # minus idle and iowait
    own = os.times()
    groups = {"bench": own.user + own.system, "temporal": 0.0, "postgres": 0.0, "mariadb": 0.0}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        found = _proc_stat(entry)
        if found is None:
            continue
        comm, rest = found
        # fields after the command: utime is the 12th, stime 13th, cutime 14th, cstime 15th
        own_ticks = int(rest[11]) + int(rest[12])
        children = int(rest[13]) + int(rest[14])
        if temporal_pid is not None and int(entry) == temporal_pid:
            groups["temporal"] += (own_ticks + children) / _TICK
        elif comm.startswith("postgres"):
            groups["postgres"] += (own_ticks + children) / _TICK
        elif comm in ("mariadbd", "mysqld") and (not _MARIADB_PID or int(entry) in _MARIADB_PID):
            groups["mariadb"] += own_ticks / _TICK
    return CpuSnapshot(time.monotonic(), busy, groups, own_threads())


@dataclass
class PhaseLoad:
    name: str
    seconds: float
    load_start: float
    load_end: float
    load_max: float
    cores: dict[str, float]  # average cores busy per group during the phase
    threads: dict[str, float]  # average cores busy per thread group of this process

    def split(self) -> str:
        return " / ".join(f"{v:.2f}" for v in self.threads.values())

    def line(self) -> str:
        shares = ", ".join(f"{k} {v:.2f}" for k, v in self.cores.items())
        return (
            f"{self.name}: {self.seconds:.1f}s, loadavg(1m) {self.load_start:.2f}→"
            f"{self.load_end:.2f} (max {self.load_max:.2f}); cores busy: {shares}; "
            f"bench {' / '.join(self.threads)}: {self.split()}"
        )


class Phase:
    """`async with Phase("name", pid) as p:` … then `p.load` holds the phase's load: the
    1-minute load average at the start, end and its maximum (sampled every second), and the
    average number of cores each process group kept busy."""

    def __init__(self, name: str, temporal_pid: int | None = None) -> None:
        self.name = name
        self._pid = temporal_pid
        self._samples: list[float] = []
        self._sampler: asyncio.Task[None] | None = None
        self._start: CpuSnapshot | None = None
        self._load: PhaseLoad | None = None

    @property
    def load(self) -> PhaseLoad:
        if self._load is None:
            raise RuntimeError(f"phase {self.name} has not ended")
        return self._load

    async def _sample(self) -> None:
        while True:
            self._samples.append(os.getloadavg()[0])
            await asyncio.sleep(1)

    async def __aenter__(self) -> Phase:
        self._start = cpu_snapshot(self._pid)
        self._samples = [os.getloadavg()[0]]
        self._sampler = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._sampler is not None and self._start is not None
        self._sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sampler
        end = cpu_snapshot(self._pid)
        wall = max(end.wall - self._start.wall, 1e-9)
        cores = {k: (end.groups[k] - self._start.groups[k]) / wall for k in end.groups}
        total = (end.busy - self._start.busy) / wall
        cores["other"] = max(total - sum(cores.values()), 0.0)
        cores["total"] = total
        threads = {k: (v - self._start.threads.get(k, 0.0)) / wall for k, v in end.threads.items()}
        load_end = os.getloadavg()[0]
        self._load = PhaseLoad(
            self.name,
            wall,
            self._samples[0],
            load_end,
            max([*self._samples, load_end]),
            cores,
            threads,
        )
        say(self._load.line())


# --- the report ------------------------------------------------------------------------------


def _command(*argv: str) -> str:
    try:
        done = subprocess.run(  # noqa: S603 (our own fixed argv)
            argv, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return done.stdout.strip() or "?"


def _machine_basics() -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
        memory = f"{kb / 1024 / 1024:.1f} GiB"
    info = {
        "nproc": _command("nproc"),
        "cpu": cpu,
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "temporalio": version("temporalio"),
        "temporal CLI": _command(venv_binary("temporal"), "--version").removeprefix(
            "temporal version "
        ),
    }
    return info


def _note_mariadb_pid(pid_file: str) -> None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        _MARIADB_PID[:] = [int(Path(pid_file).read_text().split()[0])]


CODE_DIRS = ("activities", "adapters", "domain", "schemas", "services", "workers", "workflows")


def code_fingerprint() -> str:
    """SHA-256 (12 hex digits) of the product code a benchmark drives, and the newest file's
    modification time: the work tree changes under long runs, so each record names the code
    it measured."""
    digest = hashlib.sha256()
    newest = 0.0
    for directory in CODE_DIRS:
        for path in sorted((REPO / directory).rglob("*.py")):
            digest.update(str(path.relative_to(REPO)).encode())
            digest.update(path.read_bytes())
            newest = max(newest, path.stat().st_mtime)
    changed = datetime.fromtimestamp(newest, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{digest.hexdigest()[:12]} (newest file {changed})"


async def machine_info(dbs: Databases | None = None) -> dict[str, str]:
    """nproc, CPU model, memory, versions, the code measured; with `dbs`, the database
    servers' versions."""
    info = _machine_basics()
    info["code"] = code_fingerprint()
    if dbs is not None:
        async with dbs.dialler.connect() as conn:
            pg = str(await conn.scalar(text("SHOW server_version")))
        async with dbs.replica.connect() as conn:
            my = str(await conn.scalar(text("SELECT VERSION()")))
            pool = await conn.scalar(text("SELECT @@innodb_buffer_pool_size"))
            pid_file = str(await conn.scalar(text("SELECT @@pid_file")))
        _note_mariadb_pid(pid_file)
        info["PostgreSQL"] = pg.split()[0]
        info["MariaDB"] = f"{my} (innodb_buffer_pool_size {int(pool or 0) // 2**20} MiB)"
    return info


@dataclass
class Table:
    heading: str
    columns: list[str]
    rows: list[list[str]]

    def markdown(self) -> list[str]:
        lines = [f"**{self.heading}**", ""] if self.heading else []
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines += [
            "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in self.rows
        ]
        return [*lines, ""]


def load_table(phases: Sequence[PhaseLoad]) -> Table:
    groups = ["bench", "temporal", "postgres", "mariadb", "other", "total"]
    return Table(
        "Load seen (1-min load average; average cores busy per process group; the bench "
        "process split into asyncio loop / workflow threads / Temporal core / other threads)",
        ["phase", "seconds", "loadavg start→end (max)", *groups, "bench split"],
        [
            [
                p.name,
                f"{p.seconds:.1f}",
                f"{p.load_start:.2f}→{p.load_end:.2f} ({p.load_max:.2f})",
                *(f"{p.cores.get(g, 0.0):.2f}" for g in groups),
                p.split(),
            ]
            for p in phases
        ],
    )


def append_report(
    title: str,
    machine: dict[str, str],
    notes: Sequence[str],
    tables: Sequence[Table],
    details: Sequence[str] = (),
) -> None:
    """Append a dated section to docs/benchmarks.md (created with a header if missing)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## {title} — {stamp}", ""]
    lines.append("Machine: " + "; ".join(f"{k} {v}" for k, v in machine.items()) + ".")
    lines.append("")
    lines += [f"- {note}" for note in notes]
    if notes:
        lines.append("")
    for table in tables:
        lines += table.markdown()
    lines += details
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    existing = REPORT.read_text(encoding="utf-8") if REPORT.exists() else _REPORT_HEADER
    REPORT.write_text(existing.rstrip("\n") + "\n\n" + "\n".join(lines), encoding="utf-8")
    say(f"appended '{title}' to {REPORT.relative_to(REPO)}")


def print_tables(tables: Sequence[Table]) -> None:
    for table in tables:
        print("\n".join(table.markdown()), flush=True)


async def wait_for(
    probe: Callable[[], Awaitable[bool]], *, within: float, interval: float = 0.2
) -> bool:
    """Poll until `probe()` is true; False if `within` seconds pass first."""
    deadline = time.monotonic() + within
    while not await probe():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
    return True
