"""`dialler queue`: look at and refresh the call queues."""

from __future__ import annotations

import asyncio
import uuid

import click
from sqlalchemy import func, select

from adapters.databases import dialler_engine
from adapters.temporal import connect_temporal
from cli.common import exit_after_temporal, settings_or_exit
from config.settings import Settings
from schemas import dialler_db as db
from schemas.reconcile import ReconcileInput, ReconcileResult
from workflows.reconcile import ReconcileWorkflow


async def queue_depths(settings: Settings) -> dict[tuple[str, str], int]:
    engine = dialler_engine(settings, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(db.call_tasks.c.queue, db.call_tasks.c.status, func.count())
                .where(db.call_tasks.c.status.in_(["ready", "claimed"]))
                .group_by(db.call_tasks.c.queue, db.call_tasks.c.status)
            )
            return {(queue, status): int(count) for queue, status, count in rows}
    finally:
        await engine.dispose()


async def _refresh(settings: Settings) -> ReconcileResult:
    client = await connect_temporal(settings)
    return await client.execute_workflow(
        ReconcileWorkflow.run,
        ReconcileInput(),
        id=f"reconcile-manual-{uuid.uuid4().hex[:8]}",
        task_queue=settings.temporal_task_queue,
    )


@click.group()
def queue() -> None:
    """The call queues (unsigned, outstanding, callback)."""


@queue.command()
def refresh() -> None:
    """Run the reconcile workflow now (needs a running outreach worker) and print the
    claimants per queue according to the seed's queue queries."""
    settings = settings_or_exit()
    result = asyncio.run(_refresh(settings))
    click.echo("claimants per queue (seed queries):")
    for name, count in result.counts.items():
        click.echo(f"  {name:<12} {count:>8,}")
    click.echo(f"workflows refreshed: {result.refreshed:,}; tasks withdrawn: {result.withdrawn:,}")
    exit_after_temporal()


@queue.command()
def depth() -> None:
    """Tasks in the queue projection right now, ready and claimed."""
    depths = asyncio.run(queue_depths(settings_or_exit()))
    for name in ("callback", "unsigned", "outstanding"):
        ready, claimed = depths.get((name, "ready"), 0), depths.get((name, "claimed"), 0)
        click.echo(f"  {name:<12} ready {ready:>8,}   claimed {claimed:>6,}")
