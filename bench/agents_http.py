"""Simulated agents over HTTP: claim, outcome, repeat; and the agent console's server time.

    .venv/bin/python -m bench.agents_http [--agents 200] [--users 50000] [--under 2500]
                                          [--budget 120]

Seeds demo data (`--users` claimants; 50,000 is seed scale), then puts `--under` of the
claimants the seed queries place in the unsigned and outstanding queues (a random half of
each, seeded) under outreach workflows, with calling windows open all day so every published
task is claimable now. Bringing claimants under workflows runs at about 30 a second, so the
whole seed population is not put under workflows: only enough for the run.

Three processes as in production: the web app (`dialler web`: Hypercorn, one process), one
outreach worker (this module with `--worker`: `build_worker` and `outreach_activities` with
the open calling windows, no schedules, the product's pool sizes) and this process (the
simulated agents, the Temporal dev server's client for starting workflows, measurements).

Then:
- sign-in: `--agents` agents (role agent, split between the unsigned and outstanding queues
  in proportion to their claimable tasks) get bearer tokens from `POST /api/auth/token`;
  a few console agents sign in through the login form (CSRF token, session cookie);
- console: `GET /console` server time (loopback response time; `Server-Timing` read when
  the app sets one), one request at a time, with the idle panel and with a claimed
  claimant's context panel;
- drains: first a paced one (`--agents` agents, each call lasting a random time of mean
  `--talk` seconds between claim and outcome: the claim latency agents meet at work), then
  saturating ones, `--baseline-agents` (50) then `--agents` (200), each agent looping
  `POST /api/queue/next` → `POST /api/claimants/<id>/outcome` (`no_answer`: a 4-hour
  cooldown, so no claimant can come back within the run) until its queue has nothing
  claimable or the drain's budget has passed. Reports claim and outcome latency
  p50/p95/p99, claims/s, the web event loop's delay (a static-file probe), the worker's
  Temporal metrics, PostgreSQL connections per process, and proves no claimant was claimed
  twice (HTTP answers, `calls` rows, `call_tasks`, the audit log); histories of any
  claimant with two `calls` rows are printed.

The web and worker logs are kept in a temporary directory (printed at the end).

Each agent connects from its own loopback address (127.0.x.y), as agents at their own desks
do: the login and token routes allow 5 attempts a minute per address.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from redis.asyncio import Redis
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from adapters.databases import dialler_engine, replica_engine
from adapters.passwords import hash_password
from adapters.temporal import DATA_CONVERTER
from bench.claim_next import (
    TASK_QUEUE,
    agents_per_queue,
    claimable,
    latency_row,
    start_workflows,
)
from bench.common import (
    NAMESPACE,
    PG_HOST,
    REPO,
    Databases,
    DevServer,
    HistoryProfile,
    Phase,
    PhaseLoad,
    Table,
    append_report,
    connect_client,
    describe_profiles,
    dev_server,
    expected_members,
    free_port,
    history_profile,
    history_timeline,
    load_table,
    machine_info,
    ms,
    open_rules,
    print_tables,
    run,
    say,
    scrape_metrics,
    scratch_databases,
    seed,
    venv_binary,
)
from config.logging import configure_logging
from config.settings import load_settings
from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from workers.outreach import build_worker, outreach_activities
from workflows.outreach import workflow_id_for

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
PASSWORD = "bench-agents-http-password"  # noqa: S105 (scratch accounts)
SAMPLE_SEED = 2026
REQUEST_TIMEOUT = 120.0
RAMP_SECONDS = 2.0  # agents start spread over this (Hypercorn's listen backlog is 100)
EMPTY_RETRY_SECONDS = 0.2  # claim-next said none but the queue still has claimable rows
TALK_RNG = random.Random(2026)  # call lengths in the paced drain, the same each run
PROBE_EVERY = 0.25
CONSOLE_UNDER_LOAD_EVERY = 0.5
PG_SAMPLE_EVERY = 2.0
WINDOW_SECONDS = 30
# App-wide limits per client address, raised through the environment: the benchmark
# measures the app, not the limiter. (Per-agent API limits and login limits are the app's.)
RATE_PER_SECOND = 100_000
RATE_PER_MINUTE = 1_000_000
AGENT_LIMIT_PER_SECOND, AGENT_LIMIT_PER_MINUTE = 10, 300  # web/blueprints/api.py
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
IDLE_MARKER = 'id="next-call"'
CLAIM_MARKER = 'id="claimant-context"'
WORKER_METRICS_ENV = "BENCH_WORKER_METRICS"
_TICK = os.sysconf("SC_CLK_TCK")
_CLAIMABLE_IN = text(
    "SELECT count(*) FROM call_tasks WHERE status = 'ready' AND queue = :queue "
    "AND not_before <= now()"
)
_PUBLISHED = text("SELECT count(*) FROM call_tasks WHERE status IN ('ready', 'claimed')")


def address(n: int) -> str:
    """The loopback address agent `n` connects from (Linux routes all of 127/8 locally)."""
    return f"127.{1 + n // 62_500}.{(n // 250) % 250}.{1 + n % 250}"


# --- the worker process ------------------------------------------------------------------------


async def worker_process() -> int:
    """The outreach worker as `run_outreach_worker` builds it (pool sizes, Redis), but with
    calling windows open all day and no schedules (a reconcile would bring every seeded
    claimant under a workflow mid-run). Temporal core's metrics are served on
    $BENCH_WORKER_METRICS for the parent to scrape."""
    settings = load_settings()
    configure_logging(settings.log_level)
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=os.environ[WORKER_METRICS_ENV])
        )
    )
    client = await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=DATA_CONVERTER,
        runtime=runtime,
        identity=f"bench-worker-{os.getpid()}",
    )
    dialler = dialler_engine(settings, pool_size=20)
    replica = replica_engine(settings, pool_size=10)
    redis = Redis.from_url(settings.redis_url)
    activities = outreach_activities(settings, client, dialler, replica, open_rules(), redis)
    worker = build_worker(client, settings.temporal_task_queue, activities)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        print("bench worker polling", settings.temporal_task_queue, flush=True)
        await stop.wait()
    await dialler.dispose()
    await replica.dispose()
    await redis.aclose()
    return 0


# --- child processes ---------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    pid: int
    log: Path


@contextlib.asynccontextmanager
async def child_process(
    name: str, argv: Sequence[str], env: dict[str, str], logs: Path
) -> AsyncIterator[Child]:
    """A subprocess with its output in `logs/<name>.log`, stopped with SIGTERM (then SIGKILL
    after 20 s) on the way out."""
    path = logs / f"{name}.log"
    with path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=log, stderr=log, env=env, cwd=str(REPO)
        )
        try:
            yield Child(name, process.pid, path)
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), timeout=20)
                except TimeoutError:
                    process.kill()
                    await process.wait()


def keep_logs(state: Path) -> Path:
    """Copy the child processes' logs out of the run's state directory (which is removed)."""
    kept = Path(tempfile.mkdtemp(prefix="bench-agents-http-logs-"))
    for log in state.glob("*.log"):
        shutil.copy(log, kept / log.name)
    return kept


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def child_env(dbs: Databases, server: DevServer, port: int, state: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "ENVIRONMENT": "test",
            "DATABASE_URL": dbs.pg_url,
            "REPLICA_DATABASE_URL": dbs.mysql_url,
            "REDIS_URL": REDIS_URL,
            "TEMPORAL_ADDRESS": server.address,
            "TEMPORAL_NAMESPACE": NAMESPACE,
            "TEMPORAL_TASK_QUEUE": TASK_QUEUE,
            "RATE_LIMIT_PER_SECOND": str(RATE_PER_SECOND),
            "RATE_LIMIT_PER_MINUTE": str(RATE_PER_MINUTE),
            "WEB_HOST": "127.0.0.1",
            "WEB_PORT": str(port),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "COOKIE_SECURE": "false",
            "CDC_SOURCE": "none",
            "EMAIL_OUTBOX_DIR": str(state / "outbox"),
            "DEV_STATE_DIR": str(state),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


async def until_serving(base: str, web: Child, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/login")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the web app did not start:\n{tail(web.log)}")
            await asyncio.sleep(0.25)


# --- CPU and connections per process ----------------------------------------------------------


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a live process; 0 if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    rest = raw[raw.rindex(")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / _TICK


@dataclass
class Measured:
    """A `Phase` plus the CPU of the web and worker processes (which `Phase` counts as
    'other')."""

    load: PhaseLoad
    procs: dict[str, float]  # CPU seconds per child process during the phase

    def cores(self) -> dict[str, float]:
        """Average cores busy: web, worker, then the Phase groups with 'other' net of them."""
        wall = max(self.load.seconds, 1e-9)
        found = {name: seconds / wall for name, seconds in self.procs.items()}
        groups = dict(self.load.cores)
        groups["other"] = max(groups.get("other", 0.0) - sum(found.values()), 0.0)
        return {**found, **groups}


@contextlib.asynccontextmanager
async def measured(
    name: str, temporal_pid: int, children: Sequence[Child], into: list[Measured]
) -> AsyncIterator[None]:
    before = {c.name: process_cpu(c.pid) for c in children}
    async with Phase(name, temporal_pid) as phase:
        yield
    procs = {c.name: process_cpu(c.pid) - before[c.name] for c in children}
    into.append(Measured(phase.load, procs))
    say("  " + ", ".join(f"{k} {v / max(phase.load.seconds, 1e-9):.2f} cores"
                         for k, v in procs.items()))  # fmt: skip


def process_table(phases: Sequence[Measured]) -> Table:
    groups = ["web", "worker", "bench", "temporal", "postgres", "mariadb", "other", "total"]
    return Table(
        "CPU by process (average cores busy; 'bench' is this process: the simulated agents' "
        "HTTP clients; 'other' is everything else on the machine, other engineers' runs "
        "included)",
        ["phase", "seconds", *groups],
        [
            [
                m.load.name,
                f"{m.load.seconds:.1f}",
                *(f"{m.cores().get(g, 0.0):.2f}" for g in groups),
            ]
            for m in phases
        ],
    )


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    return inodes


def postgres_ports(pids: dict[str, int]) -> dict[int, str]:
    """Local port → process name, for each TCP connection to PostgreSQL the processes hold
    (pg_stat_activity.client_port names the same port)."""
    pg_port = int(PG_HOST.rsplit(":", 1)[1])
    owner = {inode: name for name, pid in pids.items() for inode in _socket_inodes(pid)}
    ports: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                local, remote, inode = parts[1], parts[2], parts[9]
                if inode in owner and int(remote.rsplit(":", 1)[1], 16) == pg_port:
                    ports[int(local.rsplit(":", 1)[1], 16)] = owner[inode]
    return ports


@dataclass
class PoolSamples:
    """pg_stat_activity sampled during the drain, per process: connections open, running a
    statement ('active'), and inside a transaction between statements."""

    open: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    active: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    in_transaction: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    lock_waits: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def rows(self) -> list[list[str]]:
        def stat(values: list[int]) -> str:
            if not values:
                return "0"
            return f"{sum(values) / len(values):.1f} (max {max(values)})"

        return [
            [name, stat(self.open[name]), stat(self.active[name]),
             stat(self.in_transaction[name]), stat(self.lock_waits[name])]
            for name in sorted(self.open)
        ]  # fmt: skip


async def sample_pools(
    engine: AsyncEngine, pids: dict[str, int], samples: PoolSamples, stop: asyncio.Event
) -> None:
    query = text(
        "SELECT client_port, state, wait_event_type FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    while not stop.is_set():
        ports = postgres_ports(pids)
        async with engine.connect() as conn:
            rows = list(await conn.execute(query))
        counts: dict[str, Counter[str]] = {name: Counter() for name in pids}
        for port, state, wait in rows:
            name = ports.get(int(port or 0))
            if name is None:
                continue
            counts[name]["open"] += 1
            counts[name][str(state)] += 1
            if wait == "Lock":
                counts[name]["lock"] += 1
        for name, found in counts.items():
            samples.open[name].append(found["open"])
            samples.active[name].append(found["active"])
            samples.in_transaction[name].append(found["idle in transaction"])
            samples.lock_waits[name].append(found["lock"])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PG_SAMPLE_EVERY)


def mean_of(before: dict[str, float], after: dict[str, float], histogram: str) -> str:
    count = after.get(f"{histogram}_count", 0.0) - before.get(f"{histogram}_count", 0.0)
    total = after.get(f"{histogram}_sum", 0.0) - before.get(f"{histogram}_sum", 0.0)
    if count <= 0:
        return "n/a"
    return f"{total / count:.1f} ms (mean of {count:,.0f})"


def delta(before: dict[str, float], after: dict[str, float], name: str) -> str:
    return f"{after.get(name, 0.0) - before.get(name, 0.0):,.0f}"


# --- bringing claimants under workflows --------------------------------------------------------


def pick_claimants(expected: dict[int, str], wanted: int) -> dict[int, str]:
    """A seeded random sample: half unsigned, half outstanding (topped up from the other
    queue when one is short)."""
    rng = random.Random(SAMPLE_SEED)
    pools = {
        q: sorted(u for u, v in expected.items() if v == q.value)
        for q in (Queue.UNSIGNED, Queue.OUTSTANDING)
    }
    take_unsigned = min(len(pools[Queue.UNSIGNED]), wanted // 2)
    take_outstanding = min(len(pools[Queue.OUTSTANDING]), wanted - take_unsigned)
    take_unsigned = min(len(pools[Queue.UNSIGNED]), wanted - take_outstanding)
    chosen = rng.sample(pools[Queue.UNSIGNED], take_unsigned)
    chosen += rng.sample(pools[Queue.OUTSTANDING], take_outstanding)
    return {u: expected[u] for u in sorted(chosen)}


async def bring_under(
    client: Client, engine: AsyncEngine, user_ids: list[int], within: float
) -> tuple[int, float]:
    """Start each claimant's workflow, then wait until each has a published task (or
    `within` seconds pass). Returns (published, seconds)."""
    began = time.monotonic()
    await start_workflows(client, user_ids)
    say(f"  {len(user_ids)} workflows started in {time.monotonic() - began:.1f}s")
    last_report = began
    while True:
        async with engine.connect() as conn:
            published = int(await conn.scalar(_PUBLISHED) or 0)
        now = time.monotonic()
        if published >= len(user_ids):
            return published, now - began
        if now - began > within:
            say(f"  bring-under bound reached: {published}/{len(user_ids)} published")
            return published, now - began
        if now - last_report >= 15:
            last_report = now
            say(f"  {now - began:.0f}s: {published}/{len(user_ids)} published "
                f"({published / (now - began):.1f}/s)")  # fmt: skip
        await asyncio.sleep(1.0)


# --- agents -------------------------------------------------------------------------------------


@dataclass
class Agent:
    n: int  # index: its source address
    id: int
    email: str
    queue: Queue
    token: str = ""


async def create_agents(
    engine: AsyncEngine, queues: Sequence[Queue], prefix: str, first_n: int
) -> list[Agent]:
    password_hash = hash_password(PASSWORD)
    rows = [
        {
            "email": f"{prefix}{i}@bench.example",
            "display_name": f"Bench {prefix}{i}",
            "role": AgentRole.AGENT.value,
            "queue": queue.value,
            "password_hash": password_hash,
        }
        for i, queue in enumerate(queues)
    ]
    async with engine.begin() as conn:
        ids = [
            int(r[0]) for r in await conn.execute(insert(db.agents).returning(db.agents.c.id), rows)
        ]
    return [
        Agent(first_n + i, agent_id, row["email"], queue)
        for i, (agent_id, row, queue) in enumerate(zip(ids, rows, queues, strict=True))
    ]


def client_for(base: str, n: int, token: str = "") -> httpx.AsyncClient:
    """One agent's client: its own source address and connection, its bearer token."""
    transport = httpx.AsyncHTTPTransport(
        local_address=address(n),
        limits=httpx.Limits(max_connections=2, max_keepalive_connections=2),
    )
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        base_url=base, transport=transport, headers=headers, timeout=REQUEST_TIMEOUT
    )


