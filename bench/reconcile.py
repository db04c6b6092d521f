"""Reconcile plan time at seed scale and at 10x: does it grow no worse than linearly?

    .venv/bin/python -m bench.reconcile [--users 50000] [--scale 10] [--repeats 5] [--no-record]

Times the bodies of the `ReconcileActivities.plan` activity for every page of users (the
seed's three queue queries, the queue projection read, and the diff, a page at a time),
called directly against scratch databases seeded with demo data: no worker, no Temporal
server. Each size is timed twice: with an empty
projection (first run after a deploy: everyone is to be refreshed) and with a complete one
(steady state: `call_tasks` holds exactly the seed queries' answer, nothing to do). Also
reports each part alone, and the size of the largest page as a Temporal payload (each
page is an activity result in the reconcile workflow's history).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from temporalio.client import Client

from activities.reconcile import ReconcileActivities
from adapters.queue_queries import due_callback_user_ids, outstanding_user_ids, unsigned_user_ids
from adapters.rules_file import load_rules_file
from adapters.temporal import DATA_CONVERTER
from bench.harness.cli import Figure, RunRecord, Table, finish, params, parser, run, say, verdict
from bench.harness.machine import (
    Phase,
    PhaseLoad,
    code_version,
    load_table,
    machine_info,
    stamp,
)
from bench.harness.seed import expected_members, seed
from bench.harness.stack import Databases, free_port, scratch_databases
from bench.harness.stats import ms
from config.settings import Settings
from schemas.reconcile import PLAN_PAGE, ReconcilePlan, ReconcilePlanRequest

TEMPORAL_PAYLOAD_LIMIT = 2 * 1024 * 1024  # the server's default blob size limit (error)
TARGET_SECONDS = 2.0  # DESIGN.md section 5: at seed scale


async def plan_pages(activities: ReconcileActivities, now: datetime) -> list[ReconcilePlan]:
    """The whole plan, as the reconcile workflow asks for it: page after page."""
    pages: list[ReconcilePlan] = []
    from_user_id: int | None = 0
    while from_user_id is not None:
        page = await activities.plan(ReconcilePlanRequest(now, from_user_id))
        pages.append(page)
        from_user_id = page.next_from_user_id
    return pages


async def timed(repeats: int, work: Callable[[], Awaitable[Any]]) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        result = await work()
        times.append(time.perf_counter() - began)
    return times, result


async def fill_projection(dbs: Databases, expected: dict[int, str]) -> None:
    """call_tasks = exactly the seed queries' answer (one ready task per claimant)."""
    users = sorted(expected)
    async with dbs.dialler.begin() as conn:
        await conn.execute(text("TRUNCATE call_tasks CASCADE"))  # scratch: calls is empty
        await conn.execute(
            text(
                "INSERT INTO call_tasks (user_id, workflow_id, queue, score, not_before, "
                "status, version) SELECT u, 'outreach-' || u, q, 50, now(), 'ready', 1 "
                "FROM unnest(CAST(:users AS bigint[]), CAST(:queues AS text[])) AS t(u, q)"
            ),
            {"users": users, "queues": [expected[u] for u in users]},
        )
    async with dbs.dialler.connect() as conn:
        await conn.execute(text("ANALYZE call_tasks"))
        await conn.commit()


def payload_bytes(plan: ReconcilePlan) -> int:
    payloads = DATA_CONVERTER.payload_converter.to_payloads([plan])
    return sum(p.ByteSize() for p in payloads)


