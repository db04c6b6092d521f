"""Time to bring every seed-scale claimant under an outreach workflow.

    .venv/bin/python -m bench.bring_under_workflows [--users 50000] [--within 20]

Seeds demo data, runs the reconcile workflow once (its plan finds everyone the seed's queue
queries place in a queue, and its refresh batches signal-with-start their workflows), then
polls `call_tasks` until it holds a ready or claimed task for every one of them. Reports
claimants/s. `--within` (minutes) bounds the wait: a run that does not finish reports how
far it got and its rate so far.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from temporalio.client import Client
from temporalio.worker import Worker

from adapters.rules_file import load_rules_file
from bench.common import (
    ActivityTap,
    CoreMetrics,
    Phase,
    Table,
    append_report,
    connect_client,
    count_type_adapters,
    describe_profiles,
    dev_server,
    expected_members,
    history_profile,
    load_table,
    machine_info,
    print_tables,
    run,
    say,
    scratch_databases,
    seed,
)
from schemas.reconcile import ReconcileInput, ReconcileResult
from workers.outreach import build_worker, outreach_activities
from workflows.outreach import workflow_id_for
from workflows.reconcile import ReconcileWorkflow

TASK_QUEUE = "bench-outreach"
POLL_SECONDS = 2.0
STALL_SECONDS = 180.0
MILESTONES = (0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
SEED_SCALE = 50_000
SAMPLED = 20


@dataclass
class Progress:
    seconds: float
    covered: int  # expected claimants with a ready/claimed task
    matched: int  # ... in the queue the seed queries say


def worker_for(
    client: Client, activities: Sequence[Callable[..., Any]], cache: int | None
) -> Worker:
    """`build_worker` as the product runs it, or (experiment) its configuration with another
    sticky cache size. The configuration is read from a worker built for a scratch task queue
    that is never run (two workers may not share a task queue)."""
    if cache is None:
        return build_worker(client, TASK_QUEUE, activities)
    config = build_worker(client, f"{TASK_QUEUE}-config-only", activities).config()
    config["task_queue"] = TASK_QUEUE
    config["max_cached_workflows"] = cache
    return Worker(**config)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=SEED_SCALE, help="demo claimants")
    parser.add_argument("--within", type=float, default=20.0, help="minutes to wait at most")
    parser.add_argument(
        "--max-cached-workflows",
        type=int,
        default=None,
        help="experiment: the worker's sticky cache size (default: build_worker's, 1000)",
    )
    args = parser.parse_args()
    tap = ActivityTap()
    metrics = CoreMetrics()
    adapters = count_type_adapters()
    async with dev_server() as server, scratch_databases("bu") as dbs:
        machine = await machine_info(dbs)
        say(f"seeding {args.users} demo claimants")
        seeded = await seed(dbs, args.users)
        say(f"  generated in {seeded.generate_seconds:.1f}s, loaded in {seeded.load_seconds:.1f}s")
        client = await connect_client(server.address, tap, metrics)
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
        async with worker_for(client, activities, args.max_cached_workflows):
            async with Phase("reconcile + outreach workflows", server.pid) as phase:
                began = time.monotonic()
                handle = await client.start_workflow(
                    ReconcileWorkflow.run, ReconcileInput(), id="bench-reconcile",
                    task_queue=TASK_QUEUE,
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
            workflows = await client.count_workflows("WorkflowType = 'Outreach'")

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
        ["load_facts per claimant", f"{tap.counts['load_facts'] / max(total, 1):.2f}"],
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
            f"max_cached_workflows={args.max_cached_workflows:,} (the product uses the SDK "
            "default, 1,000)."
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
    print_tables(tables)
    append_report("Bring claimants under workflows", machine, notes, tables)
    return 0


if __name__ == "__main__":
    run(main)
