"""Demo data, the seed's queues, and claimants brought under outreach workflows.

Workflows are started by name (`Outreach`) with the schema's `OutreachInput`, and progress
is read from the `call_tasks` projection: the benchmarks drive the product through its
public contracts, not its activities."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as clock_time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from activities.reconcile import expected_queues
from adapters.queue_queries import due_callback_user_ids, outstanding_user_ids, unsigned_user_ids
from bench.harness.cli import say
from bench.harness.stack import Databases
from demo.data import generate
from demo.load import load_demo_data
from domain.rules import DiallerRules, parse_rules
from schemas.enums import Queue
from schemas.outreach import OutreachInput
from workflows.outreach import workflow_id_for

OUTREACH = "Outreach"  # the workflow type, as registered
START_CONCURRENCY = 32
SAMPLE_SEED = 2026
_CLAIMABLE = text(
    "SELECT queue, count(*) FROM call_tasks WHERE status = 'ready' AND not_before <= now() "
    "GROUP BY queue"
)
_PUBLISHED = text("SELECT count(*) FROM call_tasks WHERE status IN ('ready', 'claimed')")


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
    say(f"seeding {users:,} demo claimants")
    started = time.perf_counter()
    data = generate(users, now=now)
    generated = time.perf_counter() - started
    report = await load_demo_data(dbs.replica, dbs.dialler, data, replace=True)
    for table in ("users", "claims", "claim_requirements"):
        async with dbs.replica.connect() as conn:
            await conn.exec_driver_sql(f"ANALYZE TABLE `{table}`")
    async with dbs.dialler.connect() as conn:
        await conn.execute(text("ANALYZE callbacks"))
    say(f"  generated in {generated:.1f}s, loaded in {report.seconds:.1f}s")
    return Seeded(users, report.rows, generated, report.seconds, now)


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


async def expected_members(dbs: Databases, rules: DiallerRules, now: datetime) -> dict[int, str]:
    """Each claimant's queue by the seed's three queries (what reconcile plans from)."""
    unsigned, outstanding, callback = await asyncio.gather(
        unsigned_user_ids(dbs.replica),
        outstanding_user_ids(dbs.replica),
        due_callback_user_ids(dbs.dialler, dbs.replica, now),
    )
    return expected_queues(callback, unsigned, outstanding, rules.stage_priority)


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


async def start_outreach(
    client: Client, user_ids: Sequence[int], task_queue: str, concurrency: int = START_CONCURRENCY
) -> dict[str, float]:
    """Start each claimant's outreach workflow (by name), `concurrency` at a time; returns
    each workflow id's start time (epoch seconds)."""
    gate = asyncio.Semaphore(concurrency)
    started: dict[str, float] = {}

    async def start(user_id: int) -> None:
        async with gate:
            workflow_id = workflow_id_for(user_id)
            started[workflow_id] = time.time()
            await client.start_workflow(
                OUTREACH,
                OutreachInput(user_id),
                id=workflow_id,
                task_queue=task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                static_summary=f"Outreach for claimant {user_id}",
            )

    await asyncio.gather(*(start(u) for u in user_ids))
    return started


async def published(engine: AsyncEngine) -> int:
    """Tasks in the projection that an agent holds or could (ready or claimed)."""
    async with engine.connect() as conn:
        return int(await conn.scalar(_PUBLISHED) or 0)


async def bring_under(
    client: Client, engine: AsyncEngine, user_ids: Sequence[int], task_queue: str, within: float
) -> tuple[int, float]:
    """Start each claimant's workflow, then wait until each has a published task (or
    `within` seconds pass). Returns (published, seconds)."""
    began = time.monotonic()
    await start_outreach(client, user_ids, task_queue)
    say(f"  {len(user_ids):,} workflows started in {time.monotonic() - began:.1f}s")
    last_report = began
    while True:
        count = await published(engine)
        now = time.monotonic()
        if count >= len(user_ids):
            return count, now - began
        if now - began > within:
            say(f"  bring-under bound reached: {count}/{len(user_ids)} published")
            return count, now - began
        if now - last_report >= 15:
            last_report = now
            say(f"  {now - began:.0f}s: {count}/{len(user_ids)} published")
        await asyncio.sleep(1.0)


async def claimable(engine: AsyncEngine) -> dict[str, int]:
    """Ready tasks whose `not_before` has passed, per queue."""
    async with engine.connect() as conn:
        return {str(q): int(n) for q, n in await conn.execute(_CLAIMABLE)}


async def task_statuses(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT status, count(*) FROM call_tasks GROUP BY 1"))
        return {str(status): int(n) for status, n in rows}


def agents_per_queue(ready: dict[str, int], agents: int) -> list[Queue]:
    """Each agent's queue, in proportion to the ready tasks (at least one each)."""
    total = sum(ready.values()) or 1
    queues: list[Queue] = []
    for queue in sorted(Queue, key=lambda q: ready.get(q.value, 0)):
        if not ready.get(queue.value):
            continue
        share = max(1, round(agents * ready[queue.value] / total))
        queues += [queue] * min(share, agents - len(queues))
    while len(queues) < agents:
        queues.append(max(Queue, key=lambda q: ready.get(q.value, 0)))
    return queues
