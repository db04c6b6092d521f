"""Event → wallboard update in the browser: how long after an agent's claim or outcome the
supervisor's open wallboard shows it.

    .venv/bin/python -m bench.wallboard_latency [--users 50000] [--under 2000]
        [--calls 1000000] [--days 180] [--events 100] [--agents 4] [--no-record]

Seeds demo data (`--users` claimants; 50,000 is seed scale) and `--calls` calls of synthetic
history over `--days` days (`bench.supervisor_history`: 100 agents, their state changes,
links, conversions, texts), puts `--under` claimants under outreach workflows (calling
windows open all day, so their tasks are claimable now) and gives the other claimants the
seed queries place in a queue a task that waits (cooldowns, calling window, callbacks,
caps, the abandoned-call lock; withdrawn for no consent, the TPS, or done), so `call_tasks`
has seed scale's rows and reasons. Then the product's processes: the web app (`dialler
web`) and an outreach worker (`bench.harness.worker`), on Redis database BENCH_REDIS_URL.

A supervisor signs in in Debian's chromium (Playwright) and keeps /supervisor open. In the
page, a MutationObserver stamps (Date.now()) every swap of the floor panel with the figures
it shows, and a listener stamps each `floor-changed` event's arrival with the publish time
it carries. Then `--events` times, one at a time, with a random pause of 0.2-1.5 s between
actions: an agent (bearer token) claims (`POST /api/queue/next`) and, once the page shows
the claim, records no_answer (`POST /api/claimants/<id>/outcome`). For each action:
publish → DOM (the headline: from the `floor-changed` publish after the action to the first
swap showing the new figure), its two parts (publish → the browser hears the event; event →
swap: the fragment's fetch and swap), and HTTP answer → DOM (the change committed, to the
page: includes the publisher's coalescing pause when a change falls inside it).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, async_playwright
from playwright.async_api import TimeoutError as PageTimeout
from redis.asyncio import Redis
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from adapters.live import SUPERVISORS_CHANNEL, LiveBus, LiveEvent
from adapters.passwords import hash_password
from adapters.temporal import DATA_CONVERTER
from bench.harness import agents as http_agents
from bench.harness.cli import Figure, RunRecord, Table, finish, params, parser, run, say, verdict
from bench.harness.machine import Phase, PhaseLoad, code_version, load_table, machine_info, stamp
from bench.harness.seed import (
    claimable,
    expected_members,
    open_rules,
    pick_claimants,
    published,
    start_outreach,
)
from bench.harness.seed import seed as seed_demo
from bench.harness.stack import (
    child_process,
    dev_server,
    dialler,
    free_port,
    keep_logs,
    scratch_databases,
    serving,
    stack_env,
)
from bench.harness.stats import LATENCY_COLUMNS, counts, latency_row, percentile
from bench.harness.worker import METRICS_ENV
from bench.supervisor_history import write_history
from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue

TASK_QUEUE = "bench-wallboard"
REDIS_URL = "redis://127.0.0.1:6379/3"  # this benchmark's own database (flushed at start)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic",
                 "--no-first-run"]  # fmt: skip
SUPERVISOR_EMAIL = "wallboard.supervisor@bench.example"
TARGET_P95 = 1.0  # the issue: an update reaches an open page within a second of the event
WAIT_FOR_SWAP = 20.0  # seconds: past the page's 15 s safety refresh
WARM_UP = 3  # actions before measuring (first fetches, connection set-up)

# Ready tasks that wait (not_before at least an hour ahead, so none becomes callable during
# the run) and withdrawn ones, in the proportions of a working floor; reasons as the rule
# modules write them, their times spread so there are as many distinct reasons as there.
_WAITING_TASKS = text(
    """
    INSERT INTO call_tasks (user_id, workflow_id, queue, score, not_before, not_before_reason,
                            status, version)
    SELECT u, 'outreach-' || u, q, 10 + n % 90, nb,
           CASE WHEN k < 8 THEN 'cooldown after no_answer until ' || hhmm
                WHEN k < 11 THEN 'calling window closed until ' || hhmm
                WHEN k < 13 THEN 'callback scheduled for ' || hhmm
                WHEN k = 13 THEN 'daily cap of 3 calls reached; next day'
                WHEN k = 14 THEN 'abandoned call: 72-hour lock until ' || hhmm
                WHEN k < 18 THEN 'no live-call consent (PECR 21A)'
                WHEN k = 18 THEN 'no live-call consent (PECR 21A); number on the TPS/CTPS '
                                 || 'list and no live-call consent overriding it'
                ELSE 'nothing left to chase' END,
           CASE WHEN k < 15 THEN 'ready' ELSE 'withdrawn' END, 1
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

