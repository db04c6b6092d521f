"""Time to bring every seed-scale claimant under an outreach workflow.

    .venv/bin/python -m bench.bring_under_workflows [--users 50000] [--within 20] [--no-record]

Seeds demo data, runs the reconcile workflow once (its plan finds everyone the seed's queue
queries place in a queue, and its refresh batches signal-with-start their workflows), then
polls `call_tasks` until it holds a ready or claimed task for every one of them. Reports
claimants/s. `--within` (minutes) bounds the wait: a run that does not finish reports how
far it got and its rate so far.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from sqlalchemy import text

from adapters.rules_file import load_rules_file
from bench.harness.cli import Figure, RunRecord, Table, finish, params, parser, run, say
from bench.harness.machine import Phase, code_version, load_table, machine_info, stamp
from bench.harness.seed import OUTREACH, expected_members, seed
from bench.harness.stack import connect_client, dev_server, scratch_databases
from bench.harness.temporal import (
    ActivityTap,
    CoreMetrics,
    count_type_adapters,
    describe_profiles,
    history_profile,
)
from schemas.reconcile import ReconcileInput, ReconcileResult
from workers.outreach import build_worker, outreach_activities
from workflows.outreach import workflow_id_for

TASK_QUEUE = "bench-outreach"
POLL_SECONDS = 2.0
STALL_SECONDS = 180.0
MILESTONES = (0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
SEED_SCALE = 50_000
RECONCILE = "Reconcile"  # the workflow type, as registered
SAMPLED = 20


@dataclass
class Progress:
    seconds: float
    covered: int  # expected claimants with a ready/claimed task
    matched: int  # ... in the queue the seed queries say


async def main() -> int:
    cli = parser(__doc__)
    cli.add_argument("--users", type=int, default=SEED_SCALE, help="demo claimants")
    cli.add_argument("--within", type=float, default=20.0, help="minutes to wait at most")
    cli.add_argument(
        "--max-cached-workflows",
        type=int,
        default=None,
        help="experiment: the worker's sticky cache size (default: build_worker's)",
    )
    args = cli.parse_args()
    tap = ActivityTap()
    metrics = CoreMetrics()
    adapters = count_type_adapters()
    async with dev_server() as server, scratch_databases("bu") as dbs:
        machine = await machine_info(dbs)
        seeded = await seed(dbs, args.users)
        client = await connect_client(server.address, [tap], metrics.runtime)
        settings = dbs.settings(server.address, TASK_QUEUE)
        rules = load_rules_file(settings.rules_file)
        expected = await expected_members(dbs, rules, seeded.now)
        total = len(expected)
        per_queue = {q: sum(1 for v in expected.values() if v == q) for q in set(expected.values())}
        say(f"{total} claimants belong in a queue: {per_queue}")
        activities = outreach_activities(settings, client, dbs.dialler, dbs.replica, rules)
        timeline: list[Progress] = []
        reconcile_seconds: float | None = None
        result: ReconcileResult | None = None
        cache = (
            {}
            if args.max_cached_workflows is None
            else {"max_cached_workflows": args.max_cached_workflows}
        )
        async with build_worker(client, TASK_QUEUE, activities, **cache):
            async with Phase("reconcile + outreach workflows", server.pid) as phase:
                began = time.monotonic()
                handle = await client.start_workflow(
                    RECONCILE, ReconcileInput(), id="bench-reconcile", task_queue=TASK_QUEUE,
                    result_type=ReconcileResult,
                )  # fmt: skip
                reconcile = asyncio.create_task(handle.result())
                last_change, last_report = began, began
                while True:
                    await asyncio.sleep(POLL_SECONDS)
                    now = time.monotonic()
                    if reconcile.done() and reconcile_seconds is None:
                        result = reconcile.result()  # raises if the reconcile failed
                        reconcile_seconds = now - began
                        say(f"reconcile workflow done after {reconcile_seconds:.1f}s: {result}")
                    async with dbs.dialler.connect() as conn:
                        rows = await conn.execute(
                            text(
                                "SELECT user_id, queue FROM call_tasks "
                                "WHERE status IN ('ready', 'claimed')"
                            )
                        )
                        published = {int(u): str(q) for u, q in rows}
                    covered = sum(1 for u in expected if u in published)
                    matched = sum(1 for u, q in expected.items() if published.get(u) == q)
                    if not timeline or covered != timeline[-1].covered:
                        last_change = now
                    timeline.append(Progress(now - began, covered, matched))
                    if now - last_report >= 30:
                        last_report = now
                        rate = covered / (now - began)
                        say(f"  {now - began:.0f}s: {covered}/{total} ({rate:.1f}/s)")
                    if covered >= total:
                        break
                    if now - began > args.within * 60:
                        say("time bound reached: stopping early")
                        break
                    if reconcile_seconds is not None and now - last_change > STALL_SECONDS:
                        say(f"no progress for {STALL_SECONDS:.0f}s: stopping")
                        break
            if not reconcile.done():
                await handle.cancel()
            core = await metrics.scrape()
            sample = sorted(expected)[:: max(1, total // SAMPLED)][:SAMPLED]
            profiles = [await history_profile(client, workflow_id_for(u)) for u in sample]
            workflows = await client.count_workflows(f"WorkflowType = '{OUTREACH}'")

    final = timeline[-1]
    rate = final.covered / final.seconds
    finished = final.covered >= total
    milestones = []
    for share in MILESTONES:
        reached = next((p for p in timeline if p.covered >= share * total), None)
        milestones.append(
            [
                f"{share:.0%}",
                str(round(share * total)),
                f"{reached.seconds:.0f}" if reached else "not reached",
                f"{reached.covered / reached.seconds:.1f}" if reached else "",
            ]
        )
    activity_counts = ", ".join(f"{k} {v:,}" for k, v in sorted(tap.counts.items()))
    figures = [
        ["demo claimants seeded", f"{args.users:,}"],
        ["rows", ", ".join(f"{k} {v:,}" for k, v in seeded.rows.items())],
        ["seed: generate / load", f"{seeded.generate_seconds:.1f}s / {seeded.load_seconds:.1f}s"],
        ["claimants in a queue (seed queries)", f"{total:,} ({per_queue})"],
        ["reconcile workflow (plan + all signal-with-starts)",
         f"{reconcile_seconds:.1f}s" if reconcile_seconds else "not finished"],
        ["with a ready/claimed task at the end", f"{final.covered:,} of {total:,}"
         f" ({final.matched:,} in the queue the seed queries name)"],
        ["time until all had a task" if finished else "time measured (NOT all done)",
         f"{final.seconds:.1f}s"],
        ["**claimants/s**", f"**{rate:.1f}**"],
        ["Outreach workflows in visibility", f"{workflows.count:,}"],
        ["activities executed (all)", activity_counts],
        [f"outreach histories ({len(profiles)} sampled across the id range)",
         describe_profiles(profiles)],
        ["worker sticky cache: hits / misses / forced evictions",
         " / ".join(f"{core.get(f'temporal_sticky_cache_{k}', 0):,.0f}"
                    for k in ("hit", "miss", "total_forced_eviction"))],
        ["workflow tasks: completed / failed (worker metrics)",
         f"{core.get('temporal_workflow_task_execution_latency_count', 0):,.0f} / "
         f"{core.get('temporal_workflow_task_execution_failed', 0):,.0f}"],
        ["pydantic TypeAdapters built per claimant",
         f"{sum(adapters.built.values()) / max(total, 1):.2f} "
         f"({adapters.cpu_seconds / max(total, 1) * 1000:.1f} ms CPU per claimant)"],
    ]  # fmt: skip
    notes = [f"Sizes: --users {args.users:,}; {total:,} claimants in a queue."]
    if args.max_cached_workflows is not None:
        notes.append(
            f"EXPERIMENT: the worker is `build_worker`'s configuration with "
            f"max_cached_workflows={args.max_cached_workflows:,} (the product's is "
            "`workers.outreach.DEFAULT_MAX_CACHED_WORKFLOWS`)."
        )
    if args.users < SEED_SCALE or not finished:
        scale = SEED_SCALE / args.users
        at_seed = total * scale
        notes.append(
            f"EXTRAPOLATED, not measured: seed scale ({SEED_SCALE:,} users) would put about "
            f"{at_seed:,.0f} claimants in queues; at the {rate:.1f}/s measured here that is "
            f"about {at_seed / rate / 60:.1f} minutes (linear in claimants; assumes the rate "
            "holds as the dev server's SQLite file grows)."
        )
        figures.append(
            ["seed scale, extrapolated", f"~{at_seed / rate / 60:.1f} min for ~{at_seed:,.0f}"]
        )
    notes += [
        "One dev server (SQLite file, WAL) started by the benchmark; one outreach worker "
        "(`build_worker`, `outreach_activities`, default rules file) in the benchmark process. "
        "The reconcile workflow runs on the same worker: its refresh batches (1,000 ids, "
        "4 in parallel, 16 signal-with-starts in flight each) start every workflow with a "
        "REFRESH event.",
        f"Progress is `call_tasks` polled every {POLL_SECONDS:.0f}s, so times are ±2s.",
    ]
    tables = [
        Table("Bring-under figures", ["figure", "value"], figures),
        Table(
            "Progress (claimants with a ready/claimed task)",
            ["share", "claimants", "seconds", "claimants/s so far"],
            milestones,
        ),
        load_table([phase.load]),
    ]
    headline = [Figure("claimants brought under workflows per second", f"{rate:.1f}")]
    if not finished:
        headline[0] = Figure(headline[0].name, f"{rate:.1f} (not all done)")
    record = RunRecord("bring_under_workflows", "Bring claimants under workflows", stamp(),
                       code_version(), machine, params(args), headline, notes, tables)  # fmt: skip
    finish(record, no_record=args.no_record)
    return 0


if __name__ == "__main__":
    run(main)