async def main() -> int:
    cli = parser(__doc__)
    cli.add_argument("--users", type=int, default=50_000, help="the smaller size")
    cli.add_argument("--scale", type=int, default=10, help="the larger size is this x")
    cli.add_argument("--repeats", type=int, default=5, help="timed runs per case")
    args = cli.parse_args()
    sizes = [args.users, args.users * args.scale]
    rules = load_rules_file(Settings(_env_file=None).rules_file)  # type: ignore[call-arg]
    # `plan` never calls Temporal: a lazy client that is never connected stands in
    client = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)
    loads: list[PhaseLoad] = []
    rows: list[list[str]] = []
    parts: list[list[str]] = []
    medians: dict[tuple[int, str], float] = {}
    cpu: dict[tuple[int, str], float] = {}  # CPU seconds per plan: this process + both DBs
    async with scratch_databases("rc") as dbs:
        machine = await machine_info(dbs)
        for size in sizes:
            seeded = await seed(dbs, size)
            now = seeded.now
            activities = ReconcileActivities(dbs.dialler, dbs.replica, client, "bench", rules)
            whole_plan = partial(plan_pages, activities, now)
            async with dbs.dialler.begin() as conn:
                await conn.execute(text("TRUNCATE call_tasks CASCADE"))  # scratch: calls is empty
            expected = await expected_members(dbs, rules, now)
            for projection in ("empty", "complete"):
                if projection == "complete":
                    await fill_projection(dbs, expected)
                await whole_plan()  # warm caches and pools, not timed
                async with Phase(f"plan, {size:,} users, {projection} projection") as phase:
                    times, pages = await timed(args.repeats, whole_plan)
                loads.append(phase.load)
                median = statistics.median(times)
                medians[(size, projection)] = median
                cpu[(size, projection)] = (
                    sum(phase.load.cores[g] for g in ("bench", "postgres", "mariadb"))
                    * phase.load.seconds
                    / args.repeats
                )
                size_bytes = max(payload_bytes(page) for page in pages)
                refresh = sum(len(page.to_refresh) for page in pages)
                withdraw = sum(len(page.to_withdraw) for page in pages)
                rows.append(
                    [
                        f"{size:,}",
                        projection,
                        f"{sum(sum(page.counts.values()) for page in pages):,}",
                        f"{refresh:,} / {withdraw:,}",
                        ms(median),
                        ", ".join(ms(t) for t in times),
                        f"{median / size * 1e6:.1f} µs",
                        f"{cpu[(size, projection)]:.2f} s",
                        f"{size_bytes / 1024:,.0f} KiB, largest of {len(pages)}"
                        + (
                            " (over the 2 MiB limit)" if size_bytes > TEMPORAL_PAYLOAD_LIMIT else ""
                        ),
                    ]
                )
                say(f"  {projection} projection: median {median * 1000:.0f} ms")
            pieces: dict[str, Callable[[], Awaitable[Any]]] = {
                "unsigned query (replica)": lambda: unsigned_user_ids(dbs.replica),
                "outstanding query (replica)": lambda: outstanding_user_ids(dbs.replica),
                "due callbacks (dialler + replica)": partial(
                    due_callback_user_ids, dbs.dialler, dbs.replica, now
                ),
                "projection read (dialler, complete)": lambda: _projection(dbs),
            }
            for name, work in pieces.items():
                try:
                    times, found = await timed(args.repeats, work)
                except DBAPIError as error:  # a part is context, not the figure: note and go on
                    parts.append([f"{size:,}", name, "error", str(error.orig)[:80]])
                    continue
                parts.append([f"{size:,}", name, f"{len(found):,}", ms(statistics.median(times))])
    small, large = sizes
    ratios = [
        [
            projection,
            ms(medians[(small, projection)]),
            ms(medians[(large, projection)]),
            f"**{medians[(large, projection)] / medians[(small, projection)]:.1f}x**",
            f"{cpu[(large, projection)] / cpu[(small, projection)]:.1f}x",
            f"{args.scale}x",
        ]
        for projection in ("empty", "complete")
    ]
    tables = [
        Table(
            "Plan time (median of the timed runs)",
            ["users", "projection", "in a queue", "to refresh / withdraw", "median", "runs",
             "per user", "CPU per plan", "page as a payload"],
            rows,
        ),
        Table(
            f"Growth: {large:,} vs {small:,} users (linear would be {args.scale}x; target at "
            "seed scale ≤ 2 s)",
            ["projection", f"{small:,}", f"{large:,}", "time ratio", "CPU ratio", "size ratio"],
            ratios,
        ),
        Table("Parts, each alone (median)", ["users", "part", "rows", "median"], parts),
        load_table(loads),
    ]  # fmt: skip
    notes = [
        f"Sizes: {small:,} and {large:,} demo users (seed scale is 50,000); {args.repeats} timed "
        "runs per case after one untimed warm-up run.",
        "`ReconcileActivities.plan` is called directly (no worker, no Temporal server) on "
        "scratch databases; the three seed queries run concurrently, then the projection is "
        "read. 'complete' projection = `call_tasks` filled with exactly the expected tasks.",
        "CPU per plan: CPU seconds of this process, PostgreSQL and MariaDB during the timed "
        "runs, divided by the runs: the load-insensitive companion of the wall times (other "
        "engineers' tests share the 2 cores; see the load table).",
        f"Payload size: the largest page (pages of {PLAN_PAGE:,} users) encoded with the "
        "product's data converter, as the activity result the reconcile workflow receives "
        "(Temporal's default blob limit is 2 MiB).",
    ]
    growth = max(medians[(large, p)] / medians[(small, p)] for p in ("empty", "complete"))
    slowest_small = max(medians[(small, p)] for p in ("empty", "complete"))
    figures = [
        Figure(f"reconcile plan, {small:,} users (slower projection)", ms(slowest_small),
               f"≤ {TARGET_SECONDS:g} s at seed scale (50,000)",
               verdict(slowest_small <= TARGET_SECONDS, small >= 50_000)),
        Figure(f"reconcile plan growth, {args.scale}x users (worse projection)",
               f"{growth:.1f}x", f"≤ {args.scale}x (linear)",
               verdict(growth <= args.scale)),
    ]  # fmt: skip
    record = RunRecord("reconcile", "Reconcile plan", stamp(), code_version(), machine,
                       params(args), figures, notes, tables)  # fmt: skip
    finish(record, no_record=args.no_record)
    return 0


async def _projection(dbs: Databases) -> list[int]:
    async with dbs.dialler.connect() as conn:
        rows = await conn.execute(
            text("SELECT user_id, queue FROM call_tasks WHERE status IN ('ready', 'claimed')")
        )
        return [int(r[0]) for r in rows]


if __name__ == "__main__":
    run(main)