# In the page (Playwright evaluates it over the DevTools protocol: the page's CSP, which
# allows no inline script, does not apply to it).
_OBSERVE = """
() => {
  performance.setResourceTimingBufferSize(100000);
  const read = (id) => Number((document.getElementById(id) || {}).textContent || 0);
  const figures = () => ({
    claimed: ['unsigned', 'outstanding', 'callback']
      .reduce((n, q) => n + read(`queue-${q}-claimed`), 0),
    calls: read('calls-today'),
  });
  window.benchWallboard = {swaps: [], events: [], start: figures()};
  new MutationObserver(() => {
    window.benchWallboard.swaps.push({t: Date.now(), ...figures()});
  }).observe(document.getElementById('wallboard-floor'), {childList: true});
  document.body.addEventListener('htmx:sseMessage', (e) => {
    if (e.detail && e.detail.type === 'floor-changed') {
      window.benchWallboard.events.push({t: Date.now(), at: JSON.parse(e.detail.data).at});
    }
  });
  return window.benchWallboard.start;
}
"""
_SWAP_SHOWING = """
([since, key, value]) =>
  window.benchWallboard.swaps.find((s) => s.t >= since && s[key] >= value) || false
"""
_FRAGMENT_TIMINGS = """
() => performance.getEntriesByType('resource')
  .filter((e) => e.name.endsWith('/supervisor/wallboard'))
  .map((e) => [e.responseStart - e.requestStart, e.duration])
"""


@dataclass
class Sample:
    action: str  # claim or outcome
    answered: float  # the HTTP answer arrived (epoch seconds)
    published: float | None  # the floor-changed publish after the action
    heard: float | None  # the browser received it
    shown: float  # the first swap showing the change


@dataclass
class Result:
    users: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    history_rows: dict[str, int] = field(default_factory=dict)
    waiting_tasks: int = 0
    published: int = 0
    samples: list[Sample] = field(default_factory=list)
    missed: Counter[str] = field(default_factory=Counter)
    fragment_server: list[float] = field(default_factory=list)  # TTFB in the browser
    fragment_total: list[float] = field(default_factory=list)
    swaps: int = 0
    events_heard: int = 0
    phases: list[PhaseLoad] = field(default_factory=list)
    details: list[str] = field(default_factory=list)


_TASKS_OF = text("SELECT count(*) FROM call_tasks WHERE user_id = ANY(CAST(:users AS bigint[]))")


async def bring_under(
    client: Client, engine: AsyncEngine, user_ids: list[int], within: float
) -> tuple[int, float]:
    """Start each claimant's workflow and wait until each has written its task: ready, or
    withdrawn (a claimant without live-call consent never becomes ready). Returns the
    ready or claimed tasks and the seconds it took."""
    began, written = time.monotonic(), 0
    await start_outreach(client, user_ids, TASK_QUEUE)
    while time.monotonic() - began < within:
        async with engine.connect() as conn:
            written = int(await conn.scalar(_TASKS_OF, {"users": user_ids}) or 0)
        if written >= len(user_ids):
            break
        await asyncio.sleep(1.0)
    else:
        say(f"  bring-under bound reached: {written}/{len(user_ids)} tasks written")
    return await published(engine), time.monotonic() - began


async def add_waiting_tasks(
    engine: AsyncEngine, members: dict[int, str], under: set[int], now: datetime
) -> int:
    """A waiting or withdrawn task for each claimant in a queue not under a workflow."""
    others = sorted(u for u in members if u not in under)
    if not others:
        return 0
    async with engine.begin() as conn:
        await conn.execute(
            _WAITING_TASKS,
            {"now": now, "users": others, "queues": [members[u] for u in others]},
        )
        await conn.execute(text("ANALYZE call_tasks"))
    return len(others)