def error_code(response: httpx.Response) -> str:
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return str(response.json()["error"]["code"])
    return ""


async def issue_tokens(base: str, agents: Sequence[Agent], concurrency: int = 8) -> list[float]:
    """A bearer token for each agent from `POST /api/auth/token` (Argon2id verification in
    the web process); returns the latencies."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(agent: Agent) -> None:
        async with gate, client_for(base, agent.n) as http:
            began = time.perf_counter()
            answer = await http.post(
                "/api/auth/token", json={"email": agent.email, "password": PASSWORD}
            )
            latencies.append(time.perf_counter() - began)
            if answer.status_code != 200:
                raise RuntimeError(f"token for {agent.email}: {answer.status_code} {answer.text}")
            agent.token = str(answer.json()["access_token"])

    await asyncio.gather(*(one(a) for a in agents))
    return latencies


async def sign_in(http: httpx.AsyncClient, agent: Agent) -> None:
    """The login form as a browser submits it: GET (CSRF token + anonymous cookie), POST."""
    page = await http.get("/login")
    found = CSRF.search(page.text)
    if found is None:
        raise RuntimeError("no CSRF token on the login page")
    answer = await http.post(
        "/login",
        data={"email": agent.email, "password": PASSWORD, "csrf_token": found.group(1),
              "next": ""},
    )  # fmt: skip
    if answer.status_code != 303 or "rmc_session" not in http.cookies:
        raise RuntimeError(f"sign-in of {agent.email}: {answer.status_code} {answer.text[:200]}")


# --- the console --------------------------------------------------------------------------------


@dataclass
class ConsoleTiming:
    latency: list[float] = field(default_factory=list)
    server_timing: list[str] = field(default_factory=list)
    wrong: Counter[str] = field(default_factory=Counter)  # unexpected status or panel


async def get_console(http: httpx.AsyncClient, marker: str, timing: ConsoleTiming) -> None:
    began = time.perf_counter()
    answer = await http.get("/console", headers={"Accept": "text/html"})
    timing.latency.append(time.perf_counter() - began)
    if header := answer.headers.get("server-timing"):
        timing.server_timing.append(header)
    if answer.status_code != 200:
        timing.wrong[f"status {answer.status_code}"] += 1
    elif marker not in answer.text:
        timing.wrong["other panel shown"] += 1


async def time_console(
    clients: Sequence[httpx.AsyncClient], requests: int, marker: str
) -> ConsoleTiming:
    """`requests` GETs, one at a time, round robin over the signed-in agents."""
    timing = ConsoleTiming()
    for i in range(requests):
        await get_console(clients[i % len(clients)], marker, timing)
    return timing


def console_row(name: str, timing: ConsoleTiming) -> list[str]:
    wrong = ", ".join(f"{k} x{v}" for k, v in timing.wrong.items()) or "0"
    return [*latency_row(name, timing.latency), wrong]


# --- the drain ----------------------------------------------------------------------------------


@dataclass
class Claimed:
    user_id: int
    agent_id: int
    queue: str
    at: float  # seconds since the stage began
    outcome_ok: bool = False


@dataclass
class Drain:
    began: float = field(default_factory=time.monotonic)
    claim_latency: list[float] = field(default_factory=list)
    empty_latency: list[float] = field(default_factory=list)
    claim_failed_latency: list[float] = field(default_factory=list)  # 5xx answers
    outcome_latency: list[float] = field(default_factory=list)
    outcome_failed_latency: list[float] = field(default_factory=list)
    claimed: list[Claimed] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)
    empty_with_work_left: int = 0
    finished: Counter[str] = field(default_factory=Counter)
    requests_at: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))

    def since(self) -> float:
        return time.monotonic() - self.began

    def updates_sent(self) -> int:
        """Claim and outcome requests that reached a workflow Update (answered or not)."""
        return (
            len(self.claim_latency)
            + len(self.claim_failed_latency)
            + len(self.outcome_latency)
            + len(self.outcome_failed_latency)
        )


def retry_after(answer: httpx.Response) -> float:
    with contextlib.suppress(ValueError):
        return max(0.1, min(float(answer.headers.get("retry-after", "1")), 10.0))
    return 1.0


async def record_no_answer(
    http: httpx.AsyncClient, claim: Claimed, drain: Drain, attempts: int = 10
) -> None:
    for _ in range(attempts):
        began = time.perf_counter()
        try:
            answer = await http.post(
                f"/api/claimants/{claim.user_id}/outcome", json={"disposition": "no_answer"}
            )
        except httpx.HTTPError as error:
            drain.errors[f"outcome {type(error).__name__}"] += 1
            return
        took = time.perf_counter() - began
        if answer.status_code == 429:
            drain.throttled["outcome"] += 1
            await asyncio.sleep(retry_after(answer))
            continue
        if answer.status_code != 200:
            drain.errors[f"outcome {answer.status_code} {error_code(answer)}"] += 1
            drain.outcome_failed_latency.append(took)
            return
        drain.outcome_latency.append(took)
        claim.outcome_ok = True
        return
    drain.errors["outcome throttled 10 times"] += 1


async def agent_loop(
    agent: Agent,
    http: httpx.AsyncClient,
    deadline: float,
    start_delay: float,
    queue_left: Callable[[Queue], Awaitable[int]],
    drain: Drain,
    talk: float = 0.0,
) -> None:
    """Claim → no_answer → repeat, like an agent clicking "Next call" straight after each
    outcome (or, with `talk`, after a call lasting a random time of that mean); after an
    error, try again half a second later (as a person would)."""
    await asyncio.sleep(start_delay)
    while time.monotonic() < deadline:
        drain.requests_at[agent.id].append(drain.since())
        began = time.perf_counter()
        try:
            answer = await http.post("/api/queue/next", json={})
        except httpx.HTTPError as error:
            drain.errors[f"claim {type(error).__name__}"] += 1
            await asyncio.sleep(1.0)
            continue
        took = time.perf_counter() - began
        if answer.status_code == 429:
            drain.throttled["claim"] += 1
            await asyncio.sleep(retry_after(answer))
            continue
        if answer.status_code != 200:
            drain.errors[f"claim {answer.status_code} {error_code(answer)}"] += 1
            drain.claim_failed_latency.append(took)
            await asyncio.sleep(0.5)
            continue
        task = answer.json()["task"]
        if task is None:
            drain.empty_latency.append(took)
            if await queue_left(agent.queue):
                drain.empty_with_work_left += 1
                await asyncio.sleep(EMPTY_RETRY_SECONDS)
                continue
            drain.finished["its queue had nothing claimable"] += 1
            return
        drain.claim_latency.append(took)
        claim = Claimed(int(task["user_id"]), agent.id, str(task["queue"]), drain.since())
        drain.claimed.append(claim)
        if talk:  # the call runs its course even past the deadline: cutting every call
            # short at once would end the drain with all the outcomes in one burst
            await asyncio.sleep(TALK_RNG.expovariate(1 / talk))
        await record_no_answer(http, claim, drain)
    drain.finished["time budget ended"] += 1


async def probe_loop(
    call: Callable[[], Awaitable[None]], every: float, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        began = time.monotonic()
        await call()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(every - (time.monotonic() - began), 0.0))


@contextlib.asynccontextmanager
async def loop_probe(base: str, into: list[float]) -> AsyncIterator[None]:
    """GET a static file every PROBE_EVERY seconds while the block runs: it does no database
    or Temporal work (only the rate limiter's Redis round trip), so its latency is mostly
    the time the request waits for the web process's event loop."""
    stop = asyncio.Event()
    async with client_for(base, 60_000) as http:

        async def probe() -> None:
            began = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/static/favicon.svg")).status_code == 200:
                    into.append(time.perf_counter() - began)

        task = asyncio.create_task(probe_loop(probe, PROBE_EVERY, stop))
        try:
            yield
        finally:
            stop.set()
            await task


def busiest(times: dict[int, list[float]], window: float) -> int:
    """The most claim requests one agent sent within any `window` seconds."""
    best = 0
    for stamps in times.values():
        low = 0
        for high, at in enumerate(stamps):
            while at - stamps[low] >= window:
                low += 1
            best = max(best, high - low + 1)
    return best


def per_window(claims: Sequence[Claimed], seconds: float) -> str:
    """Claims/s in each WINDOW_SECONDS of the stage (the last window as long as it lasted)."""
    buckets = Counter(int(c.at // WINDOW_SECONDS) for c in claims)
    rates = []
    for i in range(int(seconds // WINDOW_SECONDS) + 1):
        length = min(WINDOW_SECONDS, seconds - i * WINDOW_SECONDS)
        if length >= 1:
            rates.append(f"{buckets.get(i, 0) / length:.1f}")
    return ", ".join(rates)


@dataclass
class Stage:
    """One drain: `agents` agents at once for at most `budget` seconds."""

    agents: int
    budget: float
    talk: float = 0.0  # mean seconds on the phone between an outcome and the next claim
    drain: Drain = field(default_factory=Drain)
    seconds: float = 0.0
    static: list[float] = field(default_factory=list)
    console: ConsoleTiming = field(default_factory=ConsoleTiming)
    pools: PoolSamples = field(default_factory=PoolSamples)
    worker_before: dict[str, float] = field(default_factory=dict)
    worker_after: dict[str, float] = field(default_factory=dict)
    ready_after: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        paced = f", paced: {self.talk:.0f} s calls" if self.talk else ", no pause"
        return f"{self.agents} agents{paced}"

    @property
    def name(self) -> str:
        if self.talk:
            return f"paced, {self.agents} agents, {self.talk:.0f} s calls"
        return f"drain, {self.agents} agents"


def spread(agents: Sequence[Agent], count: int) -> list[Agent]:
    """`count` of the agents, evenly over the list (so both queues keep their share)."""
    if count >= len(agents):
        return list(agents)
    return [agents[i * len(agents) // count] for i in range(count)]


async def drain_phase(
    base: str,
    agents: Sequence[Agent],
    stage: Stage,
    dbs: Databases,
    console: httpx.AsyncClient,
    pids: dict[str, int],
) -> None:
    drain = stage.drain
    stop = asyncio.Event()

    async def queue_left(queue: Queue) -> int:
        async with dbs.dialler.connect() as conn:
            return int(await conn.scalar(_CLAIMABLE_IN, {"queue": queue.value}) or 0)

    async def console_probe() -> None:
        with contextlib.suppress(httpx.HTTPError):
            await get_console(console, IDLE_MARKER, stage.console)

    clients = [client_for(base, a.n, a.token) for a in agents]
    background = [
        asyncio.create_task(probe_loop(console_probe, CONSOLE_UNDER_LOAD_EVERY, stop)),
        asyncio.create_task(sample_pools(dbs.dialler, pids, stage.pools, stop)),
    ]
    try:
        drain.began = time.monotonic()
        deadline = drain.began + stage.budget
        async with loop_probe(base, stage.static):
            await asyncio.gather(
                *(
                    agent_loop(
                        agent,
                        http,
                        deadline,
                        max(RAMP_SECONDS, stage.talk) * i / len(agents),
                        queue_left,
                        drain,
                        stage.talk,
                    )
                    for i, (agent, http) in enumerate(zip(agents, clients, strict=True))
                )
            )
        stage.seconds = drain.since()
    finally:
        stop.set()
        await asyncio.gather(*background, return_exceptions=True)
        for http in clients:
            await http.aclose()


# --- verification -------------------------------------------------------------------------------


@dataclass
class Verification:
    http_duplicates: int
    db_call_duplicates: int
    calls_rows: int
    calls_without_http_claim: int
    http_claims_without_call: int
    wrong_agent: int
    still_claimed: int
    claimed_with_lease: int  # granted by the workflow: lease more than 5 minutes away
    claimed_lease_minutes: float  # the longest lease left
    in_cooldown: int
    task_statuses: dict[str, int]
    outcome_audits_duplicated: int


async def verify(
    engine: AsyncEngine, claims: Sequence[Claimed], agent_ids: set[int]
) -> Verification:
    by_user = Counter(c.user_id for c in claims)
    claimer = {c.user_id: c.agent_id for c in claims}
    recorded = {c.user_id for c in claims if c.outcome_ok}
    async with engine.connect() as conn:
        rows = list(
            await conn.execute(
                text(
                    "SELECT user_id, agent_id, count(*) FROM calls WHERE provider = 'manual' "
                    "AND agent_id = ANY(:agents) GROUP BY user_id, agent_id"
                ),
                {"agents": sorted(agent_ids)},
            )
        )
        statuses = {
            str(s): int(n)
            for s, n in await conn.execute(
                text("SELECT status, count(*) FROM call_tasks GROUP BY status")
            )
        }
        held = (
            await conn.execute(
                text(
                    "SELECT count(*), "
                    "count(*) FILTER (WHERE lease_expires_at > now() + interval '5 minutes'), "
                    "coalesce(extract(epoch FROM max(lease_expires_at) - now()) / 60, 0) "
                    "FROM call_tasks WHERE status = 'claimed'"
                )
            )
        ).one()
        in_cooldown = int(
            await conn.scalar(
                text(
                    "SELECT count(*) FROM call_tasks WHERE user_id = ANY(:users) "
                    "AND status = 'ready' AND not_before > now() + interval '3 hours'"
                ),
                {"users": sorted(recorded)},
            )
            or 0
        )
        audits = list(
            await conn.execute(
                text(
                    "SELECT subject_id, count(*) FROM audit_log WHERE action = 'outcome_recorded' "
                    "GROUP BY subject_id HAVING count(*) > 1"
                )
            )
        )
    calls_per_user: Counter[int] = Counter()
    wrong_agent = 0
    for user_id, agent_id, n in rows:
        calls_per_user[int(user_id)] += int(n)
        if claimer.get(int(user_id)) != int(agent_id):
            wrong_agent += int(n)
    return Verification(
        http_duplicates=sum(n - 1 for n in by_user.values() if n > 1),
        db_call_duplicates=sum(n - 1 for n in calls_per_user.values() if n > 1),
        calls_rows=sum(calls_per_user.values()),
        calls_without_http_claim=len(set(calls_per_user) - set(by_user)),
        http_claims_without_call=len(recorded - set(calls_per_user)),
        wrong_agent=wrong_agent,
        still_claimed=int(held[0]),
        claimed_with_lease=int(held[1]),
        claimed_lease_minutes=float(held[2]),
        in_cooldown=in_cooldown,
        task_statuses=statuses,
        outcome_audits_duplicated=len(audits),
    )


# --- the benchmark ------------------------------------------------------------------------------


async def flush_bench_redis() -> None:
    """REDIS_URL's database is this benchmark's own (tests use 14/15, cdc_freshness 13):
    start without rate-limit windows or cached contexts from an earlier run."""
    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()


def other_runs() -> set[str]:
    """Other benchmark and test runs on the machine now (their command lines, shortened)."""
    found: set[str] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (os.getpid(), os.getppid()):
            continue
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            words = [w.decode(errors="replace") for w in argv if w]
            if "bench.agents_http" in words:
                continue
            for i, word in enumerate(words):
                if word == "-m" and i + 1 < len(words) and words[i + 1].startswith("bench."):
                    found.add(words[i + 1])
                elif word.endswith("pytest"):
                    rest = [w for w in words[i + 1 :] if not w.startswith("-")][:1]
                    found.add("pytest " + " ".join(rest) if rest else "pytest")
    return found


_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception))(?::|$)")


def exceptions_in(lines: Sequence[str]) -> Counter[str]:
    return Counter(m.group(1) for line in lines if (m := _EXCEPTION.match(line.strip())))


@dataclass
class Run:
    """Everything measured, for the report."""

    users: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    seed_seconds: float = 0.0
    in_queues: dict[str, int] = field(default_factory=dict)
    chosen: dict[str, int] = field(default_factory=dict)
    published: int = 0
    bring_under_seconds: float = 0.0
    ready_before: dict[str, int] = field(default_factory=dict)
    agents_per_queue: dict[str, int] = field(default_factory=dict)
    token_latency: list[float] = field(default_factory=list)
    console_idle: ConsoleTiming = field(default_factory=ConsoleTiming)
    console_claim: ConsoleTiming = field(default_factory=ConsoleTiming)
    console_claim_first: list[float] = field(default_factory=list)
    static_during_sign_in: list[float] = field(default_factory=list)
    console_claims: list[Claimed] = field(default_factory=list)
    stages: list[Stage] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    sampled: list[HistoryProfile] = field(default_factory=list)
    sampled_from: str = ""
    phases: list[Measured] = field(default_factory=list)
    others: set[str] = field(default_factory=set)
    web_log_lines: int = 0
    web_exceptions: Counter[str] = field(default_factory=Counter)


async def console_phase(
    base: str, agents: Sequence[Agent], requests: int, result: Run
) -> list[httpx.AsyncClient]:
    """Sign the console agents in through the form; time the console idle, then holding a
    claim (claimed through the API with the same agent's token), then record no_answer."""
    clients = [client_for(base, a.n) for a in agents]
    for http, agent in zip(clients, agents, strict=True):
        await sign_in(http, agent)
    # a first request per session (connection set-up, session touch) is not timed
    await time_console(clients, len(clients), IDLE_MARKER)
    result.console_idle = await time_console(clients, requests, IDLE_MARKER)
    for agent in agents:
        async with client_for(base, agent.n + 500, agent.token) as api:
            answer = await api.post("/api/queue/next", json={})
            task = answer.json().get("task") if answer.status_code == 200 else None
            if task is None:
                raise RuntimeError(f"console agent could not claim: {answer.status_code} "
                                   f"{answer.text[:200]}")  # fmt: skip
            result.console_claims.append(
                Claimed(int(task["user_id"]), agent.id, str(task["queue"]), 0.0)
            )
    first = ConsoleTiming()  # each claimant's first view: the context cache is cold
    for http in clients:
        await get_console(http, CLAIM_MARKER, first)
    result.console_claim_first = first.latency
    result.console_claim = await time_console(clients, requests, CLAIM_MARKER)
    for agent, claim in zip(agents, result.console_claims, strict=True):
        async with client_for(base, agent.n + 500, agent.token) as api:
            answer = await api.post(
                f"/api/claimants/{claim.user_id}/outcome", json={"disposition": "no_answer"}
            )
            claim.outcome_ok = answer.status_code == 200
    return clients


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200, help="concurrent simulated agents")
    parser.add_argument("--users", type=int, default=50_000, help="demo claimants seeded")
    parser.add_argument(
        "--under", type=int, default=5000, help="claimants put under outreach workflows"
    )
    parser.add_argument("--budget", type=float, default=120.0, help="seconds of claiming, at most")
    parser.add_argument(
        "--talk",
        type=float,
        default=20.0,
        help="first, a paced drain: mean seconds each call lasts before its outcome (0: none)",
    )
    parser.add_argument(
        "--baseline-agents",
        type=int,
        default=50,
        help="a first, smaller drain in the same run, for comparison (0: none)",
    )
    parser.add_argument("--baseline-budget", type=float, default=60.0)
    parser.add_argument("--console-agents", type=int, default=4)
    parser.add_argument("--console-requests", type=int, default=250, help="per variant")
    parser.add_argument(
        "--bring-under-within", type=float, default=480.0, help="seconds to wait at most"
    )
    parser.add_argument(
        "--no-record", action="store_true", help="print only (smoke runs): no docs/benchmarks.md"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return await worker_process()

    result = Run(users=args.users, others=other_runs())
    if args.talk:
        result.stages.append(Stage(args.agents, args.budget, talk=args.talk))
    if 0 < args.baseline_agents < args.agents:
        result.stages.append(Stage(args.baseline_agents, args.baseline_budget))
    result.stages.append(Stage(args.agents, args.budget))
    state = Path(tempfile.mkdtemp(prefix="bench-agents-http-"))
    web_port = free_port()
    base = f"http://127.0.0.1:{web_port}"
    metrics_address = f"127.0.0.1:{free_port()}"
    await flush_bench_redis()
    try:
        async with (
            dev_server() as server,
            scratch_databases("ah", pg_pool=5, pg_overflow=5, mysql_pool=5) as dbs,
            contextlib.AsyncExitStack() as stack,
        ):
            machine = await machine_info(dbs)
            say(f"seeding {args.users:,} demo claimants")
            seeded = await seed(dbs, args.users)
            result.rows = seeded.rows
            result.seed_seconds = seeded.generate_seconds + seeded.load_seconds
            say(f"  generated in {seeded.generate_seconds:.1f}s, loaded in "
                f"{seeded.load_seconds:.1f}s")  # fmt: skip
            expected = await expected_members(dbs, open_rules(), seeded.now)
            result.in_queues = dict(Counter(expected.values()))
            chosen = pick_claimants(expected, args.under)
            result.chosen = dict(Counter(chosen.values()))
            say(f"in queues: {result.in_queues}; putting {result.chosen} under workflows")

            env = child_env(dbs, server, web_port, state)
            env[WORKER_METRICS_ENV] = metrics_address
            worker = await stack.enter_async_context(
                child_process(
                    "worker", [sys.executable, "-m", "bench.agents_http", "--worker"], env, state
                )
            )
            client = await connect_client(server.address)
            async with measured("bring under", server.pid, [worker], result.phases):
                result.published, result.bring_under_seconds = await bring_under(
                    client, dbs.dialler, sorted(chosen), args.bring_under_within
                )
            ready = await claimable(dbs.dialler)
            result.ready_before = ready
            say(f"claimable now: {ready}")

            two = {q: n for q, n in ready.items() if q in (Queue.UNSIGNED, Queue.OUTSTANDING)}
            queues = agents_per_queue(two, args.agents)
            result.agents_per_queue = dict(Counter(q.value for q in queues))
            agents = await create_agents(dbs.dialler, queues, "agent", 0)
            console_queues = [
                (Queue.UNSIGNED, Queue.OUTSTANDING)[i % 2] for i in range(args.console_agents)
            ]
            console_agents = await create_agents(dbs.dialler, console_queues, "console", 50_000)

            web = await stack.enter_async_context(
                child_process(
                    "web", [venv_binary("dialler"), "web", "--port", str(web_port)], env, state
                )
            )
            await until_serving(base, web)
            children = [web, worker]

            say(f"sign-in: {len(agents) + len(console_agents)} bearer tokens, "
                f"{len(console_agents)} form logins")  # fmt: skip
            async with (
                measured("sign-in (tokens)", server.pid, children, result.phases),
                loop_probe(base, result.static_during_sign_in),
            ):
                result.token_latency = await issue_tokens(base, [*agents, *console_agents])

            say(f"console: {args.console_requests} GETs idle, {args.console_requests} with a claim")
            result.others |= other_runs()
            async with measured("console, no agents working", server.pid, children, result.phases):
                console_clients = await console_phase(
                    base, console_agents, args.console_requests, result
                )
            for http in console_clients[1:]:
                await http.aclose()

            pids = {"web": web.pid, "worker": worker.pid}
            for stage in result.stages:
                say(f"{stage.name}, budget {stage.budget:.0f}s")
                result.others |= other_runs()
                stage.worker_before = await scrape_metrics(metrics_address)
                async with measured(stage.name, server.pid, children, result.phases):
                    await drain_phase(
                        base, spread(agents, stage.agents), stage, dbs, console_clients[0], pids
                    )
                stage.worker_after = await scrape_metrics(metrics_address)
                stage.ready_after = await claimable(dbs.dialler)
                say(f"  {len(stage.drain.claimed)} claims in {stage.seconds:.1f}s, "
                    f"errors {dict(stage.drain.errors)}")  # fmt: skip
            await console_clients[0].aclose()

            last = result.stages[-1].drain.claimed
            if last:
                sample = last[len(last) // 2]
                result.timeline = [
                    f"**History of claimant {sample.user_id}** (claimed mid-way through the "
                    f"{result.stages[-1].agents}-agent drain; events are stamped when the "
                    "workflow task that wrote them completed):",
                    "",
                    "```",
                    *await history_timeline(client, workflow_id_for(sample.user_id)),
                    "```",
                    "",
                ]
            await explain(client, dbs.dialler, result)
            all_claims = [
                *result.console_claims,
                *(claim for stage in result.stages for claim in stage.drain.claimed),
            ]
            agent_ids = {a.id for a in [*agents, *console_agents]}
            verification = await verify(dbs.dialler, all_claims, agent_ids)
            web_log = web.log.read_text(errors="replace").splitlines()
            result.web_log_lines = len(web_log)
            result.web_exceptions = exceptions_in(web_log)
            if result.web_exceptions:
                say(f"web log exceptions: {dict(result.web_exceptions)}; last lines:\n"
                    + tail(web.log, 12))  # fmt: skip
    finally:
        say(f"web and worker logs kept in {keep_logs(state)}")
        shutil.rmtree(state, ignore_errors=True)

    tables, notes = report(args, result, verification)
    print_tables(tables)
    details = [*result.duplicates, *result.timeline]
    print("\n".join(details))
    if not args.no_record:
        append_report(f"Agents over HTTP ({args.agents} agents)", machine, notes, tables, details)
    clean = verification.http_duplicates == 0 and verification.db_call_duplicates == 0
    return 0 if clean and verification.wrong_agent == 0 else 1


async def explain(client: Client, engine: AsyncEngine, result: Run, sample: int = 20) -> None:
    """Evidence for the report: the workflow histories of claimants with two `calls` rows
    (at most 2), and workflow-task timeouts/failures in a sample of histories: claimants
    claimed in the last drain, and claimants left claimed after it."""
    async with engine.connect() as conn:
        rows = list(
            await conn.execute(
                text(
                    "SELECT user_id, agent_id, id, started_at, disposition FROM calls "
                    "WHERE provider = 'manual' AND user_id IN (SELECT user_id FROM calls "
                    "WHERE provider = 'manual' GROUP BY user_id HAVING count(*) > 1) "
                    "ORDER BY user_id, id"
                )
            )
        )
        left_claimed = [
            int(r[0])
            for r in await conn.execute(
                text(
                    "SELECT user_id FROM call_tasks WHERE status = 'claimed' "
                    "ORDER BY user_id LIMIT :n"
                ),
                {"n": sample},
            )
        ]
    twice: dict[int, list[str]] = defaultdict(list)
    for user_id, agent_id, call_id, started_at, disposition in rows:
        twice[int(user_id)].append(
            f"call {call_id} by agent {agent_id} at {started_at:%H:%M:%S.%f} ({disposition})"
        )
    for user_id, calls in list(twice.items())[:2]:
        workflow_id = workflow_id_for(user_id)
        profile = await history_profile(client, workflow_id)
        result.duplicates += [
            f"**Two `calls` rows for claimant {user_id}**: {'; '.join(calls)}. Its history "
            f"({describe_profiles([profile])}):",
            "",
            "```",
            *await history_timeline(client, workflow_id),
            "```",
            "",
        ]
    last = result.stages[-1].drain.claimed if result.stages else []
    claimed = [c.user_id for c in last[:: max(1, len(last) // sample)]][:sample]
    result.sampled_from = (
        f"{len(claimed)} claimed in the last drain, {len(left_claimed)} left claimed"
    )
    result.sampled = [
        await history_profile(client, workflow_id_for(u)) for u in [*claimed, *left_claimed]
    ]


def _errors(counts: Counter[str]) -> str:
    return ", ".join(f"{k} x{v}" for k, v in counts.most_common()) or "0"


def report(
    args: argparse.Namespace, result: Run, check: Verification
) -> tuple[list[Table], list[str]]:
    stages = result.stages
    latency_rows: list[list[str]] = []
    for stage in stages:
        d = stage.drain
        latency_rows += [
            [str(stage.agents), *row]
            for row in (
                latency_row("POST /api/queue/next → a claimant", d.claim_latency),
                latency_row("POST /api/queue/next → 5xx", d.claim_failed_latency),
                latency_row("POST /api/queue/next → none (nothing claimable)", d.empty_latency),
                latency_row("POST /api/claimants/<id>/outcome no_answer → 200",
                            d.outcome_latency),
                latency_row("POST /api/claimants/<id>/outcome → 5xx", d.outcome_failed_latency),
                latency_row("GET /static/favicon.svg every 0.25 s (web event-loop probe)",
                            stage.static),
            )
        ]  # fmt: skip
    latency_rows += [
        ["-", *latency_row("POST /api/auth/token (Argon2id; 8 at a time)", result.token_latency)],
        ["-", *latency_row("GET /static/favicon.svg every 0.25 s during the token requests",
                           result.static_during_sign_in)],
    ]  # fmt: skip
    latency = Table(
        "Latency over HTTP (concurrent agents; loopback; client-side times)",
        ["agents", "request", "count", "p50", "p95", "p99", "max"],
        latency_rows,
    )
    server_timing = sorted(
        {h for t in (result.console_idle, result.console_claim) for h in t.server_timing}
    )
    console = Table(
        "Console page server time (GET /console, one request at a time, "
        f"{args.console_agents} signed-in agents round robin; loopback response time)",
        ["variant", "count", "p50", "p95", "p99", "max", "wrong panel/status"],
        [
            console_row("idle panel (no claim), no agents working", result.console_idle),
            console_row("claimed claimant: context panel, no agents working",
                        result.console_claim),
            *(console_row(f"idle panel every {CONSOLE_UNDER_LOAD_EVERY}s during the "
                          f"{s.label} drain", s.console) for s in stages),
        ],
    )  # fmt: skip

    def per_stage(value: Callable[[Stage], str]) -> list[str]:
        return [value(s) for s in stages]

    def claims_of(s: Stage) -> int:
        return len(s.drain.claimed)

    def recorded_of(s: Stage) -> int:
        return sum(1 for c in s.drain.claimed if c.outcome_ok)

    stage_columns = [s.label for s in stages]
    throughput = Table(
        "Throughput per drain",
        ["figure", *stage_columns],
        [
            ["agents (own source address each)",
             *per_stage(lambda s: str(dict(Counter(
                 q for q in spread_queues(result.agents_per_queue, s.agents)))))],
            ["time budget / drain lasted",
             *per_stage(lambda s: f"{s.budget:.0f}s / {s.seconds:.1f}s")],
            ["claims (a claimant in the answer)", *per_stage(lambda s: f"{claims_of(s):,}")],
            ["**claims/s** (claim + outcome per loop)",
             *per_stage(lambda s: f"**{claims_of(s) / max(s.seconds, 1e-9):.1f}**")],
            [f"claims/s in each {WINDOW_SECONDS}s", *per_stage(
                lambda s: per_window(s.drain.claimed, s.seconds))],
            ["outcomes recorded (200)", *per_stage(lambda s: f"{recorded_of(s):,}")],
            ["errors", *per_stage(lambda s: _errors(s.drain.errors))],
            ["429 answers (per-agent API limits)",
             *per_stage(lambda s: _errors(s.drain.throttled))],
            ["busiest agent: claim requests in 1 s / 60 s (limits "
             f"{AGENT_LIMIT_PER_SECOND} / {AGENT_LIMIT_PER_MINUTE})",
             *per_stage(lambda s: f"{busiest(s.drain.requests_at, 1.0)} / "
                                  f"{busiest(s.drain.requests_at, 60.0)}")],
            ["claim-next → none while the queue still had claimable rows",
             *per_stage(lambda s: str(s.drain.empty_with_work_left))],
            ["agents stopped because", *per_stage(lambda s: _errors(s.drain.finished))],
            ["claimable after the drain", *per_stage(lambda s: str(s.ready_after))],
        ],
    )  # fmt: skip

    def cpu_ms(s: Stage, name: str, per: int) -> str:
        m = next((p for p in result.phases if p.load.name == s.name), None)
        if m is None or per <= 0:
            return "n/a"
        seconds = m.procs.get(name, m.load.cores.get(name, 0.0) * m.load.seconds)
        return f"{seconds / per * 1000:.0f}"

    def metric(histogram: str) -> list[str]:
        return per_stage(lambda s: mean_of(s.worker_before, s.worker_after, histogram))

    bottlenecks = Table(
        "Where the time went, per drain (worker figures from Temporal core's metrics in the "
        "worker process; CPU from /proc)",
        ["figure", *stage_columns],
        [
            *[[f"CPU per successful claim loop, {name} (ms)",
               *[cpu_ms(s, name, claims_of(s)) for s in stages]]
              for name in ("web", "worker", "temporal", "postgres", "bench")],
            ["Updates sent (claim and outcome requests past the reservation, answered or not)",
             *per_stage(lambda s: f"{s.drain.updates_sent():,}")],
            ["worker CPU per Update sent (ms)",
             *per_stage(lambda s: cpu_ms(s, "worker", s.drain.updates_sent()))],
            ["worker: workflow task schedule-to-start (waiting for the worker)",
             *metric("temporal_workflow_task_schedule_to_start_latency")],
            ["worker: workflow task execution (local activities included)",
             *metric("temporal_workflow_task_execution_latency")],
            ["worker: local activity execution",
             *metric("temporal_local_activity_execution_latency")],
            ["worker: local activity scheduled → succeeded",
             *metric("temporal_local_activity_succeed_endtoend_latency")],
            ["worker: workflow tasks failed", *per_stage(lambda s: delta(
                s.worker_before, s.worker_after, "temporal_workflow_task_execution_failed"))],
            ["worker: sticky cache hits / misses / forced evictions",
             *per_stage(lambda s: " / ".join(
                 delta(s.worker_before, s.worker_after, f"temporal_sticky_cache_{k}")
                 for k in ("hit", "miss", "total_forced_eviction")))],
        ],
    )  # fmt: skip
    pools = Table(
        f"PostgreSQL connections per process during each drain (pg_stat_activity every "
        f"{PG_SAMPLE_EVERY:.0f}s; mean (max)); pools: web 10 + 10 overflow, worker 20 + 20",
        ["drain", "process", "open", "active", "idle in transaction", "waiting on a lock"],
        [[s.label, *row] for s in stages for row in s.pools.rows()],
    )
    console_recorded = sum(1 for c in result.console_claims if c.outcome_ok)
    recorded = sum(recorded_of(s) for s in stages) + console_recorded
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(check.task_statuses.items()))
    exactly_once = Table(
        "Exactly-once, over the whole run (both drains and the console agents)",
        ["figure", "value"],
        [
            ["claim answers (HTTP 200 naming a claimant)",
             f"{sum(claims_of(s) for s in stages) + len(result.console_claims):,}"],
            ["**duplicate claims** (a claimant in two claim answers)",
             f"**{check.http_duplicates}**"],
            ["duplicate `calls` rows (same claimant twice)", str(check.db_call_duplicates)],
            ["`calls` rows of bench agents / outcomes answered 200",
             f"{check.calls_rows:,} / {recorded:,}"],
            ["`calls` rows by another agent than the claim answer named", str(check.wrong_agent)],
            ["`calls` rows without a claim answer / outcomes answered 200 without a row",
             f"{check.calls_without_http_claim} / {check.http_claims_without_call}"],
            ["claimants with 2+ `outcome_recorded` audit rows",
             str(check.outcome_audits_duplicated)],
            ["outcomes answered 200 whose claimant is now in the 4-hour cooldown",
             f"{check.in_cooldown:,} of {recorded:,}"],
            ["`call_tasks` left claimed after the run (no agent was told)",
             f"{check.still_claimed:,}"],
            ["... of which held by a workflow lease (> 5 min left; longest "
             f"{check.claimed_lease_minutes:.0f} min)", f"{check.claimed_with_lease:,}"],
            ["call_tasks after", statuses],
            [f"workflow tasks timed out / failed in sampled histories ({result.sampled_from})",
             f"{sum(p.task_timeouts for p in result.sampled)} / "
             f"{sum(p.task_failures for p in result.sampled)}"],
        ],
    )  # fmt: skip
    sizes = Table(
        "Sizes",
        ["figure", "value"],
        [
            ["demo claimants seeded", f"{result.users:,}"],
            ["rows", ", ".join(f"{k} {v:,}" for k, v in result.rows.items())],
            ["seed: generate + load", f"{result.seed_seconds:.1f}s"],
            ["claimants in a queue (seed queries)", str(result.in_queues)],
            ["put under outreach workflows (random sample)", str(result.chosen)],
            ["published (ready/claimed task)",
             f"{result.published:,} in {result.bring_under_seconds:.1f}s "
             f"({result.published / max(result.bring_under_seconds, 1e-9):.1f}/s)"],
            ["claimable at the first drain", f"{sum(result.ready_before.values()):,} "
                                             f"{result.ready_before}"],
        ],
    )  # fmt: skip
    cold = ", ".join(ms(x) for x in result.console_claim_first)
    exceptions = _errors(result.web_exceptions)
    notes = [
        f"Sizes: --users {args.users:,} demo claimants (seed scale is 50,000); "
        f"{result.published:,} of them under outreach workflows (a seeded random sample of the "
        "unsigned and outstanding queues: starting workflows runs at about 30 per second "
        "here, so the whole population would not fit the run); drains of "
        + " then ".join(f"{s.label} (≤ {s.budget:.0f}s)" for s in stages)
        + " in the same run, one after the other.",
        "Processes: the web app as `dialler web` (Hypercorn, one process, one event loop); one "
        "outreach worker in its own process (this module with `--worker`: `build_worker`, "
        "`outreach_activities`, the product's pool sizes, calling windows open all day as "
        "`open_rules()`; not `dialler worker outreach`, whose rules file cannot open the "
        "windows past the DMA hours and which provisions the schedules: a reconcile would put "
        "every seeded claimant under a workflow mid-run); the Temporal dev server (SQLite "
        "file, WAL); this process runs the agents' HTTP clients (httpx, one connection and one "
        f"loopback source address per agent, agents started over {RAMP_SECONDS:.0f}s; after a "
        "5xx an agent tries again 0.5 s later).",
        f"Rate limits: RATE_LIMIT_PER_SECOND={RATE_PER_SECOND:,} and RATE_LIMIT_PER_MINUTE="
        f"{RATE_PER_MINUTE:,} through the environment (app-wide, per session or token). The "
        f"per-agent API limits of web/blueprints/api.py ({AGENT_LIMIT_PER_SECOND}/s, "
        f"{AGENT_LIMIT_PER_MINUTE}/min per agent and route) and the login/token limit "
        "(5/min per account and address, 20 per 10 min per account) and the per-address "
        "ceiling are the app's own, unchanged; every agent connects from its own loopback "
        "address.",
        "Double claims: every claim answer names a claimant; none may appear twice in the run "
        "(a no_answer puts the claimant in a 4-hour cooldown). Cross-checked against `calls` "
        "(one row per recorded outcome, by the agent the claim answer named), `call_tasks` "
        "and the audit log.",
        f"Console: server time is the response time on loopback (the app sets no "
        f"Server-Timing header{': it sent ' + '; '.join(server_timing) if server_timing else ''}"
        f"). The context-panel variant holds a claim per console agent (claimed through the "
        f"API with its token); each claimant's first view (context cache cold) is left out of "
        f"the percentiles: {cold}. Every context view writes an audit row.",
        "CPU: 'postgres' and 'mariadb' are the whole servers, shared with other runs on the "
        "machine; other bench/pytest runs seen during this one: "
        + (", ".join(sorted(result.others)) or "none")
        + " (the rest of the machine's load is the 'other' column).",
        f"Web process log: {result.web_log_lines:,} lines; exceptions: {exceptions}.",
    ]
    tables = [
        latency,
        console,
        throughput,
        exactly_once,
        bottlenecks,
        pools,
        sizes,
        process_table(result.phases),
        load_table([m.load for m in result.phases]),
    ]
    return tables, notes


def spread_queues(split: dict[str, int], count: int) -> list[str]:
    """The queues of `spread(agents, count)` given the full split (agents are created
    queue by queue, in `agents_per_queue` order)."""
    queues = [q for q, n in split.items() for _ in range(n)]
    if count >= len(queues):
        return queues
    return [queues[i * len(queues) // count] for i in range(count)]


if __name__ == "__main__":
    run(main)
