"""Supervisor pages' server time at seed scale with a million calls of history: the 90-day
analytics page and the wallboard, against trivial requests measured in the same run.

    .venv/bin/python -m bench.supervisor_pages [--users 50000] [--calls 1000000] [--days 180]
        [--requests 20] [--wallboard-requests 100] [--no-record]

Seeds demo data (`--users` claimants; 50,000 is seed scale), writes `--calls` calls of
synthetic history over `--days` days (`bench.supervisor_history`: 100 agents, 10 of them
AI, their state changes, magic links, conversions and texts), and gives every claimant the
seed queries place in a queue a task (`call_tasks`: most callable now, the others waiting
for a cooldown, the calling window, a callback, a cap or the abandoned-call lock, or
withdrawn for no consent or the TPS; 40 claimed by agents). Then the web app as in
production (`dialler web`, its own process; a Temporal dev server for its health checks)
and, from this process, one signed-in supervisor over HTTP on the loopback, one request at
a time (so each figure is the server's time for that request: no queueing, no network):

- baselines: `GET /login` signed out (a template, nothing else), `GET /api/health` (one
  round trip to PostgreSQL, MariaDB, Redis and Temporal each);
- the wallboard: the page (`GET /supervisor`) and its floor fragment (what every SSE event
  fetches, `GET /supervisor/wallboard`);
- the analytics: the page over the last 7 and the last 90 UK days, the 90-day lenders table
  (loaded after the page: it reads the claimants' lenders from the replica) and the 90-day
  agents CSV.

Every answer is checked (status 200 and a marker of the content). Also the 90-day reads one
by one, called in this process (`services.funnel.gather`'s three, the state time, the
texts), for where the time goes. Ratios are against `GET /login` of the same run.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import agent_store, call_log, conversions, magic_links, sms_outbox
from adapters.databases import for_reports
from adapters.passwords import hash_password
from bench.harness import agents as http_agents
from bench.harness.cli import Figure, RunRecord, Table, finish, params, parser, run, say, verdict
from bench.harness.machine import Phase, PhaseLoad, code_version, load_table, machine_info, stamp
from bench.harness.seed import expected_members, open_rules, seed
from bench.harness.stack import (
    Databases,
    child_process,
    dev_server,
    dialler,
    free_port,
    keep_logs,
    scratch_databases,
    serving,
    stack_env,
)
from bench.harness.stats import LATENCY_COLUMNS, latency_row, ms, percentile
from bench.supervisor_history import History, write_history
from domain.analytics import DateRange, last_days, settled_days, uk_today
from domain.attribution import UK
from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from services import funnel

REDIS_URL = "redis://127.0.0.1:6379/9"  # this benchmark's own database
TASK_QUEUE = "bench-supervisor-pages"
SUPERVISOR_EMAIL = "pages.supervisor@bench.example"
TARGET_PAGE = 1.0  # DESIGN.md section 5 (the seed): a page in under a second
WARM_UP = 2  # untimed requests first (connections, caches, the first JIT of a statement)
CLAIMED = 40

# Every claimant in a queue gets a task: 60% callable now, the rest waiting (not_before
# ahead, the reason as the rule modules write it) or withdrawn, in a working floor's mix.
_TASKS = text(
    """
    INSERT INTO call_tasks (user_id, workflow_id, queue, score, not_before, not_before_reason,
                            status, version)
    SELECT u, 'outreach-' || u, q, 10 + n % 90,
           CASE WHEN k < 12
                THEN CAST(:now AS timestamptz) - make_interval(mins => CAST(n % 600 AS int))
                ELSE nb END,
           CASE WHEN k < 12 THEN ''
                WHEN k < 15 THEN 'cooldown after no_answer until ' || hhmm
                WHEN k = 15 THEN 'calling window closed until ' || hhmm
                WHEN k = 16 THEN 'callback scheduled for ' || hhmm
                WHEN k = 17 THEN 'abandoned call: 72-hour lock until ' || hhmm
                WHEN k = 18 THEN 'no live-call consent (PECR 21A)'
                ELSE 'no live-call consent (PECR 21A); number on the TPS/CTPS list and no '
                     || 'live-call consent overriding it' END,
           CASE WHEN k < 18 THEN 'ready' ELSE 'withdrawn' END, 1
    FROM (
        SELECT u, q, n, n % 20 AS k, nb,
               to_char(nb AT TIME ZONE 'Europe/London', 'HH24:MI Dy DD Mon') AS hhmm
        FROM (
            SELECT u, q, n, CAST(:now AS timestamptz)
                   + make_interval(mins => CAST(60 + (n * 7) % 4000 AS int)) AS nb
            FROM unnest(CAST(:users AS bigint[]), CAST(:queues AS text[]))
                 WITH ORDINALITY AS t(u, q, n)
        ) spread
    ) s
    """
)
_CLAIM = text(
    """
    UPDATE call_tasks t SET status = 'claimed', claimed_by = a.id, claimed_at = :now,
           lease_expires_at = CAST(:now AS timestamptz) + interval '10 minutes'
    FROM (SELECT id, queue, row_number() OVER (ORDER BY id) AS n FROM agents
          WHERE email LIKE 'history-%' AND NOT is_ai) a,
         (SELECT id, queue, row_number() OVER (PARTITION BY queue ORDER BY id) AS n
          FROM call_tasks WHERE status = 'ready' AND not_before <= :now) r
    WHERE a.n <= :claimed AND r.queue = a.queue AND r.n = a.n AND t.id = r.id
    """
)


@dataclass
class Timing:
    label: str
    path: str
    marker: str
    latency: list[float] = field(default_factory=list)
    bytes: int = 0


@dataclass
class Result:
    users: int
    rows: dict[str, int] = field(default_factory=dict)
    history: History | None = None
    tasks: dict[str, int] = field(default_factory=dict)
    timings: list[Timing] = field(default_factory=list)
    parts: list[list[str]] = field(default_factory=list)
    phases: list[PhaseLoad] = field(default_factory=list)


async def fill_queues(dbs: Databases, now: datetime) -> dict[str, int]:
    members = await expected_members(dbs, open_rules(), now)
    users = sorted(members)
    async with dbs.dialler.begin() as conn:
        await conn.execute(
            _TASKS, {"now": now, "users": users, "queues": [members[u] for u in users]}
        )
        await conn.execute(_CLAIM, {"now": now, "claimed": CLAIMED})
    async with dbs.dialler.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM (ANALYZE) call_tasks"))
        rows = await conn.execute(text("SELECT status, count(*) FROM call_tasks GROUP BY 1"))
        return {str(status): int(n) for status, n in rows}


async def add_supervisor(engine: AsyncEngine) -> http_agents.Agent:
    async with engine.begin() as conn:
        agent_id = await conn.scalar(
            insert(db.agents)
            .values(
                email=SUPERVISOR_EMAIL,
                display_name="Bench supervisor",
                role=AgentRole.SUPERVISOR.value,
                password_hash=hash_password(http_agents.PASSWORD),
            )
            .returning(db.agents.c.id)
        )
    return http_agents.Agent(0, int(agent_id or 0), SUPERVISOR_EMAIL, Queue.UNSIGNED)


async def time_requests(
    http: httpx.AsyncClient, timing: Timing, requests: int, warm_up: int = WARM_UP
) -> None:
    """`warm_up` untimed requests, then `requests` timed ones, one at a time; each answer
    must be a 200 showing `timing.marker`."""
    for n in range(warm_up + requests):
        began = time.perf_counter()
        answer = await http.get(timing.path, headers={"Accept": "text/html"})
        took = time.perf_counter() - began
        if answer.status_code != 200 or timing.marker not in answer.text:
            raise RuntimeError(
                f"{timing.label}: {answer.status_code}, no {timing.marker!r}: {answer.text[:300]}"
            )
        if n >= warm_up:
            timing.latency.append(took)
            timing.bytes = len(answer.content)


async def median_of(times: int, work: Callable[[], Awaitable[Any]]) -> float:
    taken = []
    for _ in range(times):
        began = time.perf_counter()
        await work()
        taken.append(time.perf_counter() - began)
    return statistics.median(taken)


async def service_parts(dialler: AsyncEngine, chosen: DateRange) -> list[list[str]]:
    """Each read of the 90-day page alone, in this process (median of 3): counted live over
    the whole range, and the kept days' counts (the page has kept them by now)."""
    start, end = chosen.period
    kept = settled_days(chosen, uk_today(datetime.now(UTC)))

    def report_read(read: Callable[[Any], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        async def work() -> Any:
            async with dialler.connect() as conn:
                await for_reports(conn)
                return await read(conn)

        return work

    parts: dict[str, Callable[[], Awaitable[Any]]] = {
        "calls (call_log.call_breakdown)": report_read(
            lambda c: call_log.call_breakdown(c, start, end, UK.key)
        ),
        "links (magic_links.link_counts_between)": report_read(
            lambda c: magic_links.link_counts_between(c, start, end, call_log.queue_of_call)
        ),
        "conversions (conversions.conversion_counts_between)": report_read(
            lambda c: conversions.conversion_counts_between(c, start, end)
        ),
        "time in each state (agent_store.state_time_between)": report_read(
            lambda c: agent_store.state_time_between(c, start, end)
        ),
        "texts (sms_outbox.message_counts_between)": report_read(
            lambda c: sms_outbox.message_counts_between(c, start, end)
        ),
        "the three funnel reads at once (funnel.gather)": lambda: funnel.gather(
            dialler, None, start, end
        ),
        f"calls, the {len(kept)} kept days (call_log.kept_call_breakdown)": report_read(
            lambda c: call_log.kept_call_breakdown(c, kept[0], kept[-1])
        ),
        f"time in each state, the {len(kept)} kept days (agent_store.kept_state_time)": (
            report_read(lambda c: agent_store.kept_state_time(c, kept[0], kept[-1]))
        ),
        f"links, the {len(kept)} kept days (magic_links.kept_link_breakdown)": report_read(
            lambda c: magic_links.kept_link_breakdown(c, kept[0], kept[-1])
        ),
    }
    return [[name, ms(await median_of(3, work))] for name, work in parts.items()]


async def main() -> int:
    cli = parser(__doc__)
    cli.add_argument("--users", type=int, default=50_000, help="demo claimants seeded")
    cli.add_argument("--calls", type=int, default=1_000_000, help="calls of synthetic history")
    cli.add_argument("--days", type=int, default=180, help="days the history spans")
    cli.add_argument("--requests", type=int, default=20, help="timed requests per analytics view")
    cli.add_argument("--wallboard-requests", type=int, default=100, help="timed, per view")
    args = cli.parse_args()

    result = Result(users=args.users)
    state = Path(tempfile.mkdtemp(prefix="bench-supervisor-pages-"))
    web_port = free_port()
    base = f"http://127.0.0.1:{web_port}"
    try:
        async with (
            dev_server() as server,
            scratch_databases("sp", pg_pool=5, pg_overflow=5, mysql_pool=5) as dbs,
            contextlib.AsyncExitStack() as stack,
        ):
            machine = await machine_info(dbs)
            seeded = await seed(dbs, args.users)
            result.rows = seeded.rows
            async with dbs.replica.connect() as conn:
                users = [int(u) for (u,) in await conn.execute(text("SELECT id FROM users"))]
            say(f"writing {args.calls:,} calls of history over {args.days} days")
            result.history = await write_history(
                dbs.dialler, users, seeded.now, args.calls, args.days
            )
            now = datetime.now(UTC)
            result.tasks = await fill_queues(dbs, now)
            say(f"tasks: {result.tasks}")
            supervisor = await add_supervisor(dbs.dialler)
            env = stack_env(
                dbs, server.address, TASK_QUEUE, REDIS_URL, ENVIRONMENT="test",
                WEB_HOST="127.0.0.1", WEB_PORT=str(web_port), PUBLIC_BASE_URL=base,
                COOKIE_SECURE="false", CDC_SOURCE="none", RATE_LIMIT_PER_SECOND="100000",
                RATE_LIMIT_PER_MINUTE="1000000", RATE_LIMIT_ADDRESS_PER_MINUTE="1000000",
                DEV_STATE_DIR=str(state),
            )  # fmt: skip
            web = await stack.enter_async_context(child_process(
                "web", dialler("web", "--port", str(web_port)), env, state, ready=serving(base)
            ))  # fmt: skip
            today = uk_today(now)
            quarter = last_days(today, 90)
            q90 = f"from={quarter.first_day}&to={quarter.last_day}"
            signed_out = httpx.AsyncClient(base_url=base, timeout=120)
            http = http_agents.client_for(base, 7)
            http.timeout = httpx.Timeout(120)
            await http_agents.sign_in(http, supervisor)
            n, nw = args.requests, args.wallboard_requests
            first90 = "analytics page, last 90 days, first request (counts the settled days)"
            plan = [
                (signed_out, Timing("GET /login, signed out (baseline)", "/login",
                                    'name="csrf_token"'), nw, WARM_UP),
                (http, Timing("GET /api/health (baseline: each store once)", "/api/health",
                              '"status"'), nw, WARM_UP),
                (http, Timing("wallboard floor fragment: GET /supervisor/wallboard",
                              "/supervisor/wallboard", "queue-unsigned"), nw, WARM_UP),
                (http, Timing("wallboard page: GET /supervisor", "/supervisor",
                              'id="wallboard-floor"'), nw, WARM_UP),
                (http, Timing(first90, f"/supervisor/analytics?{q90}", 'id="chart-funnel"'),
                 1, 0),
                (http, Timing("analytics page, last 90 days", f"/supervisor/analytics?{q90}",
                              'id="chart-funnel"'), n, WARM_UP),
                (http, Timing("analytics page, last 7 days", "/supervisor/analytics",
                              'id="chart-funnel"'), n, WARM_UP),
                (http, Timing("analytics lenders table, last 90 days",
                              f"/supervisor/analytics/lenders?{q90}", 'id="table-lenders"'), n,
                 WARM_UP),
                (http, Timing("analytics agents CSV, last 90 days",
                              f"/supervisor/analytics/agents.csv?{q90}", "Agent,Kind,Calls"), n,
                 WARM_UP),
            ]  # fmt: skip
            children = {"web": web.pid}
            for client, timing, count, warm_up in plan:
                say(f"{timing.label}: {count} requests")
                async with Phase(timing.label, server.pid, children) as phase:
                    await time_requests(client, timing, count, warm_up)
                result.phases.append(phase.load)
                result.timings.append(timing)
                say(f"  p50 {ms(percentile(timing.latency, 50))}, "
                    f"p95 {ms(percentile(timing.latency, 95))}")  # fmt: skip
            await signed_out.aclose()
            await http.aclose()
            async with Phase("the 90-day reads one by one", server.pid, children) as phase:
                result.parts = await service_parts(dbs.dialler, quarter)
            result.phases.append(phase.load)
    finally:
        say(f"web log kept in {keep_logs(state, 'bench-supervisor-pages-logs-')}")
        shutil.rmtree(state, ignore_errors=True)

    record = report(args, result)
    record.machine = machine
    finish(record, no_record=args.no_record)
    return 0


def report(args: Any, result: Result) -> RunRecord:
    by_label = {t.label: t for t in result.timings}
    baseline = percentile(by_label["GET /login, signed out (baseline)"].latency, 50)

    def p(label: str, pct: int) -> float:
        return percentile(by_label[label].latency, pct)

    rows = [
        [*latency_row(t.label, t.latency), f"{percentile(t.latency, 50) / baseline:.1f}x",
         f"{t.bytes / 1024:,.0f} KiB"]
        for t in result.timings
    ]  # fmt: skip
    history = result.history
    assert history is not None
    tables = [
        Table(
            "Server time, one request at a time over the loopback (ratio: p50 / p50 of "
            "GET /login signed out, same run)",
            [*LATENCY_COLUMNS, "p50 ratio", "answer"],
            rows,
        ),
        Table(
            "The 90-day page's reads one by one, in this process (median of 3; the page runs "
            "them at once, each on its own connection)",
            ["read", "median"],
            result.parts,
        ),
        Table(
            "Data",
            ["table", "rows", "size (with indexes)"],
            [[t, f"{n:,}", f"{history.table_mib[t]:,.0f} MiB"] for t, n in history.rows.items()]
            + [
                [
                    "call_tasks by status",
                    ", ".join(f"{k} {v:,}" for k, v in result.tasks.items()),
                    "",
                ]
            ],
        ),
        load_table(result.phases),
    ]
    page90 = "analytics page, last 90 days"
    calls = f"{history.rows['calls'] / 1e6:g}M calls"
    at_scale = result.users >= 50_000 and history.rows["calls"] >= 1_000_000
    floor = "wallboard floor fragment: GET /supervisor/wallboard"
    board = "wallboard page: GET /supervisor"
    figures = [
        Figure(f"analytics page, 90 days, {calls}: server time p50", ms(p(page90, 50)),
               f"≤ {TARGET_PAGE:g} s (a page, DESIGN.md §5)",
               verdict(p(page90, 50) <= TARGET_PAGE, at_scale)),
        Figure(f"analytics page, 90 days, {calls}: server time p95", ms(p(page90, 95))),
        Figure("analytics page, 90 days: p50 / GET /login p50", f"{p(page90, 50) / baseline:.0f}x"),
        Figure("analytics page, 90 days: the first request, counting the settled days",
               ms(p("analytics page, last 90 days, first request (counts the settled days)",
                    50))),
        Figure("analytics lenders table, 90 days: server time p50",
               ms(p("analytics lenders table, last 90 days", 50))),
        Figure(f"wallboard page, {calls}: server time p95", ms(p(board, 95)),
               f"≤ {TARGET_PAGE:g} s (a page, DESIGN.md §5)",
               verdict(p(board, 95) <= TARGET_PAGE, at_scale)),
        Figure("wallboard floor fragment (each SSE update): server time p95", ms(p(floor, 95))),
        Figure("wallboard page: p95 / GET /login p95",
               f"{p(board, 95) / p('GET /login, signed out (baseline)', 95):.1f}x"),
    ]  # fmt: skip
    notes = [
        f"Seed scale: {result.users:,} demo claimants ({result.rows.get('users', 0):,} users, "
        f"{result.rows.get('claims', 0):,} claims on the replica); {history.rows['calls']:,} "
        f"calls over {args.days} days written in {history.seconds:.0f} s "
        "(bench/supervisor_history.py), vacuumed and analysed.",
        "Server time: the client's time for one request at a time on the loopback to "
        "`dialler web` (Hypercorn, one process), after "
        f"{WARM_UP} untimed requests; the benchmark process, PostgreSQL and MariaDB share "
        "the 2 cores with other engineers' runs (see the load table).",
        "The analytics page runs its reads at once on separate connections (calls, links, "
        "conversions, state time, texts); the lenders table is a request of its own, which "
        "the page makes after it has loaded.",
        "Settled days (two days old; for links, once all the day's links have expired) are "
        "counted once and kept (call_days, agent_state_days, link_days): "
        "the first 90-day request counts them (its time is its own figure), later ones read "
        "what was kept and count the last two days live. The 'one by one' table counts the "
        "whole 90 days live, as a report without kept days would.",
    ]
    return RunRecord("supervisor_pages", "Supervisor pages at a million calls", stamp(),
                     code_version(), {}, params(args), figures, notes, tables)  # fmt: skip


if __name__ == "__main__":
    run(main)
