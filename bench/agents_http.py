"""Simulated agents over HTTP: claim, outcome, repeat; and the agent console's server time.

    .venv/bin/python -m bench.agents_http [--agents 200] [--users 50000] [--under 5000]
                                          [--budget 120] [--talk 20] [--no-record]

Seeds demo data (`--users` claimants; 50,000 is seed scale), then puts `--under` of the
claimants the seed queries place in the unsigned and outstanding queues (a random half of
each, seeded) under outreach workflows, with calling windows open all day so every published
task is claimable now.

Three processes as in production: the web app (`dialler web`), one outreach worker
(`bench.harness.worker`: `build_worker` and `outreach_activities` with the open calling
windows, no schedules, the product's pool sizes) and this process (the simulated agents).
Then: sign-in (bearer tokens for every agent, the login form for a few console agents); the
console's server time, idle and with a claimed claimant's context; drains: first a paced
one (`--agents`, each call lasting a random time of mean `--talk` seconds), then saturating
ones, `--baseline-agents` then `--agents`, each agent looping `POST /api/queue/next` →
`POST /api/claimants/<id>/outcome` (`no_answer`: a 4-hour cooldown) until its queue has
nothing claimable or the budget has passed. Reports latency percentiles, claims/s, the web
event loop's delay, the worker's Temporal metrics, PostgreSQL connections per process, and
proves no claimant was claimed twice (HTTP answers, `calls`, `call_tasks`, the audit log).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from adapters.temporal import DATA_CONVERTER
from bench.harness import agents as http_agents
from bench.harness.agents import Agent, Claimed, ConsoleTiming, Drain
from bench.harness.cli import Figure, RunRecord, Table, finish, params, parser, run, say, verdict
from bench.harness.exactly_once import Verification, verify
from bench.harness.machine import (
    Phase,
    PhaseLoad,
    PoolSamples,
    code_version,
    load_table,
    machine_info,
    other_runs,
    sample_pools,
    stamp,
)
from bench.harness.seed import (
    agents_per_queue,
    bring_under,
    claimable,
    expected_members,
    open_rules,
    pick_claimants,
    seed,
)
from bench.harness.stack import (
    PG_HOST,
    Child,
    child_process,
    dev_server,
    dialler,
    free_port,
    keep_logs,
    scratch_databases,
    serving,
    stack_env,
)
from bench.harness.stats import busiest, counts, latency_row, per_window, percentile
from bench.harness.temporal import (
    HistoryProfile,
    describe_profiles,
    history_profile,
    metric_delta,
    metric_mean,
    scrape_metrics,
    timeline_block,
)
from bench.harness.worker import METRICS_ENV
from schemas.enums import Queue
from workflows.outreach import workflow_id_for

TASK_QUEUE = "bench-outreach"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
RAMP_SECONDS = 2.0  # agents start spread over this (Hypercorn's listen backlog is 100)
PROBE_EVERY = 0.25
CONSOLE_UNDER_LOAD_EVERY = 0.5
PG_SAMPLE_EVERY = 2.0
WINDOW_SECONDS = 30
# App-wide limits per client address, raised through the environment: the benchmark
# measures the app, not the limiter. (Per-agent API limits and login limits are the app's.)
RATE_PER_SECOND, RATE_PER_MINUTE = 100_000, 1_000_000
AGENT_LIMIT_PER_SECOND, AGENT_LIMIT_PER_MINUTE = 10, 300  # web/blueprints/api.py
TARGET_CLAIM_P99, TARGET_CONSOLE_P95 = 0.050, 0.100  # DESIGN.md section 5
_CLAIMABLE_IN = text(
    "SELECT count(*) FROM call_tasks WHERE status = 'ready' AND queue = :queue "
    "AND not_before <= now()"
)


@dataclass
class Stage:
    """One drain: `agents` agents at once for at most `budget` seconds."""

    agents: int
    budget: float
    talk: float = 0.0  # mean seconds on the phone between a claim and its outcome
    drain: Drain = field(default_factory=Drain)
    seconds: float = 0.0
    static: list[float] = field(default_factory=list)
    console: ConsoleTiming = field(default_factory=ConsoleTiming)
    pools: PoolSamples = field(default_factory=PoolSamples)
    worker_before: dict[str, float] = field(default_factory=dict)
    worker_after: dict[str, float] = field(default_factory=dict)
    ready_after: dict[str, int] = field(default_factory=dict)
    load: PhaseLoad | None = None

    @property
    def label(self) -> str:
        return f"{self.agents} agents" + (
            f", paced: {self.talk:.0f} s calls" if self.talk else ", no pause"
        )

    @property
    def name(self) -> str:
        if self.talk:
            return f"paced, {self.agents} agents, {self.talk:.0f} s calls"
        return f"drain, {self.agents} agents"

    def claims(self) -> int:
        return len(self.drain.claimed)

    def recorded(self) -> int:
        return sum(1 for c in self.drain.claimed if c.outcome_ok)

    def rate(self) -> float:
        return self.claims() / max(self.seconds, 1e-9)

    def cpu_ms(self, group: str, per: int) -> str:
        if self.load is None or per <= 0:
            return "n/a"
        return f"{self.load.cpu_seconds(group) / per * 1000:.0f}"


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
    details: list[str] = field(default_factory=list)
    sampled: list[HistoryProfile] = field(default_factory=list)
    sampled_from: str = ""
    phases: list[PhaseLoad] = field(default_factory=list)
    others: set[str] = field(default_factory=set)
    web_log_lines: int = 0
    web_exceptions: Counter[str] = field(default_factory=Counter)


async def console_phase(
    base: str, agents: Sequence[Agent], requests: int, result: Run
) -> list[httpx.AsyncClient]:
    """Sign the console agents in through the form; time the console idle, then holding a
    claim (claimed through the API with the same agent's token), then record no_answer."""
    clients = [http_agents.client_for(base, a.n) for a in agents]
    for http, agent in zip(clients, agents, strict=True):
        await http_agents.sign_in(http, agent)
    # a first request per session (connection set-up, session touch) is not timed
    await http_agents.time_console(clients, len(clients), http_agents.IDLE_MARKER)
    result.console_idle = await http_agents.time_console(clients, requests, http_agents.IDLE_MARKER)
    for agent in agents:
        async with http_agents.client_for(base, agent.n + 500, agent.token) as api:
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
        await http_agents.get_console(http, http_agents.CLAIM_MARKER, first)
    result.console_claim_first = first.latency
    result.console_claim = await http_agents.time_console(
        clients, requests, http_agents.CLAIM_MARKER
    )
    for agent, claim in zip(agents, result.console_claims, strict=True):
        async with http_agents.client_for(base, agent.n + 500, agent.token) as api:
            answer = await api.post(
                f"/api/claimants/{claim.user_id}/outcome", json={"disposition": "no_answer"}
            )
            claim.outcome_ok = answer.status_code == 200
    return clients


async def drain_phase(
    base: str,
    agents: Sequence[Agent],
    stage: Stage,
    engine: AsyncEngine,
    console: httpx.AsyncClient,
    pids: dict[str, int],
    talk: Callable[[], float],
) -> None:
    drain, stop = stage.drain, asyncio.Event()

    async def queue_left(queue: Queue) -> int:
        async with engine.connect() as conn:
            return int(await conn.scalar(_CLAIMABLE_IN, {"queue": queue.value}) or 0)

    async def console_probe() -> None:
        with contextlib.suppress(httpx.HTTPError):
            await http_agents.get_console(console, http_agents.IDLE_MARKER, stage.console)

    pg_port = int(PG_HOST.rsplit(":", 1)[1])
    clients = [http_agents.client_for(base, a.n, a.token) for a in agents]
    background = [
        asyncio.create_task(http_agents.every(console_probe, CONSOLE_UNDER_LOAD_EVERY, stop)),
        asyncio.create_task(
            sample_pools(engine, pids, pg_port, stage.pools, stop, PG_SAMPLE_EVERY)
        ),
    ]
    ramp = max(RAMP_SECONDS, stage.talk)
    try:
        drain.began = time.monotonic()
        deadline = drain.began + stage.budget
        async with http_agents.loop_probe(base, stage.static, PROBE_EVERY):
            await asyncio.gather(
                *(http_agents.agent_loop(agent, http, deadline, queue_left, drain,
                                         talk if stage.talk else None, ramp * i / len(agents))
                  for i, (agent, http) in enumerate(zip(agents, clients, strict=True)))
            )  # fmt: skip
        stage.seconds = drain.since()
    finally:
        stop.set()
        await asyncio.gather(*background, return_exceptions=True)
        for http in clients:
            await http.aclose()


async def explain(client: Client, engine: AsyncEngine, result: Run, sample: int = 20) -> None:
    """Evidence for the report: a sample claimant's history, the histories of claimants with
    two `calls` rows (at most 2), and workflow-task timeouts/failures in a sample of
    histories: claimants claimed in the last drain, and claimants left claimed after it."""
    last = result.stages[-1].drain.claimed if result.stages else []
    if last:
        user = last[len(last) // 2].user_id
        result.details += await timeline_block(
            client, workflow_id_for(user),
            f"**History of claimant {user}** (claimed mid-way through the "
            f"{result.stages[-1].agents}-agent drain; events are stamped when the workflow task "
            "that wrote them completed):",
        )  # fmt: skip
    async with engine.connect() as conn:
        rows = list(await conn.execute(text(
            "SELECT user_id, agent_id, id, started_at, disposition FROM calls "
            "WHERE provider = 'manual' AND user_id IN (SELECT user_id FROM calls "
            "WHERE provider = 'manual' GROUP BY user_id HAVING count(*) > 1) ORDER BY user_id, id"
        )))  # fmt: skip
        left_claimed = [int(r[0]) for r in await conn.execute(
            text("SELECT user_id FROM call_tasks WHERE status = 'claimed' ORDER BY user_id "
                 "LIMIT :n"), {"n": sample})]  # fmt: skip
    twice: dict[int, list[str]] = defaultdict(list)
    for user_id, agent_id, call_id, started_at, disposition in rows:
        twice[int(user_id)].append(
            f"call {call_id} by agent {agent_id} at {started_at:%H:%M:%S.%f} ({disposition})"
        )
    for user_id, calls in list(twice.items())[:2]:
        profile = await history_profile(client, workflow_id_for(user_id))
        result.details += await timeline_block(
            client, workflow_id_for(user_id),
            f"**Two `calls` rows for claimant {user_id}**: {'; '.join(calls)}. Its history "
            f"({describe_profiles([profile])}):",
        )  # fmt: skip
    claimed = [c.user_id for c in last[:: max(1, len(last) // sample)]][:sample]
    result.sampled_from = (
        f"{len(claimed)} claimed in the last drain, {len(left_claimed)} left claimed"
    )
    result.sampled = [
        await history_profile(client, workflow_id_for(u)) for u in [*claimed, *left_claimed]
    ]


_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception))(?::|$)")


async def flush_bench_redis() -> None:
    """REDIS_URL's database is this benchmark's own (BENCH_REDIS_URL): start without
    rate-limit windows or cached contexts from an earlier run."""
    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()


async def main() -> int:
    cli = parser(__doc__)
    cli.add_argument("--agents", type=int, default=200, help="concurrent simulated agents")
    cli.add_argument("--users", type=int, default=50_000, help="demo claimants seeded")
    cli.add_argument("--under", type=int, default=5000, help="claimants under workflows")
    cli.add_argument("--budget", type=float, default=120.0, help="seconds of claiming, at most")
    cli.add_argument(
        "--talk",
        type=float,
        default=20.0,
        help="first, a paced drain: mean seconds each call lasts (0: none)",
    )
    cli.add_argument(
        "--baseline-agents",
        type=int,
        default=50,
        help="a first, smaller drain in the same run, for comparison (0: none)",
    )
    cli.add_argument("--baseline-budget", type=float, default=60.0)
    cli.add_argument("--console-agents", type=int, default=4)
    cli.add_argument("--console-requests", type=int, default=250, help="per variant")
    cli.add_argument("--bring-under-within", type=float, default=480.0, help="seconds, at most")
    args = cli.parse_args()  # fmt: skip

    result = Run(users=args.users, others=other_runs("bench.agents_http"))
    if args.talk:
        result.stages.append(Stage(args.agents, args.budget, talk=args.talk))
    if 0 < args.baseline_agents < args.agents:
        result.stages.append(Stage(args.baseline_agents, args.baseline_budget))
    result.stages.append(Stage(args.agents, args.budget))
    talk = http_agents.exponential_calls(args.talk or 1.0)
    state = Path(tempfile.mkdtemp(prefix="bench-agents-http-"))
    web_port, metrics_address = free_port(), f"127.0.0.1:{free_port()}"
    base = f"http://127.0.0.1:{web_port}"
    await flush_bench_redis()
    try:
        async with (
            dev_server() as server,
            scratch_databases("ah", pg_pool=5, pg_overflow=5, mysql_pool=5) as dbs,
            contextlib.AsyncExitStack() as stack,
        ):
            machine = await machine_info(dbs)
            seeded = await seed(dbs, args.users)
            result.rows = seeded.rows
            result.seed_seconds = seeded.generate_seconds + seeded.load_seconds
            expected = await expected_members(dbs, open_rules(), seeded.now)
            result.in_queues = dict(Counter(expected.values()))
            chosen = pick_claimants(expected, args.under)
            result.chosen = dict(Counter(chosen.values()))
            say(f"in queues: {result.in_queues}; putting {result.chosen} under workflows")
            env = stack_env(
                dbs, server.address, TASK_QUEUE, REDIS_URL, ENVIRONMENT="test",
                RATE_LIMIT_PER_SECOND=str(RATE_PER_SECOND),
                RATE_LIMIT_PER_MINUTE=str(RATE_PER_MINUTE), WEB_HOST="127.0.0.1",
                WEB_PORT=str(web_port), PUBLIC_BASE_URL=base, COOKIE_SECURE="false",
                CDC_SOURCE="none", EMAIL_OUTBOX_DIR=str(state / "outbox"),
                DEV_STATE_DIR=str(state), **{METRICS_ENV: metrics_address},
            )  # fmt: skip
            worker = await stack.enter_async_context(child_process(
                "worker", [sys.executable, "-m", "bench.harness.worker"], env, state
            ))  # fmt: skip
            client = await Client.connect(
                server.address, namespace="default", data_converter=DATA_CONVERTER
            )
            async with Phase("bring under", server.pid, {"worker": worker.pid}) as phase:
                result.published, result.bring_under_seconds = await bring_under(
                    client, dbs.dialler, sorted(chosen), TASK_QUEUE, args.bring_under_within
                )
            result.phases.append(phase.load)
            result.ready_before = await claimable(dbs.dialler)
            say(f"claimable now: {result.ready_before}")
            two = {q: n for q, n in result.ready_before.items()
                   if q in (Queue.UNSIGNED, Queue.OUTSTANDING)}  # fmt: skip
            queues = agents_per_queue(two, args.agents)
            result.agents_per_queue = dict(Counter(q.value for q in queues))
            agents = await http_agents.create_agents(dbs.dialler, queues, "agent", 0)
            console_queues = [(Queue.UNSIGNED, Queue.OUTSTANDING)[i % 2]
                              for i in range(args.console_agents)]  # fmt: skip
            console_agents = await http_agents.create_agents(
                dbs.dialler, console_queues, "console", 50_000
            )
            web = await stack.enter_async_context(child_process(
                "web", dialler("web", "--port", str(web_port)), env, state, ready=serving(base)
            ))  # fmt: skip
            children = {"web": web.pid, "worker": worker.pid}
            await measured_stages(base, args, result, agents, console_agents, dbs.dialler,
                                  server.pid, children, metrics_address, talk)  # fmt: skip
            await explain(client, dbs.dialler, result)
            all_claims = [*result.console_claims,
                          *(c for stage in result.stages for c in stage.drain.claimed)]  # fmt: skip
            check = await verify(
                dbs.dialler, all_claims, {a.id for a in [*agents, *console_agents]}
            )
            note_web_log(web, result)
    finally:
        say(f"web and worker logs kept in {keep_logs(state, 'bench-agents-http-logs-')}")
        shutil.rmtree(state, ignore_errors=True)

    record = report(args, result, check)
    record.machine = machine
    finish(record, no_record=args.no_record)
    clean = check.http_duplicates == 0 and check.db_call_duplicates == 0
    return 0 if clean and check.wrong_agent == 0 else 1


async def measured_stages(
    base: str,
    args: argparse.Namespace,
    result: Run,
    agents: list[Agent],
    console_agents: list[Agent],
    engine: AsyncEngine,
    temporal_pid: int,
    children: dict[str, int],
    metrics_address: str,
    talk: Callable[[], float],
) -> None:
    """Sign-in, the console, then each drain, each a measured phase."""
    say(f"sign-in: {len(agents) + len(console_agents)} bearer tokens")
    async with (
        Phase("sign-in (tokens)", temporal_pid, children) as phase,
        http_agents.loop_probe(base, result.static_during_sign_in, PROBE_EVERY),
    ):
        result.token_latency = await http_agents.issue_tokens(base, [*agents, *console_agents])
    result.phases.append(phase.load)
    say(f"console: {args.console_requests} GETs idle, {args.console_requests} with a claim")
    result.others |= other_runs("bench.agents_http")
    async with Phase("console, no agents working", temporal_pid, children) as phase:
        console_clients = await console_phase(base, console_agents, args.console_requests, result)
    result.phases.append(phase.load)
    for http in console_clients[1:]:
        await http.aclose()
    for stage in result.stages:
        say(f"{stage.name}, budget {stage.budget:.0f}s")
        result.others |= other_runs("bench.agents_http")
        stage.worker_before = await scrape_metrics(metrics_address)
        async with Phase(stage.name, temporal_pid, children) as phase:
            await drain_phase(base, http_agents.spread(agents, stage.agents), stage, engine,
                              console_clients[0], children, talk)  # fmt: skip
        stage.load = phase.load
        result.phases.append(phase.load)
        stage.worker_after = await scrape_metrics(metrics_address)
        stage.ready_after = await claimable(engine)
        say(f"  {stage.claims()} claims in {stage.seconds:.1f}s, errors {dict(stage.drain.errors)}")
    await console_clients[0].aclose()


def note_web_log(web: Child, result: Run) -> None:
    lines = web.log.read_text(errors="replace").splitlines()
    result.web_log_lines = len(lines)
    result.web_exceptions = Counter(
        m.group(1) for line in lines if (m := _EXCEPTION.match(line.strip()))
    )
    if result.web_exceptions:
        say(f"web log exceptions: {dict(result.web_exceptions)}; last lines:\n{web.tail(12)}")


def console_row(name: str, timing: ConsoleTiming) -> list[str]:
    return [*latency_row(name, timing.latency), counts(timing.wrong)]


def spread_queues(split: dict[str, int], count: int) -> list[str]:
    """The queues of `spread(agents, count)` given the full split."""
    queues = [q for q, n in split.items() for _ in range(n)]
    if count >= len(queues):
        return queues
    return [queues[i * len(queues) // count] for i in range(count)]


def report(args: argparse.Namespace, result: Run, check: Verification) -> RunRecord:
    stages = result.stages
    latency_rows: list[list[str]] = []
    for s in stages:
        d = s.drain
        latency_rows += [[str(s.agents), *row] for row in (
            latency_row("POST /api/queue/next → a claimant", d.claim_latency),
            latency_row("POST /api/queue/next → 5xx", d.claim_failed_latency),
            latency_row("POST /api/queue/next → none (nothing claimable)", d.empty_latency),
            latency_row("POST /api/claimants/<id>/outcome no_answer → 200", d.outcome_latency),
            latency_row("POST /api/claimants/<id>/outcome → 5xx", d.outcome_failed_latency),
            latency_row("GET /static/favicon.svg every 0.25 s (web event-loop probe)", s.static),
        )]  # fmt: skip
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

    columns = [s.label for s in stages]
    throughput = Table(
        "Throughput per drain",
        ["figure", *columns],
        [
            ["agents (own source address each)", *per_stage(lambda s: str(dict(Counter(
                spread_queues(result.agents_per_queue, s.agents)))))],
            ["time budget / drain lasted",
             *per_stage(lambda s: f"{s.budget:.0f}s / {s.seconds:.1f}s")],
            ["claims (a claimant in the answer)", *per_stage(lambda s: f"{s.claims():,}")],
            ["**claims/s** (claim + outcome per loop)",
             *per_stage(lambda s: f"**{s.rate():.1f}**")],
            [f"claims/s in each {WINDOW_SECONDS}s", *per_stage(lambda s: ", ".join(
                f"{r:.1f}" for r in per_window((c.at for c in s.drain.claimed), s.seconds,
                                               WINDOW_SECONDS)))],
            ["outcomes recorded (200)", *per_stage(lambda s: f"{s.recorded():,}")],
            ["errors", *per_stage(lambda s: counts(s.drain.errors))],
            ["429 answers (per-agent API limits)", *per_stage(lambda s: counts(s.drain.throttled))],
            ["busiest agent: claim requests in 1 s / 60 s (limits "
             f"{AGENT_LIMIT_PER_SECOND} / {AGENT_LIMIT_PER_MINUTE})",
             *per_stage(lambda s: f"{busiest(s.drain.requests_at, 1.0)} / "
                                  f"{busiest(s.drain.requests_at, 60.0)}")],
            ["claim-next → none while the queue still had claimable rows",
             *per_stage(lambda s: str(s.drain.empty_with_work_left))],
            ["agents stopped because", *per_stage(lambda s: counts(s.drain.finished))],
            ["claimable after the drain", *per_stage(lambda s: str(s.ready_after))],
        ],
    )  # fmt: skip

    def metric(histogram: str) -> list[str]:
        return per_stage(lambda s: metric_mean(s.worker_before, s.worker_after, histogram))

    bottlenecks = Table(
        "Where the time went, per drain (worker figures from Temporal core's metrics in the "
        "worker process; CPU from /proc)",
        ["figure", *columns],
        [
            *[[f"CPU per successful claim loop, {name} (ms)",
               *(s.cpu_ms(name, s.claims()) for s in stages)]
              for name in ("web", "worker", "temporal", "postgres", "bench")],
            ["Updates sent (claim and outcome requests past the reservation, answered or not)",
             *per_stage(lambda s: f"{s.drain.updates_sent():,}")],
            ["worker CPU per Update sent (ms)",
             *per_stage(lambda s: s.cpu_ms("worker", s.drain.updates_sent()))],
            ["worker: workflow task schedule-to-start (waiting for the worker)",
             *metric("temporal_workflow_task_schedule_to_start_latency")],
            ["worker: workflow task execution (local activities included)",
             *metric("temporal_workflow_task_execution_latency")],
            ["worker: local activity execution",
             *metric("temporal_local_activity_execution_latency")],
            ["worker: local activity scheduled → succeeded",
             *metric("temporal_local_activity_succeed_endtoend_latency")],
            ["worker: workflow tasks failed", *per_stage(lambda s: metric_delta(
                s.worker_before, s.worker_after, "temporal_workflow_task_execution_failed"))],
            ["worker: sticky cache hits / misses / forced evictions",
             *per_stage(lambda s: " / ".join(
                 metric_delta(s.worker_before, s.worker_after, f"temporal_sticky_cache_{k}")
                 for k in ("hit", "miss", "total_forced_eviction")))],
        ],
    )  # fmt: skip
    pools = Table(
        f"PostgreSQL connections per process during each drain (pg_stat_activity every "
        f"{PG_SAMPLE_EVERY:.0f}s; mean (max)); pools: web 10 + 10 overflow, worker 20 + 20",
        ["drain", "process", "open", "active", "idle in transaction", "waiting on a lock"],
        [[s.label, *row] for s in stages for row in s.pools.rows()],
    )
    answers = sum(s.claims() for s in stages) + len(result.console_claims)
    recorded = sum(s.recorded() for s in stages) + sum(c.outcome_ok for c in result.console_claims)
    exactly_once = Table(
        "Exactly-once, over the whole run (every drain and the console agents)",
        ["figure", "value"],
        [
            ["claim answers (HTTP 200 naming a claimant)", f"{answers:,}"],
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
            ["call_tasks after", ", ".join(f"{k} {v}" for k, v in
                                           sorted(check.task_statuses.items()))],
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
            ["claimable at the first drain",
             f"{sum(result.ready_before.values()):,} {result.ready_before}"],
        ],
    )  # fmt: skip
    notes = [
        f"Sizes: --users {args.users:,} demo claimants (seed scale is 50,000); "
        f"{result.published:,} of them under outreach workflows (a seeded random sample of the "
        "unsigned and outstanding queues); drains of "
        + " then ".join(f"{s.label} (≤ {s.budget:.0f}s)" for s in stages)
        + " in the same run, one after the other.",
        "Processes: the web app as `dialler web` (Hypercorn, one process); one outreach worker "
        "in its own process (`python -m bench.harness.worker`: `build_worker`, "
        "`outreach_activities`, the product's pool sizes, calling windows open all day, no "
        "schedules, so no reconcile puts every seeded claimant under a workflow mid-run); the "
        "Temporal dev server (SQLite file, WAL); this process runs the agents' HTTP clients "
        f"(one connection and one loopback source address per agent, started over "
        f"{RAMP_SECONDS:.0f}s; after a 5xx an agent tries again 0.5 s later).",
        f"Rate limits: RATE_LIMIT_PER_SECOND={RATE_PER_SECOND:,} and RATE_LIMIT_PER_MINUTE="
        f"{RATE_PER_MINUTE:,} through the environment (app-wide); the per-agent API limits "
        f"({AGENT_LIMIT_PER_SECOND}/s, {AGENT_LIMIT_PER_MINUTE}/min per agent and route) and "
        "the login/token limits are the app's own, unchanged.",
        "Double claims: every claim answer names a claimant; none may appear twice in the run "
        "(a no_answer puts the claimant in a 4-hour cooldown). Cross-checked against `calls`, "
        "`call_tasks` and the audit log.",
        "Console: server time is the response time on loopback (the app sets no Server-Timing "
        f"header{': it sent ' + '; '.join(server_timing) if server_timing else ''}). Each "
        "claimant's first view (context cache cold) is left out of the percentiles: "
        + ", ".join(f"{x * 1000:.1f} ms" for x in result.console_claim_first) + ".",
        "CPU: 'postgres' and 'mariadb' are the whole servers, shared with other runs on the "
        "machine; other bench/pytest runs seen during this one: "
        + (", ".join(sorted(result.others)) or "none") + ".",
        f"Web process log: {result.web_log_lines:,} lines; exceptions: "
        f"{counts(result.web_exceptions)}.",
    ]  # fmt: skip
    paced = next((s for s in stages if s.talk), stages[0])
    saturating = [s for s in stages if not s.talk]
    claim_p99 = percentile(paced.drain.claim_latency, 99)
    console_p95 = percentile(result.console_claim.latency, 95)
    claim_met = verdict(claim_p99 <= TARGET_CLAIM_P99, paced.agents >= 200)
    figures = [
        Figure(f"claim p99 over HTTP, {paced.label}", f"{claim_p99 * 1000:.1f} ms",
               "≤ 50 ms at 200 agents", claim_met),
        Figure(f"claim p50 over HTTP, {paced.label}",
               f"{percentile(paced.drain.claim_latency, 50) * 1000:.1f} ms"),
        *(Figure(f"claims/s, {s.label}", f"{s.rate():.1f}") for s in saturating),
        Figure("duplicate claims", str(check.http_duplicates + check.db_call_duplicates), "0",
               verdict(check.http_duplicates + check.db_call_duplicates == 0)),
        Figure("console server time p95, context panel", f"{console_p95 * 1000:.1f} ms",
               "≤ 100 ms", verdict(console_p95 <= TARGET_CONSOLE_P95)),
    ]  # fmt: skip
    tables = [latency, console, throughput, exactly_once, bottlenecks, pools, sizes,
              load_table(result.phases)]  # fmt: skip
    return RunRecord(
        "agents_http", f"Agents over HTTP ({args.agents} agents)", stamp(), code_version(), {},
        params(args), figures, notes, tables, result.details,
    )  # fmt: skip


if __name__ == "__main__":
    run(main)