async def add_supervisor(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(db.agents).values(
                email=SUPERVISOR_EMAIL,
                display_name="Bench supervisor",
                role=AgentRole.SUPERVISOR.value,
                password_hash=hash_password(http_agents.PASSWORD),
            )
        )


async def replica_user_ids(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return [int(u) for (u,) in await conn.execute(text("SELECT id FROM users ORDER BY id"))]


async def until_subscribed(bus: LiveBus, within: float = 30.0) -> None:
    """Until a stream (the supervisor's page) listens on the supervisors' channel."""
    deadline = time.monotonic() + within
    while await bus.publish(SUPERVISORS_CHANNEL, LiveEvent("bench-ping")) < 1:
        if time.monotonic() > deadline:
            raise RuntimeError("the wallboard's live stream never subscribed")
        await asyncio.sleep(0.1)


async def open_wallboard(page: Page, base: str) -> dict[str, int]:
    await page.goto(f"{base}/login")
    await page.get_by_label("Email").fill(SUPERVISOR_EMAIL)
    await page.get_by_label("Password").fill(http_agents.PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{base}/supervisor")
    start: dict[str, int] = await page.evaluate(_OBSERVE)
    return start


async def shown_after(page: Page, since: float, key: str, value: int) -> dict[str, Any] | None:
    """The first swap at or after `since` (epoch s) whose `key` figure reached `value`."""
    try:
        handle = await page.wait_for_function(
            _SWAP_SHOWING, arg=[since * 1000, key, value], timeout=WAIT_FOR_SWAP * 1000, polling=10
        )
    except PageTimeout:
        return None
    found: dict[str, Any] = await handle.json_value()
    return found


async def event_after(page: Page, since: float) -> tuple[float | None, float | None]:
    """The first floor-changed event published at or after `since`: (published, heard)."""
    events: list[dict[str, Any]] = await page.evaluate("window.benchWallboard.events")
    for event in events:
        published = datetime.fromisoformat(event["at"]).timestamp()
        if published >= since:
            return published, float(event["t"]) / 1000
    return None, None


async def act(
    page: Page, http: httpx.AsyncClient, action: str, path: str, key: str, value: int
) -> tuple[Sample | None, httpx.Response]:
    began = time.time()
    body = {} if action == "claim" else {"disposition": "no_answer"}
    answer = await http.post(path, json=body)
    answered = time.time()
    if answer.status_code != 200:
        return None, answer
    swap = await shown_after(page, began, key, value)
    if swap is None:
        return None, answer
    published, heard = await event_after(page, began)
    return Sample(action, answered, published, heard, float(swap["t"]) / 1000), answer


async def measure(
    page: Page,
    base: str,
    start: dict[str, int],
    agents: list[http_agents.Agent],
    events: int,
    result: Result,
) -> None:
    """`events` claims and outcomes, one at a time, each timed to the page showing it."""
    claimed, calls = start["claimed"], start["calls"]
    rng = random.Random(2026)
    clients = [http_agents.client_for(base, a.n, a.token) for a in agents]
    try:
        for i in range(events + WARM_UP):
            http = clients[i % len(clients)]
            sample, answer = await act(
                page, http, "claim", "/api/queue/next", "claimed", claimed + 1
            )
            task = answer.json().get("task") if answer.status_code == 200 else None
            if task is None:
                result.missed[f"claim: {answer.status_code} {answer.text[:80]}"] += 1
                break
            claimed += 1
            if sample is None:
                result.missed["claim not shown within 20 s"] += 1
            elif i >= WARM_UP:
                result.samples.append(sample)
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            path = f"/api/claimants/{task['user_id']}/outcome"
            sample, answer = await act(page, http, "outcome", path, "calls", calls + 1)
            if answer.status_code != 200:
                result.missed[f"outcome: {answer.status_code} {answer.text[:80]}"] += 1
                break
            claimed, calls = claimed - 1, calls + 1
            if sample is None:
                result.missed["outcome not shown within 20 s"] += 1
            elif i >= WARM_UP:
                result.samples.append(sample)
            await asyncio.sleep(rng.uniform(0.2, 1.5))
    finally:
        for client in clients:
            await client.aclose()
    timings: list[list[float]] = await page.evaluate(_FRAGMENT_TIMINGS)
    result.fragment_server = [t[0] / 1000 for t in timings[WARM_UP:]]
    result.fragment_total = [t[1] / 1000 for t in timings[WARM_UP:]]
    result.swaps = int(await page.evaluate("window.benchWallboard.swaps.length"))
    result.events_heard = int(await page.evaluate("window.benchWallboard.events.length"))


async def flush_redis() -> None:
    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()


async def main() -> int:
    cli = parser(__doc__)
    cli.add_argument("--users", type=int, default=50_000, help="demo claimants seeded")
    cli.add_argument("--under", type=int, default=2000, help="claimants under workflows")
    cli.add_argument("--calls", type=int, default=1_000_000, help="calls of synthetic history")
    cli.add_argument("--days", type=int, default=180, help="days the history spans")
    cli.add_argument("--events", type=int, default=100, help="claims measured (and outcomes)")
    cli.add_argument("--agents", type=int, default=4, help="agents taking turns")
    cli.add_argument("--bring-under-within", type=float, default=300.0, help="seconds, at most")
    args = cli.parse_args()

    result = Result(users=args.users)
    state = Path(tempfile.mkdtemp(prefix="bench-wallboard-"))
    web_port, metrics_address = free_port(), f"127.0.0.1:{free_port()}"
    base = f"http://127.0.0.1:{web_port}"
    await flush_redis()
    redis = Redis.from_url(REDIS_URL)
    try:
        async with (
            dev_server() as server,
            scratch_databases("wb", pg_pool=5, pg_overflow=5, mysql_pool=5) as dbs,
            contextlib.AsyncExitStack() as stack,
        ):
            machine = await machine_info(dbs)
            seeded = await seed_demo(dbs, args.users)
            result.rows = seeded.rows
            members = await expected_members(dbs, open_rules(), seeded.now)
            chosen = pick_claimants(members, args.under)
            say(f"writing {args.calls:,} calls of history over {args.days} days")
            history = await write_history(
                dbs.dialler, await replica_user_ids(dbs.replica), seeded.now, args.calls, args.days
            )
            result.history_rows = history.rows
            env = stack_env(
                dbs, server.address, TASK_QUEUE, REDIS_URL, ENVIRONMENT="test",
                WEB_HOST="127.0.0.1", WEB_PORT=str(web_port), PUBLIC_BASE_URL=base,
                COOKIE_SECURE="false", CDC_SOURCE="none", RATE_LIMIT_PER_SECOND="100000",
                RATE_LIMIT_PER_MINUTE="1000000", EMAIL_OUTBOX_DIR=str(state / "outbox"),
                DEV_STATE_DIR=str(state), **{METRICS_ENV: metrics_address},
            )  # fmt: skip
            worker = await stack.enter_async_context(child_process(
                "worker", [sys.executable, "-m", "bench.harness.worker"], env, state
            ))  # fmt: skip
            client = await Client.connect(
                server.address, namespace="default", data_converter=DATA_CONVERTER
            )
            result.published, _ = await bring_under(
                client, dbs.dialler, sorted(chosen), args.bring_under_within
            )
            result.waiting_tasks = await add_waiting_tasks(
                dbs.dialler, members, set(chosen), datetime.now(UTC)
            )
            ready = await claimable(dbs.dialler)
            say(f"claimable now: {ready}; {result.waiting_tasks:,} waiting or withdrawn tasks")
            queues = [Queue.UNSIGNED if ready.get("unsigned", 0) >= ready.get("outstanding", 0)
                      else Queue.OUTSTANDING] * args.agents  # fmt: skip
            agents = await http_agents.create_agents(dbs.dialler, queues, "wallboard", 0)
            await add_supervisor(dbs.dialler)
            web = await stack.enter_async_context(child_process(
                "web", dialler("web", "--port", str(web_port)), env, state, ready=serving(base)
            ))  # fmt: skip
            await http_agents.issue_tokens(base, agents)
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
                )
                page = await (await browser.new_context(locale="en-GB")).new_page()
                children = {"web": web.pid, "worker": worker.pid}
                start = await open_wallboard(page, base)
                await until_subscribed(LiveBus(redis))
                async with Phase("events", server.pid, children) as phase:
                    await measure(page, base, start, agents, args.events, result)
                result.phases.append(phase.load)
                await browser.close()
    finally:
        await redis.aclose()
        say(f"web and worker logs kept in {keep_logs(state, 'bench-wallboard-logs-')}")
        shutil.rmtree(state, ignore_errors=True)

    record = report(args, result)
    record.machine = machine
    finish(record, no_record=args.no_record)
    return 0 if result.samples else 1


def _between(samples: list[Sample], start: str, end: str) -> list[float]:
    values = []
    for s in samples:
        a, b = getattr(s, start), getattr(s, end)
        if a is not None and b is not None:
            values.append(max(0.0, b - a))
    return values


def report(args: Any, result: Result) -> RunRecord:
    samples = result.samples
    by_action = {a: [s for s in samples if s.action == a] for a in ("claim", "outcome")}
    headline = _between(samples, "published", "shown")
    rows = [
        latency_row("publish → DOM, all actions", headline),
        *(latency_row(f"publish → DOM, {a}s", _between(v, "published", "shown"))
          for a, v in by_action.items()),
        latency_row("publish → the page hears it", _between(samples, "published", "heard")),
        latency_row("heard → DOM (fragment fetch and swap)", _between(samples, "heard", "shown")),
        latency_row("HTTP answer → DOM", _between(samples, "answered", "shown")),
        latency_row("fragment: server time to first byte (browser timing)", result.fragment_server),
        latency_row("fragment: whole fetch (browser timing)", result.fragment_total),
    ]  # fmt: skip
    latency = Table("Latency (one action at a time; epoch clocks of one machine)",
                    LATENCY_COLUMNS, rows)  # fmt: skip
    sizes = Table(
        "Sizes",
        ["figure", "value"],
        [
            ["demo claimants seeded", f"{result.users:,}"],
            ["replica rows", ", ".join(f"{k} {v:,}" for k, v in result.rows.items())],
            ["history rows", ", ".join(f"{k} {v:,}" for k, v in result.history_rows.items())],
            ["tasks under workflows (ready or claimed)", f"{result.published:,}"],
            ["tasks waiting or withdrawn (synthetic)", f"{result.waiting_tasks:,}"],
            ["actions measured (claims + outcomes)", f"{len(samples)}"],
            ["actions not shown, or refused", counts(result.missed)],
            ["floor swaps / floor-changed events heard in the page",
             f"{result.swaps} / {result.events_heard}"],
        ],
    )  # fmt: skip
    p50, p95 = percentile(headline, 50), percentile(headline, 95)
    answered95 = percentile(_between(samples, "answered", "shown"), 95)
    at_scale = args.users >= 50_000 and args.calls >= 1_000_000
    figures = [
        Figure("event → wallboard update in the browser, p50", f"{p50 * 1000:.0f} ms"),
        Figure("event → wallboard update in the browser, p95", f"{p95 * 1000:.0f} ms",
               "≤ 1 s", verdict(p95 <= TARGET_P95, at_scale)),
        Figure("claim/outcome answered → wallboard update, p95", f"{answered95 * 1000:.0f} ms"),
    ]  # fmt: skip
    notes = [
        f"Sizes: --users {args.users:,} (seed scale 50,000), --calls {args.calls:,} over "
        f"{args.days} days (issue 12 asks for 1,000,000), --under {args.under:,}; "
        f"{args.events} claims and as many outcomes after {WARM_UP} unmeasured warm-up pairs.",
        "Processes: `dialler web` (one Hypercorn process), the bench's outreach worker "
        "(`bench.harness.worker`: the product's worker without schedules; the web app "
        "publishes floor-changed for claims and outcomes itself), the Temporal dev server, "
        "Debian's chromium (Playwright, headless) with the wallboard open, this process.",
        "Event: the floor-changed publish the action caused (its `at`, the publisher's "
        "clock); DOM: the MutationObserver's Date.now() at the swap of #wallboard-floor "
        "whose figures first include the action. One machine, one clock.",
    ]
    return RunRecord(
        "wallboard_latency", "Event → wallboard update in the browser", stamp(),
        code_version(), {}, params(args), figures, notes,
        [latency, sizes, load_table(result.phases)], result.details,
    )  # fmt: skip


if __name__ == "__main__":
    run(main)
